"""The memory backend: records in a dict, queries by the shared Python evaluator.

Useful for tests and as the reference every other engine is compared with.
``get_db('memory://')`` or ``get_db({'backend': 'memory'})``. Nothing is
persisted; each storage object is its own namespace.
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any, ClassVar, Iterator, Sequence

from doqu.backend_base import BaseQueryAdapter, BaseStorageAdapter, Features

__all__ = ["StorageAdapter", "QueryAdapter"]


class QueryAdapter(BaseQueryAdapter):
    """Everything runs in the shared Python evaluator."""

    engine_label = "memory: scan every record"


class StorageAdapter(BaseStorageAdapter):
    backend_name = "memory"
    query_adapter = QueryAdapter
    features = Features(persistent=False)
    known_settings: ClassVar[tuple[str, ...] | None] = ()

    def _connect(self) -> None:
        if not hasattr(self, "_records"):
            self._records: dict[str, dict[str, Any]] = {}
            self._counter = itertools.count(1)
            self._lock = threading.RLock()

    def describe_location(self) -> str:
        return f"memory at {id(self):#x}"

    def _load(self, key: str) -> dict[str, Any] | None:
        record = self._records.get(key)
        return copy.deepcopy(record) if record is not None else None

    def _store(self, key: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._records[key] = copy.deepcopy(record)

    def _remove(self, key: str) -> bool:
        with self._lock:
            return self._records.pop(key, None) is not None

    def _keys(self) -> list[str]:
        return list(self._records)

    def _count(self) -> int:
        return len(self._records)

    def _clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._counter = itertools.count(1)

    def _new_key(self) -> str:
        with self._lock:
            while True:
                key = str(next(self._counter))
                if key not in self._records:
                    return key

    def _iter_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, record in list(self._records.items()):
            yield key, copy.deepcopy(record)

    def _load_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        return [self._load(k) for k in keys]
