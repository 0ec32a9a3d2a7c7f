"""The Redis storage adapter: records as JSON strings, indexes as sorted sets.

See :mod:`doqu.ext.redis.keys` for the key layout, :mod:`doqu.ext.redis.index`
for the index entries and :mod:`doqu.ext.redis.scripts` for the write script.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import struct
import threading
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, Mapping, Sequence

from doqu.backend_base import BaseStorageAdapter, Features
from doqu.conversion import ConverterManager, ExactFloat, dumps
from doqu.errors import ConfigurationError, ConnectionError, StorageError, TransactionError
from doqu.ext.redis import index as ix
from doqu.ext.redis.keys import Layout, bytes_text, check_prefix, text_bytes
from doqu.ext.redis.nodes import MISSING, Nodes, import_redis
from doqu.ext.redis.query import QueryAdapter
from doqu.ext.redis.scripts import BUMP, TAKEN, WRITE

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["StorageAdapter"]

Record = dict[str, Any]
_DEFAULT_SHARDS = {False: 1, True: 16}
_MAX_ATTEMPTS = 50
# script operation codes per index kind: sets (a), hashes (N), sorted sets (the rest)
_REMOVE = {"a": b"s", "N": b"h", "n": b"z", "s": b"z", "d": b"z", "l": b"z", "b": b"z"}
_ADD = {"a": b"S", "N": b"H", "n": b"Z", "s": b"Z", "d": b"Z", "l": b"Z", "b": b"Z"}
_U32 = struct.Struct(">I").pack
_U32x2 = struct.Struct(">II").pack
_NO_OPS = _U32(0)


def _dumps(record: Record) -> bytes:
    """doqu.conversion.dumps, with the common no-Decimal case in one pass of the C encoder."""
    try:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError:  # a Decimal: the exact (slower) encoder
        text = dumps(record)
    return text.encode("utf-8", "surrogatepass")


def _number(text: str) -> float:
    """JSON float: a plain float, unless only its text holds every digit (a Decimal)."""
    value = float(text)
    return value if repr(value) == text else ExactFloat(text)


_DECODER = json.JSONDecoder(parse_float=_number)


def loads(raw: bytes) -> Any:
    """Stored JSON -> canonical record; like doqu.conversion.loads, but plain floats stay floats."""
    return _DECODER.decode(raw.decode("utf-8", "surrogatepass"))


def _plain(value: Any) -> Any:
    """Values as the JSON-native types the contract promises (no ExactFloat leaks out)."""
    if type(value) is ExactFloat:
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Converters(ConverterManager):
    """The default conversions; values without a scalar declared type come back JSON-native."""

    def from_db(self, datatype: Any, value: Any) -> Any:
        converted = super().from_db(datatype, value)
        if datatype is None or datatype is list or datatype is dict:
            return _plain(converted)
        return converted


class _Raw(bytes):
    """A record's stored JSON, kept verbatim (the undo log restores it byte for byte)."""


