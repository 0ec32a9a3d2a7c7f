"""Fixtures for the PostgreSQL backend's own tests, on the real server.

The server is the conformance suite's (``DOQU_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``); a test skips with the reason
when it is unreachable, and fails instead when ``DOQU_TEST_REQUIRE`` names
``postgres``. Every test gets tables of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Iterator

import pytest

from doqu import get_db
from doqu.testing.engines import postgres as engine
from doqu.testing.registry import skip_or_fail


@pytest.fixture
def pg_url() -> str:
    reason = engine.unavailable()
    if reason:
        skip_or_fail("postgres", reason)
    return engine.url()


@pytest.fixture
def raw(pg_url: str) -> Iterator[Any]:
    """A plain psycopg connection (autocommit) to the test server, for looking behind doqu's back."""
    import psycopg

    conn = psycopg.connect(engine.conninfo(), autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def table_name(raw: Any) -> Iterator[Callable[[], str]]:
    """Fresh table names; every table handed out is dropped after the test."""
    made: list[str] = []

    def make() -> str:
        name = f"doqu_t_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield make
    for name in made:
        raw.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')


@pytest.fixture
def open_db(pg_url: str, table_name: Callable[[], str]) -> Iterator[Callable[..., Any]]:
    """``open_db(**settings)``: a storage over a fresh table (or the given one), disconnected afterwards."""
    opened: list[Any] = []

    def make(**settings: Any) -> Any:
        settings.setdefault("table", table_name())
        settings.setdefault("synchronous_commit", "off")
        db = get_db(pg_url, **settings)
        opened.append(db)
        return db

    yield make
    for db in opened:
        if db.connected:
            db.disconnect()


@pytest.fixture
def db(open_db: Callable[..., Any]) -> Any:
    return open_db()
