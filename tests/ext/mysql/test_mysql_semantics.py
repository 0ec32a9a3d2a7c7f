"""MariaDB answers as the reference evaluator on the values where SQL most easily goes wrong.

The general differential test (tests/test_differential.py) draws small
values; this one draws the MariaDB traps on purpose: case and trailing
spaces (default collations ignore both), strings that read as numbers
(``"22"``, ``"1e5"``) and booleans that read as 1/0, integers beyond 2**53,
long strings sharing a prefix longer than what ORDER BY compares, arrays
nested in arrays (``JSON_CONTAINS`` looks inside them), patterns outside the
portable subset, dates. Expected answers come from the memory backend (the
reference), and the same queries run once more with every field indexed, so
the generated columns are checked too.
"""

from __future__ import annotations

import decimal
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from doqu import Document, DoquError, get_db
from doqu.query.evaluator import order_key, same

FUZZ = bool(os.environ.get("DOQU_FUZZ"))
EXAMPLES = int(os.environ.get("DOQU_FUZZ_EXAMPLES", "1000" if FUZZ else "30"))

LONG_A = "x" * 300 + "a"
LONG_B = "x" * 300 + "b"
STRINGS = st.sampled_from([
    "a", "A", "a ", " a", "ab", "b", "é", "E", "z", "22", "22.0", "1e5", "-1", "1", "0", "true",
    "", "%", "_", "a_b", "a%b", "Tea time", "tea", "TEA, tea", "2020-05-17", "2020-05-17T10:00:00",
    "x" * 300, LONG_A, LONG_B, "😀", "\u2028", "ß", "ss", "a\\b", 'q"q', "it's",
])
NUMBERS = st.sampled_from([0, 1, -1, 22, 2.5, -0.0, 1e20, 2 ** 53 + 1, 2 ** 60, 0.1, 17, 1.0])
SCALARS = st.one_of(STRINGS, NUMBERS, st.booleans())
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(SCALARS, st.lists(NUMBERS, max_size=2)), max_size=3),
    st.fixed_dictionaries({}, optional={"k": SCALARS, "j": NUMBERS}),
)
RECORDS = st.lists(st.dictionaries(st.sampled_from(["a", "b", "n"]), VALUES, max_size=3),
                   max_size=8)
PATTERNS = st.sampled_from(["a", "^a", "a$", "A", r"\d", r"\s", r"\w+ \w+", "é", "[a-c]", "(?i)a",
                            r"(a)\1", "a{2}", r"\Aa", r"a\Z", "x{300}", "[[:alpha:]]", r"\btea\b"])


def _operand(op: str) -> st.SearchStrategy[Any]:
    if op == "exists":
        return st.booleans()
    if op == "between":
        return st.tuples(SCALARS, SCALARS)
    if op in ("in", "contains_any"):
        return st.lists(SCALARS, max_size=3)
    if op in ("startswith", "endswith", "search"):
        return STRINGS
    if op in ("matches", "matches_caseless"):
        return PATTERNS
    if op in ("year", "month", "day"):
        return st.sampled_from([2020, 5, 17, 0])
    if op == "contains":
        return st.one_of(SCALARS, st.lists(SCALARS, max_size=2))
    return VALUES


OPS = ["equals", "exists", "gt", "gte", "lt", "lte", "between", "in", "contains", "contains_any",
       "startswith", "endswith", "matches", "matches_caseless", "search", "year", "month", "day"]
LOOKUPS = st.sampled_from(OPS).flatmap(
    lambda op: st.tuples(st.sampled_from(["a", "b", "n__k"]), st.just(op), _operand(op)))
STEPS = st.lists(st.tuples(st.sampled_from(["where", "where_not", "or"]), LOOKUPS), max_size=2)
ORDER = st.lists(st.sampled_from(["a", "-a", "b", "-b", "n__k", "-n__k"]), max_size=2, unique=True)


def build(db: Any, steps: list[Any], order: list[str]) -> Any:
    query = Document.objects(db)
    for how, (path, op, value) in steps:
        cond = {f"{path}__{op}": value}
        if how == "where":
            query = query.where(**cond)
        elif how == "where_not":
            query = query.where_not(**cond)
        else:
            query = query | Document.objects(db).where(**cond)
    return query.order_by(*order) if order else query


def signature(docs: list[Any], order: list[str]) -> list[tuple[Any, ...]]:
    out = []
    for doc in docs:
        parts = []
        for name in order:
            value: Any = doc.dump()
            for part in name.lstrip("-").split("__"):
                value = value.get(part) if isinstance(value, dict) else None
            parts.append(order_key(value))
        out.append(tuple(parts))
    return out


