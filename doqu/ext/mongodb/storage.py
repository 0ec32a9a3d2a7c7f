"""The MongoDB storage: one collection, string keys in ``_id``, queries as filter documents.

Settings (a dict, keywords, or ``mongodb://user:pw@host:27017/app?collection=docs``):

``database`` (required), ``collection`` (default ``documents``), ``host``
(default ``localhost``; ``h1:27017,h2:27017`` for several), ``port``,
``user``, ``password``, ``srv`` (true: ``host`` is a DNS seed list name, as in
``mongodb+srv://``), ``timeout`` (seconds to find a server, default 5),
``transactions`` (``auto``: real transactions where the server has them, the
in-memory undo log elsewhere; ``true``: require them; ``false``: never), or
``client``: a ready pymongo-compatible client (shared with the application,
or a ``mongomock.MongoClient`` in tests). Any other setting is a MongoDB URI
option (``replicaSet``, ``authSource``, ``tls``...) passed to the client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import threading
from typing import Any, ClassVar, Iterator, Mapping, Sequence
from urllib.parse import quote, quote_plus

from doqu.backend_base import BaseStorageAdapter, Features
from doqu.errors import (
    ConfigurationError,
    ConnectionError,
    DoquError,
    QueryError,
    StorageError,
    TransactionError,
)
from doqu.ext.mongodb.compiler import field_path
from doqu.ext.mongodb.converters import (
    MongoConverterManager,
    canonical_value,
    decode_record,
    encode_record,
)
from doqu.ext.mongodb.query import QueryAdapter, StandInGap
from doqu.query.conditions import parse_lookup

__all__ = ["StorageAdapter"]

log = logging.getLogger("doqu.ext.mongodb")

DEFAULT_COLLECTION = "documents"
INSTALL = "pip install 'doqu[mongodb]'"
_OWN_SETTINGS = {"backend", "host", "port", "user", "password", "database", "collection",
                 "client", "transactions", "timeout", "srv"}
_BATCH = 1000
_COUNTER_ID = "next_key"


def _driver() -> Any:
    try:
        return importlib.import_module("pymongo")
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"the mongodb backend needs the package 'pymongo': {INSTALL}") from exc


def _check_name(value: Any, what: str) -> str:
    bad = '/\\. "$\x00' if what == "database" else "$\x00"
    if not isinstance(value, str) or not value or any(c in value for c in bad) or (
            what == "collection" and value.startswith("system.")):
        raise ConfigurationError(
            f"mongodb: invalid {what} name {value!r}: a non-empty name without "
            f"{' '.join(repr(c) for c in bad)}" + (" not starting with 'system.'"
                                                   if what == "collection" else ""))
    return value


def _transactions_mode(value: Any) -> bool | None:
    """``None`` for auto."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"mongodb: setting 'transactions' is auto, true or false, got {value!r}")


