"""Regular expressions that Python's ``re`` and MongoDB's PCRE read the same way.

doqu's evaluator defines the text operators with Python's ``re`` on ``str``:
``\\w``, ``\\d`` and ``\\s`` are Unicode-aware, ``.`` stops at ``\\n`` only,
``$`` also matches before a final newline. MongoDB runs PCRE, where
``\\w``/``\\d``/``\\s``/``\\b`` are ASCII-only (SERVER-23881), ``\\v`` is a class and
``.``/``$`` follow the build's newline convention. So no pattern is sent as
written: it is rewritten into a *portable* form (explicit character classes
computed from Python's own ``re``, escaped literals, lookarounds instead of
``$``) that both engines interpret identically. The stand-in (mongomock) runs
the same rewritten patterns with Python's ``re``, so the rewriting itself is
exercised by the conformance suite.

Anything outside the supported syntax raises :class:`Unsupported`; the query
then filters that condition in Python instead.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections import defaultdict
from typing import Iterable, Sequence

__all__ = [
    "Unsupported",
    "literal",
    "translate",
    "startswith",
    "endswith",
    "contains",
    "date_part",
    "search_word",
    "shorten",
]

Ranges = tuple[tuple[int, int], ...]

#: Longest rewritten pattern (UTF-8 bytes) sent to the engine; longer ones are filtered
#: in Python. Kept well below the 32 KB that servers accept for a regular expression
#: (one explicit ``\w`` class is about 5 KB, ``\b`` about 20 KB).
MAX_PATTERN = 32_000
#: "Nothing follows": the absolute end of the text in both engines.
END = r"(?![\s\S])"
_SURROGATES = (0xD800, 0xDFFF)  # never in stored text: BSON strings are valid UTF-8


class Unsupported(Exception):
    """The pattern cannot be rewritten exactly; the condition runs in Python."""


# -- Unicode tables, computed once from Python's own ``re`` -------------------------

@functools.lru_cache(maxsize=None)
def _tables() -> dict[str, Ranges]:
    """Code point ranges of Python's ``\\w``, ``\\d``, ``\\s`` and of each digit value."""
    everything = "".join(map(chr, range(sys.maxunicode + 1)))

    def runs(pattern: str) -> Ranges:
        return tuple((m.start(), m.end() - 1) for m in re.finditer(pattern, everything))

    tables = {"w": runs(r"\w+"), "d": runs(r"\d+"), "s": runs(r"\s+")}
    by_value: list[list[int]] = [[] for _ in range(10)]
    for low, high in tables["d"]:
        for cp in range(low, high + 1):
            by_value[int(chr(cp))].append(cp)
    for value, points in enumerate(by_value):
        tables[str(value)] = _to_ranges(points)
    return tables


@functools.lru_cache(maxsize=None)
def _folds() -> dict[str, Ranges]:
    """Casefolded text → the word characters whose casefold it is (for ``search``)."""
    found: dict[str, list[int]] = defaultdict(list)
    for low, high in _tables()["w"]:
        for cp in range(low, high + 1):
            found[chr(cp).casefold()].append(cp)
    return {text: _to_ranges(points) for text, points in found.items()}


def _to_ranges(points: Iterable[int]) -> Ranges:
    out: list[tuple[int, int]] = []
    for cp in sorted(set(points)):
        if out and cp == out[-1][1] + 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return tuple(out)


def _merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(high, out[-1][1]))
        else:
            out.append((low, high))
    return tuple(out)


