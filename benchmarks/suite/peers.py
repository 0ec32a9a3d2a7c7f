"""TinyDB, the peer of the embedded engines: on its in-memory storage and on its JSON file.

Both run with the query cache off (``cache_size=0``), so repeated queries
do their work every time. The JSON file storage rereads (and for writes
rewrites) the whole file on every operation, so it runs one round of each
operation; like every contestant, a per-call operation that overruns its time
budget is timed on the calls done and scaled (the memory storage rebuilds
the whole table on every write, so its writes are scaled too). TinyDB has no indexes: its
"indexed" steps scan again. Its document ids are ints; keys are handed
around as their text, like doqu's.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any, Sequence

from suite.contestants import Contestant


class TinyContestant(Contestant):
    has_indexes = False

    def __init__(self, db: Any, name: str, label: str) -> None:
        from tinydb import Query

        self.db = db
        self.table = db.table("people", cache_size=0)
        self.Query = Query
        self.name = name
        self.label = label

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        return [str(i) for i in self.table.insert_multiple(records)]

    def save(self, record: dict[str, Any]) -> str:
        return str(self.table.insert(record))

    def get(self, key: str) -> Any:
        return self.table.get(doc_id=int(key))

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        found = {doc.doc_id: doc for doc in self.table.get(doc_ids=[int(k) for k in keys])}
        return [found[int(k)] for k in keys]

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return self.table.search(self.Query()[field] == value)

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        q = self.Query()[field]
        return self.table.search((q >= low) & (q < high))

    def top(self, field: str, limit: int) -> list[Any]:
        return heapq.nlargest(limit, (d for d in self.table.all() if field in d), key=lambda d: d[field])

    def count_eq(self, field: str, value: Any) -> int:
        return self.table.count(self.Query()[field] == value)

    def values(self, field: str) -> list[Any]:
        return sorted({d[field] for d in self.table.all() if field in d})

    def index(self, fields: Sequence[str]) -> None:
        pass

    def update(self, key: str) -> None:
        doc = self.table.get(doc_id=int(key))
        doc["age"] += 1
        self.table.update(doc, doc_ids=[int(key)])

    def delete(self, key: str) -> None:
        self.table.remove(doc_ids=[int(key)])

    def close(self) -> None:
        self.db.close()


def tinydb_memory() -> TinyContestant | None:
    try:
        from tinydb import TinyDB
        from tinydb.storages import MemoryStorage
    except ImportError:
        return None
    peer = TinyContestant(TinyDB(storage=MemoryStorage), "tinydb-memory", "TinyDB, MemoryStorage")
    return peer


def tinydb_file(path: Path) -> TinyContestant | None:
    try:
        from tinydb import TinyDB
    except ImportError:
        return None
    peer = TinyContestant(TinyDB(str(path)), "tinydb-json", "TinyDB, JSON file storage")
    peer.max_rounds = 1
    return peer


def version() -> str:
    from suite.engines import package_version

    return package_version("tinydb")
