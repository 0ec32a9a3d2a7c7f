"""The PostgreSQL storage on the real server: settings, table, keys, values, writes, transactions."""

from __future__ import annotations

import datetime as dt
import decimal
import sys
import threading
from typing import Any, Callable

import pytest

from doqu import (
    ConfigurationError,
    Document,
    DoquError,
    StorageError,
    TransactionError,
    ValidationError,
    get_db,
)
from doqu.config import parse_url


class Item(Document):
    structure = {"name": str, "n": int}


# -- settings ------------------------------------------------------------------------------

def test_url_and_dict_settings_open_the_same_table(pg_url: str, table_name: Callable[[], str]) -> None:
    name = table_name()
    settings = parse_url(pg_url)
    with get_db(f"{pg_url}?table={name}") as one, get_db({**settings, "table": name}) as two:
        one.save(None, {"x": 1}, primary_key="k")
        assert two.get(Document, "k")["x"] == 1
        assert one.identity == two.identity
        assert f'"{name}"' in repr(one) and "5432" in repr(one)


@pytest.mark.parametrize("bad", ["x; DROP TABLE y", 'a"b', "1abc", "a-b", "x" * 60, "50%", ""])
def test_unusable_table_names_are_refused(pg_url: str, bad: str) -> None:
    if bad == "":
        return  # empty means the default table
    with pytest.raises(ConfigurationError) as info:
        get_db(pg_url, table=bad)
    assert "table" in str(info.value)


@pytest.mark.parametrize("settings,word", [
    ({"colour": "red"}, "colour"),
    ({"isolation_level": "chaos"}, "isolation_level"),
    ({"pool_size": 0}, "pool_size"),
    ({"pool_size": 2, "pool_min_size": 3}, "pool_min_size"),
    ({"synchronous_commit": "maybe"}, "synchronous_commit"),
    ({"sslmode": "sometimes"}, "sslmode"),
])
def test_bad_settings_are_refused_with_the_setting_named(pg_url: str, settings: dict[str, Any],
                                                         word: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db(pg_url, **settings)
    assert word in str(info.value)


def test_string_settings_from_urls_are_converted(open_db: Callable[..., Any]) -> None:
    db = open_db(pool_size="3", pool_min_size="1", batch_size="10", auto_index="false",
                 isolation_level="repeatable_read")
    assert db._pool_max == 3 and db._batch == 10 and db._auto_index_on is False
    db.save(None, {"x": 1}, primary_key="k")
    assert "k" in db


def test_missing_psycopg_names_the_extra(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "doqu.ext.postgres.driver", raising=False)
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)  # "not installed"
    with pytest.raises(ConfigurationError) as info:
        get_db(pg_url)
    assert "pip install 'doqu[postgres]'" in str(info.value)


def test_an_existing_table_of_another_shape_is_refused(pg_url: str, raw: Any,
                                                       table_name: Callable[[], str]) -> None:
    name = table_name()
    raw.execute(f'CREATE TABLE "{name}" (id serial PRIMARY KEY, body text)')
    with pytest.raises(ConfigurationError) as info:
        get_db(pg_url, table=name)
    assert name in str(info.value) and "jsonb" in str(info.value)


def test_schema_setting(open_db: Callable[..., Any], raw: Any) -> None:
    raw.execute("CREATE SCHEMA IF NOT EXISTS doqu_test_schema")
    try:
        db = open_db(schema="doqu_test_schema")
        db.save(None, {"x": 1}, primary_key="k")
        found = raw.execute("SELECT count(*) FROM doqu_test_schema." + db._table).fetchone()[0]
        assert found == 1
        assert Document.objects(db).where(x=1).count() == 1
        db.disconnect()
    finally:
        raw.execute("DROP SCHEMA doqu_test_schema CASCADE")


def test_the_table_layout(db: Any, raw: Any) -> None:
    columns = raw.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                          "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                          (db._table,)).fetchall()
    assert dict(columns) == {"key": "text", "data": "jsonb"}
    db.save(None, {"x": [1, {"y": "z"}]}, primary_key="k")
    assert raw.execute(f'SELECT data FROM "{db._table}" WHERE key = %s', ("k",)).fetchone()[0] == \
        {"x": [1, {"y": "z"}]}


# -- keys ----------------------------------------------------------------------------------------

