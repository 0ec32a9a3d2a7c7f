"""Queries: index lookups in Redis, the rest in the shared Python evaluator.

A condition on an indexed field (``equals``, ``in``, ``gt``/``gte``/``lt``/
``lte``, ``between``, ``startswith``, ``exists``) becomes sorted-set range
reads in every bucket, sent in one pipeline per node. ``And``/``Or``/``Not``
of such conditions are combined per bucket as sets of keys (``Not``
subtracts from the bucket's key set), then the records are read with
``MGET``. A lone condition is counted with ``ZCOUNT``/``ZLEXCOUNT``/``SCARD``
without reading any key. An ``order_by`` whose first field is indexed walks
that field's structures in order, merging the buckets, and reads records
only for the slice asked for; later names break ties in Python, group by
group. Everything else streams the records (``SSCAN`` + ``MGET``) through
the evaluator, as :meth:`explain` says.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import operator
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from doqu.ext.redis import index as ix
from doqu.ext.redis.keys import bytes_text, member_key, split_member
from doqu.query.base import BaseQueryAdapter, Ordering, Plan
from doqu.query.conditions import And, Leaf, Node, Not, Or, describe, walk
from doqu.query.evaluator import sort_records

if TYPE_CHECKING:
    from doqu.ext.redis.storage import StorageAdapter

__all__ = ["QueryAdapter"]

Record = dict[str, Any]
_PAGE = 256
_ZSET = {"n", "s", "d", "l", "b"}


class QueryAdapter(BaseQueryAdapter):
    """Pushes indexed conditions and orderings into Redis."""

    engine_label = "redis"
    storage: "StorageAdapter"

    # -- what the engine answers ---------------------------------------------------------
    def _supports(self, leaf: Leaf) -> bool:
        return ix.plan_leaf(leaf, self.storage._ready) is not None

    def _supports_ordering(self, ordering: Ordering) -> bool:
        return bool(ordering) and ".".join(ordering[0][0]) in self.storage._ready

    # -- index lookups -----------------------------------------------------------------------
    def _part_command(self, bucket: int, field: str, part: ix.Part, count: bool) -> tuple[Any, ...]:
        key = self.storage._layout.index(bucket, field, part.kind)
        if part.op == "score":
            return ("ZCOUNT" if count else "ZRANGEBYSCORE", key, part.lo, part.hi)
        if part.op == "lex":
            return ("ZLEXCOUNT" if count else "ZRANGEBYLEX", key, part.lo, part.hi)
        if part.op == "hash":
            return ("HLEN", key) if count and part.test is None else ("HGETALL", key)
        if part.kind == "a":
            return ("SCARD" if count else "SMEMBERS", key)
        return ("ZCARD", key) if count else ("ZRANGE", key, 0, -1)

    @staticmethod
    def _part_keys(part: ix.Part, reply: Any) -> set[bytes]:
        if part.op == "hash":
            if part.test is None:
                return set(reply)
            return {pk for pk, text in reply.items() if part.test(int(text))}
        if part.kind in ("s", "d", "l"):
            return {member_key(m) for m in reply}
        return set(reply)

    @staticmethod
    def _part_count(part: ix.Part, reply: Any) -> int:
        if part.op == "hash" and part.test is not None:
            return sum(1 for text in reply.values() if part.test(int(text)))
        return int(reply)

    def _matches(self, tree: Node) -> dict[int, set[bytes]]:
        """Per bucket, the keys of the records matching a fully indexed tree."""
        storage = self.storage
        layout = storage._layout
        plans: dict[Leaf, ix.LeafPlan] = {}
        for leaf in walk(tree):
            if leaf not in plans:
                plan = ix.plan_leaf(leaf, storage._ready)
                assert plan is not None, "the planner only sends indexed conditions here"
                plans[leaf] = plan
        universe = _has_not(tree)
        commands: list[tuple[int, tuple[Any, ...]]] = []
        slots: list[tuple[int, Leaf | None, ix.Part | None]] = []
        for bucket in range(layout.shards):
            slot = layout.slots[bucket]
            if universe:
                commands.append((slot, ("SMEMBERS", layout.keyset(bucket))))
                slots.append((bucket, None, None))
            for leaf, plan in plans.items():
                for part in plan.parts:
                    commands.append((slot, self._part_command(bucket, plan.field, part, False)))
                    slots.append((bucket, leaf, part))
        replies = storage._nodes.read(commands, "query")
        found: dict[int, dict[Leaf | None, set[bytes]]] = collections.defaultdict(
            lambda: collections.defaultdict(set))
        for (bucket, leaf, part), reply in zip(slots, replies):
            found[bucket][leaf] |= set(reply) if part is None else self._part_keys(part, reply)
        return {bucket: _evaluate(tree, found[bucket]) for bucket in range(layout.shards)}

    def _count_native(self, tree: Node | None) -> int:
        storage = self.storage
        if tree is None:
            return storage._count()
        negated = isinstance(tree, Not) and isinstance(tree.child, Leaf)
        leaf = tree.child if negated else tree
        if not isinstance(leaf, Leaf):
            return sum(len(keys) for keys in self._matches(tree).values())
        plan = ix.plan_leaf(leaf, storage._ready)
        assert plan is not None
        layout = storage._layout
        commands: list[tuple[int, tuple[Any, ...]]] = []
        parts: list[ix.Part | None] = []
        for bucket in range(layout.shards):
            slot = layout.slots[bucket]
            if negated:
                commands.append((slot, ("SCARD", layout.keyset(bucket))))
                parts.append(None)
            for part in plan.parts:
                commands.append((slot, self._part_command(bucket, plan.field, part, True)))
                parts.append(part)
        matching = total = 0
        for part, reply in zip(parts, storage._nodes.read(commands, "count")):
            if part is None:
                total += int(reply)
            else:
                matching += self._part_count(part, reply)
        return total - matching if negated else matching

    # -- reading records ------------------------------------------------------------------------
    def _load(self, keys: Sequence[bytes]) -> Iterator[tuple[str, Record]]:
        """Records for keys, in order, read in batches; keys without a record are skipped."""
        storage = self.storage
        size = storage.batch_size
        for start in range(0, len(keys), size):
            batch = [bytes_text(k) for k in keys[start:start + size]]
            raws = storage._fetch_raw(batch)
            for key in batch:
                raw = raws[key]
                if raw is not None:
                    yield key, storage._parse(key, raw)

    def _run_native(self, tree: Node | None, ordering: Ordering,
                    start: int, stop: int | None) -> Iterator[tuple[str, Record]]:
        storage = self.storage
        if tree is None and not ordering:
            return itertools.islice(storage._iter_records(), start, stop)
        matches = self._matches(tree) if tree is not None else None
        if not ordering:
            assert matches is not None
            keys = sorted(k for keys in matches.values() for k in keys)
            return self._load(keys[start:stop])
        if matches is not None and sum(map(len, matches.values())) <= storage.batch_size:
            # few matches: reading them and sorting here beats walking the whole index
            keys = sorted(k for keys in matches.values() for k in keys)
            canonical = storage._canonical
            items = sort_records(list(self._load(keys)), ordering, record=lambda it: canonical(it[1]))
            return iter(items[start:stop])
        return self._ordered(ordering, matches, start, stop)

    def _ordered(self, ordering: Ordering, matches: dict[int, set[bytes]] | None,
                 start: int, stop: int | None) -> Iterator[tuple[str, Record]]:
        path, descending = ordering[0]
        rest = ordering[1:]
        stream: Iterator[tuple[Any, bytes, int]] = self._index_stream(".".join(path), descending)
        if matches is not None:
            stream = (item for item in stream if item[1] in matches[item[2]])
        if not rest:
            keys = (pk for _, pk, _ in itertools.islice(stream, start, stop))
            while batch := list(itertools.islice(keys, self.storage.batch_size)):
                yield from self._load(batch)
            return
        canonical = self.storage._canonical
        position = 0
        for _, group in itertools.groupby(stream, key=operator.itemgetter(0)):
            if stop is not None and position >= stop:
                return
            members = [pk for _, pk, _ in group]
            if position + len(members) <= start:
                position += len(members)
                continue
            items = sort_records(list(self._load(members)), rest, record=lambda it: canonical(it[1]))
            low = max(start - position, 0)
            high = len(items) if stop is None else max(0, min(len(items), stop - position))
            yield from items[low:high]
            position += len(members)

    def _index_stream(self, field: str, descending: bool) -> Iterator[tuple[Any, bytes, int]]:
        """(sort key, key, bucket) of every record, in the order of ``field``, all buckets merged."""
        storage = self.storage
        layout = storage._layout
        sources = [_Source(storage, bucket, layout.index(bucket, field, kind), kind, descending)
                   for bucket in range(layout.shards) for kind in ix.KINDS]
        replies = storage._nodes.read([(s.slot, s.command()) for s in sources], "query")
        for source, reply in zip(sources, replies):
            source.accept(reply)
        return heapq.merge(*sources, key=operator.itemgetter(0), reverse=descending)

    def _delete_native(self, tree: Node | None) -> int:
        # the index lookups already name the keys: no need to read the records first
        if tree is None:
            keys = list(self.storage._keys())
        else:
            keys = [bytes_text(k) for found in self._matches(tree).values() for k in found]
        return self.storage._delete_keys(keys)

    # -- explain ---------------------------------------------------------------------------------
    def _describe_native(self, plan: Plan) -> str:
        storage = self.storage
        shards = storage._layout.shards
        where = f"{shards} bucket{'s' if shards != 1 else ''}, one pipeline per node"
        if plan.native is None:
            text = f"stream every record (SSCAN of the key sets + MGET; {where})"
        else:
            lookups = []
            for leaf in dict.fromkeys(walk(plan.native)):
                leaf_plan = ix.plan_leaf(leaf, storage._ready)
                assert leaf_plan is not None
                reads = " + ".join(part.describe(leaf_plan.field) for part in leaf_plan.parts) or "nothing"
                lookups.append(f"[{describe(leaf)}: {reads}]")
            negation = " (NOT: the bucket's key set minus the matches)" if _has_not(plan.native) else ""
            text = (f"index lookups {' '.join(lookups)} combined per bucket as "
                    f"{describe(plan.native)}{negation}, then MGET; {where}")
        if self._ordering and plan.native_order:
            first = ".".join(self._ordering[0][0])
            text += f"; order by walking the index of {first!r}"
            if len(self._ordering) > 1:
                text += ", ties broken in Python"
        return text


def _has_not(node: Node) -> bool:
    if isinstance(node, Not):
        return True
    if isinstance(node, (And, Or)):
        return any(_has_not(child) for child in node.children)
    return False


def _evaluate(node: Node, sets: dict[Leaf | None, set[bytes]]) -> set[bytes]:
    if isinstance(node, Leaf):
        return sets[node]
    if isinstance(node, Not):
        return sets[None] - _evaluate(node.child, sets)
    results = [_evaluate(child, sets) for child in node.children]
    if isinstance(node, And):
        results.sort(key=len)
        return set.intersection(*results) if results else set()
    return set().union(*results)


class _Source:
    """One bucket's entries of one index structure, in order, read a page at a time."""

    def __init__(self, storage: "StorageAdapter", bucket: int, key: bytes, kind: str,
                 descending: bool) -> None:
        self.storage = storage
        self.bucket = bucket
        self.slot = storage._layout.slots[bucket]
        self.key = key
        self.kind = kind
        self.rank = ix.RANK[kind]
        self.descending = descending
        self.buffer: collections.deque[tuple[Any, bytes, int]] = collections.deque()
        self.offset = 0
        self.cursor = 0
        self.done = False
        self.seen: set[bytes] = set()

    def command(self) -> tuple[Any, ...]:
        if self.kind == "a":
            return ("SSCAN", self.key, self.cursor, "COUNT", _PAGE)
        if self.kind == "N":
            return ("HGETALL", self.key)
        command: tuple[Any, ...] = ("ZRANGE", self.key, self.offset, self.offset + _PAGE - 1)
        if self.descending:
            command += ("REV",)
        if self.kind in ("n", "b"):
            command += ("WITHSCORES",)
        return command

    def accept(self, reply: Any) -> None:
        rank, bucket, out = self.rank, self.bucket, self.buffer
        if self.kind == "a":
            cursor, members = reply
            self.cursor = int(cursor)
            self.done = self.cursor == 0
            for pk in members:
                if pk not in self.seen:
                    self.seen.add(pk)
                    out.append(((rank, 0), pk, bucket))
            return
        if self.kind == "N":
            entries = sorted(((int(text), pk) for pk, text in reply.items()), reverse=self.descending)
            out.extend(((rank, value), pk, bucket) for value, pk in entries)
            self.done = True
            return
        if self.kind in ("n", "b"):
            if reply and isinstance(reply[0], (list, tuple)):  # RESP3: [member, score] pairs
                pairs = [(member, score) for member, score in reply]
            else:  # RESP2: member, score, member, score ...
                pairs = list(zip(reply[::2], reply[1::2]))
            count = len(pairs)
            for member, score in pairs:
                number = float(score)
                out.append(((rank, number if self.kind == "n" else number != 0), member, bucket))
        else:
            count = len(reply)
            for member in reply:
                text, _ = split_member(member)
                out.append(((rank, text), member_key(member), bucket))
        self.offset += _PAGE
        self.done = count < _PAGE

    def __iter__(self) -> Iterator[tuple[Any, bytes, int]]:
        while True:
            while self.buffer:
                yield self.buffer.popleft()
            if self.done:
                return
            self.accept(self.storage._nodes.read([(self.slot, self.command())], "query")[0])
