"""The sharded storage: one logical storage over several storages of any engines.

Records are kept at this level in doqu's canonical form: every read is
turned canonical by the owning shard (``shard._canonical``) and every write
is encoded by the owning shard's own converters from the Python values, so
shards of different engines (SQLite next to MongoDB) each hold their own
native form. See :mod:`doqu.ext.sharded.placement` for where records go.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence, TypeVar

from doqu.backend_base import BaseStorageAdapter, Features
from doqu.errors import ConfigurationError
from doqu.ext.sharded.placement import (
    NAME,
    SEPARATOR,
    FieldShardFunction,
    resolve_answer,
    shard_function,
    split_key,
    stable_hash,
)
from doqu.ext.sharded.query import QueryAdapter

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["StorageAdapter", "Shard"]

Record = dict[str, Any]
T = TypeVar("T")
#: (key or None for a new one, document class, Python data or None, canonical record)
Item = tuple["str | None", "type[Document] | None", "Mapping[str, Any] | None", Record]


@dataclass(eq=False)
class Shard:
    """One member storage. ``owned`` shards were made from settings and are closed with ours."""

    index: int
    name: str
    storage: BaseStorageAdapter
    owned: bool


class _Done:
    """A finished "future", for running fan-out work in the calling thread."""

    __slots__ = ("_value", "_error")

    def __init__(self, func: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        try:
            self._value = func()
        except Exception as exc:  # re-raised by result(), exactly where a Future would
            self._error = exc

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class StorageAdapter(BaseStorageAdapter):
    """Several storages seen as one: ``get_db({'backend': 'sharded', 'shards': [...]})``.

    ``shards`` is a list (or a ``{name: shard}`` dict) of connected storages,
    settings dicts or URLs, or one string of URLs separated by commas or
    spaces. ``shard_by`` is a field name (``'city'``) or a function of the
    canonical record returning a shard name or index; without it, records
    are spread by key. ``parallel`` (default true) runs queries on all shards
    at once in a thread pool of ``workers`` threads.
    """

    backend_name = "sharded"
    query_adapter = QueryAdapter
    required_settings = ("shards",)
    known_settings: ClassVar[tuple[str, ...] | None] = ("shards", "shard_by", "parallel", "workers")
    setting_types: ClassVar[dict[str, type]] = {"parallel": bool, "workers": int}

    def __init__(self, **settings: Any) -> None:
        self.shards: list[Shard] = []
        self._by_name: dict[str, int] = {}
        self._frames: list[tuple[contextlib.ExitStack, set[int]]] = []
        self._tx_owner: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._spread = itertools.count()
        self._shard_by = shard_function(settings.get("shard_by"))
        workers = settings.get("workers")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ConfigurationError(f"sharded: workers must be a positive int, got {workers!r}")
        super().__init__(**settings)

    # -- lifecycle ----------------------------------------------------------------
    def _connect(self) -> None:
        if not self.shards:
            self._build_shards(self.settings["shards"])
        else:
            for shard in self.shards:
                if not shard.storage.connected:
                    shard.storage.connect()
        # what a sharded storage can do is what all of its shards can do
        setattr(self, "features", Features(
            durable_transactions=False,
            persistent=all(s.storage.features.persistent for s in self.shards),
            indexes=all(s.storage.features.indexes for s in self.shards),
            multi_process=all(s.storage.features.multi_process for s in self.shards),
        ))

    def _build_shards(self, spec: Any) -> None:
        from doqu.config import get_db

        entries = _shard_entries(spec)
        built: list[Shard] = []
        try:
            for index, (name, item) in enumerate(entries):
                if isinstance(item, BaseStorageAdapter):
                    if not item.connected:
                        item.connect()
                    built.append(Shard(index, name, item, owned=False))
                elif isinstance(item, (str, Mapping)):
                    built.append(Shard(index, name, get_db(item), owned=True))
                else:
                    raise ConfigurationError(
                        f"sharded: shard {name!r} must be a storage, a settings dict or a URL, "
                        f"got {type(item).__name__}"
                    )
            seen: dict[Any, str] = {}
            for shard in built:
                other = seen.setdefault(shard.storage.identity, shard.name)
                if other != shard.name:
                    raise ConfigurationError(
                        f"sharded: shards {other!r} and {shard.name!r} are the same storage "
                        f"({shard.storage.describe_location()}); every shard needs its own"
                    )
        except BaseException:
            for shard in built:
                if shard.owned:
                    shard.storage.disconnect()
            raise
        self.shards = built
        self._by_name = {shard.name: shard.index for shard in built}

    def _disconnect(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        errors = []
        for shard in self.shards:
            if shard.owned:
                try:
                    shard.storage.disconnect()
                except Exception as exc:  # close the others anyway; report the first failure
                    errors.append(exc)
        if errors:
            raise errors[0]

    def describe_location(self) -> str:
        inner = "; ".join(f"{s.name}={s.storage.describe_location()}" for s in self.shards)
        return f"sharded over {len(self.shards)} shards ({inner})"

    @property
    def identity(self) -> Any:
        return ("sharded", tuple(shard.storage.identity for shard in self.shards))

    # -- fan-out ------------------------------------------------------------------
    def _parallel(self) -> bool:
        return bool(self.settings.get("parallel", True)) and len(self.shards) > 1

    def _in_transaction(self) -> bool:
        return self._tx_owner == threading.get_ident()

    def _submitter(self) -> Callable[[Callable[[], Any]], Any]:
        """Run work in the pool, or right here inside a transaction.

        Inside a transaction the shards' connections and locks belong to
        this thread, and only this thread sees their uncommitted writes.
        """
        if not self._parallel() or self._in_transaction():
            return _Done
        with self._pool_lock:
            if self._pool is None:
                workers = self.settings.get("workers") or min(32, 2 * len(self.shards))
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doqu-shard")
            pool = self._pool
        return pool.submit

    def _each(self, func: Callable[[Shard], T], shards: Sequence[Shard] | None = None) -> list[T]:
        """``func(shard)`` for every shard (in parallel when allowed), in shard order."""
        targets = self.shards if shards is None else shards
        if len(targets) == 1:
            return [func(targets[0])]
        submit = self._submitter()
        futures: list[Future[T] | _Done] = [submit(functools.partial(func, shard)) for shard in targets]
        return [future.result() for future in futures]

    # -- placement ------------------------------------------------------------------
    def _shard_of_key(self, key: str) -> Shard | None:
        """The owner of ``key``, or ``None`` when only a search can tell (field sharding)."""
        prefixed = split_key(key)
        if prefixed is not None and prefixed[0] in self._by_name:
            return self.shards[self._by_name[prefixed[0]]]
        if self._shard_by is None:
            return self.shards[stable_hash(key) % len(self.shards)]
        return None

    def _shard_of_record(self, record: Mapping[str, Any]) -> Shard:
        """Where a new record goes."""
        if self._shard_by is None:
            return self.shards[next(self._spread) % len(self.shards)]
        answer = self._shard_by(record)
        if isinstance(self._shard_by, FieldShardFunction):
            return self.shards[answer % len(self.shards)]
        return self.shards[resolve_answer(answer, [s.name for s in self.shards], self._by_name)]

    def _locate(self, keys: Sequence[str]) -> dict[str, Shard]:
        """Owners of keys that carry no shard prefix under field sharding, by asking every shard."""
        if not keys:
            return {}
        found: dict[str, Shard] = {}
        answers = self._each(lambda shard: shard.storage._load_many(keys))
        for shard, records in zip(self.shards, answers):
            for key, record in zip(keys, records):
                if record is not None:
                    found.setdefault(key, shard)
        return found

    def _owners(self, keys: Sequence[str]) -> list[Shard | None]:
        owners = [self._shard_of_key(key) for key in keys]
        unknown = list(dict.fromkeys(k for k, o in zip(keys, owners) if o is None))
        if unknown:
            located = self._locate(unknown)
            owners = [o if o is not None else located.get(k) for k, o in zip(keys, owners)]
        return owners

    def _new_keys(self, shard: Shard, count: int) -> list[str]:
        """``count`` fresh keys on ``shard``: its own generated keys, prefixed with its name.

        A candidate an application already used as its own key is skipped.
        """
        self._touch(shard)
        keys: list[str] = []
        while len(keys) < count:
            wanted = count - len(keys)
            candidates = [f"{shard.name}{SEPARATOR}{shard.storage._new_key()}" for _ in range(wanted)]
            taken = shard.storage._load_many(candidates)
            keys.extend(c for c, record in zip(candidates, taken) if record is None)
        return keys

    # -- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["StorageAdapter"]:
        """A transaction on every shard the block writes to, opened on first write.

        Best effort, not two-phase: each shard commits or rolls back its own
        part, so if one shard fails while committing, shards that already
        committed stay committed. Nested blocks nest on each shard. Writes
        through one sharded storage are serialized, as with the default
        undo-log transactions.
        """
        with self._tx_lock:
            stack = contextlib.ExitStack()
            self._frames.append((stack, set()))
            self._tx_owner = threading.get_ident()
            try:
                with stack:
                    yield self
            finally:
                self._frames.pop()
                if not self._frames:
                    self._tx_owner = None

    def _touch(self, shard: Shard) -> None:
        """Make sure every open sharded transaction also covers ``shard``, outermost first."""
        if not self._in_transaction():
            return
        for stack, entered in self._frames:
            if shard.index not in entered:
                stack.enter_context(shard.storage.transaction())
                entered.add(shard.index)

    # -- writes -------------------------------------------------------------------------
    def save(self, doc_class: type["Document"] | None, data: Mapping[str, Any],
             primary_key: str | None = None) -> str:
        record = self._encode(doc_class, data)  # refuses bad values before anything is written
        key = self._check_key(primary_key) if primary_key is not None else None
        with self.transaction():
            return self._write([(key, doc_class, data, record)])[0]

    def save_many(self, documents: Iterable["Document"]) -> list[str]:
        docs = list(documents)
        for doc in docs:
            doc._prepare_save(self)
        with self.transaction():
            items: list[Item] = []
            for doc in docs:
                doc._save_references(self)
                own = doc.pk if doc._storage is self else None
                data = doc._outgoing_data()
                items.append((own, type(doc), data, self._encode(type(doc), data)))
            keys = self._write(items)
        for doc, key in zip(docs, keys):
            doc._mark_saved(self, key)
        return keys

    def _write(self, items: Sequence[Item]) -> list[str]:
        """Place, encode (each shard with its own converters), then write, grouped by shard."""
        given = [key for key, _, _, _ in items if key is not None]
        owners = dict(zip(given, self._owners(given)))
        placed: list[tuple[Shard, str | None]] = []
        for key, _, _, record in items:
            shard = owners.get(key) if key is not None else None
            placed.append((shard or self._shard_of_record(record), key))
        by_shard: dict[int, list[int]] = {}
        for position, (shard, _) in enumerate(placed):
            by_shard.setdefault(shard.index, []).append(position)
        encoded: dict[int, list[tuple[int, Record]]] = {}
        for index, positions in by_shard.items():
            target = self.shards[index].storage
            rows = encoded[index] = []
            for p in positions:
                _, doc_class, data, record = items[p]
                # Python values when we have them, so the shard's converters see declared types
                rows.append((p, target._encode(doc_class, data) if data is not None
                             else target._encode(None, record)))
        keys: list[str | None] = [key for _, key in placed]
        for index, rows in encoded.items():
            shard = self.shards[index]
            self._touch(shard)
            fresh = iter(self._new_keys(shard, sum(1 for p, _ in rows if keys[p] is None)))
            for p, _ in rows:
                if keys[p] is None:
                    keys[p] = next(fresh)
            shard.storage._put_many([(keys[p], record) for p, record in rows])  # type: ignore[misc]
        return keys  # type: ignore[return-value]

    def _put(self, key: str, record: Record) -> None:
        self._write([(key, None, None, record)])

    def _put_many(self, items: Sequence[tuple[str, Record]]) -> None:
        self._write([(key, None, None, record) for key, record in items])

    def _store(self, key: str, record: Record) -> None:
        self._put(key, record)

    def _store_many(self, items: Sequence[tuple[str, Record]]) -> None:
        self._put_many(items)

    def _keys_for_new(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Fresh keys for records about to be stored, each on the shard it belongs to (used by copy)."""
        keys: list[str | None] = [None] * len(records)
        groups: dict[int, list[int]] = {}
        for position, record in enumerate(records):
            groups.setdefault(self._shard_of_record(record).index, []).append(position)
        for index, positions in groups.items():
            for position, key in zip(positions, self._new_keys(self.shards[index], len(positions))):
                keys[position] = key
        return keys  # type: ignore[return-value]

    def _new_key(self) -> str:
        return self._new_keys(self.shards[next(self._spread) % len(self.shards)], 1)[0]

    def _delete_one(self, key: str) -> bool:
        shard = self._owners([key])[0]
        if shard is None:
            return False
        self._touch(shard)
        return shard.storage._delete_one(key)

    def _remove(self, key: str) -> bool:
        return self._delete_one(key)

    def _delete_keys(self, keys: Sequence[str]) -> int:
        with self.transaction():
            groups: dict[int, list[str]] = {}
            for key, shard in zip(keys, self._owners(keys)):
                if shard is not None:
                    groups.setdefault(shard.index, []).append(key)
            total = 0
            for index, group in groups.items():
                shard = self.shards[index]
                self._touch(shard)
                total += shard.storage._delete_keys(group)
            return total

    def _clear(self) -> None:
        for shard in self.shards:
            shard.storage.clear()

    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        return all(self._each(lambda shard: shard.storage.ensure_index(*fields)))

    # -- reads ----------------------------------------------------------------------------
    def _load(self, key: str) -> Record | None:
        return self._load_many([key])[0]

    def _load_many(self, keys: Sequence[str]) -> list[Record | None]:
        owners = self._owners(keys)
        groups: dict[int, list[int]] = {}
        for position, shard in enumerate(owners):
            if shard is not None:
                groups.setdefault(shard.index, []).append(position)
        targets = [self.shards[index] for index in groups]

        def load(shard: Shard) -> list[Record | None]:
            wanted = [keys[p] for p in groups[shard.index]]
            canonical = shard.storage._canonical
            return [None if r is None else dict(canonical(r)) for r in shard.storage._load_many(wanted)]

        out: list[Record | None] = [None] * len(keys)
        for shard, records in zip(targets, self._each(load, targets) if targets else []):
            for position, record in zip(groups[shard.index], records):
                out[position] = record
        return out

    def _keys(self) -> Iterator[str]:
        for shard in self.shards:
            yield from shard.storage._keys()

    def _count(self) -> int:
        return sum(self._each(lambda shard: len(shard.storage)))

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        for shard in self.shards:
            canonical = shard.storage._canonical
            for key, record in shard.storage._iter_records():
                yield key, dict(canonical(record))


def _shard_entries(spec: Any) -> list[tuple[str, Any]]:
    """The ``shards`` setting as ``[(name, storage | settings | URL)]``."""
    if isinstance(spec, str):
        items: list[tuple[str, Any]] = [(str(i), url) for i, url in
                                        enumerate(u for u in re.split(r"[\s,]+", spec) if u)]
    elif isinstance(spec, Mapping):
        items = [(str(name), item) for name, item in spec.items()]
    elif isinstance(spec, (list, tuple)):
        items = [(str(i), item) for i, item in enumerate(spec)]
    else:
        raise ConfigurationError(
            f"sharded: shards must be a list of storages, settings or URLs, got {type(spec).__name__}"
        )
    if not items:
        raise ConfigurationError("sharded: shards is empty; give at least one storage, settings dict or URL")
    for name, _ in items:
        if not NAME.match(name):
            raise ConfigurationError(
                f"sharded: shard name {name!r} may only contain letters, digits, '_' and '-' "
                f"(it becomes part of generated keys)"
            )
    return items
