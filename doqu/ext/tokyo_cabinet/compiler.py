"""doqu conditions -> Tokyo Cabinet table queries, without touching the engine.

Shared by the Tokyo Cabinet (ctypes) and Tokyo Tyrant (network) backends:
both run the same table queries over records laid out by
:mod:`doqu.ext.tokyo_cabinet.codec`. Nothing here imports ctypes or opens a
socket; the numbers below are Tokyo Cabinet's own (``tctdb.h``).

The interface
-------------

``Compiler(catalogue)`` (the :class:`~.codec.Catalogue` of the storage)

* ``supports(leaf) -> bool``: the leaf runs natively with *exactly* the
  answer of :mod:`doqu.query.evaluator` (use it as ``_supports``);
* ``compile(tree) -> Filter | None``: a fully supported condition tree as a
  union of conjunctions of TC conditions; ``None`` when the union would grow
  past ``max_disjuncts`` (filter in Python instead);
* ``compile_ordering(ordering) -> Ordering | None``: ``None`` unless TC can
  order exactly as the contract says (use it for ``_supports_ordering``);
* ``plan(filter, ordering=None, start=0, stop=None) -> QueryPlan``.

A **condition** is ``(column: bytes, op: int, expr: bytes)`` as
``tctdbqryaddcond`` takes it (``op`` may carry ``QCNEGATE``); ``b""`` is the
primary key. Neither column nor expression ever contains NUL.

A :class:`QueryPlan` is a list of :class:`Step` objects whose results are
concatenated, then cut to ``plan.window`` (a Python slice over the keys) if
it is not ``None``. A step is a union of conjunctions: build one TC query per
conjunction (``step.apply(query, i)`` adds its conditions, and to the first
query the order and limit), then run ``search()`` if there is one query, or
``metasearch(queries, MSUNION)`` (the first query's order and limit apply to
the union). The records are then fetched by key. Counting runs the plan of
the filter without order and counts keys.

Where Tokyo Cabinet's meaning differs from doqu's, the compiler corrects it:

* kinds: every comparison adds a check of the type column (``\\x01t:F``) so a
  number never matches a string and ``True`` never matches ``1``;
* negation: TC's ``QCNEGATE`` is the exact complement of one condition
  (records lacking the column match it too), so ``NOT`` is compiled by De
  Morgan into a union of single negated conditions;
* numbers: TC reads at most 16 digits into a long double, so a numeric
  condition runs natively only when the operand and every number the column
  has held are read exactly (catalogue letters ``i f g d``), and a float
  that is not exactly its decimal text (``g``) is never compared with a
  Decimal (Python compares their binary values);
* absent values sort last in TC in both directions; the contract puts them
  first ascending, so an ordering is a concatenation of steps: records
  without the field, then numbers, strings, booleans (reversed descending),
  each step ordered by TC with the order type of its kind;
* regular expressions: see :mod:`.regex`;
* full-text search (``search``) never uses TC's FTS operators (they fold
  accents and match substrings; doqu matches whole case-folded words): it
  runs natively as ``STRAND`` on the field's word column where the field has
  a search index (``ensure_index('bio:search')``), else in Python;
* nested paths use the shadow columns, lists only where the catalogue says
  the column never held a list, and so on (see :meth:`Compiler.leaf`).
"""

from __future__ import annotations

import decimal
import itertools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from doqu.errors import QueryError
from doqu.conversion import canonical
from doqu.query.conditions import And, Leaf, Node, Not, Or, parse_lookup
from doqu.query.evaluator import kind as value_kind

from . import codec
from .regex import translate

__all__ = [
    "TableQueryHooks", "INDEX_TYPES", "SEARCH_INDEX", "parse_index_spec",
    "Cond", "Conjunction", "Filter", "Segment", "Ordering", "Step", "QueryPlan", "Compiler",
    "describe_condition",
    "QCSTREQ", "QCSTRINC", "QCSTRBW", "QCSTREW", "QCSTRAND", "QCSTROR", "QCSTROREQ",
    "QCSTRRX", "QCNUMEQ", "QCNUMGT", "QCNUMGE", "QCNUMLT", "QCNUMLE", "QCNUMBT",
    "QCNUMOREQ", "QCFTSPH", "QCFTSAND", "QCFTSOR", "QCFTSEX", "QCNEGATE", "QCNOIDX",
    "QOSTRASC", "QOSTRDESC", "QONUMASC", "QONUMDESC", "MSUNION", "MSISECT", "MSDIFF",
    "ITLEXICAL", "ITDECIMAL", "ITTOKEN", "ITQGRAM",
]

