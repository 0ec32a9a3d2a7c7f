"""The reference semantics of every operator, evaluated in Python.

This module *is* the contract in executable form: the memory backend runs
queries with it alone, and every other backend uses it for the conditions
its engine cannot express. Records and operands are in doqu's canonical form
(see :mod:`doqu.conversion`).

Rules encoded here (and mirrored by every native compiler):

* a value's *kind* is one of null, bool, number, string, list, dict; a
  comparison between different kinds is false (``True`` is not ``1``);
* strings compare by code point, case-sensitively;
* a condition on an absent field is false, so its negation is true;
* ordering ranks kinds: absent < number < string < dict < list < bool.
"""

from __future__ import annotations

import decimal
import json
import re
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

from doqu.query.conditions import And, Leaf, Node, Not, Or

__all__ = [
    "MISSING",
    "kind",
    "get_path",
    "compile_predicate",
    "sort_records",
    "order_key",
    "distinct_values",
    "words",
    "DATE_PREFIX",
    "same",
]

MISSING = None
Predicate = Callable[[Mapping[str, Any]], bool]
Ordering = Sequence[tuple[tuple[str, ...], bool]]  # (path, descending)

#: A canonical date or datetime string starts like this; year/month/day read it.
DATE_PREFIX = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_WORD = re.compile(r"\w+")
_KIND_RANK = {"null": 0, "number": 1, "string": 2, "dict": 3, "list": 4, "bool": 5}


def kind(value: Any) -> str:
    """The comparison kind of a canonical value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float, decimal.Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def get_path(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at ``path``, or ``None`` when any step is absent or not a dict."""
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def _numbers(a: Any, b: Any) -> tuple[Any, Any]:
    """A float read from an engine against a Decimal operand compares as floats,
    as every engine storing JSON numbers does (``0.1 == Decimal("0.1")``)."""
    if isinstance(a, float) and isinstance(b, decimal.Decimal):
        return a, float(b)
    if isinstance(b, float) and isinstance(a, decimal.Decimal):
        return float(a), b
    return a, b


def same(a: Any, b: Any) -> bool:
    """Equality that never crosses kinds, also inside lists and dicts."""
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return False
    if ka == "number":
        x, y = _numbers(a, b)
        return bool(x == y)
    if ka == "list":
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if ka == "dict":
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def words(text: str) -> set[str]:
    """The case-folded words of a text, as ``search`` compares them."""
    return {w.casefold() for w in _WORD.findall(text)}


@lru_cache(maxsize=256)
def _regex(pattern: str, caseless: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if caseless else 0)


def _comparable(a: Any, b: Any) -> bool:
    k = kind(a)
    return k == kind(b) and k in ("number", "string")


def _lt(a: Any, b: Any) -> bool:
    x, y = _numbers(a, b)
    return bool(x < y)


def _contains_one(field: Any, item: Any) -> bool:
    if isinstance(field, str):
        return isinstance(item, str) and item in field
    if isinstance(field, list):
        return any(same(element, item) for element in field)
    return False


def _date_part(field: Any, index: int) -> int | None:
    if isinstance(field, str):
        match = DATE_PREFIX.match(field)
        if match:
            return int(match.group(index))
    return None


