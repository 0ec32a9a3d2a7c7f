"""Python ``re`` patterns → PostgreSQL ARE patterns that match exactly the same strings.

PostgreSQL's ``~`` speaks Advanced Regular Expressions, which agree with
Python's ``re`` on the everyday syntax but not on the details that decide
which strings match:

* ``.`` matches a newline in ARE; in Python only ``[^\\n]``;
* Python's ``$`` also matches before a final newline; ARE's only at the end;
* ``\\d``, ``\\w``, ``\\s`` follow the server's locale in ARE (and ``\\b`` is a
  backspace there); Python's follow the Unicode database (``\\d`` matches
  ``٣``, ``\\s`` matches ``\\x1c``);
* ``~*`` folds case by the server's locale; Python's ``IGNORECASE`` has its
  own equivalences (``k``, ``K`` and the Kelvin sign ``K``; ``s`` and ``ſ``);
* ``{,n}``, ``{m}`` above 255 and a literal ``{`` are read differently.

So a pattern is parsed and rewritten rather than passed through: classes
become explicit code point sets computed from Python's own ``re`` (exact, and
independent of the server's locale), case-insensitive letters become sets of
their Python equivalents (matched with the case-sensitive ``~``), ``.`` and
``$`` are spelled out. Whatever this module does not know raises
:class:`doqu.sql.Unsupported`, and the condition runs in Python instead.
Apply the result to text under ``COLLATE "C"`` so that no locale is involved.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Iterable

from doqu.query.evaluator import words
from doqu.sql import Unsupported

__all__ = ["translate", "word_pattern", "date_pattern", "class_ranges"]

Ranges = tuple[tuple[int, int], ...]

_MAX = sys.maxunicode
#: ARE's largest repetition count (RE_DUP_MAX).
_DUP_MAX = 255
#: Translations longer than this are left to Python (the server may call them too complex).
MAX_LENGTH = 200_000
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")
_WORD = re.compile(r"\w")
_CHAR_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


# -- code point sets ------------------------------------------------------------------

@lru_cache(maxsize=1)
def _all_characters() -> str:
    return "".join(map(chr, range(_MAX + 1)))


@lru_cache(maxsize=None)
def class_ranges(letter: str) -> Ranges:
    """The code points Python's ``\\d``, ``\\w`` or ``\\s`` matches, as ranges (asked of ``re`` itself)."""
    if letter not in ("d", "w", "s"):
        raise ValueError(letter)
    found = []
    for match in re.finditer(rf"\{letter}+", _all_characters()):
        found.append((match.start(), match.end() - 1))
    return tuple(found)


@lru_cache(maxsize=None)
def _date_digits(value: int | None) -> Ranges:
    """The characters the evaluator's ``DATE_PREFIX`` reads as a digit (of ``value``, if given)."""
    from doqu.query.evaluator import DATE_PREFIX

    found = []
    for lo, hi in class_ranges("d"):
        for code in range(lo, hi + 1):
            ch = chr(code)
            if DATE_PREFIX.match(f"{ch * 4}-{ch * 2}-{ch * 2}") and (value is None or int(ch) == value):
                found.append((code, code))
    return _normalize(found)


def _normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def _complement(ranges: Ranges) -> Ranges:
    out = []
    start = 0
    for lo, hi in ranges:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX:
        out.append((start, _MAX))
    return tuple(out)


def _storable(ranges: Ranges) -> Ranges:
    """Drop what PostgreSQL text never holds (NUL, surrogates): ARE refuses those escapes."""
    out = []
    for lo, hi in ranges:
        for a, b in ((lo, min(hi, 0xD7FF)), (max(lo, 0xE000), hi)):
            a = max(a, 1)
            if a <= b:
                out.append((a, b))
    return tuple(out)


