"""Ordering, slicing, counting, distinct values, deleting, immutability, explain."""

from __future__ import annotations

from typing import Any

import pytest

from doqu.errors import QueryError
from doqu.testing.conformance.data import Person, key_set, keys, load_people


@pytest.fixture
def people(db: Any) -> Any:
    load_people(db)
    return Person.objects(db)


# -- order_by -------------------------------------------------------------------

def test_order_absent_first_then_numbers_then_strings(people: Any) -> None:
    found = keys(people.order_by("age"))
    assert found[0] == "f"
    assert set(found[1:3]) == {"b", "g"}
    assert found[3:] == ["a", "e", "c", "d"]


def test_order_descending_puts_absent_last(people: Any) -> None:
    found = keys(people.order_by("-age"))
    assert found[:4] == ["d", "c", "e", "a"]
    assert set(found[4:6]) == {"b", "g"}
    assert found[6] == "f"


def test_later_names_break_ties(people: Any) -> None:
    assert keys(people.order_by("age", "name")) == ["f", "g", "b", "a", "e", "c", "d"]
    assert keys(people.order_by("-age", "name")) == ["d", "c", "e", "a", "g", "b", "f"]


def test_strings_order_by_code_point(people: Any) -> None:
    assert keys(people.order_by("name")) == ["a", "c", "d", "e", "g", "b", "f"]
    assert keys(people.order_by("-name")) == ["f", "b", "g", "e", "d", "c", "a"]


def test_order_by_nested_path(people: Any) -> None:
    assert keys(people.order_by("address__city", "name")) == ["d", "e", "g", "f", "c", "a", "b"]


def test_order_across_kinds(people: Any) -> None:
    # absent, then numbers (e: 1), then booleans (False before True)
    assert keys(people.order_by("active", "name")) == ["c", "d", "g", "e", "b", "a", "f"]


def test_later_order_by_replaces_earlier(people: Any) -> None:
    assert keys(people.order_by("name").order_by("-name")) == ["f", "b", "g", "e", "d", "c", "a"]


def test_order_with_filter(people: Any) -> None:
    assert keys(people.where(age__gte=17).order_by("-age", "name")) == ["c", "e", "a", "g", "b"]


# -- slices and indexes ---------------------------------------------------------------

def test_slices(people: Any) -> None:
    ordered = people.order_by("name")
    assert keys(ordered[1:3]) == ["c", "d"]
    assert keys(ordered[5:]) == ["b", "f"]
    assert keys(ordered[:2]) == ["a", "c"]
    assert keys(ordered[10:20]) == []
    assert keys(ordered[2:4][1:]) == ["e"]
    assert ordered[0].pk == "a"
    assert ordered[6].pk == "f"


def test_index_past_the_end_raises_index_error(people: Any) -> None:
    with pytest.raises(IndexError):
        people.order_by("name")[7]
    with pytest.raises(IndexError):
        people.where(city="nowhere")[0]


def test_sliced_count(people: Any) -> None:
    ordered = people.order_by("name")
    assert ordered[1:3].count() == 2
    assert ordered[5:100].count() == 2
    assert ordered[9:].count() == 0


def test_slice_with_filter_and_order(people: Any) -> None:
    assert keys(people.where(age__exists=True).order_by("-name")[1:3]) == ["g", "e"]


def test_negative_index_and_steps_are_refused(people: Any) -> None:
    with pytest.raises(QueryError):
        people[-1]
    with pytest.raises(QueryError):
        people[::2]


def test_filtering_a_sliced_query_is_refused(people: Any) -> None:
    with pytest.raises(QueryError):
        people[:2].where(city="Oslo")


# -- count, len, values -----------------------------------------------------------------

def test_count_and_len(people: Any) -> None:
    assert people.count() == 7
    assert len(people) == 7
    query = people.where(city="Oslo")
    assert query.count() == 2
    assert len(query) == 2


def test_values_distinct_ascending_absent_left_out(people: Any) -> None:
    assert people.values("city") == ["Kyiv", "Lima", "Oslo", "Rome", "Umeå", "oslo"]
    assert people.values("age") == [17, 31, 38.5, 45, "22"]
    assert people.values("score") == [7, 8, 9.5, "8"]
    assert people.values("address__city") == ["Bergen", "Oslo", "Rome"]
    assert people.where(city="Oslo").values("age") == [31, 45]
    assert people.values("no_such_field") == []


def test_values_keeps_bool_and_number_apart(people: Any) -> None:
    found = people.values("active")
    assert len(found) == 3
    assert found[0] == 1 and not isinstance(found[0], bool)
    assert found[1] is False and found[2] is True


# -- delete ------------------------------------------------------------------------------

def test_delete_returns_how_many(people: Any, db: Any) -> None:
    assert people.where(city="Oslo").delete() == 2
    assert people.count() == 5
    assert "a" not in db and "c" not in db


def test_delete_of_a_slice(people: Any, db: Any) -> None:
    assert people.order_by("name")[:2].delete() == 2
    assert key_set(people) == {"b", "d", "e", "f", "g"}


def test_delete_nothing(people: Any) -> None:
    assert people.where(city="nowhere").delete() == 0
    assert people.count() == 7


def test_delete_with_python_side_conditions(people: Any) -> None:
    assert people.where(bio__search="tea").delete() == 3
    assert key_set(people) == {"b", "d", "f", "g"}


# -- immutability and laziness ---------------------------------------------------------------

def test_query_methods_return_new_queries(people: Any) -> None:
    narrowed = people.where(city="Oslo")
    ordered = people.order_by("-name")
    assert people.count() == 7
    assert narrowed.count() == 2
    assert keys(people.order_by("name"))[0] == "a"
    assert keys(ordered)[0] == "f"
    sliced = ordered[:1]
    assert len(keys(ordered)) == 7 and keys(sliced) == ["f"]


def test_query_sees_new_records(people: Any, db: Any) -> None:
    query = people.where(city="Oslo")
    assert query.count() == 2
    db.save(None, {"city": "Oslo"}, primary_key="z")
    assert key_set(query) == {"a", "c", "z"}


def test_explain_says_what_runs_where(people: Any) -> None:
    text = people.where(city="Oslo").where(bio__search="tea").order_by("age").explain()
    assert isinstance(text, str)
    assert "city" in text and "bio" in text and "age" in text


def test_first(people: Any) -> None:
    assert people.order_by("name").first().pk == "a"
    assert people.where(city="nowhere").first() is None