def check(db: Any, records: list[dict[str, Any]], steps: list[Any], order: list[str],
          window: tuple[int, int]) -> None:
    reference = get_db("memory://")
    db.clear()
    for i, record in enumerate(records):
        try:
            db.save(None, record, primary_key=f"k{i}")
        except DoquError:
            continue
        reference.save(None, record, primary_key=f"k{i}")
    try:
        expected_query = build(reference, steps, order)
    except DoquError:
        return
    query = build(db, steps, order)
    note(query.explain())
    expected = list(iter(expected_query))
    found = list(iter(query))
    assert sorted(d.pk for d in found) == sorted(d.pk for d in expected)
    assert query.count() == len(expected)
    if order:
        assert signature(found, order) == signature(expected, order)
        start, size = window
        assert signature(list(iter(query[start:start + size])), order) == signature(
            expected[start:start + size], order)
    for name in ("a", "n__k"):
        got, want = query.values(name), expected_query.values(name)
        assert len(got) == len(want) and all(same(x, y) for x, y in zip(got, want)), name


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not FUZZ,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])
CASES = given(records=RECORDS, steps=STEPS, order=ORDER,
              window=st.tuples(st.integers(0, 3), st.integers(1, 4)))


@SETTINGS
@CASES
def test_same_answers_as_the_reference(store: Any, records: list[dict[str, Any]], steps: list[Any],
                                       order: list[str], window: tuple[int, int]) -> None:
    check(store, records, steps, order, window)


@pytest.fixture
def indexed(fresh: Callable[..., Any]) -> Any:
    db = fresh()
    db.ensure_index("a", "b", "n__k", ("a", "b:number"))
    return db


@SETTINGS
@CASES
def test_same_answers_with_generated_column_indexes(indexed: Any, records: list[dict[str, Any]],
                                                    steps: list[Any], order: list[str],
                                                    window: tuple[int, int]) -> None:
    assert indexed.dialect.columns  # the queries below compare the generated columns
    check(indexed, records, steps, order, window)


def test_long_strings_order_past_what_sql_compares(store: Any) -> None:
    # ORDER BY compares 1024 bytes: these differ only after 1100 characters
    prefix = "é" * 1100
    texts = {"k1": prefix + "b", "k2": prefix + "a", "k3": prefix, "k4": "é" * 1099 + "z"}
    for key, text in texts.items():
        store.save(None, {"s": text, "n": int(key[1])}, primary_key=key)
    expected = sorted(texts, key=lambda k: texts[k])
    assert Document.objects(store).order_by("s").keys() == expected
    assert Document.objects(store).order_by("-s").keys() == expected[::-1]
    assert Document.objects(store).order_by("s")[1:3].keys() == expected[1:3]
    assert Document.objects(store).order_by("-s")[:1].keys() == expected[-1:]


def test_decimal_operands_run_in_sql_only_when_exact(store: Any) -> None:
    store.save(None, {"p": decimal.Decimal("0.1")}, primary_key="a")
    store.save(None, {"p": 0.5}, primary_key="b")
    query = Document.objects(store)
    assert query.where(p__gt=decimal.Decimal("0.25")).keys() == ["b"]  # 0.25 is a double: SQL
    assert "python filter: (none)" in query.where(p__gt=decimal.Decimal("0.25")).explain()
    inexact = query.where(p__lt=decimal.Decimal("0.1000000000000000000001"))
    assert "python filter: p lt" in inexact.explain()
    # a float read back against a Decimal operand compares as floats: 0.1 is not below it
    assert inexact.keys() == []
    store.save(None, {"p": 0}, primary_key="c")  # but an integer compares exactly
    assert Document.objects(store).where(p__lt=decimal.Decimal("1E-30")).keys() == ["c"]


def test_strings_that_start_like_numbers_order_as_strings(store: Any) -> None:
    values = {"a": "2024-02-29", "b": ":", "c": "22", "d": "1e5", "e": " 3", "f": 7, "g": True,
              "h": "", "i": -1.5, "j": [1], "k": {"x": 1}}
    for key, value in values.items():
        store.save(None, {"v": value}, primary_key=key)
    reference = get_db("memory://")
    for key, value in values.items():
        reference.save(None, {"v": value}, primary_key=key)
    for order in ("v", "-v"):
        assert (Document.objects(store).order_by(order).keys()
                == Document.objects(reference).order_by(order).keys()), order