def test_generated_keys_skip_numbers_used_by_hand_and_survive_rollback(db: Any) -> None:
    for hand in ["1", "2", "4"]:
        db.save(None, {"by": "hand"}, primary_key=hand)
    first = [db.save(None, {"n": i}) for i in range(3)]
    assert not {"1", "2", "4"} & set(first)
    with pytest.raises(RuntimeError):
        with db.transaction():
            lost = db.save(None, {"n": "rolled back"})
            raise RuntimeError
    later = [db.save(None, {"n": i}) for i in range(5)]
    assert lost not in later and not set(first) & set(later)
    assert all(key.isdigit() for key in first + later)
    assert len(db) == 3 + 8


def test_keys_never_repeat_across_storages_and_reconnects(open_db: Callable[..., Any]) -> None:
    one = open_db()
    two = open_db(table=one._table)
    keys = [one.save(None, {"n": i}) for i in range(5)] + [two.save(None, {"n": i}) for i in range(5)]
    one.reconnect()
    keys += [one.save(None, {"n": i}) for i in range(5)]
    assert len(set(keys)) == 15 and len(one) == 15


def test_nul_is_refused_before_anything_is_written(db: Any) -> None:
    for record in [{"v": "a\x00b"}, {"nested": {"deep": ["x", "y\x00"]}}, {"bad\x00name": 1}]:
        with pytest.raises(ValidationError) as info:
            db.save(None, record, primary_key="k")
        assert "NUL" in str(info.value)
    with pytest.raises(ValidationError):
        db.save(None, {"v": 1}, primary_key="k\x00")
    with pytest.raises(ValidationError):
        db.save_many([Item(name="ok", n=1), Item(name="bad\x00", n=2)])
    assert len(db) == 0
    assert "k\x00" not in db
    # a backslash-u text is not a NUL: it is stored as written
    db.save(None, {"v": "\\u0000"}, primary_key="k")
    assert db.get(Document, "k")["v"] == "\\u0000"


def test_numbers_keep_their_kind_and_digits(db: Any) -> None:
    values = {"big": 1e16, "huge": 1.5e300, "tiny": 2.5e-8, "neg": -2e20, "one": 1.0, "int": 10 ** 30,
              "zero": 0, "half": 0.5}
    db.save(None, values, primary_key="k")
    loaded = db.get(Document, "k")
    for name, value in values.items():
        assert loaded[name] == value and type(loaded[name]) is type(value), name

    class Money(Document):
        structure = {"amount": decimal.Decimal}

    for text in ["1003.10", "0.000000001", "1E+40", "-12345678901234567890.000000001", "2.50"]:
        key = Money(amount=decimal.Decimal(text)).save(db)
        amount = db.get(Money, key).amount
        assert amount == decimal.Decimal(text) and isinstance(amount, decimal.Decimal)


def test_numbers_compare_exactly(db: Any) -> None:
    class Money(Document):
        structure = {"amount": decimal.Decimal, "f": float}

    Money(amount=decimal.Decimal("9.99"), f=0.1).save(db)
    Money(amount=decimal.Decimal("10.00"), f=1e16).save(db)
    q = Money.objects(db)
    assert q.where(amount=decimal.Decimal("9.99")).count() == 1  # numeric, not doubles
    assert q.where(amount=10).count() == 1 and q.where(amount=10.0).count() == 1
    assert q.where(f=0.1).count() == 1 and q.where(f__gt=1e15).count() == 1
    # a Decimal operand compares with a stored float as a float (the contract): 9.99 is not
    # above this one, which rounds to 9.99; PostgreSQL leaves such operands to Python
    finer = q.where(amount__gt=decimal.Decimal("9.989999999999999999999"))
    assert finer.count() == 1 and "python filter: amount gt" in finer.explain()
    assert q.where(amount__gt=decimal.Decimal("9.98")).count() == 2


# -- writes ----------------------------------------------------------------------------------------

def test_bulk_save_of_new_records_and_of_existing_ones(db: Any) -> None:
    keys = db.save_many([Item(name=f"n{i}", n=i) for i in range(500)])
    assert len(set(keys)) == 500 and len(db) == 500
    docs = list(Item.objects(db).order_by("n"))
    for doc in docs:
        doc.n += 1000
    db.save_many(docs)  # existing keys: an upsert, nothing duplicated
    assert len(db) == 500
    assert Item.objects(db).where(n__gte=1000).count() == 500


def test_bulk_copy_when_a_generated_key_was_taken_meanwhile(db: Any) -> None:
    keys = [db._new_key() for _ in range(100)]
    db.save(None, {"by": "hand"}, primary_key=keys[50])  # taken after reservation
    records = [(key, {"n": i}) for i, key in enumerate(keys)]
    with db.transaction():
        db._store_many(records)
    assert len(db) == 100 and db.get(Document, keys[50])["n"] == 50


