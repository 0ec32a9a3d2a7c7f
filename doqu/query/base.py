"""The lazy, immutable query every backend shares: :class:`BaseQueryAdapter`.

The public methods (``where``, ``order_by``, slicing, ``count`` ...) live
here once. A backend subclasses it and overrides only the *native hooks*
(``_supports``, ``_run_native``, ``_count_native`` ...). The query splits
its condition tree into the part the engine runs and a *residual* the
shared Python evaluator filters afterwards, so every backend answers
alike even where its engine cannot.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence, TypeVar

from doqu.errors import QueryError
from doqu.query.conditions import (
    And,
    Leaf,
    Node,
    Not,
    and_,
    conditions_from_kwargs,
    describe,
    not_,
    or_,
    parse_lookup,
)
from doqu.query.evaluator import compile_predicate, distinct_values, sort_records

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.document import Document

__all__ = ["BaseQueryAdapter", "Ordering", "Plan", "split_tree"]

Q = TypeVar("Q", bound="BaseQueryAdapter")
Ordering = tuple[tuple[tuple[str, ...], bool], ...]
Record = Mapping[str, Any]


@dataclass(frozen=True)
class Plan:
    """How a query runs: ``native`` in the engine, then ``residual`` in Python."""

    native: Node | None
    residual: Node | None
    native_order: bool


def split_tree(node: Node | None, supports: Any) -> tuple[Node | None, Node | None]:
    """Split ``node`` into (engine part, Python part) whose conjunction is ``node``.

    ``supports(leaf)`` says whether the engine can run one leaf exactly. The
    children of a top-level ``And`` are split one by one; any other subtree
    goes to the engine only if all of its leaves can.
    """
    if node is None:
        return None, None
    if isinstance(node, And):
        native: list[Node] = []
        residual: list[Node] = []
        for child in node.children:
            n, r = split_tree(child, supports)
            if n is not None:
                native.append(n)
            if r is not None:
                residual.append(r)
        return and_(*native), and_(*residual)
    if _fully_supported(node, supports):
        return node, None
    return None, node


def _fully_supported(node: Node, supports: Any) -> bool:
    if isinstance(node, Leaf):
        return bool(supports(node))
    if isinstance(node, Not):
        return _fully_supported(node.child, supports)
    return all(_fully_supported(child, supports) for child in node.children)


class BaseQueryAdapter:
    """A query over one storage, seen through one document class.

    Every method returns a new query; nothing runs until results are asked
    for. Results are documents of ``doc_class`` (or plain dicts when there is
    none).
    """

    #: Human name of the engine part, used by ``explain()``.
    engine_label = "full scan"

    def __init__(self, storage: "BaseStorageAdapter", doc_class: type["Document"] | None = None) -> None:
        self.storage = storage
        self.doc_class = doc_class
        self._tree: Node | None = doc_class._class_filter() if doc_class is not None else None
        self._ordering: Ordering = ()
        self._start = 0
        self._stop: int | None = None
        self._cache: list[Any] | None = None

    # -- building ----------------------------------------------------------
    def _clone(self: Q, **changes: Any) -> Q:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._cache = None
        clone.__dict__.update(changes)
        return clone

    @property
    def _structure(self) -> Mapping[str, Any] | None:
        return self.doc_class._schema_types() if self.doc_class is not None else None

    def _sliced(self) -> bool:
        return self._start != 0 or self._stop is not None

    def _refuse_if_sliced(self, what: str) -> None:
        if self._sliced():
            raise QueryError(f"cannot {what} a query after slicing it; {what} first, then slice")

    def where(self: Q, **conditions: Any) -> Q:
        """Records matching all ``field__op=value`` conditions."""
        self._refuse_if_sliced("filter")
        leaves = conditions_from_kwargs(conditions, self._structure)
        return self._clone(_tree=and_(self._tree, *leaves))

    def where_not(self: Q, **conditions: Any) -> Q:
        """Records matching none of the conditions."""
        self._refuse_if_sliced("filter")
        leaves = conditions_from_kwargs(conditions, self._structure)
        return self._clone(_tree=and_(self._tree, *(not_(leaf) for leaf in leaves)))

    def __or__(self: Q, other: "BaseQueryAdapter") -> Q:
        if not isinstance(other, BaseQueryAdapter):
            return NotImplemented
        self._check_combinable(other)
        return self._clone(_tree=or_(self._tree, other._tree))

    def __and__(self: Q, other: "BaseQueryAdapter") -> Q:
        if not isinstance(other, BaseQueryAdapter):
            return NotImplemented
        self._check_combinable(other)
        return self._clone(_tree=and_(self._tree, other._tree))

    def _check_combinable(self, other: "BaseQueryAdapter") -> None:
        if other.storage is not self.storage:
            raise QueryError("cannot combine queries over different storages")
        if self._sliced() or other._sliced():
            raise QueryError("cannot combine sliced queries")

    def order_by(self: Q, *names: str) -> Q:
        """Order by fields (``'-name'`` descends); replaces any earlier order."""
        self._refuse_if_sliced("order")
        ordering = []
        for name in names:
            if not isinstance(name, str) or not name.lstrip("-"):
                raise QueryError(f"invalid order_by name {name!r}")
            descending = name.startswith("-")
            path, op = parse_lookup(name.lstrip("-"), self._structure)
            if op != "equals" or name.lstrip("-").endswith("__equals"):
                raise QueryError(f"order_by takes field names, not lookups: {name!r}")
            ordering.append((path, descending))
        return self._clone(_ordering=tuple(ordering))

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise QueryError("query slices cannot have a step")
            if any(x is not None and (not isinstance(x, int) or x < 0)
                   for x in (index.start, index.stop)):
                raise QueryError("query slices take non-negative ints")
            start = self._start + (index.start or 0)
            stop = self._start + index.stop if index.stop is not None else None
            if self._stop is not None:
                stop = self._stop if stop is None else min(stop, self._stop)
            if stop is not None:
                start = min(start, stop)
            return self._clone(_start=start, _stop=stop)
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"query indices must be ints or slices, not {type(index).__name__}")
        if index < 0:
            raise QueryError("negative indexing is not supported; use order_by('-field')")
        if self._cache is not None:
            if index >= len(self._cache):
                raise IndexError("query index out of range")
            return self._cache[index]
        found = list(self[index:index + 1])
        if not found:
            raise IndexError("query index out of range")
        return found[0]

    # -- running -----------------------------------------------------------
    def _plan(self, order: bool = True) -> Plan:
        """Split the query; ``order=False`` where the order does not matter (count, values, delete)."""
        native, residual = split_tree(self._tree, self._supports)
        native_order = not order or not self._ordering or self._supports_ordering(self._ordering)
        return Plan(native, residual, native_order)

    def _records(self) -> Iterator[tuple[str, Record]]:
        """(key, native record) pairs of the results, in order, sliced."""
        plan = self._plan()
        if plan.residual is None and plan.native_order:
            yield from self._run_native(plan.native, self._ordering, self._start, self._stop)
            return
        items: Iterator[tuple[str, Record]] = self._run_native(
            plan.native, self._ordering if plan.native_order else (), 0, None)
        if plan.residual is not None:
            predicate = compile_predicate(plan.residual)
            canonical = self.storage._canonical
            items = (item for item in items if predicate(canonical(item[1])))
        if not plan.native_order:
            canonical = self.storage._canonical
            items = iter(sort_records(list(items), self._ordering,
                                      record=lambda item: canonical(item[1])))
        yield from itertools.islice(items, self._start, self._stop)

    def __iter__(self) -> Iterator[Any]:
        if self._cache is not None:
            return iter(self._cache)
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        # list(query) takes the iterator, then asks len() for a size hint, which
        # fills the cache: serve that instead of running the query twice
        if self._cache is not None:
            yield from self._cache
            return
        yield from self._documents()

    def _documents(self) -> Iterator[Any]:
        build = self.storage._document_builder(self.doc_class)
        for key, record in self._records():
            yield build(key, record)

    def __len__(self) -> int:
        if self._cache is None:
            self._cache = list(self._documents())
        return len(self._cache)

    def __bool__(self) -> bool:
        return self.first() is not None

    def first(self) -> Any:
        """The first result, or ``None``."""
        for doc in self[:1]:
            return doc
        return None

    def records(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """``(key, record)`` pairs in doqu's canonical form, every stored digit intact.

        For tools that move or show raw data (dump, copy, inspect) rather than
        documents: no class conversion, no validation.
        """
        canonical = self.storage._canonical
        for key, record in self._records():
            yield key, canonical(record)

    def keys(self) -> list[str]:
        """Primary keys of the results, without building documents."""
        return [key for key, _ in self._records()]

    def count(self) -> int:
        """How many records match, counted by the engine where it can."""
        plan = self._plan(order=False)
        if plan.residual is None:
            total = self._count_native(plan.native)
        else:
            predicate = compile_predicate(plan.residual)
            canonical = self.storage._canonical
            total = sum(1 for _, rec in self._run_native(plan.native, (), 0, None)
                        if predicate(canonical(rec)))
        if self._sliced():
            end = total if self._stop is None else min(total, self._stop)
            return max(0, end - self._start)
        return total

    def values(self, name: str) -> list[Any]:
        """Distinct present values of a field among the results, ascending."""
        path, op = parse_lookup(name, self._structure)
        if op != "equals" or name.endswith("__equals"):
            raise QueryError(f"values() takes a field name, not a lookup: {name!r}")
        plan = self._plan(order=False)
        if plan.residual is None and not self._sliced():
            raw = self._values_native(plan.native, path)
        else:
            canonical = self.storage._canonical
            raw = distinct_values((canonical(rec) for _, rec in self._records()), path)
        datatype = self._structure.get(path[0]) if self._structure and len(path) == 1 else None
        return [self.storage._value_from_db(datatype, v) for v in raw]

    def delete(self) -> int:
        """Remove every matching record; returns how many."""
        plan = self._plan(order=False)
        if plan.residual is None and not self._sliced():
            return self._delete_native(plan.native)
        keys = [key for key, _ in self._records()]
        return self.storage._delete_keys(keys)

    def explain(self) -> str:
        """What runs in the engine and what doqu filters in Python."""
        plan = self._plan()
        lines = [
            f"backend: {self.storage.backend_name} ({self.storage.describe_location()})",
            f"query: {describe(self._tree)}",
            f"engine ({self.engine_label}): {self._describe_native(plan)}",
            f"python filter: {describe(plan.residual) if plan.residual is not None else '(none)'}",
        ]
        if self._ordering:
            order = ", ".join(("-" if d else "") + "__".join(p) for p, d in self._ordering)
            lines.append(f"order: {order} ({'engine' if plan.native_order else 'python'})")
        if self._sliced():
            where = "engine" if plan.residual is None and plan.native_order else "python"
            lines.append(f"slice: [{self._start}:{'' if self._stop is None else self._stop}] ({where})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        cls = self.doc_class.__name__ if self.doc_class else "records"
        return f"<{type(self).__name__} {cls} where {describe(self._tree)}>"

    # -- native hooks: override in a backend --------------------------------
    def _supports(self, leaf: Leaf) -> bool:
        """Can the engine evaluate this leaf exactly as the contract says?"""
        return False

    def _supports_ordering(self, ordering: Ordering) -> bool:
        """Can the engine order exactly as the contract says?"""
        return False

    def _run_native(self, tree: Node | None, ordering: Ordering,
                    start: int, stop: int | None) -> Iterator[tuple[str, Record]]:
        """(key, record) pairs matching ``tree`` (fully supported), ordered, sliced."""
        items = self.storage._iter_records()
        if tree is not None:
            predicate = compile_predicate(tree)
            canonical = self.storage._canonical
            items = (item for item in items if predicate(canonical(item[1])))
        if ordering:
            canonical = self.storage._canonical
            items = iter(sort_records(list(items), ordering, record=lambda it: canonical(it[1])))
        return itertools.islice(items, start, stop)

    def _count_native(self, tree: Node | None) -> int:
        if tree is None:
            return len(self.storage)
        return sum(1 for _ in self._run_native(tree, (), 0, None))

    def _values_native(self, tree: Node | None, path: Sequence[str]) -> list[Any]:
        canonical = self.storage._canonical
        return distinct_values((canonical(r) for _, r in self._run_native(tree, (), 0, None)), path)

    def _delete_native(self, tree: Node | None) -> int:
        keys = [key for key, _ in self._run_native(tree, (), 0, None)]
        return self.storage._delete_keys(keys)

    def _describe_native(self, plan: Plan) -> str:
        return f"scan all records; filter {describe(plan.native)}" if plan.native else "scan all records"
