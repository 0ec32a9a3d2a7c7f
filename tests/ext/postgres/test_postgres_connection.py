"""Lost connections: killed backends surface as doqu.ConnectionError, and the storage recovers."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

import pytest

from doqu import ConnectionError, Document, get_db
from doqu.config import parse_url

SECRET = "s3cr3t-Pa55word"


class Item(Document):
    structure = {"n": int}


def _kill(raw: Any, application_name: str) -> int:
    """Terminate every session of ``application_name`` and wait until they are gone."""
    killed = raw.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = %s", (application_name,)).fetchone()[0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = raw.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (application_name,)).fetchone()[0]
        if not left:
            break
        time.sleep(0.02)
    return int(killed)


def _location(pg_url: str) -> str:
    settings = parse_url(pg_url)
    return f"{settings.get('host', 'localhost')}:{settings.get('port', 5432)}/{settings.get('database', '')}"


@pytest.fixture
def app() -> str:
    return f"doqu-test-{uuid.uuid4().hex[:10]}"


def test_a_killed_transaction_raises_connection_error_then_the_storage_works(
        open_db: Callable[..., Any], raw: Any, app: str, pg_url: str) -> None:
    db = open_db(application_name=app)
    db.save(None, {"n": 0}, primary_key="before")
    with pytest.raises(ConnectionError) as info:
        with db.transaction():
            db.save(None, {"n": 1}, primary_key="lost")
            _kill(raw, app)
            db.save(None, {"n": 2}, primary_key="lost2")
    message = str(info.value)
    assert _location(pg_url) in message and "postgres" in message
    db.save(None, {"n": 3}, primary_key="after")  # no reconnect() needed: the pool replaced it
    assert sorted(db) == ["after", "before"]


def test_killed_idle_connections_are_replaced_unnoticed(open_db: Callable[..., Any], raw: Any,
                                                        app: str) -> None:
    db = open_db(application_name=app, pool_min_size=3, pool_size=3)
    db.save(None, {"n": 1}, primary_key="k")
    assert _kill(raw, app) >= 1
    for _ in range(5):  # every pooled connection was dead; each is checked before use
        assert db.get(Document, "k")["n"] == 1
    assert Item.objects(db).count() == 1


def test_a_stream_cut_off_raises_connection_error(open_db: Callable[..., Any], raw: Any, app: str) -> None:
    db = open_db(application_name=app, batch_size=10)
    db.save_many([Item(n=i) for i in range(50)])
    iterator = iter(Item.objects(db))
    next(iterator)
    _kill(raw, app)
    with pytest.raises(ConnectionError):
        list(iterator)
    assert Item.objects(db).count() == 50
    assert len(list(Item.objects(db))) == 50


def test_reconnect_after_a_lost_connection(open_db: Callable[..., Any], raw: Any, app: str) -> None:
    db = open_db(application_name=app)
    with pytest.raises(ConnectionError):
        with db.transaction():
            _kill(raw, app)
            db.save(None, {"n": 1}, primary_key="k")
    db.reconnect()
    db.save(None, {"n": 2}, primary_key="k")
    assert db.get(Document, "k")["n"] == 2


def test_a_disconnected_storage_says_so(db: Any) -> None:
    db.disconnect()
    with pytest.raises(ConnectionError) as info:
        db.save(None, {"n": 1})
    assert "connect()" in str(info.value)
    db.connect()
    db.save(None, {"n": 1}, primary_key="k")
    assert "k" in db


def test_no_free_connection_within_pool_timeout(open_db: Callable[..., Any]) -> None:
    db = open_db(pool_size=1, pool_min_size=1, pool_timeout=0.5)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        holding.wait(10)
        with pytest.raises(ConnectionError) as info:
            db.save(None, {"n": 1})
        assert "pool_timeout" in str(info.value)
    finally:
        release.set()
        thread.join(10)
    db.save(None, {"n": 1}, primary_key="k")
    assert "k" in db


def test_the_password_never_shows(pg_url: str, raw: Any, table_name: Callable[[], str], app: str) -> None:
    settings = parse_url(pg_url)
    settings.update(password=SECRET, table=table_name(), application_name=app)
    db = get_db(settings)  # trust authentication ignores the password; doqu still holds it
    try:
        db.save(None, {"n": 1, "name": "x"}, primary_key="k")
        texts = [repr(db), db.describe_location(), Document.objects(db).where(n=1).explain(),
                 repr(Document.objects(db))]
        with pytest.raises(ConnectionError) as lost:
            with db.transaction():
                _kill(raw, app)
                db.save(None, {"n": 2})
        texts.append(str(lost.value))
        for text in texts:
            assert SECRET not in text
    finally:
        db.disconnect()
    host = settings.get("host", "127.0.0.1")
    with pytest.raises(ConnectionError) as refused:
        get_db({**settings, "port": 1, "connect_timeout": 2})
    message = str(refused.value)
    assert SECRET not in message and f"{host}:1/" in message
    with pytest.raises(ConnectionError) as unknown:
        get_db({**settings, "database": "doqu_no_such_database"})
    assert SECRET not in str(unknown.value) and "doqu_no_such_database" in str(unknown.value)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_connections(db: Any) -> None:
    import os

    db.save(None, {"n": 1}, primary_key="parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: use the inherited storage, report, leave without cleanup
        status = 1
        try:
            db.save(None, {"n": 2}, primary_key="child")
            os.write(write, ",".join(sorted(db)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    seen = os.read(read, 1000).decode()
    os.close(read)
    assert status == 0 and seen == "child,parent"
    db.save(None, {"n": 3}, primary_key="parent2")  # the parent's sessions are intact
    assert sorted(db) == ["child", "parent", "parent2"]
