"""Every operator, with the awkward cases: types never cross, absent is false,
strings compare by code point. Expected keys are worked out by hand from
``data.PEOPLE``."""

from __future__ import annotations

from typing import Any

import pytest

from doqu.testing.conformance.data import Person, key_set, load_people

CASES: list[tuple[dict[str, Any], set[str]]] = [
    # equals, with no cross-type matches
    ({"city": "Oslo"}, {"a", "c"}),
    ({"age": 17}, {"b", "g"}),
    ({"age": 22}, set()),
    ({"age": "22"}, {"d"}),
    ({"score": 8}, {"e"}),
    ({"score": 8.0}, {"e"}),
    ({"active": True}, {"a", "f"}),
    ({"active": 1}, {"e"}),
    ({"active": False}, {"b"}),
    ({"active": None}, {"c", "d", "g"}),
    ({"tags": ["jazz"]}, {"b"}),
    ({"tags": []}, {"c"}),
    ({"address": {"city": "Rome"}}, {"b"}),
    ({"name__equals": "bob"}, {"b"}),
    # nested paths
    ({"address__city": "Oslo"}, {"a"}),
    ({"address__city__startswith": "B"}, {"c"}),
    ({"address__zip__matches": r"^\d{4}$"}, {"a"}),
    # exists
    ({"age__exists": True}, {"a", "b", "c", "d", "e", "g"}),
    ({"age__exists": False}, {"f"}),
    ({"tags__exists": True}, {"a", "b", "c", "e", "f"}),
    ({"address__city__exists": True}, {"a", "b", "c"}),
    # order comparisons: numbers with numbers, strings with strings
    ({"age__gt": 20}, {"a", "c", "e"}),
    ({"age__gte": 17}, {"a", "b", "c", "e", "g"}),
    ({"age__lt": 31}, {"b", "g"}),
    ({"age__lte": 31}, {"a", "b", "g"}),
    ({"age__gt": "20"}, {"d"}),
    ({"name__gt": "a"}, {"b", "f"}),
    ({"name__lt": "C"}, {"a"}),
    ({"city__gte": "Oslo"}, {"a", "b", "c", "f", "g"}),
    ({"score__gte": 8, "score__lt": 9.5}, {"e"}),
    ({"age__between": (17, 31)}, {"a", "b", "g"}),
    ({"score__between": [7, 9]}, {"b", "e"}),
    # in
    ({"city__in": ["Oslo", "Lima"]}, {"a", "c", "d"}),
    ({"age__in": [17, "22"]}, {"b", "d", "g"}),
    ({"active__in": [None, False]}, {"b", "c", "d", "g"}),
    ({"city__in": []}, set()),
    # contains: substring of a string, element of a list; a list means all
    ({"bio__contains": "tea"}, {"a", "e"}),
    ({"tags__contains": "jazz"}, {"a", "b"}),
    ({"tags__contains": ["tea", "jazz"]}, {"a"}),
    ({"bio__contains": ["tea", "jazz"]}, {"a"}),
    ({"bio__contains": "%"}, {"f"}),
    ({"bio__contains": "_"}, {"f"}),
    ({"bio__contains": "[sic]"}, {"f"}),
    ({"tags__contains_any": ["ski", "books"]}, {"e", "f"}),
    ({"bio__contains_any": ["books", "jazz"]}, {"a", "b", "d"}),
    # startswith / endswith: case-sensitive, no wildcard leaks
    ({"name__startswith": "A"}, {"a"}),
    ({"name__startswith": "a"}, set()),
    ({"city__startswith": "Os"}, {"a", "c"}),
    ({"bio__startswith": "100%"}, {"f"}),
    ({"bio__startswith": "1%"}, set()),
    ({"name__startswith": "_"}, set()),
    ({"name__endswith": "e"}, {"a", "d", "e"}),
    ({"bio__endswith": "o_O"}, {"f"}),
    ({"bio__endswith": "_O"}, {"f"}),
    ({"bio__endswith": "%O"}, set()),
    # regular expressions (searched, not anchored)
    ({"name__matches": "^[A-C]"}, {"a", "c"}),
    ({"name__matches": "o"}, {"b", "c", "g"}),
    ({"name__matches": "e$"}, {"a", "d", "e"}),
    ({"name__matches_caseless": "^b"}, {"b"}),
    ({"name__matches_caseless": "^a"}, {"a"}),
    ({"bio__matches": r"\d+%"}, {"f"}),
    ({"bio__matches": r"^\w+ \w+$"}, {"b", "c", "d"}),
    ({"city__matches": "^(Lima|Kyiv)$"}, {"d", "e"}),
    ({"bio__matches": r"(tea, ){2}t"}, {"e"}),
    ({"bio__matches": r"pla?ys?\s"}, {"b"}),
    # date parts of ISO date and datetime text
    ({"born__year": 1993}, {"a"}),
    ({"born__month": 5}, {"a", "e"}),
    ({"born__day": 31}, {"c"}),
    ({"born__year": 1979}, {"c"}),
    # full-text search: every word, case-insensitive, whole words
    ({"bio__search": "tea"}, {"a", "c", "e"}),
    ({"bio__search": "jazz tea"}, {"a"}),
    ({"bio__search": "TEA drinks"}, {"c"}),
    ({"bio__search": "te"}, set()),
    # several conditions: all must hold
    ({"city": "Oslo", "age__gt": 40}, {"c"}),
]