# Tokyo Cabinet 1.4.48, tctdb.h
QCSTREQ, QCSTRINC, QCSTRBW, QCSTREW, QCSTRAND, QCSTROR, QCSTROREQ, QCSTRRX = range(8)
(QCNUMEQ, QCNUMGT, QCNUMGE, QCNUMLT, QCNUMLE, QCNUMBT, QCNUMOREQ,
 QCFTSPH, QCFTSAND, QCFTSOR, QCFTSEX) = range(8, 19)
QCNEGATE = 1 << 24
QCNOIDX = 1 << 25
QOSTRASC, QOSTRDESC, QONUMASC, QONUMDESC = range(4)
MSUNION, MSISECT, MSDIFF = range(3)
ITLEXICAL, ITDECIMAL, ITTOKEN, ITQGRAM = range(4)

_OP_NAMES = {
    QCSTREQ: "STREQ", QCSTRINC: "STRINC", QCSTRBW: "STRBW", QCSTREW: "STREW",
    QCSTRAND: "STRAND", QCSTROR: "STROR", QCSTROREQ: "STROREQ", QCSTRRX: "STRRX",
    QCNUMEQ: "NUMEQ", QCNUMGT: "NUMGT", QCNUMGE: "NUMGE", QCNUMLT: "NUMLT",
    QCNUMLE: "NUMLE", QCNUMBT: "NUMBT", QCNUMOREQ: "NUMOREQ", QCFTSPH: "FTSPH",
    QCFTSAND: "FTSAND", QCFTSOR: "FTSOR", QCFTSEX: "FTSEX",
}
_ORDER_NAMES = {QOSTRASC: "STRASC", QOSTRDESC: "STRDESC", QONUMASC: "NUMASC",
                QONUMDESC: "NUMDESC"}

Cond = tuple[bytes, int, bytes]
Conjunction = tuple[Cond, ...]

#: The catalogue record matches no positive condition on a data column, but
#: would match a purely negative conjunction: this keeps it out.
NOT_CATALOGUE: Cond = (b"", QCSTREQ | QCNEGATE, codec.CATALOGUE_KEY)


def describe_condition(cond: Cond) -> str:
    column, op, expr = cond
    name = _OP_NAMES.get(op & 0xFFFF, str(op & 0xFFFF))
    if op & QCNEGATE:
        name = "NOT " + name
    shown = "<primary key>" if column == b"" else _show(column)
    return f"{shown} {name} {_show(expr)}"


def _show(raw: bytes) -> str:
    text = codec.decode_text(raw)
    return repr(text)


@dataclass(frozen=True)
class Filter:
    """A union of conjunctions of TC conditions (``()`` matches nothing)."""

    disjuncts: tuple[Conjunction, ...]

    @classmethod
    def everything(cls) -> "Filter":
        return cls(((),))

    @classmethod
    def nothing(cls) -> "Filter":
        return cls(())

    @classmethod
    def conj(cls, *conds: Cond) -> "Filter":
        return cls((tuple(conds),))

    @property
    def is_nothing(self) -> bool:
        return not self.disjuncts

    def describe(self) -> str:
        if not self.disjuncts:
            return "(nothing)"
        parts = []
        for conj in self.disjuncts:
            parts.append("[" + ", ".join(describe_condition(c) for c in conj) + "]"
                         if conj else "[all records]")
        return " UNION ".join(parts)


@dataclass(frozen=True)
class Segment:
    """One kind's share of an ordering: extra conditions and TC's order."""

    conds: Conjunction
    order: tuple[bytes, int] | None


