"""Queries on PostgreSQL: the condition tree compiled by :mod:`doqu.sql`, the rest in Python.

One ordering detail SQL cannot match exactly: arrays and objects, which the
contract orders among themselves by their key-sorted JSON text. SQL orders
each kind as a block (jsonb's own order inside it), so rows holding an array
or object at an ordering field come out as *runs* of one kind; each run is
re-sorted in Python as it streams past. When a slice's edge may cut through
such a run, the query reads from the start instead.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from doqu.query.base import BaseQueryAdapter, Ordering, Plan
from doqu.query.conditions import Leaf, Node
from doqu.query.evaluator import distinct_values, get_path, kind, order_key, sort_records
from doqu.sql import Frag, Unsupported

if TYPE_CHECKING:
    from doqu.document import Document
    from doqu.ext.postgres.storage import StorageAdapter

__all__ = ["QueryAdapter"]

Item = tuple[str, Mapping[str, Any]]
_STRUCTURED = ("dict", "list")


def _signature(record: Mapping[str, Any], ordering: Ordering) -> tuple[Any, ...] | None:
    """The run of SQL-ordered rows a row belongs to; None unless an ordering field is an array/object."""
    prefix: list[Any] = []
    for path, _ in ordering:
        value = get_path(record, path)
        k = kind(value)
        if k in _STRUCTURED:
            return (*prefix, k)
        prefix.append(order_key(value))
    return None


class QueryAdapter(BaseQueryAdapter):
    """Runs the supported part of a query as one SQL statement, streamed from a server-side cursor."""

    engine_label = "postgres"
    storage: "StorageAdapter"

    def __init__(self, storage: "StorageAdapter", doc_class: type["Document"] | None = None) -> None:
        super().__init__(storage, doc_class)
        storage._auto_index(doc_class)

    # -- native hooks -----------------------------------------------------------------
    def _supports(self, leaf: Leaf) -> bool:
        return self.storage.compiler.supports(leaf)

    def _supports_ordering(self, ordering: Ordering) -> bool:
        return self.storage.compiler.supports_ordering(ordering)

    def _select(self, tree: Node | None, ordering: Ordering, start: int, stop: int | None) -> Iterator[Item]:
        sql = self.storage.compiler.select(tree, ordering, start, stop)
        small = stop is not None and stop - start <= self.storage._batch
        return self.storage._stream(sql.sql, sql.params, _row, small=small)

    def _run_native(self, tree: Node | None, ordering: Ordering,
                    start: int, stop: int | None) -> Iterator[Item]:
        if not ordering:
            return self._select(tree, ordering, start, stop)
        return self._ordered(tree, ordering, start, stop)

    def _ordered(self, tree: Node | None, ordering: Ordering, start: int, stop: int | None) -> Iterator[Item]:
        rows = self._select(tree, ordering, start, stop)
        done = fetched = 0
        run: list[Item] = []
        run_signature: tuple[Any, ...] | None = None
        for item in rows:
            fetched += 1
            signature = _signature(item[1], ordering)
            if fetched == 1 and start > 0 and signature is not None:
                rows.close()  # the slice may begin inside a run: read from the start
                yield from itertools.islice(self._reordered(tree, ordering), start, stop)
                return
            if run and signature == run_signature:
                run.append(item)
                continue
            if run:
                yield from self._sorted(run, ordering)
                done += len(run)
                run = []
            if signature is None:
                yield item
                done += 1
            else:
                run, run_signature = [item], signature
        if run:
            if stop is not None and fetched == stop - start:
                # the slice may end inside the run: its right members may lie beyond it
                yield from itertools.islice(self._reordered(tree, ordering), start + done, stop)
                return
            yield from self._sorted(run, ordering)

    def _reordered(self, tree: Node | None, ordering: Ordering) -> Iterator[Item]:
        """Every matching row in the contract's order, runs re-sorted."""
        return self._ordered(tree, ordering, 0, None)

    def _sorted(self, run: list[Item], ordering: Ordering) -> Iterable[Item]:
        canonical = self.storage._canonical
        return sort_records(run, ordering, record=lambda item: canonical(item[1]))

    def _count_native(self, tree: Node | None) -> int:
        sql = self.storage.compiler.count(tree)
        return int(self.storage.execute(sql.sql, sql.params)[0][0])

    def _values_native(self, tree: Node | None, path: Sequence[str]) -> list[Any]:
        try:
            sql = self.storage.compiler.values(tree, path)
        except Unsupported:
            return super()._values_native(tree, path)
        rows = self.storage._stream(sql.sql, sql.params, lambda row: {"v": row[0]})
        return distinct_values(rows, ("v",))

    def _delete_native(self, tree: Node | None) -> int:
        sql = self.storage.compiler.delete(tree)
        with self.storage.transaction(), self.storage._using("delete") as conn:
            return int(self.storage._settled(conn.execute(sql.sql, sql.params)).rowcount)

    # -- inspection -------------------------------------------------------------------------
    def sql(self) -> Frag:
        """The SELECT this query runs in PostgreSQL (its Python filter, if any, comes after)."""
        plan = self._plan()
        whole = plan.residual is None and plan.native_order
        return self.storage.compiler.select(
            plan.native, self._ordering if plan.native_order else (),
            self._start if whole else 0, self._stop if whole else None)

    def _describe_native(self, plan: Plan) -> str:
        sql = self.sql()
        rows = self.storage.execute("EXPLAIN " + sql.sql, sql.params)
        steps = "; ".join(" ".join(str(row[0]).split()) for row in rows)
        params = ", ".join(_short(p) for p in sql.params)
        return f"{sql.sql} -- params [{params}] -- plan: {steps}"


def _row(row: Any) -> Item:
    return row[0], row[1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"...({len(text)} chars)"
