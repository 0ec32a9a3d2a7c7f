"""Hostile field names and values never reach SQL text: they travel as bound parameters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from doqu import Document

HOSTILE = [
    "'; DROP TABLE documents; --",
    "it's",
    'say "hi"',
    "a\\b",
    "%s",
    "%(name)s",
    "%",
    "$1",
    "$$ || pg_sleep(1) || $$",
    "E'\\x41'",
    "*/ SELECT 1 /*",
    "ünïcødé ✓",
    "}{]['",
    "\\u0041",
]

NAMES = ["it's", 'a"b', "%s", "x') OR 1=1 --", "$key", "a.b", "sp ace", "[0]", "-"]


def _sql_of(query: Any) -> tuple[str, tuple[Any, ...]]:
    statement = query.sql()
    return statement.sql, statement.params


@pytest.fixture
def stored(db: Any) -> Any:
    for i, value in enumerate(HOSTILE):
        db.save(None, {"v": value, "names": {name: value for name in NAMES}, "list": [value]},
                primary_key=f"h{i}")
    return db


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_values_are_bound_and_found(stored: Any, index: int) -> None:
    value = HOSTILE[index]
    q = Document.objects(stored)
    queries = [
        q.where(v=value), q.where(v__startswith=value), q.where(v__endswith=value),
        q.where(v__contains=value), q.where(list__contains=value), q.where(v__in=[value, "other"]),
        q.where(v__gte=value, v__lte=value), q.where(list=[value]),
        q.where(names={name: value for name in NAMES}),
    ]
    for query in queries:
        sql, params = _sql_of(query)
        assert sql.count("%") == sql.count("%s") == len(params), sql  # no stray %: all bound
        if "%" not in value:
            assert value not in sql, sql
        as_json = json.dumps(value, ensure_ascii=False)[1:-1]  # inside a jsonb operand
        assert any(value in str(p) or as_json in str(p) for p in params)
        assert f"h{index}" in query.keys()
    assert q.where(v=value).keys() == [f"h{index}"]


def test_hostile_patterns_are_bound(stored: Any) -> None:
    q = Document.objects(stored)
    for pattern in [r"'; DROP TABLE x; --", r"%s", r"\$1", r"it's|say"]:
        sql, params = _sql_of(q.where(v__matches=pattern))
        assert "DROP" not in sql and "it" not in sql and "$" not in sql
        assert sql.count("%") == sql.count("%s") == len(params) == 1
    assert set(q.where(v__matches=r"it's|say").keys()) == {"h1", "h2"}
    assert q.where(v__search="DROP documents").keys() == ["h0"]


def test_hostile_keys_of_operands_are_bound(stored: Any) -> None:
    # non-identifier keys only reach SQL as paths through structured operands
    query = Document.objects(stored).where(names={name: HOSTILE[0] for name in NAMES})
    sql, params = _sql_of(query)
    assert sql.count("%") == sql.count("%s") == len(params)
    bare = sql.replace('"names"', "").replace('"key"', "").replace('"data"', "").replace("%s", "")
    for name in NAMES:
        if len(name) > 2:  # "-" and the like occur in any SQL
            assert name not in bare, bare
    assert query.keys() == ["h0"]
    assert Document.objects(stored).where(names__exists=True).count() == len(HOSTILE)


def test_identifier_paths_are_inlined_only_as_quoted_literals(db: Any) -> None:
    class Person(Document):
        structure = {"name": str}

    sql, params = _sql_of(Person.objects(db).where(name="x", address__city__startswith="y"))
    assert "'name'" in sql and "'address'" in sql and "'city'" in sql
    assert "x" in params and "y" in params


def test_hostile_primary_keys(db: Any) -> None:
    for key in HOSTILE:
        db.save(None, {"k": key}, primary_key=key)
        assert db.get(Document, key)["k"] == key
        assert key in db
    assert sorted(db) == sorted(HOSTILE)
    assert db.get_many(Document, HOSTILE[:3])[2]["k"] == HOSTILE[2]
    for key in HOSTILE:
        db.delete(key)
    assert len(db) == 0
