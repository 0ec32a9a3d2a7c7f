"""Settings, keys, transactions, streaming and errors of the SQLite storage."""

from __future__ import annotations

import decimal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from doqu import ConfigurationError, ConnectionError, Document, StorageError, ValidationError, get_db
from doqu.ext.sqlite import storage as storage_module


class Note(Document):
    structure = {"text": str, "n": int}


# -- settings ---------------------------------------------------------------------

def test_memory_url_and_dict_without_path() -> None:
    for db in [get_db("sqlite://"), get_db({"backend": "sqlite"}), get_db({"backend": "sqlite3", "path": ":memory:"})]:
        assert "in-memory" in db.describe_location()
        assert not db.features.persistent
        key = Note(text="x").save(db)
        assert db.get(Note, key).text == "x"
        db.disconnect()
    assert get_db("sqlite://").identity != get_db("sqlite://").identity


def test_file_url_and_table_setting(path: Path) -> None:
    a = get_db(f"sqlite:///{path}")
    b = get_db({"backend": "sqlite", "path": str(path), "table": "other"})
    try:
        assert a.features.persistent and a.features.multi_process and a.features.indexes
        assert str(path) in a.describe_location()
        a.save(None, {"t": "a"}, primary_key="k")
        b.save(None, {"t": "b"}, primary_key="k")
        assert a.get(Document, "k")["t"] == "a" and b.get(Document, "k")["t"] == "b"
        assert Note(text="gen").save(a) == Note(text="gen").save(b)  # each table counts its own keys
        assert a.identity != b.identity
        assert a.identity == get_db(f"sqlite:///{path}").identity
        assert a.execute("PRAGMA journal_mode")[0][0] == "wal"
    finally:
        a.disconnect()
        b.disconnect()


def test_table_names_are_quoted(path: Path) -> None:
    db = get_db({"backend": "sqlite", "path": str(path), "table": "select"})
    try:
        db.save(None, {"x": 1}, primary_key="k")
        assert Note.objects(db).where(x=1).count() == 1
        db.ensure_index("x")
        assert db.execute('SELECT count(*) FROM "select"')[0][0] == 1
    finally:
        db.disconnect()


@pytest.mark.parametrize("table", ["x; DROP TABLE documents", "1abc", "sqlite_master", "doqu_sequences",
                                   "a" * 64, "ta ble", 'q"uote', 5])
def test_invalid_table_names_are_refused(path: Path, table: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "sqlite", "path": str(path), "table": table})
    assert "table" in str(info.value)
    assert not path.exists() or sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


@pytest.mark.parametrize("settings", [{"timeout": "soon"}, {"journal_mode": "fast"}, {"synchronous": "maybe"},
                                      {"colour": "red"}, {"timeout": -1}])
def test_bad_settings_are_refused(path: Path, settings: dict[str, Any]) -> None:
    url = f"sqlite:///{path}?" + "&".join(f"{k}={v}" for k, v in settings.items())
    with pytest.raises(ConfigurationError):
        get_db(url)


def test_settings_from_a_url_are_typed(path: Path) -> None:
    db = get_db(f"sqlite:///{path}?timeout=2.5&journal_mode=delete&synchronous=full&table=docs")
    try:
        assert db.execute("PRAGMA journal_mode")[0][0] == "delete"
        assert db.execute("PRAGMA synchronous")[0][0] == 2
        assert db.execute("PRAGMA busy_timeout")[0][0] == 2500
    finally:
        db.disconnect()


def test_unopenable_file_is_a_connection_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError) as info:
        get_db({"backend": "sqlite", "path": str(tmp_path / "no" / "such" / "dir.db")})
    assert "dir.db" in str(info.value)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(ConnectionError):
        get_db({"backend": "sqlite", "path": str(garbage)})


def test_use_after_disconnect_says_so_and_reconnect_works(store: Any) -> None:
    store.save(None, {"x": 1}, primary_key="k")
    store.disconnect()
    with pytest.raises(ConnectionError):
        store.get(Document, "k")
    with pytest.raises(ConnectionError):
        list(Note.objects(store))
    store.reconnect()
    assert store.get(Document, "k")["x"] == 1


# -- keys --------------------------------------------------------------------------------

def test_keys_never_repeat_after_deletes_across_reopen(path: Path) -> None:
    db = get_db(f"sqlite:///{path}")
    seen = {Note(text=str(i)).save(db) for i in range(20)}
    for key in seen:
        db.delete(key)
    db.clear()
    db.disconnect()
    db.connect()
    again = {Note(text="again").save(db) for _ in range(5)}
    db.disconnect()
    other = get_db(f"sqlite:///{path}")
    later = {Note(text="later").save(other) for _ in range(5)}
    other.disconnect()
    assert len(seen) == 20 and len(again) == 5 and len(later) == 5
    assert not seen & again and not seen & later and not again & later


def test_generated_keys_skip_keys_given_by_hand(store: Any) -> None:
    for key in ["1", "2", "3", "5"]:
        store.save(None, {"by": "hand"}, primary_key=key)
    made = [Note(text="auto").save(store) for _ in range(4)]
    assert not set(made) & {"1", "2", "3", "5"}
    assert len(store) == 8


def test_keys_of_a_rolled_back_transaction_are_not_handed_out_again(store: Any) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            lost = {Note(text="lost").save(store) for _ in range(3)}
            raise RuntimeError("undo")
    assert len(store) == 0
    kept = {Note(text="kept").save(store) for _ in range(3)}
    assert not lost & kept