class StorageAdapter(BaseStorageAdapter):
    backend_name = "mongodb"
    converter_manager = MongoConverterManager()
    features = Features(durable_transactions=False, persistent=True, indexes=True,
                        multi_process=True)
    required_settings = ("database",)
    known_settings: ClassVar[tuple[str, ...] | None] = None  # the rest are URI options
    setting_types: ClassVar[dict[str, type]] = {"port": int, "timeout": float, "srv": bool}

    query_adapter = QueryAdapter

    def __init__(self, **settings: Any) -> None:
        self._local = threading.local()
        self._key_lock = threading.Lock()
        self._key_block: list[str] = []
        self._block_size = 8
        super().__init__(**settings)

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> None:
        pymongo = _driver()
        s = self.settings
        self._database_name = _check_name(s.get("database"), "database")
        self._collection_name = _check_name(s.get("collection") or DEFAULT_COLLECTION, "collection")
        timeout = float(s.get("timeout") or 5)
        options = {k: v for k, v in s.items() if k not in _OWN_SETTINGS}
        mode = _transactions_mode(s.get("transactions", "auto"))
        client = s.get("client")
        if client is not None:
            given = sorted(k for k in ("host", "port", "user", "password", "srv", *options)
                           if s.get(k) is not None)
            if given:
                raise ConfigurationError(
                    f"mongodb: with a ready 'client', the connection settings {', '.join(given)} "
                    f"do not apply; configure the client instead")
            self._owns_client = False
        else:
            kwargs: dict[str, Any] = {"tz_aware": True, "appname": "doqu",
                                      "serverSelectionTimeoutMS": int(timeout * 1000),
                                      "connectTimeoutMS": int(timeout * 1000), **options}
            try:
                client = pymongo.MongoClient(self._uri(), **kwargs)
            except (pymongo.errors.PyMongoError, TypeError, ValueError) as exc:
                raise ConfigurationError(f"mongodb: bad settings for {self.describe_location()}: "
                                         f"{exc}") from exc
            self._owns_client = True
        self._client = client
        self.stand_in = type(client).__module__.split(".")[0] == "mongomock"
        self._db = client[self._database_name]
        self._coll = self._db[self._collection_name]
        self._counters = self._db[f"{self._collection_name}__doqu_counters"]
        self._read_options: dict[str, Any] = {}
        supported = False
        try:
            if not self.stand_in:
                supported = self._probe()
        except BaseException:
            self._close_client()
            raise
        if mode is True and not supported:
            self._close_client()
            raise TransactionError(
                f"mongodb: transactions=true, but {self.describe_location()} has none "
                f"(they need a replica set or a sharded cluster); use transactions=auto "
                f"to fall back to doqu's in-process undo log")
        self._real_transactions = supported and mode is not False
        self.features = dataclasses.replace(  # type: ignore[misc]
            type(self).features, durable_transactions=self._real_transactions)

    def _probe(self) -> bool:
        """Reach the server; note its transactions and the collection's collation."""
        pymongo = _driver()
        with self._errors("connect"):
            try:
                hello = self._client.admin.command("hello")
            except pymongo.errors.OperationFailure:
                hello = self._client.admin.command("isMaster")
            listed = list(self._db.list_collections(filter={"name": self._collection_name}))
        collation = (listed[0].get("options", {}).get("collation") if listed else None) or {}
        if collation and collation.get("locale") != "simple":
            # a default collation would compare strings by locale; doqu's order is binary
            self._read_options["collation"] = {"locale": "simple"}
        sessions = hello.get("logicalSessionTimeoutMinutes") is not None
        supported = sessions and ("setName" in hello or hello.get("msg") == "isdbgrid")
        if supported and not listed:  # servers before 4.4 cannot create it inside a transaction
            with contextlib.suppress(pymongo.errors.CollectionInvalid, pymongo.errors.OperationFailure):
                self._db.create_collection(self._collection_name)
        return bool(supported)

    def _uri(self) -> str:
        s = self.settings
        host = str(s.get("host") or "localhost")
        if s.get("port") is not None and "," not in host and ":" not in host:
            host = f"{host}:{int(s['port'])}"
        auth = ""
        if s.get("user") is not None:
            auth = quote_plus(str(s["user"]))
            if s.get("password") is not None:
                auth += ":" + quote_plus(str(s["password"]))
            auth += "@"
        scheme = "mongodb+srv" if s.get("srv") else "mongodb"  # DNS seed list (e.g. Atlas)
        return f"{scheme}://{auth}{host}/{quote(self._database_name, safe='')}"

    def _close_client(self) -> None:
        if getattr(self, "_owns_client", False):
            with contextlib.suppress(Exception):
                self._client.close()

    def _disconnect(self) -> None:
        self._local.session = None
        self._key_block = []
        self._close_client()

    def describe_location(self) -> str:
        s = self.settings
        where = f"{s.get('database')}.{s.get('collection') or DEFAULT_COLLECTION}"
        if s.get("client") is not None:
            kind = type(s["client"]).__module__.split(".")[0]
            return f"mongodb ({kind} client) {where}"
        host = str(s.get("host") or "localhost")
        if s.get("port") is not None and "," not in host and ":" not in host:
            host = f"{host}:{s['port']}"
        user = f"{s['user']}@" if s.get("user") else ""
        return f"{'mongodb+srv' if s.get('srv') else 'mongodb'}://{user}{host}/{where}"

    @property
    def identity(self) -> Any:
        s = self.settings
        host = str(s.get("host") or "localhost")
        port = s.get("port") or (None if ":" in host or "," in host else 27017)
        server = id(s["client"]) if s.get("client") is not None else (host, port)
        return ("mongodb", server, s.get("database"), s.get("collection") or DEFAULT_COLLECTION)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Driver exceptions → the most specific doqu error, naming backend and address."""
        pymongo = _driver()
        import bson.errors

        errors = pymongo.errors
        try:
            yield
        except DoquError:
            raise
        except errors.ConnectionFailure as exc:
            detail = str(exc).split(", Timeout:")[0][:300]
            raise ConnectionError(
                f"mongodb: cannot reach {self.describe_location()} ({action}): {detail}"
            ) from exc
        except errors.OperationFailure as exc:
            if exc.code == 18:
                raise ConnectionError(f"mongodb: authentication failed for "
                                      f"{self.describe_location()}") from exc
            raise StorageError(f"mongodb: {action} failed in {self.describe_location()}: "
                               f"{exc}") from exc
        except (errors.ConfigurationError, errors.InvalidURI) as exc:
            raise ConfigurationError(f"mongodb: {exc}") from exc
        except errors.DocumentTooLarge as exc:
            raise StorageError(f"mongodb: record too large for {self.describe_location()} "
                               f"(16 MB per document): {exc}") from exc
        except (errors.PyMongoError, bson.errors.BSONError) as exc:
            raise StorageError(f"mongodb: {action} failed in {self.describe_location()}: "
                               f"{exc}") from exc
        except NotImplementedError as exc:
            if self.stand_in:
                raise StandInGap(str(exc)) from exc
            raise

    def _opts(self, read: bool = False) -> dict[str, Any]:
        """Session (inside a transaction) and collation options for one call."""
        out: dict[str, Any] = dict(self._read_options) if read else {}
        session = getattr(self._local, "session", None)
        if session is not None:
            out["session"] = session
        return out

    # -- keys and records ------------------------------------------------------------------
    @staticmethod
    def _id_filter(key: str) -> dict[str, Any]:
        """Also finds a record whose ``_id`` is the ObjectId spelled by ``key`` (foreign data)."""
        from bson.objectid import ObjectId

        if ObjectId.is_valid(key):
            return {"_id": {"$in": [key, ObjectId(key)]}}
        return {"_id": key}

    def _load(self, key: str) -> dict[str, Any] | None:
        with self._errors("read"):
            doc = self._coll.find_one(self._id_filter(key), **self._opts())
        return decode_record(doc) if doc is not None else None

    def _load_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _BATCH):
            ids: list[Any] = []
            for key in keys[start:start + _BATCH]:
                condition = self._id_filter(key)["_id"]
                ids.extend(condition["$in"] if isinstance(condition, dict) else [condition])
            with self._errors("read"):
                for doc in self._coll.find({"_id": {"$in": ids}}, **self._opts()):
                    key = str(doc["_id"])
                    if isinstance(doc["_id"], str) or key not in found:
                        found[key] = decode_record(doc)
        return [found.get(k) for k in keys]

    def _store(self, key: str, record: dict[str, Any]) -> None:
        from bson.objectid import ObjectId

        doc = encode_record(record)
        with self._errors("write"):
            if ObjectId.is_valid(key):  # keep a foreign record's ObjectId
                if self._coll.replace_one({"_id": ObjectId(key)}, doc, **self._opts()).matched_count:
                    return
            self._coll.replace_one({"_id": key}, {"_id": key, **doc}, upsert=True, **self._opts())

    def _store_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        from bson.objectid import ObjectId
        from pymongo import ReplaceOne

        plain = [(k, r) for k, r in items if not ObjectId.is_valid(k)]
        for key, record in items:
            if ObjectId.is_valid(key):
                self._store(key, record)
        if self.stand_in:  # mongomock 4.3 cannot take pymongo>=4.9's ReplaceOne in bulk_write
            for key, record in plain:
                self._store(key, record)
            return
        for start in range(0, len(plain), _BATCH):
            ops = [ReplaceOne({"_id": k}, {"_id": k, **encode_record(r)}, upsert=True)
                   for k, r in plain[start:start + _BATCH]]
            with self._errors("write"):
                self._coll.bulk_write(ops, ordered=True, **self._opts())

    def _put_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if self._undo:  # the undo log's before-images in one query, not one per record
            keys = [k for k, _ in items]
            self._undo[-1].extend(zip(keys, self._load_many(keys)))
        self._store_many(items)

    def _remove(self, key: str) -> bool:
        with self._errors("delete"):
            return bool(self._coll.delete_one(self._id_filter(key), **self._opts()).deleted_count)

    def _keys(self) -> Iterator[str]:
        with self._errors("list keys"):
            for doc in self._coll.find({}, {"_id": 1}, **self._opts()):
                yield str(doc["_id"])

    def _count(self) -> int:
        with self._errors("count"):
            return int(self._coll.count_documents({}, **self._opts()))

    def _clear(self) -> None:
        with self._errors("clear"):
            self._coll.delete_many({}, **self._opts())
            self._counters.delete_many({})
        with self._key_lock:
            self._key_block = []

    def _iter_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._errors("read"):
            for doc in self._coll.find({}, **self._opts()):
                yield str(doc["_id"]), decode_record(doc)

    def _new_key(self) -> str:
        """Numbers from a counter document, reserved in growing blocks; never reused.

        The counter lives in ``<collection>__doqu_counters`` and is updated
        outside any transaction, so concurrent transactions never conflict on
        it and a rolled-back block is simply skipped.
        """
        with self._key_lock:
            while not self._key_block:
                self._reserve_keys()
            return self._key_block.pop(0)

    def _reserve_keys(self) -> None:
        from pymongo import ReturnDocument

        size = self._block_size
        with self._errors("generate a key"):
            counter = self._counters.find_one_and_update(
                {"_id": _COUNTER_ID}, {"$inc": {"n": size}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            high = int(counter["n"])
            candidates = [str(n) for n in range(high - size + 1, high + 1)]
            taken = {doc["_id"] for doc in self._coll.find({"_id": {"$in": candidates}}, {"_id": 1})}
        self._key_block = [k for k in candidates if k not in taken]
        self._block_size = min(size * 2, 512)

    def _canonical(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return canonical_value(dict(record))  # type: ignore[no-any-return]

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator["StorageAdapter"]:
        """A MongoDB multi-document transaction where the server has them.

        Nested blocks, and every block on a server without transactions (a
        standalone server, the mongomock stand-in), use doqu's in-process undo
        log instead: it rolls back on exceptions, not on a crash (see
        ``features.durable_transactions``).
        """
        if not self._real_transactions or getattr(self._local, "session", None) is not None:
            with super().transaction():
                yield self
            return
        with self._tx_lock:
            with self._errors("start a transaction"):
                session = self._client.start_session()
                session.start_transaction()
            self._local.session = session
            try:
                yield self
            except BaseException:
                self._local.session = None
                try:
                    session.abort_transaction()
                except Exception as exc:  # the block's own exception matters more
                    log.warning("mongodb: aborting a transaction failed: %s", exc)
                raise
            else:
                self._local.session = None
                pymongo = _driver()
                try:
                    session.commit_transaction()
                except pymongo.errors.PyMongoError as exc:
                    unknown = exc.has_error_label("UnknownTransactionCommitResult") if hasattr(
                        exc, "has_error_label") else False
                    raise TransactionError(
                        f"mongodb: commit failed in {self.describe_location()}"
                        + (" (outcome unknown)" if unknown else "; nothing was written")
                        + f": {exc}") from exc
            finally:
                self._local.session = None
                session.end_session()

    # -- indexes -------------------------------------------------------------------------------
    def ensure_index(self, *fields: str | Sequence[str]) -> bool:
        """Create an index per field name or tuple of names (``-name`` descends).

        ``db.ensure_index(*Person.indexes)`` creates what a class declares;
        creating an existing index again does nothing.
        """
        specs = []
        for spec in fields:
            names = [spec] if isinstance(spec, str) else list(spec)
            if not names:
                raise QueryError("ensure_index: an empty tuple of field names")
            keys = []
            for name in names:
                if not isinstance(name, str):
                    raise QueryError(f"ensure_index takes field names, got {name!r}")
                bare = name.lstrip("-")
                path, op = parse_lookup(bare)
                if op != "equals" or bare.endswith("__equals"):
                    raise QueryError(f"ensure_index takes field names, not lookups: {name!r}")
                keys.append((field_path(path), -1 if name.startswith("-") else 1))
            specs.append(keys)
        with self._errors("create an index"):
            for keys in specs:
                self._coll.create_index(keys)
        return True

    # -- used by the query ------------------------------------------------------------------------
    def _find(self, filter: dict[str, Any], *, sort: list[tuple[str, int]] | None = None,
              skip: int = 0, limit: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
        """Matching (key, record) pairs; the first batch is fetched before returning."""
        kwargs: dict[str, Any] = {"skip": skip, "limit": limit, **self._opts(read=True)}
        if sort:
            kwargs["sort"] = sort
        with self._errors("query"):
            cursor = self._coll.find(filter, **kwargs)
            first = next(cursor, None)
        return self._rest(first, cursor)

    def _rest(self, first: Any, cursor: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        if first is None:
            return
        yield str(first["_id"]), decode_record(first)
        with self._errors("query"):
            for doc in cursor:
                yield str(doc["_id"]), decode_record(doc)

    def _exists_any(self, filter: dict[str, Any]) -> bool:
        with self._errors("query"):
            return self._coll.find_one(filter, {"_id": 1}, **self._opts(read=True)) is not None

    def _count_matching(self, filter: dict[str, Any]) -> int:
        with self._errors("count"):
            return int(self._coll.count_documents(filter, **self._opts(read=True)))

    def _aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._errors("aggregate"):
            return list(self._coll.aggregate(pipeline, **self._opts(read=True)))

    def _delete_matching(self, filter: dict[str, Any]) -> int:
        with self._errors("delete"):
            return int(self._coll.delete_many(filter, **self._opts(read=True)).deleted_count)

    def _explain(self, filter: dict[str, Any], sort: list[tuple[str, int]] | None) -> Any:
        with self._errors("explain"):
            cursor = self._coll.find(filter, **self._opts(read=True))
            if sort:
                cursor = cursor.sort(sort)
            return cursor.explain()

