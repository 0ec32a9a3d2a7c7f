"""Shared fixtures of the reliability tests: the servers, fresh tables and prefixes.

Servers come from the conformance suite's engine modules (the same
environment variables and defaults); a test skips with the reason when one
is unreachable, and fails instead when ``DOQU_TEST_REQUIRE`` names it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from doqu import get_db
from doqu.testing.registry import skip_or_fail

#: Longer runs under ``make fuzz`` (DOQU_FUZZ=1).
FUZZ = bool(os.environ.get("DOQU_FUZZ"))


def _need(name: str, reason: str | None) -> None:
    if reason:
        skip_or_fail(name, reason)


@pytest.fixture
def pg_url() -> str:
    from doqu.testing.engines import postgres

    _need("postgres", postgres.unavailable())
    return postgres.url()


@pytest.fixture
def mysql_url() -> str:
    from doqu.testing.engines import mysql

    _need("mysql", mysql.unavailable())
    return mysql.url()


@pytest.fixture
def redis_url() -> str:
    from doqu.testing.engines import redis

    _need("redis", redis.standalone_unavailable())
    return redis.standalone_url()


def fresh_name(label: str) -> str:
    return f"doqu_rel_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[str]:
    """A table name of this test's own, dropped afterwards (with its key sequence)."""
    import psycopg

    from doqu.testing.engines import postgres

    name = fresh_name("pg")
    yield name
    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')


@pytest.fixture
def mysql_table(mysql_url: str) -> Iterator[str]:
    """A table name of this test's own, dropped afterwards (with its key counter)."""
    name = fresh_name("my")
    yield name
    with contextlib.suppress(Exception), mysql_admin() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS `{name}`")
        cursor.execute("DELETE FROM doqu_sequences WHERE name = %s", (name,))


@contextlib.contextmanager
def mysql_admin() -> Iterator[Any]:
    """A cursor on a plain PyMySQL connection (autocommit) to the test server."""
    import pymysql

    from doqu.testing.engines import mysql

    conn = pymysql.connect(**mysql._connect_args())
    try:
        with conn.cursor() as cursor:
            yield cursor
    finally:
        conn.close()


@contextlib.contextmanager
def pg_admin() -> Iterator[Any]:
    """A plain psycopg connection (autocommit) to the test server."""
    import psycopg

    from doqu.testing.engines import postgres

    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, dropped afterwards."""
    from doqu.testing.engines.redis import dispose, unique_prefix

    prefix = unique_prefix("rel")
    yield prefix
    dispose(get_db(redis_url, prefix=prefix))


@pytest.fixture
def opened() -> Iterator[Callable[..., Any]]:
    """``get_db`` whose storages are disconnected after the test."""
    made: list[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        db = get_db(*args, **kwargs)
        made.append(db)
        return db

    yield make
    for db in reversed(made):
        with contextlib.suppress(Exception):
            db.disconnect()


@pytest.fixture
def tyrant_server(tmp_path: Any) -> Iterator[Any]:
    """A private ttserver stand-in (tests/tyrant_server.py) on a fresh table database."""
    from doqu.testing.engines import tokyo_tyrant

    _need("tokyo_tyrant", tokyo_tyrant._library_problem())
    server = tokyo_tyrant.standin_class()(tmp_path / "standin.tct").start()
    try:
        yield server
    finally:
        server.stop()


class Admin:
    """Plain driver connections to the test servers, for doing things behind doqu's back."""

    pg = staticmethod(pg_admin)
    mysql = staticmethod(mysql_admin)

    @staticmethod
    def pg_backends(application_name: str, state: str | None = None, query_like: str | None = None) -> list[int]:
        """Server process ids of the sessions with this application_name."""
        sql = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        params: list[Any] = [application_name]
        if state:
            sql += " AND state = %s"
            params.append(state)
        if query_like:
            sql += " AND query LIKE %s"
            params.append(query_like)
        with pg_admin() as conn:
            return [row[0] for row in conn.execute(sql, params).fetchall()]

    @staticmethod
    def pg_terminate(pids: list[int]) -> None:
        with pg_admin() as conn:
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    @staticmethod
    def mysql_processes(info_like: str) -> list[int]:
        """Connection ids running a statement whose text is LIKE ``info_like``."""
        with mysql_admin() as cursor:
            cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s "
                           "AND ID <> CONNECTION_ID()", (info_like,))
            return [row[0] for row in cursor.fetchall()]

    @staticmethod
    def mysql_kill(ids: list[int]) -> None:
        import pymysql

        with mysql_admin() as cursor:
            for connection_id in ids:
                with contextlib.suppress(pymysql.err.MySQLError):  # already gone
                    cursor.execute("KILL CONNECTION %s", (connection_id,))

    @staticmethod
    def redis() -> Any:
        """A plain redis-py client on the test server (close it)."""
        import redis

        from doqu.config import parse_url
        from doqu.testing.engines.redis import standalone_url

        s = parse_url(standalone_url())
        return redis.Redis(host=s.get("host", "localhost"), port=s.get("port", 6379),
                           username=s.get("user"), password=s.get("password"), socket_timeout=5)


@pytest.fixture
def admin() -> Admin:
    return Admin()


@pytest.fixture
def redis_user(redis_url: str) -> Iterator[tuple[str, str]]:
    """A Redis ACL user (name, password) of this test's own, deleted afterwards.

    ``CLIENT KILL USER`` then touches only this test's connections, and the
    password is a real one.
    """
    import redis

    client = Admin.redis()
    name = f"doqu-rel-{uuid.uuid4().hex[:8]}"
    password = f"Pw/{uuid.uuid4().hex[:12]}@:%?#"
    try:
        client.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                           commands=["+@all"])
    except redis.exceptions.ResponseError as exc:
        client.close()
        pytest.skip(f"this Redis has no ACL users: {exc}")
    try:
        yield name, password
    finally:
        with contextlib.suppress(redis.exceptions.RedisError):
            client.execute_command("CLIENT", "UNPAUSE")
        client.acl_deluser(name)
        client.close()
