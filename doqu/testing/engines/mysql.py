"""MariaDB in the conformance suite: the real server named by ``DOQU_TEST_MYSQL_URL``.

Default ``mysql://root@127.0.0.1:3306/test``. One table per test session
(``doqu_test_<pid>_<random>``), emptied before each test with ``DELETE``
(a few rows: far quicker than ``TRUNCATE``, which rebuilds the table) and
dropped, with its key counter, when the session ends.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from doqu import get_db
from doqu.config import parse_url
from doqu.testing.registry import Engine

URL_VARIABLE = "DOQU_TEST_MYSQL_URL"
DEFAULT_URL = "mysql://root@127.0.0.1:3306/test"
TABLE = f"doqu_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def url() -> str:
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def _shown(text: str) -> str:
    """The URL with its password masked, for skip reasons."""
    password = parse_url(text).get("password")
    return text.replace(f":{password}@", ":***@") if password else text


def _connect_args() -> dict[str, Any]:
    settings = parse_url(url())
    host = settings.get("host", "localhost")
    return {"host": host, "port": settings.get("port", 3306),
            "user": settings.get("user"), "password": settings.get("password", ""),
            "database": settings.get("database"), "charset": "utf8mb4", "autocommit": True,
            "connect_timeout": 3, "ssl_disabled": host in ("localhost", "127.0.0.1", "::1")}


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why the MariaDB tests cannot run here, or None."""
    if importlib.util.find_spec("pymysql") is None:
        return "the package 'PyMySQL' is not installed (pip install 'doqu[mysql]')"
    import pymysql

    try:
        conn = pymysql.connect(**_connect_args())
    except pymysql.err.MySQLError as exc:
        return f"no MariaDB server at {_shown(url())} (set {URL_VARIABLE}): {exc}"
    try:
        version = conn.get_server_info()
    finally:
        conn.close()
    if "mariadb" not in version.lower():
        return f"the server at {_shown(url())} is not MariaDB ({version})"
    return None


_cleanup_registered = False


def _drop_table() -> None:
    import pymysql

    with contextlib.suppress(pymysql.err.MySQLError):
        conn = pymysql.connect(**_connect_args())
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS `{TABLE}`")
                cursor.execute("DELETE FROM doqu_sequences WHERE name = %s", (TABLE,))
        finally:
            conn.close()


@contextlib.contextmanager
def open_storage(tmp_path: Path | None = None, **settings: Any) -> Iterator[Any]:
    """A connected, empty storage over this session's table."""
    global _cleanup_registered
    if not _cleanup_registered:
        atexit.register(_drop_table)
        _cleanup_registered = True
    db = get_db(url(), table=TABLE, **settings)
    try:
        db.execute(f"DELETE FROM `{TABLE}`")
        yield db
    finally:
        if db.connected:
            db.disconnect()


ENGINES = [Engine("mysql", open=open_storage, unavailable=unavailable)]
