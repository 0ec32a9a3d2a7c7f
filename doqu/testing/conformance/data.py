"""Shared test data: small, hand-written, with every awkward case on purpose."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from doqu import Document

#: Saved under keys "a".."g". Expected results in the tests are worked out by
#: hand from this table, never copied from a backend's output.
PEOPLE: dict[str, dict[str, Any]] = {
    "a": {"name": "Alice", "age": 31, "city": "Oslo", "tags": ["tea", "jazz"],
          "bio": "Likes tea and jazz", "born": "1993-05-17", "score": 9.5,
          "address": {"city": "Oslo", "zip": "0150"}, "active": True},
    "b": {"name": "bob", "age": 17, "city": "Rome", "tags": ["jazz"], "bio": "plays jazz",
          "born": "2007-01-02", "score": 7, "address": {"city": "Rome"}, "active": False},
    "c": {"name": "Carol", "age": 45, "city": "Oslo", "tags": [], "bio": "drinks TEA",
          "born": "1979-12-31T23:30:00.000000", "address": {"city": "Bergen"}},
    "d": {"name": "Dave", "age": "22", "city": "Lima", "bio": "reads books", "score": "8"},
    "e": {"name": "Eve", "age": 38.5, "city": "Kyiv", "tags": ["tea", "books"],
          "bio": "tea, tea, tea", "born": "1986-05-01", "score": 8, "active": 1},
    "f": {"name": "Åsa", "city": "Umeå", "tags": ["ski"], "active": True, "bio": "100% [sic] o_O"},
    "g": {"name": "Zoë", "age": 17, "city": "oslo", "address": "Oslo"},
}


class Person(Document):
    """Schema-less view (no structure): sees every record."""


class TypedPerson(Document):
    structure = {"name": str, "age": int, "city": str, "born": dt.date}


def load_people(db: Any) -> None:
    for key, record in PEOPLE.items():
        db.save(None, record, primary_key=key)


def keys(query: Iterable[Any]) -> list[str]:
    """Primary keys of a query's results, in result order."""
    return [doc.pk for doc in query]


def key_set(query: Iterable[Any]) -> set[str]:
    return set(keys(query))
