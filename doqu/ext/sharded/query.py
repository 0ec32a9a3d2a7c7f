"""Queries over several shards: fan out, then merge.

Every condition and every ordering is "supported": each shard's own query
runs it exactly (natively or with the shared Python evaluator), so the
sharded query only has to combine the answers. Ordered results are merged
with :func:`heapq.merge` on the evaluator's ``order_key``; a slice
``[a:b]`` asks each shard for its first ``b`` results and slices the merge.
Counts are summed and distinct values merged.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from doqu.query.base import BaseQueryAdapter, Ordering, Plan
from doqu.query.conditions import Leaf, Node, describe
from doqu.query.evaluator import distinct_values, get_path, order_key

if TYPE_CHECKING:
    from doqu.ext.sharded.storage import Shard, StorageAdapter

__all__ = ["QueryAdapter", "merge_key"]

Item = tuple[str, Mapping[str, Any]]

#: Records fetched from a shard per round trip while streaming a result.
BATCH = 500


class _Descending:
    """Reverses the order of one sort-key component (``heapq.merge`` has one direction only)."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: "_Descending") -> bool:
        return bool(other.key < self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and bool(self.key == other.key)


def merge_key(ordering: Ordering) -> Callable[[Item], tuple[Any, ...]]:
    """Sort key of a (key, canonical record) pair agreeing with ``sort_records``."""
    def key(item: Item) -> tuple[Any, ...]:
        record = item[1]
        return tuple(_Descending(order_key(get_path(record, path))) if descending
                     else order_key(get_path(record, path)) for path, descending in ordering)

    return key


class _Stream:
    """One shard's results, fetched in batches; the next batch is fetched while this one is used.

    The first batch is requested on construction, so building a stream per
    shard starts every shard working at once.
    """

    def __init__(self, shard: "Shard", records: Iterator[Item],
                 submit: Callable[[Callable[[], Any]], Any], batch: int) -> None:
        self._shard = shard
        self._source = records
        self._submit = submit
        self._batch = batch
        self._pending: Any = submit(self._fetch)

    def _fetch(self) -> list[Item]:
        canonical = self._shard.storage._canonical
        return [(key, canonical(record)) for key, record in itertools.islice(self._source, self._batch)]

    def __iter__(self) -> Iterator[Item]:
        while self._pending is not None:
            chunk = self._pending.result()
            self._pending = self._submit(self._fetch) if len(chunk) >= self._batch else None
            yield from chunk

    def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except Exception:  # the caller stopped reading; a late failure is of no use to it
                pass
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


class QueryAdapter(BaseQueryAdapter):
    """Runs the whole query on every shard and combines the answers."""

    engine_label = "sharded: every shard runs the query, doqu merges"
    storage: "StorageAdapter"

    def _supports(self, leaf: Leaf) -> bool:
        return True  # each shard answers every leaf exactly (natively or in Python)

    def _supports_ordering(self, ordering: Ordering) -> bool:
        return True

    def _shard_query(self, shard: "Shard", tree: Node | None, ordering: Ordering = (),
                     stop: int | None = None) -> BaseQueryAdapter:
        query = shard.storage.get_query(self.doc_class)
        return query._clone(_tree=tree, _ordering=tuple(ordering), _start=0, _stop=stop)

    def _run_native(self, tree: Node | None, ordering: Ordering,
                    start: int, stop: int | None) -> Iterator[Item]:
        if stop is not None and start >= stop:
            return
        batch = BATCH if stop is None else max(1, min(BATCH, stop))
        submit = self.storage._submitter()
        streams: list[_Stream] = []
        try:
            for shard in self.storage.shards:
                records = self._shard_query(shard, tree, ordering, stop)._records()
                streams.append(_Stream(shard, records, submit, batch))
            merged: Iterator[Item]
            if ordering:
                merged = heapq.merge(*streams, key=merge_key(ordering))
            else:
                merged = itertools.chain.from_iterable(streams)
            yield from itertools.islice(merged, start, stop)
        finally:
            for stream in streams:
                stream.close()

    def _count_native(self, tree: Node | None) -> int:
        return sum(self.storage._each(lambda shard: self._shard_query(shard, tree).count()))

    def _values_native(self, tree: Node | None, path: Sequence[str]) -> list[Any]:
        def shard_values(shard: "Shard") -> list[Any]:
            query = self._shard_query(shard, tree)
            plan = query._plan()
            canonical = shard.storage._canonical
            if plan.residual is None:
                raw = query._values_native(plan.native, path)
                return [canonical({"v": value})["v"] for value in raw]
            return distinct_values((canonical(record) for _, record in query._records()), path)

        found = self.storage._each(shard_values)
        return distinct_values(({"v": v} for values in found for v in values), ("v",))

    def _delete_native(self, tree: Node | None) -> int:
        # Deletes run one shard after another inside one sharded transaction,
        # so a failing shard rolls back the others as far as they can.
        storage = self.storage
        with storage.transaction():
            total = 0
            for shard in storage.shards:
                storage._touch(shard)
                total += self._shard_query(shard, tree).delete()
            return total

    def _describe_native(self, plan: Plan) -> str:
        storage = self.storage
        how = "in parallel" if storage._parallel() else "one after another"
        if self._ordering:
            order = ", ".join(("-" if d else "") + "__".join(p) for p, d in self._ordering)
            merge = f"merge ordered by {order}"
        else:
            merge = "concatenate"
        limit = "" if self._stop is None else f"; each shard returns at most {self._stop}"
        lines = [f"fan out to {len(storage.shards)} shards {how}; {merge}{limit}; "
                 f"query {describe(plan.native)}"]
        for shard in storage.shards:
            sub = self._shard_query(shard, plan.native, self._ordering, self._stop).explain()
            lines.append(f"  shard {shard.name}:")
            lines.extend("    " + line for line in sub.splitlines())
        return "\n".join(lines)
