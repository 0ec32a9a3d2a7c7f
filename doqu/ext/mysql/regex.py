"""Python regular expressions → PCRE2 patterns for MariaDB's ``REGEXP``, where they mean the same.

MariaDB (10.5+) matches ``REGEXP`` with PCRE2 in UTF mode with Unicode
properties, so ``\\d``, ``\\w``, ``\\b``, ``.``, ``^``, ``$`` and caseless
matching agree with Python's :mod:`re` on ``str`` patterns. The one
difference found in the common subset is ``\\s``: Python also counts the
separators U+001C..U+001F as whitespace, so ``\\s`` is spelled out. Any
construct outside the checked subset (backreferences, flags, named groups,
POSIX classes, ``\\x``/``\\u`` escapes ...) returns ``None``: that condition
then runs in Python, where it is exact by definition.
"""

from __future__ import annotations

import re

__all__ = ["to_pcre", "word_pattern"]

_SPACE = r"\s\x{1c}-\x{1f}"
_QUANTIFIER = re.compile(r"\{\d+(?:,\d*)?\}")
_GROUP_OPENERS = ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>")
_SAME_ESCAPES = set("dDwWbBntrf")


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int] | None:
    """The PCRE spelling of the escape at ``pattern[i]`` (a backslash) and the index after it."""
    if i + 1 >= len(pattern):
        return None
    char = pattern[i + 1]
    if char == "s":
        return (_SPACE if in_class else f"[{_SPACE}]"), i + 2
    if char == "S":
        return (None if in_class else f"[^{_SPACE}]"), i + 2  # type: ignore[return-value]
    if char in _SAME_ESCAPES:
        if in_class and char in "bB":
            return None  # backspace in a Python class; not worth the doubt
        return "\\" + char, i + 2
    if not in_class and char in "AZ":
        return ("\\A" if char == "A" else "\\z"), i + 2
    if char.isascii() and not char.isalnum() and char.isprintable():
        return "\\" + char, i + 2  # an escaped punctuation mark is that mark in both
    return None


def _char_class(pattern: str, i: int) -> tuple[str, int] | None:
    """Translate ``[...]`` starting at ``pattern[i]``; ``None`` outside the shared subset."""
    out = ["["]
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        out.append("^")
        i += 1
    first = True
    while i < len(pattern):
        char = pattern[i]
        if char == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if char == "\\":
            escaped = _escape(pattern, i, in_class=True)
            if escaped is None or escaped[0] is None:
                return None
            out.append(escaped[0])
            i = escaped[1]
            continue
        if char == "[" or char == "\x00":
            return None  # POSIX classes / nested sets mean different things
        if pattern.startswith(("--", "&&", "~~", "||"), i):
            return None  # Python reserves these for set operations
        out.append("\\]" if char == "]" else char)
        i += 1
    return None


def to_pcre(pattern: str) -> str | None:
    """The PCRE2 pattern that searches like Python's ``re.search(pattern)``, or ``None``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = _escape(pattern, i, in_class=False)
            if escaped is None or escaped[0] is None:
                return None
            out.append(escaped[0])
            i = escaped[1]
        elif char == "[":
            translated = _char_class(pattern, i)
            if translated is None:
                return None
            out.append(translated[0])
            i = translated[1]
        elif char == "(":
            if pattern.startswith("(?", i):
                opener = next((g for g in _GROUP_OPENERS if pattern.startswith(g, i)), None)
                if opener is None:
                    return None  # inline flags, named groups, comments, conditionals
                out.append(opener)
                i += len(opener)
            else:
                out.append(char)
                i += 1
        elif char == "{":
            match = _QUANTIFIER.match(pattern, i)
            if match is None:
                return None  # Python and PCRE2 versions disagree on stray braces
            out.append(match.group())
            i = match.end()
        elif char == "\x00":
            return None
        else:
            out.append(char)
            i += 1
    return "".join(out)


#: Characters whose Unicode case folding is several ASCII letters (``"ß".casefold() == "ss"``);
#: PCRE2's caseless matching maps one character to one, so these are spelled out. (The
#: single-letter ones, K and ſ, PCRE2 matches caselessly itself.) tests/ext/mysql checks
#: this table against every code point.
MULTI_FOLDS = {"ss": "ßẞ", "ff": "ﬀ", "fi": "ﬁ", "fl": "ﬂ", "ffi": "ﬃ", "ffl": "ﬄ", "st": "ﬅﬆ"}
_MAX_WORD_PATTERN = 2000


def word_pattern(word: str) -> str | None:
    """A caseless PCRE2 pattern finding a word that case-folds to ``word`` (ASCII), or None.

    ``word`` is what :func:`doqu.query.evaluator.words` yields: lower-case
    letters, digits and ``_``. Where it contains the folding of a ligature
    or ``ß``, that character is an alternative (``stra(?:ss|[ßẞ])e``). None
    if the alternatives would make the pattern too long.
    """
    rest = [""] * (len(word) + 1)  # rest[i]: the pattern for word[i:], built from the end
    for i in range(len(word) - 1, -1, -1):
        options = [re.escape(word[i]) + rest[i + 1]]
        for folded, chars in MULTI_FOLDS.items():
            if word.startswith(folded, i):
                options.append(f"[{chars}]" + rest[i + len(folded)])
        rest[i] = options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"
        if len(rest[i]) > _MAX_WORD_PATTERN:
            return None  # overlapping alternatives (ssss...) grow fast
    body = rest[0]
    return r"(?i)(?<!\w)" + body + r"(?!\w)"