@lru_cache(maxsize=1)
def _case_index() -> dict[str, set[str]]:
    """Cased characters by their lower, upper and case-folded first character.

    Nothing above U+1FFFF has a case mapping (checked by the tests), so the
    scan stops there.
    """
    index: dict[str, set[str]] = {}
    for code in range(0x20000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        variants = {ch.lower(), ch.upper(), ch.casefold()}
        if variants != {ch}:
            for variant in variants | {ch}:
                index.setdefault(variant[0], set()).add(ch)
    return index


@lru_cache(maxsize=4096)
def _equivalents(ch: str) -> frozenset[str]:
    """The characters Python's ``IGNORECASE`` treats as ``ch`` (``ch`` included)."""
    index = _case_index()
    candidates = {ch}
    frontier = [ch]
    while frontier:  # a small closure: k → K → Kelvin sign ...
        current = frontier.pop()
        for key in {current, current.lower()[0], current.upper()[0], current.casefold()[0]}:
            for other in index.get(key, ()):
                if other not in candidates:
                    candidates.add(other)
                    frontier.append(other)
    pattern = re.compile(re.escape(ch), re.IGNORECASE)
    return frozenset(c for c in candidates if pattern.fullmatch(c))


@lru_cache(maxsize=1)
def _fold_index() -> dict[str, tuple[str, ...]]:
    """Case fold → the word characters folding to it (for ``search``)."""
    index: dict[str, list[str]] = {}
    word = _WORD
    for code in range(0x20000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        if word.match(ch):
            index.setdefault(ch.casefold(), []).append(ch)
    return {fold: tuple(chars) for fold, chars in index.items()}


# -- emitting ARE text ------------------------------------------------------------------------

def _char(code: int) -> str:
    ch = chr(code)
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _bracket(ranges: Ranges, negate: bool = False) -> str:
    """An ARE bracket expression for the code points in ``ranges`` (or outside them)."""
    ranges = _storable(_normalize(ranges))
    if not ranges:
        return "[\\u0001-\\U0010ffff]" if negate else "[^\\u0001-\\U0010ffff]"
    body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)
    return f"[^{body}]" if negate else f"[{body}]"


def _literal(ch: str, caseless: bool) -> str:
    if caseless:
        same = _equivalents(ch)
        if len(same) > 1:
            return _bracket(tuple((ord(c), ord(c)) for c in same))
    code = ord(ch)
    if code == 0 or 0xD800 <= code <= 0xDFFF:
        raise Unsupported("a NUL or surrogate in a pattern")
    return _char(code)


def _word_bracket(negate: bool = False) -> str:
    return _bracket(class_ranges("w"), negate)


# -- the parser ---------------------------------------------------------------------------------

class _Translator:
    """Recursive descent over the subset of Python's syntax, writing ARE as it goes."""

    def __init__(self, pattern: str, caseless: bool) -> None:
        self.text = pattern
        self.pos = 0
        self.caseless = caseless

    # -- tokens
    def peek(self, offset: int = 0) -> str | None:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else None

    def take(self) -> str:
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def accept(self, literal: str) -> bool:
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    # -- grammar
    def translate(self) -> str:
        out = self.alternation()
        if self.pos != len(self.text):
            raise Unsupported(f"pattern syntax at {self.pos}")
        return out

    def alternation(self) -> str:
        branches = [self.sequence()]
        while self.accept("|"):
            branches.append(self.sequence())
        return "|".join(branches)

    def sequence(self) -> str:
        parts = []
        while self.peek() is not None and self.peek() not in "|)":
            atom, quantifiable = self.atom()
            quantifier = self.quantifier()
            if quantifier:
                if not quantifiable:
                    raise Unsupported("a quantified anchor or lookaround")
                atom = f"(?:{atom}){quantifier}"
            parts.append(atom)
        return "".join(parts)

    def quantifier(self) -> str:
        ch = self.peek()
        if ch in ("*", "+", "?"):
            self.take()
            out = ch
        elif ch == "{":
            match = re.compile(r"\{(\d*)(?:(,)(\d*))?\}").match(self.text, self.pos)
            if match is None or self.text.startswith("{}", self.pos):
                return ""  # Python reads it as a literal '{'
            self.pos = match.end()
            low = int(match.group(1)) if match.group(1) else 0
            if match.group(2):
                high = int(match.group(3)) if match.group(3) else None
            else:
                high = low
            if low > _DUP_MAX or (high is not None and high > _DUP_MAX):
                raise Unsupported("a repetition count above 255")
            out = f"{{{low},}}" if high is None else f"{{{low},{high}}}"
        else:
            return ""
        if self.peek() == "?":
            self.take()
            out += "?"
        elif self.peek() == "+":
            raise Unsupported("possessive quantifiers")
        return out

    def atom(self) -> tuple[str, bool]:
        """(ARE text, may it be quantified?)"""
        ch = self.take()
        if ch == "(":
            return self.group()
        if ch == "[":
            return self.bracket(), True
        if ch == ".":
            return "[^\\n]", True
        if ch == "^":
            return "^", False
        if ch == "$":
            return "(?=\\n?$)", False  # Python: at the end, or before a final newline
        if ch == "\\":
            return self.escape()
        if ch in "*+?":
            raise Unsupported("nothing to repeat")
        if ch == "{":
            return _literal("{", False), True  # quantifier() declined it: a literal
        return _literal(ch, self.caseless), True

    def group(self) -> tuple[str, bool]:
        if self.accept("?:"):
            opener, quantifiable = "(?:", True
        elif self.accept("?P<"):
            end = self.text.find(">", self.pos)
            if end < 0:
                raise Unsupported("group name")
            self.pos = end + 1
            opener, quantifiable = "(", True
        elif self.accept("?="):
            opener, quantifiable = "(?=", False
        elif self.accept("?!"):
            opener, quantifiable = "(?!", False
        elif self.accept("?<="):
            opener, quantifiable = "(?<=", False
        elif self.accept("?<!"):
            opener, quantifiable = "(?<!", False
        elif self.peek() == "?":
            raise Unsupported("inline flags, comments, references and conditionals")
        else:
            opener, quantifiable = "(", True
        inner = self.alternation()
        if not self.accept(")"):
            raise Unsupported("unbalanced parenthesis")
        return opener + inner + ")", quantifiable

    def _char_escape(self, letter: str) -> int | None:
        """The code point of a character escape (after the backslash), or None."""
        if letter in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[letter]
        widths = {"x": 2, "u": 4, "U": 8}
        if letter in widths:
            digits = self.text[self.pos:self.pos + widths[letter]]
            if len(digits) != widths[letter] or not set(digits) <= _HEX:
                raise Unsupported("escape")
            self.pos += widths[letter]
            return int(digits, 16)
        if letter == "N":
            end = self.text.find("}", self.pos)
            if not self.accept("{") or end < 0:
                raise Unsupported("escape")
            import unicodedata

            try:
                code = ord(unicodedata.lookup(self.text[self.pos:end]))
            except KeyError:
                raise Unsupported("unknown character name") from None
            self.pos = end + 1
            return code
        if letter == "0":
            digits = "0"
            while len(digits) < 3 and self.peek() in _OCTAL:
                digits += self.take()
            return int(digits, 8)
        if letter in _OCTAL and self.peek() in _OCTAL and self.peek(1) in _OCTAL:
            digits = letter + self.take() + self.take()
            return int(digits, 8)
        if letter.isdigit():
            raise Unsupported("back references")
        if letter.isascii() and letter.isalpha():
            return None  # a class, an anchor, or an error Python already refused
        return ord(letter)

    def escape(self) -> tuple[str, bool]:
        if self.peek() is None:
            raise Unsupported("trailing backslash")
        letter = self.take()
        if letter in "dws":
            return _bracket(class_ranges(letter)), True
        if letter in "DWS":
            return _bracket(class_ranges(letter.lower()), negate=True), True
        if letter == "A":
            return "^", False
        if letter == "Z":
            return "$", False
        if letter in "bB":
            word = _word_bracket()
            # Python's boundary: a \w on exactly one side (string ends count as non-word)
            if letter == "b":
                return f"(?:(?<={word})(?!{word})|(?<!{word})(?={word}))", False
            return f"(?:(?<={word})(?={word})|(?<!{word})(?!{word}))", False
        code = self._char_escape(letter)
        if code is None:
            raise Unsupported(f"escape \\{letter}")
        return _literal(chr(code), self.caseless), True

    def bracket(self) -> str:
        negate = self.accept("^")
        items: list[tuple[int, int]] = []
        classes: list[tuple[int, int]] = []
        first = True
        while True:
            if self.peek() is None:
                raise Unsupported("unterminated set")
            ch = self.take()
            if ch == "]" and not first:
                break
            first = False
            low = self._set_member(ch, classes)
            if low is None:
                continue
            if self.peek() == "-" and self.peek(1) is not None:
                self.take()
                nxt = self.take()
                if nxt == "]":
                    items += [(low, low), (ord("-"), ord("-"))]
                    break
                high = self._set_member(nxt, classes)
                if high is None or high < low:
                    raise Unsupported("bad range")
                items.append((low, high))
            else:
                items.append((low, low))
        ranges = _normalize(items)
        if self.caseless:
            ranges = self._case_closed(ranges)
        return _bracket(_normalize(ranges + tuple(classes)), negate)

    def _set_member(self, ch: str, classes: list[tuple[int, int]]) -> int | None:
        """One member of a set: its code point, or None after adding a class to ``classes``."""
        if ch != "\\":
            return ord(ch)
        if self.peek() is None:
            raise Unsupported("trailing backslash")
        letter = self.take()
        if letter in "dws":
            classes.extend(class_ranges(letter))
            return None
        if letter in "DWS":
            classes.extend(_complement(class_ranges(letter.lower())))
            return None
        if letter == "b":
            return 8  # a backspace inside a set
        code = self._char_escape(letter)
        if code is None:
            raise Unsupported(f"escape \\{letter} in a set")
        return code

    def _case_closed(self, ranges: Ranges) -> Ranges:
        size = sum(hi - lo + 1 for lo, hi in ranges)
        if size > 2048:
            raise Unsupported("a large set matched without case")
        chars = {ch for lo, hi in ranges for code in range(lo, hi + 1) for ch in _equivalents(chr(code))}
        return tuple((ord(c), ord(c)) for c in chars)


@lru_cache(maxsize=512)
def translate(pattern: str, caseless: bool = False) -> str:
    """The ARE pattern matching exactly what Python's ``re.search(pattern)`` matches."""
    out = _Translator(pattern, caseless).translate()
    if len(out) > MAX_LENGTH:
        raise Unsupported("pattern too large once translated")
    return out


@lru_cache(maxsize=512)
def word_pattern(word: str) -> str:
    """ARE matching a whole ``\\w+`` run of a text whose case fold is ``word`` (already folded).

    A character may fold to several (``ß`` → ``ss``, ``ﬁ`` → ``fi``), so the
    run is spelled as a sequence of alternatives over the folds that spell
    ``word``.
    """
    index = _fold_index()
    longest = max(len(fold) for fold in index)

    @lru_cache(maxsize=None)
    def rest(i: int) -> str | None:
        if i == len(word):
            return ""
        options = []
        for size in range(1, min(longest, len(word) - i) + 1):
            piece = word[i:i + size]
            chars = index.get(piece)
            if chars is None and size == 1 and ord(piece) >= 0x20000 and _WORD.match(piece):
                chars = (piece,)  # nothing up there has a case: it folds to itself
            if chars is None:
                continue
            tail = rest(i + size)
            if tail is not None:
                options.append(_bracket(tuple((ord(c), ord(c)) for c in chars)) + tail)
            if sum(len(o) for o in options) > MAX_LENGTH:
                raise Unsupported("search word too complex")
        if not options:
            return None
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    body = rest(0)
    if body is None:
        return "[^\\u0001-\\U0010ffff]"  # no word folds to this: nothing matches
    w = _word_bracket()
    return f"(?<!{w}){body}(?!{w})"


def search_patterns(text: str) -> list[str]:
    """One pattern per distinct word of ``text``, as ``search`` compares them."""
    return [word_pattern(word) for word in sorted(words(text))]


@lru_cache(maxsize=256)
def date_pattern(part: str, number: int) -> str:
    """ARE for a text starting ``YYYY-MM-DD`` whose ``part`` is ``number``, reading digits
    exactly as the evaluator's ``DATE_PREFIX`` and ``int()`` do."""
    any_digit = _bracket(_date_digits(None))
    fields = {"year": [any_digit] * 4, "month": [any_digit] * 2, "day": [any_digit] * 2}
    width = len(fields[part])
    digits = f"{number:0{width}d}"
    if len(digits) != width:
        raise Unsupported("date part out of range")
    fields[part] = [_bracket(_date_digits(int(d))) for d in digits]
    return "^" + "".join(fields["year"]) + "-" + "".join(fields["month"]) + "-" + "".join(fields["day"])
