"""The filter documents doqu sends for each operator.

Expected documents are written by hand from MongoDB's documented query
semantics (see test_mongodb_server_semantics.py for the behaviours relied
on): a scalar condition names the BSON type class and excludes arrays, a
dotted path excludes arrays along the way, negation is ``$nor``, two
conditions on one field are two ``$and`` items.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from decimal import Decimal
from typing import Any

import pytest

from doqu.query.conditions import And, Leaf, Not, Or, and_, conditions_from_kwargs, not_
from doqu.query.evaluator import compile_predicate

bson = pytest.importorskip("bson")
Decimal128 = bson.decimal128.Decimal128

from doqu.ext.mongodb.compiler import NEVER, Unsupported, compile_leaf, compile_tree  # noqa: E402
from doqu.ext.mongodb.numbers import FLOATS_MEET_DECIMALS_AS_FLOATS  # noqa: E402


def where(**conds: Any) -> dict[str, Any]:
    return compile_tree(and_(*conditions_from_kwargs(conds)))


def leaf(key: str, value: Any) -> Any:
    (node,) = conditions_from_kwargs({key: value})
    return node


NOT_ARRAY = {"$not": {"$type": "array"}}
PRESENT_AGE = {"$or": [{"age": {"$type": "array"}},
                       {"$and": [{"age": {"$exists": True}}, {"age": {"$ne": None}}]}]}


# -- equality ------------------------------------------------------------------------------

def test_equals_a_number() -> None:
    assert where(age=17) == {"$and": [
        {"age": {"$eq": 17}}, {"age": {"$type": "number"}}, {"age": NOT_ARRAY}]}


def test_equals_a_boolean_is_not_a_number() -> None:
    assert where(active=True) == {"$and": [
        {"active": {"$eq": True}}, {"active": {"$type": "bool"}}, {"active": NOT_ARRAY}]}


def test_equals_a_string_that_looks_like_an_operator_stays_a_value() -> None:
    assert where(weird="$where") == {"$and": [
        {"weird": {"$eq": "$where"}}, {"weird": {"$type": "string"}}, {"weird": NOT_ARRAY}]}


def test_equals_a_list_compares_the_whole_list() -> None:
    assert where(tags=["jazz"]) == {"$and": [
        {"tags": {"$eq": ["jazz"]}},
        {"tags": {"$not": {"$elemMatch": {"$eq": ["jazz"]}}}}]}


def test_equals_a_one_key_dict_with_an_awkward_key() -> None:
    assert where(address={"c.d": 1}) == {"$and": [
        {"address": {"$eq": {"c%2Ed": 1}}}, {"address": NOT_ARRAY}]}


def test_equals_a_dict_with_several_keys_is_left_to_python() -> None:
    # MongoDB compares sub-documents in field order; doqu does not care about order
    with pytest.raises(Unsupported):
        compile_leaf(leaf("address", {"city": "Oslo", "zip": "0150"}))


def test_equals_none_means_absent() -> None:
    assert where(age=None) == {"$nor": [PRESENT_AGE]}
    assert where(age__exists=True) == PRESENT_AGE


def test_absent_includes_paths_through_lists() -> None:
    # doqu's paths only go through dicts: n.x is absent when n is a list
    present = {"$and": [{"n": NOT_ARRAY}, {"$or": [
        {"n.x": {"$type": "array"}}, {"$and": [{"n.x": {"$exists": True}}, {"n.x": {"$ne": None}}]}]}]}
    assert where(n__x__exists=True) == present
    assert where(n__x=None) == {"$nor": [present]}


def test_nested_path_excludes_arrays_on_the_way() -> None:
    assert where(address__city="Oslo") == {"$and": [
        {"address": NOT_ARRAY},
        {"address.city": {"$eq": "Oslo"}}, {"address.city": {"$type": "string"}},
        {"address.city": NOT_ARRAY}]}


def test_a_top_level_field_named_id_is_not_the_primary_key() -> None:
    assert where(_id=3) == {"$and": [
        {"%5Fid": {"$eq": 3}}, {"%5Fid": {"$type": "number"}}, {"%5Fid": NOT_ARRAY}]}


def test_operands_are_converted_like_stored_values() -> None:
    assert where(day=dt.date(2020, 1, 2))["$and"][0] == {"day": {"$eq": "2020-01-02"}}
    aware = dt.datetime(2020, 6, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert where(at=aware)["$and"][0] == {"at": {"$eq": "2020-06-01T10:00:00.000000+00:00"}}
    # a Decimal that is exactly a double is the same number to MongoDB either way
    assert where(price=Decimal("9.5"))["$and"][0] == {"price": {"$eq": 9.5}}
    assert where(price=Decimal("1E+300"))["$and"][0]["$or"][0]["$and"][0] == {
        "price": {"$eq": Decimal128("1E+300")}}
    assert where(raw=b"\x00\x01")["$and"][0] == {"raw": {"$eq": "AAE="}}


# -- a float and a Decimal compare as floats (doqu), exactly (MongoDB) ----------------------------

float_rule = pytest.mark.skipif(not FLOATS_MEET_DECIMALS_AS_FLOATS,
                                reason="the evaluator compares floats with Decimals exactly")


@float_rule
def test_a_decimal_that_is_no_double_meets_doubles_as_a_float() -> None:
    assert where(price=Decimal("9.99")) == {"$and": [
        {"$or": [
            {"$and": [{"price": {"$eq": Decimal128("9.99")}}, {"price": {"$not": {"$type": "double"}}}]},
            {"$and": [{"price": {"$eq": 9.99}}, {"price": {"$type": "double"}}]}]},
        {"price": {"$type": "number"}}, {"price": NOT_ARRAY}]}


@float_rule
def test_a_float_meets_decimals_as_the_range_that_rounds_to_it() -> None:
    # 1.5 has an even significand and neighbours 1.5 -/+ 2**-52: the decimals that
    # round to it lie within 2**-53 of it, both ends included (ties go to even)
    exact = decimal.Context(prec=100)
    half_ulp = exact.power(Decimal(2), -53)
    up = decimal.Context(prec=34, rounding=decimal.ROUND_CEILING)
    down = decimal.Context(prec=34, rounding=decimal.ROUND_FLOOR)
    low = up.plus(exact.subtract(Decimal(1.5), half_ulp))
    high = down.plus(exact.add(Decimal(1.5), half_ulp))
    assert str(low) == "1.499999999999999888977697537484346"
    assert str(high) == "1.500000000000000111022302462515654"
    assert where(x=1.5) == {"$and": [
        {"$or": [
            {"$and": [{"x": {"$eq": 1.5}}, {"x": {"$not": {"$type": "decimal"}}}]},
            {"$and": [{"x": {"$type": "decimal"}},
                      {"x": {"$gte": Decimal128(low), "$lte": Decimal128(high)}}]}]},
        {"x": {"$type": "number"}}, {"x": NOT_ARRAY}]}


@float_rule
def test_floats_inside_lists_are_left_to_python() -> None:
    with pytest.raises(Unsupported):
        compile_leaf(leaf("x", [1.5]))
    with pytest.raises(Unsupported):
        compile_leaf(leaf("x__contains", Decimal("0.1")))
    assert compile_leaf(leaf("x", [1, Decimal("0.5")]))  # exact doubles are fine


def test_integers_beyond_64_bits_become_exact_decimals_or_python() -> None:
    assert where(n=2**70)["$and"][0] == {"n": {"$eq": Decimal128("1180591620717411303424")}}
    with pytest.raises(Unsupported):  # 40 significant digits: no exact Decimal128
        compile_leaf(leaf("n", 2**130 + 1))


# -- order ---------------------------------------------------------------------------------------

def test_order_comparisons() -> None:
    assert where(age__gt=20) == {"$and": [
        {"age": {"$gt": 20}}, {"age": {"$type": "number"}}, {"age": NOT_ARRAY}]}
    assert where(name__lte="C") == {"$and": [
        {"name": {"$lte": "C"}}, {"name": {"$type": "string"}}, {"name": NOT_ARRAY}]}


def test_order_comparisons_with_unorderable_operands_match_nothing() -> None:
    assert where(age__gt=True) == NEVER
    assert where(age__lt=[1]) == NEVER
    assert NEVER == {"_id": {"$exists": False}}


def test_between() -> None:
    assert where(age__between=(17, 31)) == {"$and": [
        {"age": {"$gte": 17, "$lte": 31}}, {"age": {"$type": "number"}}, {"age": NOT_ARRAY}]}
    assert where(age__between=(1, "z")) == NEVER


def test_two_conditions_on_one_field_are_both_kept() -> None:
    assert where(age__gt=17, age__lt=40) == {"$and": [
        {"age": {"$gt": 17}}, {"age": {"$type": "number"}}, {"age": NOT_ARRAY},
        {"age": {"$lt": 40}}, {"age": {"$type": "number"}}, {"age": NOT_ARRAY}]}


# -- in, contains ------------------------------------------------------------------------------------

def test_in_groups_scalars_by_kind() -> None:
    assert where(age__in=[17, 18, "22", True, [1]]) == {"$or": [
        {"$and": [{"age": {"$in": [17, 18]}}, {"age": {"$type": "number"}}, {"age": NOT_ARRAY}]},
        {"$and": [{"age": {"$eq": "22"}}, {"age": {"$type": "string"}}, {"age": NOT_ARRAY}]},
        {"$and": [{"age": {"$eq": True}}, {"age": {"$type": "bool"}}, {"age": NOT_ARRAY}]},
        {"$and": [{"age": {"$eq": [1]}}, {"age": {"$not": {"$elemMatch": {"$eq": [1]}}}}]}]}


def test_in_nothing_matches_nothing() -> None:
    assert where(city__in=[]) == NEVER


def test_in_with_none_also_admits_absent() -> None:
    assert where(age__in=[None, 5]) == {"$or": [
        {"$nor": [PRESENT_AGE]},
        {"$and": [{"age": {"$eq": 5}}, {"age": {"$type": "number"}}, {"age": NOT_ARRAY}]}]}


def test_contains_a_string_is_an_element_or_a_literal_substring() -> None:
    assert where(bio__contains="50%.") == {"$or": [
        {"$and": [{"bio": {"$type": "array"}},
                  {"bio": {"$elemMatch": {"$eq": "50%.", "$type": "string", "$not": {"$type": "array"}}}}]},
        {"$and": [{"bio": NOT_ARRAY}, {"bio": {"$regex": r"50\%\."}}]}]}


def test_contains_a_number_is_an_element_only() -> None:
    assert where(tags__contains=3) == {"$and": [
        {"tags": {"$type": "array"}},
        {"tags": {"$elemMatch": {"$eq": 3, "$type": "number", "$not": {"$type": "array"}}}}]}


def test_contains_all_and_contains_any() -> None:
    one = {"$and": [{"t": {"$type": "array"}},
                    {"t": {"$elemMatch": {"$eq": 1, "$type": "number", "$not": {"$type": "array"}}}}]}
    two = {"$and": [{"t": {"$type": "array"}},
                    {"t": {"$elemMatch": {"$eq": 2, "$type": "number", "$not": {"$type": "array"}}}}]}
    assert where(t__contains=[1, 2]) == {"$and": [*one["$and"], *two["$and"]]}
    assert where(t__contains_any=[1, 2]) == {"$or": [one, two]}
    assert where(t__contains_any=[]) == NEVER


def test_contains_a_list_inside_a_list_is_left_to_python() -> None:
    with pytest.raises(Unsupported):
        compile_leaf(Leaf(("t",), "contains", ([1],)))


# -- text --------------------------------------------------------------------------------------------

def test_startswith_and_endswith_have_no_wildcards() -> None:
    assert where(bio__startswith="100%") == {"$and": [
        {"bio": NOT_ARRAY}, {"bio": {"$regex": r"^100\%"}}]}
    # not "$": that would also match before a final newline
    assert where(bio__endswith="o_O") == {"$and": [
        {"bio": NOT_ARRAY}, {"bio": {"$regex": r"o_O(?![\s\S])"}}]}


def test_matches_is_rewritten_and_caseless_sets_the_i_option() -> None:
    assert where(name__matches="^[A-C]") == {"$and": [
        {"name": NOT_ARRAY}, {"name": {"$regex": "^[A-C]"}}]}
    assert where(name__matches_caseless="^b") == {"$and": [
        {"name": NOT_ARRAY}, {"name": {"$regex": "^b", "$options": "i"}}]}
    assert where(name__matches="e$") == {"$and": [
        {"name": NOT_ARRAY}, {"name": {"$regex": r"e(?=\x0a?(?![\s\S]))"}}]}


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?i)a", "(?P<x>a)(?P=x)", r"\Bx"])
def test_patterns_outside_the_portable_syntax_are_left_to_python(pattern: str) -> None:
    with pytest.raises(Unsupported):
        compile_leaf(leaf("name__matches", pattern))


def regex_of(filter: dict[str, Any]) -> str:
    (condition,) = [c for c in filter["$and"] if "$regex" in next(iter(c.values()))]
    return str(next(iter(condition.values()))["$regex"])


@pytest.mark.parametrize("op,value,text,expected", [
    ("year", 1993, "1993-05-17", True),
    ("year", 1993, "1993-05-17T10:00:00.000000+00:00", True),
    ("year", 1993, "1994-05-17", False),
    ("year", 1993, "x1993-05-17", False),
    ("year", 1993, "1993-5-17", False),
    ("year", 93, "0093-01-01", True),
    ("month", 5, "1993-05-17", True),
    ("month", 5, "1993-15-17", False),
    ("day", 31, "1979-12-31T23:30:00.000000", True),
    # Arabic-Indic digits: whatever the evaluator's DATE_PREFIX decides
    ("year", 1993, "\u0661\u0669\u0669\u0663-\u0660\u0665-\u0661\u0667", None),
])
def test_date_parts_read_the_leading_iso_date(op: str, value: int, text: str,
                                              expected: bool | None) -> None:
    node = leaf(f"born__{op}", value)
    pattern = regex_of(compile_leaf(node))
    assert pattern.startswith("^")
    reference = compile_predicate(node)({"born": text})
    if expected is not None:
        assert reference is expected
    assert (re.search(pattern, text) is not None) is reference


def test_date_parts_out_of_range_match_nothing() -> None:
    assert where(born__year=10000) == NEVER
    assert where(born__month=-1) == NEVER


def test_search_every_word_as_a_whole_word() -> None:
    filter = where(bio__search="TEA drinks")
    assert filter["$and"][0] == {"bio": NOT_ARRAY}
    patterns = [c["bio"]["$regex"] for c in filter["$and"][1:]]
    assert len(patterns) == 2 and all("$options" not in c["bio"] for c in filter["$and"][1:])
    drinks, tea = patterns  # the words, in sorted order
    assert re.search(tea, "drinks TEA") and re.search(tea, "Tea, tea")
    assert not re.search(tea, "teas") and not re.search(tea, "steam") and not re.search(tea, "te")
    assert re.search(drinks, "DRINKS") and not re.search(drinks, "drink")


def test_search_without_words_matches_any_string() -> None:
    assert where(bio__search="!!") == {"$and": [{"bio": NOT_ARRAY}, {"bio": {"$type": "string"}}]}


# -- combining -----------------------------------------------------------------------------------------

def test_negation_is_nor_so_absent_fields_match() -> None:
    (gt,) = conditions_from_kwargs({"age__gt": 20})
    assert compile_tree(not_(gt)) == {"$nor": [compile_tree(gt)]}


def test_or_and_not_nest() -> None:
    a = Leaf(("city",), "equals", "Rome")
    b = Leaf(("age",), "exists", True)
    tree = Or((a, And((Not(b), Leaf(("x",), "equals", 1)))))
    assert compile_tree(tree) == {"$or": [
        compile_leaf(a), {"$and": [{"$nor": [compile_leaf(b)]}, *compile_leaf(Leaf(("x",), "equals", 1))["$and"]]}]}


def test_no_condition_is_an_empty_filter() -> None:
    assert compile_tree(None) == {}
