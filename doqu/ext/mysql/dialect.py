"""MariaDB's spelling of doqu's operators, over a LONGTEXT column of JSON.

Facts this relies on (MariaDB 10.11; checked by tests/ext/mysql):

* ``JSON_VALUE(data, p)`` is the unescaped text of a scalar (numbers as
  written, ``true``/``false`` as ``1``/``0``) and NULL for arrays, objects,
  JSON null and absent paths; ``JSON_QUERY`` is the reverse (arrays and
  objects only). Both are cheap path lookups; ``JSON_TYPE(JSON_EXTRACT(..))``
  costs about three times as much, so it is used as a *guard* placed after
  the value test (MariaDB evaluates ``AND`` left to right and stops early),
  and only where the value test alone could match another kind.
* Default collations ignore case and trailing spaces; every string
  comparison here uses ``utf8mb4_nopad_bin`` (code point order, no padding).
* Numbers compare as DOUBLE. Operands are refused (the condition then runs in
  Python) unless the double comparison is exact: integers and floats below
  2**53 in magnitude, Decimals that are exactly a double.
* ``REGEXP`` is PCRE2 with Unicode properties; patterns are translated by
  :mod:`doqu.ext.mysql.regex` or run in Python.
* ``JSON_OVERLAPS(array, candidates)`` compares top-level elements exactly
  (numbers numerically, strings by their JSON text), unlike ``JSON_CONTAINS``,
  which also looks inside nested arrays.
* ``JSON_EXTRACT`` matches object keys by their JSON source text (``JSON_VALUE``
  decodes them first): doqu writes keys unescaped, and a key that a writer
  may spell in more than one way (``"``, ``\\``, control characters) is not
  addressed in SQL at all.

Indexes: MariaDB 10.11 does not match an expression in a query against an
indexed virtual column with the same expression, so a path with generated
columns (:attr:`MariaDBDialect.columns`, kept by the storage's
``ensure_index``) is compiled to those column names instead. The string
column holds the first :data:`PREFIX` characters, which decide comparisons
with shorter operands exactly; longer operands are narrowed by it and
compared whole.
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Sequence
from typing import Any

from doqu.ext.mysql.regex import to_pcre, word_pattern
from doqu.query.evaluator import words
from doqu.sql.dialect import (
    Dialect,
    Frag,
    Points,
    Range,
    Step,
    Target,
    Unsupported,
    conj,
)

__all__ = ["TEXT_COLLATION", "MariaDBDialect"]

TEXT_COLLATION = "utf8mb4_nopad_bin"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Keys whose JSON text is not unique (escapes) or that paths cannot spell.
_UNADDRESSABLE = re.compile(r'["\\\x00-\x1f\x7f]')
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
#: Characters of JSON number text and of JSON_VALUE's booleans (``1``/``0``).
_NUMBER_CHARS = frozenset("-+.0123456789eE")
_EXACT = 2 ** 53
#: Characters of a string a generated (indexed) column holds: 255 x 4 bytes fit an index key.
#: Comparing the column with an operand shorter than this is exact.
PREFIX = 255
_NO_LIMIT = 18446744073709551615


def _has_long(cond: Points | Range) -> bool:
    if isinstance(cond, Points):
        return any(len(v) >= PREFIX for v in cond.values)
    return any(v is not None and len(v) >= PREFIX for v in (cond.low, cond.high))


def _truncated(cond: Points | Range) -> Points | Range:
    """A condition on the first PREFIX characters that every match of ``cond`` meets.

    Cutting strings to a prefix keeps their order (it never reverses two), so
    the cut bounds, made inclusive, admit every string the whole bounds admit.
    """
    if isinstance(cond, Points):
        return Points(cond.kind, tuple(dict.fromkeys(v[:PREFIX] for v in cond.values)))
    return Range(cond.kind, low=None if cond.low is None else cond.low[:PREFIX],
                 high=None if cond.high is None else cond.high[:PREFIX])


class MariaDBDialect(Dialect):
    name = "mariadb"
    placeholder = "%s"
    kinds = {
        "null": ("NULL",), "bool": ("BOOLEAN",), "number": ("INTEGER", "DOUBLE"),
        "string": ("STRING",), "list": ("ARRAY",), "dict": ("OBJECT",),
    }

    def __init__(self, *, json_overlaps: bool = True) -> None:
        #: path → {'number': column, 'string': column}: generated columns the storage made.
        self.columns: dict[tuple[Step, ...], dict[str, str]] = {}
        self.json_overlaps = json_overlaps

    # -- names and literals -------------------------------------------------
    def quote_ident(self, name: str) -> str:
        if not isinstance(name, str) or not name or "\x00" in name or len(name) > 64:
            raise ValueError(f"invalid MariaDB identifier {name!r}")
        return "`" + name.replace("`", "``") + "`"

    def quote_literal(self, text: str) -> str:
        if "\x00" in text or "%" in text:
            raise Unsupported("a literal PyMySQL's %-formatting could misread")
        return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"

    # -- paths ----------------------------------------------------------------
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
                raise Unsupported(f"a JSON path for the key {step!r}")
            else:
                parts.append(f'."{step}"')
        return "".join(parts)

    def path(self, steps: Sequence[Step]) -> Frag:
        text = self.json_path(steps)
        if all(isinstance(s, int) or _IDENTIFIER.match(s) for s in steps):
            return Frag(self.quote_literal(text))  # readable, and usable in a generated column
        return self.param(text)

    # -- access -------------------------------------------------------------------
    def _call(self, function: str, t: Target) -> Frag:
        return f"{function}({t.doc}, " + t.path + ")"

    def scalar(self, t: Target) -> Frag:
        """The text of a scalar (``1``/``0`` for booleans); NULL otherwise."""
        return self._call("JSON_VALUE", t)

    def text(self, t: Target) -> Frag:
        """:meth:`scalar` under the binary, no-pad collation: what strings compare by."""
        return Frag("(") + self.scalar(t) + f" COLLATE {TEXT_COLLATION})"

    def kind_of(self, t: Target) -> Frag:
        return Frag("JSON_TYPE(") + self._call("JSON_EXTRACT", t) + ")"

    def json_text(self, t: Target) -> Frag:
        return self._call("JSON_EXTRACT", t)

    def value(self, t: Target, kind: str | None = None) -> Frag:
        """The value as one SQL scalar of ``kind`` and NULL for every other kind (what indexes hold)."""
        column = self.columns.get(t.steps, {}).get("number") if kind == "number" else None
        if column is not None:  # (a string column holds only a prefix: see match())
            return Frag(self.quote_ident(column))
        return self.expression(t, kind)

    def expression(self, t: Target, kind: str | None = None) -> Frag:
        """:meth:`value` computed from the document (what a generated column is defined as)."""
        if kind == "number":
            return (Frag("CASE WHEN ") + self.is_kind(t, "number") + " THEN CAST("
                    + self.scalar(t) + " AS DOUBLE) END")
        if kind == "string":
            return (Frag("CASE WHEN ") + self.is_kind(t, "string") + " THEN " + self.text(t) + " END")
        if kind == "string prefix":  # what a string index column holds
            return (Frag("CASE WHEN ") + self.is_kind(t, "string") + " THEN LEFT(" + self.text(t)
                    + f", {PREFIX}) END")
        return self.scalar(t)

    def present(self, t: Target) -> Frag:
        return Frag("(") + self.scalar(t) + " IS NOT NULL OR " + self._call("JSON_QUERY", t) + " IS NOT NULL)"

    def absent(self, t: Target) -> Frag:
        return Frag("(") + self.scalar(t) + " IS NULL AND " + self._call("JSON_QUERY", t) + " IS NULL)"

    def list_length(self, t: Target) -> Frag:
        return self._call("JSON_LENGTH", t)

    def dict_size(self, t: Target) -> Frag:
        return self._call("JSON_LENGTH", t)

    # -- conditions ---------------------------------------------------------------------
    def _compare(self, value: Frag, cond: Points | Range) -> list[Frag]:
        if isinstance(cond, Points):
            if len(cond.values) == 1:
                return [value + " = " + self.param(cond.values[0])]
            return [value + " IN (" + self.params(cond.values) + ")"]
        parts = []
        if cond.low is not None:
            parts.append(value + (" >= " if cond.low_inclusive else " > ") + self.param(cond.low))
        if cond.high is not None:
            parts.append(value + (" <= " if cond.high_inclusive else " < ") + self.param(cond.high))
        return parts

    def match(self, t: Target, cond: Points | Range) -> Frag:
        if cond.kind == "bool":
            assert isinstance(cond, Points)
            names = sorted({"true" if v else "false" for v in cond.values})
            # JSON_EXTRACT writes booleans as bare true/false; strings come quoted
            return (Frag("(") + self.json_text(t) + " COLLATE utf8mb4_bin) IN ("
                    + ", ".join(f"'{n}'" for n in names) + ")")
        column = self.columns.get(t.steps, {}).get(cond.kind)
        if column is not None:  # NULL for every other kind: no guard needed
            indexed = Frag(self.quote_ident(column))
            if cond.kind == "number" or not _has_long(cond):
                return conj(self._compare(indexed, cond))
            # the column holds the first PREFIX characters: narrow by them, then compare whole
            return conj([*self._compare(indexed, _truncated(cond)), self._string_match(t, cond)])
        if cond.kind == "number":
            # strings ("22") and booleans (1/0) cast to numbers too: always guard
            value = Frag("CAST(") + self.scalar(t) + " AS DOUBLE)"
            return conj([*self._compare(value, cond), self.is_kind(t, "number")])
        return self._string_match(t, cond)

    def _string_match(self, t: Target, cond: Points | Range) -> Frag:
        parts = self._compare(self.text(t), cond)
        if isinstance(cond, Points):
            guard = any(_JSON_NUMBER.match(v) for v in cond.values)
        else:
            guard = any(cond.may_hold_prefix(c) for c in "-0123456789")
        if guard:  # the operand could equal a number's text or a boolean's 1/0
            parts.append(self.is_kind(t, "string"))
        return conj(parts)

    def list_has(self, t: Target, cond: Points) -> Frag:
        if not self.json_overlaps:
            raise Unsupported("JSON_OVERLAPS needs MariaDB 10.9")
        if cond.kind == "string" and any(_UNADDRESSABLE.search(v) for v in cond.values):
            raise Unsupported("a string whose JSON text is not unique")
        candidates = json.dumps(list(cond.values), ensure_ascii=False, allow_nan=False)
        # JSON_QUERY is NULL for scalars, which JSON_OVERLAPS would otherwise compare whole
        return Frag("JSON_OVERLAPS(") + self._call("JSON_QUERY", t) + ", " + self.param(candidates) + ")"

    def _string_test(self, t: Target, test: Frag, operand: str) -> Frag:
        if set(operand) <= _NUMBER_CHARS:  # could be found in a number's text or in 1/0
            return conj([test, self.is_kind(t, "string")])
        return test

    def substring(self, t: Target, needle: str) -> Frag:
        test = Frag("LOCATE(") + self.param(needle) + ", " + self.text(t) + ") > 0"
        return self._string_test(t, test, needle)

    def endswith(self, t: Target, suffix: str) -> Frag:
        test = (Frag("RIGHT(") + self.text(t) + ", " + self.param(len(suffix)) + ") = "
                + self.param(suffix))
        return self._string_test(t, test, suffix)

    def regex(self, t: Target, pattern: str, caseless: bool) -> Frag | None:
        translated = to_pcre(pattern)
        if translated is None:
            return None
        if caseless:
            translated = "(?i)" + translated
        return conj([self.text(t) + " REGEXP " + self.param(translated), self.is_kind(t, "string")])

    def search(self, t: Target, text: str) -> Frag | None:
        wanted = sorted(words(text))
        if not all(w.isascii() for w in wanted):
            return None  # folding non-ASCII words (ß = ss ...) both ways is Python's alone
        patterns = [word_pattern(w) for w in wanted]
        if any(p is None for p in patterns):
            return None
        tests = [self.text(t) + " REGEXP " + self.param(p) for p in patterns]
        return conj([*tests, self.is_kind(t, "string")])

    def date_part(self, t: Target, part: str, number: int) -> Frag:
        fields = {"year": "[0-9]{4}", "month": "[0-9]{2}", "day": "[0-9]{2}"}  # ASCII, as the evaluator
        fields[part] = f"{number:04d}" if part == "year" else f"{number:02d}"
        pattern = f"^{fields['year']}-{fields['month']}-{fields['day']}"
        # no number's text, and neither 1 nor 0, starts with four digits and a dash
        return self.text(t) + " REGEXP " + self.param(pattern)

    # -- ordering and paging ---------------------------------------------------------------
    def order_terms(self, t: Target) -> list[Frag]:
        """Kind rank, then numbers numerically, then text (strings; ``0`` < ``1`` for booleans).

        Both leading terms read ``JSON_EXTRACT``, which writes numbers as
        they are and every other kind starting with ``"``, ``{``, ``[``,
        ``t``, ``f`` or ``n``: its first character is the kind (about a third
        cheaper than ``JSON_TYPE``), and its text cast to DOUBLE is the
        number, or 0 for every other kind (a tie, left to the next term). Arrays and
        objects tie here; the query orders them in Python (see
        :mod:`doqu.ext.mysql.query`).
        """
        extract = self.json_text(t)
        rank = (Frag("CASE COALESCE(LEFT(") + extract + ", 1), 'n') WHEN '\"' THEN 2 WHEN '{' THEN 3 "
                "WHEN '[' THEN 4 WHEN 't' THEN 5 WHEN 'f' THEN 5 WHEN 'n' THEN 0 ELSE 1 END")
        # CONCAT makes it plain text: cast directly, JSON_EXTRACT would read "2024-01-01" as 2024
        return [rank, Frag("CAST(CONCAT(") + extract + ") AS DOUBLE)", self.text(t)]

    def limit(self, start: int, stop: int | None) -> Frag:
        count = _NO_LIMIT if stop is None else stop - start
        return Frag("LIMIT ") + self.param(count) + " OFFSET " + self.param(start)

    # -- operands ----------------------------------------------------------------------------
    def number_param(self, value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            as_float = float(value)
            if decimal.Decimal(as_float) != value:
                raise Unsupported("a Decimal that is not exactly a double")
            value = as_float
        if not abs(value) < _EXACT:  # also refuses inf/nan
            raise Unsupported("a number beyond the exact range of doubles")
        return value

    def string_param(self, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Unsupported("a string that is not valid Unicode") from None
        return value

    # -- writing (for the storage) -------------------------------------------------------------
    def upsert(self, table: str, key_column: str = "key", data_column: str = "data") -> str:
        t, k, d = self.quote_ident(table), self.quote_ident(key_column), self.quote_ident(data_column)
        return (f"INSERT INTO {t} ({k}, {d}) VALUES (%s, %s) "
                f"ON DUPLICATE KEY UPDATE {d} = VALUES({d})")
