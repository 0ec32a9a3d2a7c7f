"""The Tokyo Cabinet table database backend, on the C library through ctypes.

``get_db({'backend': 'tokyo_cabinet', 'path': 'data.tct'})`` or
``get_db('tokyo-cabinet:///data.tct')``. Records are laid out by
:mod:`.codec`, queries translated by :mod:`.compiler` (both shared with the
Tokyo Tyrant backend); this module only talks to the library
(:mod:`._binding`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, Mapping, Sequence

from doqu.backend_base import BaseQueryAdapter, BaseStorageAdapter, Features
from doqu.errors import QueryError, StorageError, TransactionError, ValidationError
from doqu.query.base import Plan
from doqu.query.conditions import Node, describe

from . import _binding as tc
from . import codec
from .compiler import (
    TableQueryHooks,
    ITDECIMAL,
    ITLEXICAL,
    ITTOKEN,
    INDEX_TYPES,
    MSUNION,
    SEARCH_INDEX,
    Compiler,
    QueryPlan,
    parse_index_spec,
)

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["StorageAdapter", "QueryAdapter", "INDEX_TYPES"]

log = logging.getLogger("doqu.tokyo_cabinet")

Record = dict[str, Any]



class QueryAdapter(TableQueryHooks, BaseQueryAdapter):
    """Pushes what the compiler proves exact into Tokyo Cabinet's query engine."""

    engine_label = "Tokyo Cabinet table query"
    storage: "StorageAdapter"

    def _run_native(self, tree: Node | None, ordering: Any, start: int,
                    stop: int | None) -> Iterator[tuple[str, Record]]:
        plan = self._native_plan(tree, ordering, start, stop)
        if plan is None:   # too many alternatives for TC: the shared Python scan
            return super()._run_native(tree, ordering, start, stop)
        return self.storage._records_for(self.storage._execute(plan))

    def _count_native(self, tree: Node | None) -> int:
        if tree is None:
            return len(self.storage)
        plan = self._native_plan(tree)
        if plan is None:
            return super()._count_native(tree)
        return len(self.storage._execute(plan))

    def _delete_native(self, tree: Node | None) -> int:
        storage = self.storage
        plan = self._native_plan(tree)
        if plan is None or storage._undo:
            # inside a nested transaction deletions must go through the undo log
            return super()._delete_native(tree)
        if storage._in_tc_transaction:
            return storage._searchout(plan)
        with storage.transaction():
            return storage._searchout(plan)

    def _describe_native(self, plan: Plan) -> str:
        """The TC queries (conditions, order, limit) and TC's own hint for each."""
        whole = plan.residual is None and plan.native_order
        ordering = self._ordering if plan.native_order else ()
        window = (self._start, self._stop) if whole else (0, None)
        native = self._native_plan(plan.native, ordering, *window)
        if native is None:
            return (f"none: {describe(plan.native)} needs more than "
                    f"{self.storage._compiler().max_disjuncts} TC queries, so Python "
                    f"scans every record")
        hints: list[str] = []
        self.storage._execute(native, hints)
        lines = [native.describe()]
        for hint in hints:
            lines.append("TC hint: " + "; ".join(hint.strip().splitlines()))
        return "\n  ".join(lines)


