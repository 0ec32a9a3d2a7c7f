"""Hostile field names and values never reach the SQL text: values are bound, odd keys run in Python."""

from __future__ import annotations

import re
from typing import Any

import pytest

from doqu import Document

HOSTILE = ["it's", 'say "hi"', "'; DROP TABLE documents; --", "a\\b", "50%", "%(x)s", "`x`",
           "$.a", "\x00nul", "line\nbreak", "ünï ✓", "' OR 1=1 --", "*/", "?", "%s"]
OPERATORS = ["equals", "startswith", "endswith", "contains", "matches", "search", "gt", "in"]
#: Operators whose SQL has one shape whatever the operand (others add a kind guard for
#: operands that could match a number's text, or a test per word).
SAME_SHAPE = {"equals", "endswith", "contains", "matches", "in"}


@pytest.fixture
def hostile(store: Any) -> Any:
    for i, value in enumerate(HOSTILE):
        store.save(None, {"v": value, "i": i, "nested": {value: i}}, primary_key=f"h{i}")
    store.save(None, {"v": "plain", "i": -1}, primary_key="plain")
    return store


def _operand(op: str, value: str) -> Any:
    if op == "matches":
        return re.escape(value)
    return [value] if op == "in" else value


@pytest.mark.parametrize("op", OPERATORS)
def test_values_are_bound_never_spliced(hostile: Any, op: str) -> None:
    benign = Document.objects(hostile).where(**{f"v__{op}": _operand(op, "benign")}).sql().sql
    for i, value in enumerate(HOSTILE):
        query = Document.objects(hostile).where(**{f"v__{op}": _operand(op, value)})
        sql = query.sql()
        if op in SAME_SHAPE and query._plan().residual is None:
            assert sql.sql == benign, (op, value)  # the value changed only the parameters
        if value != "%s":  # that one is the placeholder itself
            assert value not in sql.sql, (op, value)
        found = query.keys()
        if op != "gt":  # each record holds the value itself (search with no words: any string)
            assert f"h{i}" in found, (op, value)


def test_hostile_keys_inside_operands_stay_out_of_the_sql(hostile: Any) -> None:
    for i, value in enumerate(HOSTILE):
        query = Document.objects(hostile).where(nested={value: i})
        if value != "%s":
            assert value not in query.sql().sql, value
        assert query.keys() == [f"h{i}"], (value, query.explain())


def test_percent_signs_do_not_confuse_the_driver(store: Any) -> None:
    store.save(None, {"v": "100% [sic] %s %d %%"}, primary_key="p")
    for value in ["100%", "%s", "%d %%"]:
        assert Document.objects(store).where(v__contains=value).keys() == ["p"]
    assert Document.objects(store).where(v__matches=r"\d+% ").keys() == ["p"]


def test_field_names_in_sql_are_quoted_json_paths(store: Any) -> None:
    store.save(None, {"select": 1, "key": 2, "data": 3, "from_": 4}, primary_key="k")
    query = Document.objects(store).where(select=1, key=2, data=3, from_=4).order_by("select")
    assert query.keys() == ["k"]
    assert '$."select"' in query.sql().sql and '$."from_"' in query.sql().sql
