"""Declared indexes are created on exactly the expressions queries compare, and the planner uses them."""

from __future__ import annotations

import uuid
from typing import Any, Callable, Iterator

import pytest

from doqu import Document, QueryError, get_db
from doqu.testing.engines import postgres as engine
from doqu.testing.registry import skip_or_fail

ROWS = 20_000


def _fill(db: Any, raw: Any, rows: int = ROWS) -> None:
    """``rows`` generated records, written server-side (fast), then ANALYZEd."""
    raw.execute(
        f'INSERT INTO "{db._table}" (key, data) SELECT i::text, jsonb_build_object('
        f"'name', 'n' || i, 'age', i %% 90, 'score', (i %% 1000) / 10.0, "
        f"'tags', jsonb_build_array('t' || (i %% 300), 'x'), 'flag', i %% 50 = 0, "
        f"'address', jsonb_build_object('city', 'c' || (i %% 100))) FROM generate_series(1, %s) AS i",
        (rows,))
    raw.execute(f'ANALYZE "{db._table}"')


def _plan(db: Any, query: Any, *, no_seqscan: bool = True) -> str:
    """The plan part of ``explain()``, with sequential scans priced out (in this transaction only)."""
    with db.transaction():
        if no_seqscan:
            db.execute("SET LOCAL enable_seqscan = off")
        text = query.explain()
    plan = text.split("-- plan:", 1)[1].split("\n", 1)[0]
    return plan


@pytest.fixture(scope="module")
def indexed() -> Iterator[Any]:
    """One indexed table for the module's read-only plan checks."""
    import psycopg

    reason = engine.unavailable()
    if reason:
        skip_or_fail("postgres", reason)
    db = get_db(engine.url(), table=f"doqu_t_{uuid.uuid4().hex[:12]}", synchronous_commit="off")
    raw = psycopg.connect(engine.conninfo(), autocommit=True)
    try:
        assert db.ensure_index("name", "age", "tags", "address__city", "flag") is True
        _fill(db, raw, 3000)
        yield db
    finally:
        db.disconnect()
        raw.execute(f'DROP TABLE IF EXISTS "{db._table}" CASCADE')
        raw.close()


@pytest.mark.parametrize("conditions,index", [
    ({"name": "n5"}, "name_s"),
    ({"name__in": ["n1", "n2"]}, "name_s"),
    ({"name__startswith": "n12"}, "name_s"),
    ({"name__gte": "n5", "name__lt": "n6"}, "name_s"),
    ({"age": 30}, "age_n"),
    ({"age__in": [1, 2.0]}, "age_n"),
    ({"age__gte": 30, "age__lt": 35}, "age_n"),
    ({"age__between": (3, 4)}, "age_n"),
    ({"address__city": "c7"}, "city_s"),
    ({"tags": ["t5", "x"]}, "tags_j"),
    ({"tags__contains": "t5"}, "tags_j"),
    ({"tags__contains_any": ["t5", "t6"]}, "tags_j"),
    ({"flag": True}, "flag_j"),
])
def test_queries_on_indexed_fields_can_use_their_index(indexed: Any, conditions: dict[str, Any],
                                                       index: str) -> None:
    query = Document.objects(indexed).where(**conditions)
    plan = _plan(indexed, query)
    assert "Index" in plan and f"_{index}_" in plan.replace("'", "_"), plan
    assert query.count() == len(list(query)) > 0


def test_the_planner_picks_the_index_on_its_own_for_a_selective_condition(db: Any, raw: Any) -> None:
    db.ensure_index("name", "age")
    _fill(db, raw)
    for query in [Document.objects(db).where(name="n123"), Document.objects(db).where(age=42, name__startswith="n4")]:
        plan = _plan(db, query, no_seqscan=False)
        assert "Seq Scan" not in plan and "Index" in plan, plan
    assert Document.objects(db).where(name="n123").count() == 1


def test_an_unindexed_field_is_scanned(indexed: Any) -> None:
    plan = _plan(indexed, Document.objects(indexed).where(score=5.5), no_seqscan=False)
    assert "Seq Scan" in plan


def test_declared_indexes_follow_the_declared_types(db: Any) -> None:
    class Person(Document):
        structure = {"name": str, "age": int, "tags": list, "born": str}
        indexes = ["name", "age", "tags", ("name", "age")]

    Person(name="x", age=1, tags=["a"]).save(db)
    made = "\n".join(db.indexes())
    assert "_name_s_" in made and "_age_n_" in made and "_tags_j_" in made
    assert "_name_n_" not in made and "_age_s_" not in made and "_tags_n_" not in made
    assert "_c_" in made  # the composite (name string, age number)
    plan = _plan(db, Person.objects(db).where(name="x", age__gt=0))
    assert "Index" in plan


def test_ensure_index_is_idempotent_and_refuses_lookups(db: Any) -> None:
    assert db.ensure_index("age") and db.ensure_index("age")
    before = db.indexes()
    db.ensure_index("age")
    assert db.indexes() == before
    with pytest.raises(QueryError):
        db.ensure_index("age__gt")
    with pytest.raises(QueryError):
        db.ensure_index(5)  # type: ignore[arg-type]


def test_an_index_created_in_a_rolled_back_transaction_is_made_again(db: Any) -> None:
    class Thing(Document):
        structure = {"n": int}
        indexes = ["n"]

    with pytest.raises(RuntimeError):
        with db.transaction():
            Thing(n=1).save(db)
            assert any("_n_n_" in i for i in db.indexes())
            raise RuntimeError
    assert not any("_n_n_" in i for i in db.indexes())
    Thing(n=2).save(db)
    assert any("_n_n_" in i for i in db.indexes())


def test_concurrent_index_creation_does_not_collide(open_db: Callable[..., Any]) -> None:
    import threading

    first = open_db()
    others = [open_db(table=first._table) for _ in range(4)]
    errors: list[BaseException] = []

    def create(db: Any) -> None:
        try:
            db.ensure_index("a", "b", ("a", "b"))
        except BaseException as exc:  # report anything, including a catalog collision
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(db,)) for db in [first, *others]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
