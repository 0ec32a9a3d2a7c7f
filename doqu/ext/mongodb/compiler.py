"""Condition tree → MongoDB filter documents with doqu's exact semantics.

Each leaf compiles to a filter that holds for a document exactly when doqu's
evaluator holds for the record; ``And``/``Or``/``Not`` then map to ``$and``,
``$or`` and ``$nor`` (so a negated condition is true on absent fields, as the
contract says). Conditions are never merged into one dict per field: two
conditions on one field are two ``$and`` items.

Where MongoDB's own rules differ from doqu's, the filter adds guards:

* MongoDB matches an array if *any element* matches (``{'tags': 'jazz'}``,
  ``{'age': {'$gt': 5}}``); doqu compares the whole value. Scalar conditions
  therefore require ``$not: {$type: 'array'}``, and whole-list equality
  excludes lists that merely hold the operand as an element.
* A dotted path reaches into arrays of sub-documents (``a.b`` with ``a`` a
  list); doqu's paths only go through dicts. Every proper prefix of a path
  must not be an array.
* Comparisons never cross kinds: MongoDB's type bracketing already keeps
  numbers, strings and booleans apart; an operand no field can be ordered
  against (a bool, list or dict for ``gt``) compiles to a filter that matches
  nothing.
* doqu compares a float with a Decimal as floats, MongoDB exactly: such
  comparisons get a branch per BSON number type (:mod:`doqu.ext.mongodb.numbers`).
* Regular expressions are rewritten so that PCRE reads them as Python does
  (:mod:`doqu.ext.mongodb.patterns`).

What cannot be expressed exactly raises :class:`Unsupported`, and the query
filters that condition in Python (``explain()`` shows the split).
"""

from __future__ import annotations

import decimal
from typing import Any, Callable

from doqu.conversion import canonical
from doqu.errors import DoquError
from doqu.ext.mongodb import patterns
from doqu.ext.mongodb.converters import INT64, encode_key, to_decimal128
from doqu.ext.mongodb.numbers import FLOATS_MEET_DECIMALS_AS_FLOATS, decimal_bounds, exact_double
from doqu.query.conditions import And, Leaf, Node, Not, Or
from doqu.query.evaluator import kind, words

__all__ = ["Unsupported", "compile_tree", "compile_leaf", "field_path", "prefix_guards",
           "and_filters", "NEVER", "not_array"]

Filter = dict[str, Any]

#: Matches no document (every document has an ``_id``).
NEVER: Filter = {"_id": {"$exists": False}}


class Unsupported(Exception):
    """This condition cannot run in MongoDB exactly; it is filtered in Python."""


def field_path(path: tuple[str, ...]) -> str:
    """The dotted MongoDB path of a doqu path (parts are identifiers)."""
    parts = []
    for i, part in enumerate(path):
        if not part or "." in part or part.startswith("$") or "\x00" in part:
            raise Unsupported(f"field name {part!r} cannot be used in a MongoDB path")
        parts.append(encode_key(part, top=i == 0))
    return ".".join(parts)


def prefix_guards(path: tuple[str, ...]) -> list[Filter]:
    """Proper prefixes of ``path`` must not be arrays (doqu paths only go through dicts)."""
    return [{field_path(path[:k]): {"$not": {"$type": "array"}}} for k in range(1, len(path))]


def not_array(name: str) -> Filter:
    return {name: {"$not": {"$type": "array"}}}


def and_filters(*parts: Filter) -> Filter:
    """Conjunction as an ``$and`` list (never one dict, so no condition overwrites another)."""
    items: list[Filter] = []
    for part in parts:
        if not part:
            continue
        if set(part) == {"$and"}:
            items.extend(part["$and"])
        else:
            items.append(part)
    if not items:
        return {}
    return items[0] if len(items) == 1 else {"$and": items}


_and = and_filters


def _or(parts: list[Filter]) -> Filter:
    if not parts:
        return NEVER
    return parts[0] if len(parts) == 1 else {"$or": parts}


def compile_tree(node: Node | None) -> Filter:
    """The filter document for a condition tree (``{}`` for none)."""
    if node is None:
        return {}
    if isinstance(node, Leaf):
        return compile_leaf(node)
    if isinstance(node, Not):
        return {"$nor": [compile_tree(node.child)]}
    children = [compile_tree(child) for child in node.children]
    if isinstance(node, And):
        return _and(*children)
    if isinstance(node, Or):
        return _or(children)
    raise TypeError(f"not a condition node: {node!r}")


# -- operands ------------------------------------------------------------------------------

def _native_kind(value: Any) -> str:
    """The doqu kind of an operand already in stored form."""
    from bson.decimal128 import Decimal128

    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float, Decimal128)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    raise Unsupported(f"operand of type {type(value).__name__}")


