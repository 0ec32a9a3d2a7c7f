"""doqu records <-> flat Tokyo Cabinet table columns (``dict[bytes, bytes]``).

Shared by the Tokyo Cabinet backend (ctypes) and the Tokyo Tyrant backend
(network protocol): both store the same table records, so a file written by
one is read by the other. Nothing here touches ctypes or sockets.

Layout of one record
--------------------

For each top-level field ``F`` (canonical value, see :mod:`doqu.conversion`):

* the *value column* ``F`` holds the value in a form Tokyo Cabinet's own
  operators understand: strings as their UTF-8 text, numbers as plain decimal
  text (never an exponent: TC's number parser stops at ``e``), booleans as
  ``true``/``false``, lists and dicts as compact JSON;
* the *type column* ``\\x01t:F`` holds a one-letter marker of the kind:
  ``i`` int, ``f`` float, ``d`` Decimal, ``b`` bool, ``l`` list, ``m`` dict,
  ``z`` an *escaped* string (see below). A plain string has **no** type
  column, so a file written by ``tctmgr`` (plain strings only) reads back as
  strings, and ``tctmgr list`` shows doqu's data as ordinary columns.

The marker lets a native query check the kind (``age > 5`` must not match
``age = "7"``): numbers ``\\x01t:F STROREQ i,f,d``, strings
``\\x01t:F STROREQ|NEGATE i,f,d,b,l,m`` (TC's negation also matches a missing
column, which is exactly "no marker or ``z``").

Escaped strings: TC's string operators work on C strings and an empty value
in a lexically or decimally indexed column aborts the process. A string that
is empty or contains ``\\0`` or ``\\x01`` is therefore stored escaped, marked
``z``: ``\\x01`` -> ``\\x01\\x02``, ``\\0`` -> ``\\x01\\x01``, and the empty string
-> ``\\x01``. The code is prefix-free and order-preserving, so byte order,
equality and prefix tests of escaped text agree with the real text; no
column value is ever empty or contains NUL.

Nested fields: a dict field ``F`` is stored whole as JSON in ``F`` and also
*flattened* into shadow columns for every member reached through dicts with
identifier keys: ``\\x01v.F.a.b`` (value, as above) and ``\\x01t.F.a.b``
(marker; nested strings are marked ``s`` or ``z``, nested dicts ``m`` with no
value column). Query paths are identifiers, so ``address__city`` maps to one
shadow column without any ambiguity (a top-level field named ``"a.b"`` lives
in ``a.b`` and ``\\x01t:a.b``, never in ``\\x01v.``). Shadows are a query
aid only: reading uses the JSON. They stop at :data:`MAX_DEPTH` levels and
:data:`MAX_SHADOWS` columns per record; a field cut short is noted in the
catalogue so queries under it fall back to Python. The JSON of a dict reads
a Decimal member back as a float (on every JSON engine), so its shadow
describes that float, and native and Python evaluation agree.

Full-text search: for a field declared with a search index
(``ensure_index('bio:search')``), a string value also gets the column
``\\x01w:F``: its case-folded ``\\w+`` words, sorted and space-separated,
exactly as :func:`doqu.query.evaluator.words` computes them, so TC's token
operator ``STRAND`` (and a token index) answers ``search`` exactly.

Field names beginning with ``\\x01`` are stored as ``\\x01\\x01name`` so they
cannot collide with doqu's own columns.

The catalogue
-------------

One reserved record, :data:`CATALOGUE_KEY`, lists for every value column the
kinds of value ever stored there (:func:`value_kinds` letters). The query
compiler uses it to prove that a native operator gives the contract's
answer (numbers TC parses exactly, no lists where ``contains`` means
substring, ASCII-only text where a regular expression is translated...).
It only grows (until ``clear()``), so it may be pessimistic, never wrong,
for data written through doqu.
"""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from doqu.conversion import dumps, loads
from doqu.errors import StorageError
from doqu.query.evaluator import words

__all__ = [
    "CATALOGUE_KEY", "MAX_DEPTH", "MAX_SHADOWS",
    "ColumnRef", "Catalogue", "column_ref",
    "encode_record", "decode_record", "record_kinds", "value_kinds",
    "escape_string", "unescape_string", "encode_text", "decode_text",
    "number_text", "number_class", "encode_key", "decode_key",
    "NUMBER_MARKERS", "NON_STRING_MARKERS", "NESTED_STRING_MARKERS",
    "is_internal_column",
]

