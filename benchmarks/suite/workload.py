"""The workload every contestant runs: the generated documents, the operations, how they are timed.

Documents look like an application's people records: a name, an age, one of
100 cities, a score, tags, a flag, a nested address, and ``batch``: a number
shared by exactly 100 documents whatever the size of the data, scattered
through the data by a fixed shuffle. Equality on ``batch`` therefore returns
100 documents at 10,000 documents and at a million, which is what lets the
scale section tell a full scan (grows with the data) from an index lookup
(stays flat).

Timing: every operation runs in rounds; in each round every contestant runs
it once, in an order that rotates from round to round, so a burst of load
from other processes on a shared machine hits every contestant alike. Each
run records wall time and this process's CPU time; the best round counts.
Rounds stop once the operation has used its time budget (a slow operation
runs once). Writes run a fresh batch of records or keys per round.
Per-call operations (gets, single saves, updates, deletes) stop a
contestant's round at a time budget too, and scale its time to all the
calls: a contestant that rewrites a whole file per call would otherwise
take minutes.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

CITIES = [f"City{i:02d}" for i in range(100)]
TAGS = ["red", "green", "blue", "tea", "jazz", "ski", "books", "code"]
#: Documents per ``batch`` value: what the equality filters and counts return at every size.
BATCH = 100
#: Range filter: ``RANGE[0] <= age < RANGE[1]``, about 7% of the documents.
RANGE = (30, 35)
TOP = 20
#: Fields indexed by the ``build_index`` step (before the indexed queries).
INDEXED = ("batch", "age")


def make_records(n: int, seed: int = 7, first_batch: int = 0) -> list[dict[str, Any]]:
    """``n`` documents; each ``batch`` value (from ``first_batch``) is held by ``BATCH`` of them."""
    rnd = random.Random(seed)
    slots = list(range(n))
    rnd.shuffle(slots)
    return [{
        "name": f"person{seed}-{i}",
        "age": rnd.randint(18, 90),
        "city": rnd.choice(CITIES),
        "score": round(rnd.uniform(0, 100), 3),
        "tags": rnd.sample(TAGS, rnd.randint(0, 3)),
        "active": rnd.random() < 0.5,
        "address": {"zip": f"{rnd.randint(0, 99999):05d}", "street": f"{rnd.randint(1, 300)} Main St"},
        "batch": first_batch + slots[i] // BATCH,
    } for i in range(n)]


@dataclass(frozen=True)
class Op:
    """One row of the matrix.

    ``target``: which ratio target applies (``filter``: queries returning
    documents; ``bulk``: bulk saves), for the engines the targets cover.
    """

    id: str
    label: str
    group: str
    target: str | None = None
    description: str = ""


OPS: tuple[Op, ...] = (
    Op("bulk_save", "bulk save", "write", "bulk",
       "all N documents in one save_many (raw: one executemany/COPY/pipeline in one transaction)"),
    Op("get", "get by key", "read", None, "one document per call, random keys"),
    Op("get_many", "get_many", "read", None, "the same keys in one call, documents in the keys' order"),
    Op("eq_scan", "equality filter, no index", "scan", "filter",
       f"where(batch=B): {BATCH} documents, whole data scanned"),
    Op("range_scan", "range filter, no index", "scan", "filter",
       f"where(age__gte={RANGE[0]}, age__lt={RANGE[1]}): about 7% of the documents"),
    Op("order_limit", f"order_by + limit {TOP}", "scan", None, f"order_by('-score')[:{TOP}]"),
    Op("count_scan", "count, no index", "scan", None, f"where(batch=B).count() ({BATCH})"),
    Op("values", "values", "scan", None, "values('city'): 100 distinct values"),
    Op("build_index", "build indexes", "index", None,
       f"ensure_index({', '.join(map(repr, INDEXED))}) over the N documents"),
    Op("eq_indexed", "equality filter, indexed", "indexed", "filter",
       f"where(batch=B) with an index on batch: {BATCH} documents"),
    Op("range_indexed", "range filter, indexed", "indexed", "filter",
       "the age range with an index on age"),
    Op("count_indexed", "count, indexed", "indexed", None, "where(batch=B).count() with the index"),
    Op("single_save", "single saves", "write", None,
       "Person(...).save(db): one document, one transaction per call (indexes in place)"),
    Op("update", "update", "write", None, "get, change age, save: per document"),
    Op("delete", "delete by key", "write", None, "db.delete(key): one transaction per call"),
)
OP_BY_ID = {op.id: op for op in OPS}
#: Ratio targets (doqu / raw) and the engines they cover.
TARGETS = {"filter": 1.5, "bulk": 1.3}


@dataclass
class Plan:
    """Sizes of one run: the data, the per-call operations and the rounds."""

    n: int
    calls: int = 1000  # get / get_many keys
    write_calls: int = 200  # single saves / updates / deletes per round
    write_rounds: int = 3
    max_rounds: int = 5
    min_rounds: int = 1
    budget: float = 2.0  # seconds an operation may spend on all its rounds before it stops early
    #: Seconds one contestant may spend on one round of a per-call operation (gets, single
    #: saves...): a slow one (TinyDB rewriting its file, dbm.dumb rewriting its index on
    #: every delete) stops there, and its time is scaled to all the calls.
    call_budget: float = 0.5

    @classmethod
    def for_size(cls, n: int, quick: bool = False) -> "Plan":
        if quick:
            plan = cls(n, calls=200, write_calls=50, write_rounds=2, max_rounds=2, min_rounds=1, budget=0.5,
                       call_budget=0.1)
        elif n >= 500_000:
            plan = cls(n, max_rounds=3, budget=6.0)
        else:
            plan = cls(n)
        # small data: per-call operations and writes never need more keys than there are
        plan.calls = max(1, min(plan.calls, n // 2))
        plan.write_calls = max(1, min(plan.write_calls, n // (4 * plan.write_rounds)))
        return plan


@dataclass
class Sample:
    """The best of the rounds of one contestant on one operation."""

    wall: float
    cpu: float
    rounds: int
    calls: int  # calls timed per round (a sampled contestant times fewer and is scaled)
    scaled: bool = False
    rows: int | None = None  # documents returned or counted, for the sanity check
    walls: list[float] = field(default_factory=list)
    spent: float = 0.0  # wall seconds actually spent on all rounds (unscaled)


def clock(thunk: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and process CPU seconds of one call (collected garbage first, so nobody pays for another's).

    The runner freezes the data every contestant holds (``gc.freeze``) once
    it is saved, so these collections, and the collector's passes during a
    timed call, skip the millions of objects of the stores and cost every
    contestant alike.
    """
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = thunk()
    return time.perf_counter() - wall, time.process_time() - cpu, result


