"""The MongoDB query semantics the compiler relies on, checked on the engine itself.

Each test states one documented MongoDB behaviour (the query operator pages
and "Comparison/Sort Order" of the MongoDB manual) with raw filter
documents, independent of doqu's compiler. They run on mongomock and, when
DOQU_TEST_MONGODB_URL is set, on a real server. Where mongomock is known to
behave differently, the test still asserts MongoDB's behaviour and is a
strict expected failure on mongomock only: if mongomock is fixed, the xfail
turns into a failure and the note in docs/mongodb.md must go.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

bson = pytest.importorskip("bson")
Decimal128 = bson.decimal128.Decimal128


def ids(collection: Any, filter: dict[str, Any]) -> set[str]:
    return {doc["_id"] for doc in collection.find(filter)}


def load(collection: Any, **docs: Any) -> None:
    collection.insert_many([{"_id": key, **doc} for key, doc in docs.items()])


# -- arrays: why scalar conditions carry {$not: {$type: 'array'}} ------------------------

def test_equality_matches_an_array_element(collection: Any) -> None:
    load(collection, a={"tags": ["tea", "jazz"]}, b={"tags": "jazz"}, c={"tags": ["tea"]})
    assert ids(collection, {"tags": {"$eq": "jazz"}}) == {"a", "b"}


def test_equality_looks_one_level_into_arrays_only(collection: Any) -> None:
    load(collection, a={"n": [[1]]}, b={"n": [1]})
    assert ids(collection, {"n": {"$eq": 1}}) == {"b"}


def test_comparison_matches_if_any_element_matches(collection: Any) -> None:
    load(collection, a={"x": [1, 9]}, b={"x": 3})
    assert ids(collection, {"x": {"$gt": 5}}) == {"a"}


def test_regex_matches_array_elements_and_only_strings(collection: Any) -> None:
    load(collection, a={"x": ["ab"]}, b={"x": 1}, c={"x": "abc"}, d={"x": "1"})
    assert ids(collection, {"x": {"$regex": "^a"}}) == {"a", "c"}
    assert ids(collection, {"x": {"$regex": "1"}}) == {"d"}


def test_type_array_matches_the_array_itself(collection: Any) -> None:
    load(collection, a={"x": []}, b={"x": [1]}, c={"x": 1}, d={})
    assert ids(collection, {"x": {"$type": "array"}}) == {"a", "b"}
    assert ids(collection, {"x": {"$not": {"$type": "array"}}}) == {"c", "d"}


def test_whole_array_equality_also_matches_an_element_equal_to_the_operand(
        collection: Any, mongomock_differs: Any) -> None:
    mongomock_differs("an array operand only matches the whole array, not an element")
    load(collection, a={"x": ["jazz"]}, b={"x": [["jazz"], "x"]}, c={"x": "jazz"})
    assert ids(collection, {"x": {"$elemMatch": {"$eq": ["jazz"]}}}) == {"b"}
    assert ids(collection, {"x": {"$eq": ["jazz"]}}) == {"a", "b"}


def test_elem_match_with_a_type_guard_skips_nested_arrays(collection: Any) -> None:
    # what doqu sends, exact on MongoDB and on mongomock alike
    load(collection, a={"x": [5]}, b={"x": [[5]]}, c={"x": 5}, d={"x": [True]})
    body = {"$eq": 5, "$type": "number", "$not": {"$type": "array"}}
    assert ids(collection, {"x": {"$elemMatch": body}}) == {"a"}


def test_elem_match_tests_elements_without_going_deeper(collection: Any,
                                                       mongomock_differs: Any) -> None:
    mongomock_differs("$elemMatch also looks into nested arrays")
    load(collection, a={"x": [5]}, b={"x": [[5]]}, c={"x": 5})
    assert ids(collection, {"x": {"$elemMatch": {"$eq": 5, "$type": "number"}}}) == {"a"}


def test_dotted_paths_reach_into_arrays_of_documents(collection: Any) -> None:
    load(collection, a={"p": [{"q": 1}]}, b={"p": {"q": 1}}, c={"p": "q"})
    assert ids(collection, {"p.q": {"$eq": 1}}) == {"a", "b"}
    assert ids(collection, {"p.q": {"$exists": True}}) == {"a", "b"}


# -- absent values and negation -----------------------------------------------------------

def test_nor_is_true_on_absent_fields(collection: Any) -> None:
    load(collection, a={"x": 5}, b={"x": 6}, c={})
    assert ids(collection, {"$nor": [{"x": {"$eq": 5}}]}) == {"b", "c"}


def test_ne_null_is_false_on_a_path_through_a_scalar(collection: Any, mongomock_differs: Any) -> None:
    mongomock_differs("{'a.b': {'$ne': None}} matches when 'a' is a string")
    load(collection, a={"a": "text"}, b={"a": {"b": 1}}, c={"a": {"b": None}})
    assert ids(collection, {"a.b": {"$ne": None}}) == {"b"}


def test_ne_null_rejects_arrays_holding_null(collection: Any) -> None:
    load(collection, a={"x": [1, None]}, b={"x": [1]})
    assert ids(collection, {"x": {"$ne": None}}) == {"b"}


# -- kinds: why doqu's no-cross-type rule holds natively ---------------------------------------

def test_type_number_covers_every_numeric_type_but_not_bool(collection: Any) -> None:
    load(collection, a={"x": 1}, b={"x": 2.5}, c={"x": Decimal128("3")}, d={"x": 2**40},
         e={"x": True}, f={"x": "1"})
    assert ids(collection, {"x": {"$type": "number"}}) == {"a", "b", "c", "d"}
    assert ids(collection, {"x": {"$type": "bool"}}) == {"e"}


def test_a_number_never_equals_a_boolean(collection: Any, mongomock_differs: Any) -> None:
    mongomock_differs("compares True == 1 as Python does")
    load(collection, a={"x": 1}, b={"x": True}, c={"x": 1.0})
    assert ids(collection, {"x": {"$eq": 1}}) == {"a", "c"}
    assert ids(collection, {"x": {"$in": [True]}}) == {"b"}


def test_order_operators_keep_to_one_type_bracket(collection: Any) -> None:
    load(collection, a={"x": 7}, b={"x": "7"}, c={"x": True}, d={"x": "Z"})
    assert ids(collection, {"x": {"$gt": 5}}) == {"a"}
    assert ids(collection, {"x": {"$gt": "5"}}) == {"b", "d"}


def test_lists_holding_booleans_differ_from_lists_of_numbers(collection: Any,
                                                            mongomock_differs: Any) -> None:
    mongomock_differs("compares [True] == [1] as Python does")
    load(collection, a={"x": [True]}, b={"x": [1]})
    assert ids(collection, {"x": {"$eq": [1]}}) == {"b"}


def test_decimal128_equals_numbers_of_the_same_value(collection: Any, mongomock_differs: Any) -> None:
    mongomock_differs("a Decimal128 never equals an int or a float")
    load(collection, a={"x": Decimal128("5")}, b={"x": Decimal128("0.1")})
    assert ids(collection, {"x": {"$eq": 5}}) == {"a"}
    assert ids(collection, {"x": {"$eq": 0.1}}) == set()  # the double 0.1 is not exactly 1/10


def test_decimal128_values_equal_whatever_their_trailing_zeros(collection: Any,
                                                               mongomock_differs: Any) -> None:
    mongomock_differs("compares Decimal128 values by their representation")
    load(collection, a={"x": Decimal128("9.990")}, b={"x": Decimal128("9.99")})
    assert ids(collection, {"x": {"$eq": Decimal128("9.99")}}) == {"a", "b"}


def test_decimal128_compares_with_numbers(collection: Any, mongomock_differs: Any) -> None:
    mongomock_differs("raises NotImplementedError comparing a Decimal128")
    load(collection, a={"x": Decimal128("5.5")}, b={"x": 4})
    assert ids(collection, {"x": {"$gt": 5}}) == {"a"}


def test_sub_documents_compare_in_field_order(collection: Any, mongomock_differs: Any) -> None:
    mongomock_differs("compares sub-documents regardless of field order")
    load(collection, a={"d": {"a": 1, "b": 2}})
    assert ids(collection, {"d": {"$eq": {"b": 2, "a": 1}}}) == set()
    assert ids(collection, {"d": {"$eq": {"a": 1, "b": 2}}}) == {"a"}


# -- order ------------------------------------------------------------------------------------

def test_sort_order_of_scalars_matches_doqus(collection: Any) -> None:
    # absent < numbers (by value, across types) < strings (by code point) < booleans
    load(collection, t={"x": True}, f={"x": False}, s1={"x": "b"}, s2={"x": "B"}, s3={"x": "é"},
         n1={"x": 10}, n2={"x": 2.5}, n3={"x": -1}, none={})
    order = [doc["_id"] for doc in collection.find({}, sort=[("x", 1)])]
    assert order == ["none", "n3", "n2", "n1", "s2", "s1", "s3", "f", "t"]
    assert [doc["_id"] for doc in collection.find({}, sort=[("x", -1)])] == order[::-1]


def test_decimal128_sorts_among_numbers(collection: Any, mongomock_differs: Any) -> None:
    mongomock_differs("cannot sort Decimal128 values")
    load(collection, a={"x": Decimal128("2.5")}, b={"x": 3}, c={"x": 2})
    assert [d["_id"] for d in collection.find({}, sort=[("x", 1)])] == ["c", "a", "b"]


def test_an_array_sorts_by_its_smallest_element(collection: Any, mongomock_differs: Any) -> None:
    # why doqu sorts in Python when a sort path holds an array
    mongomock_differs("does not sort arrays by their smallest element")
    load(collection, a={"x": [9, 0]}, b={"x": 5}, c={"x": 3})
    assert [d["_id"] for d in collection.find({}, sort=[("x", 1)])] == ["a", "c", "b"]


# -- distinct values ------------------------------------------------------------------------------

def test_group_keeps_whole_arrays_and_numbers_by_value(collection: Any) -> None:
    load(collection, a={"x": [1, 2]}, b={"x": [1, 2]}, c={"x": 3}, d={"x": 3.0}, e={"x": True}, f={})
    groups = [row["_id"] for row in collection.aggregate([{"$group": {"_id": "$x"}}])]
    assert len(groups) == 4  # [1, 2]; 3 and 3.0 together; True apart from numbers; absent
    assert [1, 2] in groups and None in groups
    assert sum(1 for g in groups if g is True) == 1
    assert sum(1 for g in groups if not isinstance(g, bool) and g == 3) == 1


def test_decimal_round_trip_is_exact(collection: Any) -> None:
    value = Decimal("3.141592653589793238462643383279")
    collection.insert_one({"_id": "d", "x": Decimal128(value)})
    assert collection.find_one({"_id": "d"})["x"].to_decimal() == value