RESERVED = b"\x01"
TYPE_PREFIX = b"\x01t:"
NESTED_VALUE_PREFIX = b"\x01v."
NESTED_TYPE_PREFIX = b"\x01t."
WORDS_PREFIX = b"\x01w:"
ESCAPED_NAME_PREFIX = b"\x01\x01"
CATALOGUE_KEY = b"\x01doqu:catalogue"
CATALOGUE_FORMAT_COLUMN = b"\x01format"
CATALOGUE_KIND_PREFIX = b"\x01k:"
CATALOGUE_SEARCH_PREFIX = b"\x01s:"
CATALOGUE_FORMAT = b"1"

#: Path length (top-level field included) up to which dicts are flattened.
MAX_DEPTH = 6
#: Shadow columns written for one record at most.
MAX_SHADOWS = 256

# kind markers stored in type columns
M_ESCAPED = b"z"
M_STRING = b"s"          # nested shadows only: top-level plain strings have no marker
M_INT = b"i"
M_FLOAT = b"f"
M_DECIMAL = b"d"
M_BOOL = b"b"
M_LIST = b"l"
M_DICT = b"m"
NUMBER_MARKERS = b"i,f,d"
NON_STRING_MARKERS = b"i,f,d,b,l,m"
NESTED_STRING_MARKERS = b"s,z"

#: Catalogue letters: what a column has held.
#: s ASCII string, u string with non-ASCII characters, z escaped string,
#: n raw string with NUL/\x01 not written by doqu, e raw empty string not written
#: by doqu, i int TC parses exactly, I other int, f float equal to its short
#: decimal text, g float whose short text TC compares exactly with other
#: floats and ints only, F other float, d Decimal TC parses exactly, D other
#: Decimal, b bool, l list, m dict, x dict not fully flattened (shadows cut).
ALL_KINDS = frozenset("suzneiIfgFdDblmx")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT64_LIMIT = 2 ** 63
#: TC reads at most this many digits of a number with a fraction (integer
#: digits after the first non-zero one, plus every fraction digit).
_TC_DIGITS = 16


# -- text -------------------------------------------------------------------

def encode_text(text: str) -> bytes:
    """UTF-8, keeping lone surrogates (valid in a Python str) round-trippable."""
    return text.encode("utf-8", "surrogatepass")


def decode_text(raw: bytes) -> str:
    """Inverse of :func:`encode_text`; bytes that are not UTF-8 (other writers)
    decode with ``surrogateescape`` instead of failing."""
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape")


def encode_key(key: str) -> bytes:
    return encode_text(key)


def decode_key(raw: bytes) -> str:
    return decode_text(raw)


def escape_string(text: str) -> tuple[bytes, bool]:
    """The column bytes of a string and whether they are escaped (marker ``z``)."""
    raw = encode_text(text)
    if raw and b"\0" not in raw and b"\x01" not in raw:
        return raw, False
    if not raw:
        return b"\x01", True
    return raw.replace(b"\x01", b"\x01\x02").replace(b"\0", b"\x01\x01"), True


def escape_operand(text: str) -> bytes:
    """A string operand as the bytes an equal stored string has (escaped or not)."""
    return escape_string(text)[0]


def unescape_string(raw: bytes) -> str:
    if raw == b"\x01":
        return ""

    def code(match: re.Match[bytes]) -> bytes:
        follower = match.group(1)
        if follower == b"\x01":
            return b"\0"
        if follower == b"\x02":
            return b"\x01"
        raise StorageError(f"Tokyo Cabinet: malformed escaped string {raw[:80]!r}")

    return decode_text(_ESCAPE_CODE.sub(code, raw))


_ESCAPE_CODE = re.compile(rb"\x01(.?)", re.DOTALL)


# -- numbers --------------------------------------------------------------------

