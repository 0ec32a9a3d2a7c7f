"""Tokyo Cabinet against the memory reference on values chosen to break the compiler.

The project-wide differential test (tests/test_differential.py) covers every
engine with ordinary values. This one aims at the places where Tokyo
Cabinet's semantics differ from doqu's and the compiler claims to correct
them: numbers TC cannot parse exactly, floats against Decimals, strings
with NUL, ``\\x01`` or nothing in them, non-ASCII text under regular
expressions and case folding (``ſ``, Kelvin ``K``), nested shadows, mixed
kinds in orderings, and the same queries with column indexes.

``make test`` runs a bounded, derandomised profile; ``DOQU_FUZZ=1`` a long
random one.
"""

from __future__ import annotations

import decimal
import itertools
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from doqu import Document, DoquError, get_db
from doqu.query.evaluator import order_key, same

FUZZ = bool(os.environ.get("DOQU_FUZZ"))
EXAMPLES = int(os.environ.get("DOQU_FUZZ_EXAMPLES", "3000" if FUZZ else "40"))
# the long profile runs as long as it takes; the bounded one must stay quick
pytestmark = pytest.mark.timeout(0 if FUZZ else 300)

TEXT = st.text(alphabet="aAbsSkK\u212a\u017fé\u00c5 ,\n\x00\x01\x02-.0159tru%_[]", max_size=5)
NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2 ** 53, 2 ** 53 + 1, 2 ** 63, -(2 ** 63) - 1, 10 ** 20]),
    st.sampled_from([0.5, -1.5, 0.1, 0.3, 0.30000000000000004, 1e20, 2.5e-08, 2.0, 1e-07,
                     123456789012345.6, -0.0]),
    st.sampled_from([decimal.Decimal(t) for t in
                     ["0.1", "0.5", "2", "-1.50", "1E+3", "9.99", "3.14159265358979323846",
                      "0.30000000000000004"]]),
)
DATES = st.sampled_from(["1993-05-17", "2001-12-31T23:00:00.000000", "true", "17"])
SCALARS = st.one_of(st.booleans(), NUMBERS, TEXT, DATES)
# inside lists and dicts (JSON) a Decimal reads back as a float, on every JSON engine
INNER = st.one_of(st.booleans(), NUMBERS.filter(lambda v: not isinstance(v, decimal.Decimal)),
                  TEXT, DATES)
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(st.integers(-2, 2), TEXT), max_size=3),
    st.fixed_dictionaries({}, optional={
        "x": INNER, "y": INNER,
        "z": st.fixed_dictionaries({}, optional={"w": INNER, "v": st.lists(INNER, max_size=2)}),
    }),
)
FIELDS = ["a", "b", "n"]
RECORDS = st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3), max_size=8)
PATHS = st.sampled_from(["a", "b", "n__x", "n__y", "n__z__w", "n__z"])
PATTERNS = st.sampled_from([
    "a", "^a", "b$", "é", "a|b", "[ab]+", r"\d", "a.b", r"\s", "(a)?b", "s", "k", "^S", "[^a]",
    r"\w+", "[0-9]{2}", r"^\d{4}-", "e$", "tru", "^$", "x*", r"a\.", "[-,]", "é+", r"\W",
])


def _operand(op: str) -> st.SearchStrategy[Any]:
    if op == "exists":
        return st.booleans()
    if op == "between":
        return st.tuples(SCALARS, SCALARS)
    if op in ("in", "contains_any"):
        return st.lists(SCALARS, max_size=3)
    if op in ("startswith", "endswith", "search"):
        return TEXT
    if op in ("matches", "matches_caseless"):
        return PATTERNS
    if op in ("year", "month", "day"):
        return st.sampled_from([1993, 5, 17, 12, 31, 2001, 0, -1, 10000])
    if op == "contains":
        return st.one_of(SCALARS, st.lists(SCALARS, max_size=2))
    return VALUES


OPS = ["equals", "exists", "gt", "gte", "lt", "lte", "between", "in", "contains",
       "contains_any", "startswith", "endswith", "matches", "matches_caseless", "search",
       "year", "month", "day"]
LOOKUPS = st.sampled_from(OPS).flatmap(lambda op: st.tuples(PATHS, st.just(op), _operand(op)))
STEPS = st.lists(st.tuples(st.sampled_from(["where", "where_not", "or"]), LOOKUPS), max_size=3)
ORDER = st.lists(st.sampled_from(["a", "-a", "b", "-b", "n__x", "-n__z__w"]), max_size=2,
                 unique=True)
INDEXES = st.lists(st.sampled_from(["a", "b:decimal", "a:lexical", "n__x", "b:token",
                                   "a:search", "b:qgram"]), max_size=2, unique=True)


def build(db: Any, steps: list[Any], order: list[str]) -> Any:
    query = Document.objects(db)
    for kind, (path, op, value) in steps:
        cond = {f"{path}__{op}": value}
        if kind == "where":
            query = query.where(**cond)
        elif kind == "where_not":
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


@pytest.fixture
def new_target(open_tc: Any) -> Any:
    """A fresh file per example, so no index or setting leaks into the next one."""
    count = itertools.count()
    return lambda: open_tc(f"diff{next(count)}.tct")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not FUZZ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(records=RECORDS, steps=STEPS, order=ORDER, indexes=INDEXES,
       window=st.tuples(st.integers(0, 3), st.integers(0, 5)))
def test_same_answers_as_the_reference(new_target: Any, records: list[dict[str, Any]],
                                       steps: list[Any], order: list[str], indexes: list[str],
                                       window: tuple[int, int]) -> None:
    reference = get_db("memory://")
    target = new_target()
    try:
        _check(reference, target, records, steps, order, indexes, window)
    finally:
        target.disconnect()


def _check(reference: Any, target: Any, records: list[dict[str, Any]], steps: list[Any],
           order: list[str], indexes: list[str], window: tuple[int, int]) -> None:
    for i, record in enumerate(records):
        target.save(None, record, primary_key=f"k{i}")
        reference.save(None, record, primary_key=f"k{i}")
    if indexes:
        target.ensure_index(*indexes)
    try:
        expected_query = build(reference, steps, order)
    except DoquError:
        return
    query = build(target, steps, order)
    note(query.explain())
    expected = list(expected_query)
    found = list(query)
    assert sorted(d.pk for d in found) == sorted(d.pk for d in expected)
    assert query.count() == len(expected)
    for doc in found:
        assert all(same(doc[k], v) for k, v in reference.get(Document, doc.pk).items())
    if order:
        assert signature(found, order) == signature(expected, order)
        start, size = window
        assert signature(list(query[start:start + size]), order) == signature(
            expected[start:start + size], order)
    for name in ["a", "n__x"]:
        got, want = query.values(name), expected_query.values(name)
        assert len(got) == len(want) and all(same(x, y) for x, y in zip(got, want)), name
    assert query.delete() == len(expected)
    assert sorted(target) == sorted(set(reference) - {d.pk for d in expected})
