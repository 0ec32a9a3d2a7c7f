"""Fixtures for the MariaDB backend's own tests: a storage on the real server, or a skip."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from doqu import get_db
from doqu.testing.engines import mysql as engine
from doqu.testing.registry import skip_or_fail


@pytest.fixture
def server() -> str:
    """The server URL, or a skip (a failure under DOQU_TEST_REQUIRE=mysql)."""
    reason = engine.unavailable()
    if reason:
        skip_or_fail("mysql", reason)
    return engine.url()


@pytest.fixture
def store(server: str, tmp_path: Path) -> Iterator[Any]:
    """An empty storage over the test session's table."""
    with engine.open_storage(tmp_path) as db:
        yield db


@pytest.fixture
def fresh(server: str) -> Iterator[Callable[..., Any]]:
    """Open storages over a table of their own (dropped afterwards), for tests that change its schema."""
    table = f"doqu_t_{uuid.uuid4().hex[:12]}"
    opened: list[Any] = []

    def open_fresh(**settings: Any) -> Any:
        db = get_db(server, table=table, **settings)
        opened.append(db)
        return db

    yield open_fresh
    for db in opened:
        if db.connected:
            db.disconnect()
    import pymysql

    cleaner = pymysql.connect(**engine._connect_args())
    try:
        with cleaner.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS `{table}`")
            cursor.execute("DELETE FROM doqu_sequences WHERE name = %s", (table,))
    finally:
        cleaner.close()