class StorageAdapter(BaseStorageAdapter):
    """One Tokyo Cabinet table database file (``.tct``)."""

    backend_name = "tokyo_cabinet"
    query_adapter = QueryAdapter
    features = Features(durable_transactions=True, persistent=True, indexes=True,
                        multi_process=False)
    required_settings = ("path",)
    known_settings: ClassVar[tuple[str, ...] | None] = (
        "path", "readonly", "nolock", "create", "sync")
    setting_types: ClassVar[dict[str, type]] = {
        "readonly": bool, "nolock": bool, "create": bool, "sync": bool}

    # -- lifecycle -------------------------------------------------------------
    def _connect(self) -> None:
        self._path = os.fspath(self.settings["path"])
        self._readonly = bool(self.settings.get("readonly", False))
        if not hasattr(self, "_state_lock"):
            self._state_lock = threading.RLock()
            self._indexed_classes: set[type] = set()
            self._pending_index_classes: set[type] = set()
        self._in_tc_transaction = False
        self._catalogue: codec.Catalogue | None = None
        self._catalogue_in_file = False
        self._db: tc.TableDB | None = None
        db = tc.TableDB()   # raises LibraryMissing (a ConfigurationError) without the library
        try:
            db.open(self._path, self._open_mode())
        except tc.TokyoCabinetOpenError as exc:
            raise tc.TokyoCabinetOpenError(
                f"tokyo_cabinet: cannot open {self._path!r} "
                f"{'read-only' if self._readonly else 'for writing'}: {self._explain_open(exc)}",
                exc.code, exc.operation, exc.path) from exc
        self._db = db

    def _open_mode(self) -> int:
        mode = tc.OLCKNB   # a locked file fails at once instead of hanging
        if self.settings.get("nolock"):
            mode |= tc.ONOLCK
        if self._readonly:
            return mode | tc.OREADER
        mode |= tc.OWRITER
        if self.settings.get("create", True):
            mode |= tc.OCREAT
        if self.settings.get("sync"):
            mode |= tc.OTSYNC
        return mode

    def _explain_open(self, exc: tc.TokyoCabinetError) -> str:
        if exc.code == tc.ELOCK:
            return ("the file is locked by another process (a writer excludes everyone, "
                    "readers exclude writers); close it there, or open with "
                    "readonly=True / nolock=True if you know no one writes")
        if exc.code == tc.ETHREAD:
            return ("this process already has the file open through another storage "
                    "object (Tokyo Cabinet allows one handle per file per process): "
                    "share that storage object")
        if exc.code == tc.ENOFILE:
            return "the file does not exist" + (
                " (read-only and create=False storages do not create it)")
        if exc.code == tc.EMETA:
            return "the file is not a Tokyo Cabinet table database, or it is damaged"
        return str(exc)

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        self._in_tc_transaction = False
        self._catalogue = None
        if db is not None:
            db.close()

    def describe_location(self) -> str:
        path = getattr(self, "_path", None) or self.settings.get("path")
        suffix = " (read-only)" if self.settings.get("readonly") else ""
        return f"Tokyo Cabinet table database {path}{suffix}"

    @property
    def identity(self) -> Any:
        return ("tokyo_cabinet", os.path.realpath(os.fspath(self.settings["path"])))

    @property
    def handle(self) -> tc.TableDB:
        """The :class:`~._binding.TableDB` under this storage, for raw TC calls."""
        if self._db is None:
            raise StorageError(f"{self.describe_location()} is not connected")
        return self._db

    # -- the catalogue ---------------------------------------------------------------
    def _compiler(self) -> Compiler:
        return Compiler(self.catalogue)

    @property
    def catalogue(self) -> codec.Catalogue:
        """What each column has held (see :mod:`.codec`); read or rebuilt lazily."""
        with self._state_lock:
            if self._catalogue is None:
                self._catalogue = self._read_catalogue()
            return self._catalogue

    def _read_catalogue(self) -> codec.Catalogue:
        stored = self.handle.get(codec.CATALOGUE_KEY)
        self._catalogue_in_file = stored is not None
        if stored is not None:
            return codec.Catalogue.from_columns(stored)
        if self.handle.rnum() == 0:
            return codec.Catalogue()
        return self._scan_catalogue()

    def _scan_catalogue(self) -> codec.Catalogue:
        """Learn the catalogue from the records (a file another program wrote)."""
        kinds: dict[bytes, set[str]] = {}
        for key in self._raw_keys():
            cols = self.handle.get(key)
            if cols is None:
                continue
            for column, letters in codec.raw_kinds(cols).items():
                kinds.setdefault(column, set()).update(letters)
        return codec.Catalogue().merged(kinds)

    def rebuild_catalogue(self) -> codec.Catalogue:
        """Rescan every record; needed after other programs (``tctmgr``) wrote to the file."""
        with self._state_lock:
            search = self.catalogue.search
            catalogue = self._scan_catalogue()
            for column in search:
                catalogue = catalogue.with_search(column)
            if not self._readonly:
                with self.transaction():
                    self.handle.put(codec.CATALOGUE_KEY, catalogue.to_columns())
                    self._catalogue, self._catalogue_in_file = catalogue, True
                    for column in search:
                        self._write_words(codec.ColumnRef(column, b"", False, column))
            self._catalogue = catalogue
            return catalogue

    def _note_kinds(self, kinds: Mapping[bytes, Iterable[str]]) -> None:
        """Grow the stored catalogue before a record with new kinds is written.

        Called inside the write's transaction, so the catalogue and the record
        are committed or rolled back together.
        """
        with self._state_lock:
            current = self.catalogue
            if self._catalogue_in_file and not current.missing(kinds):
                return
            updated = current.merged(kinds)
            self.handle.put(codec.CATALOGUE_KEY, updated.to_columns())
            self._catalogue = updated
            self._catalogue_in_file = True

    # -- records -------------------------------------------------------------------------
    def _check_key(self, key: Any) -> str:
        key = super()._check_key(key)
        if codec.encode_key(key) == codec.CATALOGUE_KEY:
            raise ValidationError(f"the primary key {key!r} is reserved by the Tokyo Cabinet "
                                  f"backend for its catalogue record")
        return key

    def _check_writable(self) -> None:
        if self._readonly:
            raise StorageError(f"{self.describe_location()}: opened read-only (readonly=True); "
                               f"open it without readonly to write")

    def _load(self, key: str) -> Record | None:
        raw_key = codec.encode_key(key)
        if raw_key == codec.CATALOGUE_KEY:
            return None
        cols = self.handle.get(raw_key)
        return None if cols is None else codec.decode_record(cols)

    def _store(self, key: str, record: Record) -> None:
        self._store_many([(key, record)])

    def _store_many(self, items: Sequence[tuple[str, Record]]) -> None:
        self._check_writable()
        encoded = []
        kinds: dict[bytes, set[str]] = {}
        search = self.catalogue.search
        for key, record in items:
            cols, record_kinds = codec.encode_with_kinds(record, search)
            for column, letters in record_kinds.items():
                kinds.setdefault(column, set()).update(letters)
            encoded.append((codec.encode_key(key), cols))
        with self._state_lock:
            self._note_kinds(kinds)
            for raw_key, cols in encoded:
                self.handle.put(raw_key, cols)

    def _remove(self, key: str) -> bool:
        self._check_writable()
        raw_key = codec.encode_key(key)
        if raw_key == codec.CATALOGUE_KEY:
            return False
        return self.handle.out(raw_key)

    def _raw_keys(self) -> list[bytes]:
        with self.handle.query() as query:
            query.addcond(b"", tc.QCSTREQ | tc.QCNEGATE, codec.CATALOGUE_KEY)
            return query.search()

    def _keys(self) -> list[str]:
        return [codec.decode_key(k) for k in self._raw_keys()]

    def _count(self) -> int:
        has_catalogue = self.handle.get(codec.CATALOGUE_KEY) is not None
        return self.handle.rnum() - (1 if has_catalogue else 0)

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        return self._records_for(self._raw_keys())

    def _records_for(self, keys: Iterable[bytes]) -> Iterator[tuple[str, Record]]:
        """Fetch records by key as they are asked for (a record deleted meanwhile is skipped)."""
        for raw_key in keys:
            cols = self.handle.get(raw_key)
            if cols is not None:
                yield codec.decode_key(raw_key), codec.decode_record(cols)

    def _clear(self) -> None:
        self._check_writable()
        with self._state_lock:
            if self._in_tc_transaction:   # vanish is not transactional: delete by query
                with self.handle.query() as query:
                    query.addcond(b"", tc.QCSTREQ | tc.QCNEGATE, codec.CATALOGUE_KEY)
                    query.searchout()
                return
            search = self.catalogue.search
            self.handle.vanish()         # also restarts generated keys
            self._catalogue = codec.Catalogue(search=search)
            self._catalogue_in_file = False
            if search:                   # search indexes are settings: keep them
                self.handle.put(codec.CATALOGUE_KEY, self._catalogue.to_columns())
                self._catalogue_in_file = True

    def _new_key(self) -> str:
        self._check_writable()
        while True:
            key = str(self.handle.genuid())
            if self.handle.get(key.encode("ascii")) is None:
                return key

    # -- queries -------------------------------------------------------------------------------
    def _execute(self, plan: QueryPlan, hints: list[str] | None = None) -> list[bytes]:
        """Run a compiled plan; the keys in order."""
        keys: list[bytes] = []
        stop = plan.window[1] if plan.window is not None else None
        for step in plan.steps:
            queries = [self.handle.query() for _ in step.conjunctions]
            try:
                for index, query in enumerate(queries):
                    step.apply(query, index)
                if len(queries) == 1:
                    found = queries[0].search()
                else:
                    found = tc.metasearch(queries, MSUNION)
                if hints is not None:
                    hints.append(queries[0].hint())
            finally:
                for query in queries:
                    query.close()
            keys.extend(found)
            if stop is not None and len(keys) >= stop:
                break
        if plan.window is not None:
            start, stop = plan.window
            keys = keys[start:stop]
        return keys

    def _searchout(self, plan: QueryPlan) -> int:
        """Delete what a plan matches with ``tctdbqrysearchout`` (inside a transaction)."""
        self._check_writable()
        keys = self._execute(plan)
        if not keys:
            return 0
        for step in plan.steps:
            for index in range(len(step.conjunctions)):
                with self.handle.query() as query:
                    for column, op, expr in step.conjunctions[index]:
                        query.addcond(column, op, expr)
                    query.searchout()
        return len(keys)

    # -- transactions --------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["StorageAdapter"]:
        """All writes of the block or none, with Tokyo Cabinet's own (durable) transaction.

        TC has no nested transactions: an inner block keeps doqu's undo log
        inside the outer TC transaction, so it rolls back only its own writes.
        """
        if self._readonly:
            yield self
            return
        with self._tx_lock:
            if self._in_tc_transaction:
                with super().transaction():
                    yield self
                return
            self.handle.tranbegin()
            self._in_tc_transaction = True
            try:
                yield self
            except BaseException:
                self._in_tc_transaction = False
                with self._state_lock:
                    self._catalogue = None     # the aborted writes may have grown it
                try:
                    self.handle.tranabort()
                except tc.TokyoCabinetError:
                    pass    # the original error matters more
                raise
            self._in_tc_transaction = False
            try:
                self.handle.trancommit()
            except tc.TokyoCabinetError as exc:
                with self._state_lock:
                    self._catalogue = None
                raise TransactionError(f"{self.describe_location()}: commit failed: {exc}") from exc
        self._ensure_pending_indexes()

    # -- indexes -----------------------------------------------------------------------------
    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Create Tokyo Cabinet column indexes.

        Each field is a name or path (``'address__city'``), optionally with an
        index type: ``'age:decimal'``, ``'name:lexical'``, ``'tags:token'``,
        ``'bio:qgram'``. Without one, numeric columns get a decimal index and
        the others a lexical one. TC has no compound indexes: a tuple of
        fields indexes each of them.
        """
        for spec in fields:
            members = [spec] if isinstance(spec, str) else list(spec)
            for member in members:
                path, itype = parse_index_spec(member)
                self._ensure_index(path, itype)
        return True

    def _ensure_index(self, path: tuple[str, ...], itype: int | None) -> None:
        self._check_writable()
        if self._in_tc_transaction:
            raise StorageError(f"{self.describe_location()}: Tokyo Cabinet cannot create "
                               f"indexes inside a transaction")
        ref = codec.column_ref(path)
        if ref is None:
            raise QueryError(f"cannot index {'__'.join(path)!r}: nested paths are indexed "
                             f"up to {codec.MAX_DEPTH} levels deep")
        if itype == SEARCH_INDEX:
            self._enable_search(ref, path)
            return
        if itype is None:
            kinds = self.catalogue.kinds(ref.key)
            numeric = kinds and kinds <= set("ifgdIFD")
            itype = ITDECIMAL if numeric else ITLEXICAL
        if self.handle.indexes.get(ref.value) == itype:
            return
        try:
            self.handle.setindex(ref.value, itype)
        except tc.TokyoCabinetError as exc:
            raise StorageError(f"{self.describe_location()}: cannot index "
                               f"{'__'.join(path)!r}: {exc}") from exc

    def _enable_search(self, ref: codec.ColumnRef, path: tuple[str, ...]) -> None:
        """Give a field its word column (backfilled) and a token index over it."""
        if ref.nested:
            raise QueryError(f"search indexes are for top-level fields, not {'__'.join(path)!r}")
        words_column = codec.WORDS_PREFIX + ref.value
        with self._state_lock:
            if ref.value not in self.catalogue.search:
                with self.transaction():
                    catalogue = self.catalogue.with_search(ref.value)
                    self.handle.put(codec.CATALOGUE_KEY, catalogue.to_columns())
                    self._catalogue, self._catalogue_in_file = catalogue, True
                    self._write_words(ref)
        if self.handle.indexes.get(words_column) != ITTOKEN:
            self.handle.setindex(words_column, ITTOKEN)

    def _write_words(self, ref: codec.ColumnRef) -> None:
        """(Re)write the word column of every record holding a string in the field."""
        search = self.catalogue.search
        for raw_key in self._raw_keys():
            cols = self.handle.get(raw_key)
            if cols is None or ref.value not in cols:
                continue
            fresh = codec.encode_record(codec.decode_record(cols), search)
            if fresh != cols:
                self.handle.put(raw_key, fresh)

    @property
    def indexes(self) -> dict[str, str]:
        """Indexed columns (as doqu paths where they are doqu's) and their types."""
        names = {v: k for k, v in INDEX_TYPES.items()}
        out = {}
        for column, itype in self.handle.indexes.items():
            if column.startswith(codec.WORDS_PREFIX) and itype == ITTOKEN:
                out[codec.decode_text(column[len(codec.WORDS_PREFIX):])] = "search"
                continue
            if column.startswith(codec.NESTED_VALUE_PREFIX):
                name = codec.decode_text(column[len(codec.NESTED_VALUE_PREFIX):]).replace(".", "__")
            else:
                name = codec.decode_text(column)
            out[name] = names.get(itype, str(itype))
        return out

    def _declare_indexes(self, doc_class: type["Document"] | None) -> None:
        """Create the indexes a document class lists in ``indexes`` (once per class)."""
        if doc_class is None or not getattr(doc_class, "indexes", None) or self._readonly:
            return
        if doc_class in self._indexed_classes:
            return
        if self._in_tc_transaction:
            self._pending_index_classes.add(doc_class)
            return
        self._indexed_classes.add(doc_class)
        structure = doc_class._schema_types()
        for spec in doc_class.indexes:
            members = [spec] if isinstance(spec, str) else list(spec)
            for member in members:
                path, itype = parse_index_spec(member, structure)
                try:
                    self._ensure_index(path, itype)
                except StorageError as exc:   # the data refuses it: queries still work
                    log.warning("%s.indexes: %s", doc_class.__name__, exc)

    def _ensure_pending_indexes(self) -> None:
        while self._pending_index_classes and not self._in_tc_transaction:
            self._declare_indexes(self._pending_index_classes.pop())

    def _prepare_class(self, doc_class: type["Document"] | None) -> None:
        self._declare_indexes(doc_class)