def _leaf_test(op: str, operand: Any) -> Callable[[Any], bool]:
    """A test of one (present) field value; operands are already canonical."""
    if op == "equals":
        return lambda v: same(v, operand)
    if op == "gt":
        return lambda v: _comparable(v, operand) and _lt(operand, v)
    if op == "gte":
        return lambda v: _comparable(v, operand) and not _lt(v, operand)
    if op == "lt":
        return lambda v: _comparable(v, operand) and _lt(v, operand)
    if op == "lte":
        return lambda v: _comparable(v, operand) and not _lt(operand, v)
    if op == "between":
        low, high = operand
        return lambda v: (_comparable(v, low) and _comparable(v, high)
                          and not _lt(v, low) and not _lt(high, v))
    if op == "in":
        return lambda v: any(same(v, item) for item in operand)
    if op == "contains":
        items = operand if isinstance(operand, (list, tuple)) else (operand,)
        return lambda v: all(_contains_one(v, item) for item in items)
    if op == "contains_any":
        return lambda v: any(_contains_one(v, item) for item in operand)
    if op == "startswith":
        return lambda v: isinstance(v, str) and v.startswith(operand)
    if op == "endswith":
        return lambda v: isinstance(v, str) and v.endswith(operand)
    if op in ("matches", "matches_caseless"):
        rx = _regex(operand, op == "matches_caseless")
        return lambda v: isinstance(v, str) and rx.search(v) is not None
    if op in ("year", "month", "day"):
        index = {"year": 1, "month": 2, "day": 3}[op]
        return lambda v: _date_part(v, index) == operand
    if op == "search":
        wanted = words(operand)
        return lambda v: isinstance(v, str) and wanted <= words(v)
    raise ValueError(f"no evaluator for operator {op!r}")  # parse_lookup prevents this


def compile_predicate(node: Node | None,
                      convert: Callable[[Any], Any] | None = None) -> Predicate:
    """Turn a condition tree into ``record -> bool``.

    ``convert`` maps each operand into the records' form once, up front
    (the canonical encoder by default).
    """
    if convert is None:
        from doqu.conversion import canonical as convert
    assert convert is not None
    return _compile(node, convert)


def _compile(node: Node | None, convert: Callable[[Any], Any]) -> Predicate:
    if node is None:
        return lambda record: True
    if isinstance(node, Leaf):
        path = node.path
        if node.op == "exists":
            wanted = bool(node.value)
            return lambda record: (get_path(record, path) is not None) is wanted
        operand = _convert_operand(node, convert)
        test = _leaf_test(node.op, operand)

        def leaf(record: Mapping[str, Any]) -> bool:
            value = get_path(record, path)
            return value is not None and test(value)

        return leaf
    if isinstance(node, Not):
        inner = _compile(node.child, convert)
        return lambda record: not inner(record)
    parts = [_compile(child, convert) for child in node.children]
    if isinstance(node, And):
        return lambda record: all(p(record) for p in parts)
    if isinstance(node, Or):
        return lambda record: any(p(record) for p in parts)
    raise TypeError(f"not a condition node: {node!r}")


def _convert_operand(leaf: Leaf, convert: Callable[[Any], Any]) -> Any:
    if leaf.op in ("search", "matches", "matches_caseless", "year", "month", "day",
                   "startswith", "endswith"):
        return leaf.value
    if isinstance(leaf.value, tuple):
        return tuple(convert(v) for v in leaf.value)
    return convert(leaf.value)


def order_key(value: Any) -> tuple[int, Any]:
    """Sort key giving the documented cross-kind order."""
    k = kind(value)
    rank = _KIND_RANK.get(k, 6)
    if k in ("number", "string", "bool"):
        return rank, value
    if k == "null":
        return rank, 0
    return rank, json.dumps(value, sort_keys=True, default=str)


def sort_records(items: list[Any], ordering: Ordering,
                 record: Callable[[Any], Mapping[str, Any]] = lambda item: item) -> list[Any]:
    """Sort in place by several ``(path, descending)`` keys; stable, so later keys break ties."""
    for path, descending in reversed(ordering):
        items.sort(key=lambda item: order_key(get_path(record(item), path)), reverse=descending)
    return items


def distinct_values(records: Iterable[Mapping[str, Any]], path: Sequence[str]) -> list[Any]:
    """Distinct present values at ``path``, ascending in the documented order."""
    seen: dict[tuple[str, Any], Any] = {}
    for rec in records:
        value = get_path(rec, path)
        if value is None:
            continue
        k = kind(value)
        identity = (k, value if k in ("number", "string", "bool") else
                    json.dumps(value, sort_keys=True, default=str))
        seen.setdefault(identity, value)
    return sorted(seen.values(), key=order_key)
