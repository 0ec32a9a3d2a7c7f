"""PostgreSQL in the conformance suite: the real server named by ``DOQU_TEST_POSTGRES_URL``.

Default ``postgresql://postgres@127.0.0.1:5432/test``. One table per test
session (``doqu_test_<pid>_<random>``), emptied with ``TRUNCATE`` before each
test and dropped (with its key sequence) when the session ends.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from doqu import get_db
from doqu.config import _safe, parse_url
from doqu.testing.registry import Engine

URL_VARIABLE = "DOQU_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TABLE = f"doqu_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def url() -> str:
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def conninfo() -> str:
    """The test server as a libpq connection string (for tests that talk to it directly)."""
    import psycopg.conninfo

    settings = parse_url(url())
    params = {"host": settings.get("host"), "port": settings.get("port"), "user": settings.get("user"),
              "password": settings.get("password"), "dbname": settings.get("database"),
              "connect_timeout": 3}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None."""
    for module, package in (("psycopg", "psycopg"), ("psycopg_pool", "psycopg-pool")):
        if importlib.util.find_spec(module) is None:
            return f"the package {package!r} is not installed (pip install 'doqu[postgres]')"
    import psycopg

    try:
        with psycopg.connect(conninfo()) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        return f"no PostgreSQL server at {_safe(url())} (set {URL_VARIABLE}): {reason}"
    return None


_cleanup_registered = False


def _drop_table() -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{TABLE}" CASCADE')


@contextlib.contextmanager
def open_storage(tmp_path: Path | None = None, **settings: Any) -> Iterator[Any]:
    """A connected, empty storage over this session's table."""
    global _cleanup_registered
    if not _cleanup_registered:
        atexit.register(_drop_table)
        _cleanup_registered = True
    # a test never needs a commit to wait for the disk
    db = get_db(url(), **{"table": TABLE, "synchronous_commit": "off", **settings})
    try:
        db.clear()
        yield db
    finally:
        if db.connected:
            db.disconnect()


ENGINES = [Engine("postgres", open=open_storage, unavailable=unavailable)]