@dataclass(frozen=True)
class Ordering:
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Step:
    """A union of conjunctions, ordered and limited like TC does it."""

    conjunctions: tuple[Conjunction, ...]
    order: tuple[bytes, int] | None = None
    limit: int = -1
    skip: int = 0

    def apply(self, query: Any, index: int) -> Any:
        """Add conjunction ``index`` to ``query`` (plus order/limit to the first)."""
        for column, op, expr in self.conjunctions[index]:
            query.addcond(column, op, expr)
        if index == 0:
            if self.order is not None:
                query.setorder(*self.order)
            if self.limit >= 0 or self.skip:
                query.setlimit(self.limit, self.skip)
        return query

    def describe(self) -> str:
        text = Filter(self.conjunctions).describe()
        if self.order is not None:
            text += f" ORDER BY {_show(self.order[0])} {_ORDER_NAMES[self.order[1]]}"
        if self.limit >= 0 or self.skip:
            text += f" LIMIT {self.limit} SKIP {self.skip}"
        return text


@dataclass(frozen=True)
class QueryPlan:
    steps: tuple[Step, ...]
    #: A Python slice of the concatenated keys, when TC cannot cut them itself.
    window: tuple[int, int | None] | None = None

    def describe(self) -> str:
        if not self.steps:
            return "nothing can match (no query runs)"
        lines = [s.describe() for s in self.steps]
        text = lines[0] if len(lines) == 1 else " THEN ".join(f"({line})" for line in lines)
        if self.window is not None:
            start, stop = self.window
            text += f"; keys sliced [{start}:{'' if stop is None else stop}] in Python"
        return text


class _TooComplex(Exception):
    pass


_NUMBER_TEXT = re.compile(rb"-?[0-9]+(\.[0-9]+)?\Z")
_TOKEN_UNSAFE = re.compile(rb"[\x00-\x20,]")


