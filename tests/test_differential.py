"""Differential testing: every engine must answer random queries over random
records exactly as the memory backend (the reference evaluator) does.

`make test` runs a bounded profile; `make fuzz` runs the long one
(DOQU_FUZZ=1). A disagreement found here becomes a named case in
`tests/test_regressions.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from doqu import Document, DoquError, get_db
from doqu.query.evaluator import order_key, same

FUZZ = bool(os.environ.get("DOQU_FUZZ"))
EXAMPLES = int(os.environ.get("DOQU_FUZZ_EXAMPLES", "2000" if FUZZ else "40"))

FIELDS = ["a", "b", "c"]
TEXT = st.text(alphabet="aAbé %_'\".$\\[]*?-0", max_size=6)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1e20]),
    TEXT,
)
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(st.integers(-3, 3), TEXT), max_size=3),
    st.fixed_dictionaries({}, optional={"x": SCALARS, "y": SCALARS}),
)
RECORDS = st.lists(st.dictionaries(st.sampled_from([*FIELDS, "n"]), VALUES, max_size=4),
                   min_size=0, max_size=8)

PATHS = st.sampled_from(["a", "b", "c", "n__x", "n__y"])


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
        return st.sampled_from(["a", "^a", "b$", "é", "a|b", "[ab]+", r"\d", "a.b", r"\s", "(a)?b"])
    if op in ("year", "month", "day"):
        return st.integers(0, 3)
    if op == "contains":
        return st.one_of(SCALARS, st.lists(SCALARS, max_size=2))
    return VALUES


OPS = ["equals", "exists", "gt", "gte", "lt", "lte", "between", "in", "contains", "contains_any",
       "startswith", "endswith", "matches", "matches_caseless", "search"]
LOOKUPS = st.sampled_from(OPS).flatmap(
    lambda op: st.tuples(PATHS, st.just(op), _operand(op)))
STEPS = st.lists(st.tuples(st.sampled_from(["where", "where_not", "or"]), LOOKUPS), max_size=3)
ORDER = st.lists(st.sampled_from(["a", "-a", "b", "-b", "n__x", "-c"]), max_size=2, unique=True)


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


def order_signature(docs: list[Any], order: list[str]) -> list[tuple[Any, ...]]:
    """What an ordered result must agree on, ties being free."""
    sig = []
    for doc in docs:
        parts = []
        for name in order:
            path = name.lstrip("-").split("__")
            value: Any = doc.dump()
            for p in path:
                value = value.get(p) if isinstance(value, dict) else None
            parts.append(order_key(value))
        sig.append(tuple(parts))
    return sig


@pytest.fixture
def target(engine: Any, tmp_path: Path) -> Any:
    if engine.name == "memory":
        pytest.skip("memory is the reference")
    with engine.open(tmp_path) as db:
        yield db


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not FUZZ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(records=RECORDS, steps=STEPS, order=ORDER, window=st.tuples(st.integers(0, 3), st.integers(0, 6)))
def test_same_answers_as_the_reference(target: Any, records: list[dict[str, Any]], steps: list[Any],
                                       order: list[str], window: tuple[int, int]) -> None:
    reference = get_db("memory://")
    target.clear()
    for i, record in enumerate(records):
        key = f"k{i}"
        try:
            target.save(None, record, primary_key=key)
        except DoquError:
            continue  # an engine may refuse a value it cannot hold exactly; the contract allows that
        reference.save(None, record, primary_key=key)
    try:
        expected_query = build(reference, steps, order)
    except DoquError:
        return  # an invalid query is invalid everywhere (checked by the conformance suite)
    query = build(target, steps, order)
    note(query.explain())

    expected = list(expected_query)
    found = list(query)
    assert sorted(d.pk for d in found) == sorted(d.pk for d in expected)
    assert query.count() == len(expected)
    if order:
        assert order_signature(found, order) == order_signature(expected, order)
        start, size = window
        window_found = query[start:start + size]
        assert order_signature(list(window_found), order) == order_signature(
            expected[start:start + size], order)
    for field in ["a", "n__x"]:
        got, want = query.values(field), expected_query.values(field)
        assert len(got) == len(want) and all(same(x, y) for x, y in zip(got, want)), field
    assert query.delete() == len(expected)
    assert len(target) == len(reference) - len(expected)
