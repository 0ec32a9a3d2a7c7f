"""The MongoDB query: filters, sorts, counts, distinct values and deletes run in the server.

Conditions the compiler cannot express exactly are filtered in Python (the
base class does that). Sorting is pushed down only when MongoDB's order is
doqu's order for the records at hand: BSON already orders absent < numbers <
strings < objects < arrays < booleans, but it sorts an *array* by its smallest
(largest, descending) element, compares sub-documents field by field, and
reaches into arrays along dotted paths. So before sorting natively the query
asks the server whether any matching record holds such a value at a sort
path; if one does, the records are sorted in Python instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from doqu.ext.mongodb import patterns
from doqu.ext.mongodb.compiler import (
    Unsupported,
    and_filters,
    compile_leaf,
    compile_tree,
    field_path,
    prefix_guards,
)
from doqu.ext.mongodb.converters import canonical_value
from doqu.query.base import BaseQueryAdapter, Ordering, Plan, split_tree
from doqu.query.conditions import Leaf, Node
from doqu.query.evaluator import distinct_values

if TYPE_CHECKING:
    from doqu.ext.mongodb.storage import StorageAdapter

__all__ = ["QueryAdapter", "StandInGap"]

log = logging.getLogger("doqu.ext.mongodb")
Record = dict[str, Any]


class StandInGap(Exception):
    """The stand-in (mongomock) cannot run what MongoDB can; doqu runs it in Python."""


def _unsortable(path: tuple[str, ...]) -> list[dict[str, Any]]:
    """Conditions finding a value at ``path`` that MongoDB orders differently from doqu."""
    name = field_path(path)
    plain = [{name: {"$type": "number"}}, {name: {"$type": "string"}},
             {name: {"$type": "bool"}}, {name: None}]
    found = [{name: {"$type": "array"}},
             {"$and": [{name: {"$exists": True}}, {"$nor": plain}]}]
    found += [{field_path(path[:k]): {"$type": "array"}} for k in range(1, len(path))]
    return found


def render(filter: Any) -> str:
    """A filter document as extended JSON, long patterns abbreviated."""
    from bson import json_util

    def short(value: Any) -> Any:
        if isinstance(value, str):
            return patterns.shorten(value)
        if isinstance(value, dict):
            return {k: short(v) for k, v in value.items()}
        if isinstance(value, list):
            return [short(v) for v in value]
        return value

    return str(json_util.dumps(short(filter), ensure_ascii=False))


def _plan_summary(explained: Any) -> str:
    """``FETCH <- IXSCAN age_1`` from an explain() document's winning plan."""
    def walk(stage: Any) -> list[str]:
        if not isinstance(stage, dict):
            return []
        label = str(stage.get("stage", "?"))
        if stage.get("indexName"):
            label += f" {stage['indexName']}"
        inner = stage.get("inputStage") or stage.get("queryPlan")
        below = walk(inner) if inner else []
        for child in stage.get("inputStages", []) or []:
            below += walk(child)
        return [label, *below]

    planner = explained.get("queryPlanner", {}) if isinstance(explained, dict) else {}
    return " <- ".join(walk(planner.get("winningPlan"))) or "(no plan reported)"


class QueryAdapter(BaseQueryAdapter):
    engine_label = "MongoDB"
    storage: "StorageAdapter"

    def _supports(self, leaf: Leaf) -> bool:
        try:
            compile_leaf(leaf)
        except Unsupported:
            return False
        return True

    @staticmethod
    def _sort(ordering: Ordering) -> list[tuple[str, int]]:
        return [(field_path(path), -1 if descending else 1) for path, descending in ordering]

    def _supports_ordering(self, ordering: Ordering) -> bool:
        try:
            suspects = [c for path, _ in ordering for c in _unsortable(path)]
        except Unsupported:
            return False
        native, _ = split_tree(self._tree, self._supports)
        try:
            return not self.storage._exists_any(and_filters(compile_tree(native), {"$or": suspects}))
        except StandInGap as gap:
            self._gap("an order check", gap)
            return False

    def _gap(self, what: str, gap: StandInGap) -> None:
        log.info("mongomock cannot run %s (%s); doqu evaluates it in Python", what, gap)

    def _run_native(self, tree: Node | None, ordering: Ordering, start: int,
                    stop: int | None) -> Iterator[tuple[str, Record]]:
        if stop is not None and stop <= start:
            return iter(())
        try:
            return self.storage._find(compile_tree(tree), sort=self._sort(ordering) if ordering else None,
                                      skip=start, limit=0 if stop is None else stop - start)
        except StandInGap as gap:
            self._gap("a query", gap)
            return super()._run_native(tree, ordering, start, stop)

    def _count_native(self, tree: Node | None) -> int:
        try:
            return self.storage._count_matching(compile_tree(tree))
        except StandInGap as gap:
            self._gap("a count", gap)
            return super()._count_native(tree)

    def _values_native(self, tree: Node | None, path: Sequence[str]) -> list[Any]:
        try:
            name = field_path(tuple(path))
            match = and_filters(compile_tree(tree), *prefix_guards(tuple(path)))
        except Unsupported:
            return super()._values_native(tree, path)
        pipeline: list[dict[str, Any]] = [{"$match": match}, {"$group": {"_id": "$" + name}}]
        if self.storage.stand_in:
            # mongomock groups with Python's equality (True == 1): take every value instead
            pipeline[1] = {"$project": {"_id": 0, "value": "$" + name}}
        try:
            rows = self.storage._aggregate(pipeline)
        except StandInGap as gap:
            self._gap("distinct values", gap)
            return super()._values_native(tree, path)
        # MongoDB groups by BSON equality; doqu's dedupe and order apply on top
        key = "value" if self.storage.stand_in else "_id"
        return distinct_values(({"v": canonical_value(row.get(key))} for row in rows), ("v",))

    def _delete_native(self, tree: Node | None) -> int:
        if self.storage._undo:  # inside an undo-log transaction every removal is remembered
            return super()._delete_native(tree)
        try:
            return self.storage._delete_matching(compile_tree(tree))
        except StandInGap as gap:
            self._gap("a delete", gap)
            return super()._delete_native(tree)

    def _describe_native(self, plan: Plan) -> str:
        filter = compile_tree(plan.native)
        text = f"find {render(filter)}"
        sort = self._sort(self._ordering) if self._ordering and plan.native_order else None
        if sort:
            text += f" sort {render(dict(sort))}"
        if self._sliced() and plan.residual is None and plan.native_order:
            text += f" skip {self._start}" + (f" limit {self._stop - self._start}"
                                              if self._stop is not None else "")
        if self.storage.stand_in:
            return text + "; mongomock stand-in: no query plan (what it cannot run, doqu runs in Python)"
        try:
            return text + f"; plan: {_plan_summary(self.storage._explain(filter, sort))}"
        except Exception as exc:  # explain is informative only
            return text + f"; plan unavailable: {exc}"
