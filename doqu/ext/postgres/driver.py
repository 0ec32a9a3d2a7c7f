"""Everything that needs psycopg, imported only once a PostgreSQL storage connects.

``import doqu.ext.postgres`` works without psycopg; :func:`load` imports this
module and turns a missing package into a :class:`doqu.ConfigurationError`
with the pip line.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
import psycopg.conninfo
import psycopg.errors
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool, PoolTimeout

from doqu.ext.postgres.codec import loads

__all__ = ["psycopg", "ConnectionPool", "PoolTimeout", "configure", "check", "is_connection_lost"]

#: SQLSTATEs meaning the session is gone: admin shutdown, crash shutdown, cannot connect now.
_LOST = {"57P01", "57P02", "57P03"}


class JsonbLoader(Loader):
    """jsonb (text format) → canonical record, numbers as :mod:`doqu.ext.postgres.codec` reads them."""

    def load(self, data: Any) -> Any:
        return loads(bytes(data).decode("utf-8"))


class JsonbBinaryLoader(Loader):
    """jsonb (binary format: a version byte, then the same text)."""

    format = Format.BINARY

    def load(self, data: Any) -> Any:
        raw = bytes(data)
        if raw[:1] != b"\x01":
            raise psycopg.DataError(f"unknown jsonb binary format version {raw[:1]!r}")
        return loads(raw[1:].decode("utf-8"))


def configure(conn: psycopg.Connection[Any]) -> None:
    """Run on every new connection of a pool."""
    conn.adapters.register_loader("jsonb", JsonbLoader)
    conn.adapters.register_loader("jsonb", JsonbBinaryLoader)


def check(conn: psycopg.Connection[Any]) -> None:
    """Cheap liveness test when a connection leaves the pool.

    An idle connection has nothing to read; a terminated backend has sent
    its FATAL message or closed the socket, which makes it readable. Only
    then is a round trip spent on it (and it raises if the session is gone,
    so the pool replaces the connection before anyone uses it).
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        conn.execute("")


def is_connection_lost(exc: BaseException, conn: Any = None) -> bool:
    """Did ``exc`` come from a session that is gone (rather than from a bad statement)?"""
    if isinstance(exc, PoolTimeout):
        return True
    if conn is not None and (getattr(conn, "closed", False) or getattr(conn, "broken", False)):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate.startswith("08") or sqlstate in _LOST
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def make_conninfo(**params: Any) -> str:
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})
