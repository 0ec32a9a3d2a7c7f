"""Translated regular expressions run by Tokyo Cabinet agree with Python's ``re``.

Each corpus is stored as doqu stores strings (escaped where needed), every
pattern the translator accepts for that corpus is run by the library, and
the keys must be exactly those Python's ``re.search`` finds. The process
locale stays whatever it is (C.UTF-8 here): the translation must not depend
on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from doqu.ext.tokyo_cabinet import _binding as tc
from doqu.ext.tokyo_cabinet import codec
from doqu.ext.tokyo_cabinet.regex import translate

ASCII = ["abc", "ABC", "a.b", "a\nb", "x\n", "tea, tea, tea", "100% [sic] o_O", "plays jazz",
         "0150", "1993-05-17", "a b", "a]b", "a-b", "^caret", "dollar$", "back\\slash",
         "tab\there", "s", "S", "k", "ab", "b", "x"]
UNICODE = ASCII + ["aéb", "Åsa", "Zoë", "\u017f", "\u212a", "ſtop", "\u0131", "İ", "٣٤", "é",
                   "éé", "a\u00a0b", "日本語"]
ESCAPED = UNICODE + ["", "a\x00b", "\x00", "a\x01b", "x\x00\n"]

PATTERNS = [
    "a", "^a", "b$", "^abc$", "a|b", "[ab]+", "a.b", "^.$", r"\d", r"\d{4}", r"\w+", r"\s",
    r"\S", r"\W", r"\D", "[^a]", "[^ab]b", "(a)?b", "x*y", "^x\n?$", "é", "é+", "^(é|a)",
    "[]]", "[-]", "[a-c]{2}", r"\.", r"\$", r"\^", r"\\", r"\[", "100%", r"(tea, ){2}t",
    r"^\w+ \w+$", r"\d+%", "s", "k", "K", "S", "^s", "i", "[sk]", "o_O", "$^", r"\Aab",
    r"b\Z", "b$\n?", "(?:a|b)c", "a{2,3}", "a{,2}b", "ab*?", "(a|b)+$",
]


def _store(db: Any, corpus: list[str]) -> None:
    for i, text in enumerate(corpus):
        raw, escaped = codec.escape_string(text)
        cols = {b"v": raw}
        if escaped:
            cols[b"\x01t:v"] = b"z"
        db.put(str(i).encode(), cols)


@pytest.mark.parametrize("corpus_name,corpus", [("ascii", ASCII), ("unicode", UNICODE),
                                                ("escaped", ESCAPED)])
@pytest.mark.parametrize("caseless", [False, True], ids=["matches", "matches_caseless"])
def test_translated_patterns_agree_with_python(tmp_path: Path, corpus_name: str,
                                               corpus: list[str], caseless: bool) -> None:
    kinds: set[str] = set()
    for text in corpus:
        kinds |= set(codec.value_kinds(text))
    db = tc.TableDB()
    db.open(str(tmp_path / "rx.tct"), tc.OWRITER | tc.OCREAT)
    try:
        _store(db, corpus)
        translated = 0
        for pattern in PATTERNS:
            expr = translate(pattern, caseless, kinds)
            if expr is None:
                continue
            translated += 1
            with db.query() as query:
                query.addcond(b"v", tc.QCSTRRX, expr)
                found = {int(k) for k in query.search()}
            rx = re.compile(pattern, re.IGNORECASE if caseless else 0)
            expected = {i for i, text in enumerate(corpus) if rx.search(text)}
            assert found == expected, (pattern, expr, sorted(corpus[i] for i in found ^ expected))
        assert translated >= 20      # the corpus exercises the translator, not just refusals
    finally:
        db.close()


def test_what_is_translated_where() -> None:
    ascii_only, unicode, escaped = set("s"), set("su"), set("sz")
    assert translate("^[A-C]", False, unicode) == b"^[ABC]"
    assert translate("e$", False, unicode) == b"e(\n)?$"
    assert translate("^b", True, unicode) == b"^[Bb]"
    assert translate("é+", False, unicode) == "((é))+".encode()
    # Unicode-wide constructs only on ASCII-only, unescaped columns
    for pattern in ["a.b", r"\d", r"\w", r"\s", "[^a]"]:
        assert translate(pattern, False, ascii_only) is not None, pattern
        assert translate(pattern, False, unicode) is None, pattern
        assert translate(pattern, False, escaped) is None, pattern
    # Python folds s, k and i to non-ASCII letters too
    assert translate("s", True, ascii_only) == b"[Ss]"
    assert translate("s", True, unicode) is None
    # never: empty matches, look-arounds, back-references, \b, inline flags, $ in the middle
    for pattern in ["x*", "^$", "(?=a)a", r"(a)\1", r"\bfoo", "(?i)a", "a$b", "(?s)a.b"]:
        assert translate(pattern, False, ascii_only) is None, pattern
    assert translate("é", True, unicode) is None
    assert translate("[éa]", False, unicode) is None          # one character, several bytes
    assert translate("[é]", False, unicode) == "(é)".encode()  # (parsed as a literal)
    assert translate("a\x01", False, ascii_only) is None     # the escape's own bytes
