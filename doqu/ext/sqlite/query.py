"""Queries on SQLite: the condition tree compiled by :mod:`doqu.sql`, the rest in Python."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from doqu.query.base import BaseQueryAdapter, Ordering, Plan
from doqu.query.conditions import Leaf, Node
from doqu.query.evaluator import distinct_values
from doqu.sql import Frag, Unsupported

if TYPE_CHECKING:
    from doqu.document import Document
    from doqu.ext.sqlite.storage import StorageAdapter

__all__ = ["QueryAdapter"]


class QueryAdapter(BaseQueryAdapter):
    """Runs the supported part of a query as one SQL statement, streamed from a cursor."""

    engine_label = "sqlite"
    storage: "StorageAdapter"

    def __init__(self, storage: "StorageAdapter", doc_class: type["Document"] | None = None) -> None:
        super().__init__(storage, doc_class)
        storage._auto_index(doc_class)

    def _supports(self, leaf: Leaf) -> bool:
        return self.storage.compiler.supports(leaf)

    def _supports_ordering(self, ordering: Ordering) -> bool:
        return self.storage.compiler.supports_ordering(ordering)

    def _run_native(self, tree: Node | None, ordering: Ordering,
                    start: int, stop: int | None) -> Iterator[tuple[str, Mapping[str, Any]]]:
        from doqu.ext.sqlite.storage import loads

        sql = self.storage.compiler.select(tree, ordering, start, stop)
        return self.storage._stream(sql.sql, sql.params, lambda row: (row[0], loads(row[1])))

    def _count_native(self, tree: Node | None) -> int:
        sql = self.storage.compiler.count(tree)
        return int(self.storage.execute(sql.sql, sql.params)[0][0])

    def _values_native(self, tree: Node | None, path: Sequence[str]) -> list[Any]:
        from doqu.ext.sqlite.storage import loads

        try:
            sql = self.storage.compiler.values(tree, path)
        except Unsupported:  # a path SQLite cannot address: distinct values in Python
            return super()._values_native(tree, path)
        rows = self.storage._stream(sql.sql, sql.params, lambda row: {"v": loads(row[0])})
        return distinct_values(rows, ("v",))

    def _delete_native(self, tree: Node | None) -> int:
        sql = self.storage.compiler.delete(tree)
        with self.storage.transaction(), self.storage._guard("delete") as conn:
            return int(conn.execute(sql.sql, sql.params).rowcount)

    def sql(self) -> Frag:
        """The SELECT this query runs in SQLite (its Python filter, if any, comes after)."""
        plan = self._plan()
        whole = plan.residual is None and plan.native_order
        return self.storage.compiler.select(
            plan.native, self._ordering if plan.native_order else (),
            self._start if whole else 0, self._stop if whole else None)

    def _describe_native(self, plan: Plan) -> str:
        sql = self.sql()
        rows = self.storage.execute("EXPLAIN QUERY PLAN " + sql.sql, sql.params)
        steps = "; ".join(str(row[-1]) for row in rows)
        return f"{sql.sql} -- params {list(sql.params)!r} -- plan: {steps}"
