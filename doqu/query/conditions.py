"""The condition tree: what a query asks, independent of any engine.

A query's filter is a small immutable tree: :class:`Leaf` (one
``field__path__op=value`` condition), :class:`And`, :class:`Or` and
:class:`Not`. Nodes are frozen dataclasses, so they can be shared between
queries, compared and used as cache keys. :func:`parse_lookup` is the one
place that turns a keyword such as ``address__city__startswith`` into a
path and an operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

from doqu.errors import LookupProcessorDoesNotExist, QueryError

__all__ = [
    "OPERATORS",
    "DEFAULT_OPERATOR",
    "Leaf",
    "And",
    "Or",
    "Not",
    "Node",
    "parse_lookup",
    "conditions_from_kwargs",
    "and_",
    "or_",
    "not_",
]

#: Every operator the query API knows, with the shape of its operand.
OPERATORS: dict[str, str] = {
    "equals": "a value",
    "exists": "True or False",
    "gt": "a value",
    "gte": "a value",
    "lt": "a value",
    "lte": "a value",
    "between": "two values (both ends inclusive)",
    "in": "a list of values",
    "contains": "a value, or a list of values that must all be contained",
    "contains_any": "a list of values",
    "startswith": "a string",
    "endswith": "a string",
    "matches": "a regular expression",
    "matches_caseless": "a regular expression",
    "year": "an int",
    "month": "an int",
    "day": "an int",
    "search": "words that must all occur",
}
DEFAULT_OPERATOR = "equals"

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STRING_OPS = {"startswith", "endswith", "matches", "matches_caseless", "search"}
_LIST_OPS = {"in", "contains_any"}
_DATE_OPS = {"year", "month", "day"}

Path = tuple[str, ...]


@dataclass(frozen=True)
class Leaf:
    """One condition: the value at ``path`` satisfies ``op`` with ``value``."""

    path: Path
    op: str
    value: Any = field(compare=True)

    @property
    def name(self) -> str:
        """The dotted field name, for messages and engines with dotted paths."""
        return ".".join(self.path)

    def __hash__(self) -> int:  # values may be lists: hash their repr
        return hash((self.path, self.op, repr(self.value)))


@dataclass(frozen=True)
class And:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    child: "Node"


Node = Union[Leaf, And, Or, Not]


def and_(*nodes: Node | None) -> Node | None:
    """Conjunction that flattens nested ``And`` and drops empty parts."""
    parts: list[Node] = []
    for node in nodes:
        if node is None:
            continue
        parts.extend(node.children if isinstance(node, And) else (node,))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def or_(*nodes: Node | None) -> Node | None:
    """Disjunction; an empty side means "everything", so the result is too."""
    if any(node is None for node in nodes):
        return None
    parts: list[Node] = []
    for node in nodes:
        parts.extend(node.children if isinstance(node, Or) else (node,))  # type: ignore[union-attr]
    return parts[0] if len(parts) == 1 else Or(tuple(parts))


def not_(node: Node) -> Node:
    return node.child if isinstance(node, Not) else Not(node)


def parse_lookup(key: str, structure: Mapping[str, Any] | None = None) -> tuple[Path, str]:
    """Split ``address__city__startswith`` into ``(('address', 'city'), 'startswith')``.

    The last part is an operator only if it names one; otherwise the whole key
    is a path and the operator is ``equals``. With a ``structure``, a path
    that goes *into* a field declared as a scalar cannot be a path, so its
    last part must have been meant as an operator: that raises
    :class:`LookupProcessorDoesNotExist` instead of silently matching nothing.
    """
    if not isinstance(key, str) or not key:
        raise QueryError(f"invalid lookup {key!r}: expected 'field' or 'field__operator'")
    parts = key.split("__")
    op = DEFAULT_OPERATOR
    if len(parts) > 1 and parts[-1] in OPERATORS:
        op = parts.pop()
    for part in parts:
        if not _PART.match(part):
            raise QueryError(
                f"invalid field path {key!r}: each part between '__' must be a "
                f"Python identifier (got {part!r}); known operators: {', '.join(OPERATORS)}"
            )
    if len(parts) > 1 and structure is not None and parts[0] in structure:
        declared = structure[parts[0]]
        if declared is not None and declared is not dict:
            if op == DEFAULT_OPERATOR and key.rsplit("__", 1)[-1] != DEFAULT_OPERATOR:
                check_operator(parts[-1])  # raises: the last part was meant as an operator
            raise QueryError(
                f"invalid field path {key!r}: {parts[0]!r} is declared as "
                f"{getattr(declared, '__name__', declared)!s}, which has no sub-fields"
            )
    return tuple(parts), op


def check_operator(op: str) -> None:
    if op not in OPERATORS:
        raise LookupProcessorDoesNotExist(
            f"unknown operator {op!r}; known operators: {', '.join(OPERATORS)}"
        )


def make_leaf(path: Path, op: str, value: Any) -> Node:
    """Build a condition after checking the operand fits the operator.

    ``None`` means "absent", so ``equals None`` becomes ``exists False`` and a
    ``None`` inside an ``in`` list also admits absent values: backends never
    see ``None`` operands.
    """
    check_operator(op)
    where = f"{'__'.join(path)}__{op}"
    if op == "equals" and value is None:
        return Leaf(path, "exists", False)
    if op in ("in", "contains_any", "contains", "between") and isinstance(value, (list, tuple)):
        if op == "in" and any(v is None for v in value):
            rest = tuple(v for v in value if v is not None)
            absent = Leaf(path, "exists", False)
            return Or((absent, Leaf(path, "in", rest))) if rest else absent
        if any(v is None for v in value):
            raise QueryError(f"{where}: None is not a value that can be compared")
    elif value is None and op != "exists":
        raise QueryError(f"{where}: None cannot be compared; use {'__'.join(path)}__exists=False")
    if op == "exists":
        if not isinstance(value, bool):
            raise QueryError(f"{where}: expected True or False, got {value!r}")
    elif op == "between":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise QueryError(f"{where}: expected two values (low, high), got {value!r}")
        value = tuple(value)
    elif op in _LIST_OPS:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise QueryError(f"{where}: expected a list of values, got {value!r}")
        value = tuple(value)
    elif op == "contains" and isinstance(value, (list, tuple, set, frozenset)):
        value = tuple(value)
    elif op in _STRING_OPS:
        if not isinstance(value, str):
            raise QueryError(f"{where}: expected a string, got {value!r}")
        if op in ("matches", "matches_caseless"):
            try:
                re.compile(value)
            except re.error as exc:
                raise QueryError(f"{where}: invalid regular expression {value!r}: {exc}") from exc
    elif op in _DATE_OPS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise QueryError(f"{where}: expected an int, got {value!r}")
    return Leaf(path, op, value)


def conditions_from_kwargs(conds: Mapping[str, Any],
                           structure: Mapping[str, Any] | None = None) -> list[Node]:
    """Parse ``where()`` keywords into leaves, one per keyword, never merged."""
    leaves: list[Node] = []
    for key, value in conds.items():
        path, op = parse_lookup(key, structure)
        leaves.append(make_leaf(path, op, value))
    return leaves


def walk(node: Node | None) -> Iterable[Leaf]:
    """Every leaf of a tree, left to right."""
    if node is None:
        return
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from walk(node.child)
    else:
        for child in node.children:
            yield from walk(child)


def describe(node: Node | None) -> str:
    """A readable one-line rendering, used by ``explain()``."""
    if node is None:
        return "(all records)"
    if isinstance(node, Leaf):
        return f"{node.name} {node.op} {node.value!r}"
    if isinstance(node, Not):
        return f"NOT ({describe(node.child)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(
        f"({describe(c)})" if isinstance(c, (And, Or)) else describe(c) for c in node.children
    )
