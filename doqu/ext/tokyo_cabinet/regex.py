"""Python regular expressions -> POSIX extended ones Tokyo Cabinet can run.

``matches`` is defined by Python's ``re.search`` on ``str``; Tokyo Cabinet's
``QCSTRRX`` runs glibc ``regexec`` (POSIX ERE) on the column bytes, in the
process locale. They agree only on part of the language, so this module
translates a pattern only when the result is provably the same for every
value the column may hold (:class:`~doqu.ext.tokyo_cabinet.codec.Catalogue`
letters), and returns ``None`` (filter in Python) otherwise:

* always translated: literals, ASCII character classes, groups, ``|``,
  quantifiers (``* + ? {m,n}``, lazy ones too: only *whether* there is a
  match matters), ``^``/``\\A`` and, at the very end, ``$``/``\\Z``
  (Python's ``$`` also matches before a final newline: ``(\\n)?$``);
  a non-ASCII literal becomes a group of its UTF-8 bytes, which means the
  same byte-wise (C locale) and character-wise (UTF-8 locale);
* only where the column holds ASCII strings alone (no ``u``) and no escaped
  or raw NUL strings (no ``z``/``n``): ``.`` (as ``[^\\n]``), negated classes,
  ``\\d \\w \\s`` and their negations (Python's are Unicode-wide);
* case-insensitive matching is spelled out as ``[aA]`` (no locale folding);
  on non-ASCII columns not for ``i``, ``k``, ``s``, which Python also folds
  to ``ı İ``, ``K`` (Kelvin) and ``ſ``;
* never: back-references, look-arounds, ``\\b``, atomic or possessive
  groups, inline flags, and patterns that can match the empty string (an
  empty stored string is ``\\x01``, see the codec).

Literals and classes never contain the bytes ``\\0 \\x01 \\x02``, which the
string escape uses, so a translated pattern matches an escaped value exactly
where Python matches the real one.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

try:  # Python 3.11+
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre  # type: ignore[no-redef]

__all__ = ["translate"]

_ERE_SPECIAL = set(".[]()*+?{}|^$\\")
_DIGITS = set(range(0x30, 0x3A))
_WORD = set(range(0x30, 0x3A)) | set(range(0x41, 0x5B)) | set(range(0x61, 0x7B)) | {0x5F}
_SPACE = {0x20, 0x09, 0x0A, 0x0D, 0x0C, 0x0B, 0x1C, 0x1D, 0x1E, 0x1F}
_ASCII = set(range(0x00, 0x80))
_FORBIDDEN = {0x00, 0x01, 0x02}     # bytes of the string escape
_FOLDS_BEYOND_ASCII = set(map(ord, "iksIKS"))
_MAX_REPEAT = 255                     # RE_DUP_MAX of glibc's POSIX interface


class _Untranslatable(Exception):
    pass


def translate(pattern: str, caseless: bool, kinds: Iterable[str]) -> bytes | None:
    """The ERE for ``pattern`` on a column holding ``kinds``, or ``None``."""
    kinds = frozenset(kinds)
    flags = re.IGNORECASE if caseless else 0
    try:
        compiled = re.compile(pattern, flags)
        if compiled.search("") is not None:
            return None
        parsed = _sre.parse(pattern, flags)
    except (re.error, RecursionError):
        return None
    if parsed.state.flags & ~(re.UNICODE | re.IGNORECASE) or (
            parsed.state.flags & re.IGNORECASE and not caseless):
        return None
    translator = _Translator(caseless, ascii_only="u" not in kinds,
                             plain="z" not in kinds and "n" not in kinds)
    try:
        return translator.sequence(list(parsed), tail=True).encode("utf-8")
    except (_Untranslatable, RecursionError):
        return None


class _Translator:
    def __init__(self, caseless: bool, ascii_only: bool, plain: bool) -> None:
        self.caseless = caseless
        self.ascii_only = ascii_only
        self.plain = plain

    def fail(self) -> None:
        raise _Untranslatable

    def wide(self) -> None:
        """Constructs that match 'any character' need ASCII-only, unescaped data."""
        if not (self.ascii_only and self.plain):
            self.fail()

    def sequence(self, items: list[tuple[Any, Any]], tail: bool) -> str:
        out = []
        for index, (op, av) in enumerate(items):
            out.append(self.item(op, av, tail and index == len(items) - 1))
        return "".join(out)

    def item(self, op: Any, av: Any, tail: bool) -> str:
        if op is _sre.LITERAL:
            return self.literal(av)
        if op is _sre.NOT_LITERAL:
            self.wide()
            return self.bracket(self.fold({av}), negate=True)
        if op is _sre.ANY:
            self.wide()
            return "[^\n]"
        if op is _sre.IN:
            return self.klass(av)
        if op is _sre.BRANCH:
            return "(" + "|".join(self.sequence(list(alt), tail) for alt in av[1]) + ")"
        if op is _sre.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                self.fail()
            return "(" + self.sequence(list(sub), tail) + ")"
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            low, high, sub = av
            body = "(" + self.sequence(list(sub), tail=False) + ")"
            return body + self.quantifier(low, high)
        if op is _sre.AT:
            if av in (_sre.AT_BEGINNING, _sre.AT_BEGINNING_STRING):
                return "^"
            if av is _sre.AT_END and tail:
                return "(\n)?$"
            if av is _sre.AT_END_STRING and tail:
                return "$"
        self.fail()
        raise AssertionError  # unreachable

    def quantifier(self, low: int, high: int) -> str:
        if high is _sre.MAXREPEAT or high == _sre.MAXREPEAT:
            if low == 0:
                return "*"
            if low == 1:
                return "+"
            if low > _MAX_REPEAT:
                self.fail()
            return "{%d,}" % low
        if low > _MAX_REPEAT or high > _MAX_REPEAT:
            self.fail()
        if (low, high) == (0, 1):
            return "?"
        if low == high:
            return "{%d}" % low
        return "{%d,%d}" % (low, high)

    def literal(self, code: int) -> str:
        if code in _FORBIDDEN:
            self.fail()
        if code >= 0x80:
            if self.caseless:
                self.fail()
            return "(" + chr(code) + ")"
        if self.caseless and chr(code).isalpha():
            return self.bracket(self.fold({code}), negate=False)
        char = chr(code)
        return "\\" + char if char in _ERE_SPECIAL else char

    def fold(self, codes: set[int]) -> set[int]:
        if not self.caseless:
            return codes
        out = set(codes)
        for code in codes:
            char = chr(code)
            if char.isalpha():
                if code in _FOLDS_BEYOND_ASCII and not self.ascii_only:
                    self.fail()
                out.add(ord(char.lower()))
                out.add(ord(char.upper()))
        return out

    def klass(self, items: list[tuple[Any, Any]]) -> str:
        members: set[int] = set()
        negate = False
        for op, av in items:
            if op is _sre.NEGATE:
                negate = True
            elif op is _sre.LITERAL:
                if av >= 0x80:
                    self.fail()
                members.add(av)
            elif op is _sre.RANGE:
                low, high = av
                if high >= 0x80:
                    self.fail()
                members.update(range(low, high + 1))
            elif op is _sre.CATEGORY:
                members.update(self.category(av))
            else:
                self.fail()
        members = self.fold(members)
        if negate:
            self.wide()
        return self.bracket(members, negate)

    def category(self, name: Any) -> set[int]:
        self.wide()    # Python's classes are Unicode-wide; ASCII data only
        table = {
            _sre.CATEGORY_DIGIT: _DIGITS, _sre.CATEGORY_NOT_DIGIT: _ASCII - _DIGITS,
            _sre.CATEGORY_WORD: _WORD, _sre.CATEGORY_NOT_WORD: _ASCII - _WORD,
            _sre.CATEGORY_SPACE: _SPACE, _sre.CATEGORY_NOT_SPACE: _ASCII - _SPACE,
        }
        if name not in table:
            self.fail()
        return set(table[name])

    def bracket(self, members: set[int], negate: bool) -> str:
        if members & _FORBIDDEN:
            if negate:       # excluding them is harmless: the data has none (wide())
                members = members - _FORBIDDEN
            else:
                self.fail()
        if not members:
            self.fail()
        chars = sorted(members)
        body = []
        if ord("]") in members:
            body.append("]")
        for code in chars:
            char = chr(code)
            if char in "]-^":
                continue
            body.append(char)
        if ord("^") in members:
            if len(body) == 0 and not negate and ord("-") not in members:
                return "\\^"
            body.append("^")
        if ord("-") in members:
            body.append("-")
        text = "".join(body)
        if text == "^" and not negate:   # "[^]" would be a negation
            return "\\^"
        return "[" + ("^" if negate else "") + text + "]"
