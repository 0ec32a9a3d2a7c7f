"""The Tokyo Tyrant backend: a Tokyo Cabinet table database behind a ``ttserver``.

``get_db('tokyo-tyrant://localhost:1978')`` or ``get_db({'backend':
'tokyo_tyrant', 'host': 'localhost', 'port': 1978, 'timeout': 5})``; see
``docs/tokyo_tyrant.md``. Records are laid out by the Tokyo Cabinet
backend's codec and queries compiled by its compiler, so the server's
``.tct`` file is the same file the Tokyo Cabinet backend reads; this module
only talks to the server (:mod:`.protocol`), through a thread-safe pool of
connections that reconnects by itself after a server restart.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence, TypeVar

from doqu import errors
from doqu.backend_base import BaseStorageAdapter, Features
from doqu.errors import ConfigurationError, QueryError, StorageError, ValidationError

from doqu.ext.tokyo_cabinet import codec
from doqu.ext.tokyo_cabinet.compiler import (
    ITDECIMAL,
    ITLEXICAL,
    ITTOKEN,
    INDEX_TYPES,
    MSUNION,
    SEARCH_INDEX,
    NOT_CATALOGUE,
    QCNOIDX,
    QCSTREQ,
    Compiler,
    QueryPlan,
    parse_index_spec,
)

from . import protocol
from .protocol import (
    DEFAULT_POOL_SIZE,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    ITKEEP,
    ITVOID,
    RDBMONOULOG,
    TyrantConnection,
    TyrantPool,
    TyrantProtocolError,
    TyrantQuery,
    require_table_database,
)
from .query import QueryAdapter

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["StorageAdapter", "QueryAdapter", "INDEX_TYPES"]

log = logging.getLogger("doqu.tokyo_tyrant")

Record = dict[str, Any]
T = TypeVar("T")

#: Records per getlist/putlist/outlist round trip: bounds memory and message size.
BATCH = 256
#: How often a catalogue update is re-read and re-merged if another client overwrote it.
_CATALOGUE_ATTEMPTS = 5
#: Seconds a writer trusts the catalogue it read (queries always re-read it):
#: bounds how long a client that only writes misses a search index enabled elsewhere.
CATALOGUE_MAX_AGE = 1.0
_HINT_MARK = b"\0\0[[HINT]]\n"


def _batched(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _stale_connection(exc: errors.ConnectionError) -> bool:
    """Did the request fail because a pooled socket had been closed by the server?

    Then one retry on a fresh socket is safe and useful (a restarted
    server); a refused connection or a timeout is not retried.
    """
    if isinstance(exc, TyrantProtocolError):
        return False
    cause = exc.__cause__
    if isinstance(cause, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return True
    return cause is None and isinstance(exc.__context__, protocol._Closed)


class StorageAdapter(BaseStorageAdapter):
    """The table database served by one ``ttserver``."""

    backend_name = "tokyo_tyrant"
    query_adapter = QueryAdapter
    features = Features(durable_transactions=False, persistent=True, indexes=True,
                        multi_process=True)
    known_settings: ClassVar[tuple[str, ...] | None] = ("host", "port", "timeout", "pool_size")
    setting_types: ClassVar[dict[str, type]] = {"port": int, "timeout": float, "pool_size": int}

    _pool: TyrantPool | None = None

    # -- lifecycle -------------------------------------------------------------
    def _connect(self) -> None:
        host = self.settings.get("host") or "localhost"
        if not isinstance(host, str):
            raise ConfigurationError(f"tokyo_tyrant: setting 'host' must be a host name, got {host!r}")
        port = self.settings.get("port", DEFAULT_PORT)
        timeout = self.settings.get("timeout", DEFAULT_TIMEOUT)
        size = self.settings.get("pool_size", DEFAULT_POOL_SIZE)
        if isinstance(port, bool) or isinstance(size, bool):
            raise ConfigurationError("tokyo_tyrant: settings 'port' and 'pool_size' are integers")
        if not hasattr(self, "_state_lock"):
            self._state_lock = threading.RLock()
            self._indexed_classes: set[type] = set()
            self._indexed_columns: set[bytes] = set()
            self._fresh_keys: set[str] = set()
        self._reset_catalogue()
        pool = TyrantPool(host, port, timeout, size)   # ConfigurationError for bad values
        try:
            with pool.connection() as conn:
                self._server_info = require_table_database(conn)
        except BaseException:
            pool.close()
            raise
        self._address = pool.address
        self._pool = pool

    def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        self._reset_catalogue()
        if pool is not None:
            pool.close()

    def _reset_catalogue(self) -> None:
        self._catalogue: codec.Catalogue | None = None
        self._catalogue_raw: dict[bytes, bytes] | None = None
        self._catalogue_in_file = False
        self._scanned: codec.Catalogue | None = None
        self._catalogue_read_at = 0.0

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        address = getattr(self, "_address", None)
        if address is None:
            host = self.settings.get("host") or "localhost"
            address = f"{host}:{self.settings.get('port', DEFAULT_PORT)}"
        return address

    def describe_location(self) -> str:
        info = getattr(self, "_server_info", None) or {}
        version = f" {info['version']}" if "version" in info else ""
        path = f", table database {info['path']}" if info.get("path") else ""
        return f"Tokyo Tyrant{version} at {self.address}{path}"

    @property
    def identity(self) -> Any:
        host = str(self.settings.get("host") or "localhost").lower()
        return ("tokyo_tyrant", host, self.settings.get("port", DEFAULT_PORT))

    def stat(self) -> dict[str, str]:
        """The server's ``stat`` report (version, database type and path, record count...)."""
        return self._call(lambda conn: conn.stat())

    def _call(self, operation: Callable[[TyrantConnection], T], *, retry: bool = True) -> T:
        """Run ``operation`` on a pooled connection.

        ``retry``: the operation may be repeated (reads, puts); it is, once,
        when the pooled socket turns out to have been closed by the server.
        """
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self.describe_location()}: not connected (call connect())")
        try:
            with pool.connection() as conn:
                return operation(conn)
        except errors.ConnectionError as exc:
            if not retry or not _stale_connection(exc):
                raise
        with pool.connection() as conn:
            return operation(conn)

    # -- the catalogue ---------------------------------------------------------------
    def _compiler(self) -> Compiler:
        return Compiler(self.catalogue)

    @property
    def catalogue(self) -> codec.Catalogue:
        """What each column has held (see :mod:`doqu.ext.tokyo_cabinet.codec`), as last read."""
        with self._state_lock:
            if self._catalogue is None:
                return self._refresh_catalogue()
            return self._catalogue

    def _refresh_catalogue(self) -> codec.Catalogue:
        """Read the catalogue record from the server again (other clients write it too).

        Read under the lock, so a slower, older read never replaces a newer one.
        """
        with self._state_lock:
            stored = self._call(lambda conn: conn.tbl_get(codec.CATALOGUE_KEY))
            self._catalogue_read_at = time.monotonic()
            if stored is not None:
                self._scanned = None
                self._catalogue_in_file = True
                if stored != self._catalogue_raw or self._catalogue is None:
                    self._catalogue = codec.Catalogue.from_columns(stored)
                    self._catalogue_raw = stored
                return self._catalogue
            self._catalogue_raw = None
            self._catalogue_in_file = False
            if self._count() == 0:
                self._scanned = None
                self._catalogue = codec.Catalogue()
            else:
                # records without a catalogue: written by another program (or
                # after a clear() by another client); learn it once
                if self._scanned is None:
                    self._scanned = self._scan_catalogue()
                self._catalogue = self._scanned
            return self._catalogue

    def _scan_catalogue(self) -> codec.Catalogue:
        kinds: dict[bytes, set[str]] = {}
        for _, cols in self._raw_records(self._raw_keys()):
            for column, letters in codec.raw_kinds(cols).items():
                kinds.setdefault(column, set()).update(letters)
        return codec.Catalogue().merged(kinds)

    def rebuild_catalogue(self) -> codec.Catalogue:
        """Rescan every record and store the catalogue; needed after other programs wrote."""
        with self._state_lock:
            search = self._refresh_catalogue().search
            catalogue = self._scan_catalogue()
            for column in search:
                catalogue = catalogue.with_search(column)
            self._write_catalogue(catalogue)
            for column in search:
                self._write_words(codec.ColumnRef(column, b"", False, column))
            return catalogue

    def _write_catalogue(self, catalogue: codec.Catalogue) -> None:
        columns = catalogue.to_columns()
        self._call(lambda conn: conn.tbl_put(codec.CATALOGUE_KEY, columns))
        self._catalogue, self._catalogue_raw = catalogue, columns
        self._catalogue_in_file, self._scanned = True, None
        self._catalogue_read_at = time.monotonic()

    def _note_kinds(self, kinds: Mapping[bytes, Iterable[str]]) -> None:
        """Grow the stored catalogue before records with new kinds are written.

        Tyrant has no compare-and-set, so the update is read, merge, write,
        read back: if another client's write replaced ours meanwhile, merge
        again (see docs/tokyo_tyrant.md for the window that remains).
        """
        with self._state_lock:
            current = self.catalogue
            if self._catalogue_in_file and not current.missing(kinds):
                return
            for _ in range(_CATALOGUE_ATTEMPTS):
                current = self._refresh_catalogue()
                if self._catalogue_in_file and not current.missing(kinds):
                    return
                self._write_catalogue(current.merged(kinds))
            current = self._refresh_catalogue()
            if not self._catalogue_in_file or current.missing(kinds):
                raise StorageError(f"{self.describe_location()}: could not record new kinds of "
                                   f"value in the doqu catalogue (other clients keep replacing it)")

    # -- records ---------------------------------------------------------------------
    def _check_key(self, key: Any) -> str:
        key = super()._check_key(key)
        if codec.encode_key(key) == codec.CATALOGUE_KEY:
            raise ValidationError(f"the primary key {key!r} is reserved by the Tokyo Tyrant "
                                  f"backend for its catalogue record")
        return key

    def _load(self, key: str) -> Record | None:
        raw_key = codec.encode_key(key)
        if raw_key == codec.CATALOGUE_KEY:
            return None
        cols = self._call(lambda conn: conn.tbl_get(raw_key))
        return None if cols is None else codec.decode_record(cols)

    def _load_many(self, keys: Sequence[str]) -> list[Record | None]:
        out: list[Record | None] = []
        for batch in _batched(keys):
            raw = [codec.encode_key(k) for k in batch]
            found = self._call(lambda conn: conn.tbl_getlist(raw))
            for raw_key in raw:
                cols = found.get(raw_key) if raw_key != codec.CATALOGUE_KEY else None
                out.append(None if cols is None else codec.decode_record(cols))
        return out

    def _store(self, key: str, record: Record) -> None:
        self._store_many([(key, record)])

    def _store_many(self, items: Sequence[tuple[str, Record]]) -> None:
        if not items:
            return
        encoded: list[tuple[bytes, dict[bytes, bytes]]] = []
        kinds: dict[bytes, set[str]] = {}
        with self._state_lock:
            if time.monotonic() - self._catalogue_read_at > CATALOGUE_MAX_AGE:
                self._refresh_catalogue()     # settings (search columns) may have changed
            search = self.catalogue.search
        for key, record in items:
            for name in record:
                if "\0" in name:
                    raise ValidationError(
                        f"field name {name!r} contains a NUL character, which the Tokyo "
                        f"Tyrant protocol uses as its column separator", field=name)
            cols, record_kinds = codec.encode_with_kinds(record, search)
            for column, letters in record_kinds.items():
                kinds.setdefault(column, set()).update(letters)
            encoded.append((codec.encode_key(key), cols))
        self._note_kinds(kinds)
        for batch in _batched(encoded):
            if len(batch) == 1:
                pk, cols = batch[0]
                self._call(lambda conn: conn.tbl_put(pk, cols))
            else:
                self._call(lambda conn: conn.tbl_putlist(batch))

    def _remove(self, key: str) -> bool:
        raw_key = codec.encode_key(key)
        if raw_key == codec.CATALOGUE_KEY:
            return False
        return self._call(lambda conn: conn.tbl_out(raw_key), retry=False)

    def _remember(self, key: str) -> None:
        if self._take_fresh([key]):
            if self._undo:
                self._undo[-1].append((key, None))   # a key just generated: nothing to restore
            return
        super()._remember(key)

    def _take_fresh(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` were generated by :meth:`_new_key` and not written since."""
        with self._state_lock:
            fresh = self._fresh_keys.intersection(keys)
            self._fresh_keys.difference_update(fresh)
        return fresh

    def _put_many(self, items: Sequence[tuple[str, Record]]) -> None:
        # the base class reads each old record one by one for the undo log;
        # read them a batch per round trip instead, and new keys not at all
        keys = [key for key, _ in items]
        fresh = self._take_fresh(keys)
        if self._undo:
            old = [key for key in dict.fromkeys(keys) if key not in fresh]
            before = dict(zip(old, self._load_many(old)))
            self._undo[-1].extend((key, before.get(key)) for key in keys)
        self._store_many(items)

    def _delete_keys(self, keys: Sequence[str]) -> int:
        """Remove records by key, a batch per round trip, undoable by the transaction."""
        unique = list(dict.fromkeys(keys))
        removed = 0
        with self.transaction():
            for batch in _batched(unique):
                before = self._load_many(batch)
                if self._undo:
                    self._undo[-1].extend(zip(batch, before))
                present = [codec.encode_key(k) for k, record in zip(batch, before)
                           if record is not None]
                if present:
                    self._call(lambda conn: conn.tbl_outlist(present))
                removed += len(present)
        return removed

    def _raw_keys(self) -> list[bytes]:
        query = TyrantQuery().addcond(*NOT_CATALOGUE)
        return self._call(lambda conn: conn.search(query))

    def _keys(self) -> list[str]:
        return [codec.decode_key(k) for k in self._raw_keys()]

    def _count(self) -> int:
        def count(conn: TyrantConnection) -> int:
            has_catalogue = conn.vsiz(codec.CATALOGUE_KEY) is not None
            return conn.rnum() - (1 if has_catalogue else 0)

        return max(0, self._call(count))

    def _raw_records(self, keys: Iterable[bytes]) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
        """Columns of the records, fetched a batch at a time as they are asked for.

        A connection is held only while a batch travels, never across a
        ``yield``; a record deleted meanwhile is skipped.
        """
        for batch in _batched(keys):
            found = self._call(lambda conn: conn.tbl_getlist(batch))
            for raw_key in batch:
                cols = found.get(raw_key)
                if cols is not None and raw_key != codec.CATALOGUE_KEY:
                    yield raw_key, cols

    def _records_for(self, keys: Iterable[bytes]) -> Iterator[tuple[str, Record]]:
        for raw_key, cols in self._raw_records(keys):
            yield codec.decode_key(raw_key), codec.decode_record(cols)

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        return self._records_for(self._raw_keys())

    def _clear(self) -> None:
        with self._state_lock:
            search = self._refresh_catalogue().search
            self._call(lambda conn: conn.tbl_vanish())   # also restarts generated keys
            self._reset_catalogue()
            self._catalogue = codec.Catalogue(search=search)
            if search:                   # search indexes are settings: keep them
                self._write_catalogue(self._catalogue)

    def _new_key(self) -> str:
        def generate(conn: TyrantConnection) -> str | None:
            key = str(conn.genuid())
            return key if conn.vsiz(key) is None else None

        while True:
            key = self._call(generate, retry=False)
            if key is not None:
                with self._state_lock:
                    if len(self._fresh_keys) > 4 * BATCH:   # generated, never written
                        self._fresh_keys.clear()
                    self._fresh_keys.add(key)
                return key

    # -- queries --------------------------------------------------------------------------
    def _queries(self, step: Any) -> list[TyrantQuery]:
        queries = [TyrantQuery() for _ in step.conjunctions]
        for index, query in enumerate(queries):
            step.apply(query, index)
        return queries

    def _execute(self, plan: QueryPlan, hints: list[str | None] | None = None) -> list[bytes]:
        """Run a compiled plan on the server; the keys in order.

        With ``hints``, each search also asks for Tokyo Cabinet's hint (how it
        used indexes), appended to ``hints`` (``None`` if the server sent none).
        """
        keys: list[bytes] = []
        stop = plan.window[1] if plan.window is not None else None
        for step in plan.steps:
            queries = self._queries(step)
            if hints is not None:
                found, hint = self._call(lambda conn: _search_with_hint(conn, queries))
                hints.append(hint)
            elif len(queries) == 1:
                found = self._call(lambda conn: conn.search(queries[0]))
            else:
                found = self._call(lambda conn: conn.metasearch(queries, MSUNION))
            keys.extend(found)
            if stop is not None and len(keys) >= stop:
                break
        if plan.window is not None:
            start, stop = plan.window
            keys = keys[start:stop]
        return keys

    def _count_plan(self, plan: QueryPlan) -> int:
        if len(plan.steps) == 1 and len(plan.steps[0].conjunctions) == 1 and plan.window is None:
            query = self._queries(plan.steps[0])[0]
            return self._call(lambda conn: conn.search_count(query))
        return len(self._execute(plan))

    def _searchout(self, plan: QueryPlan) -> int:
        """Delete what a plan matches on the server (``search ... out``); how many."""
        removed = 0
        for step in plan.steps:
            for query in self._queries(step):
                # each conjunction on its own: the server removes by the last
                # query only; records already removed do not count twice
                elements = [*query.elements(), b"out", b"count"]
                answer = self._call(lambda conn: conn.misc(b"search", elements), retry=False)
                removed += int(answer[0]) if answer else 0
        return removed

    # -- indexes ----------------------------------------------------------------------------
    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Create column indexes on the server, as the Tokyo Cabinet backend does.

        ``'age:decimal'``, ``'name:lexical'``, ``'address__city'``,
        ``'bio:search'``...; without a type, numeric columns get a decimal
        index and the others a lexical one. An index that already exists on
        the column is kept as it is (Tyrant cannot list indexes; see
        :meth:`drop_index`).
        """
        for spec in fields:
            members = [spec] if isinstance(spec, str) else list(spec)
            for member in members:
                path, itype = parse_index_spec(member)
                self._ensure_index(path, itype)
        return True

    def drop_index(self, *fields: str) -> None:
        """Remove the indexes of these fields (``ITVOID``); missing ones are ignored."""
        for spec in fields:
            path, itype = parse_index_spec(spec)
            ref = self._index_ref(path)
            column = codec.WORDS_PREFIX + ref.value if itype == SEARCH_INDEX else ref.value
            try:
                self._call(lambda conn: conn.setindex(column, ITVOID))
            except protocol.TyrantError:
                pass    # there was no such index
            self._indexed_columns.discard(column)

    def _index_ref(self, path: tuple[str, ...]) -> codec.ColumnRef:
        ref = codec.column_ref(path)
        if ref is None:
            raise QueryError(f"cannot index {'__'.join(path)!r}: nested paths are indexed "
                             f"up to {codec.MAX_DEPTH} levels deep")
        return ref

    def _ensure_index(self, path: tuple[str, ...], itype: int | None) -> None:
        ref = self._index_ref(path)
        if itype == SEARCH_INDEX:
            self._enable_search(ref, path)
            return
        if itype is None:
            kinds = self.catalogue.kinds(ref.key)
            numeric = kinds and kinds <= set("ifgdIFD")
            itype = ITDECIMAL if numeric else ITLEXICAL
        self._setindex(ref.value, itype, path)

    def _setindex(self, column: bytes, itype: int, path: tuple[str, ...]) -> None:
        if column in self._indexed_columns:
            return
        if itype in (ITLEXICAL, ITDECIMAL):
            self._refuse_empty_values(column, path)
        try:
            self._call(lambda conn: conn.setindex(column, itype | ITKEEP))
        except protocol.TyrantError as exc:
            raise StorageError(f"{self.describe_location()}: cannot index "
                               f"{'__'.join(path)!r}: {exc}") from exc
        self._indexed_columns.add(column)

    def _refuse_empty_values(self, column: bytes, path: tuple[str, ...]) -> None:
        """Building a lexical/decimal index over an empty value makes ttserver abort.

        doqu never stores empty values; other programs may have.
        """
        query = TyrantQuery().addcond(column, QCSTREQ | QCNOIDX, b"").setlimit(1)
        found = self._call(lambda conn: conn.search(query))
        if found:
            raise StorageError(
                f"{self.describe_location()}: cannot index {'__'.join(path)!r}: record "
                f"{codec.decode_key(found[0])!r} (and maybe others) has an empty value there, "
                f"and indexing it would make Tokyo Cabinet abort the server")

    def _enable_search(self, ref: codec.ColumnRef, path: tuple[str, ...]) -> None:
        """Give a field its word column (backfilled) and a token index over it."""
        if ref.nested:
            raise QueryError(f"search indexes are for top-level fields, not {'__'.join(path)!r}")
        with self._state_lock:
            current = self._refresh_catalogue()
            if ref.value not in current.search:
                self._write_catalogue(current.with_search(ref.value))
                self._write_words(ref)
        self._setindex(codec.WORDS_PREFIX + ref.value, ITTOKEN, path)

    def _write_words(self, ref: codec.ColumnRef) -> None:
        """(Re)write the word column of every record holding the field."""
        search = self.catalogue.search
        changed: list[tuple[bytes, dict[bytes, bytes]]] = []
        for raw_key, cols in self._raw_records(self._raw_keys()):
            if ref.value not in cols:
                continue
            fresh = codec.encode_record(codec.decode_record(cols), search)
            if fresh != cols:
                changed.append((raw_key, fresh))
            if len(changed) >= BATCH:
                self._call(lambda conn: conn.tbl_putlist(changed))
                changed = []
        if changed:
            self._call(lambda conn: conn.tbl_putlist(changed))

    def _declare_indexes(self, doc_class: type["Document"] | None) -> None:
        """Create the indexes a document class lists in ``indexes`` (once per class)."""
        if doc_class is None or not getattr(doc_class, "indexes", None):
            return
        if doc_class in self._indexed_classes:
            return
        self._indexed_classes.add(doc_class)
        structure = doc_class._schema_types()
        for spec in doc_class.indexes:
            members = [spec] if isinstance(spec, str) else list(spec)
            for member in members:
                path, itype = parse_index_spec(member, structure)
                try:
                    self._ensure_index(path, itype)
                except errors.ConnectionError:
                    self._indexed_classes.discard(doc_class)   # try again next time
                    raise
                except StorageError as exc:   # the data refuses it: queries still work
                    log.warning("%s.indexes: %s", doc_class.__name__, exc)

    def _prepare_class(self, doc_class: type["Document"] | None) -> None:
        self._declare_indexes(doc_class)


def _search_with_hint(conn: TyrantConnection, queries: Sequence[TyrantQuery]
                      ) -> tuple[list[bytes], str | None]:
    """Keys of one search (or union) plus the hint Tokyo Cabinet 1.4 servers append."""
    elements: list[bytes] = []
    for index, query in enumerate(queries):
        if index:
            elements.append(b"next")
        elements.extend(query.elements())
    name = b"search"
    if len(queries) > 1:
        name = b"metasearch"
        elements.append(b"mstype\0%d" % MSUNION)
    answer = conn.misc(name, [*elements, b"hint"], RDBMONOULOG)
    hints = [e[len(_HINT_MARK):] for e in answer if e.startswith(_HINT_MARK)]
    keys = [e for e in answer if not e.startswith(_HINT_MARK)]
    hint = "".join(h.decode("utf-8", "replace") for h in hints) if hints else None
    return keys, hint
