"""The PostgreSQL storage: one table of ``(key text, data jsonb)`` rows behind a connection pool.

Connections come from a ``psycopg_pool.ConnectionPool`` (autocommit). A
statement outside a transaction borrows a connection for itself; a
``transaction()`` block pins one connection to the calling thread until it
ends (nested blocks are savepoints on it), so other threads sharing the
storage neither wait for it nor see its uncommitted writes. Iteration reads
through a server-side cursor, a batch at a time, on a connection of its own
(or on the transaction's, inside one), so a million records stream in
constant memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import itertools
import os
import re
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

from doqu.backend_base import BaseStorageAdapter, Features
from doqu.errors import (
    ConfigurationError,
    ConnectionError,
    QueryError,
    StorageError,
    TransactionError,
    ValidationError,
)
from doqu.ext.postgres.codec import encode
from doqu.ext.postgres.dialect import PostgresDialect
from doqu.ext.postgres.query import QueryAdapter
from doqu.query.conditions import parse_lookup
from doqu.sql import Compiler, Unsupported

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["StorageAdapter"]

Record = dict[str, Any]

#: Table and schema names: plain identifiers, short enough for ``<table>_doqu_seq``.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,53}\Z")
_ISOLATION = {"read committed", "repeatable read", "serializable"}
_SYNC = {"on", "off", "local", "remote_write", "remote_apply"}
_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
#: Batches of this many records or more go through COPY rather than pipelined INSERTs.
_COPY_FROM = 64
#: Pools inherited through fork(): kept, never used nor closed (see _live_pool).
_INHERITED: list[Any] = []
#: clear() empties tables with this many records or more with TRUNCATE.
_TRUNCATE_FROM = 10_000
_cursor_names = itertools.count(1)


def _driver() -> Any:
    try:
        driver = importlib.import_module("doqu.ext.postgres.driver")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "psycopg").split(".")[0]
        raise ConfigurationError(
            f"backend 'postgres' needs the package {missing!r}: pip install 'doqu[postgres]'"
        ) from exc
    return driver


class _Savepoint:
    __slots__ = ("name", "sent")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = False


class _Transaction:
    """A thread's open transaction: its pooled connection and what it has not sent yet.

    ``BEGIN`` and ``SAVEPOINT`` are not sent when a block starts but just
    before the block's first statement, in the same pipeline (one round trip
    for both), and a block that runs no statement costs nothing. ``pending``
    holds ``(depth, sql, savepoint)`` in order; ``begun`` says ``BEGIN`` went.
    """

    __slots__ = ("conn", "active", "pending", "savepoints", "begun", "pipeline")

    def __init__(self, conn: Any, begin: str) -> None:
        self.conn = conn
        self.active = True
        self.pending: list[tuple[int, str, _Savepoint | None]] = [(0, begin, None)]
        self.savepoints: list[_Savepoint] = []
        self.begun = False
        #: The pipeline carrying pending statements with the next one, while it is open.
        self.pipeline: Any = None

    def send_pending(self) -> None:
        """Queue what is pending on the connection (call inside a pipeline, before a statement)."""
        pending, self.pending = self.pending, []
        for _, sql, savepoint in pending:
            self.conn.execute(sql)
            if savepoint is not None:
                savepoint.sent = True
        self.begun = True


class StorageAdapter(BaseStorageAdapter):
    """Records as ``jsonb`` in one PostgreSQL table; queries compiled to SQL by :mod:`doqu.sql`.

    Settings (all optional; libpq's defaults and ``PG*`` environment
    variables fill in what is missing): ``host``, ``port``, ``user``,
    ``password``, ``database``, ``table`` (default ``documents``), ``schema``
    (default: the search path), ``pool_size`` (most connections, default
    10), ``pool_min_size`` (default 1), ``connect_timeout`` (seconds,
    default 10), ``pool_timeout`` (seconds to wait for a free connection,
    default 30), ``isolation_level`` (``read committed``, ``repeatable
    read`` or ``serializable``; default the server's), ``batch_size`` (rows
    per fetch when streaming, default 2000), ``sslmode``,
    ``application_name``, ``auto_index`` (create a document class's
    ``indexes`` when it first saves or queries here, default true).
    """

    backend_name = "postgres"
    query_adapter = QueryAdapter
    features = Features(durable_transactions=True, persistent=True, indexes=True, multi_process=True)
    known_settings: ClassVar[tuple[str, ...] | None] = (
        "host", "port", "user", "password", "database", "table", "schema", "pool_size",
        "pool_min_size", "connect_timeout", "pool_timeout", "isolation_level", "batch_size",
        "sslmode", "application_name", "synchronous_commit", "auto_index")
    setting_types: ClassVar[dict[str, type]] = {
        "port": int, "pool_size": int, "pool_min_size": int, "connect_timeout": float,
        "pool_timeout": float, "batch_size": int, "auto_index": bool}

    # -- lifecycle ------------------------------------------------------------
    def _connect(self) -> None:
        driver = _driver()
        if not hasattr(self, "_local"):
            self._configure(driver)
        self._local = threading.local()
        self._key_buffer: deque[str] = deque()
        conn = self._open_direct(driver)
        try:
            self._prepare(conn)
        finally:
            conn.close()
        pool = driver.ConnectionPool(
            self._conninfo, min_size=self._pool_min, max_size=self._pool_max,
            kwargs={"autocommit": True}, configure=self._configure_connection,
            timeout=self._pool_timeout, name=f"doqu {self._location}", open=False)
        try:
            pool.open(wait=True, timeout=self._connect_timeout)
        except driver.psycopg.Error as exc:
            pool.close()
            raise self._error(exc, "connect") from exc
        self._pool: Any = pool
        self._pid = os.getpid()

    def _configure_connection(self, conn: Any) -> None:
        _driver().configure(conn)

    def _configure(self, driver: Any) -> None:
        s = self.settings
        table = s.get("table") or "documents"
        schema = s.get("schema") or None
        for label, name in (("table", table), ("schema", schema)):
            if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
                raise ConfigurationError(
                    f"postgres: invalid {label} name {name!r}: use letters, digits and '_' "
                    f"(at most 54, not starting with a digit)")
        self._table, self._schema = table, schema
        port = s.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise ConfigurationError(f"postgres: setting 'port' must be a TCP port, got {port!r}")
        self._pool_max = self._whole("pool_size", 10)
        self._pool_min = self._whole("pool_min_size", 1, minimum=0)
        if self._pool_min > self._pool_max:
            raise ConfigurationError(f"postgres: pool_min_size {self._pool_min} exceeds pool_size {self._pool_max}")
        self._connect_timeout = self._seconds("connect_timeout", 10)
        self._pool_timeout = self._seconds("pool_timeout", 30)
        self._batch = self._whole("batch_size", 2000)
        isolation = s.get("isolation_level")
        if isolation is not None:
            isolation = str(isolation).lower().replace("_", " ")
            if isolation not in _ISOLATION:
                raise ConfigurationError(f"postgres: isolation_level {s.get('isolation_level')!r} is not "
                                         f"one of {', '.join(sorted(_ISOLATION))}")
        self._isolation = isolation
        self._begin = f"BEGIN ISOLATION LEVEL {isolation.upper()}" if isolation else "BEGIN"
        sslmode = s.get("sslmode")
        if sslmode is not None and sslmode not in _SSLMODES:
            raise ConfigurationError(f"postgres: sslmode {sslmode!r} is not one of {', '.join(sorted(_SSLMODES))}")
        sync = s.get("synchronous_commit")
        if sync is not None:
            sync = str(sync).lower()
            if sync not in _SYNC:
                raise ConfigurationError(f"postgres: synchronous_commit {s.get('synchronous_commit')!r} is "
                                         f"not one of {', '.join(sorted(_SYNC))}")
        self._auto_index_on = s.get("auto_index", True) is not False
        self._indexed_classes: set[type] = set()
        self._index_lock = threading.Lock()
        self._key_lock = threading.Lock()
        self._key_block = 0
        self._patterns: dict[str, bool] = {}
        self._password = s.get("password") or None
        try:
            self._conninfo = driver.make_conninfo(
                host=s.get("host"), port=port, user=s.get("user"), password=self._password,
                dbname=s.get("database"), sslmode=sslmode,
                application_name=s.get("application_name") or "doqu",
                options=f"-c synchronous_commit={sync}" if sync else None,
                connect_timeout=max(1, int(self._connect_timeout + 0.999)))
        except driver.psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"postgres: invalid connection settings: {self._scrub(str(exc))}") from None
        self._location = self._where(s.get("user"), s.get("host"), port, s.get("database"))
        self.dialect = PostgresDialect(check_pattern=self._pattern_ok)
        q = self.dialect.quote_ident
        self._qualified = f"{q(schema)}.{q(table)}" if schema else q(table)
        self._sequence = f"{q(schema)}.{q(table + '_doqu_seq')}" if schema else q(table + "_doqu_seq")
        self.compiler = Compiler(self.dialect, table,
                                 convert=lambda value: self.converter_manager.to_db(value, self))
        self.compiler.table = self._qualified
        t = self._qualified
        self._sql = {
            "load": f"SELECT data FROM {t} WHERE key = %s",
            "load_many": f"SELECT key, data FROM {t} WHERE key = ANY(%s)",
            "store": self.dialect.upsert(t),
            "remove": f"DELETE FROM {t} WHERE key = %s",
            "keys": f"SELECT key FROM {t}",
            "records": f"SELECT key, data FROM {t}",
            "count": f"SELECT count(*) FROM {t}",
            "clear": f"TRUNCATE {t}",
            "delete_all": f"DELETE FROM {t}",
            "few": f"SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT %s) AS head",
            "reserve": (f"SELECT n.key FROM (SELECT nextval(%s::regclass)::text AS key, i "
                        f"FROM generate_series(1, %s) AS i) AS n WHERE NOT EXISTS "
                        f"(SELECT 1 FROM {t} WHERE {t}.key = n.key) ORDER BY n.i"),
            "copy": f"COPY {t} (key, data) FROM STDIN",
        }

    def _whole(self, name: str, default: int, minimum: int = 1) -> int:
        value = self.settings.get(name, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"postgres: setting {name!r} must be a whole number >= {minimum}, "
                                     f"got {value!r}")
        return value

    def _seconds(self, name: str, default: float) -> float:
        value = self.settings.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
            raise ConfigurationError(f"postgres: setting {name!r} must be seconds > 0, got {value!r}")
        return float(value)

    @staticmethod
    def _where(user: Any, host: Any, port: Any, database: Any) -> str:
        auth = f"{user}@" if user else ""
        return f"postgresql://{auth}{host or 'localhost'}:{port or 5432}/{database or ''}"

    def _open_direct(self, driver: Any) -> Any:
        """One connection outside the pool: fails fast and with libpq's reason."""
        try:
            conn = driver.psycopg.connect(self._conninfo, autocommit=True)
        except driver.psycopg.Error as exc:
            raise ConnectionError(
                f"postgres: cannot connect to {self._location}: {self._scrub(str(exc)).strip()}") from None
        info = conn.info
        self._location = self._where(info.user, info.host, info.port, info.dbname)
        driver.configure(conn)
        return conn

    def _prepare(self, conn: Any) -> None:
        """Create the table and its key sequence if missing; check an existing table's columns."""
        driver = _driver()
        try:
            table, sequence = conn.execute("SELECT to_regclass(%s), to_regclass(%s)",
                                           (self._qualified, self._sequence)).fetchone()
            if table is not None:
                self._check_columns(conn)
            if table is None or sequence is None:
                lock = int.from_bytes(hashlib.sha1(f"doqu {self._qualified}".encode()).digest()[:8],
                                      "big", signed=True)
                with conn.transaction():
                    # concurrent CREATE ... IF NOT EXISTS can still collide: take turns
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {self._qualified} "
                                 f"(key text PRIMARY KEY, data jsonb NOT NULL)")
                    self._check_columns(conn)
                    conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {self._sequence} "
                                 f"OWNED BY {self._qualified}.key")
        except driver.psycopg.Error as exc:
            raise self._error(exc, f"prepare the table {self._qualified}", conn) from exc

    def _check_columns(self, conn: Any) -> None:
        columns = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (self._qualified,)).fetchall())
        if columns.get("key") != "text" or columns.get("data") != "jsonb":
            raise ConfigurationError(
                f"postgres: the table {self._qualified} in {self._location} exists but is not a doqu "
                f"table (it needs the columns key text and data jsonb; it has "
                f"{', '.join(f'{k} {v}' for k, v in columns.items())}); choose another 'table'")

    def _disconnect(self) -> None:
        pool, self._pool = getattr(self, "_pool", None), None
        self._key_buffer.clear()
        if pool is not None:
            pool.close()

    def describe_location(self) -> str:
        table = getattr(self, "_qualified", None)
        return f"{getattr(self, '_location', 'postgresql://?')}, table {table or '?'}"

    @property
    def identity(self) -> Any:
        return ("postgres", self._location, self._schema, self._table)

    # -- errors -------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        password = getattr(self, "_password", None)
        return text.replace(password, "***") if password else text

    def _error(self, exc: BaseException, action: str, conn: Any = None) -> Exception:
        driver = _driver()
        where = self.describe_location()
        message = self._scrub(str(exc)).strip() or type(exc).__name__
        if isinstance(exc, UnicodeEncodeError):
            return ValidationError(f"postgres: cannot {action}: a string is not valid Unicode "
                                   f"({exc.reason}) in {where}")
        if isinstance(exc, driver.PoolTimeout):
            return ConnectionError(f"postgres: no connection to {where} became free or could be opened "
                                   f"within pool_timeout={self._pool_timeout:g}s to {action}: {message}")
        if driver.is_connection_lost(exc, conn):
            return ConnectionError(f"postgres: lost the connection to {where} while trying to {action}: "
                                   f"{message}; the pool replaces it, or call reconnect()")
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate in ("40001", "40P01"):
            return TransactionError(f"postgres: cannot {action} in {where}: {message} (the transaction "
                                    f"was rolled back; run it again)")
        if sqlstate == "54000" and "index" in message:
            return ValidationError(f"postgres: cannot {action} in {where}: {message}; a value is too large "
                                   f"for an index of the table (B-tree entries hold about 2.7 kB after "
                                   f"compression; see db.indexes()): shorten it or drop that index")
        if sqlstate == "54000" or sqlstate.startswith("22"):
            return ValidationError(f"postgres: cannot {action} in {where}: {message}")
        return StorageError(f"postgres: cannot {action} in {where}: {message}")

    def _live_pool(self) -> Any:
        pool = getattr(self, "_pool", None)
        if pool is None:
            raise ConnectionError(f"postgres: not connected to {self.describe_location()}; call connect()")
        if self._pid != os.getpid():
            # a forked child must not talk on its parent's sockets, nor close them (closing
            # would end the parent's sessions): keep the inherited pool untouched, open one
            _INHERITED.append(pool)
            self._pool = None
            self._connect()
            pool = self._pool
        return pool

    @contextlib.contextmanager
    def _using(self, action: str) -> Iterator[Any]:
        """The connection for one statement: the thread's transaction's, or one from the pool."""
        tx = getattr(self._local, "tx", None)
        driver = _driver()
        if tx is not None:
            try:
                if tx.pending:  # BEGIN / SAVEPOINT go in one round trip with the statement
                    with tx.conn.pipeline() as pipeline:
                        tx.send_pending()
                        tx.pipeline = pipeline
                        try:
                            yield tx.conn
                        finally:
                            tx.pipeline = None
                else:
                    yield tx.conn
            except (driver.psycopg.Error, UnicodeEncodeError) as exc:
                raise self._error(exc, action, tx.conn) from exc
            return
        conn = self._acquire(action)
        try:
            yield conn
        except (driver.psycopg.Error, UnicodeEncodeError) as exc:
            raise self._error(exc, action, conn) from exc
        finally:
            self._release(conn)

    def _acquire(self, action: str) -> Any:
        """A working connection from the pool.

        A connection whose session died while it sat in the pool (a killed
        backend, a restarted server) is noticed before use, without a round
        trip for a healthy one (see :func:`doqu.ext.postgres.driver.check`);
        then the whole pool is checked at once and the call goes on with a
        fresh connection.
        """
        driver = _driver()
        pool = self._live_pool()
        failure: BaseException | None = None
        for attempt in range(self._pool_max + 2):
            try:
                conn = pool.getconn()
            except driver.psycopg.Error as exc:
                raise self._error(exc, action) from exc
            try:
                driver.check(conn)
                return conn
            except driver.psycopg.Error as exc:
                failure = exc
                pool.putconn(conn)  # broken: the pool drops it and opens another
                if attempt == 0:
                    with contextlib.suppress(driver.psycopg.Error):
                        pool.check()  # the rest of the idle connections likely died with it
        assert failure is not None
        raise self._error(failure, action) from failure

    def _release(self, conn: Any) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.putconn(conn)
        else:
            conn.close()  # disconnected meanwhile

    def _settled(self, cursor: Any) -> Any:
        """``cursor`` with its results received, for ``rowcount`` and ``description``.

        (Fetching does this by itself; inside the pipeline that carries a
        pending ``BEGIN`` nothing else would.)
        """
        tx = getattr(self._local, "tx", None)
        if tx is not None and tx.pipeline is not None:
            tx.pipeline.sync()
        return cursor

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one SQL statement (``%s`` placeholders); the rows it returns, if any.

        For maintenance and tests (``EXPLAIN``, ``ANALYZE``, ``SET``); inside a
        ``transaction()`` it runs on the transaction's connection.
        """
        with self._using("execute SQL") as conn:
            cursor = self._settled(conn.execute(sql, params))
            return cursor.fetchall() if cursor.description is not None else []

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["StorageAdapter"]:
        """All writes in the block, or none; nested blocks are savepoints.

        The block holds one pooled connection for the calling thread; ``BEGIN``
        (or ``SAVEPOINT``) travels with the block's first statement. With
        ``isolation_level='serializable'`` (or ``repeatable read``) a block may
        fail with :class:`doqu.TransactionError` when it conflicts with
        another; run it again.
        """
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            with self._savepoint(tx):
                yield self
            return
        conn = self._acquire("begin a transaction")
        tx = _Transaction(conn, self._begin)
        self._local.tx = tx
        try:
            try:
                yield self
            except BaseException:
                self._indexed_classes.clear()  # indexes made inside are rolled back too
                if tx.begun:
                    self._quietly(conn, "ROLLBACK")
                raise
            if tx.begun:  # COMMIT also releases the savepoints still pending release
                try:
                    conn.execute("COMMIT")
                except _driver().psycopg.Error as exc:
                    self._indexed_classes.clear()
                    raise self._error(exc, "commit", conn) from exc
        finally:
            tx.active = False
            self._local.tx = None
            self._release(conn)

    @contextlib.contextmanager
    def _savepoint(self, tx: _Transaction) -> Iterator[None]:
        depth = len(tx.savepoints) + 1
        savepoint = _Savepoint(self.dialect.quote_ident(f"doqu_sp{depth}"))
        tx.savepoints.append(savepoint)
        tx.pending.append((depth, f"SAVEPOINT {savepoint.name}", savepoint))
        try:
            yield
        except BaseException:
            tx.savepoints.pop()
            self._indexed_classes.clear()
            # what deeper blocks left pending means nothing once this one is undone
            tx.pending = [item for item in tx.pending if item[0] < depth]
            if savepoint.sent:
                self._quietly(tx.conn, f"ROLLBACK TO SAVEPOINT {savepoint.name}")
                tx.pending.append((depth - 1, f"RELEASE SAVEPOINT {savepoint.name}", None))
            raise
        tx.savepoints.pop()
        if savepoint.sent:
            tx.pending.append((depth - 1, f"RELEASE SAVEPOINT {savepoint.name}", None))
        else:  # nothing ran inside: forget it
            tx.pending = [item for item in tx.pending if item[0] < depth]

    def _quietly(self, conn: Any, sql: str) -> None:
        """Undo after an error; a failure here must not hide the error that caused it."""
        if not conn.closed and not conn.broken:
            with contextlib.suppress(_driver().psycopg.Error):
                conn.execute(sql)

    def _flush(self, tx: _Transaction | None) -> None:
        """Send what the transaction has pending now (before COPY, which cannot be pipelined)."""
        if tx is not None and tx.pending:
            try:
                with tx.conn.pipeline():
                    tx.send_pending()
            except _driver().psycopg.Error as exc:
                raise self._error(exc, "begin a transaction", tx.conn) from exc

    # -- records -------------------------------------------------------------------------
    def _check_key(self, key: Any) -> str:
        key = super()._check_key(key)
        if "\x00" in key:
            raise ValidationError(f"primary key {key!r}: PostgreSQL text cannot hold the NUL character")
        return key

    def _encode(self, doc_class: type["Document"] | None, data: Mapping[str, Any]) -> Record:
        record = super()._encode(doc_class, data)
        if doc_class is not None and doc_class not in self._indexed_classes:
            self._auto_index(doc_class)
        return record

    def _load(self, key: str) -> Record | None:
        with self._using("read") as conn:
            row = conn.execute(self._sql["load"], (key,)).fetchone()
        return row[0] if row is not None else None

    def _load_many(self, keys: Sequence[str]) -> list[Record | None]:
        unique = list(dict.fromkeys(keys))
        with self._using("read") as conn:
            found = dict(conn.execute(self._sql["load_many"], (unique,)).fetchall())
        return [found.get(k) for k in keys]

    def _store(self, key: str, record: Record) -> None:
        text = encode(record)
        with self._using("save") as conn:
            conn.execute(self._sql["store"], (key, text))

    def _store_many(self, items: Sequence[tuple[str, Record]]) -> None:
        rows = [(key, encode(record)) for key, record in items]
        fresh: set[str] = getattr(self._local, "fresh", set())
        all_fresh = bool(rows) and all(key in fresh for key, _ in rows)
        fresh.difference_update(key for key, _ in rows)
        if not rows:
            return
        with self.transaction():
            if len(rows) < _COPY_FROM:
                with self._using("save") as conn, conn.cursor() as cursor:
                    cursor.executemany(self._sql["store"], rows)
            elif not (all_fresh and self._copy_new(rows)):
                self._flush(self._local.tx)
                with self._using("save") as conn:
                    self._copy_upsert(conn, rows)

    def _copy_new(self, rows: Sequence[tuple[str, str]]) -> bool:
        """COPY straight into the table: keys this storage generated are new (False if one was not)."""
        try:
            with self.transaction():  # a savepoint to fall back to
                self._flush(self._local.tx)
                with self._using("save") as conn, conn.cursor() as cursor:
                    with cursor.copy(self._sql["copy"]) as copy:
                        for row in rows:
                            copy.write_row(row)
        except StorageError as exc:
            if isinstance(exc.__cause__, _driver().psycopg.errors.UniqueViolation):
                return False  # someone saved one of those keys by hand meanwhile: upsert instead
            raise
        return True

    def _copy_upsert(self, conn: Any, rows: Sequence[tuple[str, str]]) -> None:
        """COPY into a temporary table, then one upsert (the last row of a repeated key wins)."""
        with conn.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS doqu_incoming "
                           "(n bigint, key text, data jsonb) ON COMMIT DELETE ROWS")
            cursor.execute("TRUNCATE doqu_incoming")
            with cursor.copy("COPY doqu_incoming (n, key, data) FROM STDIN") as copy:
                for n, (key, text) in enumerate(rows):
                    copy.write_row((n, key, text))
            t = self._qualified
            cursor.execute(
                f"INSERT INTO {t} (key, data) SELECT DISTINCT ON (key) key, data FROM doqu_incoming "
                f"ORDER BY key, n DESC ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data")

    def _remove(self, key: str) -> bool:
        with self._using("delete") as conn:
            return self._settled(conn.execute(self._sql["remove"], (key,))).rowcount > 0

    def _keys(self) -> Iterator[str]:
        return self._stream(self._sql["keys"], (), lambda row: row[0])

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        return self._stream(self._sql["records"], (), _same)

    def _count(self) -> int:
        with self._using("count") as conn:
            return int(conn.execute(self._sql["count"]).fetchone()[0])

    def _clear(self) -> None:
        """DELETE a small table (no lock beyond its rows), TRUNCATE a large one (no row by row work)."""
        with self.transaction(), self._using("clear") as conn:
            rows = conn.execute(self._sql["few"], (_TRUNCATE_FROM,)).fetchone()[0]
            conn.execute(self._sql["clear"] if rows >= _TRUNCATE_FROM else self._sql["delete_all"])

    def __bool__(self) -> bool:
        # a storage is always true: without this, ``storage or default`` (Document.save does
        # that) would ask len(), a count(*) of the whole table (reported to the core)
        return True

    def __contains__(self, primary_key: object) -> bool:
        if not isinstance(primary_key, str) or "\x00" in primary_key:
            return False  # a key PostgreSQL cannot store is in no table
        try:
            primary_key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: not storable either
            return False
        with self._using("read") as conn:
            return conn.execute(f"SELECT 1 FROM {self._qualified} WHERE key = %s",
                                (primary_key,)).fetchone() is not None

    # -- streaming ------------------------------------------------------------------------
    def _stream(self, sql: str, params: Sequence[Any], convert: Callable[[Any], Any],
                small: bool = False) -> Iterator[Any]:
        """Rows of a query, converted, fetched ``batch_size`` at a time from a server-side cursor.

        ``small``: the statement returns at most one batch (it has a LIMIT), so
        one round trip on an ordinary cursor does.
        """
        if small:
            with self._using("query") as conn:
                rows = conn.execute(sql, params).fetchall()
            for row in rows:
                yield convert(row)
            return
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield from self._cursor(tx.conn, sql, params, convert, tx)
            return
        conn = self._acquire("query")
        try:
            yield from self._cursor(conn, sql, params, convert, None)
        finally:
            self._release(conn)

    def _cursor(self, conn: Any, sql: str, params: Sequence[Any], convert: Callable[[Any], Any],
                tx: _Transaction | None) -> Iterator[Any]:
        """Stream through ``DECLARE ... CURSOR`` / ``FETCH``.

        Outside a transaction the cursor gets one of its own on this pooled
        connection. ``BEGIN``, ``DECLARE`` and the first ``FETCH`` go in one
        pipeline (one round trip), and the end is one ``COMMIT`` (or ``CLOSE``
        inside the caller's transaction): a query returning a single batch
        costs two round trips.
        """
        driver = _driver()
        batch = self._batch
        # one stream per pooled connection at a time; several may share a transaction's
        name = self.dialect.quote_ident(f"doqu_{next(_cursor_names)}" if tx is not None else "doqu_stream")
        fetch = f"FETCH FORWARD {batch} FROM {name}"
        cursor = conn.cursor()
        opened = False
        try:
            try:
                with conn.pipeline():
                    if tx is None:
                        cursor.execute("BEGIN")
                    else:
                        tx.send_pending()
                    cursor.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {sql}", params)
                    opened = True
                    cursor.execute(fetch)
                rows = cursor.fetchall()
            except (driver.psycopg.Error, UnicodeEncodeError) as exc:
                raise self._error(exc, "query", conn) from exc
            while rows:
                for row in rows:
                    yield convert(row)
                if len(rows) < batch:
                    return
                if tx is not None and not tx.active:
                    raise StorageError("postgres: an iterator started inside a transaction was resumed "
                                       "after it ended; iterate inside the transaction")
                try:
                    rows = cursor.execute(fetch).fetchall()
                except driver.psycopg.Error as exc:
                    raise self._error(exc, "query", conn) from exc
        finally:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(driver.psycopg.Error):
                    if tx is None:
                        conn.execute("COMMIT")  # ends the cursor too (or the failed transaction)
                    elif opened and tx.active:
                        conn.execute(f"CLOSE {name}")

    # -- keys ------------------------------------------------------------------------------
    def _new_key(self) -> str:
        """The next number of the table's sequence that no record uses as its key.

        Numbers are drawn in growing blocks (1, 2, 4 ... 1024) in one round
        trip that also skips numbers already used as keys. Sequences never go
        back, even when a transaction rolls back, so keys never repeat.
        """
        with self._key_lock:
            while not self._key_buffer:
                size = self._key_block = min(max(1, self._key_block * 2), 1024)
                with self._using("generate a key") as conn:
                    rows = conn.execute(self._sql["reserve"], (self._sequence, size)).fetchall()
                self._key_buffer.extend(row[0] for row in rows)
            key = self._key_buffer.popleft()
        fresh = getattr(self._local, "fresh", None)
        if fresh is None:
            fresh = self._local.fresh = set()
        if len(fresh) > 100_000:
            fresh.clear()  # keys generated and never stored: forget them
        fresh.add(key)
        return key

    # -- indexes -----------------------------------------------------------------------------
    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Create indexes for queries on these fields (names, or tuples of names: composite).

        For one field: a B-tree on its numbers (jsonb order), a B-tree on its
        strings (code point order), each partial (only rows holding that kind,
        the kind guard every compiled comparison carries), and a GIN index
        (``jsonb_path_ops``) on its value for list containment and equality
        with lists and objects. A document class's ``structure`` narrows this
        to the kinds its field holds. Idempotent.
        """
        return self._ensure(fields, {})

    def _ensure(self, fields: Sequence[Any], types: Mapping[str, Any]) -> bool:
        statements = [sql for field in fields for sql in self._index_sql(field, types)]
        if not statements:
            return True
        lock = int.from_bytes(hashlib.sha1(f"doqu {self._qualified}".encode()).digest()[:8], "big", signed=True)
        with self.transaction(), self._using("create an index") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            for sql in statements:
                conn.execute(sql)
        return True

    def _index_sql(self, field: Any, types: Mapping[str, Any]) -> list[str]:
        names = [field] if isinstance(field, str) else list(field) if isinstance(field, (list, tuple)) else []
        if not names or not all(isinstance(n, str) for n in names):
            raise QueryError(f"ensure_index takes field names or tuples of them, got {field!r}")
        parts = []
        for name in names:
            path, op = parse_lookup(name)
            if op != "equals" or name.endswith("__equals"):
                raise QueryError(f"ensure_index takes field names, not lookups: {name!r}")
            try:
                expressions = self.dialect.index_expressions(self.compiler.doc, path)
            except Unsupported as exc:
                raise QueryError(f"cannot index {name!r}: {exc}") from None
            parts.append((name, path, expressions, _kinds(types.get(name))))
        t = self._qualified
        out = []
        if len(parts) == 1:
            name, path, expressions, kinds = parts[0]
            for kind in kinds:
                expr, guard = expressions[kind]
                index = self._index_name(path, kind)
                if kind == "jsonb":
                    out.append(f"CREATE INDEX IF NOT EXISTS {index} ON {t} USING gin ({expr} jsonb_path_ops)")
                else:  # partial: values of that kind only, as the compiled conditions say
                    out.append(f"CREATE INDEX IF NOT EXISTS {index} ON {t} ({expr}) WHERE {guard}")
            return out
        # composite: one B-tree over each part's number or string expression (strings unless declared)
        columns, guards = [], []
        for _, _, expressions, kinds in parts:
            expr, guard = expressions["number" if kinds[0] == "number" else "string"]
            columns.append(expr)
            guards.append(guard)
        index = self._index_name(tuple(p[1] for p in parts), "composite")
        out.append(f"CREATE INDEX IF NOT EXISTS {index} ON {t} ({', '.join(columns)}) "
                   f"WHERE {' AND '.join(guards)}")
        return out

    def _index_name(self, path: Any, kind: str) -> str:
        readable = re.sub(r"\W", "_", repr(path))[:20].strip("_")
        digest = hashlib.sha1(f"{self._qualified} {path!r} {kind}".encode()).hexdigest()[:8]
        return self.dialect.quote_ident(f"{self._table[:24]}_{readable}_{kind[0]}_{digest}")

    def indexes(self) -> list[str]:
        """The definitions of every index on this storage's table (for inspection)."""
        rows = self.execute("SELECT indexdef FROM pg_indexes WHERE format('%%I.%%I', schemaname, tablename)"
                            "::regclass = %s::regclass ORDER BY indexname", (self._qualified,))
        return [row[0] for row in rows]

    def _auto_index(self, doc_class: type["Document"] | None) -> None:
        """Create ``doc_class.indexes`` the first time the class saves or queries here."""
        if doc_class is None or not self._auto_index_on or doc_class in self._indexed_classes:
            return
        wanted = list(getattr(doc_class, "indexes", None) or ())
        if wanted:
            structure = doc_class._schema_types() if hasattr(doc_class, "_schema_types") else {}
            self._ensure(wanted, structure or {})
        with self._index_lock:
            self._indexed_classes.add(doc_class)

    # -- patterns -------------------------------------------------------------------------------
    def _pattern_ok(self, pattern: str) -> bool:
        """Does the server accept this (translated) regular expression? Asked once per pattern."""
        known = self._patterns.get(pattern)
        if known is not None:
            return known
        driver = _driver()
        try:
            with self.transaction(), self._using("check a pattern") as conn:
                conn.execute("SELECT '' ~ %s", (pattern,))
            ok = True
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(exc, ConnectionError) or not isinstance(cause, driver.psycopg.Error):
                raise
            ok = False
        if len(self._patterns) > 1000:
            self._patterns.clear()
        self._patterns[pattern] = ok
        return ok


def _same(row: Any) -> Any:
    return row


def _kinds(declared: Any) -> list[str]:
    """Which expression indexes a field declared as ``declared`` needs (all when undeclared)."""
    import datetime as dt
    import decimal

    if declared is None:
        return ["number", "string", "jsonb"]
    if isinstance(declared, type):
        if issubclass(declared, bool):
            return ["jsonb"]
        if issubclass(declared, (int, float, decimal.Decimal)):
            return ["number"]
        if issubclass(declared, (str, dt.date, dt.time, bytes)):
            return ["string"]
        if issubclass(declared, (list, dict)):
            return ["jsonb"]
        from doqu.document import Document

        if issubclass(declared, Document):
            return ["string"]  # references are stored as their keys
    return ["number", "string", "jsonb"]
