"""The shelve backend against the shelve module holding the same dicts."""

from __future__ import annotations

import dbm
import heapq
import shelve
from pathlib import Path
from typing import Any, Sequence

from doqu import get_db
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec

_COUNTER = "\x00next"


class RawShelve(Contestant):
    """``shelve.open`` (pickle protocol 4, as doqu): records by key, queries by a loop over all."""

    name = "raw"
    label = "shelve module"
    has_indexes = False

    def __init__(self, path: Path) -> None:
        self.shelf: Any = shelve.open(str(path), flag="c", protocol=4)
        self.next = 0

    def _key(self) -> str:
        self.next += 1
        return str(self.next)

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        keys = []
        for record in records:
            key = self._key()
            self.shelf[key] = record
            keys.append(key)
        return keys

    def save(self, record: dict[str, Any]) -> str:
        key = self._key()
        self.shelf[key] = record
        return key

    def get(self, key: str) -> Any:
        return self.shelf[key]

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        return [self.shelf[k] for k in keys]

    def _all(self) -> Any:
        shelf = self.shelf
        return (shelf[k] for k in shelf.keys())

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return [r for r in self._all() if r.get(field) == value]

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        return [r for r in self._all() if field in r and low <= r[field] < high]

    def top(self, field: str, limit: int) -> list[Any]:
        return heapq.nlargest(limit, (r for r in self._all() if field in r), key=lambda r: r[field])

    def count_eq(self, field: str, value: Any) -> int:
        return sum(1 for r in self._all() if r.get(field) == value)

    def values(self, field: str) -> list[Any]:
        return sorted({r[field] for r in self._all() if field in r})

    def index(self, fields: Sequence[str]) -> None:
        pass

    def update(self, key: str) -> None:
        record = self.shelf[key]
        record["age"] += 1
        self.shelf[key] = record

    def delete(self, key: str) -> None:
        del self.shelf[key]

    def close(self) -> None:
        self.shelf.close()


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    db = get_db({"backend": "shelve", "path": str(workdir / "doqu.shelve")})
    return DoquContestant(db, db.disconnect)


def _versions(env: Any) -> dict[str, str]:
    """The dbm module shelve picks here (the first of dbm's candidates that imports)."""
    for name in getattr(dbm, "_names", ()):
        try:
            __import__(name)
        except ImportError:
            continue
        return {"dbm": name}
    return {"dbm": "?"}


ENGINE = EngineSpec(
    name="shelve", title="shelve", raw_label="shelve module", metric="cpu",
    open_doqu=_open_doqu, open_raw=lambda workdir, env: RawShelve(workdir / "raw.shelve"),
    versions=_versions,
)
