"""The MariaDB storage: settings, values read back exactly, keys, transactions, streaming."""

from __future__ import annotations

import decimal
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from doqu import (
    ConfigurationError,
    ConnectionError,
    DataProcessorDoesNotExist,
    Document,
    QueryError,
    TransactionError,
    ValidationError,
    get_db,
)
from doqu.config import load_backend, parse_url
from doqu.ext.mysql.storage import StorageAdapter


class Priced(Document):
    structure = {"name": str, "price": decimal.Decimal}


# -- settings ----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["mysql://u:pw@db.example:3307/app?table=docs",
                                 "mariadb://u:pw@db.example:3307/app?table=docs"])
def test_both_schemes_choose_this_backend(url: str) -> None:
    settings = parse_url(url)
    assert load_backend(settings.pop("backend")).StorageAdapter is StorageAdapter
    assert settings == {"host": "db.example", "port": 3307, "user": "u", "password": "pw",
                        "database": "app", "table": "docs"}


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymysql", None)  # import pymysql now raises ImportError
    with pytest.raises(ConfigurationError) as info:
        get_db("mysql://root@127.0.0.1:3306/test")
    assert "pip install 'doqu[mysql]'" in str(info.value)


@pytest.mark.parametrize("table", ["a-b", "1st", "x" * 65, "doqu_sequences", "a`b", "a b", 5,
                                   "docs; DROP TABLE x"])
def test_invalid_table_names_are_refused_before_connecting(table: Any) -> None:
    with pytest.raises(ConfigurationError) as info:  # port 1: nothing listens, nothing is tried
        get_db({"backend": "mysql", "host": "127.0.0.1", "port": 1, "database": "test",
                "table": table})
    assert "table" in str(info.value)


def test_database_is_required_and_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "mysql", "host": "127.0.0.1"})
    assert "database" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "mysql", "database": "test", "colour": "red"})
    assert "colour" in str(info.value)
    for bad in [{"pool_size": 0}, {"isolation": "chaotic"}, {"ssl": "maybe"}]:
        with pytest.raises(ConfigurationError):
            get_db({"backend": "mysql", "host": "127.0.0.1", "port": 1, "database": "test", **bad})


