"""The reference semantics, checked directly and with generated records."""

from __future__ import annotations

import decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from doqu.query.conditions import Leaf, Not, and_, make_leaf, or_
from doqu.query.evaluator import (
    compile_predicate,
    distinct_values,
    get_path,
    kind,
    order_key,
    same,
    sort_records,
    words,
)


def test_kinds() -> None:
    assert [kind(v) for v in [None, True, 1, 1.5, decimal.Decimal(1), "s", [], {}]] == [
        "null", "bool", "number", "number", "number", "string", "list", "dict"]


def test_same_never_crosses_kinds() -> None:
    assert same(1, 1.0) and same(decimal.Decimal("2"), 2)
    assert not same(True, 1) and not same(1, "1") and not same(0, False)
    assert not same([1, True], [1, 1]) and same({"a": [1]}, {"a": [1.0]})
    assert not same({"a": 1}, {"a": 1, "b": 2})


def test_get_path() -> None:
    rec = {"a": {"b": {"c": 1}}, "s": "text"}
    assert get_path(rec, ("a", "b", "c")) == 1
    assert get_path(rec, ("a", "x")) is None
    assert get_path(rec, ("s", "x")) is None


def test_words_fold_case_and_ignore_punctuation() -> None:
    assert words("Tea, TEA; straße") == {"tea", "strasse"}


def test_order_key_ranks_kinds() -> None:
    values = [True, [1], {"a": 1}, "b", 2, None, False, "a", 1.5]
    assert sorted(values, key=order_key) == [None, 1.5, 2, "a", "b", {"a": 1}, [1], False, True]


def test_sort_records_is_stable_across_keys() -> None:
    recs = [{"a": 1, "b": "y"}, {"a": 1, "b": "x"}, {"b": "z"}, {"a": 0}]
    out = sort_records(list(recs), [(("a",), True), (("b",), False)])
    assert out == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 0}, {"b": "z"}]


def test_distinct_values_dedupe_by_kind() -> None:
    recs = [{"v": 1}, {"v": 1.0}, {"v": True}, {"v": "1"}, {"v": [1]}, {"v": [1]}, {}]
    assert distinct_values(recs, ("v",)) == [1, "1", [1], True]


def test_operators_on_absent_fields_are_false_and_negation_true() -> None:
    for op, value in [("equals", 1), ("gt", 0), ("contains", "a"), ("startswith", ""),
                      ("matches", ".*"), ("year", 2000), ("search", "")]:
        leaf = make_leaf(("x",), op, value)
        assert not compile_predicate(leaf)({})
        assert compile_predicate(Not(leaf))({})


def test_search_matches_whole_words() -> None:
    pred = compile_predicate(Leaf(("t",), "search", "Tea jazz"))
    assert pred({"t": "jazz & TEA!"}) and not pred({"t": "teacup jazz"})


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False),
                    st.sampled_from(["", "a", "b", "A", "ab", "é"]))
records = st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2)
leaves = st.builds(
    lambda f, op, v: make_leaf((f,), op, v),
    st.sampled_from(["x", "y"]),
    st.sampled_from(["equals", "gt", "gte", "lt", "lte"]),
    st.one_of(st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b", ""])),
)
trees = st.recursive(leaves, lambda inner: st.one_of(
    st.builds(lambda a, b: and_(a, b), inner, inner),
    st.builds(lambda a, b: or_(a, b), inner, inner),
    st.builds(Not, inner)), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(tree=trees, record=records)
def test_boolean_algebra_holds(tree: Any, record: dict) -> None:
    pred = compile_predicate(tree)
    assert compile_predicate(Not(tree))(record) is (not pred(record))
    assert compile_predicate(and_(tree, Not(tree)))(record) is False


@settings(max_examples=300, deadline=None)
@given(a=scalars, b=scalars)
def test_comparisons_agree_with_kinds(a: Any, b: Any) -> None:
    if b is None:
        return
    gt = compile_predicate(make_leaf(("x",), "gt", b))({"x": a})
    lte = compile_predicate(make_leaf(("x",), "lte", b))({"x": a})
    comparable = a is not None and kind(a) == kind(b) and kind(a) in ("number", "string")
    assert (gt or lte) is comparable
    assert not (gt and lte)
