"""SQLite's JSON1 spelling of doqu's operators (SQLite >= 3.38 for ``->``; here 3.40).

Facts this relies on, all checked by tests/ext/sqlite:

* ``json_extract`` returns SQL values: true/false become 1/0, arrays and
  objects become their JSON text (starting with ``[`` or ``{``), JSON null
  and a missing path become NULL;
* SQL orders NULL < numbers < text, compares an integer with a real exactly,
  and compares text with the BINARY collation (UTF-8 bytes = code points);
* so ``json_extract(data, p) = 5`` can only be wrong about booleans (when the
  operand is 0 or 1), and ``= 'x'`` only about arrays/objects (when the operand
  starts with ``[`` or ``{``). A ``json_type`` guard is added just then, so
  most conditions are answered by an expression index alone.

Paths made of identifiers are inlined as literals (``'$."age"'``): SQLite
matches an expression index only against the identical expression, and a
bound parameter never matches. Any other path is bound. SQLite 3.40 cannot
address a key containing ``"``, ``\\`` or a control character at all; such
conditions run in Python.
"""

from __future__ import annotations

import decimal
import re
from typing import Any, Sequence

from doqu.sql.dialect import Dialect, Frag, Points, Range, Step, Target, Unsupported, conj

__all__ = ["SQLiteDialect"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UNADDRESSABLE = re.compile(r'["\\\x00-\x1f]')
_INT64 = 2 ** 63


class SQLiteDialect(Dialect):
    name = "sqlite"
    placeholder = "?"
    kinds = {
        "null": ("null",), "bool": ("true", "false"), "number": ("integer", "real"),
        "string": ("text",), "list": ("array",), "dict": ("object",),
    }

    # -- paths ---------------------------------------------------------------
    def json_path(self, steps: Sequence[Step]) -> str:
        parts = ["$"]
        for step in steps:
            if isinstance(step, bool) or not isinstance(step, (str, int)):
                raise Unsupported(f"path step {step!r}")
            if isinstance(step, int):
                if step < 0:
                    raise Unsupported(f"path step {step!r}")
                parts.append(f"[{step}]")
            elif _UNADDRESSABLE.search(step):
                raise Unsupported(f"SQLite JSON paths cannot address the key {step!r}")
            else:
                parts.append(f'."{step}"')
        return "".join(parts)

    def path(self, steps: Sequence[Step]) -> Frag:
        text = self.json_path(steps)
        if all(isinstance(s, int) or _IDENTIFIER.match(s) for s in steps):
            return Frag(self.quote_literal(text))  # identical to an index's expression
        return self.param(text)

    # -- access --------------------------------------------------------------------
    def kind_of(self, t: Target) -> Frag:
        return f"json_type({t.doc}, " + t.path + ")"

    def value(self, t: Target, kind: str | None = None) -> Frag:
        return f"json_extract({t.doc}, " + t.path + ")"

    def json_text(self, t: Target) -> Frag:
        return f"({t.doc} -> " + t.path + ")"

    def present(self, t: Target) -> Frag:
        return self.value(t) + " IS NOT NULL"  # NULL for absent and JSON null only

    def absent(self, t: Target) -> Frag:
        return self.value(t) + " IS NULL"

    def list_length(self, t: Target) -> Frag:
        return f"json_array_length({t.doc}, " + t.path + ")"

    def dict_size(self, t: Target) -> Frag:
        return f"(SELECT count(*) FROM json_each({t.doc}, " + t.path + "))"

    # -- conditions ---------------------------------------------------------------------
    def match(self, t: Target, cond: Points | Range) -> Frag:
        value = self.value(t)
        if cond.kind == "bool":
            wanted = set(cond.values)
            if len(wanted) == 2:
                return self.is_kind(t, "bool")
            flag = wanted.pop()
            # the value test lets an index narrow to 0/1; the type test tells true from 1
            return conj([value + (" = 1" if flag else " = 0"),
                         self.kind_of(t) + (" = 'true'" if flag else " = 'false'")])
        parts: list[Frag] = []
        if isinstance(cond, Points):
            if len(cond.values) == 1:
                parts.append(value + " = " + self.param(cond.values[0]))
            else:
                parts.append(value + " IN (" + self.params(cond.values) + ")")
            if cond.kind == "number":
                guard = any(v == 0 or v == 1 for v in cond.values)
            else:
                guard = any(v[:1] in ("[", "{") for v in cond.values)
        else:
            if cond.low is not None:
                parts.append(value + (" >= " if cond.low_inclusive else " > ") + self.param(cond.low))
            elif cond.kind == "string":
                parts.append(value + " >= ''")  # numbers and booleans sort below all text
            if cond.high is not None:
                parts.append(value + (" <= " if cond.high_inclusive else " < ") + self.param(cond.high))
            elif cond.kind == "number":
                parts.append(value + " < ''")  # text (and arrays/objects) sorts above all numbers
            if cond.kind == "number":
                guard = cond.holds(0) or cond.holds(1)
            else:
                guard = cond.may_hold_prefix("[") or cond.may_hold_prefix("{")
        if guard:
            parts.append(self.is_kind(t, cond.kind))
        return conj(parts)

    def list_has(self, t: Target, cond: Points) -> Frag:
        if cond.kind == "bool":
            names = sorted({"true" if v else "false" for v in cond.values})
            test = Frag("doqu_e.type IN (" + ", ".join(f"'{n}'" for n in names) + ")")
        else:
            types = "'integer', 'real'" if cond.kind == "number" else "'text'"
            test = f"doqu_e.type IN ({types}) AND doqu_e.value IN (" + self.params(cond.values) + ")"
        exists = (f"EXISTS (SELECT 1 FROM json_each({t.doc}, " + t.path + ") AS doqu_e WHERE "
                  + test + ")")
        # json_each of a scalar yields the scalar itself: insist on an array
        return conj([self.is_kind(t, "list"), exists])

    def substring(self, t: Target, needle: str) -> Frag:
        # instr() is exact and case-sensitive; LIKE would be neither
        return conj([self.is_kind(t, "string"),
                     "instr(" + self.value(t) + ", " + self.param(needle) + ") > 0"])

    def endswith(self, t: Target, suffix: str) -> Frag:
        return conj([self.is_kind(t, "string"),
                     "substr(" + self.value(t) + ", " + self.param(-len(suffix)) + ") = "
                     + self.param(suffix)])

    def regex(self, t: Target, pattern: str, caseless: bool) -> Frag | None:
        if caseless:
            test = "doqu_regexp_caseless(" + self.param(pattern) + ", " + self.value(t) + ")"
        else:
            test = self.value(t) + " REGEXP " + self.param(pattern)
        return conj([self.is_kind(t, "string"), test])

    def search(self, t: Target, text: str) -> Frag | None:
        return conj([self.is_kind(t, "string"),
                     "doqu_search(" + self.param(text) + ", " + self.value(t) + ")"])

    def date_part(self, t: Target, part: str, number: int) -> Frag:
        digits = {"year": "[0-9]" * 4, "month": "[0-9]" * 2, "day": "[0-9]" * 2}
        digits[part] = f"{number:04d}" if part == "year" else f"{number:02d}"
        pattern = f"{digits['year']}-{digits['month']}-{digits['day']}*"
        # numbers, booleans and JSON text of arrays/objects never start with a digit + '-'
        return self.value(t) + " GLOB " + self.param(pattern)

    # -- ordering and paging ----------------------------------------------------------------
    def order_terms(self, t: Target) -> list[Frag]:
        # within a kind: numbers numerically, text by code point, false < true,
        # arrays/objects by their key-sorted JSON text as the evaluator does
        key = ("CASE WHEN " + self.is_kind(t, "dict", "list") + " THEN doqu_sortkey("
               + self.json_text(t) + ") ELSE " + self.value(t) + " END")
        return [self.rank(t), key]

    def limit(self, start: int, stop: int | None) -> Frag:
        count = -1 if stop is None else stop - start
        return Frag("LIMIT ") + self.param(count) + " OFFSET " + self.param(start)

    # -- operands ----------------------------------------------------------------------------
    def number_param(self, value: Any) -> Any:
        if isinstance(value, int):
            if not -_INT64 <= value < _INT64:
                raise Unsupported("an integer beyond 64 bits")
            return value
        if isinstance(value, decimal.Decimal):
            # stored numbers are read as doubles, so the operand is one too
            value = float(value)
        if not abs(value) < _INT64:  # also refuses inf/nan
            raise Unsupported("a number beyond 64-bit range")
        return float(value)