def number_text(value: int | float | decimal.Decimal) -> str:
    """Plain decimal text without exponent (TC's parser stops at ``e``)."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text or "E" in text:
            text = format(decimal.Decimal(text), "f")
        return text
    if isinstance(value, decimal.Decimal):
        text = format(value, "f")
        return text
    raise TypeError(f"not a number: {value!r}")


def _tc_exact_text(text: str) -> bool:
    """Does TC's number parser (long double, 16 digit columns) read ``text`` exactly?

    Checked against the library by tests/ext/tokyo_cabinet/test_codec.py.
    """
    body = text.lstrip("-")
    whole, _, fraction = body.partition(".")
    fraction = fraction.rstrip("0")
    if not fraction:
        return abs(int(whole or "0")) < _INT64_LIMIT
    significant = len(whole.lstrip("0"))
    return significant + len(fraction) <= _TC_DIGITS


def number_class(value: int | float | decimal.Decimal) -> str:
    """The catalogue letter of a number (see :data:`ALL_KINDS`)."""
    text = number_text(value)
    exact_text = _tc_exact_text(text)
    if isinstance(value, int):
        return "i" if exact_text else "I"
    if isinstance(value, float):
        if not exact_text:
            return "F"
        return "f" if decimal.Decimal(value) == decimal.Decimal(text) else "g"
    return "d" if exact_text else "D"


# -- values -----------------------------------------------------------------------

def _string_kinds(text: str, escaped: bool) -> str:
    kinds = "s" if text.isascii() else "u"
    return kinds + "z" if escaped else kinds


def encode_value(value: Any, nested: bool = False) -> tuple[bytes | None, bytes | None, str]:
    """(value column bytes, type marker, catalogue letters) of one canonical value.

    Top-level plain strings have no marker; ``nested`` ones are marked ``s``.
    Dicts at nested level have no value column (the JSON lives at the top).
    """
    if isinstance(value, str):
        raw, escaped = escape_string(value)
        marker = M_ESCAPED if escaped else (M_STRING if nested else None)
        return raw, marker, _string_kinds(value, escaped)
    if isinstance(value, bool):
        return (b"true" if value else b"false"), M_BOOL, "b"
    if isinstance(value, int):
        return number_text(value).encode("ascii"), M_INT, number_class(value)
    if isinstance(value, float):
        return number_text(value).encode("ascii"), M_FLOAT, number_class(value)
    if isinstance(value, decimal.Decimal):
        return number_text(value).encode("ascii"), M_DECIMAL, number_class(value)
    if isinstance(value, list):
        return encode_text(dumps(value)), M_LIST, "l"
    if isinstance(value, dict):
        return (None if nested else encode_text(dumps(value))), M_DICT, "m"
    raise StorageError(f"Tokyo Cabinet: cannot store a value of type {type(value).__name__}")


def decode_value(raw: bytes, marker: bytes | None) -> Any:
    if marker is None or marker == M_STRING:
        return decode_text(raw)
    if marker == M_ESCAPED:
        return unescape_string(raw)
    text = raw.decode("ascii", "replace")
    try:
        if marker == M_INT:
            return int(text)
        if marker == M_FLOAT:
            return float(text)
        if marker == M_DECIMAL:
            return decimal.Decimal(text)
        if marker == M_BOOL:
            if raw in (b"true", b"false"):
                return raw == b"true"
            raise ValueError(text)
        if marker == M_LIST or marker == M_DICT:
            value = loads(decode_text(raw))
            if isinstance(value, list if marker == M_LIST else dict):
                return value
            raise ValueError(text)
    except (ValueError, decimal.InvalidOperation) as exc:
        raise StorageError(f"Tokyo Cabinet: column value {raw[:80]!r} does not fit its "
                           f"type marker {marker!r}") from exc
    raise StorageError(f"Tokyo Cabinet: unknown type marker {marker!r} (written by a newer "
                       f"doqu or another program?)")


# -- columns ---------------------------------------------------------------------------

def field_column(name: str) -> bytes:
    raw = encode_text(name)
    return RESERVED + raw if raw.startswith(RESERVED) else raw


def is_internal_column(column: bytes) -> bool:
    """Doqu's own columns (type markers, shadows); not fields of the record."""
    return column.startswith(RESERVED) and not column.startswith(ESCAPED_NAME_PREFIX)