def _operand(value: Any, nested: bool = True) -> Any:
    """A canonical operand in stored form (names encoded, Decimals as Decimal128).

    Refused: dicts with more than one key (MongoDB compares sub-documents
    field by field *in order*, doqu regardless of order) and, inside lists and
    dicts, numbers that doqu compares as floats while MongoDB compares exactly
    (a float, a Decimal that is not exactly a double).
    """
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, float):
        if nested and FLOATS_MEET_DECIMALS_AS_FLOATS:
            raise Unsupported("a float inside a list or dict (doqu compares it with Decimals as floats)")
        return value
    if isinstance(value, int):
        if INT64[0] <= value <= INT64[1]:
            return value
        return _decimal(value)
    if isinstance(value, decimal.Decimal):
        if exact_double(value):  # the same number to MongoDB, and any stand-in understands it
            return float(value)
        if nested and FLOATS_MEET_DECIMALS_AS_FLOATS:
            raise Unsupported("a Decimal inside a list or dict (doqu compares it with floats as floats)")
        return _decimal(value)
    if isinstance(value, list):
        return [_operand(v) for v in value]
    if isinstance(value, dict):
        if len(value) > 1:
            raise Unsupported("MongoDB compares sub-documents in field order")
        return {encode_key(k): _operand(v) for k, v in value.items()}
    if value is None:
        return None
    raise Unsupported(f"operand of type {type(value).__name__}")


def _plain_number(value: Any) -> bool:
    """Does MongoDB's exact comparison with this canonical number agree with doqu's?"""
    if isinstance(value, bool):
        return False
    if isinstance(value, int) or not FLOATS_MEET_DECIMALS_AS_FLOATS:
        return True
    return isinstance(value, decimal.Decimal) and exact_double(value)


def _number(name: str, op: str, value: Any) -> Filter:
    """``name OP value`` for a canonical number, with doqu's float-versus-Decimal rule."""
    if _plain_number(value):
        return {name: {op: _operand(value, nested=False)}}
    if isinstance(value, decimal.Decimal):  # with doubles, compare as float(D)
        return {"$or": [
            and_filters({name: {op: _decimal(value)}}, {name: {"$not": {"$type": "double"}}}),
            and_filters({name: {op: float(value)}}, {name: {"$type": "double"}})]}
    bounds = {k: _decimal(v) for k, v in decimal_bounds(op, value).items()}
    return {"$or": [  # a float: decimals d compare as float(d)
        and_filters({name: {op: value}}, {name: {"$not": {"$type": "decimal"}}}),
        and_filters({name: {"$type": "decimal"}}, {name: bounds})]}


def _decimal(value: decimal.Decimal | int) -> Any:
    try:
        return to_decimal128(value)
    except DoquError:
        raise Unsupported(f"{value!r} has no exact Decimal128 form") from None


def _canonical_operand(value: Any) -> Any:
    try:
        return canonical(value)
    except DoquError as exc:
        raise Unsupported(str(exc)) from None


# -- leaves -------------------------------------------------------------------------------------

def compile_leaf(leaf: Leaf) -> Filter:
    """Filter for one condition; raises :class:`Unsupported` if it cannot be exact."""
    if leaf.op == "exists" and not leaf.value:
        # absent includes "a prefix is a list", so negate the whole guarded condition
        return {"$nor": [compile_leaf(Leaf(leaf.path, "exists", True))]}
    name = field_path(leaf.path)
    builder = _BUILDERS.get(leaf.op)
    if builder is None:
        raise Unsupported(f"operator {leaf.op!r}")
    core = builder(name, leaf.value)
    if core is NEVER:
        return {"_id": {"$exists": False}}  # a fresh copy: filters are handed to the driver
    return _and(*prefix_guards(leaf.path), core)


def _exists(name: str, value: bool) -> Filter:
    """Present: ``exists False`` is compiled as the negation of this, guards included."""
    # a stored null (other applications may write one) is absent to doqu;
    # ``$ne: null`` alone would also reject arrays holding a null
    return {"$or": [{name: {"$type": "array"}},
                    and_filters({name: {"$exists": True}}, {name: {"$ne": None}})]}


def _equals_native(name: str, operand: Any) -> Filter:
    which = _native_kind(operand)
    if which == "list":
        # whole-list equality: {name: L} also matches lists holding L as an element
        return _and({name: {"$eq": operand}}, {name: {"$not": {"$elemMatch": {"$eq": operand}}}})
    return _and({name: {"$eq": operand}}, *scalar_guards(name, which))


def scalar_guards(name: str, kind: str) -> list[Filter]:
    """The value is one scalar of ``kind``: not an array, and of the BSON type class.

    MongoDB's type bracketing already keeps numbers, strings and booleans
    apart; the explicit ``$type`` says so in the filter and holds on
    stand-ins that compare ``True == 1`` the way Python does.
    """
    if kind == "dict":
        return [not_array(name)]
    return [{name: {"$type": _BSON_KIND[kind]}}, not_array(name)]


_BSON_KIND = {"number": "number", "string": "string", "bool": "bool"}


def _equals(name: str, value: Any) -> Filter:
    value = _canonical_operand(value)
    if kind(value) == "number":
        return _and(_number(name, "$eq", value), *scalar_guards(name, "number"))
    return _equals_native(name, _operand(value, nested=False))


