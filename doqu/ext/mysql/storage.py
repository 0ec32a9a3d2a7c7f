"""The MariaDB storage: one InnoDB table of ``(key, data)`` rows, records as JSON text.

Concurrency model: PyMySQL connections are not thread-safe, so the storage
keeps a small pool (:mod:`doqu.ext.mysql.pool`). A statement outside a
transaction borrows any idle connection; ``transaction()`` pins one
connection to the calling thread until the outermost block ends, so each
thread has its own transaction and never sees another's uncommitted writes;
nested blocks are savepoints. Keys come from a counter row in
``doqu_sequences``, reserved in blocks on a connection outside any
transaction, so a rollback never hands a number out twice.

The ``data`` column is LONGTEXT with a ``JSON_VALID`` check (what MariaDB's
JSON type is), and records are read back as the text doqu wrote: MariaDB
never re-serializes it, so Decimals keep every digit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

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
from doqu.ext.mysql.dialect import PREFIX, TEXT_COLLATION, MariaDBDialect
from doqu.ext.mysql.pool import CONNECTION_ERRNOS, Connection, Pool, Stream
from doqu.ext.mysql.query import QueryAdapter
from doqu.query.conditions import parse_lookup
from doqu.sql import Compiler

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["StorageAdapter"]

log = logging.getLogger("doqu.ext.mysql")

Record = dict[str, Any]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
#: Key counters of every doqu table in the database: (table name, last number handed out).
SEQUENCES = "doqu_sequences"
#: Keys per ``IN (...)`` list.
_IN_CHUNK = 500
#: Longest primary key (characters); InnoDB indexes at most 3072 bytes.
KEY_LENGTH = 768
_ISOLATION = {"read uncommitted", "read committed", "repeatable read", "serializable"}
_SQL_MODE = "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
#: UTF-8 bytes of a string that ORDER BY compares (MariaDB's default). Longer settings
#: make every sort reserve that much per row (10x slower at 64 KiB); strings that tie
#: on this prefix are put in order in Python (see doqu.ext.mysql.query).
_SORT_LENGTH = 1024
#: Bumped when the generated-column expressions change, so old columns are not trusted.
_INDEX_VERSION = "2"
_KINDS = ("number", "string")
#: Largest block of key numbers reserved at once.
_KEY_BLOCK = 4096
#: Seconds an ALTER TABLE (ensure_index) waits for other transactions on the table.
_DDL_WAIT = 10
_DEADLOCK, _LOCK_WAIT = 1213, 1205


class _ThreadState(threading.local):
    """What one thread is doing with the storage: its pinned connection and transaction depth."""

    conn: Connection | None = None
    depth = 0
    #: Why the server ended the current transaction early (deadlock, lost connection), if it did.
    aborted: str | None = None
    #: Statements run in the current transaction so far.
    statements = 0
    #: Depths of the open nested blocks that began before any statement, without a SAVEPOINT.
    restart: frozenset[int] = frozenset()


class StorageAdapter(BaseStorageAdapter):
    """Records in one MariaDB table; queries compiled to SQL over MariaDB's JSON functions.

    Settings: ``database`` (required), ``host`` (default ``localhost``),
    ``port`` (3306), ``user``, ``password``, ``unix_socket``, ``table``
    (default ``documents``), ``connect_timeout`` (seconds, default 10),
    ``read_timeout``/``write_timeout`` (seconds, default none), ``pool_size``
    (idle connections kept, default 8), ``isolation`` (default ``read
    committed``), ``ssl`` (a dict passed to PyMySQL), ``auto_index`` (create a
    document class's ``indexes`` when it first saves or queries here, default
    true).
    """

    backend_name = "mysql"
    query_adapter = QueryAdapter
    features = Features(durable_transactions=True, persistent=True, indexes=True, multi_process=True)
    required_settings: ClassVar[tuple[str, ...]] = ("database",)
    known_settings: ClassVar[tuple[str, ...] | None] = (
        "host", "port", "user", "password", "database", "table", "unix_socket", "connect_timeout",
        "read_timeout", "write_timeout", "pool_size", "isolation", "ssl", "auto_index")
    setting_types: ClassVar[dict[str, type]] = {
        "port": int, "connect_timeout": float, "read_timeout": float, "write_timeout": float,
        "pool_size": int, "auto_index": bool}

    # -- lifecycle ------------------------------------------------------------
    def _connect(self) -> None:
        if not hasattr(self, "_pool"):
            self._configure()
            self._key_lock = threading.Lock()
            self._free_keys: list[int] = []  # reserved, unused numbers, highest first
            self._free_set: set[int] = set()
            self._key_block = 0
            self._indexed_classes: set[type] = set()
            self._pool = Pool(self._open_raw, self._pool_size)
        self._local = _ThreadState()
        raw = self._open_raw()
        try:
            self._prepare(raw)
        except BaseException:
            raw.close()
            raise
        self._pool.add(raw)

    def _configure(self) -> None:
        try:
            import pymysql
            import pymysql.cursors
        except ImportError as exc:
            raise ConfigurationError(
                "backend 'mysql' needs the package 'PyMySQL': pip install 'doqu[mysql]'") from exc
        self._driver = pymysql
        settings = self.settings
        table = settings.get("table") or "documents"
        if not isinstance(table, str) or not _TABLE_NAME.match(table) or table == SEQUENCES:
            raise ConfigurationError(
                f"mysql: invalid table name {table!r}: use letters, digits and '_' (at most 64, "
                f"not starting with a digit, not {SEQUENCES!r})")
        self._table = table
        self._host = str(settings.get("host") or "localhost")
        port = settings.get("port", 3306)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(f"mysql: setting 'port' must be a TCP port, got {port!r}")
        self._port = port
        self._socket = settings.get("unix_socket")
        self._user = settings.get("user")
        self._database = settings["database"]
        size = settings.get("pool_size", 8)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"mysql: setting 'pool_size' must be an int >= 1, got {size!r}")
        self._pool_size = size
        isolation = str(settings.get("isolation") or "read committed").lower().replace("-", " ")
        if isolation not in _ISOLATION:
            raise ConfigurationError(f"mysql: isolation {settings.get('isolation')!r} is not one of "
                                     f"{', '.join(sorted(_ISOLATION))}")
        self._isolation = isolation
        self._auto_index_on = settings.get("auto_index", True) is not False
        args: dict[str, Any] = {
            "host": self._host, "port": self._port, "user": self._user,
            "password": settings.get("password") or "", "database": self._database,
            "unix_socket": self._socket, "charset": "utf8mb4", "autocommit": True,
            "connect_timeout": settings.get("connect_timeout", 10),
        }
        for name in ("read_timeout", "write_timeout"):
            if settings.get(name) is not None:
                args[name] = settings[name]
        args.update(self._ssl_args(settings.get("ssl")))
        self._connect_args = args
        self.dialect = MariaDBDialect()
        self.compiler = Compiler(self.dialect, table,
                                 convert=lambda value: self.converter_manager.to_db(value, self))
        t = self.dialect.quote_ident(table)
        self._sql = {
            "load": f"SELECT `data` FROM {t} WHERE `key` = %s",
            "store": self.dialect.upsert(table),
            "remove": f"DELETE FROM {t} WHERE `key` = %s",
            "keys": f"SELECT `key` FROM {t}",
            "records": f"SELECT `key`, `data` FROM {t}",
            "count": f"SELECT count(*) FROM {t}",
            "clear": f"DELETE FROM {t}",
            "reserve": (f"INSERT INTO {SEQUENCES} (`name`, `value`) VALUES (%s, LAST_INSERT_ID(%s)) "
                        f"ON DUPLICATE KEY UPDATE `value` = LAST_INSERT_ID(`value` + %s)"),
        }

    def _ssl_args(self, ssl: Any) -> dict[str, Any]:
        """TLS: off on loopback (PyMySQL would build a TLS context, ~0.1 s, per connection),
        PyMySQL's opportunistic TLS elsewhere, required when asked (``True``, a dict of
        PyMySQL ``ssl`` options, or an ``ssl.SSLContext``)."""
        if isinstance(ssl, str):
            lowered = ssl.strip().lower()
            if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
                raise ConfigurationError(f"mysql: setting 'ssl' must be true or false in a URL, got {ssl!r}")
            ssl = lowered in ("1", "true", "yes", "on") if lowered else None
        if ssl is None:
            local = bool(self._socket) or self._host in ("localhost", "127.0.0.1", "::1")
            return {"ssl_disabled": True} if local else {}
        if ssl is False:
            return {"ssl_disabled": True}
        if ssl is True:
            import ssl as ssl_module

            return {"ssl": ssl_module.create_default_context()}
        return {"ssl": ssl}

    def _open_raw(self) -> Any:
        """A new PyMySQL connection with doqu's session settings."""
        pymysql = self._driver
        try:
            raw = pymysql.connect(**self._connect_args)
        except pymysql.err.MySQLError as exc:
            errno = _errno(exc)
            if errno == 1049:
                raise ConfigurationError(
                    f"mysql: the database {self._database!r} does not exist on {self._address()}; "
                    f"create it (CREATE DATABASE) or fix the setting 'database'") from exc
            raise ConnectionError(
                f"mysql: cannot connect to {self._address()} as {self._user!r}: {_message(exc)}") from exc
        except OSError as exc:
            raise ConnectionError(f"mysql: cannot connect to {self._address()}: {exc}") from exc
        try:
            version = raw.get_server_info()
            if "mariadb" not in version.lower():
                raise ConfigurationError(
                    f"mysql: the server at {self._where()} is MySQL {version}; doqu's 'mysql' backend "
                    f"is built and tested on MariaDB (>= 10.6) and relies on its JSON functions")
            found = re.search(r"(\d+)\.(\d+)\.\d+-MariaDB", version, re.IGNORECASE)
            numbers = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
            if numbers < (10, 6):
                raise ConfigurationError(
                    f"mysql: {self._address()} runs MariaDB {version}, too old; doqu needs 10.6 or later")
            self.dialect.json_overlaps = numbers >= (10, 9)
            isolation_variable = "transaction_isolation" if numbers >= (11, 1) else "tx_isolation"
            with raw.cursor() as cursor:
                cursor.execute(
                    f"SET SESSION sql_mode = '{_SQL_MODE}', SESSION max_sort_length = {_SORT_LENGTH}, "
                    f"SESSION {isolation_variable} = '{self._isolation.upper().replace(' ', '-')}'")
        except BaseException as exc:
            raw.close()
            if isinstance(exc, pymysql.err.MySQLError):
                raise self._error(exc, "set up a connection") from exc
            raise
        return raw

    def _prepare(self, raw: Any) -> None:
        """Create the tables if needed and learn which generated columns (indexes) exist."""
        t = self.dialect.quote_ident(self._table)
        try:
            with raw.cursor() as cursor:
                cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                               "TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s, %s)",
                               (self._table, SEQUENCES))
                found = {row[0] for row in cursor.fetchall()}
                if SEQUENCES not in found:
                    cursor.execute(
                        f"CREATE TABLE IF NOT EXISTS {SEQUENCES} ("
                        f"`name` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
                        f"`value` BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB")
                if self._table not in found:
                    cursor.execute(
                        f"CREATE TABLE IF NOT EXISTS {t} ("
                        f"`key` VARCHAR({KEY_LENGTH}) CHARACTER SET utf8mb4 COLLATE {TEXT_COLLATION} "
                        f"NOT NULL PRIMARY KEY, "
                        f"`data` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL "
                        f"CHECK (JSON_VALID(`data`))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
                self._load_columns(cursor)
        except self._driver.err.MySQLError as exc:
            raise self._error(exc, "prepare the table") from exc

    def _load_columns(self, cursor: Any) -> None:
        cursor.execute("SELECT COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (self._table,))
        rows = cursor.fetchall()
        names = {row[0] for row in rows}
        if not {"key", "data"} <= names:
            raise ConfigurationError(
                f"mysql: the table {self._table!r} in {self._address()} exists but is not a doqu "
                f"table (it needs the columns `key` and `data`); choose another 'table'")
        columns: dict[tuple[Any, ...], dict[str, str]] = {}
        for name, comment in rows:
            if not name.startswith("doqu_"):
                continue
            try:
                spec = json.loads(comment)
                path, kind = tuple(spec["path"]), spec["kind"]
            except (ValueError, KeyError, TypeError):
                continue
            if self._column_name(path, kind) == name:  # made by this version of doqu
                columns.setdefault(path, {})[kind] = name
        self.dialect.columns = columns

    def _disconnect(self) -> None:
        self._pool.close_all()
        self._local = _ThreadState()
        with self._key_lock:
            self._free_keys, self._free_set = [], set()

    def _where(self) -> str:
        return str(self._socket) if self._socket else f"{self._host}:{self._port}"

    def _address(self) -> str:
        if self._socket:
            return f"MariaDB at {self._socket} (database {self._database!r})"
        return f"MariaDB at {self._host}:{self._port} (database {self._database!r})"

    def describe_location(self) -> str:
        if not hasattr(self, "_table"):
            return "mysql (not configured)"
        user = f"{self._user}@" if self._user else ""
        where = self._socket or f"{self._host}:{self._port}"
        return f"mysql {user}{where}/{self._database}, table {self._table!r}"

    @property
    def identity(self) -> Any:
        return ("mysql", self._socket or (self._host, self._port), self._database, self._table)

    # -- errors ------------------------------------------------------------------
    def _error(self, exc: BaseException, action: str) -> Exception:
        """The doqu error for a driver error (never containing the password)."""
        where = self.describe_location()
        if isinstance(exc, UnicodeEncodeError):
            return ValidationError(f"mysql: cannot {action}: a string is not valid Unicode "
                                   f"({exc.reason}) in {where}")
        pymysql = self._driver
        if isinstance(exc, pymysql.err.MySQLError):
            errno = _errno(exc)
            message = _message(exc)
            if isinstance(exc, pymysql.err.InterfaceError) or errno in CONNECTION_ERRNOS:
                return ConnectionError(f"mysql: cannot {action}: lost the connection to "
                                       f"{self._address()} ({message}); call reconnect()")
            if errno == _DEADLOCK:
                return TransactionError(f"mysql: cannot {action} in {where}: deadlock with another "
                                        f"transaction; the server rolled this transaction back")
            if errno == _LOCK_WAIT:
                return TransactionError(f"mysql: cannot {action} in {where}: {message}")
            if errno == 1406:
                return ValidationError(f"mysql: cannot {action}: a primary key is longer than "
                                       f"{KEY_LENGTH} characters ({message})")
            if errno == 4025:
                return ValidationError(f"mysql: cannot {action}: MariaDB does not accept the record "
                                       f"as JSON (nested deeper than 32 levels?) in {where}")
            if errno in (1264, 1292, 1367):
                return ValidationError(f"mysql: cannot {action}: a value does not fit an index's "
                                       f"column ({message}) in {where}")
            return StorageError(f"mysql: cannot {action} in {where}: ({errno}) {message}")
        if isinstance(exc, OSError):
            return ConnectionError(f"mysql: cannot {action}: lost the connection to "
                                   f"{self._address()} ({exc}); call reconnect()")
        return StorageError(f"mysql: cannot {action} in {where}: {exc}")

    def _is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, (self._driver.err.MySQLError, UnicodeEncodeError, OSError))

    def _acquire(self) -> Connection:
        if not self._connected:
            raise ConnectionError(f"mysql: not connected to {self._address()}; call connect()")
        try:
            return self._pool.acquire()
        except (ConnectionError, ConfigurationError):
            raise
        except Exception as exc:
            if self._is_driver_error(exc):
                raise self._error(exc, "connect") from exc
            raise

    def _failed(self, conn: Connection, pinned: bool, exc: BaseException, action: str) -> Exception:
        error = self._error(exc, action)
        if isinstance(error, ConnectionError):
            conn.broken = True
        if pinned and (isinstance(error, ConnectionError) or _errno(exc) == _DEADLOCK):
            self._local.aborted = str(error)
        return error

    def _thread_state(self) -> _ThreadState:
        if self._pool.forked():  # a transaction open in the parent is not the child's
            self._local = _ThreadState()
        return self._local

    @contextlib.contextmanager
    def _cursor(self, action: str, *, pinned: bool = True) -> Iterator[Any]:
        """A cursor on this thread's transaction connection, or on a borrowed one."""
        local = self._thread_state()
        conn = local.conn if pinned else None
        if conn is not None:
            if local.aborted:
                raise TransactionError(f"mysql: cannot {action}: the transaction is over ({local.aborted})")
            own = False
            local.statements += 1
        else:
            conn = self._acquire()
            own = True
        try:
            conn.settle()
            with conn.raw.cursor() as cursor:
                yield cursor
        except Exception as exc:
            if self._is_driver_error(exc):
                raise self._failed(conn, not own, exc, action) from exc
            raise
        finally:
            if own:
                self._pool.release(conn)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one SQL statement (``%s`` placeholders); all rows it returns.

        For maintenance and tests (EXPLAIN, ANALYZE TABLE); records belong to doqu.
        Inside a transaction it runs in that transaction.
        """
        with self._cursor("execute SQL") as cursor:
            cursor.execute(sql, tuple(params) if params is not None else None)
            return list(cursor.fetchall())

    def stream(self, sql: str, params: Sequence[Any], convert: Callable[[Any], Any]) -> Iterator[Any]:
        """Rows of a query, converted, read from the server in batches as they are consumed."""
        local = self._thread_state()
        conn = local.conn
        own = conn is None
        if not own and local.aborted:
            raise TransactionError(f"mysql: cannot query: the transaction is over ({local.aborted})")
        if not own:
            local.statements += 1
        if own:
            conn = self._acquire()
        assert conn is not None
        stream: Stream | None = None
        try:
            try:
                conn.settle()
                cursor = conn.raw.cursor(self._driver.cursors.SSCursor)
                cursor.execute(sql, tuple(params))
                stream = conn.stream = Stream(conn, cursor)
                rows = stream.fetch()
            except Exception as exc:
                if self._is_driver_error(exc):
                    raise self._failed(conn, not own, exc, "query") from exc
                raise
            while rows:
                for row in rows:
                    yield convert(row)
                try:
                    rows = stream.fetch()
                except Exception as exc:
                    if self._is_driver_error(exc):
                        raise self._failed(conn, not own, exc, "query") from exc
                    raise
        finally:
            if stream is not None and not stream.done:
                stream.abandon(keep=not own)
            if own:
                self._pool.release(conn)

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[StorageAdapter]:
        """All writes in the block, or none: an InnoDB transaction; nested blocks are savepoints.

        The transaction belongs to the calling thread: other threads using this
        storage meanwhile run on other connections, outside it.
        """
        local = self._thread_state()
        depth = local.depth
        if depth == 0:
            conn = self._acquire()
            try:
                conn.settle()
                conn.raw.begin()
            except Exception as exc:
                self._pool.release(conn)
                if self._is_driver_error(exc):
                    conn.broken = True
                    raise self._error(exc, "begin a transaction") from exc
                raise
            local.conn, local.aborted, local.statements, local.restart = conn, None, 0, frozenset()
        elif local.statements == 0:
            # nothing to keep yet: undoing this block is restarting the transaction, so
            # Document.save() (a save() nested in a block of its own) needs no SAVEPOINT
            local.restart = local.restart | {depth}
        else:
            with self._cursor("begin a savepoint") as cursor:
                cursor.execute(f"SAVEPOINT doqu_{depth}")
        local.depth = depth + 1
        try:
            yield self
        except BaseException:
            local.depth = depth
            self._rollback(depth)
            raise
        local.depth = depth
        local.restart = local.restart - {depth}
        if depth == 0:
            self._commit()
        # a nested block that succeeded leaves its savepoint: the next one of that depth
        # replaces it and COMMIT drops them all, which saves a round trip per nested save()

    def _rollback(self, depth: int) -> None:
        local = self._local
        conn = local.conn
        if conn is None:
            return
        if depth == 0:
            local.conn = None
            try:
                if not conn.broken:  # (after a deadlock the server has rolled back already: harmless)
                    conn.settle()
                    conn.raw.rollback()
            except Exception:  # keep the original error; a connection that cannot roll back is dropped
                conn.broken = True
            local.aborted = None
            self._pool.release(conn)
        elif not local.aborted:
            restart = depth in local.restart
            local.restart = local.restart - {depth}
            try:
                conn.settle()
                if restart:
                    conn.raw.rollback()
                    conn.raw.begin()
                    local.statements = 0
                else:
                    with conn.raw.cursor() as cursor:
                        cursor.execute(f"ROLLBACK TO SAVEPOINT doqu_{depth}")
                        cursor.execute(f"RELEASE SAVEPOINT doqu_{depth}")
            except Exception as exc:
                if self._is_driver_error(exc):
                    self._failed(conn, True, exc, "roll back a savepoint")

    def _commit(self) -> None:
        local = self._local
        conn = local.conn
        assert conn is not None
        local.conn = None
        try:
            if local.aborted:
                with contextlib.suppress(Exception):
                    conn.raw.rollback()
                raise TransactionError(f"mysql: cannot commit in {self.describe_location()}: "
                                       f"the transaction is over ({local.aborted})")
            try:
                conn.settle()
                conn.raw.commit()
            except Exception as exc:
                conn.broken = True
                if self._is_driver_error(exc):
                    error = self._error(exc, "commit")
                    if isinstance(error, ConnectionError):
                        raise error from exc
                    raise TransactionError(str(error)) from exc
                raise
        finally:
            local.aborted = None
            self._pool.release(conn)

    # -- records -------------------------------------------------------------------------
    def _load(self, key: str) -> Record | None:
        with self._cursor("read") as cursor:
            cursor.execute(self._sql["load"], (key,))
            row = cursor.fetchone()
        return loads(row[0]) if row is not None else None

    def _load_many(self, keys: Sequence[str]) -> list[Record | None]:
        found: dict[str, str] = {}
        t = self.dialect.quote_ident(self._table)
        unique = list(dict.fromkeys(keys))
        with self._cursor("read") as cursor:
            for i in range(0, len(unique), _IN_CHUNK):
                chunk = unique[i:i + _IN_CHUNK]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(f"SELECT `key`, `data` FROM {t} WHERE `key` IN ({marks})", chunk)
                found.update(cursor.fetchall())
        return [loads(found[k]) if k in found else None for k in keys]

    def _store(self, key: str, record: Record) -> None:
        text = encode(record)
        self._forget_free(key)
        with self._cursor("save") as cursor:
            cursor.execute(self._sql["store"], (key, text))

    def _store_many(self, items: Sequence[tuple[str, Record]]) -> None:
        rows = [(key, encode(record)) for key, record in items]
        for key, _ in items:
            self._forget_free(key)
        if rows:
            with self._cursor("save") as cursor:
                cursor.executemany(self._sql["store"], rows)  # multi-row INSERTs of up to ~1 MB

    def _remove(self, key: str) -> bool:
        with self._cursor("delete") as cursor:
            return bool(cursor.execute(self._sql["remove"], (key,)))

    def _keys(self) -> Iterator[str]:
        return self.stream(self._sql["keys"], (), lambda row: row[0])

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        return self.stream(self._sql["records"], (), lambda row: (row[0], loads(row[1])))

    def _count(self) -> int:
        with self._cursor("count") as cursor:
            cursor.execute(self._sql["count"])
            return int(cursor.fetchone()[0])

    def _clear(self) -> None:
        with self.transaction(), self._cursor("clear") as cursor:
            cursor.execute(self._sql["clear"])

    # -- keys ----------------------------------------------------------------------------------
    def _new_key(self) -> str:
        """The next number of the table's counter that no record uses as its key.

        Numbers are reserved from ``doqu_sequences`` in growing blocks (1, 2,
        4 ... 4096) on a connection outside any transaction, so they are never
        rolled back and never handed out twice. The block is checked against
        the table once; a key this storage saves later is struck off it.
        """
        with self._key_lock:
            while True:
                while self._free_keys:
                    number = self._free_keys.pop()
                    if number in self._free_set:
                        self._free_set.discard(number)
                        return str(number)
                self._reserve_keys()

    def _reserve_keys(self) -> None:
        size = self._key_block = min(max(1, self._key_block * 2), _KEY_BLOCK)
        with self._cursor("generate a key", pinned=False) as cursor:
            cursor.execute(self._sql["reserve"], (self._table, size, size))
            top = int(cursor.lastrowid)
            low = top - size + 1
            # the numbers' texts of one length form one range of strings: an index range scan each
            ranges, params = [], []
            for digits in range(len(str(low)), len(str(top)) + 1):
                first, last = max(low, 10 ** (digits - 1)), min(top, 10 ** digits - 1)
                ranges.append("(`key` BETWEEN %s AND %s AND CHAR_LENGTH(`key`) = %s)")
                params += [str(first), str(last), digits]
            cursor.execute(f"SELECT `key` FROM {self.dialect.quote_ident(self._table)} WHERE "
                           + " OR ".join(ranges), params)
            taken = {int(k) for (k,) in cursor.fetchall() if k.isascii() and k.isdigit() and k[0] != "0"}
        free = [n for n in range(low, top + 1) if n not in taken]
        self._free_keys = free[::-1]
        self._free_set = set(free)

    def _forget_free(self, key: str) -> None:
        if key.isdigit() and self._free_set:
            with self._key_lock:
                self._free_set.discard(int(key))

    # -- indexes ---------------------------------------------------------------------------------
    @staticmethod
    def _column_name(path: Sequence[Any], kind: str) -> str:
        digest = hashlib.sha1(repr((_INDEX_VERSION, tuple(path))).encode()).hexdigest()[:16]
        return f"doqu_{kind[0]}_{digest}"

    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Index fields through generated (virtual) columns; idempotent.

        Each field gets two indexed virtual columns: its value when it is a
        number (DOUBLE), and the first 255 characters of its value when it is
        a string (binary collation). Compiled queries compare those columns,
        so MariaDB uses the indexes for equality, ranges, ``in`` and
        ``startswith``; a string operand shorter than 255 characters is
        decided by the column alone (an index-only count), a longer one is
        narrowed by it and compared whole. A tuple of names also adds a
        composite index over the fields' columns of one kind each:
        ``'name:number'`` or ``'name:string'`` (the default). Creating
        indexes is DDL, which MariaDB cannot do inside a transaction.
        """
        specs = [self._index_spec(field) for field in fields]
        if self._local.depth:
            raise TransactionError("mysql: cannot create indexes inside a transaction "
                                   "(MariaDB commits it on DDL); call ensure_index() outside")
        clauses: list[str] = []
        paths: list[tuple[str, ...]] = []
        for spec in specs:
            for path, _ in spec:
                if path not in paths:
                    paths.append(path)
        for path in paths:
            clauses.extend(self._column_clauses(path))
        for spec in specs:
            if len(spec) > 1:
                columns = [self.dialect.quote_ident(self._column_name(p, k))
                           for p, k in spec]
                name = "doqu_x_" + hashlib.sha1(repr(spec).encode()).hexdigest()[:16]
                clauses.append(f"ADD INDEX IF NOT EXISTS `{name}` ({', '.join(columns)})")
        # WAIT: give up (TransactionError) rather than queue every query of the table behind
        # the ALTER while another connection's transaction holds the table
        sql = (f"ALTER TABLE {self.dialect.quote_ident(self._table)} WAIT {_DDL_WAIT} "
               + ", ".join(clauses))
        with self._cursor("create an index", pinned=False) as cursor:
            cursor.execute(sql)
            self._load_columns(cursor)
        return True

    def _index_spec(self, field: str | Sequence[str]) -> list[tuple[tuple[str, ...], str]]:
        names = [field] if isinstance(field, str) else list(field)
        if not names or not all(isinstance(n, str) for n in names):
            raise QueryError(f"ensure_index takes field names or tuples of them, got {field!r}")
        spec = []
        for name in names:
            name, _, kind = name.partition(":")
            kind = kind or "string"
            if kind not in _KINDS:
                raise QueryError(f"ensure_index: kind {kind!r} of {name!r} is not one of {_KINDS}")
            path, op = parse_lookup(name)
            if op != "equals" or name.endswith("__equals"):
                raise QueryError(f"ensure_index takes field names, not lookups: {name!r}")
            spec.append((path, kind))
        return spec

    def _column_clauses(self, path: tuple[str, ...]) -> list[str]:
        d = self.dialect
        target = d.target(self.compiler.doc, path)
        number = d.expression(target, "number").sql
        string = d.expression(target, "string prefix").sql
        n, s = self._column_name(path, "number"), self._column_name(path, "string")
        comment = lambda kind: json.dumps({"path": list(path), "kind": kind})
        return [
            (f"ADD COLUMN IF NOT EXISTS `{n}` DOUBLE AS ({number}) VIRTUAL "
             f"COMMENT '{comment('number')}'"),
            (f"ADD COLUMN IF NOT EXISTS `{s}` VARCHAR({PREFIX}) CHARACTER SET utf8mb4 "
             f"COLLATE {TEXT_COLLATION} AS ({string}) VIRTUAL COMMENT '{comment('string')}'"),
            f"ADD INDEX IF NOT EXISTS `{n}` (`{n}`)",
            f"ADD INDEX IF NOT EXISTS `{s}` (`{s}`)",
        ]

    def indexes(self) -> list[tuple[str, str]]:
        """``(index name, column)`` of every index on this storage's table, for inspection."""
        rows = self.execute(f"SHOW INDEX FROM {self.dialect.quote_ident(self._table)}")
        return [(row[2], row[4]) for row in rows]

    def _auto_index(self, doc_class: type[Document] | None) -> None:
        """Create ``doc_class.indexes`` the first time the class saves or queries here."""
        if doc_class is None or not self._auto_index_on or doc_class in self._indexed_classes:
            return
        if self._local.depth:
            return  # DDL would commit the transaction: try again next time
        wanted = list(getattr(doc_class, "indexes", None) or ())
        if wanted:
            try:
                self.ensure_index(*wanted)
            except StorageError as exc:  # an index is an optimization: go on without it
                log.warning("mysql: could not create the indexes %r of %s in %s: %s", wanted,
                            doc_class.__name__, self.describe_location(), exc)
        self._indexed_classes.add(doc_class)

    def _encode(self, doc_class: type[Document] | None, data: Mapping[str, Any]) -> Record:
        record = super()._encode(doc_class, data)
        if doc_class is not None and doc_class not in self._indexed_classes:
            self._auto_index(doc_class)
        return record


def _errno(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _message(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[1]) if len(args) > 1 else str(exc)