class Repeat:
    """A query thunk that runs its call ``loops`` times; the runner divides its time by that."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.loops = 1

    def __call__(self) -> "Repeated":
        result = None
        for _ in range(self.loops):
            result = self.call()
        return Repeated(result, self.loops)


class Repeated:
    __slots__ = ("result", "loops")

    def __init__(self, result: Any, loops: int) -> None:
        self.result, self.loops = result, loops


#: A query faster than this is repeated within a round (after the first round) to take about
#: this long, so timer and cache noise do not swamp operations of a few microseconds.
SHORTEST = 0.02


class Partial:
    """What a per-call run that stopped at its time budget returns: calls done of those asked."""

    __slots__ = ("done", "asked")

    def __init__(self, done: int, asked: int) -> None:
        self.done, self.asked = done, asked


def calls_within(func: Callable[[Any], Any], items: Sequence[Any], budget: float, least: int = 2) -> Thunk:
    """A thunk calling ``func`` on each item, stopping once ``budget`` seconds have passed."""
    def thunk() -> Partial:
        deadline = time.perf_counter() + budget
        done = 0
        for item in items:
            func(item)
            done += 1
            if done >= least and time.perf_counter() > deadline:
                break
        return Partial(done, len(items))
    return thunk


def rows_of(result: Any) -> int | None:
    if isinstance(result, bool):
        return None
    if isinstance(result, int):
        return result
    if isinstance(result, (list, tuple)):
        return len(result)
    return None


Thunk = Callable[[], Any]


def run_rounds(contestants: Sequence[Any], make: Callable[[Any, int], Thunk | None], plan: Plan,
               max_rounds: int | None = None, min_rounds: int | None = None) -> dict[str, Sample]:
    """Run ``make(contestant, round)`` (a thunk) in rounds; the best round of each contestant counts.

    Rounds go on up to ``max_rounds`` (default ``plan.max_rounds``) and stop
    early once ``min_rounds`` (default ``plan.min_rounds``) are done and the
    operation has used its time budget, or after one round that used four
    times the budget. A contestant may return ``None`` to sit a round out (a
    slow peer rereading a whole file). A thunk that returns a
    :class:`Partial` did only part of the calls: its time is scaled up.
    """
    samples: dict[str, Sample] = {}
    spent = 0.0
    least = plan.min_rounds if min_rounds is None else min_rounds
    for number in range(plan.max_rounds if max_rounds is None else max_rounds):
        shift = number % len(contestants)
        for who in list(contestants[shift:]) + list(contestants[:shift]):
            thunk = make(who, number)
            if thunk is None:
                continue
            wall, cpu, result = clock(thunk)
            spent += wall
            took = wall
            scaled = isinstance(result, Partial) and result.done < result.asked
            if isinstance(result, Partial):
                factor = result.asked / max(1, result.done)
                wall, cpu, rows = wall * factor, cpu * factor, None
            elif isinstance(result, Repeated):
                wall, cpu, rows = wall / result.loops, cpu / result.loops, rows_of(result.result)
                if isinstance(thunk, Repeat) and result.loops == 1 and wall < SHORTEST:
                    thunk.loops = min(500, int(SHORTEST / max(wall, 1e-6)) + 1)
            else:
                rows = rows_of(result)
            old = samples.get(who.name)
            if old is None:
                samples[who.name] = old = Sample(wall, cpu, 1, 0, scaled, rows, [wall])
            else:
                old.wall, old.cpu = min(old.wall, wall), min(old.cpu, cpu)
                old.rounds += 1
                old.scaled = old.scaled or scaled
                old.walls.append(wall)
            old.spent += took
        if number + 1 >= least and spent > plan.budget:
            break
        if spent > 4 * plan.budget:
            break
    return samples
