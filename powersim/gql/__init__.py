"""GraphQL on /graphql: the same service as REST, through strawberry."""

from .schema import schema
from .view import setup_graphql

__all__ = ["schema", "setup_graphql"]
