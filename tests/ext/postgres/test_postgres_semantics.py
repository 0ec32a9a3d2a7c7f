"""PostgreSQL answers as the Python evaluator does: regular expressions, search, dates, ordering.

The expected answers come from Python itself (``re``, ``str.casefold``,
:mod:`doqu.query.evaluator`), asked about the same strings the server is
asked about.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from doqu import Document, get_db
from doqu.ext.postgres import regex as rx
from doqu.query.evaluator import DATE_PREFIX, words
from doqu.sql import Unsupported

STRINGS = [
    "", "a", "A", "ab", "a\n", "a\nb", "\n", "abc", "Straße", "STRASSE", "ﬁsh", "FISH", "k", "K", "\u212a",
    "s", "ſ", "ı", "İ", "i", "I", "٣", "3", "x\x1cy", "a b", "tea, tea", "é", "É", "e\u0301", "{", "}",
    "a{2}", "aa", "aaa", "[", "]", "\\", "-", "ab-cd", "_", "a_b", "🎉", "x🎉y", "100% [sic] o_O",
    "Likes tea and jazz", "plays jazz", "\t", "\u00a0", "ǅ", "ǆ", "Ǆ", "µ", "μ", "Μ", "ß", "ẞ", "ss",
    "\u0345", "ι", "Ι", "1993-05-17", "١٩٩٣-٠٥-١٧", "2020-01-01T00:00", "19935-05-17", "1993-5-17",
    "1993-05-1", "x1993-05-17",
]

PATTERNS = [
    "a", "^a", "b$", "é", "a|b", "[ab]+", r"\d", "a.b", r"\s", "(a)?b", r"^\w+ \w+$", r"\d+%",
    r"(tea, ){2}t", r"pla?ys?\s", "^(Lima|Kyiv)$", r"\bjazz\b", r"\Bazz", r"^\D*$", r"[^\w\s]", r"[\W]",
    "a{,2}", "a{2,}", "a{2}", "{", "a{", "x{}", r"\{", "[]a]", "[^]a]", "[a-]", "[-a]", r"[\]]", r"[\\]",
    "k", "K", "s", "ß", "i", "ı", "[a-z]+", "[k-s]", "[^k]", r"\x41", r"\u00e9",
    r"\N{LATIN SMALL LETTER E WITH ACUTE}", "(?:ab)+", "(?P<x>a)b", "(?=a)", "(?<=a)b", "(?<!a)b",
    "(?!a).", r"\Aa", r"a\Z", "$", "^$", "a$|b", r"\.", ".*", r"[.]", "a*?b", "a+?", "μ", "ǅ", "[ǅ]",
    r"\w\d", r"[\d-]", r"\S+", r"\t", r"[\t ]", r"\d{4}-\d{2}", "a{0}b",
]


def _server_matches(raw: Any, pattern: str) -> list[bool]:
    rows = raw.execute('SELECT s COLLATE "C" ~ %s FROM unnest(%s::text[]) WITH ORDINALITY AS u(s, n) '
                       "ORDER BY n", (pattern, STRINGS)).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("caseless", [False, True], ids=["matches", "matches_caseless"])
def test_translated_patterns_match_what_python_matches(raw: Any, caseless: bool) -> None:
    translated = 0
    for pattern in PATTERNS:
        try:
            are = rx.translate(pattern, caseless)
        except Unsupported:
            continue
        translated += 1
        compiled = re.compile(pattern, re.IGNORECASE if caseless else 0)
        expected = [compiled.search(s) is not None for s in STRINGS]
        got = _server_matches(raw, are)
        wrong = [s for s, e, g in zip(STRINGS, expected, got) if e != g]
        assert not wrong, (pattern, caseless, wrong)
    assert translated == len(PATTERNS)  # the whole list is within the translated subset


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?i)a", "a++", "(?#note)a", "(?P=x)", "a{300}", "\\0"])
def test_what_is_not_translated_is_left_to_python(pattern: str) -> None:
    with pytest.raises(Unsupported):
        rx.translate(pattern)


@pytest.mark.parametrize("text", ["tea", "TEA drinks", "strasse", "fish", "k", "s", "jazz tea", "ss",
                                  "ΜΑΣ", "i", "x🎉y", "100"])
def test_search_words_match_as_case_folded_words(raw: Any, text: str) -> None:
    patterns = rx.search_patterns(text)
    corpus = STRINGS + ["Straße rules", "the ﬁsh", "\u212a", "MAS μας", "STRAẞE", "teapot tea", "x 🎉 y"]
    for s in corpus:
        expected = words(text) <= words(s)
        got = all(raw.execute('SELECT %s::text COLLATE "C" ~ %s', (s, p)).fetchone()[0] for p in patterns)
        assert got == expected, (text, s)


@pytest.mark.parametrize("part,number", [("year", 1993), ("month", 5), ("day", 17), ("year", 2020),
                                         ("day", 0)])
def test_date_parts_read_digits_as_the_evaluator_does(raw: Any, part: str, number: int) -> None:
    group = {"year": 1, "month": 2, "day": 3}[part]
    got = _server_matches(raw, rx.date_pattern(part, number))
    for s, g in zip(STRINGS, got):
        match = DATE_PREFIX.match(s)
        assert g == (match is not None and int(match.group(group)) == number), s


def test_case_mappings_end_below_the_scanned_range() -> None:
    # _case_index and _fold_index scan up to U+1FFFF: nothing above has a case
    cased = [c for c in range(0x20000, sys.maxunicode + 1)
             if chr(c).lower() != chr(c) or chr(c).upper() != chr(c) or chr(c).casefold() != chr(c)]
    assert cased == []


def test_queries_run_regex_search_and_dates_in_sql(db: Any) -> None:
    for i, s in enumerate(STRINGS):
        db.save(None, {"s": s}, primary_key=f"k{i}")
    memory = get_db("memory://")
    for i, s in enumerate(STRINGS):
        memory.save(None, {"s": s}, primary_key=f"k{i}")
    for conditions in [{"s__matches": r"\bjazz\b"}, {"s__matches_caseless": "K"}, {"s__search": "strasse"},
                       {"s__year": 1993}, {"s__matches": "a$"}, {"s__matches_caseless": "[a-c]+"}]:
        query = Document.objects(db).where(**conditions)
        assert "python filter: (none)" in query.explain()
        expected = sorted(Document.objects(memory).where(**conditions).keys())
        assert sorted(query.keys()) == expected, conditions
        assert sorted(Document.objects(db).where_not(**conditions).keys()) == sorted(
            Document.objects(memory).where_not(**conditions).keys())


RECORDS = [
    {"v": {"b": 1}}, {"v": [2, 1]}, {"v": {"a": 2}}, {"v": [1]}, {"v": {"a": 1, "z": 0}}, {"v": 5},
    {"v": "x"}, {"v": True}, {"v": [1, 2]}, {"v": {}}, {"v": []}, {}, {"v": {"aa": 1}}, {"v": [[0]]},
    {"v": {"a": [1]}}, {"v": False}, {"v": 1.5}, {"v": "X"},
]


@pytest.mark.parametrize("descending", [False, True])
def test_arrays_and_objects_order_as_the_evaluator_orders_them_even_when_sliced(
        db: Any, descending: bool) -> None:
    memory = get_db("memory://")
    for i, record in enumerate(RECORDS):
        db.save(None, {**record, "i": i}, primary_key=f"k{i:02d}")
        memory.save(None, {**record, "i": i}, primary_key=f"k{i:02d}")
    order = ("-v" if descending else "v", "i")
    expected = Document.objects(memory).order_by(*order).keys()
    query = Document.objects(db).order_by(*order)
    assert query.keys() == expected
    assert "order: -v, i (engine)" in query.explain() or "order: v, i (engine)" in query.explain()
    for start in range(0, len(RECORDS), 3):
        for stop in (start + 1, start + 4, None):
            assert query[start:stop].keys() == expected[start:stop], (start, stop)


NUMBERS = [0, 1, -1, 7, 2 ** 53, 2 ** 53 + 1, 2 ** 60, 10 ** 20, 0.1, 0.5, 2.0, -1.5, 1e16, 2.0 ** 60, 1e20,
           1.5e300, 2.5e-8, 9.99, 19.5]


def test_numbers_compare_as_the_evaluator_compares_what_doqu_wrote(db: Any) -> None:
    import decimal

    for i, number in enumerate(NUMBERS):
        db.save(None, {"n": number}, primary_key=f"k{i:02d}")
    operands = NUMBERS + [decimal.Decimal("9.99"), decimal.Decimal("10"), decimal.Decimal("0.1"),
                          decimal.Decimal(2 ** 60), decimal.Decimal("1E+16"), 3, 0.30000000000000004]
    for operand in operands:
        for op in ("", "__gt", "__gte", "__lt", "__lte"):
            conditions = {f"n{op}": operand}
            query = Document.objects(db).where(**conditions)
            assert "python filter: (none)" in query.explain(), conditions
            # the reference: the evaluator over the records as read back
            want = sorted(k for k, r in db._iter_records() if _evaluate(r, conditions))
            assert sorted(query.keys()) == want, conditions
    # a Decimal with digits no float keeps is left to Python, which rounds it to a float
    fine = Document.objects(db).where(n=decimal.Decimal("0.1000000000000000000001"))
    assert "python filter: n equals" in fine.explain()
    assert fine.keys() == ["k08"]


def _evaluate(record: Any, conditions: dict[str, Any]) -> bool:
    from doqu.query.conditions import conditions_from_kwargs
    from doqu.query.evaluator import compile_predicate

    (leaf,) = conditions_from_kwargs(conditions)
    return compile_predicate(leaf)(record)
