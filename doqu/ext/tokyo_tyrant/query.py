"""Queries of the Tokyo Tyrant backend: the Tokyo Cabinet compiler, run over the network.

The condition tree is compiled exactly as for a local ``.tct`` file
(:mod:`doqu.ext.tokyo_cabinet.compiler`), then sent as misc ``search`` /
``metasearch`` calls. Before each query the catalogue is re-read from the
server (one small ``get``), because other clients may have stored kinds of
value that change which conditions Tokyo Cabinet can answer exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from doqu.query.base import BaseQueryAdapter, Plan
from doqu.query.conditions import Node, describe

from doqu.ext.tokyo_cabinet.compiler import TableQueryHooks

if TYPE_CHECKING:
    from .storage import StorageAdapter

__all__ = ["QueryAdapter"]

Record = dict[str, Any]


class QueryAdapter(TableQueryHooks, BaseQueryAdapter):
    """Pushes what the Tokyo Cabinet compiler proves exact into the server's table search."""

    engine_label = "Tokyo Tyrant table search"
    storage: "StorageAdapter"

    def _plan(self, order: bool = True) -> Plan:
        # other clients may have grown the catalogue since we last looked
        self.storage._refresh_catalogue()
        return super()._plan(order)

    def _run_native(self, tree: Node | None, ordering: Any, start: int,
                    stop: int | None) -> Iterator[tuple[str, Record]]:
        plan = self._native_plan(tree, ordering, start, stop)
        if plan is None:   # too many alternatives (or a catalogue grown meanwhile): Python
            return super()._run_native(tree, ordering, start, stop)
        return self.storage._records_for(self.storage._execute(plan))

    def _count_native(self, tree: Node | None) -> int:
        if tree is None:
            return len(self.storage)
        plan = self._native_plan(tree)
        if plan is None:
            return super()._count_native(tree)
        return self.storage._count_plan(plan)

    def _delete_native(self, tree: Node | None) -> int:
        storage = self.storage
        plan = self._native_plan(tree)
        if plan is None or storage._undo:
            # inside a transaction deletions must go through the undo log
            return super()._delete_native(tree)
        return storage._searchout(plan)

    def _describe_native(self, plan: Plan) -> str:
        """The table searches sent, and the server's own hint for each where it gives one."""
        whole = plan.residual is None and plan.native_order
        ordering = self._ordering if plan.native_order else ()
        window = (self._start, self._stop) if whole else (0, None)
        native = self._native_plan(plan.native, ordering, *window)
        if native is None:
            return (f"none: {describe(plan.native)} needs more than "
                    f"{self.storage._compiler().max_disjuncts} table queries, so Python "
                    f"scans every record")
        hints: list[str | None] = []
        self.storage._execute(native, hints)
        lines = [native.describe()]
        for hint in hints:
            if hint is None:
                lines.append("server hint: none (this server does not send query hints)")
            else:
                lines.append("server hint: " + "; ".join(hint.strip().splitlines()))
        return "\n  ".join(lines)
