"""Secondary indexes: which entry a value gets, and which lookups a condition needs.

Every indexed field has, per bucket, one structure per *kind* of value, so
that kinds never cross (a number never meets a string), exactly as the
evaluator wants:

====  ==========  ====================================================
kind  structure   members
====  ==========  ====================================================
a     set         keys of records where the field is absent
n     sorted set  key, score = the number (numbers exact as doubles)
N     hash        key -> decimal text, for integers a double cannot
                  hold exactly (beyond 2**53); checked in Python
s     sorted set  ``lex(value) 00 00 key``, score 0 (ZRANGEBYLEX)
d     sorted set  the same over the dict's sorted JSON text
l     sorted set  the same over the list's sorted JSON text
b     sorted set  key, score 0 (False) or 1 (True)
====  ==========  ====================================================

Each record is in exactly one of them per field, so counts add up and the
kinds concatenate into the documented order (absent < numbers < strings <
dicts < lists < booleans). Entries are those of the record *as read back
from JSON* (a Decimal counts as the double JSON gives back), which is what
the shared evaluator sees.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from doqu.conversion import canonical
from doqu.ext.redis.keys import TERM, lex, lex_member
from doqu.query.conditions import Leaf
from doqu.query.evaluator import compile_predicate, get_path, kind

__all__ = ["KINDS", "Entry", "entry_for", "field_name", "LeafPlan", "plan_leaf", "Part"]

KINDS = ("a", "n", "N", "s", "d", "l", "b")
#: Rank of each kind in the documented order (N shares the rank of n).
RANK = {"a": 0, "n": 1, "N": 1, "s": 2, "d": 3, "l": 4, "b": 5}
_EXACT_LIMIT = 2 ** 53

#: (kind, member, argument): the argument is the score (n, b), the decimal text (N) or None.
Entry = tuple[str, bytes, bytes | None]


def field_name(spec: str | Sequence[str]) -> str:
    """``'address__city'``, ``'address.city'`` or ``('address', 'city')`` -> ``'address.city'``."""
    from doqu.errors import QueryError
    from doqu.query.conditions import parse_lookup

    if isinstance(spec, (tuple, list)):
        parts = [str(p) for p in spec]
    elif isinstance(spec, str):
        parts = spec.replace(".", "__").split("__")
    else:
        raise QueryError(f"index fields are names such as 'age' or 'address__city', got {spec!r}")
    path, op = parse_lookup("__".join(parts))
    if op != "equals" or len(path) != len(parts):
        raise QueryError(f"invalid index field {spec!r}: a field path, not a lookup")
    return ".".join(path)


def _as_number(value: Any) -> float | None:
    """The double a number is stored as, or None if a double cannot hold it exactly."""
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):  # JSON reads it back as the nearest double
        return float(value)
    if -_EXACT_LIMIT <= value <= _EXACT_LIMIT:
        return float(value)
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if number == value else None


def _json_text(value: Any) -> str:
    """The evaluator's order_key text for a dict or list, as read back from JSON."""
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:  # Decimals inside: JSON reads them back as the nearest doubles
        return json.dumps(_doubles(value), sort_keys=True, default=str)


def _doubles(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_doubles(v) for v in value]
    if isinstance(value, dict):
        return {k: _doubles(v) for k, v in value.items()}
    return value


def entry_for(value: Any, pk: bytes) -> Entry:
    """The one index entry of a (canonical, as-read) field value."""
    k = kind(value)
    if k == "null":
        return ("a", pk, None)
    if k == "bool":
        return ("b", pk, b"1" if value else b"0")
    if k == "number":
        number = _as_number(value)
        if number is None:
            return ("N", pk, str(int(value)).encode())
        return ("n", pk, repr(number).encode())
    if k == "string":
        return ("s", lex_member(value, pk), b"0")
    if k == "dict":
        return ("d", lex_member(_json_text(value), pk), b"0")
    if k == "list":
        return ("l", lex_member(_json_text(value), pk), b"0")
    return ("a", pk, None)  # not a canonical value; treated as absent like the evaluator does


def entries(record: Mapping[str, Any] | None, fields: Sequence[str], pk: bytes) -> dict[str, Entry]:
    """Each field's entry for a record (none at all for a record that does not exist)."""
    if record is None:
        return {}
    return {field: entry_for(get_path(record, _path(field)), pk) for field in fields}


@lru_cache(maxsize=1024)
def _path(field: str) -> tuple[str, ...]:
    return tuple(field.split("."))


