"""Queries on MariaDB: the condition tree compiled by :mod:`doqu.sql`, the rest in Python.

Two things SQL here does not order exactly: arrays and objects, which the
contract orders among themselves by their key-sorted JSON text (SQL orders
them by kind only), and strings longer than 255 characters (SQL compares
their first 1024 bytes). Rows holding one at an ordering field come out as
runs of SQL ties; each run is sorted in Python as it streams past. A
page (``LIMIT``) stays in SQL unless such a run touches its edge, in which
case the query is read without the limit and sliced in Python.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from doqu.conversion import loads
from doqu.query.base import BaseQueryAdapter, Ordering, Plan
from doqu.query.conditions import Leaf, Node
from doqu.query.evaluator import (
    distinct_values,
    get_path,
    kind,
    order_key,
    sort_records,
)
from doqu.sql import Frag, Unsupported

if TYPE_CHECKING:
    from doqu.document import Document
    from doqu.ext.mysql.storage import StorageAdapter

__all__ = ["QueryAdapter"]

Item = tuple[str, Mapping[str, Any]]
#: Strings up to this many characters are ordered exactly by SQL (1024 bytes hold 255 characters).
LONG = 255


def _row(row: Sequence[Any]) -> Item:
    return row[0], loads(row[1])


def _signature(record: Mapping[str, Any], ordering: Ordering) -> tuple[Any, ...] | None:
    """Which run of SQL ties a row belongs to; None if SQL ordered it exactly.

    SQL orders arrays and objects by kind only, and strings by their first
    1024 UTF-8 bytes (``max_sort_length``), which always cover the first
    :data:`LONG` characters.
    """
    prefix = []
    for index, (path, _) in enumerate(ordering):
        value = get_path(record, path)
        k = kind(value)
        if k in ("list", "dict"):
            return tuple(prefix), index, k
        if k == "string" and len(value) > LONG:
            return tuple(prefix), index, k, value[:LONG]
        prefix.append(order_key(value))
    return None


def _reorder(items: Iterable[Item], ordering: Ordering) -> Iterator[Item]:
    """Sort each run of rows tied in SQL on an array/object field, as the evaluator would."""
    run: list[Item] = []
    run_signature: tuple[Any, ...] | None = None
    for item in items:
        signature = _signature(item[1], ordering)
        if signature is not None and signature == run_signature:
            run.append(item)
            continue
        if run:
            yield from sort_records(run, ordering, record=lambda it: it[1])
        if signature is None:
            run, run_signature = [], None
            yield item
        else:
            run, run_signature = [item], signature
    if run:
        yield from sort_records(run, ordering, record=lambda it: it[1])


class QueryAdapter(BaseQueryAdapter):
    """Runs the supported part of a query as one SQL statement, streamed from the server."""

    engine_label = "mariadb"
    storage: StorageAdapter

    def __init__(self, storage: StorageAdapter, doc_class: type[Document] | None = None) -> None:
        super().__init__(storage, doc_class)
        storage._auto_index(doc_class)

    def _supports(self, leaf: Leaf) -> bool:
        return self.storage.compiler.supports(leaf)

    def _supports_ordering(self, ordering: Ordering) -> bool:
        return self.storage.compiler.supports_ordering(ordering)

    def _stream(self, sql: Frag) -> Iterator[Item]:
        return self.storage.stream(sql.sql, sql.params, _row)

    def _run_native(self, tree: Node | None, ordering: Ordering,
                    start: int, stop: int | None) -> Iterator[Item]:
        compiler = self.storage.compiler
        if not ordering:
            return self._stream(compiler.select(tree, (), start, stop))
        return self._ordered(tree, ordering, start, stop)

    def _ordered(self, tree: Node | None, ordering: Ordering,
                 start: int, stop: int | None) -> Iterator[Item]:
        compiler = self.storage.compiler
        if start == 0 and stop is None:
            yield from _reorder(self._stream(compiler.select(tree, ordering)), ordering)
            return
        page = self._stream(compiler.select(tree, ordering, start, stop))
        if stop is not None:
            rows = list(page)
            full = len(rows) == stop - start
            # a run of SQL ties may continue before the first row or after the last one
            cut = bool(rows) and ((start > 0 and _signature(rows[0][1], ordering) is not None)
                                  or (full and _signature(rows[-1][1], ordering) is not None))
            if not cut:
                yield from _reorder(rows, ordering)
                return
        else:
            first = next(page, None)
            if first is None:
                return
            if _signature(first[1], ordering) is None:
                yield from _reorder(itertools.chain([first], page), ordering)
                return
            page.close()
        everything = _reorder(self._stream(compiler.select(tree, ordering)), ordering)
        yield from itertools.islice(everything, start, stop)

    def _count_native(self, tree: Node | None) -> int:
        sql = self.storage.compiler.count(tree)
        return int(self.storage.execute(sql.sql, sql.params)[0][0])

    def _values_native(self, tree: Node | None, path: Sequence[str]) -> list[Any]:
        compiler = self.storage.compiler
        try:
            text = compiler.dialect.json_text(compiler.target(path))
            where = compiler.where(tree)
        except Unsupported:
            return super()._values_native(tree, path)
        # distinct JSON texts in SQL (few, usually); absent (NULL) and null, kinds, and
        # 1 == 1.0 are sorted out in Python by the evaluator's own rule
        sql = Frag("SELECT DISTINCT ") + text + " COLLATE utf8mb4_bin FROM " + compiler.table + where
        rows = self.storage.execute(sql.sql, sql.params)
        return distinct_values(({"v": loads(row[0])} for row in rows if row[0] is not None), ("v",))

    def _delete_native(self, tree: Node | None) -> int:
        sql = self.storage.compiler.delete(tree)
        with self.storage.transaction(), self.storage._cursor("delete") as cursor:
            return int(cursor.execute(sql.sql, sql.params))

    def sql(self) -> Frag:
        """The SELECT this query runs in MariaDB (its Python filter, if any, comes after)."""
        plan = self._plan()
        whole = plan.residual is None and plan.native_order
        return self.storage.compiler.select(
            plan.native, self._ordering if plan.native_order else (),
            self._start if whole else 0, self._stop if whole else None)

    def explain_rows(self) -> list[dict[str, Any]]:
        """MariaDB's ``EXPLAIN`` of :meth:`sql`, one dict per row (``type``, ``key``, ``rows`` ...)."""
        sql = self.sql()
        storage = self.storage
        with storage._cursor("explain") as cursor:
            cursor.execute("EXPLAIN " + sql.sql, sql.params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _describe_native(self, plan: Plan) -> str:
        sql = self.sql()
        steps = "; ".join(
            f"{row.get('table')}: {row.get('type')}"
            + (f" using index {row['key']}" if row.get("key") else "")
            + (f" ({row['Extra']})" if row.get("Extra") else "")
            for row in self.explain_rows())
        return f"{sql.sql} -- params {list(sql.params)!r} -- plan: {steps}"
