"""The SQLite storage: one table of ``(key, data)`` rows, records as JSON text.

Concurrency model: one ``sqlite3`` connection per storage object, used under
one re-entrant lock. A transaction holds that lock from ``BEGIN`` to
``COMMIT``, so another thread sharing the storage waits for it instead of
joining it or reading its uncommitted writes; an in-memory database
(``sqlite://``) has to be a single connection anyway. Threads that want to
read in parallel open a storage each: WAL mode lets readers run beside one
writer, across threads and processes, and the busy timeout makes writers
queue instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

from doqu.backend_base import BaseStorageAdapter, Features
from doqu.conversion import dumps as encode
from doqu.conversion import loads
from doqu.errors import (
    ConfigurationError,
    ConnectionError,
    QueryError,
    StorageError,
    TransactionError,
    ValidationError,
)
from doqu.ext.sqlite import functions
from doqu.ext.sqlite.dialect import SQLiteDialect
from doqu.ext.sqlite.query import QueryAdapter
from doqu.query.conditions import parse_lookup
from doqu.sql import Compiler

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["StorageAdapter"]

Record = dict[str, Any]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
#: Key counters of every doqu table in the file: (table name, last number handed out).
SEQUENCES = "doqu_sequences"
_JOURNAL_MODES = {"wal", "delete", "truncate", "persist", "memory", "off"}
_SYNC_MODES = {"off", "normal", "full", "extra"}
#: JSON1 with the ``->`` operator (3.38); RETURNING (3.35) and upsert (3.24) come with it.
MIN_SQLITE = (3, 38, 0)
#: Rows fetched per step when streaming results.
BATCH = 512
#: Keys per ``IN (...)`` list in get_many.
_IN_CHUNK = 500


class StorageAdapter(BaseStorageAdapter):
    """Records in one SQLite table; queries compiled to SQL over JSON1.

    Settings: ``path`` (a file; none or ``:memory:`` for an in-memory
    database), ``table`` (default ``documents``), ``timeout`` (seconds a
    writer waits for the lock, default 30), ``journal_mode`` (default
    ``wal``), ``synchronous`` (default ``normal``), ``auto_index`` (create a
    document class's ``indexes`` when it first saves or queries here,
    default true).
    """

    backend_name = "sqlite"
    query_adapter = QueryAdapter
    features = Features(durable_transactions=True, persistent=True, indexes=True, multi_process=True)
    known_settings: ClassVar[tuple[str, ...] | None] = (
        "path", "table", "timeout", "journal_mode", "synchronous", "auto_index")
    setting_types: ClassVar[dict[str, type]] = {"timeout": float, "auto_index": bool}

    # -- lifecycle ------------------------------------------------------------
    def _connect(self) -> None:
        if not hasattr(self, "_lock"):
            self._lock = threading.RLock()
            self._key_next = self._key_stop = 0
            self._key_block = 0
            self._key_issued = 0
            self._indexed_classes: set[type] = set()
            self._configure()
        self._depth = 0
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        try:
            conn = sqlite3.connect(self._target, timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False, cached_statements=256)
        except sqlite3.Error as exc:
            raise ConnectionError(f"sqlite: cannot open {self.describe_location()}: {exc}") from exc
        try:
            functions.register(conn)
            self._retry_locked(lambda: self._prepare(conn))
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _configure(self) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigurationError(
                f"sqlite: doqu needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer (JSON1 with "
                f"'->'), this Python has {sqlite3.sqlite_version}; upgrade Python or its libsqlite3")
        settings = self.settings
        path = settings.get("path")
        self._memory = path is None or os.fspath(path) in ("", ":memory:")
        self._target = ":memory:" if self._memory else os.fspath(path)
        table = settings.get("table") or "documents"
        if not isinstance(table, str) or not _TABLE_NAME.match(table) or table == SEQUENCES \
                or table.lower().startswith("sqlite_"):
            raise ConfigurationError(
                f"sqlite: invalid table name {table!r}: use letters, digits and '_' (at most 63, "
                f"not starting with a digit or 'sqlite_', not {SEQUENCES!r})")
        self._table = table
        timeout = settings.get("timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ConfigurationError(f"sqlite: setting 'timeout' must be seconds >= 0, got {timeout!r}")
        self._timeout = float(timeout)
        journal = str(settings.get("journal_mode") or "wal").lower()
        if journal not in _JOURNAL_MODES:
            raise ConfigurationError(f"sqlite: journal_mode {journal!r} is not one of "
                                     f"{', '.join(sorted(_JOURNAL_MODES))}")
        self._journal = journal
        sync = str(settings.get("synchronous") or "normal").lower()
        if sync not in _SYNC_MODES:
            raise ConfigurationError(f"sqlite: synchronous {sync!r} is not one of "
                                     f"{', '.join(sorted(_SYNC_MODES))}")
        self._sync = sync
        self._auto_index_on = settings.get("auto_index", True) is not False
        if self._memory:
            self.features = Features(durable_transactions=True, persistent=False, indexes=True)
        self.dialect = SQLiteDialect()
        self.compiler = Compiler(self.dialect, table,
                                 convert=lambda value: self.converter_manager.to_db(value, self))
        t = self.dialect.quote_ident(table)
        self._sql = {
            "load": f"SELECT data FROM {t} WHERE key = ?",
            "exists": f"SELECT 1 FROM {t} WHERE key = ?",
            "store": self.dialect.upsert(table),
            "remove": f"DELETE FROM {t} WHERE key = ?",
            "keys": f"SELECT key FROM {t}",
            "records": f"SELECT key, data FROM {t}",
            "count": f"SELECT count(*) FROM {t}",
            "clear": f"DELETE FROM {t}",
            "reserve": (f"INSERT INTO {SEQUENCES} (name, value) VALUES (?, ?) ON CONFLICT (name) "
                        f"DO UPDATE SET value = max(value, ?) + ? RETURNING value"),
        }

    def _prepare(self, conn: sqlite3.Connection) -> None:
        if not self._memory:
            conn.execute(f"PRAGMA journal_mode = {self._journal}").fetchall()
        conn.execute(f"PRAGMA synchronous = {self._sync}")
        t = self.dialect.quote_ident(self._table)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, "
                     f"key TEXT NOT NULL UNIQUE, data TEXT NOT NULL)")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SEQUENCES} "
                     f"(name TEXT PRIMARY KEY, value INTEGER NOT NULL)")

    def _retry_locked(self, action: Callable[[], None]) -> None:
        # the busy handler covers most waits; a few schema steps can still report
        # "locked" at once while another process is setting the file up
        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _disconnect(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._depth = 0
            self._key_next = self._key_stop  # a new connection may see other numbers
            if conn is not None:
                conn.close()

    def describe_location(self) -> str:
        if getattr(self, "_memory", True):
            return f"sqlite in-memory database at {id(self):#x}, table {getattr(self, '_table', '?')!r}"
        return f"sqlite file {os.path.abspath(self._target)}, table {self._table!r}"

    @property
    def identity(self) -> Any:
        if self._memory:
            return ("sqlite", id(self))
        return ("sqlite", os.path.realpath(self._target), self._table)

    # -- errors ------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise ConnectionError(f"sqlite: not connected to {self.describe_location()}; call connect()")
        if self._pid != os.getpid() and not self._memory:
            # a forked child must not use its parent's connection (SQLite's docs: that corrupts
            # files); leave it unclosed, since closing would drop the parent's locks, and reopen
            self._conn = None
            self._connect()
            conn = self._conn
            assert conn is not None
        return conn

    def _error(self, exc: BaseException, action: str) -> Exception:
        where = self.describe_location()
        if isinstance(exc, UnicodeEncodeError):
            return ValidationError(f"sqlite: cannot {action}: a string is not valid Unicode "
                                   f"({exc.reason}) in {where}")
        message = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and _is_locked(exc):
            return StorageError(f"sqlite: cannot {action}: {message}; another connection held the "
                                f"lock on {where} for more than timeout={self._timeout:g}s")
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in message:
            return ConnectionError(f"sqlite: cannot {action}: the connection to {where} is closed")
        if isinstance(exc, sqlite3.OperationalError) and (
                "unable to open" in message or "disk I/O" in message or "readonly" in message):
            return ConnectionError(f"sqlite: cannot {action} {where}: {message}")
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in message:
            return ConnectionError(f"sqlite: cannot {action} {where}: {message}")
        return StorageError(f"sqlite: cannot {action} in {where}: {message}")

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                yield conn
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                raise self._error(exc, action) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement on this storage's connection; all rows it returns.

        For maintenance (PRAGMA, ANALYZE, VACUUM) and tests; records belong to doqu.
        """
        with self._guard("execute SQL") as conn:
            return conn.execute(sql, tuple(params)).fetchall()

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["StorageAdapter"]:
        """All writes in the block, or none: ``BEGIN IMMEDIATE`` ... ``COMMIT``; nested → savepoints.

        IMMEDIATE takes the write lock up front (waiting up to ``timeout``), so a
        transaction that reads before it writes cannot deadlock with another
        process and fail with "database is locked" halfway through.
        """
        with self._lock:
            conn = self._connection()
            depth = self._depth
            savepoint = f"doqu_{depth}"
            try:
                conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            except sqlite3.Error as exc:
                raise self._error(exc, "begin a transaction") from exc
            self._depth = depth + 1
            try:
                yield self
            except BaseException:
                self._depth = depth
                self._key_next = self._key_stop  # numbers reserved inside may be rolled back
                self._indexed_classes.clear()  # and so may indexes created inside
                with contextlib.suppress(sqlite3.Error):  # keep the original error
                    if depth == 0:
                        conn.execute("ROLLBACK")
                    else:
                        conn.execute(f"ROLLBACK TO {savepoint}")
                        conn.execute(f"RELEASE {savepoint}")
                raise
            self._depth = depth
            try:
                conn.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            except sqlite3.Error as exc:
                self._key_next = self._key_stop
                with contextlib.suppress(sqlite3.Error):
                    if depth == 0:
                        conn.execute("ROLLBACK")
                raise TransactionError(
                    f"sqlite: cannot commit in {self.describe_location()}: {exc}") from exc

    # -- records -------------------------------------------------------------------------
    def _load(self, key: str) -> Record | None:
        with self._lock:
            try:
                row = self._connection().execute(self._sql["load"], (key,)).fetchone()
            except (sqlite3.Error, UnicodeEncodeError) as exc:
                raise self._error(exc, "read") from exc
        return loads(row[0]) if row is not None else None

    def _load_many(self, keys: Sequence[str]) -> list[Record | None]:
        found: dict[str, str] = {}
        t = self.dialect.quote_ident(self._table)
        unique = list(dict.fromkeys(keys))
        with self._guard("read") as conn:
            for i in range(0, len(unique), _IN_CHUNK):
                chunk = unique[i:i + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                found.update(conn.execute(f"SELECT key, data FROM {t} WHERE key IN ({marks})", chunk))
        return [loads(found[k]) if k in found else None for k in keys]

    def _store(self, key: str, record: Record) -> None:
        text = encode(record)
        with self._guard("save") as conn:
            conn.execute(self._sql["store"], (key, text))

    def _store_many(self, items: Sequence[tuple[str, Record]]) -> None:
        rows = [(key, encode(record)) for key, record in items]
        with self._guard("save") as conn:
            conn.executemany(self._sql["store"], rows)

    def _remove(self, key: str) -> bool:
        with self._guard("delete") as conn:
            return conn.execute(self._sql["remove"], (key,)).rowcount > 0

    def _keys(self) -> Iterator[str]:
        return self._stream(self._sql["keys"], (), lambda row: row[0])

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        return self._stream(self._sql["records"], (), lambda row: (row[0], loads(row[1])))

    def _count(self) -> int:
        with self._guard("count") as conn:
            return int(conn.execute(self._sql["count"]).fetchone()[0])

    def _clear(self) -> None:
        with self.transaction(), self._guard("clear") as conn:
            conn.execute(self._sql["clear"])

    def _stream(self, sql: str, params: Sequence[Any], convert: Callable[[Any], Any]) -> Iterator[Any]:
        """Rows of a query, converted, fetched in batches; the lock is held per batch only."""
        with self._guard("query") as conn:
            cursor = conn.execute(sql, tuple(params))
        try:
            while True:
                with self._guard("query"):
                    rows = cursor.fetchmany(BATCH)
                if not rows:
                    return
                for row in rows:
                    yield convert(row)
        finally:
            with self._lock:
                cursor.close()

    # -- keys ----------------------------------------------------------------------------------
    def _new_key(self) -> str:
        """The next number of the table's counter that no record uses as its key.

        Numbers are reserved from ``doqu_sequences`` in growing blocks (1, 2,
        4 ... 1024), so bulk saves do not write the counter per record. A block
        reserved inside a transaction that rolls back is dropped, and a new one
        never starts below what this storage has already handed out.
        """
        with self._lock:
            conn = self._connection()
            try:
                while True:
                    if self._key_next >= self._key_stop:
                        self._reserve_keys(conn)
                    number = self._key_next
                    self._key_next += 1
                    self._key_issued = max(self._key_issued, number)
                    key = str(number)
                    if conn.execute(self._sql["exists"], (key,)).fetchone() is None:
                        return key
            except sqlite3.Error as exc:
                raise self._error(exc, "generate a key") from exc

    def _reserve_keys(self, conn: sqlite3.Connection) -> None:
        size = self._key_block = min(max(1, self._key_block * 2), 1024)
        floor = self._key_issued
        # fetchall: a RETURNING statement holds its write until stepped to the end
        top = conn.execute(self._sql["reserve"], (self._table, floor + size, floor, size)).fetchall()[0][0]
        self._key_next, self._key_stop = top - size + 1, top + 1

    # -- indexes ---------------------------------------------------------------------------------
    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Create an expression index per field name, or per tuple of names (a composite index).

        Names are query names (``age``, ``address__city``). The index covers
        ``json_extract(data, '$."age"')``, the very expression compiled
        queries compare, so SQLite uses it for equality, ranges, ``in`` and
        ``startswith``. Idempotent.
        """
        statements = [self._index_sql(field) for field in fields]
        with self._guard("create an index") as conn:
            for sql in statements:
                self._retry_locked(lambda sql=sql: conn.execute(sql))  # type: ignore[misc]
        return True

    def _index_sql(self, field: str | Sequence[str]) -> str:
        names = [field] if isinstance(field, str) else list(field) if isinstance(field, (list, tuple)) else []
        if not names or not all(isinstance(n, str) for n in names):
            raise QueryError(f"ensure_index takes field names or tuples of them, got {field!r}")
        paths = []
        for name in names:
            path, op = parse_lookup(name)
            if op != "equals" or name.endswith("__equals"):
                raise QueryError(f"ensure_index takes field names, not lookups: {name!r}")
            paths.append(path)
        exprs = [self.dialect.value(self.dialect.target(self.compiler.doc, p)).sql for p in paths]
        readable = "_".join("_".join(p) for p in paths)[:40]
        digest = hashlib.sha1(repr(paths).encode()).hexdigest()[:8]
        index = self.dialect.quote_ident(f"{self._table}_{readable}_{digest}")
        return (f"CREATE INDEX IF NOT EXISTS {index} ON {self.dialect.quote_ident(self._table)} "
                f"({', '.join(exprs)})")

    def indexes(self) -> list[str]:
        """The SQL of every index on this storage's table (for inspection)."""
        rows = self.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                            "AND sql IS NOT NULL ORDER BY name", (self._table,))
        return [row[0] for row in rows]

    def _auto_index(self, doc_class: type["Document"] | None) -> None:
        """Create ``doc_class.indexes`` the first time the class saves or queries here."""
        if doc_class is None or not self._auto_index_on or doc_class in self._indexed_classes:
            return
        wanted = list(getattr(doc_class, "indexes", None) or ())
        if wanted:
            self.ensure_index(*wanted)
        self._indexed_classes.add(doc_class)  # forgotten on rollback: the index may go with it

    def _encode(self, doc_class: type["Document"] | None, data: Mapping[str, Any]) -> Record:
        record = super()._encode(doc_class, data)
        if doc_class is not None and doc_class not in self._indexed_classes:
            self._auto_index(doc_class)
        return record


def _is_locked(exc: BaseException) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message