@dataclass(frozen=True)
class ColumnRef:
    """Where a query path lives: value and type columns, and how strings are marked."""

    value: bytes
    type: bytes
    nested: bool
    #: the top-level value column (its catalogue entry says if shadows are complete)
    root: bytes

    @property
    def key(self) -> bytes:
        """The catalogue entry of this column."""
        return self.value


def column_ref(path: tuple[str, ...] | list[str]) -> ColumnRef | None:
    """The columns of a query path, or ``None`` when no column holds it."""
    if not path:
        return None
    root = field_column(path[0])
    if len(path) == 1:
        return ColumnRef(root, TYPE_PREFIX + encode_text(path[0]), False, root)
    if len(path) > MAX_DEPTH or not all(_IDENT.match(p) for p in path):
        return None
    dotted = encode_text(".".join(path))
    return ColumnRef(NESTED_VALUE_PREFIX + dotted, NESTED_TYPE_PREFIX + dotted, True, root)


def encode_record(record: Mapping[str, Any],
                  search: Iterable[bytes] = ()) -> dict[bytes, bytes]:
    """Canonical record -> columns (value, type, shadow and word columns).

    ``search``: value columns with a search index (``Catalogue.search``).
    """
    return _encode(record, frozenset(search))[0]


def record_kinds(record: Mapping[str, Any]) -> dict[bytes, set[str]]:
    """Catalogue letters per value column for one canonical record."""
    return _encode(record, frozenset())[1]


def encode_with_kinds(record: Mapping[str, Any], search: Iterable[bytes] = ()
                      ) -> tuple[dict[bytes, bytes], dict[bytes, set[str]]]:
    return _encode(record, frozenset(search))


def words_text(text: str) -> bytes:
    """The word column of a string: its search words, sorted, space-separated."""
    return encode_text(" ".join(sorted(words(text))))


def _encode(record: Mapping[str, Any], search: frozenset[bytes]
            ) -> tuple[dict[bytes, bytes], dict[bytes, set[str]]]:
    cols: dict[bytes, bytes] = {}
    kinds: dict[bytes, set[str]] = {}
    budget = [MAX_SHADOWS]
    for name, value in record.items():
        if value is None:
            continue
        column = field_column(name)
        raw, marker, letters = encode_value(value)
        assert raw is not None
        cols[column] = raw
        if marker is not None:
            cols[TYPE_PREFIX + encode_text(name)] = marker
        kinds.setdefault(column, set()).update(letters)
        if column in search and isinstance(value, str):
            text = words_text(value)
            if text:
                cols[WORDS_PREFIX + encode_text(name)] = text
        if isinstance(value, dict) and _IDENT.match(name):
            if not _shadow(value, (name,), cols, kinds, budget):
                kinds[column].add("x")
    return cols, kinds


def _shadow(value: dict[str, Any], path: tuple[str, ...], cols: dict[bytes, bytes],
            kinds: dict[bytes, set[str]], budget: list[int]) -> bool:
    """Write shadow columns for the members of ``value``; False if cut short."""
    complete = True
    for key, member in value.items():
        if member is None or not _IDENT.match(key):
            continue
        sub = (*path, key)
        if len(sub) > MAX_DEPTH or budget[0] < 2:
            return False
        if isinstance(member, decimal.Decimal):
            # the JSON of the field reads back a float: describe what queries will see
            member = float(member)
            if not math.isfinite(member):
                return False
        budget[0] -= 2
        dotted = encode_text(".".join(sub))
        raw, marker, letters = encode_value(member, nested=True)
        if raw is not None:
            cols[NESTED_VALUE_PREFIX + dotted] = raw
        assert marker is not None
        cols[NESTED_TYPE_PREFIX + dotted] = marker
        kinds.setdefault(NESTED_VALUE_PREFIX + dotted, set()).update(letters)
        if isinstance(member, dict):
            complete = _shadow(member, sub, cols, kinds, budget) and complete
    return complete


def decode_record(cols: Mapping[bytes, bytes]) -> dict[str, Any]:
    """Columns -> canonical record; shadow columns are ignored."""
    record: dict[str, Any] = {}
    for column, raw in cols.items():
        if column.startswith(ESCAPED_NAME_PREFIX):
            name_raw = column[1:]
        elif column.startswith(RESERVED):
            continue
        else:
            name_raw = column
        marker = cols.get(TYPE_PREFIX + name_raw)
        record[decode_text(name_raw)] = decode_value(raw, marker)
    return record