# -- lookups ------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """One lookup in one structure of every bucket.

    ``op``: ``score`` (ZRANGEBYSCORE lo hi), ``lex`` (ZRANGEBYLEX lo hi),
    ``all`` (every member), ``hash`` (HGETALL, filtered by ``test`` if given).
    """

    kind: str
    op: str
    lo: bytes = b""
    hi: bytes = b""
    test: Callable[[int], bool] | None = None

    def describe(self, field: str) -> str:
        if self.op == "score":
            return f"ZRANGEBYSCORE i:{field}:{self.kind} {self.lo.decode()} {self.hi.decode()}"
        if self.op == "lex":
            return f"ZRANGEBYLEX i:{field}:{self.kind} {_show(self.lo)} {_show(self.hi)}"
        if self.op == "hash":
            return f"HGETALL i:{field}:N" + (" (checked in Python)" if self.test else "")
        if self.kind == "a":
            return f"SMEMBERS i:{field}:a"
        return f"ZRANGE i:{field}:{self.kind} 0 -1"


def _show(bound: bytes) -> str:
    return repr(bound.decode("utf-8", "backslashreplace"))


@dataclass(frozen=True)
class LeafPlan:
    """The index lookups whose union is exactly the records matching a leaf."""

    field: str
    parts: tuple[Part, ...]


def _fmt(number: float, inclusive: bool) -> bytes:
    if math.isinf(number):
        text = "+inf" if number > 0 else "-inf"
    else:
        text = repr(number)
    return (text if inclusive else "(" + text).encode()


def _double(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _lower(value: Any, inclusive: bool) -> bytes:
    """Score bound for ``v > value`` (or ``>=``) over doubles, exact for any number."""
    f = _double(value)
    if f > value:  # f is the smallest double above value
        return _fmt(f, True)
    if f < value:  # f is the largest double below value
        return _fmt(f, False)
    return _fmt(f, inclusive)


def _upper(value: Any, inclusive: bool) -> bytes:
    f = _double(value)
    if f < value:
        return _fmt(f, True)
    if f > value:
        return _fmt(f, False)
    return _fmt(f, inclusive)


def _lex_lower(value: str, inclusive: bool) -> bytes:
    return b"[" + lex(value) + TERM if inclusive else b"(" + lex(value) + TERM + b"\xff"


def _lex_upper(value: str, inclusive: bool) -> bytes:
    return b"(" + lex(value) + TERM + b"\xff" if inclusive else b"(" + lex(value) + TERM


def _number_test(leaf: Leaf) -> Callable[[int], bool]:
    predicate = compile_predicate(Leaf(("v",), leaf.op, leaf.value))
    return lambda value: predicate({"v": value})


def _range_parts(leaf: Leaf, k: str, lo: Any, lo_inc: bool, hi: Any, hi_inc: bool) -> tuple[Part, ...]:
    if k == "number":
        lo_b = _lower(lo, lo_inc) if lo is not None else b"-inf"
        hi_b = _upper(hi, hi_inc) if hi is not None else b"+inf"
        return (Part("n", "score", lo_b, hi_b), Part("N", "hash", test=_number_test(leaf)))
    lo_b = _lex_lower(lo, lo_inc) if lo is not None else b"-"
    hi_b = _lex_upper(hi, hi_inc) if hi is not None else b"+"
    return (Part("s", "lex", lo_b, hi_b),)


def _equal_parts(leaf: Leaf, value: Any) -> tuple[Part, ...]:
    k = kind(value)
    if k == "bool":
        score = b"1" if value else b"0"
        return (Part("b", "score", score, score),)
    if k == "string":
        return (Part("s", "lex", _lex_lower(value, True), _lex_upper(value, True)),)
    f = _double(value)
    test = _number_test(Leaf(leaf.path, "equals", value))
    if f == value:
        exact = _fmt(f, True)
        return (Part("n", "score", exact, exact), Part("N", "hash", test=test))
    return (Part("N", "hash", test=test),)


def _operand(value: Any) -> tuple[str, Any] | None:
    try:
        converted = canonical(value)
    except Exception:  # the evaluator reports bad operands; we just do not take the leaf
        return None
    return kind(converted), converted


def plan_leaf(leaf: Leaf, indexed: frozenset[str] | set[str]) -> LeafPlan | None:
    """How the indexes answer ``leaf`` exactly, or None if they cannot."""
    field = ".".join(leaf.path)
    if field not in indexed:
        return None
    op = leaf.op
    if op == "exists":
        if leaf.value:
            return LeafPlan(field, (Part("n", "all"), Part("N", "hash"), Part("s", "all"),
                                    Part("d", "all"), Part("l", "all"), Part("b", "all")))
        return LeafPlan(field, (Part("a", "all"),))
    if op == "startswith":
        if not isinstance(leaf.value, str):
            return None
        return LeafPlan(field, (Part("s", "lex", b"[" + lex(leaf.value), b"(" + lex(leaf.value) + b"\xff"),))
    if op in ("equals", "in"):
        items = (leaf.value,) if op == "equals" else leaf.value
        if not isinstance(items, (tuple, list)):
            return None
        distinct: dict[tuple[str, Any], Any] = {}
        for item in items:
            found = _operand(item)
            if found is None or found[0] not in ("number", "string", "bool"):
                return None
            distinct.setdefault(found, found[1])  # 1 and 1.0 are one value; True and 1 two
        parts: list[Part] = []
        for value in distinct.values():
            parts.extend(_equal_parts(leaf, value))
        return LeafPlan(field, tuple(parts))
    if op in ("gt", "gte", "lt", "lte"):
        found = _operand(leaf.value)
        if found is None or found[0] not in ("number", "string"):
            return None
        k, value = found
        if op in ("gt", "gte"):
            return LeafPlan(field, _range_parts(leaf, k, value, op == "gte", None, False))
        return LeafPlan(field, _range_parts(leaf, k, None, False, value, op == "lte"))
    if op == "between":
        if not isinstance(leaf.value, tuple) or len(leaf.value) != 2:
            return None
        low, high = (_operand(v) for v in leaf.value)
        if low is None or high is None or low[0] != high[0] or low[0] not in ("number", "string"):
            return None
        return LeafPlan(field, _range_parts(leaf, low[0], low[1], True, high[1], True))
    return None
