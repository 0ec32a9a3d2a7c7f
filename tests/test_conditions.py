"""The one lookup parser and the condition tree."""

from __future__ import annotations

import pytest

from doqu.errors import LookupProcessorDoesNotExist, QueryError
from doqu.query.conditions import (
    OPERATORS,
    And,
    Leaf,
    Not,
    Or,
    and_,
    conditions_from_kwargs,
    describe,
    make_leaf,
    not_,
    or_,
    parse_lookup,
)


@pytest.mark.parametrize("key,expected", [
    ("name", (("name",), "equals")),
    ("age__gte", (("age",), "gte")),
    ("address__city", (("address", "city"), "equals")),
    ("address__city__startswith", (("address", "city"), "startswith")),
    ("a__b__c__d__in", (("a", "b", "c", "d"), "in")),
    ("year", (("year",), "equals")),            # an operator name alone is a field
    ("in__gt", (("in",), "gt")),
    ("born__year", (("born",), "year")),
    ("gt__year__lt", (("gt", "year"), "lt")),
])
def test_parse_lookup(key: str, expected: tuple) -> None:
    assert parse_lookup(key) == expected


@pytest.mark.parametrize("key", ["", "__", "a__", "__a", "a____b", "a b", "a-b", "1a", "a__1"])
def test_parse_lookup_rejects_malformed_paths(key: str) -> None:
    with pytest.raises(QueryError):
        parse_lookup(key)


def test_structure_turns_a_typo_into_an_unknown_operator() -> None:
    with pytest.raises(LookupProcessorDoesNotExist) as info:
        parse_lookup("age__greater", {"age": int})
    assert "greater" in str(info.value) and "gte" in str(info.value)
    # into a dict or an undeclared field it is a path
    assert parse_lookup("meta__greater", {"meta": dict}) == (("meta", "greater"), "equals")
    assert parse_lookup("other__greater", {"age": int}) == (("other", "greater"), "equals")
    with pytest.raises(QueryError):
        parse_lookup("age__sub__gt", {"age": int})


def test_every_operator_is_parsed() -> None:
    for op in OPERATORS:
        assert parse_lookup(f"f__{op}")[1] == op


def test_conditions_are_never_merged() -> None:
    leaves = conditions_from_kwargs({"age__gt": 1, "age__lt": 9})
    assert leaves == [Leaf(("age",), "gt", 1), Leaf(("age",), "lt", 9)]


def test_none_means_absent() -> None:
    assert make_leaf(("x",), "equals", None) == Leaf(("x",), "exists", False)
    assert make_leaf(("x",), "in", [None, 1]) == Or((Leaf(("x",), "exists", False), Leaf(("x",), "in", (1,))))
    assert make_leaf(("x",), "in", [None]) == Leaf(("x",), "exists", False)
    with pytest.raises(QueryError):
        make_leaf(("x",), "gt", None)
    with pytest.raises(QueryError):
        make_leaf(("x",), "between", (1, None))


@pytest.mark.parametrize("op,value", [
    ("exists", 1), ("between", (1,)), ("between", 5), ("in", "abc"), ("contains_any", 3),
    ("startswith", 1), ("endswith", None), ("matches", "(unclosed"), ("search", 5),
    ("year", "2020"), ("month", True), ("day", 1.5),
])
def test_operands_are_checked(op: str, value: object) -> None:
    with pytest.raises(QueryError):
        make_leaf(("f",), op, value)


def test_unknown_operator_lists_known_ones() -> None:
    with pytest.raises(LookupProcessorDoesNotExist) as info:
        make_leaf(("f",), "nope", 1)
    assert all(op in str(info.value) for op in OPERATORS)


def test_tree_helpers_flatten() -> None:
    a, b, c = (Leaf((n,), "equals", 1) for n in "abc")
    assert and_(None, a) is a
    assert and_(and_(a, b), c) == And((a, b, c))
    assert or_(or_(a, b), c) == Or((a, b, c))
    assert or_(a, None) is None  # "everything" absorbs
    assert not_(not_(a)) == a
    assert not_(a) == Not(a)
    assert and_() is None


def test_nodes_are_hashable_and_immutable() -> None:
    leaf = make_leaf(("tags",), "in", ["a", "b"])
    assert hash(leaf) == hash(make_leaf(("tags",), "in", ("a", "b")))
    with pytest.raises(AttributeError):
        leaf.op = "gt"  # type: ignore[misc]


def test_describe_is_readable() -> None:
    tree = and_(Leaf(("a",), "gt", 1), Not(Leaf(("b", "c"), "equals", "x")))
    assert describe(tree) == "a gt 1 AND NOT (b.c equals 'x')"