def _complement(ranges: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    start = 0
    for low, high in _merge([*ranges, _SURROGATES]):
        if low > start:
            out.append((start, low - 1))
        start = high + 1
    if start <= sys.maxunicode:
        out.append((start, sys.maxunicode))
    return tuple(out)


# -- rendering ------------------------------------------------------------------------

def _char(cp: int) -> str:
    """One literal character, safe outside and inside a class in both engines."""
    if 0xD800 <= cp <= 0xDFFF:
        raise Unsupported("lone surrogates cannot be sent to MongoDB")
    if cp < 0x80:
        c = chr(cp)
        if c.isalnum() or c == "_":
            return c
        if 0x20 <= cp < 0x7F:
            return "\\" + c
        return f"\\x{cp:02x}"
    return chr(cp)


def literal(text: str) -> str:
    """``text`` matched literally (no character is special)."""
    return "".join(_char(ord(c)) for c in text)


def _class(ranges: Ranges, negate: bool = False) -> str:
    if not ranges:
        return r"[\s\S]" if negate else r"[^\s\S]"
    if not negate and len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _char(ranges[0][0])
    parts = []
    for low, high in ranges:
        if low == high:
            parts.append(_char(low))
        elif high == low + 1:
            parts.append(_char(low) + _char(high))
        else:
            parts.append(f"{_char(low)}-{_char(high)}")
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


@functools.lru_cache(maxsize=64)
def _named(name: str, negate: bool = False) -> str:
    return _class(_tables()[name], negate)


def _checked(pattern: str) -> str:
    size = len(pattern.encode("utf-8", "surrogatepass"))
    if size > MAX_PATTERN:
        raise Unsupported(f"rewritten pattern too long ({size} bytes)")
    return pattern


def shorten(text: str, limit: int = 80) -> str:
    """A long pattern abbreviated for ``explain()``."""
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


# -- the operators doqu builds itself ---------------------------------------------------

def startswith(prefix: str) -> str:
    return _checked("^" + literal(prefix))


def endswith(suffix: str) -> str:
    return _checked(literal(suffix) + END)


def contains(text: str) -> str:
    return _checked(literal(text))


def date_part(part: str, value: int) -> str | None:
    """Pattern for text whose leading ``YYYY-MM-DD`` has ``part`` == ``value``.

    Mirrors the evaluator's ``DATE_PREFIX``: its digits are whatever that
    pattern accepts (computed, not assumed). ``None`` when no text can match.
    """
    width = {"year": 4, "month": 2, "day": 2}[part]
    if not 0 <= value < 10 ** width:
        return None
    classes = _date_digits()
    digits = {p: [classes["any"]] * w for p, w in (("year", 4), ("month", 2), ("day", 2))}
    digits[part] = [classes[d] for d in f"{value:0{width}d}"]
    return _checked("^" + "".join(digits["year"]) + r"\-" + "".join(digits["month"])
                    + r"\-" + "".join(digits["day"]))


@functools.lru_cache(maxsize=None)
def _date_digits() -> dict[str, str]:
    """Digit classes for dates: the characters the evaluator's ``DATE_PREFIX`` takes as digits."""
    from doqu.query.evaluator import DATE_PREFIX

    by_value: dict[str, list[int]] = {str(v): [] for v in range(10)}
    for low, high in _tables()["d"]:  # every candidate: Python's Unicode digits
        for cp in range(low, high + 1):
            c = chr(cp)
            if DATE_PREFIX.match(f"{c * 4}-{c * 2}-{c * 2}"):
                by_value[str(int(c))].append(cp)
    classes = {value: _class(_to_ranges(points)) for value, points in by_value.items()}
    classes["any"] = _class(_to_ranges(cp for points in by_value.values() for cp in points))
    return classes


@functools.lru_cache(maxsize=256)
def search_word(word: str) -> str | None:
    """Pattern for a whole ``\\w+`` word whose casefold is ``word`` (already casefolded).

    Built from the casefold table rather than a case-insensitive flag, so that
    ``STRASSE`` finds ``Straße`` exactly as the evaluator does. ``None`` if no
    text can contain such a word.
    """
    folds = _folds()
    longest = max(len(k) for k in folds)

    @functools.lru_cache(maxsize=None)
    def rest(i: int) -> str | None:
        if i == len(word):
            return ""
        options = []
        for j in range(i + 1, min(len(word), i + longest) + 1):
            chars = folds.get(word[i:j])
            tail = rest(j) if chars else None
            if chars and tail is not None:
                options.append(_class(chars) + tail)
                if sum(map(len, options)) > MAX_PATTERN:  # characters: a cheap first bound
                    raise Unsupported("search word expands to too long a pattern")
        if not options:
            return None
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    body = rest(0)
    if body is None:
        return None
    w = _named("w")
    return _checked(f"(?<!{w}){body}(?!{w})")


# -- translating a user's pattern ---------------------------------------------------------

_WORD = re.compile(r"\w")
_SPECIAL = "\\[](){}*+?|.^$"
_QUANT = re.compile(r"\{([0-9]*)(,([0-9]*))?\}")
_SIMPLE = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07}
_CLASSES = {"d": ("d", False), "D": ("d", True), "w": ("w", False), "W": ("w", True),
            "s": ("s", False), "S": ("s", True)}