class Compiler:
    """Translate doqu's condition trees for one storage's catalogue."""

    def __init__(self, catalogue: codec.Catalogue, max_disjuncts: int = 16) -> None:
        self.catalogue = catalogue
        self.max_disjuncts = max_disjuncts

    # -- public ------------------------------------------------------------
    def supports(self, leaf: Leaf) -> bool:
        try:
            return self.leaf(leaf) is not None
        except _TooComplex:
            return False

    def compile(self, tree: Node | None) -> Filter | None:
        try:
            return self._node(tree)
        except _TooComplex:
            return None

    def compile_ordering(self, ordering: Sequence[tuple[tuple[str, ...], bool]]) -> Ordering | None:
        """Native ordering by one field whose kinds TC can order exactly."""
        if len(ordering) != 1:
            return None
        path, descending = ordering[0]
        ref = self._ref(path)
        if ref is None or (ref.nested and "x" in self.catalogue.kinds(ref.root)):
            return None
        kinds = self.catalogue.kinds(ref.key)
        if kinds & set("IFDlmxne") or not self.catalogue.known:
            return None
        if "g" in kinds and "d" in kinds:
            return None
        segments = [Segment(self._absent(ref), None)]
        if kinds & set("ifgd"):
            segments.append(Segment((self._value_present(ref), self._is_number(ref)),
                                    (ref.value, QONUMDESC if descending else QONUMASC)))
        if kinds & set("suz"):
            segments.append(Segment((self._value_present(ref), *self._is_string(ref)),
                                    (ref.value, QOSTRDESC if descending else QOSTRASC)))
        if "b" in kinds:
            segments.append(Segment((self._value_present(ref), self._is_bool(ref)),
                                    (ref.value, QOSTRDESC if descending else QOSTRASC)))
        if descending:
            segments.reverse()
        return Ordering(tuple(segments))

    def plan(self, filt: Filter, ordering: Ordering | None = None, start: int = 0,
             stop: int | None = None) -> QueryPlan:
        """Steps that yield the keys of ``filt`` in ``ordering``, cut to ``[start:stop]``."""
        if filt.is_nothing or (stop is not None and stop <= start):
            return QueryPlan(())
        segments = ordering.segments if ordering is not None else (Segment((), None),)
        steps = []
        for segment in segments:
            conjunctions = []
            for conj in filt.disjuncts:
                merged = _simplify(conj + segment.conds)
                if merged is None:
                    continue
                conjunctions.append(_exclude_catalogue(merged))
            if conjunctions:
                steps.append(Step(tuple(conjunctions), segment.order))
        if not steps:
            return QueryPlan(())
        if len(steps) == 1:
            limit = -1 if stop is None else stop - start
            return QueryPlan((Step(steps[0].conjunctions, steps[0].order, limit, start),))
        if stop is None:
            return QueryPlan(tuple(steps), (start, None) if start else None)
        # every step needs at most ``stop`` keys; Python cuts the window
        capped = tuple(Step(s.conjunctions, s.order, stop, 0) for s in steps)
        return QueryPlan(capped, (start, stop))

    # -- trees ---------------------------------------------------------------
    def _node(self, node: Node | None) -> Filter:
        if node is None:
            return Filter.everything()
        if isinstance(node, Leaf):
            compiled = self.leaf(node)
            if compiled is None:
                raise _TooComplex(f"leaf {node!r} is not supported")
            return compiled
        if isinstance(node, And):
            result = Filter.everything()
            for child in node.children:
                result = self._and(result, self._node(child))
            return result
        if isinstance(node, Or):
            disjuncts: list[Conjunction] = []
            for child in node.children:
                disjuncts.extend(self._node(child).disjuncts)
            return self._checked(disjuncts)
        if isinstance(node, Not):
            return self._not(self._node(node.child))
        raise TypeError(f"not a condition node: {node!r}")

    def _checked(self, disjuncts: Iterable[Conjunction]) -> Filter:
        unique = list(dict.fromkeys(disjuncts))
        if () in unique:
            return Filter.everything()
        if len(unique) > self.max_disjuncts:
            raise _TooComplex("too many alternatives for native queries")
        return Filter(tuple(unique))

    def _and(self, left: Filter, right: Filter) -> Filter:
        if len(left.disjuncts) * len(right.disjuncts) > self.max_disjuncts * 4:
            raise _TooComplex("too many alternatives for native queries")
        out = []
        for a, b in itertools.product(left.disjuncts, right.disjuncts):
            merged = _simplify(a + b)
            if merged is not None:
                out.append(merged)
        return self._checked(out)

    def _not(self, inner: Filter) -> Filter:
        # not (c1 and c2) or (c3) = (not c1 or not c2) and (not c3)
        result = Filter.everything()
        for conj in inner.disjuncts:
            if not conj:
                return Filter.nothing()
            result = self._and(result, Filter(tuple((_negate(c),) for c in conj)))
        return result

    # -- leaves ----------------------------------------------------------------
    def leaf(self, leaf: Leaf) -> Filter | None:
        """The native filter of one condition, or ``None`` if Python must decide it."""
        ref = self._ref(leaf.path)
        if ref is None:
            return None
        if ref.nested and "x" in self.catalogue.kinds(ref.root):
            return None     # some records' shadow columns were cut short
        op, value = leaf.op, leaf.value
        if op == "exists":
            present = self._present(ref)
            return Filter.conj(present if value else _negate(present))
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            return None
        return handler(ref, value)

    def _op_equals(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        return self._equal_to(ref, _canonical(value))

    def _equal_to(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        kind = value_kind(value)
        if kind == "string":
            return self._string_equals(ref, value)
        if kind == "bool":
            return Filter.conj((ref.value, QCSTREQ, b"true" if value else b"false"),
                               self._is_bool(ref))
        if kind == "number":
            text = self._number_operand(ref, value)
            if text is None:
                return None
            return Filter.conj((ref.value, QCNUMEQ, text), self._is_number(ref))
        return None   # lists and dicts: JSON text is not canonical enough to compare

    def _string_equals(self, ref: codec.ColumnRef, value: str) -> Filter | None:
        if self._raw_anomalies(ref):
            return None
        expr = codec.escape_operand(value)
        conds: list[Cond] = [(ref.value, QCSTREQ, expr)]
        if ref.nested or _could_be_other_kind(expr):
            conds.extend(self._is_string(ref))
        return Filter.conj(*conds)

    def _op_gt(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        return self._compare(ref, QCNUMGT, value)

    def _op_gte(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        return self._compare(ref, QCNUMGE, value)

    def _op_lt(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        return self._compare(ref, QCNUMLT, value)

    def _op_lte(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        return self._compare(ref, QCNUMLE, value)

    def _compare(self, ref: codec.ColumnRef, op: int, value: Any) -> Filter | None:
        value = _canonical(value)
        kind = value_kind(value)
        if kind == "number":
            text = self._number_operand(ref, value)
            if text is None:
                return None
            return Filter.conj((ref.value, op, text), self._is_number(ref))
        if kind == "string":
            return None      # TC has no string range conditions
        return Filter.nothing()   # order comparisons hold for numbers and strings only

    def _op_between(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        low, high = (_canonical(v) for v in value)
        kinds = {value_kind(low), value_kind(high)}
        if kinds == {"number"}:
            if low > high:
                return Filter.nothing()
            low_text = self._number_operand(ref, low)
            high_text = self._number_operand(ref, high)
            if low_text is None or high_text is None:
                return None
            return Filter.conj((ref.value, QCNUMBT, low_text + b" " + high_text),
                               self._is_number(ref))
        if kinds == {"string"}:
            return None
        return Filter.nothing()

    def _op_in(self, ref: codec.ColumnRef, values: Any) -> Filter | None:
        items = [_canonical(v) for v in values]
        if not items:
            return Filter.nothing()
        strings = [v for v in items if value_kind(v) == "string"]
        numbers = [v for v in items if value_kind(v) == "number"]
        bools = sorted({v for v in items if value_kind(v) == "bool"})
        if len(strings) + len(numbers) + len(bools) != len(items):
            return None   # lists or dicts
        disjuncts: list[Conjunction] = []
        if strings:
            if self._raw_anomalies(ref):
                return None
            exprs = sorted({codec.escape_operand(s) for s in strings})
            if len(exprs) > 1 and not any(_TOKEN_UNSAFE.search(e) for e in exprs):
                conds: list[Cond] = [(ref.value, QCSTROREQ, b",".join(exprs))]
                if ref.nested or any(_could_be_other_kind(e) for e in exprs):
                    conds.extend(self._is_string(ref))
                disjuncts.append(tuple(conds))
            else:
                for s in sorted(set(strings)):
                    filt = self._string_equals(ref, s)
                    if filt is None:
                        return None
                    disjuncts.extend(filt.disjuncts)
        if numbers:
            texts = []
            for number in numbers:
                text = self._number_operand(ref, number)
                if text is None:
                    return None
                texts.append(text)
            op, expr = (QCNUMEQ, texts[0]) if len(texts) == 1 else (
                QCNUMOREQ, b" ".join(sorted(set(texts))))
            disjuncts.append(((ref.value, op, expr), self._is_number(ref)))
        if bools:
            expr = b",".join(b"true" if b else b"false" for b in bools)
            disjuncts.append(((ref.value, QCSTROREQ if len(bools) > 1 else QCSTREQ, expr),
                              self._is_bool(ref)))
        return self._checked(disjuncts)

    def _op_contains(self, ref: codec.ColumnRef, value: Any) -> Filter | None:
        items = value if isinstance(value, (list, tuple)) else (value,)
        result = Filter.everything() if items else Filter.conj(self._present(ref))
        for item in items:
            part = self._contains_one(ref, _canonical(item))
            if part is None:
                return None
            result = self._and(result, part)
        return result

    def _op_contains_any(self, ref: codec.ColumnRef, values: Any) -> Filter | None:
        disjuncts: list[Conjunction] = []
        for item in values:
            part = self._contains_one(ref, _canonical(item))
            if part is None:
                return None
            disjuncts.extend(part.disjuncts)
        return self._checked(disjuncts)

    def _contains_one(self, ref: codec.ColumnRef, item: Any) -> Filter | None:
        kinds = self.catalogue.kinds(ref.key)
        if "l" in kinds or self._raw_anomalies(ref):
            return None     # an element of a list: only Python can tell
        if not isinstance(item, str):
            return Filter.nothing()   # a string contains strings only, and no lists here
        return self._substring(ref, QCSTRINC, item)

    def _op_startswith(self, ref: codec.ColumnRef, value: str) -> Filter | None:
        if self._raw_anomalies(ref):
            return None
        return self._substring(ref, QCSTRBW, value)

    def _op_endswith(self, ref: codec.ColumnRef, value: str) -> Filter | None:
        if self._raw_anomalies(ref):
            return None
        return self._substring(ref, QCSTREW, value)

    def _substring(self, ref: codec.ColumnRef, op: int, text: str) -> Filter | None:
        raw = codec.encode_text(text)
        if any(b < 3 for b in raw):
            return None     # could match inside the string escape
        if not raw:
            return Filter.conj(self._value_present(ref), *self._is_string(ref))
        conds: list[Cond] = [(ref.value, op, raw)]
        conds.extend(self._is_string(ref))
        return Filter.conj(*conds)

    def _op_matches(self, ref: codec.ColumnRef, pattern: str) -> Filter | None:
        return self._regex(ref, pattern, caseless=False)

    def _op_matches_caseless(self, ref: codec.ColumnRef, pattern: str) -> Filter | None:
        return self._regex(ref, pattern, caseless=True)

    def _regex(self, ref: codec.ColumnRef, pattern: str, caseless: bool) -> Filter | None:
        kinds = self.catalogue.kinds(ref.key)
        if "n" in kinds:
            return None
        expr = translate(pattern, caseless, kinds)
        if expr is None:
            return None
        return Filter.conj((ref.value, QCSTRRX, expr), *self._is_string(ref))

    def _op_search(self, ref: codec.ColumnRef, text: str) -> Filter | None:
        """Every word of ``text`` among the field's words: the word column, if it has one."""
        if ref.nested or ref.value not in self.catalogue.search:
            return None     # TC's FTS matches accent-folded substrings, not words
        if self._raw_anomalies(ref):
            return None
        wanted = codec.words_text(text)
        if not wanted:
            return Filter.conj(self._value_present(ref), *self._is_string(ref))
        if _TOKEN_UNSAFE.search(wanted.replace(b" ", b"")):
            return None
        return Filter.conj((codec.WORDS_PREFIX + ref.value, QCSTRAND, wanted))

    def _op_year(self, ref: codec.ColumnRef, value: int) -> Filter | None:
        return self._date_part(ref, value, 0)

    def _op_month(self, ref: codec.ColumnRef, value: int) -> Filter | None:
        return self._date_part(ref, value, 1)

    def _op_day(self, ref: codec.ColumnRef, value: int) -> Filter | None:
        return self._date_part(ref, value, 2)

    def _date_part(self, ref: codec.ColumnRef, value: int, index: int) -> Filter | None:
        kinds = self.catalogue.kinds(ref.key)
        if "u" in kinds or "n" in kinds:
            return None     # Python's \d also takes other scripts' digits
        width = 4 if index == 0 else 2
        if not 0 <= value < 10 ** width:
            return Filter.nothing()
        parts = ["[0-9]{4}", "[0-9]{2}", "[0-9]{2}"]
        parts[index] = f"{value:0{width}d}"
        expr = ("^" + "-".join(parts)).encode("ascii")
        return Filter.conj((ref.value, QCSTRRX, expr), *self._is_string(ref))

    # -- pieces --------------------------------------------------------------------
    def _ref(self, path: Sequence[str]) -> codec.ColumnRef | None:
        return codec.column_ref(tuple(path))

    def _raw_anomalies(self, ref: codec.ColumnRef) -> bool:
        """Values written by other programs that TC's C-string operators misread."""
        kinds = self.catalogue.kinds(ref.key)
        return "n" in kinds or "e" in kinds

    def _number_operand(self, ref: codec.ColumnRef, value: Any) -> bytes | None:
        """The operand's text if TC compares it exactly with every number of the column."""
        operand_class = codec.number_class(value)
        if operand_class in "IFD":
            return None
        kinds = self.catalogue.kinds(ref.key)
        if kinds & set("IFD"):
            return None
        if operand_class == "g" and "d" in kinds:
            return None
        if isinstance(value, decimal.Decimal) and "g" in kinds:
            return None
        return codec.number_text(value).encode("ascii")

    def _present(self, ref: codec.ColumnRef) -> Cond:
        if ref.nested:
            return (ref.type, QCSTRINC, b"")
        return (ref.value, QCSTRINC, b"")

    def _value_present(self, ref: codec.ColumnRef) -> Cond:
        return (ref.value, QCSTRINC, b"")

    def _absent(self, ref: codec.ColumnRef) -> Conjunction:
        return (_negate(self._present(ref)),)

    def _is_number(self, ref: codec.ColumnRef) -> Cond:
        return (ref.type, QCSTROREQ, codec.NUMBER_MARKERS)

    def _is_bool(self, ref: codec.ColumnRef) -> Cond:
        return (ref.type, QCSTREQ, codec.M_BOOL)

    def _is_string(self, ref: codec.ColumnRef) -> tuple[Cond, ...]:
        if ref.nested:
            return ((ref.type, QCSTROREQ, codec.NESTED_STRING_MARKERS),)
        return ((ref.type, QCSTROREQ | QCNEGATE, codec.NON_STRING_MARKERS),)


def _canonical(value: Any) -> Any:
    """An operand in the records' canonical form (dates as text, documents as keys...)."""
    return canonical(list(value) if isinstance(value, tuple) else value)


def _negate(cond: Cond) -> Cond:
    column, op, expr = cond
    return (column, op ^ QCNEGATE, expr)


def _could_be_other_kind(expr: bytes) -> bool:
    """Could a number, boolean, list or dict have exactly this column text?"""
    return (expr in (b"true", b"false") or _NUMBER_TEXT.match(expr) is not None
            or expr[:1] in (b"[", b"{"))


def _simplify(conj: Conjunction) -> Conjunction | None:
    """Drop repeated conditions; ``None`` if a condition meets its own negation."""
    unique = tuple(dict.fromkeys(conj))
    seen = set(unique)
    for cond in unique:
        if _negate(cond) in seen:
            return None
    return unique


def _exclude_catalogue(conj: Conjunction) -> Conjunction:
    """Keep the catalogue record out of conjunctions it could match."""
    if any(not op & QCNEGATE and not column.startswith(codec.CATALOGUE_KIND_PREFIX)
           and column != codec.CATALOGUE_FORMAT_COLUMN and column != b""
           for column, op, _ in conj):
        return conj
    return conj + (NOT_CATALOGUE,)


#: Index type names accepted by ``ensure_index('field:type')``; ``search`` is
#: doqu's word column with a TC token index (native ``search``).
INDEX_TYPES = {"lexical": ITLEXICAL, "decimal": ITDECIMAL, "token": ITTOKEN, "qgram": ITQGRAM,
               "search": -1}
SEARCH_INDEX = -1
_NUMERIC_TYPES = {int, float}


def parse_index_spec(spec: Any, structure: Mapping[str, Any] | None = None
                      ) -> tuple[tuple[str, ...], int | None]:
    """``'field'`` or ``'field:type'`` → (path, TC index type or None to choose by values)."""
    if not isinstance(spec, str) or not spec:
        raise QueryError(f"an index is given by a field name, got {spec!r}")
    name, _, type_name = spec.partition(":")
    path, op = parse_lookup(name, structure)
    if op != "equals" or name.endswith("__equals"):
        raise QueryError(f"an index is given by a field name, not a lookup: {spec!r}")
    if type_name:
        if type_name not in INDEX_TYPES:
            raise QueryError(f"unknown index type {type_name!r} in {spec!r}; known: "
                             f"{', '.join(INDEX_TYPES)}")
        return path, INDEX_TYPES[type_name]
    if structure is not None and len(path) == 1 and structure.get(path[0]) in _NUMERIC_TYPES:
        return path, ITDECIMAL
    return path, None


class TableQueryHooks:
    """The query hooks shared by every engine that runs this compiler's plans
    (Tokyo Cabinet directly, Tokyo Tyrant over the network); ``storage`` must
    offer ``_compiler()``."""

    storage: Any

    def _supports(self, leaf: Leaf) -> bool:
        return self.storage._compiler().supports(leaf)

    def _supports_ordering(self, ordering: Any) -> bool:
        return self.storage._compiler().compile_ordering(ordering) is not None

    def _native_plan(self, tree: Node | None, ordering: Any = (), start: int = 0,
                     stop: int | None = None) -> QueryPlan | None:
        compiler = self.storage._compiler()
        filt = compiler.compile(tree)
        if filt is None:
            return None
        order = compiler.compile_ordering(ordering) if ordering else None
        if ordering and order is None:
            return None
        return compiler.plan(filt, order, start, stop)
