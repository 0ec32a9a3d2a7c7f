"""MongoDB's API on mongomock (a stand-in: no MongoDB server runs here), both sides in-process.

The raw side is the pymongo API (``insert_many``, ``find``, ``count_documents``,
``distinct``, ``create_index``) called on a mongomock client of its own.
mongomock is a pure-Python imitation: it evaluates every filter in Python
and ignores indexes for queries, so the "indexed" steps scan on both sides,
and the times say how doqu's MongoDB backend code performs, never how a
MongoDB server would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from doqu import get_db
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec, package_version


class RawMongo(Contestant):
    name = "raw"
    label = "pymongo API on mongomock"
    #: mongomock accepts create_index but answers every query by a scan.
    has_indexes = False

    def __init__(self) -> None:
        import mongomock

        self.client = mongomock.MongoClient(tz_aware=True)
        self.coll = self.client["bench"]["people"]
        self.next = 0

    def _key(self) -> str:
        self.next += 1
        return str(self.next)

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        docs = [{"_id": self._key(), **r} for r in records]
        self.coll.insert_many(docs)
        return [d["_id"] for d in docs]

    def save(self, record: dict[str, Any]) -> str:
        key = self._key()
        self.coll.replace_one({"_id": key}, {"_id": key, **record}, upsert=True)
        return key

    def get(self, key: str) -> Any:
        return self.coll.find_one({"_id": key})

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        found = {d["_id"]: d for d in self.coll.find({"_id": {"$in": list(keys)}})}
        return [found[k] for k in keys]

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return list(self.coll.find({field: value}))

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        return list(self.coll.find({field: {"$gte": low, "$lt": high}}))

    def top(self, field: str, limit: int) -> list[Any]:
        return list(self.coll.find().sort(field, -1).limit(limit))

    def count_eq(self, field: str, value: Any) -> int:
        return int(self.coll.count_documents({field: value}))

    def values(self, field: str) -> list[Any]:
        return sorted(self.coll.distinct(field))

    def index(self, fields: Sequence[str]) -> None:
        for field in fields:
            self.coll.create_index(field)

    def update(self, key: str) -> None:
        doc = self.coll.find_one({"_id": key})
        doc["age"] += 1
        self.coll.replace_one({"_id": key}, doc)

    def delete(self, key: str) -> None:
        self.coll.delete_one({"_id": key})

    def close(self) -> None:
        self.client.close()


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    import mongomock

    client = mongomock.MongoClient(tz_aware=True)
    db = get_db({"backend": "mongodb", "client": client, "database": "bench", "collection": "people"})

    def cleanup() -> None:
        try:
            db.disconnect()
        finally:
            client.close()

    contestant = DoquContestant(db, cleanup)
    contestant.has_indexes = False  # mongomock ignores them for queries
    return contestant


def _unavailable() -> str | None:
    import importlib.util

    for package, extra in (("pymongo", "mongodb"), ("mongomock", "test")):
        if importlib.util.find_spec(package) is None:
            return f"the package {package!r} is not installed (pip install 'doqu[{extra}]')"
    return None


ENGINE = EngineSpec(
    name="mongodb", title="MongoDB API (mongomock)", raw_label="pymongo API on mongomock", metric="cpu",
    open_doqu=_open_doqu, open_raw=lambda workdir, env: RawMongo(), unavailable=_unavailable,
    versions=lambda env: {"mongomock": package_version("mongomock"), "pymongo": package_version("pymongo")},
    stand_in="mongomock (a pure-Python imitation of a MongoDB server, in this process; it ignores "
    "indexes for queries)",
    default_sizes=(2_000,),
    notes=["runs at 2,000 documents only by default: mongomock scans the whole collection for "
           "every lookup, even by _id, so each get, save and update costs O(N) and larger sizes "
           "measure mongomock's scans (quadratic bulk saves: doqu saves by upsert)"],
)
