"""Iteration streams through a server-side cursor: memory stays flat as the table grows."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any, Callable

import pytest

from doqu import Document

pytestmark = pytest.mark.slow


def _fill(db: Any, raw: Any, rows: int) -> None:
    raw.execute(f'TRUNCATE "{db._table}"')
    raw.execute(
        f'INSERT INTO "{db._table}" (key, data) SELECT i::text, jsonb_build_object('
        f"'name', 'person number ' || i, 'age', i %% 90, 'bio', repeat('x', 200), "
        f"'tags', jsonb_build_array('a', 'b', i)) FROM generate_series(1, %s) AS i", (rows,))


def _peak_while_iterating(query: Any) -> tuple[int, int]:
    """(records seen, peak traced bytes) of one pass over ``query``."""
    gc.collect()
    tracemalloc.start()
    try:
        seen = 0
        for doc in query:
            seen += doc["age"] >= 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, peak


def test_iteration_memory_does_not_grow_with_the_table(open_db: Callable[..., Any], raw: Any) -> None:
    db = open_db(batch_size=1000)
    peaks = {}
    for rows in (10_000, 50_000):
        _fill(db, raw, rows)
        seen, peaks[rows] = _peak_while_iterating(Document.objects(db))
        assert seen == rows
    # a client-side fetch of everything would grow five-fold; the stream holds one batch
    assert peaks[50_000] < 2 * peaks[10_000], peaks


def test_a_filtered_ordered_stream_is_flat_too(open_db: Callable[..., Any], raw: Any) -> None:
    db = open_db(batch_size=500)
    peaks = {}
    for rows in (4_000, 20_000):  # smaller: tracing makes building documents slow
        _fill(db, raw, rows)
        query = Document.objects(db).where(age__gte=10).order_by("-age")
        seen, peaks[rows] = _peak_while_iterating(query)
        assert seen == sum(1 for i in range(1, rows + 1) if i % 90 >= 10)
    assert peaks[20_000] < 2 * peaks[4_000], peaks
