"""Condition tree, ordering and slice → one SQL statement, through a :class:`Dialect`.

The compiler knows doqu's semantics (:mod:`doqu.query.evaluator` is the
reference) and plain SQL (``AND``, ``OR``, ``IS NOT TRUE``, ``EXISTS``,
``DISTINCT``); the dialect knows the engine's JSON functions. A condition the
dialect cannot answer exactly raises :class:`Unsupported`, which makes
``supports(leaf)`` false, so the query filters it in Python instead.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from doqu.conversion import canonical
from doqu.query.conditions import And, Leaf, Node, Not, Or
from doqu.query.evaluator import kind
from doqu.sql.dialect import (
    FALSE,
    TRUE,
    Dialect,
    Frag,
    Points,
    Range,
    Target,
    Unsupported,
    conj,
    disj,
    join,
)

__all__ = ["Compiler", "Statement"]

Statement = Frag
Ordering = Sequence[tuple[Sequence[str], bool]]

#: Operators whose operand the evaluator uses as given (no canonical conversion).
_RAW_OPERANDS = {"search", "matches", "matches_caseless", "year", "month", "day", "startswith", "endswith"}
_COMPARISONS = {"gt": (False, None), "gte": (True, None), "lt": (None, False), "lte": (None, True)}
_SCALARS = ("number", "string", "bool")


class Compiler:
    """Compiles queries over one table of ``(key, data)`` rows for one dialect.

    ``convert`` turns operands into the records' form (the storage's
    converter, canonical by default), as the Python evaluator does.
    """

    #: Structured operands (lists, dicts) with more scalars than this run in Python.
    max_operand_nodes = 64

    def __init__(self, dialect: Dialect, table: str, *, key_column: str = "key",
                 data_column: str = "data", convert: Callable[[Any], Any] | None = None) -> None:
        self.dialect = dialect
        self.table = dialect.quote_ident(table)
        self.key = dialect.quote_ident(key_column)
        self.doc = dialect.quote_ident(data_column)
        self.convert = convert or canonical

    # -- public -----------------------------------------------------------------
    def supports(self, leaf: Leaf) -> bool:
        """Can the engine answer this leaf exactly as the evaluator would?"""
        try:
            self.condition(leaf)
        except Unsupported:
            return False
        return True

    def supports_ordering(self, ordering: Ordering) -> bool:
        try:
            self.order_by(ordering)
        except Unsupported:
            return False
        return True

    def target(self, path: Sequence[Any]) -> Target:
        return self.dialect.target(self.doc, tuple(path))

    def condition(self, node: Node | None) -> Frag:
        """An expression true exactly for the records matching ``node`` (TRUE for ``None``)."""
        if node is None:
            return TRUE
        if isinstance(node, Leaf):
            return self.leaf(node)
        if isinstance(node, Not):
            inner = self.condition(node.child)
            if inner is TRUE:
                return FALSE
            if inner is FALSE:
                return TRUE
            # NULL (an absent field) must count as false before it is negated
            return inner.wrap() + " IS NOT TRUE"
        if isinstance(node, And):
            return conj(self._conjunction(node.children))
        if isinstance(node, Or):
            return disj(self.condition(child) for child in node.children)
        raise TypeError(f"not a condition node: {node!r}")

    def _conjunction(self, children: Sequence[Node]) -> list[Frag]:
        """Compile an And's children, merging order comparisons on one path into one range.

        ``age__gte=30, age__lt=35`` is the range [30, 35) of numbers: one
        index range scan, and no type guard since neither 0 nor 1 is inside.
        """
        ranges: dict[tuple[Any, str], list[Range]] = {}
        parts: list[Frag | tuple[Any, str]] = []
        for child in children:
            found = self._as_range(child) if isinstance(child, Leaf) else None
            if found is None:
                parts.append(self.condition(child))
                continue
            group = (child.path, found.kind)  # type: ignore[union-attr]
            if group not in ranges:
                ranges[group] = []
                parts.append(group)
            ranges[group].append(found)
        out: list[Frag] = []
        for part in parts:
            if isinstance(part, Frag):
                out.append(part)
            else:
                merged = _intersect(ranges[part])
                out.append(FALSE if merged is None else self.dialect.match(self.target(part[0]), merged))
        return out

    def _as_range(self, leaf: Leaf) -> Range | None:
        """The leaf as a Range of numbers or strings, when it is an order comparison."""
        if leaf.op not in _COMPARISONS and leaf.op != "between":
            return None
        self.target(leaf.path)  # raises Unsupported for a path the engine cannot address
        return self._range(leaf.op, self._operand(leaf))

    def _range(self, op: str, value: Any) -> Range | None:
        """``op value`` as a Range; ``None`` when no value can satisfy it (kinds that have no order)."""
        if op == "between":
            low, high = value
            k = kind(low)
            if k not in ("number", "string") or kind(high) != k:
                return None
            return Range(k, low=self._bind(low)[1], high=self._bind(high)[1])
        k = kind(value)
        if k not in ("number", "string"):
            return None
        bound = self._bind(value)[1]
        low_incl, high_incl = _COMPARISONS[op]
        if low_incl is not None:
            return Range(k, low=bound, low_inclusive=low_incl)
        return Range(k, high=bound, high_inclusive=bool(high_incl))

    def where(self, node: Node | None) -> Frag:
        cond = self.condition(node)
        return Frag("") if cond is TRUE else " WHERE " + cond

    def order_by(self, ordering: Ordering) -> Frag:
        terms: list[Frag] = []
        for path, descending in ordering:
            for term in self.dialect.order_terms(self.target(path)):
                terms.append(term + " DESC" if descending else term)
        return " ORDER BY " + join(", ", terms) if terms else Frag("")

    def select(self, node: Node | None, ordering: Ordering = (), start: int = 0,
               stop: int | None = None, columns: str | None = None) -> Frag:
        """``SELECT key, data`` of the matching rows, ordered and sliced."""
        cols = columns or f"{self.key}, {self.doc}"
        sql = Frag(f"SELECT {cols} FROM {self.table}") + self.where(node) + self.order_by(ordering)
        if start or stop is not None:
            sql = sql + " " + self.dialect.limit(start, stop)
        return sql

    def count(self, node: Node | None) -> Frag:
        return Frag(f"SELECT count(*) FROM {self.table}") + self.where(node)

    def delete(self, node: Node | None) -> Frag:
        return Frag(f"DELETE FROM {self.table}") + self.where(node)

    def values(self, node: Node | None, path: Sequence[str]) -> Frag:
        """The distinct JSON texts of the present values at ``path`` among the matching rows.

        Equal values may still come as several texts (``1`` and ``1.0``, or
        one dict with its keys in two orders): decode the rows and finish
        with :func:`doqu.query.evaluator.distinct_values`, which dedups by
        kind and value and sorts, exactly as the reference does. Distinct
        values are few where this matters, and DISTINCT over the text is the
        cheapest pass the engine can make.
        """
        t = self.target(path)
        cond = conj([self.condition(node), self.dialect.present(t)])
        return Frag("SELECT DISTINCT ") + self.dialect.json_text(t) + f" FROM {self.table} WHERE " + cond

    # -- leaves -------------------------------------------------------------------
    def leaf(self, leaf: Leaf) -> Frag:
        t = self.target(leaf.path)
        if leaf.op == "exists":
            return self.dialect.present(t) if leaf.value else self.dialect.absent(t)
        method = getattr(self, f"_op_{leaf.op}", None)
        if method is None:
            raise Unsupported(f"operator {leaf.op!r}")
        return method(t, self._operand(leaf))  # type: ignore[no-any-return]

    def _operand(self, leaf: Leaf) -> Any:
        if leaf.op in _RAW_OPERANDS:
            return leaf.value
        if isinstance(leaf.value, tuple):
            return tuple(self.convert(v) for v in leaf.value)
        return self.convert(leaf.value)

    def _bind(self, value: Any) -> tuple[str, Any]:
        """(kind, value to bind) of a scalar operand."""
        k = kind(value)
        if k == "number":
            return k, self.dialect.number_param(value)
        if k == "string":
            return k, self.dialect.string_param(value)
        return k, value

    def _equals(self, t: Target, value: Any) -> Frag:
        k = kind(value)
        if k in _SCALARS:
            k, bound = self._bind(value)
            return self.dialect.match(t, Points(k, (bound,)))
        if k in ("list", "dict"):
            self._check_size(value)
            whole = self.dialect.equals_structure(t, value)
            return whole if whole is not None else self._structure(t, value)
        return FALSE  # a tuple or other non-record kind never equals a stored value

    def _structure(self, t: Target, value: Any) -> Frag:
        """Exact structural equality, as :func:`doqu.query.evaluator.same`."""
        d = self.dialect
        k = kind(value)
        if k == "null":
            return d.is_kind(t, "null")
        if k == "list":
            return conj([d.is_kind(t, "list"), d.list_length(t) + " = " + d.param(len(value)),
                         *(self._structure(d.child(t, i), v) for i, v in enumerate(value))])
        if k == "dict":
            return conj([d.is_kind(t, "dict"), d.dict_size(t) + " = " + d.param(len(value)),
                         *(self._structure(d.child(t, key), v) for key, v in value.items())])
        return self._equals(t, value)

    def _check_size(self, value: Any) -> None:
        count = 0
        stack = [value]
        while stack:
            item = stack.pop()
            count += 1
            if count > self.max_operand_nodes:
                raise Unsupported("operand too large")
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())

    def _op_equals(self, t: Target, value: Any) -> Frag:
        return self._equals(t, value)

    def _compare(self, t: Target, op: str, value: Any) -> Frag:
        found = self._range(op, value)
        return FALSE if found is None else self.dialect.match(t, found)

    def _op_gt(self, t: Target, value: Any) -> Frag:
        return self._compare(t, "gt", value)

    def _op_gte(self, t: Target, value: Any) -> Frag:
        return self._compare(t, "gte", value)

    def _op_lt(self, t: Target, value: Any) -> Frag:
        return self._compare(t, "lt", value)

    def _op_lte(self, t: Target, value: Any) -> Frag:
        return self._compare(t, "lte", value)

    def _op_between(self, t: Target, value: Any) -> Frag:
        return self._compare(t, "between", value)

    def _op_in(self, t: Target, values: Any) -> Frag:
        groups: dict[str, list[Any]] = {}
        others: list[Frag] = []
        for value in values:
            k = kind(value)
            if k in _SCALARS:
                k, bound = self._bind(value)
                groups.setdefault(k, []).append(bound)
            else:
                others.append(self._equals(t, value))
        parts = [self.dialect.match(t, Points(k, tuple(dict.fromkeys(v) if k != "number" else v)))
                 for k, v in groups.items()]
        return disj([*parts, *others])

    def _contains_one(self, t: Target, item: Any) -> Frag:
        d = self.dialect
        k = kind(item)
        if k == "string":
            bound = d.string_param(item)
            return disj([d.substring(t, bound), d.list_has(t, Points("string", (bound,)))])
        if k in ("number", "bool"):
            k, bound = self._bind(item)
            return d.list_has(t, Points(k, (bound,)))
        if k in ("list", "dict"):
            raise Unsupported("structured list elements")
        return FALSE

    def _op_contains(self, t: Target, value: Any) -> Frag:
        items = value if isinstance(value, (list, tuple)) else (value,)
        if not items:
            return self.dialect.present(t)  # all() of nothing: any present value
        return conj(self._contains_one(t, item) for item in items)

    def _op_contains_any(self, t: Target, values: Any) -> Frag:
        return disj(self._contains_one(t, item) for item in values)

    def _op_startswith(self, t: Target, prefix: str) -> Frag:
        prefix = self.dialect.string_param(prefix)
        if not prefix:
            return self.dialect.is_kind(t, "string")
        upper = _successor(prefix)
        if upper is None:
            raise Unsupported("prefix of maximal code points")
        # the strings starting with prefix are exactly those in [prefix, successor)
        return self.dialect.match(t, Range("string", low=prefix, high=upper, high_inclusive=False))

    def _op_endswith(self, t: Target, suffix: str) -> Frag:
        suffix = self.dialect.string_param(suffix)
        if not suffix:
            return self.dialect.is_kind(t, "string")
        return self.dialect.endswith(t, suffix)

    def _regex(self, t: Target, pattern: str, caseless: bool) -> Frag:
        frag = self.dialect.regex(t, self.dialect.string_param(pattern), caseless)
        if frag is None:
            raise Unsupported("regular expressions")
        return frag

    def _op_matches(self, t: Target, pattern: str) -> Frag:
        return self._regex(t, pattern, False)

    def _op_matches_caseless(self, t: Target, pattern: str) -> Frag:
        return self._regex(t, pattern, True)

    def _op_search(self, t: Target, text: str) -> Frag:
        frag = self.dialect.search(t, self.dialect.string_param(text))
        if frag is None:
            raise Unsupported("full-text search")
        return frag

    def _date(self, t: Target, part: str, number: int) -> Frag:
        width = 4 if part == "year" else 2
        if not 0 <= number < 10 ** width:
            return FALSE  # the evaluator reads exactly four / two digits
        return self.dialect.date_part(t, part, number)

    def _op_year(self, t: Target, number: int) -> Frag:
        return self._date(t, "year", number)

    def _op_month(self, t: Target, number: int) -> Frag:
        return self._date(t, "month", number)

    def _op_day(self, t: Target, number: int) -> Frag:
        return self._date(t, "day", number)


def _intersect(ranges: Sequence[Range]) -> Range | None:
    """The range inside all of ``ranges`` (one kind); ``None`` when it is certainly empty."""
    low, low_incl, high, high_incl = None, True, None, True
    for r in ranges:
        if r.low is not None and (low is None or r.low > low or (r.low == low and not r.low_inclusive)):
            low, low_incl = r.low, r.low_inclusive
        if r.high is not None and (high is None or r.high < high or (r.high == high and not r.high_inclusive)):
            high, high_incl = r.high, r.high_inclusive
    if low is not None and high is not None and (low > high or (low == high and not (low_incl and high_incl))):
        return None
    return Range(ranges[0].kind, low, low_incl, high, high_incl)


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (code point order)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:
            code = 0xE000  # surrogates are never stored: skip them
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None
