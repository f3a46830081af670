"""A validation rule: how many `details` one GraphQL operation may select.

A run's details can be megabytes (a large network's every bus and line), and graphql-core builds
the answer on the event loop; aliases would let one small anonymous query ask for the same
details many times over. Counted statically, before anything runs, with fragments expanded as
often as they are spread (a fragment spread twice counts twice).
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

from ..constants import GQL_MAX_DETAILS

DETAILS_FIELD = "details"


class MaxDetailsRule(ValidationRule):
    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        fragments = {
            definition.name.value: definition
            for definition in self.context.document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        counted = _count(node.selection_set, fragments, {}, set())
        if counted > GQL_MAX_DETAILS:
            self.report_error(
                GraphQLError(
                    f"the operation selects `details` {counted} times; at most {GQL_MAX_DETAILS} are allowed",
                    node,
                )
            )


def _count(
    selections: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    memo: dict[str, int],
    visiting: set[str],
) -> int:
    """`details` fields under `selections`; a fragment cycle (reported by graphql-core's own rule)
    counts 0 here instead of recursing forever."""
    if selections is None:
        return 0
    total = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            total += (
                1
                if selection.name.value == DETAILS_FIELD
                else _count(selection.selection_set, fragments, memo, visiting)
            )
        elif isinstance(selection, InlineFragmentNode):
            total += _count(selection.selection_set, fragments, memo, visiting)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in memo:
                if name in visiting or name not in fragments:
                    continue
                visiting.add(name)
                memo[name] = _count(fragments[name].selection_set, fragments, memo, visiting)
                visiting.discard(name)
            total += memo[name]
    return total