@pytest.fixture
def people(db: Any) -> Any:
    load_people(db)
    return Person.objects(db)


@pytest.mark.parametrize("conditions,expected", CASES, ids=[repr(c) for c, _ in CASES])
def test_where(people: Any, conditions: dict[str, Any], expected: set[str]) -> None:
    query = people.where(**conditions)
    assert key_set(query) == expected
    assert query.count() == len(expected)


@pytest.mark.parametrize("conditions,expected", CASES, ids=[repr(c) for c, _ in CASES])
def test_where_not_is_the_complement(people: Any, conditions: dict[str, Any],
                                     expected: set[str]) -> None:
    # with one condition, where_not is exactly the complement (absent fields included)
    if len(conditions) != 1:
        pytest.skip("complement only holds per condition")
    assert key_set(people.where_not(**conditions)) == set("abcdefg") - expected


def test_where_not_with_several_conditions_means_none_holds(people: Any) -> None:
    assert key_set(people.where_not(city="Oslo", age=17)) == {"d", "e", "f"}


def test_where_not_on_absent_fields_is_true(people: Any) -> None:
    assert key_set(people.where_not(age__gt=20)) == {"b", "d", "f", "g"}


def test_chained_conditions_on_one_field_both_hold(people: Any) -> None:
    assert key_set(people.where(age__gt=17).where(age__lt=40)) == {"a", "e"}


def test_union(people: Any) -> None:
    query = people.where(city="Rome") | people.where(age__gt=40)
    assert key_set(query) == {"b", "c"}
    assert query.count() == 2


def test_union_of_overlapping_queries_has_no_duplicates(people: Any) -> None:
    query = people.where(city="Oslo") | people.where(age__gt=40)
    assert sorted(query.keys()) == ["a", "c"]


def test_union_then_where(people: Any) -> None:
    query = (people.where(city="Rome") | people.where(city="Oslo")).where(age__lt=40)
    assert key_set(query) == {"a", "b"}


def test_intersection(people: Any) -> None:
    assert key_set(people.where(city="Oslo") & people.where(age__gt=40)) == {"c"}


def test_negated_union(people: Any) -> None:
    query = people.where(city="Rome") | people.where_not(age__exists=True)
    assert key_set(query) == {"b", "f"}


def test_hostile_values_are_data(people: Any, db: Any) -> None:
    hostile = ["it's", 'say "hi"', "'; DROP TABLE documents; --", "a\\b", "$where", "a.b",
               "%", "_", "*", "?", "[", "{}", "ünïcødé ✓", "x" * 5000]
    for i, value in enumerate(hostile):
        db.save(None, {"weird": value}, primary_key=f"h{i}")
    for i, value in enumerate(hostile):
        assert Person.objects(db).where(weird=value).keys() == [f"h{i}"], value
        assert Person.objects(db).where(weird__startswith=value).keys() == [f"h{i}"], value
        assert f"h{i}" in Person.objects(db).where(weird__contains=value).keys(), value
    assert len(db) == len(hostile) + 7