def value_kinds(value: Any) -> str:
    """Catalogue letters of one canonical value."""
    return encode_value(value)[2]


def raw_kinds(cols: Mapping[bytes, bytes]) -> dict[bytes, set[str]]:
    """Catalogue letters of a stored record, including values other programs wrote
    (raw empty strings ``e``, raw NUL or ``\\x01`` ``n``)."""
    kinds: dict[bytes, set[str]] = {}
    record = decode_record(cols)
    for column, letters in record_kinds(record).items():
        kinds.setdefault(column, set()).update(letters)
    for column, raw in cols.items():
        if is_internal_column(column):
            continue
        name_raw = column[1:] if column.startswith(ESCAPED_NAME_PREFIX) else column
        if (TYPE_PREFIX + name_raw) in cols:
            continue
        if not raw:
            kinds.setdefault(column, set()).add("e")
        elif b"\0" in raw or b"\x01" in raw:
            kinds.setdefault(column, set()).add("n")
    return kinds


# -- catalogue ----------------------------------------------------------------------------

@dataclass
class Catalogue:
    """What kinds of value each column has held (see the module docstring).

    ``known=False`` means the file holds records but no catalogue (another
    program made it, or it predates doqu): every column may hold anything.
    """

    columns: dict[bytes, frozenset[str]] = field(default_factory=dict)
    known: bool = True
    #: value columns of top-level fields with a search (word) index
    search: frozenset[bytes] = frozenset()

    @classmethod
    def unknown(cls) -> "Catalogue":
        return cls({}, known=False)

    def kinds(self, column: bytes) -> frozenset[str]:
        if not self.known:
            return ALL_KINDS
        return self.columns.get(column, frozenset())

    def missing(self, contributions: Mapping[bytes, Iterable[str]]) -> dict[bytes, frozenset[str]]:
        """The entries that ``contributions`` would add (empty if nothing is new)."""
        out: dict[bytes, frozenset[str]] = {}
        for column, letters in contributions.items():
            have = self.columns.get(column, frozenset())
            new = frozenset(letters) - have
            if new:
                out[column] = have | new
        return out

    def merged(self, contributions: Mapping[bytes, Iterable[str]]) -> "Catalogue":
        columns = dict(self.columns)
        for column, letters in contributions.items():
            columns[column] = columns.get(column, frozenset()) | frozenset(letters)
        return Catalogue(columns, known=True, search=self.search)

    def with_search(self, column: bytes) -> "Catalogue":
        return Catalogue(dict(self.columns), self.known, self.search | {column})

    def to_columns(self) -> dict[bytes, bytes]:
        cols = {CATALOGUE_FORMAT_COLUMN: CATALOGUE_FORMAT}
        for column, letters in self.columns.items():
            cols[CATALOGUE_KIND_PREFIX + column] = "".join(sorted(letters)).encode("ascii")
        for column in self.search:
            cols[CATALOGUE_SEARCH_PREFIX + column] = b"words"
        return cols

    @classmethod
    def from_columns(cls, cols: Mapping[bytes, bytes]) -> "Catalogue":
        fmt = cols.get(CATALOGUE_FORMAT_COLUMN)
        if fmt != CATALOGUE_FORMAT:
            raise StorageError(f"Tokyo Cabinet: the doqu catalogue record has format {fmt!r}; "
                               f"this doqu reads format {CATALOGUE_FORMAT!r}")
        columns = {}
        search = set()
        for name, letters in cols.items():
            if name.startswith(CATALOGUE_KIND_PREFIX):
                columns[name[len(CATALOGUE_KIND_PREFIX):]] = frozenset(letters.decode("ascii"))
            elif name.startswith(CATALOGUE_SEARCH_PREFIX):
                search.add(name[len(CATALOGUE_SEARCH_PREFIX):])
        return cls(columns, known=True, search=frozenset(search))

    def describe(self) -> Iterator[str]:
        for column in sorted(self.columns):
            yield f"{column!r}: {''.join(sorted(self.columns[column]))}"
        for column in sorted(self.search):
            yield f"{column!r}: search index"