def _order(op: str) -> Callable[[str, Any], Filter]:
    def build(name: str, value: Any) -> Filter:
        value = _canonical_operand(value)
        if kind(value) == "number":
            return _and(_number(name, op, value), *scalar_guards(name, "number"))
        if kind(value) == "string":
            return _and({name: {op: value}}, *scalar_guards(name, "string"))
        return NEVER  # doqu orders numbers and strings only

    return build


def _between(name: str, value: Any) -> Filter:
    low, high = (_canonical_operand(v) for v in value)
    which = kind(low)
    if which not in ("number", "string") or kind(high) != which:
        return NEVER
    if which == "string" or (_plain_number(low) and _plain_number(high)):
        bounds = {"$gte": _operand(low, nested=False), "$lte": _operand(high, nested=False)}
        return _and({name: bounds}, *scalar_guards(name, which))
    return _and(_number(name, "$gte", low), _number(name, "$lte", high),
                *scalar_guards(name, "number"))


def _in(name: str, value: Any) -> Filter:
    items = [_canonical_operand(v) for v in value]
    parts = []
    for which in ("number", "string", "bool"):
        plain = [_operand(v, nested=False) for v in items if kind(v) == which
                 and (which != "number" or _plain_number(v))]
        if len(plain) > 1:
            parts.append(_and({name: {"$in": plain}}, *scalar_guards(name, which)))
        elif plain:
            parts.append(_equals_native(name, plain[0]))
    parts += [_and(_number(name, "$eq", v), *scalar_guards(name, "number"))
              for v in items if kind(v) == "number" and not _plain_number(v)]
    parts += [_equals_native(name, _operand(v, nested=False))
              for v in items if kind(v) in ("list", "dict")]
    return _or(parts)


def _contains_one(name: str, item: Any) -> Filter:
    which = _native_kind(item)
    if which == "list":
        raise Unsupported("a list as an element of a list")
    element = _and({name: {"$type": "array"}}, {name: {"$elemMatch": _element(item, which)}})
    if which != "string":
        return element
    substring = _and(not_array(name), {name: {"$regex": patterns.contains(item)}})
    return {"$or": [element, substring]}


def _element(item: Any, kind: str) -> Filter:
    """``$elemMatch`` body: one element equal to ``item``, of the same kind."""
    body: Filter = {"$eq": item}
    if kind != "dict":
        body["$type"] = _BSON_KIND[kind]
    body["$not"] = {"$type": "array"}  # MongoDB does not look deeper; some stand-ins do
    return body


def _items(value: Any) -> list[Any]:
    """Elements to look for: compared like values inside a list."""
    values = value if isinstance(value, (list, tuple)) else (value,)
    return [_operand(_canonical_operand(v), nested=True) for v in values]


def _contains(name: str, value: Any) -> Filter:
    parts = [_contains_one(name, item) for item in _items(value)]
    if not parts:  # "contains all of []" holds for any present value, as in the evaluator
        return _exists(name, True)
    return _and(*parts)


def _contains_any(name: str, value: Any) -> Filter:
    return _or([_contains_one(name, item) for item in _items(value)])


def _regex(name: str, pattern: str | None, caseless: bool = False) -> Filter:
    if pattern is None:
        return NEVER
    condition: dict[str, Any] = {"$regex": pattern}
    if caseless:
        condition["$options"] = "i"
    return _and(not_array(name), {name: condition})


def _translated(caseless: bool) -> Callable[[str, Any], Filter]:
    def build(name: str, value: str) -> Filter:
        try:
            return _regex(name, patterns.translate(value), caseless)
        except patterns.Unsupported as exc:
            raise Unsupported(str(exc)) from None

    return build


def _date(part: str) -> Callable[[str, Any], Filter]:
    return lambda name, value: _regex(name, patterns.date_part(part, value))


def _search(name: str, value: str) -> Filter:
    wanted = sorted(words(value))
    if not wanted:
        return _and(not_array(name), {name: {"$type": "string"}})
    try:
        found = [patterns.search_word(word) for word in wanted]
    except patterns.Unsupported as exc:
        raise Unsupported(str(exc)) from None
    if any(p is None for p in found):
        return NEVER
    return _and(not_array(name), *({name: {"$regex": p}} for p in found))


def _text(build: Callable[[str], str]) -> Callable[[str, Any], Filter]:
    def wrapped(name: str, value: str) -> Filter:
        try:
            return _regex(name, build(value))
        except patterns.Unsupported as exc:
            raise Unsupported(str(exc)) from None

    return wrapped


_BUILDERS: dict[str, Callable[[str, Any], Filter]] = {
    "exists": _exists,
    "equals": _equals,
    "gt": _order("$gt"),
    "gte": _order("$gte"),
    "lt": _order("$lt"),
    "lte": _order("$lte"),
    "between": _between,
    "in": _in,
    "contains": _contains,
    "contains_any": _contains_any,
    "startswith": _text(patterns.startswith),
    "endswith": _text(patterns.endswith),
    "matches": _translated(False),
    "matches_caseless": _translated(True),
    "year": _date("year"),
    "month": _date("month"),
    "day": _date("day"),
    "search": _search,
}
