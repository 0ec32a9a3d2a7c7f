"""The memory backend against a plain dict of dicts."""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any, Sequence

from doqu import get_db
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec


class RawDict(Contestant):
    """A dict of dicts, filtered with comprehensions: no copies, no types, no checks."""

    name = "raw"
    label = "dict of dicts"
    has_indexes = False

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.next = 0

    def _key(self) -> str:
        self.next += 1
        return str(self.next)

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        keys = []
        for record in records:
            key = self._key()
            self.store[key] = dict(record)
            keys.append(key)
        return keys

    def save(self, record: dict[str, Any]) -> str:
        key = self._key()
        self.store[key] = dict(record)
        return key

    def get(self, key: str) -> Any:
        return self.store[key]

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        return [self.store[k] for k in keys]

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return [r for r in self.store.values() if r.get(field) == value]

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        return [r for r in self.store.values() if field in r and low <= r[field] < high]

    def top(self, field: str, limit: int) -> list[Any]:
        return heapq.nlargest(limit, (r for r in self.store.values() if field in r), key=lambda r: r[field])

    def count_eq(self, field: str, value: Any) -> int:
        return sum(1 for r in self.store.values() if r.get(field) == value)

    def values(self, field: str) -> list[Any]:
        return sorted({r[field] for r in self.store.values() if field in r})

    def index(self, fields: Sequence[str]) -> None:
        pass

    def update(self, key: str) -> None:
        record = self.store[key]
        record["age"] += 1
        self.store[key] = record

    def delete(self, key: str) -> None:
        del self.store[key]


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    db = get_db("memory://")
    return DoquContestant(db, db.disconnect)


def _peers(workdir: Path) -> list[Contestant]:
    from suite.peers import tinydb_memory

    peer = tinydb_memory()
    return [peer] if peer is not None else []


ENGINE = EngineSpec(
    name="memory", title="memory", raw_label="dict of dicts", metric="cpu",
    open_doqu=_open_doqu, open_raw=lambda workdir, env: RawDict(), peers=_peers,
)