def translate(pattern: str) -> str:
    """Rewrite a Python pattern (already known to compile) into the portable form."""
    return _checked(_Translator(pattern).run())


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        self.after_word = self.word_before = False  # did a plain word character just end?

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            self.word_before, self.after_word = self.after_word, False
            if c == "\\":
                self.out.append(self.escape())
            elif c == "[":
                self.i += 1
                self.out.append(self.char_class())
            elif c == "(":
                self.out.append(self.group())
            elif c == ")":
                self.i += 1
                self.out.append(")")
            elif c in "*+?":
                self.i += 1
                self.out.append(c + self.suffix())
            elif c == "{":
                self.out.append(self.brace())
            elif c == "|":
                self.i += 1
                self.out.append("|")
            elif c == ".":
                self.i += 1
                self.out.append(r"[^\x0a]")
            elif c == "^":
                self.i += 1
                self.out.append("^")
            elif c == "$":
                self.i += 1
                self.out.append(r"(?=\x0a?" + END + ")")
            else:
                self.i += 1
                self.out.append(_char(ord(c)))
                self.after_word = _WORD.match(c) is not None
        return "".join(self.out)

    def word_literal_next(self) -> bool:
        """Is the next item a plain word character that must occur (no ``*``, ``?``, ``{``)?"""
        c, after = self.peek(), self.peek(1)
        return bool(c) and c not in _SPECIAL and _WORD.match(c) is not None and (
            not after or after not in "*?{")

    def take(self, most: int, allowed: str) -> str:
        taken = ""
        while len(taken) < most and self.peek() and self.peek() in allowed:
            taken += self.peek()
            self.i += 1
        return taken

    def suffix(self) -> str:
        """A lazy (``?``) or possessive (``+``) marker after a quantifier."""
        c = self.peek()
        if c and c in "?+":
            self.i += 1
            return c
        return ""

    def brace(self) -> str:
        m = _QUANT.match(self.p, self.i)
        if m is None or m.group(0) == "{}":
            self.i += 1
            return r"\{"
        self.i = m.end()
        low = int(m.group(1)) if m.group(1) else 0
        if m.group(2) is None:
            text = f"{{{low}}}"
        else:
            text = f"{{{low},{m.group(3)}}}" if m.group(3) else f"{{{low},}}"
        return text + self.suffix()

    def group(self) -> str:
        p, i = self.p, self.i
        if p.startswith("(?", i):
            for opener in ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"):
                if p.startswith(opener, i):
                    self.i = i + len(opener)
                    return opener
            if p.startswith("(?P<", i):
                self.i = p.index(">", i) + 1
                return "("
            if p.startswith("(?#", i):
                self.i = p.index(")", i) + 1
                return ""
            raise Unsupported(f"group syntax {p[i:i + 4]!r}... (flags, back-references, conditionals)")
        self.i = i + 1
        return "("

    def escape(self) -> str:
        self.i += 1
        c = self.peek()
        self.i += 1
        if c in _CLASSES:
            name, negate = _CLASSES[c]
            return _named(name, negate)
        if c == "b":
            w = _named("w")
            # next to a word character that must be there, half of \b decides: one class, not four
            if self.word_literal_next():
                return f"(?<!{w})"
            if self.word_before:
                return f"(?!{w})"
            return f"(?:(?<={w})(?!{w})|(?<!{w})(?={w}))"
        if c == "A":
            return "^"
        if c == "Z":
            return END
        cp = self.code_escape(c, in_class=False)
        return _char(cp)

    def code_escape(self, c: str, in_class: bool) -> int:
        """The code point of a character escape whose letter ``c`` was just read."""
        p = self.p
        if c in _SIMPLE:
            return _SIMPLE[c]
        if c == "b" and in_class:
            return 0x08
        if c in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[c]
            digits = p[self.i:self.i + width]
            self.i += width
            return int(digits, 16)
        if c == "N":
            end = p.index("}", self.i)
            name = p[self.i + 1:end]
            self.i = end + 1
            return ord(unicodedata.lookup(name))
        if c and c in "0123456789":
            if c in "89" and in_class:
                raise Unsupported(f"escape \\{c} in a class")
            if in_class or c == "0":
                digits = c + self.take(2, "01234567")
                return int(digits, 8)
            if (c in "01234567" and self.peek() and self.peek() in "01234567"
                    and self.peek(1) and self.peek(1) in "01234567"):
                digits = c + self.p[self.i:self.i + 2]
                self.i += 2
                return int(digits, 8)
            raise Unsupported("back-references are not supported natively")
        if c and not (c.isascii() and c.isalpha()):
            return ord(c)
        raise Unsupported(f"escape \\{c}")

    def char_class(self) -> str:
        p = self.p
        negate = False
        if self.peek() == "^":
            negate = True
            self.i += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if self.i >= len(p):
                raise Unsupported("unterminated character class")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            item = self.class_item()
            if isinstance(item, tuple):
                ranges.extend(item)
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                high = self.class_item()
                if isinstance(high, tuple):
                    raise Unsupported("bad character range")
                ranges.append((item, high))
            else:
                ranges.append((item, item))
        return _class(tuple(_without_surrogates(_merge(ranges))), negate)

    def class_item(self) -> int | Ranges:
        c = self.p[self.i]
        self.i += 1
        if c != "\\":
            return ord(c)
        e = self.peek()
        self.i += 1
        if e in _CLASSES:
            name, negate = _CLASSES[e]
            table = _tables()[name]
            return _complement(table) if negate else table
        return self.code_escape(e, in_class=True)


def _without_surrogates(ranges: Sequence[tuple[int, int]]) -> Iterable[tuple[int, int]]:
    low_s, high_s = _SURROGATES
    for low, high in ranges:
        if high < low_s or low > high_s:
            yield low, high
            continue
        if low < low_s:
            yield low, low_s - 1
        if high > high_s:
            yield high_s + 1, high
