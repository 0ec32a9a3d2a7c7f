"""PostgreSQL's spelling of doqu's operators, over a ``jsonb`` column.

A condition reads the field through two expressions, which are also exactly
what :meth:`PostgresDialect.index_expressions` indexes:

* ``J``: the jsonb value, ``"data" -> 'address' -> 'city'`` (SQL NULL when
  absent). jsonb equality and order are doqu's for numbers (``1 = 1.0``,
  exact ``numeric``, never a string or a boolean); equality never crosses
  kinds (``true`` is not ``1``, ``"1"`` is not ``1``) and compares arrays and
  objects element by element and key by key. ``J @> '["x"]'`` holds exactly
  when J is an array with the element ``"x"`` (containment looks into
  top-level elements only).
* ``T``: ``("data" -> 'address' ->> 'city') COLLATE "C"``, the text of the
  value, compared by code point: strings compare as strings here.

Each comparison is followed by its kind guard, ``jsonb_typeof(J) = 'number'``
(or ``'string'``): after the value test it costs next to nothing, it keeps
kinds from crossing (T of ``17`` is ``'17'``), and it is the predicate of the
partial indexes, which therefore hold values of their kind only. Measured on
100,000 records, ``T = 'x' AND guard`` costs what ``data->>'x' = 'x'`` does,
and ``J`` ranges about 1.5 times an integer cast; expressions that compute a
typed value first (``CASE WHEN jsonb_typeof(J) = ... THEN ... END``) cost two
to three times as much on every row.

Paths made of identifiers are inlined as literals, so the planner can match
the expressions against expression indexes; any other key is bound. Regular
expressions, ``search`` and ``year``/``month``/``day`` are translated by
:mod:`doqu.ext.postgres.regex` into ARE patterns that match exactly what
Python's ``re`` would.
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Any, Callable, Sequence

from doqu.ext.postgres import regex as rx
from doqu.ext.postgres.codec import encode
from doqu.errors import ValidationError
from doqu.sql.dialect import Dialect, Frag, Points, Range, Step, Target, Unsupported, conj, disj, join

__all__ = ["PostgresDialect"]

_IDENTIFIER = re.compile(r"[^\W\d]\w*\Z")
_EXACT_FROM = 2.0 ** 53


def _written(value: float) -> decimal.Decimal:
    """The decimal value doqu writes for a float: its shortest repr, or from 2**53 up (where
    every float is an integer) its exact value."""
    if abs(value) >= _EXACT_FROM:
        return decimal.Decimal(value)
    return decimal.Decimal(repr(value))


def _check_decimals(value: Any, check: Callable[[Any], Any]) -> None:
    """Raise Unsupported if a Decimal inside ``value`` would compare differently in SQL."""
    if isinstance(value, decimal.Decimal):
        check(value)
    elif isinstance(value, dict):
        for item in value.values():
            _check_decimals(item, check)
    elif isinstance(value, list):
        for item in value:
            _check_decimals(item, check)


class PostgresDialect(Dialect):
    name = "postgres"
    placeholder = "%s"
    kinds = {
        "null": ("null",), "bool": ("boolean",), "number": ("number",),
        "string": ("string",), "list": ("array",), "dict": ("object",),
    }

    def __init__(self, check_pattern: Callable[[str], bool] | None = None) -> None:
        #: Asks the server whether it accepts a translated pattern (cached by the storage).
        self.check_pattern = check_pattern

    # -- names and literals ---------------------------------------------------
    def quote_ident(self, name: str) -> str:
        if not isinstance(name, str) or not name or "\x00" in name or "%" in name:
            raise ValueError(f"invalid PostgreSQL identifier {name!r}")
        return super().quote_ident(name)

    def quote_literal(self, text: str) -> str:
        if "\x00" in text or "%" in text or "\\" in text:
            raise Unsupported("a literal that is safer bound")
        return "'" + text.replace("'", "''") + "'"

    # -- paths ------------------------------------------------------------------
    def json_path(self, steps: Sequence[Step]) -> list[str]:
        for step in steps:
            if isinstance(step, bool) or not isinstance(step, (str, int)):
                raise Unsupported(f"path step {step!r}")
            if isinstance(step, str) and "\x00" in step:
                raise Unsupported("a key with NUL")
        return [str(s) for s in steps]

    def _step(self, step: Step) -> Frag:
        if isinstance(step, int):
            return Frag(str(int(step)))
        if _IDENTIFIER.match(step):
            return Frag(self.quote_literal(step))  # the same text as an index's expression
        return Frag("") + self.param(step) + "::text"

    def path(self, steps: Sequence[Step]) -> Frag:
        """The arrows after the document column: ``-> 'address' -> 'city'`` (see :meth:`jsonb`)."""
        self.json_path(steps)
        out = Frag("")
        for step in steps:
            out = out + " -> " + self._step(step)
        return out

    def jsonb(self, t: Target) -> Frag:
        """J: the jsonb value at the path (NULL when absent)."""
        return Frag("(" + t.doc) + t.path + ")"

    def text(self, t: Target) -> Frag:
        """The text of a scalar at the path (``->>`` on the last step)."""
        *head, last = t.steps
        prefix = self.path(head)
        return Frag("(" + t.doc) + prefix + " ->> " + self._step(last) + ")"

    # -- access ---------------------------------------------------------------------
    def kind_of(self, t: Target) -> Frag:
        return Frag("jsonb_typeof") + self.jsonb(t)

    def guard(self, t: Target, kind: str) -> Frag:
        """The kind test that follows every comparison (and defines the partial indexes)."""
        return self.kind_of(t) + f" = '{self.kinds[kind][0]}'"

    def string(self, t: Target) -> Frag:
        """T: the value's text under the binary collation (meaningful for strings only)."""
        return Frag("(") + self.text(t) + ' COLLATE "C")'

    def value(self, t: Target, kind: str | None = None) -> Frag:
        return self.string(t) if kind == "string" else self.jsonb(t)

    def json_text(self, t: Target) -> Frag:
        return self.jsonb(t)  # decoded by the storage's jsonb loader

    def present(self, t: Target) -> Frag:
        return self.kind_of(t) + " <> 'null'"  # NULL when absent: false

    def absent(self, t: Target) -> Frag:
        return Frag("coalesce(") + self.kind_of(t) + ", 'null') = 'null'"

    def list_length(self, t: Target) -> Frag:
        j = self.jsonb(t)
        return "(CASE WHEN jsonb_typeof" + j + " = 'array' THEN jsonb_array_length" + j + " END)"

    def dict_size(self, t: Target) -> Frag:
        j = self.jsonb(t)
        return ("(CASE WHEN jsonb_typeof" + j + " = 'object' THEN (SELECT count(*) FROM jsonb_object_keys"
                + j + ") END)")

    # -- conditions ---------------------------------------------------------------------
    def _jsonb_param(self, value: Any) -> Frag:
        try:
            text = encode(value)
        except ValidationError:
            raise Unsupported("NUL in an operand") from None
        return self.param(text) + "::jsonb"

    def match(self, t: Target, cond: Points | Range) -> Frag:
        if cond.kind == "bool":
            assert isinstance(cond, Points)
            wanted = set(cond.values)
            if len(wanted) == 2:
                return self.is_kind(t, "bool")
            literal = "'true'::jsonb" if wanted.pop() else "'false'::jsonb"
            # @> first: a GIN index on the field can find the rows (J = x alone cannot)
            return self.jsonb(t) + f" @> {literal} AND " + self.jsonb(t) + f" = {literal}"
        if cond.kind == "number":
            value = self.jsonb(t)

            def bound(v: Any) -> Frag:
                return self.param(str(v)) + "::jsonb"  # a Decimal's text is a JSON number
        else:
            value = self.string(t)

            def bound(v: Any) -> Frag:
                return self.param(v)

        parts: list[Frag] = []
        if isinstance(cond, Points):
            if len(cond.values) == 1:
                parts.append(value + " = " + bound(cond.values[0]))
            else:
                parts.append(value + " IN (" + join(", ", [bound(v) for v in cond.values]) + ")")
        else:
            if cond.low is not None:
                parts.append(value + (" >= " if cond.low_inclusive else " > ") + bound(cond.low))
            if cond.high is not None:
                parts.append(value + (" <= " if cond.high_inclusive else " < ") + bound(cond.high))
        return conj([*parts, self.guard(t, cond.kind)])

    def equals_structure(self, t: Target, value: Any) -> Frag | None:
        # jsonb's own equality is structural and kind-exact; @> first lets a GIN index find rows
        _check_decimals(value, self.number_param)
        operand = self._jsonb_param(value)
        return self.jsonb(t) + " @> " + operand + " AND " + self.jsonb(t) + " = " + operand

    def list_has(self, t: Target, cond: Points) -> Frag:
        # [x] is contained in J exactly when J is an array with a top-level element equal to x
        return disj(self.jsonb(t) + " @> " + self._jsonb_param([v]) for v in cond.values)

    def substring(self, t: Target, needle: str) -> Frag:
        return conj([Frag("strpos(") + self.string(t) + ", " + self.param(needle) + ") > 0",
                     self.guard(t, "string")])

    def endswith(self, t: Target, suffix: str) -> Frag:
        return conj([Frag("right(") + self.string(t) + f", {len(suffix)}) = " + self.param(suffix),
                     self.guard(t, "string")])

    def _pattern(self, t: Target, pattern: str, guard: bool = True) -> Frag:
        if self.check_pattern is not None and not self.check_pattern(pattern):
            raise Unsupported("the server refuses the translated pattern")
        test = self.string(t) + " ~ " + self.param(pattern)
        return conj([test, self.guard(t, "string")]) if guard else test

    def regex(self, t: Target, pattern: str, caseless: bool) -> Frag | None:
        try:
            return self._pattern(t, rx.translate(pattern, caseless))
        except Unsupported:
            return None

    def search(self, t: Target, text: str) -> Frag | None:
        try:
            patterns = rx.search_patterns(text)
        except Unsupported:
            return None
        if not patterns:
            return self.is_kind(t, "string")  # no words wanted: every string has them all
        return conj([*(self._pattern(t, p, guard=False) for p in patterns), self.guard(t, "string")])

    def date_part(self, t: Target, part: str, number: int) -> Frag:
        # no guard: the text of a number, boolean, array or object never starts "dddd-"
        return self._pattern(t, rx.date_pattern(part, number), guard=False)

    # -- ordering and paging ----------------------------------------------------------------
    def order_terms(self, t: Target) -> list[Frag]:
        # kinds by rank; strings by code point; numbers (numerically), booleans (false < true),
        # arrays and objects by jsonb's order (the query re-sorts arrays/objects as the
        # evaluator does)
        strings = Frag("CASE WHEN ") + self.guard(t, "string") + " THEN " + self.string(t) + " END"
        return [self.rank(t), strings, self.jsonb(t)]

    # -- operands ----------------------------------------------------------------------------
    def number_param(self, value: Any) -> Any:
        """The exact decimal to compare with, chosen so that numeric comparisons give the
        evaluator's answer on what doqu writes (ints exactly; floats as their shortest repr,
        or their exact value from 2**53 up; see :mod:`doqu.ext.postgres.codec`)."""
        if isinstance(value, bool):
            raise Unsupported("bool is not a number")
        if isinstance(value, int):
            return decimal.Decimal(value)
        if isinstance(value, decimal.Decimal):
            # compared with a stored float it compares as a float (the contract): fine when
            # the Decimal is what that float is written as, else Python decides
            as_float = float(value)
            if not math.isfinite(as_float):
                raise Unsupported("a Decimal beyond floats")
            if value == _written(as_float):
                return value
            raise Unsupported("a Decimal with digits a float does not keep")
        if not math.isfinite(value):
            raise Unsupported("not a finite number")
        return _written(float(value))

    # -- index expressions ---------------------------------------------------------------------
    def index_expressions(self, doc: str, steps: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The expressions conditions compare, with the guard partial indexes use: by kind."""
        t = self.target(doc, steps)
        out = {}
        for kind, expr, guard in (("number", self.jsonb(t), self.guard(t, "number")),
                                  ("string", self.string(t), self.guard(t, "string")),
                                  ("jsonb", self.jsonb(t), Frag(""))):
            if expr.params or guard.params:
                raise Unsupported("an index on a path that is not made of identifiers")
            out[kind] = (expr.sql, guard.sql)
        return out

    def upsert(self, table: str, key_column: str = "key", data_column: str = "data") -> str:
        return (f"INSERT INTO {table} ({self.quote_ident(key_column)}, {self.quote_ident(data_column)}) "
                f"VALUES (%s, %s::jsonb) ON CONFLICT ({self.quote_ident(key_column)}) DO UPDATE "
                f"SET {self.quote_ident(data_column)} = EXCLUDED.{self.quote_ident(data_column)}")

