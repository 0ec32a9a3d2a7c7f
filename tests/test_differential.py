"""Differential testing: every engine must answer random queries over random
records exactly as the memory backend (the reference evaluator) does.

Two properties run on every engine of the conformance registry:

* ``test_same_answers_as_the_reference``: small flat records of JSON values
  and single-condition steps; cheap, many examples.
* ``test_rich_documents_same_answers``: nested dicts and lists, every value
  type (dates, datetimes naive and aware, times, Decimals and bytes through
  a declared class), unicode, empty and hostile strings (quotes, ``%``,
  ``_``, ``$``, ``.``, ``\\``, NUL), date-like text, very long text; queries
  with every operator (``year``/``month``/``day`` included), several
  conditions per step, negation, unions, intersections, nested paths,
  multi-key order, slices, indexing, ``count``, ``first``, ``values`` and
  ``delete``. Results must match the reference in keys *and* content.

An engine may refuse a value it cannot hold exactly (a :class:`DoquError`
on save, e.g. NUL in PostgreSQL text): that record is left out on both
sides. Regions with a known, reported disagreement are left out of the
generators (see ``EXCLUDED``); each has a named case in
``tests/test_regressions.py``, and the long profile can put them back with
``DOQU_FUZZ_KNOWN=1``.

``make test`` runs a bounded, derandomised profile; ``make fuzz``
(``DOQU_FUZZ=1``) a long random one (``DOQU_FUZZ_EXAMPLES`` sets the count).
A disagreement found here becomes a named case in ``tests/test_regressions.py``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from doqu import Document, DoquError, get_db
from doqu.conversion import ExactFloat
from doqu.query.evaluator import order_key, same

FUZZ = bool(os.environ.get("DOQU_FUZZ"))
#: Put the value regions of known bugs back into the generators (long profile only).
KNOWN = bool(os.environ.get("DOQU_FUZZ_KNOWN"))
EXAMPLES = int(os.environ.get("DOQU_FUZZ_EXAMPLES", "2000" if FUZZ else "40"))
RICH_EXAMPLES = int(os.environ.get("DOQU_FUZZ_EXAMPLES", "1000" if FUZZ else "30"))
# the long profile runs as long as it takes; the bounded one must stay quick
pytestmark = pytest.mark.timeout(0 if FUZZ else 300)

#: Value regions left out of the generators because of a reported disagreement
#: (the regression test that pins each one down).
EXCLUDED = {
    "integers beyond 64 bits": "test_integers_beyond_64_bits_*",
    "Decimals with more digits than a double holds": "test_decimals_beyond_double_precision_*",
    "Decimals in undeclared fields and inside lists/dicts": "test_decimals_in_undeclared_fields_*",
    "dotted, $- and empty names inside nested dicts": "test_values_of_dicts_with_dotted_and_dollar_names",
    "NUL inside stored strings (SQLite engines only)": "test_strings_holding_nul_compare_and_sort_whole",
}

#: Engines whose stored strings lose everything after a NUL in native comparisons
#: (test_strings_holding_nul_compare_and_sort_whole): their records are saved without NUL
#: unless DOQU_FUZZ_KNOWN=1 (operands keep it).
KNOWN_NUL_GAPS = {"sqlite", "sqlite-memory", "sharded-sqlite", "sharded-mixed", "sharded-mixed-mongodb"}

#: values() checks skipped because of a reported disagreement (unless DOQU_FUZZ_KNOWN=1):
#: shards keeping a Decimal and shards reading a float merge into duplicate values
#: (test_values_of_a_declared_decimal_field_are_distinct).
KNOWN_VALUES_GAPS = {("sharded-mixed", "amount"), ("sharded-mixed-mongodb", "amount")}

PROFILE: dict[str, Any] = {
    "deadline": None, "derandomize": not FUZZ,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                              HealthCheck.data_too_large, HealthCheck.filter_too_much],
}


# -- the small, flat profile ----------------------------------------------------------------

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


@settings(max_examples=EXAMPLES, **PROFILE)
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


# -- the rich profile ------------------------------------------------------------------------

class Rich(Document):
    """Declared types restore what JSON cannot say: dates, times, Decimals, bytes."""

    structure = {"when": dt.datetime, "day": dt.date, "at": dt.time, "amount": decimal.Decimal,
                 "blob": bytes}


UTC = dt.timezone.utc
PLUS_530 = dt.timezone(dt.timedelta(hours=5, minutes=30))
MINUS_8 = dt.timezone(dt.timedelta(hours=-8))

HOSTILE_CHARS = list("aAbBzé ß%_'\".$\\[]*?-0^|(){}+,:;/") + ["\x00", "\t", "\n", "🙂", "İ", "Ω", "\u2028",
                                                              "K", "\u212a", "ſ", "ﬀ"]
SHORT_TEXT = st.text(alphabet=st.sampled_from(HOSTILE_CHARS), max_size=8)
OPERAND_TEXT = st.text(alphabet=st.sampled_from(HOSTILE_CHARS), max_size=6)
WORDS = st.lists(st.sampled_from(["apple", "Apple", "APPLE", "pie", "über", "Über", "straße", "a_b",
                                  "x-y", "O'Neil", "$x", "1.5", "", "ﬀ", "ǅ"]),
                 max_size=4).map(" ".join)
DATE_TEXT = st.sampled_from(["2024-02-29", "1999-12-31T23:59:59.999999", "2000-01-01T00:00:00.000000+00:00",
                             "2024-13-45", "0000-00-00", "2024-02-30T25:61:00", "24-02-29", "2024/02/29",
                             " 2024-02-29", "20240229", "2024-02-2", "9999-12-31"])
LONG_TEXT = st.builds(lambda head, n, tail: head + "xyz" * n + tail,
                      SHORT_TEXT, st.sampled_from([700, 3000]), SHORT_TEXT)
TEXTS = st.one_of(SHORT_TEXT, SHORT_TEXT, WORDS, DATE_TEXT, LONG_TEXT)

INTS = st.one_of(st.integers(-3, 3), st.integers(-10**6, 10**6),
                 st.sampled_from([2**31 - 1, -(2**31), 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]))
if KNOWN:
    INTS = st.one_of(INTS, st.sampled_from([2**63, -(2**63) - 1, 2**70, 2**70 + 1, 10**30]))
FLOATS = st.one_of(
    st.sampled_from([0.5, -1.5, 2.0, 0.1, 0.3, 0.30000000000000004, 1e20, 1e-7, 5e-324, -0.0,
                     1.7976931348623157e308, 123456789.12345678]),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
DEC_TEXTS = ["0.1", "0.5", "2", "-1.50", "1E+3", "9.99", "0.30000000000000004", "-0", "123456789.123456"]
if KNOWN:
    DEC_TEXTS += ["3.14159265358979323846", "12345678901234567890.123456789", "1E+400"]
DECIMALS = st.sampled_from([decimal.Decimal(t) for t in DEC_TEXTS])
DATETIMES = st.sampled_from([
    dt.datetime(2024, 2, 29, 13, 5), dt.datetime(2024, 2, 29, 13, 5, 0, 1), dt.datetime(1999, 12, 31, 23, 59, 59),
    dt.datetime(2000, 1, 1), dt.datetime(2024, 2, 29, 20, 0, tzinfo=UTC),
    dt.datetime(2024, 3, 1, 1, 30, tzinfo=PLUS_530),  # 2024-02-29 20:00 UTC
    dt.datetime(2024, 2, 29, 18, 0, tzinfo=MINUS_8),  # 2024-03-01 02:00 UTC
    dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
])
DATES = st.sampled_from([dt.date(2024, 2, 29), dt.date(1999, 12, 31), dt.date(2000, 1, 1), dt.date(2024, 3, 1),
                         dt.date(1, 1, 1), dt.date(9999, 12, 31)])
TIMES = st.sampled_from([dt.time(0, 0), dt.time(13, 5), dt.time(13, 5, 0, 1), dt.time(23, 59, 59, 999999)])
BLOBS = st.sampled_from([b"", b"\x00", b"\x00\xff", b"abc", b"%_'", bytes(range(40))])

#: Decimals appear in the declared ``amount`` only: undeclared, the reference keeps a Decimal where
#: JSON engines read a float, and values()/order_by differ (test_decimals_in_undeclared_fields_*).
RICH_SCALARS = st.one_of(st.booleans(), INTS, FLOATS, TEXTS, DATETIMES, DATES, TIMES, BLOBS,
                         *([DECIMALS] if KNOWN else []))
#: Names inside nested dicts. ``a.b``, ``$k`` and ``""`` come back escaped from MongoDB's values()
#: (test_mongodb_values_of_dicts_with_escaped_names), so only the long profile with
#: DOQU_FUZZ_KNOWN=1 uses them; tests/reliability/test_hostile.py covers them otherwise.
KEYS = st.sampled_from(["x", "y", "z", "q'r", *(["", "a.b", "$k"] if KNOWN else [])])
RICH_VALUES = st.recursive(
    RICH_SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(KEYS, children, max_size=3)),
    max_leaves=6,
)
NESTED = st.fixed_dictionaries({}, optional={
    "x": RICH_VALUES, "y": RICH_SCALARS,
    "z": st.fixed_dictionaries({}, optional={"w": RICH_SCALARS, "v": st.lists(RICH_SCALARS, max_size=3)}),
})
RICH_RECORD = st.fixed_dictionaries({}, optional={
    "a": RICH_VALUES, "b": RICH_SCALARS, "c": TEXTS, "l": st.lists(RICH_SCALARS, max_size=4),
    "n": st.one_of(NESTED, RICH_SCALARS), "when": DATETIMES, "day": DATES, "at": TIMES,
    "amount": st.one_of(DECIMALS, INTS), "blob": BLOBS,
})
RICH_RECORDS = st.lists(RICH_RECORD, min_size=2, max_size=10)

RICH_PATHS = ["a", "b", "c", "l", "n", "n__x", "n__y", "n__z__w", "n__z__v", "when", "day", "at", "amount",
              "blob", "missing"]
#: Operands that fit each path best (any scalar stays possible, for kinds that never match).
POOLS: dict[str, st.SearchStrategy[Any]] = {
    "when": DATETIMES, "day": st.one_of(DATES, DATETIMES), "at": TIMES, "amount": st.one_of(DECIMALS, INTS, FLOATS),
    "blob": BLOBS, "c": TEXTS,
}
PATTERNS = st.sampled_from(["a", "^a", "b$", "é", "a|b", "[ab]+", r"\d", "a.b", r"\s", "(a)?b", "^$", "^.{3}$",
                            r"\w+", "A", "ß", "^2024-02", r"\.", "[%_]", r"\\", "x{2,}", "^(ab|ba)*$", "İ", "k"])


def _rich_operand(path: str, op: str) -> st.SearchStrategy[Any]:
    pool = POOLS.get(path, RICH_SCALARS)
    typed = st.one_of(pool, pool, pool, RICH_SCALARS, OPERAND_TEXT)
    if op == "exists":
        return st.booleans()
    if op == "between":
        return st.tuples(typed, typed)
    if op in ("in", "contains_any"):
        return st.lists(st.one_of(typed, RICH_VALUES), max_size=3)
    if op in ("startswith", "endswith"):
        return st.one_of(OPERAND_TEXT, DATE_TEXT)
    if op == "search":
        return st.one_of(WORDS, OPERAND_TEXT)
    if op in ("matches", "matches_caseless"):
        return PATTERNS
    if op == "year":
        return st.sampled_from([1, 1999, 2000, 2024, 9999, 0, 24])
    if op == "month":
        return st.integers(0, 13)
    if op == "day":
        return st.sampled_from([0, 1, 2, 29, 30, 31, 45])
    if op == "contains":
        return st.one_of(typed, OPERAND_TEXT, st.lists(st.one_of(typed, OPERAND_TEXT), max_size=2))
    return st.one_of(typed, RICH_VALUES)


ALL_OPS = OPS + ["year", "month", "day"]
RICH_LOOKUP = st.tuples(st.sampled_from(RICH_PATHS), st.sampled_from(ALL_OPS)).flatmap(
    lambda po: st.tuples(st.just(po[0]), st.just(po[1]), _rich_operand(*po)))
#: A step is a kind and one or two lookups (two lookups in one where() are ANDed).
RICH_STEPS = st.lists(st.tuples(st.sampled_from(["where", "where_not", "or", "or_not", "and_or"]),
                                st.lists(RICH_LOOKUP, min_size=1, max_size=2)), max_size=4)
RICH_ORDER = st.lists(st.sampled_from(["a", "b", "c", "n__x", "n__z__w", "when", "day", "at", "amount", "blob",
                                       "l", "missing"]), max_size=3, unique=True).flatmap(
    lambda names: st.tuples(*(st.sampled_from([n, "-" + n]) for n in names)).map(list))


def _conds(lookups: list[Any]) -> dict[str, Any]:
    return {f"{path}__{op}": value for path, op, value in lookups}


def build_rich(db: Any, steps: list[Any], order: list[str]) -> Any:
    def base() -> Any:
        return Rich.objects(db)

    query = base()
    for kind, lookups in steps:
        conds = _conds(lookups)
        if kind == "where":
            query = query.where(**conds)
        elif kind == "where_not":
            query = query.where_not(**conds)
        elif kind == "or":
            query = query | base().where(**conds)
        elif kind == "or_not":
            query = query | base().where_not(**conds)
        else:  # and_or: AND a union of the lookups taken one by one
            first, *rest = lookups
            union = base().where(**_conds([first]))
            for lookup in rest:
                union = union | base().where_not(**_conds([lookup]))
            query = query & union
    return query.order_by(*order) if order else query


def _exact_number(value: Any) -> Any:
    """Numbers as exact Decimals, so an engine's float and the reference's Decimal compare."""
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        return value
    if isinstance(value, ExactFloat):
        return decimal.Decimal(value.text)
    if isinstance(value, float):
        return decimal.Decimal(repr(value))  # the generators make no NaN
    return decimal.Decimal(value)


def _path(record: Any, path: list[str]) -> Any:
    value = record
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def rich_signature(records: list[tuple[str, Any]], order: list[str]) -> list[tuple[Any, ...]]:
    """Ordering keys of canonical records (numbers made exact): what an ordered result must agree on."""
    sig = []
    for _, record in records:
        parts = []
        for name in order:
            rank, value = order_key(_path(record, name.lstrip("-").split("__")))
            parts.append((rank, _exact_number(value)))
        sig.append(tuple(parts))
    return sig


def assert_same_documents(found: list[Any], expected: list[Any]) -> None:
    by_key = {doc.pk: doc.dump() for doc in expected}
    assert sorted(doc.pk for doc in found) == sorted(by_key)
    for doc in found:
        got, want = doc.dump(), by_key[doc.pk]
        assert got.keys() == want.keys(), (doc.pk, sorted(got), sorted(want))
        for name in want:
            assert same(got[name], want[name]) or _typed_equal(got[name], want[name]), (
                doc.pk, name, got[name], want[name])


def _typed_equal(a: Any, b: Any) -> bool:
    """Declared values (dates, Decimals, bytes) compare as Python values."""
    if isinstance(a, (dt.date, dt.time, bytes)) or isinstance(b, (dt.date, dt.time, bytes)):
        return type(a) is type(b) and a == b
    return False


def _has(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value
    if isinstance(value, (list, tuple)):
        return any(_has(v, needle) for v in value)
    if isinstance(value, dict):
        return any(_has(k, needle) or _has(v, needle) for k, v in value.items())
    return False


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def _guarded(action: Callable[[], Any], steps: list[Any]) -> Any:
    """Run a target query; a DoquError is allowed only for operands holding NUL (a value the
    engine may refuse to store, so it also may refuse to compare with)."""
    try:
        return action()
    except DoquError:
        if any(_has(value, "\x00") for _, lookups in steps for _, _, value in lookups):
            return _REFUSED
        raise


_REFUSED = object()


@settings(max_examples=RICH_EXAMPLES, **PROFILE)
@given(records=RICH_RECORDS, steps=RICH_STEPS, order=RICH_ORDER,
       window=st.tuples(st.integers(0, 4), st.integers(0, 6)), index=st.integers(0, 10),
       values_of=st.lists(st.sampled_from(["a", "b", "n__x", "n__z__w", "when", "day", "amount", "blob", "l"]),
                          min_size=1, max_size=2, unique=True))
def test_rich_documents_same_answers(target: Any, engine: Any, records: list[dict[str, Any]], steps: list[Any],
                                     order: list[str], window: tuple[int, int], index: int,
                                     values_of: list[str]) -> None:
    reference = get_db("memory://")
    target.clear()
    if engine.name in KNOWN_NUL_GAPS and not KNOWN:
        records = _without_nul(records)
    for i, record in enumerate(records):
        key = f"k{i}"
        try:
            target.save(None, record, primary_key=key)
        except DoquError:
            continue  # an engine may refuse a value it cannot hold exactly; the contract allows that
        reference.save(None, record, primary_key=key)
    try:
        expected_query = build_rich(reference, steps, order)
        expected = list(expected_query)
    except DoquError as exc:
        event(f"invalid query: {type(exc).__name__}")
        return  # an invalid query is invalid everywhere (checked by the conformance suite)
    event(f"matches: {min(len(expected), 3)}{'+' if len(expected) >= 3 else ''} of {min(len(reference), 3)}+")
    query = build_rich(target, steps, order)
    note(query.explain())

    found = _guarded(lambda: list(query), steps)
    if found is _REFUSED:
        return
    assert_same_documents(found, expected)
    assert query.count() == len(expected)
    start, size = window
    sliced = query[start:start + size]
    assert sliced.count() == len(expected[start:start + size])
    if order:
        want = rich_signature(list(expected_query.records()), order)
        records = list(query.records())
        assert rich_signature(records, order) == want
        assert rich_signature(list(sliced.records()), order) == want[start:start + size]
        signature_of = dict(zip((key for key, _ in records), rich_signature(records, order)))
        if index < len(expected):
            assert signature_of[query[index].pk] == want[index]
        first = query.first()
        assert (first is None) == (not expected)
        if first is not None:
            assert signature_of[first.pk] == want[0]
    else:
        window_keys = [doc.pk for doc in sliced]
        assert len(window_keys) == len(expected[start:start + size])
        assert set(window_keys) <= {doc.pk for doc in expected}
    if index >= len(expected):
        with pytest.raises(IndexError):
            query[index]
    for field in values_of:
        if (engine.name, field) in KNOWN_VALUES_GAPS and not KNOWN:
            continue
        got, want_values = query.values(field), expected_query.values(field)
        assert len(got) == len(want_values), (field, got, want_values)
        assert all(same(x, y) or _typed_equal(x, y) for x, y in zip(got, want_values)), (field, got, want_values)
    assert query.delete() == len(expected)
    assert len(target) == len(reference) - len(expected)
    assert sorted(target) == sorted(set(reference) - {doc.pk for doc in expected})
