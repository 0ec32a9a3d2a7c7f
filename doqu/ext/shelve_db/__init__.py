"""The shelve backend: a file of pickled records through the standard library.

``get_db('shelve:///data.db')`` or ``{'backend': 'shelve', 'path': 'data.db'}``.
Queries run in the shared Python evaluator over every record.

Security: shelve files are pickles. Opening one runs whatever code it was
made to run, so never open a shelve file that came from someone you do not
trust.

One process at a time may have a shelve file open for writing (the dbm
modules do not lock reliably); use SQLite for anything shared.
"""

from __future__ import annotations

import dbm
import os
import shelve
import threading
from typing import Any, ClassVar, Iterator

from doqu.backend_base import BaseQueryAdapter, BaseStorageAdapter, Features
from doqu.errors import ConfigurationError, StorageError

__all__ = ["StorageAdapter", "QueryAdapter"]

#: Reserved shelf key holding the next generated key; never a record key.
_COUNTER = "\x00doqu:next-key"


class QueryAdapter(BaseQueryAdapter):
    engine_label = "shelve: scan every record"


class StorageAdapter(BaseStorageAdapter):
    backend_name = "shelve"
    query_adapter = QueryAdapter
    features = Features(persistent=True)
    required_settings = ("path",)
    known_settings: ClassVar[tuple[str, ...] | None] = ("path", "sync")
    setting_types: ClassVar[dict[str, type]] = {"sync": bool}

    def _connect(self) -> None:
        path = os.fspath(self.settings["path"])
        self._lock = threading.RLock()
        try:
            self._shelf: shelve.Shelf[Any] = shelve.open(path, flag="c", protocol=4, writeback=False)
        except (dbm.error[0], OSError) as exc:  # type: ignore[misc]
            raise ConfigurationError(f"shelve: cannot open {path!r}: {exc}") from exc

    def _disconnect(self) -> None:
        with self._lock:
            self._shelf.close()

    def describe_location(self) -> str:
        return f"shelve file {self.settings['path']}"

    @property
    def identity(self) -> Any:
        return ("shelve", os.path.abspath(os.fspath(self.settings["path"])))

    def _after_write(self) -> None:
        if self.settings.get("sync"):
            self._shelf.sync()

    def _load(self, key: str) -> dict[str, Any] | None:
        if key == _COUNTER:
            return None
        with self._lock:
            try:
                return self._shelf.get(key)  # type: ignore[no-any-return]
            except Exception as exc:  # a corrupt pickle: say which record
                raise StorageError(f"shelve: cannot read record {key!r}: {exc}") from exc

    def _store(self, key: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._shelf[key] = record
            self._after_write()

    def _remove(self, key: str) -> bool:
        with self._lock:
            if key == _COUNTER or key not in self._shelf:
                return False
            del self._shelf[key]
            self._after_write()
            return True

    def _keys(self) -> list[str]:
        with self._lock:
            return [k for k in self._shelf.keys() if k != _COUNTER]

    def _count(self) -> int:
        with self._lock:
            return len(self._shelf) - (1 if _COUNTER in self._shelf else 0)

    def _clear(self) -> None:
        with self._lock:
            self._shelf.clear()
            self._after_write()

    def _new_key(self) -> str:
        with self._lock:
            number = self._shelf.get(_COUNTER, 0) + 1
            while str(number) in self._shelf:
                number += 1
            self._shelf[_COUNTER] = number
            return str(number)

    def _iter_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for key in self._keys():
            record = self._load(key)
            if record is not None:
                yield key, record