def test_bulk_upsert_with_a_repeated_key_keeps_the_last(db: Any) -> None:
    records = [(f"k{i % 70}", {"n": i}) for i in range(140)]
    db._store_many(records)
    assert len(db) == 70
    assert db.get(Document, "k0")["n"] == 70 and db.get(Document, "k69")["n"] == 139


def test_failed_bulk_save_writes_nothing(db: Any) -> None:
    docs = [Item(name=f"n{i}", n=i) for i in range(200)]
    docs[150]._data["n"] = {1, 2}  # refused while encoding, after others were encoded
    with pytest.raises(DoquError):
        db.save_many(docs)
    assert len(db) == 0


def test_a_value_too_large_for_an_index_is_a_clean_error(db: Any) -> None:
    import random

    db.ensure_index("text")
    rnd = random.Random(1)
    noise = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20000))
    with pytest.raises(ValidationError) as info:
        db.save(None, {"text": noise}, primary_key="k")
    assert "index" in str(info.value)
    assert "k" not in db
    db.save(None, {"text": "short"}, primary_key="k")
    assert "k" in db


# -- transactions -----------------------------------------------------------------------------------

def test_nested_transactions_are_savepoints(db: Any) -> None:
    with db.transaction():
        db.save(None, {"n": 1}, primary_key="outer")
        with pytest.raises(ValueError):
            with db.transaction():
                db.save(None, {"n": 2}, primary_key="inner")
                with db.transaction():
                    db.save(None, {"n": 3}, primary_key="innermost")
                raise ValueError
        assert "inner" not in db and "innermost" not in db and "outer" in db
    assert sorted(db) == ["outer"]


def test_a_transaction_is_invisible_to_other_threads_until_it_commits(db: Any) -> None:
    seen: list[bool] = []
    with db.transaction():
        db.save(None, {"n": 1}, primary_key="k")
        thread = threading.Thread(target=lambda: seen.append("k" in db))
        thread.start()
        thread.join(10)
        assert "k" in db  # this thread sees its own write
    assert seen == [False] and "k" in db


def test_serialization_conflicts_raise_transaction_error(open_db: Callable[..., Any]) -> None:
    db = open_db(isolation_level="serializable")
    db.save(None, {"n": 0}, primary_key="counter")
    ready, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def bump(wait: bool) -> None:
        try:
            with db.transaction():
                counter = db.get(Document, "counter")
                ready.set() if wait else ready.wait(10)
                if wait:
                    go.wait(10)
                counter["n"] += 1
                counter.save()
                if not wait:
                    go.set()
        except DoquError as exc:
            errors.append(exc)
            go.set()

    threads = [threading.Thread(target=bump, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(errors) == 1 and isinstance(errors[0], TransactionError), errors
    assert "again" in str(errors[0])
    assert db.get(Document, "counter")["n"] == 1


def test_an_iterator_cannot_outlive_its_transaction(open_db: Callable[..., Any]) -> None:
    db = open_db(batch_size=5)
    db.save_many([Item(name=str(i), n=i) for i in range(20)])
    with db.transaction():
        iterator = iter(Item.objects(db))
        next(iterator)
    with pytest.raises(StorageError):
        list(iterator)


def test_iterating_while_writing_in_the_same_transaction(open_db: Callable[..., Any]) -> None:
    db = open_db(batch_size=7)
    db.save_many([Item(name=str(i), n=i) for i in range(30)])
    with db.transaction():
        for doc in Item.objects(db).order_by("n"):
            doc.n += 100
            doc.save()
    assert sorted(d.n for d in Item.objects(db)) == list(range(100, 130))


def test_dates_round_trip_and_sort(db: Any) -> None:
    class Event(Document):
        structure = {"at": dt.datetime, "day": dt.date}

    moments = [dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone.utc), dt.datetime(2019, 5, 5, 8)]
    for moment in moments:
        Event(at=moment, day=moment.date()).save(db)
    assert [e.day for e in Event.objects(db).order_by("day")] == [dt.date(2019, 5, 5), dt.date(2020, 1, 1)]
    assert Event.objects(db).where(day__year=2020).first().at == moments[0]


def test_saving_a_document_does_not_count_the_table(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[int] = []
    real = db._count
    monkeypatch.setattr(db, "_count", lambda: counted.append(1) or real())
    doc = Item(name="x", n=1)
    doc.save(db)
    doc.n = 2
    doc.save()  # Document.save asks ``storage or default``: truthiness must not run count(*)
    assert counted == [] and bool(db) is True
    assert len(db) == 1 and counted == [1]