def test_unknown_database_is_a_configuration_error(server: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db(server, database="doqu_no_such_database")
    assert "doqu_no_such_database" in str(info.value) and "CREATE DATABASE" in str(info.value)


def test_unreachable_server_names_host_and_port() -> None:
    with pytest.raises(ConnectionError) as info:
        get_db("mysql://root@127.0.0.1:1/test", connect_timeout=2)
    assert "127.0.0.1:1" in str(info.value)


def test_a_table_that_is_not_doqus_is_refused(fresh: Callable[..., Any], server: str) -> None:
    db = fresh()
    name = db._table
    db.execute(f"DROP TABLE `{name}`")
    db.execute(f"CREATE TABLE `{name}` (id INT PRIMARY KEY, body TEXT)")
    with pytest.raises(ConfigurationError) as info:
        get_db(server, table=name)
    assert name in str(info.value)


# -- values --------------------------------------------------------------------------

def test_decimals_keep_every_digit_in_the_stored_text(store: Any) -> None:
    digits = "3.141592653589793238462643383279"
    key = Priced(name="pi", price=decimal.Decimal(digits)).save(store)
    stored = store.execute(f"SELECT `data` FROM `{store._table}` WHERE `key` = %s", (key,))[0][0]
    assert digits in stored  # the server kept the text doqu wrote
    assert store.get(Priced, key).price == decimal.Decimal(digits)
    big = decimal.Decimal("-123456789012345678901234567890.000000000000000000000000000001")
    key = Priced(price=big).save(store)
    assert store.get(Priced, key).price == big
    assert Priced.objects(store).values("price")[0] == big


def test_records_nested_deeper_than_the_server_allows_are_refused(store: Any) -> None:
    value: Any = "leaf"
    for _ in range(40):
        value = [value]
    with pytest.raises(ValidationError) as info:
        store.save(None, {"deep": value}, primary_key="deep")
    assert "nested" in str(info.value)
    assert "deep" not in store and len(store) == 0


def test_keys_longer_than_the_column_are_refused(store: Any) -> None:
    with pytest.raises(ValidationError):
        store.save(None, {"x": 1}, primary_key="k" * 769)
    store.save(None, {"x": 1}, primary_key="k" * 768)
    assert store.get(Document, "k" * 768)["x"] == 1
    with pytest.raises(KeyError):
        store.get(Document, "k" * 5000)


def test_keys_differ_by_case_and_trailing_spaces(store: Any) -> None:
    for key in ["a", "A", "a ", "é", "e"]:
        store.save(None, {"key": key}, primary_key=key)
    assert sorted(store) == sorted(["a", "A", "a ", "é", "e"])
    assert store.get(Document, "a ")["key"] == "a "


def test_invalid_unicode_is_refused_and_nothing_written(store: Any) -> None:
    with pytest.raises(ValidationError):
        store.save(None, {"s": "lone \ud800 surrogate"}, primary_key="u")
    with pytest.raises(ValidationError):
        store.save_many([Document(s="fine"), Document(s="\udfff")])
    assert len(store) == 0


def test_unsupported_values_write_nothing(store: Any) -> None:
    with pytest.raises(DataProcessorDoesNotExist):
        store.save_many([Document(a=1), Document(a={1, 2})])
    assert len(store) == 0


# -- keys -------------------------------------------------------------------------------

def test_generated_keys_never_repeat_across_storages_rollbacks_and_deletes(
        store: Any, server: str) -> None:
    other = get_db(server, table=store._table)
    try:
        keys = [store.save(None, {"i": i}) for i in range(3)]
        keys += [other.save(None, {"i": i}) for i in range(3)]
        with pytest.raises(RuntimeError), store.transaction():
            keys.append(store.save(None, {"rolled": "back"}))
            raise RuntimeError("undo")
        for key in keys[:4]:
            if key in store:
                store.delete(key)
        keys += [store.save(None, {"i": i}) for i in range(20)]
        keys += [other.save(None, {"i": i}) for i in range(20)]
        assert len(keys) == len(set(keys))
        assert all(key.isdigit() for key in keys)
    finally:
        other.disconnect()


def test_generated_keys_skip_numbers_saved_explicitly(store: Any) -> None:
    first = int(store.save(None, {"n": 0}))
    for number in range(first + 1, first + 40):
        store.save(None, {"explicit": number}, primary_key=str(number))
    fresh_keys = {store.save(None, {"n": i}) for i in range(50)}
    assert not fresh_keys & {str(n) for n in range(first + 1, first + 40)}
    assert Document.objects(store).where(explicit__exists=True).count() == 39


def test_save_many_in_bulk_is_one_transaction(store: Any) -> None:
    docs = [Document(i=i, text="x" * 2000) for i in range(1500)]  # several multi-row INSERTs
    keys = store.save_many(docs)
    assert len(set(keys)) == 1500 and len(store) == 1500
    with pytest.raises(ValidationError):
        store.save_many([Document(i=-1)] + [Document(bad="\ud800")])
    assert len(store) == 1500
    # an upsert of existing keys replaces the records
    for doc in docs[:10]:
        doc["i"] = -doc["i"] - 1
    store.save_many(docs[:10])
    assert Document.objects(store).where(i__lt=0).count() == 10 and len(store) == 1500


# -- transactions ------------------------------------------------------------------------

def test_a_transaction_belongs_to_its_thread(store: Any) -> None:
    inside = threading.Event()
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        inside.wait(10)
        seen["uncommitted"] = "tx" in store
        store.save(None, {"by": "other"}, primary_key="other")

    thread = threading.Thread(target=other_thread)
    thread.start()
    with pytest.raises(RuntimeError), store.transaction():
        store.save(None, {"by": "tx"}, primary_key="tx")
        inside.set()
        thread.join(10)
        raise RuntimeError("roll back")
    assert seen["uncommitted"] is False
    assert "other" in store and "tx" not in store  # the other thread's write was not rolled back


def test_a_failed_first_nested_block_undoes_only_itself(store: Any) -> None:
    # a block nested before any statement has no SAVEPOINT: undoing it restarts the transaction
    with store.transaction():
        with pytest.raises(ValueError), store.transaction():
            store.save(None, {"n": 1}, primary_key="inner")
            with store.transaction():
                store.save(None, {"n": 2}, primary_key="innermost")
            raise ValueError("undo inner")
        store.save(None, {"n": 3}, primary_key="after")
        with pytest.raises(ValueError), store.transaction():
            store.save(None, {"n": 4}, primary_key="late")
            raise ValueError("undo late")
    assert sorted(store) == ["after"]


def test_streaming_a_query_while_saving_in_the_loop(store: Any) -> None:
    store.save_many([Document(i=i) for i in range(1200)])  # more than one fetch batch
    count = 0
    for doc in Document.objects(store).where(i__exists=True):
        doc["seen"] = True
        doc.save()
        count += 1
    assert count == 1200
    with store.transaction():
        for doc in Document.objects(store).where(seen=True).order_by("i")[:700]:
            doc["twice"] = True
            doc.save()
    assert Document.objects(store).where(twice=True).count() == 700


def test_abandoned_streams_leave_the_connections_usable(store: Any) -> None:
    store.save_many([Document(i=i) for i in range(5000)])
    for _ in range(12):  # more than the pool keeps: each stream stops early
        iterator = iter(Document.objects(store))
        next(iterator)
        del iterator
    assert Document.objects(store).count() == 5000
    with store.transaction():
        iterator = iter(Document.objects(store).order_by("i"))
        assert next(iterator)["i"] == 0
        del iterator
        store.save(None, {"i": -1}, primary_key="after")
    assert "after" in store


def test_ensure_index_is_refused_inside_a_transaction(store: Any) -> None:
    with pytest.raises(TransactionError), store.transaction():
        store.ensure_index("name")
    with pytest.raises(QueryError):
        store.ensure_index("name__startswith")
    with pytest.raises(QueryError):
        store.ensure_index("name:date")


def test_repr_and_location_name_the_server(store: Any) -> None:
    assert "127.0.0.1:3306" in repr(store) or "localhost" in repr(store)
    assert store._table in store.describe_location()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connections(store: Any) -> None:
    store.save(None, {"who": "parent"}, primary_key="p")
    parent_sessions = {conn.raw.thread_id() for conn in store._pool}
    assert parent_sessions
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            store.save(None, {"who": "child"}, primary_key="c")
            (session,), = store.execute("SELECT CONNECTION_ID()")
            code = 0 if session not in parent_sessions and store.get(Document, "p")["who"] == "parent" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get(Document, "c")["who"] == "child"
    assert {conn.raw.thread_id() for conn in store._pool} & parent_sessions  # the parent's, unharmed
