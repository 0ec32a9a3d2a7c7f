"""Indexes as generated (virtual) columns, and MariaDB's optimizer actually using them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from doqu import Document, TransactionError, ValidationError, get_db


class City(Document):
    structure = {"name": str, "population": int, "country": str}
    indexes = ["name", ("country", "population:number")]


def _fill(db: Any, n: int = 3000) -> None:
    db.save_many([City(name=f"city{i:05d}", population=i * 10, country=f"c{i % 100:02d}")
                  for i in range(n)])
    db.execute(f"ANALYZE TABLE `{db._table}`")


def _index_used(query: Any) -> str | None:
    rows = query.explain_rows()
    assert len(rows) == 1
    return rows[0]["key"]  # type: ignore[no-any-return]


def test_queries_use_the_generated_column_indexes(fresh: Callable[..., Any]) -> None:
    db = fresh()
    _fill(db)  # save_many runs in a transaction, where no DDL may run: no indexes yet
    assert not db.dialect.columns
    scan = Document.objects(db).where(population=1230)
    assert _index_used(scan) is None  # a full scan
    City.objects(db)  # the class's first query here creates its indexes
    db.ensure_index("population")  # already there (with the composite): nothing to do
    population = db.dialect.columns[("population",)]["number"]
    name = db.dialect.columns[("name",)]["string"]
    db.execute(f"ANALYZE TABLE `{db._table}`")
    cases = [
        (City.objects(db).where(population=1230), population, ["city00123"]),
        (City.objects(db).where(population__gte=29950), population,
         ["city02995", "city02996", "city02997", "city02998", "city02999"]),
        (City.objects(db).where(population__in=[10, 20]), population, ["city00001", "city00002"]),
        (City.objects(db).where(name="city01234"), name, ["city01234"]),
        (City.objects(db).where(name__startswith="city0004"), name, [f"city0004{i}" for i in range(10)]),
        (City.objects(db).where(name__between=("city00010", "city00012")), name,
         ["city00010", "city00011", "city00012"]),
    ]
    for query, column, expected in cases:
        assert _index_used(query) == column, query.explain()
        assert sorted(doc.name for doc in query) == expected
        assert "python filter: (none)" in query.explain()
    both = City.objects(db).where(country="c07", population__lt=2000)
    assert _index_used(both).startswith("doqu_x_"), both.explain()  # the composite index
    assert sorted(d.population for d in both) == [70, 1070]


def test_another_connection_finds_the_indexes(fresh: Callable[..., Any], server: str) -> None:
    db = fresh()
    _fill(db, 500)
    db.ensure_index("population")
    other = get_db(server, table=db._table)
    try:
        assert other.dialect.columns == db.dialect.columns
        query = Document.objects(other).where(population=1230)
        assert _index_used(query) == other.dialect.columns[("population",)]["number"]
        assert query.keys() == Document.objects(db).where(population=1230).keys()
    finally:
        other.disconnect()


def test_generated_columns_keep_kinds_apart(fresh: Callable[..., Any]) -> None:
    db = fresh()
    db.ensure_index("v")
    values = {"n": 22, "s": "22", "t": True, "one": 1, "f": "1", "l": [22], "d": {"v": 22},
              "long": "y" * 1000 + "z", "pad": "22 ", "case": "Abc", "lower": "abc"}
    for key, value in values.items():
        db.save(None, {"v": value}, primary_key=key)
    q = Document.objects(db)
    assert q.where(v=22).keys() == ["n"]
    assert q.where(v="22").keys() == ["s"]
    assert sorted(q.where(v__gte="22").keys()) == ["case", "long", "lower", "pad", "s"]
    assert q.where(v=1).keys() == ["one"]
    assert q.where(v=True).keys() == ["t"]
    assert q.where(v="y" * 1000 + "z").keys() == ["long"]  # longer than the indexed prefix
    assert q.where(v__startswith="A").keys() == ["case"]
    # operands longer than the column's 255 characters: narrowed by it, decided on the whole
    assert q.where(v__startswith="y" * 300).keys() == ["long"]
    assert q.where(v__gt="y" * 999).keys() == ["long"]
    assert sorted(q.where(v__lt="y" * 1000 + "a").keys()) == ["case", "f", "lower", "pad", "s"]
    assert q.where(v__in=["y" * 1000 + "z", "y" * 1000]).keys() == ["long"]
    # a short operand is decided by the index alone
    count = q.where(v="Abc")
    assert count.count() == 1
    sql = db.compiler.count(count._tree)
    plan = db.execute("EXPLAIN " + sql.sql, sql.params)
    assert "Using index" in (plan[0][-1] or ""), plan
    assert sorted(q.where_not(v=22).keys()) == sorted(set(values) - {"n"})


def test_numbers_out_of_double_range_cannot_be_indexed(fresh: Callable[..., Any]) -> None:
    db = fresh()
    db.ensure_index("big")
    with pytest.raises(ValidationError) as info:
        db.save(None, {"big": 10 ** 400}, primary_key="huge")
    assert "index" in str(info.value)
    assert "huge" not in db


def test_ensure_index_is_idempotent_and_class_indexes_wait_for_the_transaction(
        fresh: Callable[..., Any]) -> None:
    db = fresh()
    assert db.ensure_index("name") and db.ensure_index("name")
    before = db.indexes()
    db.ensure_index("name")
    assert db.indexes() == before
    with pytest.raises(RuntimeError):
        with db.transaction():
            City(name="x", population=1, country="c").save(db)  # no DDL here: it would commit
            raise RuntimeError("roll back")
    assert len(db) == 0
    with pytest.raises(TransactionError), db.transaction():
        db.ensure_index("population")
    City.objects(db).count()  # outside a transaction the class's indexes are made
    assert ("population",) in db.dialect.columns and ("country",) in db.dialect.columns