class _Keep:
    """Leave the record as it is (``raw``), but add index entries for new fields."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def _sha(raw: bytes | None) -> bytes:
    return hashlib.sha1(raw).hexdigest().encode() if raw is not None else b""


def _index_fields(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ConfigurationError(f"redis: the setting 'indexes' takes 'a,b.c' or a list, got {value!r}")


class StorageAdapter(BaseStorageAdapter):
    """Records of one key prefix on a Redis server or a Redis Cluster."""

    backend_name = "redis"
    query_adapter = QueryAdapter
    converter_manager = _Converters()
    features = Features(durable_transactions=False, persistent=True, indexes=True, multi_process=True)
    known_settings: ClassVar[tuple[str, ...] | None] = (
        "host", "port", "database", "user", "password", "prefix", "cluster", "shards", "indexes",
        "wait_replicas", "wait_timeout", "socket_timeout", "connect_timeout", "batch_size", "client",
    )
    setting_types: ClassVar[dict[str, type]] = {
        "port": int, "database": int, "cluster": bool, "shards": int, "wait_replicas": int,
        "wait_timeout": int, "socket_timeout": float, "connect_timeout": float, "batch_size": int,
    }

    # -- settings and connection ------------------------------------------------------
    def _setting(self, name: str, default: Any, kind: type, minimum: float | None = None) -> Any:
        value = self.settings.get(name)
        if value is None or value == "":
            return default
        if kind is bool and isinstance(value, bool):
            return value
        if kind is not bool and isinstance(value, (int, float)) and not isinstance(value, bool):
            if kind is int and not float(value).is_integer():
                value = None
            else:
                value = kind(value)
        if not isinstance(value, kind) or (minimum is not None and value < minimum):
            expected = kind.__name__ + (f" >= {minimum}" if minimum is not None else "")
            raise ConfigurationError(
                f"redis: setting {name!r} expects {expected}, got {self.settings.get(name)!r}")
        return value

    def _read_settings(self) -> None:
        self.prefix = check_prefix(self.settings.get("prefix", "doqu"))
        self.cluster = self._setting("cluster", False, bool)
        self.host = self.settings.get("host") or "localhost"
        self.port = self._setting("port", 6379, int, 1)
        self.database = self._setting("database", 0, int, 0)
        if self.cluster and self.database != 0:
            raise ConfigurationError(
                f"redis: Redis Cluster has only database 0, the settings ask for {self.database}")
        self.wait_replicas = self._setting("wait_replicas", 0, int, 0)
        self.wait_timeout = self._setting("wait_timeout", 1000, int, 1)
        self.socket_timeout = self._setting("socket_timeout", 5.0, float, 0.001)
        self.connect_timeout = self._setting("connect_timeout", 2.0, float, 0.001)
        self.batch_size = self._setting("batch_size", 500, int, 1)
        self.shards_setting = self._setting("shards", None, int, 1)
        if self.shards_setting is not None and self.shards_setting > 16384:
            raise ConfigurationError("redis: setting 'shards' is at most 16384 (the cluster's slots)")
        self.declared_indexes = _index_fields(self.settings.get("indexes"))

    def describe_location(self) -> str:
        if self.settings.get("cluster"):
            where = f"redis cluster via {self.settings.get('host') or 'localhost'}:{self.settings.get('port') or 6379}"
        else:
            where = (f"redis://{self.settings.get('host') or 'localhost'}:{self.settings.get('port') or 6379}"
                     f"/{self.settings.get('database') or 0}")
        return f"{where} prefix {self.settings.get('prefix', 'doqu')!r}"

    @property
    def identity(self) -> Any:
        return ("redis", bool(self.settings.get("cluster")), self.settings.get("host") or "localhost",
                int(self.settings.get("port") or 6379), int(self.settings.get("database") or 0),
                self.settings.get("prefix", "doqu"))

    def _connect(self) -> None:
        redis = import_redis()
        self._read_settings()
        location = self.describe_location()
        shared = self.settings.get("client")
        if shared is not None:
            if not isinstance(shared, (redis.Redis, redis.RedisCluster)):
                raise ConfigurationError(
                    f"redis: setting 'client' takes a redis.Redis or redis.RedisCluster, got {shared!r}")
            if isinstance(shared, redis.RedisCluster) != self.cluster:
                raise ConfigurationError(
                    "redis: setting 'client' is a " + type(shared).__name__ + " but 'cluster' is "
                    + str(self.cluster) + "; use redis+cluster:// (cluster=True) with a RedisCluster")
            if shared.get_connection_kwargs().get("decode_responses"):
                raise ConfigurationError(
                    "redis: setting 'client' must be made with decode_responses=False: "
                    "doqu reads keys and records as bytes")
            client = shared
        else:
            client = self._new_client(redis, location)
        self._owns_client = shared is None
        self._client = client
        self._nodes = Nodes(client, self.cluster, location)
        self._lock = threading.RLock()
        self._pool: collections.deque[str] = collections.deque()
        self._fresh: set[str] = set()
        self._declared: weakref.WeakSet[type] = weakref.WeakSet()
        try:
            meta = Layout(self.prefix, 1)
            self._meta_slot = meta.meta_slot
            self._meta = meta
            self._layout = Layout(self.prefix, self._init_shards())
            self._load_registry()
            if self.declared_indexes:
                self.ensure_index(*self.declared_indexes)
        except BaseException:
            if self._owns_client:
                client.close()
            raise

    def _new_client(self, redis: Any, location: str) -> Any:
        options = dict(
            username=self.settings.get("user") or None,
            password=self.settings.get("password") or None,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.connect_timeout,
            protocol=2,
        )
        try:
            if self.cluster:
                return redis.RedisCluster(host=self.host, port=self.port, **options)
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # no driver-level retries: a write must never be resent blindly (see nodes.py);
            # doqu retries reads itself, and the pool replaces connections the server closed
            return redis.Redis(host=self.host, port=self.port, db=self.database,
                               retry=Retry(NoBackoff(), 0), **options)
        except redis.exceptions.RedisError as exc:
            raise Nodes(None, self.cluster, location).error(exc, "connect") from exc

    def _disconnect(self) -> None:
        if self._owns_client:
            self._client.close()

    def _init_shards(self) -> int:
        key = self._meta.shards_key
        stored = self._nodes.one(self._meta_slot, "GET", key, action="connect")
        if stored is None:  # a new prefix: the first client to get here decides
            wanted = self.shards_setting or _DEFAULT_SHARDS[self.cluster]
            stored = self._nodes.read([(self._meta_slot, ("SET", key, wanted, "NX")),
                                       (self._meta_slot, ("GET", key))], "connect")[1]
        shards = int(stored)
        if self.shards_setting is not None and self.shards_setting != shards:
            raise ConfigurationError(
                f"redis: prefix {self.prefix!r} was created with {shards} shards, the settings ask "
                f"for {self.shards_setting}; leave 'shards' out or move the data to a new prefix")
        return shards

    def _registry_commands(self) -> list[tuple[int, tuple[Any, ...]]]:
        return [(self._meta_slot, ("HGETALL", self._meta.registry)),
                (self._meta_slot, ("GET", self._meta.version))]

    def _load_registry(self, replies: Sequence[Any] | None = None) -> None:
        """Read which fields are indexed (or take the replies of ``_registry_commands``)."""
        if replies is None:
            replies = self._nodes.read(self._registry_commands(), "read the index registry")
        registry, version = replies
        states = {bytes_text(k): bytes_text(v) for k, v in (registry or {}).items()}
        self._version = int(version or 0)
        self._maintained = sorted(states)
        self._ready = frozenset(f for f, state in states.items() if state == "ready")

    @property
    def indexed_fields(self) -> frozenset[str]:
        """Fields whose indexes queries use (dotted paths)."""
        return self._ready

    # -- public API additions -------------------------------------------------------------
    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Index fields (names, ``'a__b'`` paths or tuples of them); builds over existing records.

        A tuple indexes each of its fields on its own: Redis has no compound
        sorted sets, and a query combines single-field lookups anyway.
        """
        wanted: list[str] = []
        for spec in fields:
            names = list(spec) if isinstance(spec, (tuple, list)) else [spec]
            for name in names:
                field = ix.field_name(name)
                if field not in wanted:
                    wanted.append(field)
        new = [f for f in wanted if f not in self._ready]
        if not new:
            return True
        # 1. register (writers maintain them from now on; HSETNX keeps a "ready" one ready)
        commands: list[tuple[int, tuple[Any, ...]]] = [
            (self._meta_slot, ("HSETNX", self._meta.registry, f, "building")) for f in new]
        commands.append((self._meta_slot, ("INCR", self._meta.version)))
        replies = self._nodes.read(commands + self._registry_commands(), "register an index")
        self._load_registry(replies[-2:])
        new = [f for f in new if f not in self._ready]  # another client may have built some
        if not new:
            return True
        # 2. make every bucket demand the new registry version: writers on an older one retry
        version = replies[len(commands) - 1]  # the INCR
        self._nodes.read([(self._layout.slots[b], ("EVAL", BUMP, 1, self._layout.bucket_version(b), version))
                          for b in range(self._layout.shards)], "register an index")
        # 3. add entries for the records already there, batch by batch, each batch a
        # compare-and-set so a record changed meanwhile is read again
        for batch in self._scan_raw():
            self._write([(key, _Keep(raw)) for key, raw in batch], build=frozenset(new))
        # 4. only now may queries use them
        replies = self._nodes.read(
            [(self._meta_slot, ("HSET", self._meta.registry, f, "ready")) for f in new]
            + self._registry_commands(), "register an index")
        self._load_registry(replies[-2:])
        return True

    def verify_indexes(self) -> list[str]:
        """Compare every index structure with the records; returns the differences found.

        An operational check (and the test suite's): reads everything, so
        run it when the prefix is quiet. An empty list means consistent.
        """
        layout = self._layout
        fields = list(self._maintained)
        expected: dict[int, set[tuple[str, str, bytes, float | bytes | None]]] = {
            b: set() for b in range(layout.shards)}

        def normal(kind: str, member: bytes, argument: Any) -> float | bytes | None:
            if kind in ("n", "b"):
                return float(argument)
            return argument if kind == "N" else None

        for page in self._scan_members():
            for key, raw in self._mget_pages(page):
                pk = text_bytes(key)
                bucket = layout.bucket(pk)
                record = self._parse_quietly(raw)
                for field, (kind, member, argument) in ix.entries(record, fields, pk).items():
                    expected[bucket].add((field, kind, member, normal(kind, member, argument)))
        commands = []
        labels = []
        for bucket in range(layout.shards):
            for field in fields:
                for kind in ix.KINDS:
                    key = layout.index(bucket, field, kind)
                    if kind == "a":
                        command: tuple[Any, ...] = ("SMEMBERS", key)
                    elif kind == "N":
                        command = ("HGETALL", key)
                    else:
                        command = ("ZRANGE", key, 0, -1, "WITHSCORES")
                    commands.append((layout.slots[bucket], command))
                    labels.append((bucket, field, kind))
        actual: dict[int, set[tuple[str, str, bytes, float | bytes | None]]] = {
            b: set() for b in range(layout.shards)}
        for (bucket, field, kind), reply in zip(labels, self._nodes.read(commands, "verify indexes")):
            if kind == "a":
                pairs: Iterable[tuple[bytes, Any]] = ((m, None) for m in reply)
            elif kind == "N":
                pairs = reply.items()
            elif reply and isinstance(reply[0], (list, tuple)):
                pairs = [(m, s) for m, s in reply]
            else:
                pairs = zip(reply[::2], reply[1::2])
            for member, argument in pairs:
                actual[bucket].add((field, kind, member, normal(kind, member, argument)))
        problems = []
        for bucket in range(layout.shards):
            for entry in sorted(expected[bucket] - actual[bucket], key=repr):
                problems.append(f"bucket {bucket}: missing index entry {entry!r}")
            for entry in sorted(actual[bucket] - expected[bucket], key=repr):
                problems.append(f"bucket {bucket}: stale index entry {entry!r}")
        return problems

    def drop(self) -> None:
        """Remove every key of this prefix, index definitions and counters included."""
        self._clear(everything=True)
        self._version = 0
        self._maintained = []
        self._ready = frozenset()

    def get_query(self, doc_class: type["Document"] | None = None) -> Any:
        self._declare(doc_class)
        return super().get_query(doc_class)

    def save(self, doc_class: type["Document"] | None, data: Mapping[str, Any],
             primary_key: str | None = None) -> str:
        self._declare(doc_class)
        return super().save(doc_class, data, primary_key)

    def save_many(self, documents: Iterable["Document"]) -> list[str]:
        docs = list(documents)
        for doc in docs:
            self._declare(type(doc))
        wanted = sum(1 for doc in docs if not (doc._storage is self and doc.pk is not None))
        with self._lock:
            if wanted > len(self._pool) + 1:
                self._reserve_keys(wanted - len(self._pool))
        return super().save_many(docs)

    def _declare(self, doc_class: type["Document"] | None) -> None:
        """Ensure a class's ``indexes`` the first time this storage sees the class."""
        if doc_class is None or doc_class in self._declared:
            return
        specs = getattr(doc_class, "indexes", None) or []
        if specs:
            self.ensure_index(*specs)
        self._declared.add(doc_class)

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["StorageAdapter"]:
        """All writes of the block, or none of them if it raises.

        Redis cannot roll back, so this keeps an undo log in this process and
        writes the old values back (in one batch) when the block fails. It
        protects against exceptions, not against this process dying midway,
        and other clients may see the block's writes before they are undone.
        """
        with self._tx_lock:
            self._undo.append([])
            try:
                yield self
            except BaseException:
                log = self._undo.pop()
                before: dict[str, Any] = {}
                for key, value in log:
                    before.setdefault(key, value)  # the first entry is the state before the block
                if before:
                    try:
                        self._write(list(before.items()), wait=False)
                    except ConnectionError as undo_error:
                        raise ConnectionError(
                            f"redis: lost the connection while undoing a failed block's writes "
                            f"({len(before)} records in {self.describe_location()}); some may "
                            f"remain: {undo_error}") from undo_error
                    except Exception as undo_error:
                        raise TransactionError(
                            f"redis: the failed block's writes could not all be undone "
                            f"({len(before)} records in {self.describe_location()}): {undo_error}"
                        ) from undo_error
                raise
            else:
                log = self._undo.pop()
                if self._undo:
                    self._undo[-1].extend(log)

    def _put(self, key: str, record: Record) -> None:
        self._write([(key, record)], remember=True)

    def _put_many(self, items: Sequence[tuple[str, Record]]) -> None:
        self._write(items, remember=True)

    def _delete_one(self, key: str) -> bool:
        return self._write([(key, None)], remember=True)[key]

    def _delete_keys(self, keys: Sequence[str]) -> int:
        with self.transaction():
            existed = self._write([(key, None) for key in keys], remember=True)
        return sum(existed.values())

    # -- hooks -----------------------------------------------------------------------------------
    def _parse(self, key: str | bytes, raw: bytes) -> Record:
        try:
            return loads(raw)  # type: ignore[no-any-return]
        except ValueError as exc:
            shown = bytes_text(key) if isinstance(key, bytes) else key
            raise StorageError(
                f"redis: record {shown!r} in {self.describe_location()} is not doqu JSON: {exc}") from exc

    def _load(self, key: str) -> Record | None:
        pk = text_bytes(key)
        bucket = self._layout.bucket(pk)
        raw = self._nodes.one(self._layout.slots[bucket], "GET", self._layout.record(bucket, pk))
        return self._parse(key, raw) if raw is not None else None

    def _load_many(self, keys: Sequence[str]) -> list[Record | None]:
        raws = self._fetch_raw(keys)
        return [self._parse(key, raws[key]) if raws[key] is not None else None for key in keys]

    def _fetch_raw(self, keys: Iterable[str], action: str = "read") -> dict[str, bytes | None]:
        """Stored JSON per key (None: no record), one MGET per bucket and batch."""
        layout = self._layout
        by_bucket: dict[int, list[str]] = {}
        for key in keys:
            by_bucket.setdefault(layout.bucket(text_bytes(key)), []).append(key)
        commands: list[tuple[int, tuple[Any, ...]]] = []
        chunks: list[list[str]] = []
        for bucket, members in by_bucket.items():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                chunks.append(chunk)
                commands.append((layout.slots[bucket], (
                    "MGET", *(layout.record(bucket, text_bytes(k)) for k in chunk))))
        found: dict[str, bytes | None] = {}
        for chunk, values in zip(chunks, self._nodes.read(commands, action) if commands else []):
            found.update(zip(chunk, values))
        return found

    def _store(self, key: str, record: Record) -> None:
        self._write([(key, record)])

    def _remove(self, key: str) -> bool:
        return self._write([(key, None)])[key]

    def _keys(self) -> Iterator[str]:
        for page in self._scan_members():
            for _, members in page:
                for member in members:
                    yield bytes_text(member)

    def _count(self) -> int:
        layout = self._layout
        return sum(self._nodes.read([(layout.slots[b], ("SCARD", layout.keyset(b)))
                                     for b in range(layout.shards)], "count"))

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        for batch in self._scan_raw():
            for key, raw in batch:
                yield key, self._parse(key, raw)

    def _scan_members(self) -> Iterator[list[tuple[int, list[bytes]]]]:
        """Rounds of (bucket, new keys): one SSCAN step of every unfinished bucket, each key once."""
        layout = self._layout
        cursors = {b: 0 for b in range(layout.shards)}
        seen: dict[int, set[bytes]] = {b: set() for b in cursors}
        while cursors:
            buckets = list(cursors)
            replies = self._nodes.read([
                (layout.slots[b], ("SSCAN", layout.keyset(b), cursors[b], "COUNT", self.batch_size))
                for b in buckets], "scan")
            page = []
            for bucket, (cursor, members) in zip(buckets, replies):
                fresh = [m for m in members if m not in seen[bucket]]
                seen[bucket].update(fresh)
                if int(cursor) == 0:
                    del cursors[bucket]
                    del seen[bucket]
                else:
                    cursors[bucket] = int(cursor)
                if fresh:
                    page.append((bucket, fresh))
            if page:
                yield page

    def _scan_raw(self) -> Iterator[list[tuple[str, bytes]]]:
        """Batches of (key, stored JSON): SSCAN steps, then one MGET per bucket."""
        for page in self._scan_members():
            yield self._mget_pages(page)

    def _mget_pages(self, pages: list[tuple[int, list[bytes]]]) -> list[tuple[str, bytes]]:
        layout = self._layout
        replies = self._nodes.read([
            (layout.slots[b], ("MGET", *(layout.record(b, m) for m in members))) for b, members in pages])
        out = []
        for (_, members), values in zip(pages, replies):
            out.extend((bytes_text(m), v) for m, v in zip(members, values) if v is not None)
        return out

    def _clear(self, everything: bool = False) -> None:
        layout = self._layout
        for page in self._scan_members():
            self._nodes.read([(layout.slots[b], ("DEL", *(layout.record(b, m) for m in members)))
                              for b, members in page], "clear")
        commands = [(layout.slots[b], ("DEL", layout.keyset(b), *layout.index_keys(b, self._maintained),
                                       *([layout.bucket_version(b)] if everything else [])))
                    for b in range(layout.shards)]
        meta = self._meta.meta_keys() if everything else [self._meta.seq]
        self._nodes.read(commands + [(self._meta_slot, ("DEL", *meta))], "clear")
        with self._lock:
            self._pool.clear()
            self._fresh.clear()

    # -- keys -------------------------------------------------------------------------------------
    def _new_key(self) -> str:
        with self._lock:
            if not self._pool:
                self._reserve_keys(1)
            key = self._pool.popleft()
            self._fresh.add(key)
            return key

    def _reserve_keys(self, count: int) -> None:
        """Take ``count`` numbers from the counter; keep those no record uses yet."""
        layout = self._layout
        while count > 0:
            end = int(self._nodes.one(self._meta_slot, "INCRBY", self._meta.seq, count, action="new key"))
            keys = [str(n) for n in range(end - count + 1, end + 1)]
            by_bucket: dict[int, list[str]] = {}
            for key in keys:
                by_bucket.setdefault(layout.bucket(key.encode()), []).append(key)
            replies = self._nodes.read([
                (layout.slots[b], ("EVAL", TAKEN, 1, layout.keyset(b), ",".join(members)))
                for b, members in by_bucket.items()], "new key")
            taken = {bytes_text(key) for reply in replies for key in reply}
            free = [key for key in keys if key not in taken]
            self._pool.extend(free)
            count -= len(free)

    # -- writing ---------------------------------------------------------------------------------
    def _write(self, items: Iterable[tuple[str, Any]], *, remember: bool = False,
               build: frozenset[str] = frozenset(), wait: bool = True) -> dict[str, bool]:
        """Apply (key, record | stored bytes | None to delete | _Keep) atomically per bucket batch.

        Returns for each key whether a record existed before. With
        ``remember``, each replaced value goes to the open transaction's undo log.
        """
        final: dict[str, Any] = {}
        for key, value in items:
            final[key] = value  # the last write of a key wins, as if applied in order
        if not final:
            return {}
        new: dict[str, Any] = {}
        olds: dict[str, bytes | None] = {}
        given = {key: value for key, value in final.items() if isinstance(value, dict)}
        fetch = []
        for key, value in final.items():
            if isinstance(value, _Keep):
                new[key] = value
                olds[key] = value.raw
                continue
            if value is None:
                new[key] = None
            elif isinstance(value, bytes):
                new[key] = bytes(value)
            else:
                new[key] = _dumps(value)
            if value is not None and key in self._fresh:
                olds[key] = None  # generated just now and checked unused: nothing to read back
            else:
                fetch.append(key)
        self._fresh.difference_update(final)
        if fetch:
            olds.update(self._fetch_raw(fetch, "save"))
        layout = self._layout
        pks = {key: text_bytes(key) for key in final}
        todo = dict.fromkeys(final)  # insertion-ordered set
        existed: dict[str, bool] = {}
        log = self._undo[-1] if remember and self._undo else None
        wait_for = (self.wait_replicas, self.wait_timeout) if wait and self.wait_replicas else None
        for _ in range(_MAX_ATTEMPTS):
            by_bucket: dict[int, list[str]] = {}
            for key in todo:
                by_bucket.setdefault(layout.bucket(pks[key]), []).append(key)
            commands: list[tuple[int, tuple[Any, ...]]] = []
            chunks: list[list[str]] = []
            for bucket, keys in by_bucket.items():
                for start in range(0, len(keys), self.batch_size):
                    chunk = keys[start:start + self.batch_size]
                    chunks.append(chunk)
                    commands.append((layout.slots[bucket],
                                     self._write_command(bucket, chunk, pks, olds, new, given, build)))
            replies, errors = self._nodes.write(commands, wait_for, "save")
            stale = 0
            conflicted: list[str] = []
            failure: Exception | None = None
            for chunk, reply, error in zip(chunks, replies, errors):
                if reply is not MISSING:
                    status = int(reply[0])
                    if status == 0:
                        for key in chunk:
                            old = olds[key]
                            existed[key] = old is not None
                            del todo[key]
                            if log is not None and not (old is None and new[key] is None):
                                log.append((key, _Raw(old) if old is not None else None))
                    elif status == -1:
                        stale = max(stale, int(reply[1]))
                    else:
                        conflicted.extend(chunk[int(i) - 1] for i in reply)
                if error is not None and failure is None:
                    failure = error
            if failure is not None:
                raise failure
            if not todo:
                return existed
            if stale:
                self._load_registry()
                if self._version < stale:
                    raise StorageError(
                        f"redis: {self.describe_location()} has index data of registry version "
                        f"{stale} but its registry is at {self._version} (were its meta keys "
                        f"deleted?); drop() the prefix or restore {self._meta.version!r}")
            if conflicted:
                current = self._fetch_raw(conflicted, "save")
                for key in conflicted:
                    olds[key] = current[key]
                    if isinstance(new[key], _Keep):
                        if current[key] is None:  # deleted meanwhile: nothing to index
                            del todo[key]
                        else:
                            new[key] = _Keep(current[key])
        raise StorageError(
            f"redis: gave up saving {len(todo)} records in {self.describe_location()} after "
            f"{_MAX_ATTEMPTS} attempts: other clients keep changing them")

    def _write_command(self, bucket: int, chunk: list[str], pks: dict[str, bytes],
                       olds: dict[str, bytes | None], new: dict[str, Any],
                       given: dict[str, Record], build: frozenset[str]) -> tuple[Any, ...]:
        layout = self._layout
        keys: list[bytes] = [layout.bucket_version(bucket), layout.keyset(bucket)]
        position: dict[bytes, int] = {}

        def at(key: bytes) -> int:
            found = position.get(key)
            if found is None:
                keys.append(key)
                found = position[key] = len(keys)
            return found

        parts: list[bytes] = []
        fields = self._maintained
        record_key = layout.record
        for key in chunk:
            pk = pks[key]
            old, value = olds[key], new[key]
            if isinstance(value, _Keep):
                mode, payload = b"K", b""
            elif value is None:
                mode, payload = b"D", b""
            else:
                mode, payload = b"S", value
            sha = _sha(old)
            keys.append(record_key(bucket, pk))
            parts += [_U32x2(len(keys), len(pk)), pk, _U32(len(sha)), sha, mode, _U32(len(payload)), payload]
            if fields:
                ops = self._index_ops(bucket, pk, old, value, given.get(key), fields, build)
                parts.append(_U32(len(ops)))
                for code, target, member, argument in ops:
                    parts += [code, _U32x2(at(target), len(member)), member, _U32(len(argument)), argument]
            else:
                parts.append(_NO_OPS)
        return ("EVAL", WRITE, len(keys), *keys, self._version, len(chunk), b"".join(parts))

    def _index_ops(self, bucket: int, pk: bytes, old: bytes | None, value: Any, record: Record | None,
                   fields: list[str], build: frozenset[str]) -> list[tuple[bytes, bytes, bytes, bytes]]:
        """(code, key, member, argument) changes that take the entries from ``old`` to ``value``.

        ``record`` is the new value as given, if it was given as a dict: its
        entries equal those of its JSON read back, without parsing it again.
        """
        old_record = self._parse_quietly(old)
        if isinstance(value, _Keep):
            new_record = old_record
        elif value is None:
            new_record = None
        elif record is not None:
            new_record = record
        else:
            new_record = self._parse_quietly(value)
        before = ix.entries(old_record, fields, pk)
        after = ix.entries(new_record, fields, pk)
        index_key = self._layout.index
        ops = []
        for field in fields:
            was, now = before.get(field), after.get(field)
            if field in build:
                was = None  # being built: add the entry whatever is there
            if was == now:
                continue
            if was is not None and not (now is not None and was[:2] == now[:2] and was[0] in "nbN"):
                ops.append((_REMOVE[was[0]], index_key(bucket, field, was[0]), was[1], b""))
            if now is not None:
                ops.append((_ADD[now[0]], index_key(bucket, field, now[0]), now[1], now[2] or b""))
        return ops

    def _parse_quietly(self, raw: bytes | None) -> Any:
        if raw is None:
            return None
        try:
            return loads(raw)
        except ValueError:
            return None  # not doqu JSON: it has no index entries of ours
