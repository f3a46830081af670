"""`python -m powersim.gql > schema.graphql` prints the schema that is committed."""

from .schema import schema

print(schema.as_str())
