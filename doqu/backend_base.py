"""The documented backend API.

A backend is a package under ``doqu.ext`` whose module exposes
``StorageAdapter``: a subclass of :class:`BaseStorageAdapter` that fills in
a handful of low-level hooks (``_load``, ``_store``, ``_remove``, ``_keys``
...) and names its query class, a subclass of :class:`BaseQueryAdapter`
that pushes what it can into the engine. Everything a user calls is
implemented here once, so the behaviour is the same on every engine.

The hooks work with *records*: dicts in the engine's form, as produced by the
backend's :class:`ConverterManager` (doqu's canonical form unless the backend
says otherwise, see :mod:`doqu.conversion`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

from doqu.conversion import ConverterManager
from doqu.errors import (
    ConfigurationError,
    DataProcessorDoesNotExist,
    DocumentNotFound,
    LookupProcessorDoesNotExist,
    ProcessorDoesNotExist,
    ValidationError,
)
from doqu.query.base import BaseQueryAdapter

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = [
    "BaseStorageAdapter",
    "BaseQueryAdapter",
    "LookupManager",
    "ConverterManager",
    "Features",
    "ProcessorDoesNotExist",
    "LookupProcessorDoesNotExist",
    "DataProcessorDoesNotExist",
]

Record = dict[str, Any]


class LookupManager:
    """An engine's operator table: operator name → function building a native condition.

    ``register`` is a decorator; ``resolve`` looks an operator up and calls it.
    A query compiler asks ``op in manager`` to decide what runs natively.
    """

    def __init__(self) -> None:
        self._processors: dict[str, Callable[..., Any]] = {}
        self.default: str | None = None

    def register(self, name: str, default: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self._processors[name] = func
            if default:
                self.default = name
            return func

        return decorator

    def __contains__(self, name: object) -> bool:
        return name in self._processors

    @property
    def names(self) -> list[str]:
        return sorted(self._processors)

    def resolve(self, name: Any, operation: str | None, value: Any) -> Any:
        """Build the native condition for ``name operation value``."""
        op = operation or self.default
        try:
            processor = self._processors[op]  # type: ignore[index]
        except KeyError:
            raise LookupProcessorDoesNotExist(
                f"operator {op!r} is not supported here; known: {', '.join(self.names)}"
            ) from None
        return processor(name, value)


@dataclass(frozen=True)
class Features:
    """What an engine can do; tests skip by these flags, never by engine name."""

    #: Does ``transaction()`` undo every write of a failed block, even if the process dies?
    durable_transactions: bool = False
    #: Do records survive ``disconnect()`` + ``connect()`` (a file or a server)?
    persistent: bool = True
    #: Does ``ensure_index`` create an index in the engine?
    indexes: bool = False
    #: Can several processes open the same storage at once?
    multi_process: bool = False


class BaseStorageAdapter:
    """One connected namespace of records (a file, a table, a collection, a prefix).

    Made by :func:`doqu.get_db`; usable as a context manager that
    disconnects on exit. Backends override the ``_``-prefixed hooks only.
    """

    backend_name: ClassVar[str] = "base"
    converter_manager: ClassVar[ConverterManager] = ConverterManager()
    lookup_manager: ClassVar[LookupManager] = LookupManager()
    query_adapter: ClassVar[type[BaseQueryAdapter]] = BaseQueryAdapter
    features: ClassVar[Features] = Features()
    #: Settings the backend requires, checked before connecting.
    required_settings: ClassVar[tuple[str, ...]] = ()
    #: Settings the backend accepts (``None``: anything).
    known_settings: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, **settings: Any) -> None:
        missing = [name for name in self.required_settings if settings.get(name) in (None, "")]
        if missing:
            raise ConfigurationError(
                f"backend {self.backend_name!r} needs the setting(s) {', '.join(missing)}"
            )
        if self.known_settings is not None:
            unknown = sorted(set(settings) - set(self.known_settings) - {"backend"})
            if unknown:
                raise ConfigurationError(
                    f"backend {self.backend_name!r} does not know the setting(s) "
                    f"{', '.join(unknown)}; it accepts {', '.join(self.known_settings)}"
                )
        self.settings = dict(settings)
        self._connected = False
        self._undo: list[list[tuple[str, Record | None]]] = []
        self._undo_owner: int | None = None
        self._tx_lock = threading.RLock()
        self.connect()

    # -- lifecycle ----------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Open the connection; a storage from ``get_db`` is already connected."""
        if self._connected:
            raise RuntimeError(f"{self!r} is already connected")
        self._connect()
        self._connected = True

    def disconnect(self) -> None:
        """Close the connection; safe to call twice."""
        if self._connected:
            self._connected = False
            self._disconnect()

    def reconnect(self) -> None:
        """Drop the connection (even a broken one) and open a new one."""
        try:
            self.disconnect()
        except Exception:  # a broken connection may fail to close; that's why we reconnect
            self._connected = False
        self.connect()

    def __enter__(self) -> "BaseStorageAdapter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} {self.describe_location()}>"

    def describe_location(self) -> str:
        """Where the data lives, safe to show (no passwords)."""
        return self.backend_name

    @property
    def identity(self) -> Any:
        """Equal for two storage objects over the same data (document equality uses it)."""
        return (type(self).__module__, id(self))

    # -- documents ------------------------------------------------------------
    def get(self, doc_class: type["Document"], primary_key: str) -> "Document":
        """The document stored under ``primary_key``; ``KeyError`` if there is none."""
        key = self._check_key(primary_key)
        record = self._load(key)
        if record is None:
            raise DocumentNotFound(f"no record with primary key {key!r} in {self.describe_location()}")
        return self._document_builder(doc_class)(key, record)

    def get_many(self, doc_class: type["Document"], primary_keys: Iterable[str]) -> list["Document"]:
        """Documents for the keys, in the keys' order; ``KeyError`` if any is missing."""
        keys = [self._check_key(k) for k in primary_keys]
        records = self._load_many(keys)
        missing = [k for k, r in zip(keys, records) if r is None]
        if missing:
            raise DocumentNotFound(f"no records with primary keys {missing!r} in {self.describe_location()}")
        build = self._document_builder(doc_class)
        return [build(k, r) for k, r in zip(keys, records)]

    def get_or_create(self, doc_class: type["Document"], **conditions: Any) -> "Document":
        """The first document matching the equality ``conditions``, saved first if none does."""
        found = self.get_query(doc_class).where(**conditions).first()
        if found is not None:
            return found  # type: ignore[no-any-return]
        doc = doc_class(**conditions)
        doc.save(self)
        return doc

    def get_query(self, doc_class: type["Document"] | None = None) -> BaseQueryAdapter:
        """A query of all records ``doc_class`` admits (all records without a class)."""
        self._prepare_class(doc_class)
        return self.query_adapter(self, doc_class)

    def save(self, doc_class: type["Document"] | None, data: Mapping[str, Any],
             primary_key: str | None = None) -> str:
        """Store ``data`` (Python values) under ``primary_key`` or a new key; returns the key."""
        self._prepare_class(doc_class)
        record = self._encode(doc_class, data)
        with self.transaction():
            key = self._check_key(primary_key) if primary_key is not None else self._new_key()
            self._put(key, record)
        return key

    def save_many(self, documents: Iterable["Document"]) -> list[str]:
        """Validate all, then save all in one transaction; returns their keys."""
        docs = list(documents)
        for doc_class in {type(doc) for doc in docs}:
            self._prepare_class(doc_class)
        for doc in docs:
            doc._prepare_save(self)
        with self.transaction():
            items: list[tuple[str | None, Record]] = []
            for doc in docs:
                doc._save_references(self)
                own = doc.pk if doc._storage is self else None
                items.append((own, self._encode(type(doc), doc._outgoing_data())))
            keys = [k if k is not None else self._new_key() for k, _ in items]
            self._put_many(list(zip(keys, (r for _, r in items))))
        for doc, key in zip(docs, keys):
            doc._mark_saved(self, key)
        return keys

    def delete(self, primary_key: str) -> None:
        """Remove one record; ``KeyError`` if it does not exist."""
        key = self._check_key(primary_key)
        with self.transaction():
            if not self._delete_one(key):
                raise DocumentNotFound(f"no record with primary key {key!r} in {self.describe_location()}")

    def clear(self) -> None:
        """Remove every record of this storage (key generation may restart)."""
        self._clear()

    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Create an engine index per field name or tuple of names; False where unsupported."""
        return False

    def __contains__(self, primary_key: object) -> bool:
        if not isinstance(primary_key, str):
            return False
        try:
            return self._load(primary_key) is not None
        except ValidationError:  # a key this engine cannot even hold is not in it
            return False

    def __len__(self) -> int:
        return self._count()

    def __bool__(self) -> bool:
        # a storage is a container, but an empty one is still a storage: never
        # let ``db or default`` count the records
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    # -- transactions -----------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["BaseStorageAdapter"]:
        """All writes in the block, or none of them if it raises.

        This default keeps an undo log in memory: it protects against
        exceptions in this process, not against a crash. Engines with real
        transactions override it (see ``features.durable_transactions``).
        Nested blocks roll back only their own writes.
        """
        with self._tx_lock:
            self._undo.append([])
            try:
                yield self
            except BaseException:
                log = self._undo.pop()
                for key, before in reversed(log):
                    if before is None:
                        self._remove(key)
                    else:
                        self._store(key, before)
                raise
            else:
                log = self._undo.pop()
                if self._undo:
                    self._undo[-1].extend(log)

    def _remember(self, key: str) -> None:
        if self._undo:
            self._undo[-1].append((key, self._load(key)))

    def _put(self, key: str, record: Record) -> None:
        self._remember(key)
        self._store(key, record)

    def _put_many(self, items: Sequence[tuple[str, Record]]) -> None:
        for key, _ in items:
            self._remember(key)
        self._store_many(items)

    def _delete_one(self, key: str) -> bool:
        self._remember(key)
        return self._remove(key)

    def _delete_keys(self, keys: Sequence[str]) -> int:
        """Remove records by key in one transaction; returns how many existed."""
        with self.transaction():
            return sum(1 for key in keys if self._delete_one(key))

    # -- values ---------------------------------------------------------------------
    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not key:
            raise ValidationError(f"primary keys are non-empty str, got {key!r}")
        return key

    def _encode(self, doc_class: type["Document"] | None, data: Mapping[str, Any]) -> Record:
        """Python values → a record in the engine's form; ``None`` fields are left out."""
        record: Record = {}
        to_db = self.converter_manager.to_db
        for name, value in data.items():
            if not isinstance(name, str) or not name:
                raise ValidationError(f"field names are non-empty str, got {name!r}", field=str(name))
            if value is not None:
                try:
                    record[name] = to_db(value, self, field=name)
                except RecursionError:
                    raise ValidationError(
                        f"field {name!r}: the value is nested too deeply to store", field=name
                    ) from None
        return record

    def _value_from_db(self, datatype: Any, value: Any) -> Any:
        from doqu.document import Document

        if isinstance(datatype, type) and issubclass(datatype, Document):
            return value
        try:
            return self.converter_manager.from_db(datatype, value)
        except (ProcessorDoesNotExist, ValidationError):
            return value

    def _canonical(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """The record in doqu's canonical form, for the Python evaluator."""
        return record

    def _document_builder(self, doc_class: type["Document"] | None) -> Callable[[str, Record], Any]:
        if doc_class is None:
            from doqu.document import Document

            doc_class = Document
        return lambda key, record: doc_class._from_storage(self, key, record)

    # -- hooks a backend implements ---------------------------------------------------
    def _prepare_class(self, doc_class: type["Document"] | None) -> None:
        """Called before a class first queries or saves here (e.g. to create its ``indexes``)."""

    def _connect(self) -> None:
        pass

    def _disconnect(self) -> None:
        pass

    def _load(self, key: str) -> Record | None:
        raise NotImplementedError

    def _load_many(self, keys: Sequence[str]) -> list[Record | None]:
        return [self._load(k) for k in keys]

    def _store(self, key: str, record: Record) -> None:
        raise NotImplementedError

    def _store_many(self, items: Sequence[tuple[str, Record]]) -> None:
        for key, record in items:
            self._store(key, record)

    def _remove(self, key: str) -> bool:
        raise NotImplementedError

    def _keys(self) -> Iterable[str]:
        raise NotImplementedError

    def _count(self) -> int:
        return sum(1 for _ in self._keys())

    def _clear(self) -> None:
        for key in list(self._keys()):
            self._remove(key)

    def _new_key(self) -> str:
        raise NotImplementedError

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        """Every (key, record); backends stream this rather than load all keys first."""
        for keys in _batched(self._keys(), 500):
            for key, record in zip(keys, self._load_many(keys)):
                if record is not None:
                    yield key, record


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