# -- transactions -----------------------------------------------------------------------------

def test_savepoints_nest_three_deep(store: Any) -> None:
    with store.transaction():
        store.save(None, {"n": 1}, primary_key="one")
        with store.transaction():
            store.save(None, {"n": 2}, primary_key="two")
            with pytest.raises(KeyError):
                with store.transaction():
                    store.save(None, {"n": 3}, primary_key="three")
                    store.delete("one")
                    store.delete("missing")  # KeyError: rolls back this level only
        with pytest.raises(ValueError):
            with store.transaction():
                store.delete("two")
                raise ValueError
    assert sorted(store) == ["one", "two"]


def test_uncommitted_writes_are_invisible_to_other_connections(path: Path, store: Any) -> None:
    other = get_db(f"sqlite:///{path}")
    try:
        with store.transaction():
            store.save(None, {"x": 1}, primary_key="k")
            assert "k" not in other
            assert Note.objects(other).count() == 0
        assert "k" in other
    finally:
        other.disconnect()


def test_save_many_is_one_transaction_and_one_statement(store: Any) -> None:
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    store.save_many([Note(text=str(i), n=i) for i in range(2000)])
    store._conn.set_trace_callback(None)
    assert len(store) == 2000
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    assert sum(s == "COMMIT" for s in statements) == 1
    assert sum(s.startswith("INSERT INTO doqu_sequences") for s in statements) < 15  # blocks of keys


def test_failed_save_leaves_nothing_half_written(store: Any) -> None:
    store.save(None, {"v": "old"}, primary_key="k")
    with pytest.raises(ValidationError):
        store.save(None, {"v": "bad \ud800 surrogate"}, primary_key="k")
    with pytest.raises(ValidationError):
        store.save_many([Note(text="fine"), Note(text="bad \udfff")])
    assert len(store) == 1 and store.get(Document, "k")["v"] == "old"


# -- reading -----------------------------------------------------------------------------------

def test_iteration_streams_instead_of_fetching_everything(store: Any, monkeypatch: Any) -> None:
    store.save_many([Note(text="x" * 50, n=i) for i in range(3000)])
    decoded = []
    real = storage_module.loads
    monkeypatch.setattr(storage_module, "loads", lambda text: decoded.append(1) or real(text))
    iterator = iter(Note.objects(store).where(n__gte=0))
    first = [next(iterator) for _ in range(3)]
    assert [d.n for d in first] == [0, 1, 2]
    assert len(decoded) <= storage_module.BATCH
    assert sum(1 for _ in iterator) == 2997


def test_queries_and_writes_interleave(store: Any) -> None:
    store.save_many([Note(text="a", n=i) for i in range(1200)])
    for doc in Note.objects(store).where(n__lt=1000):
        if doc.n % 2:
            doc.delete()
    assert Note.objects(store).count() == 700


def test_values_dedup_by_kind(store: Any) -> None:
    for i, v in enumerate([1, 1.0, True, "1", {"a": 1, "b": 2}, {"b": 2, "a": 1}, [1], [1.0], False]):
        store.save(None, {"v": v}, primary_key=f"k{i}")
    found = Note.objects(store).values("v")
    assert len(found) == 7  # 1 and 1.0 are one value; the two dicts are one; True is not 1
    assert found[0] == 1 and not isinstance(found[0], bool)
    assert found[1:] == ["1", {"a": 1, "b": 2}, [1], [1.0], False, True]
    assert type(found[3][0]) is float and type(found[4][0]) is int  # by key-sorted JSON text: "[1.0]" < "[1]"
    assert found[5] is False and found[6] is True


def test_decimals_stay_exact_and_floats_stay_floats(store: Any) -> None:
    class Money(Document):
        structure = {"amount": decimal.Decimal}

    exact = decimal.Decimal("12345678901234567890.123456789")
    key = Money(amount=exact).save(store)
    assert store.get(Money, key).amount == exact
    assert Money.objects(store).values("amount") == [exact]
    store.save(None, {"f": 0.1, "g": 2.5e-8}, primary_key="f")
    raw = store.get(Document, "f")
    assert type(raw["f"]) is float and raw["f"] == 0.1 and raw["g"] == 2.5e-8


def test_a_locked_database_is_a_storage_error(path: Path) -> None:
    db = get_db(f"sqlite:///{path}?timeout=0.05")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError) as info:
            db.save(None, {"x": 1})
        assert "lock" in str(info.value) and "timeout" in str(info.value)
        blocker.execute("ROLLBACK")
        db.save(None, {"x": 1}, primary_key="after")
        assert "after" in db
    finally:
        blocker.close()
        db.disconnect()


def test_list_of_a_query_runs_it_once(store: Any, monkeypatch: Any) -> None:
    store.save_many([Note(text="x", n=i) for i in range(30)])
    built = []
    original = Note._from_storage.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Note, "_from_storage", classmethod(lambda cls, *a: built.append(1) or original(cls, *a)))
    assert len(list(Note.objects(store).where(n__lt=10))) == 10
    assert len(built) == 10


def test_too_old_sqlite_is_a_configuration_error(monkeypatch: Any) -> None:
    monkeypatch.setattr(storage_module.sqlite3, "sqlite_version_info", (3, 31, 1))
    with pytest.raises(ConfigurationError) as info:
        get_db("sqlite://")
    assert "3.38" in str(info.value)
