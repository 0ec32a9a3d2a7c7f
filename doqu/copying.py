"""Copying records between any two storages, in batches.

Records never travel in the source engine's native form. Each field goes
to the target's converters as the value that says most about it:

- a field the query's class declares (and whose value fits): the Python
  value, decoded by the source's converters with its declared type, as
  ``doc.save(target)`` would write it, so a date stays a date even where
  the two engines store dates differently;
- any other field: its value in doqu's canonical form, as the source
  engine means it (``source._canonical``); this keeps what JSON-native
  Python values would lose, such as the exact digits of a Decimal a JSON
  engine holds as a number.

Each batch is written in one target transaction; the copy as a whole is not
atomic.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

from doqu.errors import ConfigurationError

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.query.base import BaseQueryAdapter

__all__ = ["copy", "CopyReport"]


@dataclass
class CopyReport:
    """What a copy did."""

    #: Records written to the target.
    copied: int = 0
    #: Records left alone because the target already had their key (``existing='skip'``).
    skipped: int = 0
    #: Wall-clock time of the whole copy.
    seconds: float = 0.0

    def __str__(self) -> str:
        skipped = f", skipped {self.skipped}" if self.skipped else ""
        return f"copied {self.copied} records{skipped} in {self.seconds:.2f}s"


def copy(source: "BaseQueryAdapter | BaseStorageAdapter", target: "BaseStorageAdapter",
         batch_size: int = 1000, keep_keys: bool = True,
         progress: Callable[[int, int], Any] | None = None, *,
         existing: Literal["replace", "skip"] = "replace") -> CopyReport:
    """Copy every record of ``source`` (a storage, or a query to copy only its results) into ``target``.

    ``keep_keys`` keeps primary keys (so references between the copied
    records stay valid); otherwise the target makes new ones. A key the
    target already holds is replaced, or left alone with
    ``existing='skip'``. ``progress(done, total)`` is called after each
    batch, ``done`` counting records read so far.
    """
    from doqu.backend_base import BaseStorageAdapter
    from doqu.query.base import BaseQueryAdapter

    if isinstance(source, BaseStorageAdapter):
        query = source.get_query(None)
    elif isinstance(source, BaseQueryAdapter):
        query = source
    else:
        raise ConfigurationError(f"copy: the source must be a storage or a query, got {type(source).__name__}")
    if not isinstance(target, BaseStorageAdapter):
        raise ConfigurationError(f"copy: the target must be a storage, got {type(target).__name__}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigurationError(f"copy: batch_size must be a positive int, got {batch_size!r}")
    if existing not in ("replace", "skip"):
        raise ConfigurationError(f"copy: existing must be 'replace' or 'skip', got {existing!r}")
    if query.storage.identity == target.identity:
        raise ConfigurationError(
            f"copy: source and target are the same storage ({target.describe_location()})"
        )

    began = time.perf_counter()
    report = CopyReport()
    total = query.count()
    doc_class = query.doc_class
    done = 0
    new_keys = getattr(target, "_keys_for_new", None)
    read = _reader(query)
    for batch in _batches(query._records(), batch_size):
        rows = [read(key, record) for key, record in batch]
        # encode the whole batch first: a value the target refuses stops the copy before this batch
        records = [target._encode(doc_class, data) for _, data in rows]
        keys: list[str] = [pk for pk, _ in rows]
        if keep_keys and existing == "skip":
            present = target._load_many(keys)
            kept = [i for i, record in enumerate(present) if record is None]
            report.skipped += len(keys) - len(kept)
            keys = [keys[i] for i in kept]
            records = [records[i] for i in kept]
        if records:
            with target.transaction():
                if not keep_keys:
                    keys = new_keys(records) if new_keys else [target._new_key() for _ in records]
                target._put_many(list(zip(keys, records)))
        report.copied += len(records)
        done += len(rows)
        if progress is not None:
            progress(done, total)
    report.seconds = time.perf_counter() - began
    return report


def _reader(query: "BaseQueryAdapter") -> Callable[[str, Any], tuple[str, dict[str, Any]]]:
    """(key, native record) → (key, values to encode for the target), as the module docstring says."""
    source = query.storage
    canonical = source._canonical
    doc_class = query.doc_class
    declared = set(doc_class._schema_types()) | set(doc_class.pickled_fields) if doc_class else set()
    if not declared:
        return lambda key, record: (key, dict(canonical(record)))
    assert doc_class is not None
    build = source._document_builder(doc_class)
    pickled = doc_class.pickled_fields

    def read(key: str, record: Any) -> tuple[str, dict[str, Any]]:
        data = dict(canonical(record))
        doc = build(key, record)
        outgoing = doc._outgoing_data()
        for name in declared.intersection(outgoing):
            if name in pickled or doc._type_error(name, doc._data.get(name)) is None:
                data[name] = outgoing[name]
        return key, data

    return read


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(items, size)):
        yield batch
