"""Declared indexes become expression indexes, and compiled queries really use them."""

from __future__ import annotations

from typing import Any

import pytest

from doqu import Document, QueryError, get_db


class Person(Document):
    structure = {"name": str, "age": int, "city": str}


class Indexed(Document):
    structure = {"name": str, "age": int, "city": str}
    indexes = ["age", ("city", "age")]


def _fill(db: Any, n: int = 300) -> None:
    with db.transaction():
        for i in range(n):
            db.save(None, {"name": f"p{i}", "age": i % 90, "city": f"c{i % 30}", "flag": i % 2 == 0,
                           "address": {"city": f"c{i % 7}"}})
    db.execute("ANALYZE")


def _plan(query: Any) -> str:
    sql = query.sql()
    return " | ".join(row[-1] for row in query.storage.execute("EXPLAIN QUERY PLAN " + sql.sql, sql.params))


def test_queries_scan_without_an_index(store: Any) -> None:
    _fill(store)
    assert "SCAN" in _plan(Person.objects(store).where(age=30))


@pytest.mark.parametrize("conditions", [
    {"age": 30}, {"age__gt": 80}, {"age__gte": 30, "age__lt": 35}, {"age__between": (3, 5)},
    {"age__in": [1, 2, 3]}, {"age__lte": 2},
])
def test_number_conditions_use_the_index(store: Any, conditions: dict[str, Any]) -> None:
    _fill(store)
    assert store.ensure_index("age") is True
    query = Person.objects(store).where(**conditions)
    plan = _plan(query)
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    # the compiled WHERE holds the index's very expression
    (index_sql,) = store.indexes()
    expression = index_sql[index_sql.index("(json_extract") + 1:-1]
    assert expression in query.sql().sql
    expected = {d.pk for d in Person.objects(store) if _python_match(d, conditions)}
    assert {d.pk for d in query} == expected


def _python_match(doc: Any, conditions: dict[str, Any]) -> bool:
    age = doc.age
    ok = True
    for key, value in conditions.items():
        op = key.split("__")[1] if "__" in key else "equals"
        ok &= {"equals": lambda: age == value, "gt": lambda: age > value, "gte": lambda: age >= value,
               "lt": lambda: age < value, "lte": lambda: age <= value,
               "between": lambda: value[0] <= age <= value[1], "in": lambda: age in value}[op]()
    return ok


def test_string_equality_and_prefix_use_the_index(store: Any) -> None:
    _fill(store)
    store.ensure_index("city", "address__city")
    for query in [Person.objects(store).where(city="c3"), Person.objects(store).where(city__startswith="c1"),
                  Person.objects(store).where(address__city="c3")]:
        assert "USING INDEX" in _plan(query), query.sql()
    assert Person.objects(store).where(city__startswith="c1").count() == 110


def test_count_uses_the_index_without_a_type_guard(store: Any) -> None:
    _fill(store)
    store.ensure_index("city")
    query = Person.objects(store).where(city="c3")
    sql = store.compiler.count(query._tree)
    assert "json_type" not in sql.sql  # nothing left to read from the table row
    plan = " ".join(r[-1] for r in store.execute("EXPLAIN QUERY PLAN " + sql.sql, sql.params))
    assert "USING INDEX" in plan and "SCAN" not in plan, plan
    assert query.count() == 10


def test_composite_index_serves_equality_then_range(store: Any) -> None:
    _fill(store)
    store.ensure_index(("city", "age"))
    plan = _plan(Person.objects(store).where(city="c3", age__gt=40))
    assert "USING INDEX" in plan and "<expr>=? AND <expr>>?" in plan, plan


def test_explain_shows_sql_and_plan(store: Any) -> None:
    _fill(store, 50)
    store.ensure_index("age")
    text = Person.objects(store).where(age=3, name__search="p3").explain()
    assert "SELECT" in text and "USING INDEX" in text
    assert "python filter: (none)" in text  # search runs in SQLite too
    residual = Person.objects(store)._clone(_tree=None).where(age=3).explain()
    assert "json_extract" in residual


def test_document_indexes_are_created_on_first_use(store: Any) -> None:
    assert store.indexes() == []
    Indexed.objects(store)
    created = store.indexes()
    assert len(created) == 2
    assert any('$."city"' in sql and '$."age"' in sql for sql in created)
    Indexed(name="x", age=1, city="y").save(store)
    assert len(store.indexes()) == 2  # idempotent


def test_document_indexes_on_first_save(store: Any) -> None:
    Indexed(name="x", age=1, city="y").save(store)
    assert len(store.indexes()) == 2


def test_automatic_indexes_can_be_turned_off(path: Any) -> None:
    db = get_db(f"sqlite:///{path}?auto_index=false")
    try:
        Indexed(name="x", age=1, city="y").save(db)
        list(Indexed.objects(db))
        assert db.indexes() == []
        db.ensure_index(*Indexed.indexes)
        assert len(db.indexes()) == 2
    finally:
        db.disconnect()


def test_index_rolled_back_with_its_transaction_is_made_again(store: Any) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            Indexed(name="x", age=1, city="y").save(store)
            raise RuntimeError("undo")
    assert store.indexes() == []
    Indexed(name="x", age=1, city="y").save(store)
    assert len(store.indexes()) == 2


@pytest.mark.parametrize("bad", ["age__gt", "a-b", "", 5, ("age", 5), ()])
def test_bad_index_fields_are_refused(store: Any, bad: Any) -> None:
    with pytest.raises(QueryError):
        store.ensure_index(bad)
    assert store.indexes() == []
