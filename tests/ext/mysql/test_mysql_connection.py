"""Lost connections (the server KILLs them), recovery, and passwords kept out of every message."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from doqu import ConnectionError, Document, DoquError, get_db
from doqu.testing.engines import mysql as engine


def _kill(connection_id: int) -> None:
    import pymysql

    admin = pymysql.connect(**engine._connect_args())
    try:
        with admin.cursor() as cursor:
            cursor.execute("KILL CONNECTION %s", (connection_id,))
    finally:
        admin.close()


def _location(url: str) -> str:
    settings = engine.parse_url(url)
    return f"{settings.get('host', 'localhost')}:{settings.get('port', 3306)}"


def test_a_killed_transaction_raises_connection_error_and_writes_nothing(store: Any, server: str) -> None:
    with pytest.raises(ConnectionError) as info:
        with store.transaction():
            store.save(None, {"n": 1}, primary_key="lost")
            (connection_id,), = store.execute("SELECT CONNECTION_ID()")  # the transaction's own
            _kill(connection_id)
            store.save(None, {"n": 2}, primary_key="lost-too")
    assert _location(server) in str(info.value)
    assert "reconnect" in str(info.value)
    store.reconnect()
    assert store.connected
    assert "lost" not in store and "lost-too" not in store
    store.save(None, {"n": 3}, primary_key="after")
    assert store.get(Document, "after")["n"] == 3


def test_the_commit_of_a_killed_transaction_fails(store: Any) -> None:
    with pytest.raises(DoquError), store.transaction():
        store.save(None, {"n": 1}, primary_key="k")
        (connection_id,), = store.execute("SELECT CONNECTION_ID()")
        _kill(connection_id)
    assert "k" not in store


def test_idle_connections_killed_by_the_server_are_replaced(store: Any) -> None:
    store.save_many([Document(i=i) for i in range(10)])
    idle = [conn.raw.thread_id() for conn in store._pool]
    assert idle
    for connection_id in idle:
        _kill(connection_id)
    # the pool notices the dead sockets when it hands them out: no error, no lost write
    store.save(None, {"i": 10}, primary_key="new")
    assert Document.objects(store).count() == 11
    assert not {conn.raw.thread_id() for conn in store._pool} & set(idle)


def test_reconnect_after_every_connection_is_gone(store: Any) -> None:
    store.save(None, {"x": 1}, primary_key="k")
    for conn in list(store._pool):
        _kill(conn.raw.thread_id())
    store.reconnect()
    assert store.get(Document, "k")["x"] == 1


@pytest.fixture
def user_with_password(server: str) -> Iterator[tuple[str, str]]:
    import pymysql

    name = f"doqu_u_{uuid.uuid4().hex[:8]}"
    password = f"Pw-{uuid.uuid4().hex}-s3cret"
    admin = pymysql.connect(**engine._connect_args())
    settings = engine.parse_url(server)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (password,))
            cursor.execute(f"GRANT ALL ON `{settings['database']}`.* TO '{name}'@'%'")
        yield name, password
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        admin.close()


def test_passwords_never_appear(user_with_password: tuple[str, str], server: str,
                                fresh: Callable[..., Any]) -> None:
    name, password = user_with_password
    settings = engine.parse_url(server)
    host, port, database = settings.get("host", "localhost"), settings.get("port", 3306), settings["database"]
    url = f"mysql://{name}:{password}@{host}:{port}/{database}"
    table = fresh()._table
    db = get_db(url, table=table)
    texts = [repr(db), db.describe_location(), str(db.identity),
             Document.objects(db).where(x__gt=1).order_by("x").explain()]
    with pytest.raises(ConnectionError) as lost, db.transaction():
        (connection_id,), = db.execute("SELECT CONNECTION_ID()")
        _kill(connection_id)
        db.save(None, {"x": 1})
    texts.append(str(lost.value))
    db.reconnect()
    db.disconnect()
    with pytest.raises(ConnectionError) as refused:
        get_db(f"mysql://{name}:{password}x@{host}:{port}/{database}", table=table)
    texts.append(str(refused.value))
    with pytest.raises(DoquError) as denied:
        get_db(url, database="mysql", table="doqu_nope")  # no rights there
    texts.append(str(denied.value))
    assert all(password not in text for text in texts), texts
    assert all(name in text for text in texts[:2])
