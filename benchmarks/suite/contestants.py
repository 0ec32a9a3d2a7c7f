"""What every contestant can do, and the doqu side (the same code on every engine).

A contestant holds one store of one engine and does the workload's
operations on it. Raw baselines (one per engine, in :mod:`suite.engines`)
do the same work with the engine's own driver and no library: they return
plain dicts where doqu returns documents, and skip what doqu adds on top
(declared types, kind checks, validation, key generation that never
repeats, undo logs). That difference is what the ratio measures.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from doqu import Document


class Person(Document):
    structure = {"name": str, "age": int, "city": str, "score": float, "tags": list,
                 "active": bool, "address": dict, "batch": int}


class Contestant:
    """The operations of the workload; ``name`` is ``doqu``, ``raw`` or a peer's name."""

    name = "?"
    #: Human description for the report (the driver and how it is used).
    label = "?"
    #: Stop repeating read operations after this many rounds (None: the plan decides).
    max_rounds: int | None = None
    #: False for engines without indexes: the "indexed" steps then scan again.
    has_indexes = True

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        raise NotImplementedError

    def save(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def get(self, key: str) -> Any:
        raise NotImplementedError

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        raise NotImplementedError

    def find_eq(self, field: str, value: Any) -> list[Any]:
        raise NotImplementedError

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        """``low <= field < high``."""
        raise NotImplementedError

    def top(self, field: str, limit: int) -> list[Any]:
        """The ``limit`` documents with the greatest ``field``, greatest first."""
        raise NotImplementedError

    def count_eq(self, field: str, value: Any) -> int:
        raise NotImplementedError

    def values(self, field: str) -> list[Any]:
        """Distinct values, ascending."""
        raise NotImplementedError

    def index(self, fields: Sequence[str]) -> None:
        raise NotImplementedError

    def update(self, key: str) -> None:
        """Load one document, add 1 to its age, save it."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the store and remove everything it wrote (tables, prefixes, files)."""


class DoquContestant(Contestant):
    """doqu's public API on a storage from ``get_db``: the very same calls on every engine."""

    name = "doqu"

    def __init__(self, db: Any, cleanup: Callable[[], None], label: str = "") -> None:
        self.db = db
        self._cleanup = cleanup
        self.label = label or f"doqu {db.backend_name}"
        self.has_indexes = bool(getattr(db.features, "indexes", False))

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        return self.db.save_many([Person(**r) for r in records])

    def save(self, record: dict[str, Any]) -> str:
        return Person(**record).save(self.db)

    def get(self, key: str) -> Any:
        return self.db.get(Person, key)

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        return self.db.get_many(Person, keys)

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return list(Person.objects(self.db).where(**{field: value}))

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        return list(Person.objects(self.db).where(**{f"{field}__gte": low, f"{field}__lt": high}))

    def top(self, field: str, limit: int) -> list[Any]:
        return list(Person.objects(self.db).order_by(f"-{field}")[:limit])

    def count_eq(self, field: str, value: Any) -> int:
        return Person.objects(self.db).where(**{field: value}).count()

    def values(self, field: str) -> list[Any]:
        return Person.objects(self.db).values(field)

    def index(self, fields: Sequence[str]) -> None:
        self.db.ensure_index(*fields)

    def update(self, key: str) -> None:
        doc = self.db.get(Person, key)
        doc["age"] = doc["age"] + 1
        doc.save()

    def delete(self, key: str) -> None:
        self.db.delete(key)

    def iterate(self) -> int:
        """Every document, one at a time (what the memory measurement watches)."""
        seen = 0
        for _ in Person.objects(self.db):
            seen += 1
        return seen

    def close(self) -> None:
        self._cleanup()
