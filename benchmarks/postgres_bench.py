"""doqu's PostgreSQL backend against raw psycopg on the shared workload, with where the time goes.

    .venv/bin/python benchmarks/postgres_bench.py                  # 100,000 documents
    .venv/bin/python benchmarks/postgres_bench.py --n 20000        # quicker
    .venv/bin/python benchmarks/postgres_bench.py --profile range_indexed
    DOQU_TEST_POSTGRES_URL=postgresql://me@db:5432/bench .venv/bin/python benchmarks/postgres_bench.py

Not a test: it prints seconds and ratios and asserts nothing. The workload,
the documents and the raw baseline are the shared suite's
(``benchmarks/suite``: ``workload.OPS``, ``make_records``, and
``engines/postgres.RawPostgres``: COPY, upserts, ``data -> 'f'`` compared as
jsonb under B-trees on those expressions, plain dicts out); ``make bench``
runs the same on every engine. This script adds, for PostgreSQL alone:

* the ratio per operation by wall time (the server's work counts) and by
  this process's CPU time (steadier on a busy machine), best of ``--repeat``
  interleaved rounds;
* the split that explains the misses: for the bulk save, the backend's part
  (keys, JSON, COPY: ``_store_many`` of records already encoded) apart from
  the core's Document layer (validation, encoding); for the filters, the
  same query with and without building documents (``keys()``);
* ``--profile OP``: cProfile of doqu on one operation.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

from suite.contestants import DoquContestant, Person  # noqa: E402
from suite.engines.postgres import ENGINE  # noqa: E402
from suite.workload import BATCH, INDEXED, RANGE, TARGETS, TOP, make_records  # noqa: E402


def clock(thunk: Callable[[], Any]) -> tuple[float, float]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    thunk()
    return time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeat: int, contestants: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, float]]:
    """Best wall and best CPU of each, rounds interleaved so load hits everyone alike."""
    best: dict[str, tuple[float, float]] = {}
    names = list(contestants)
    for round_ in range(repeat):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            wall, cpu = clock(contestants[name])
            old = best.get(name)
            best[name] = (min(wall, old[0]), min(cpu, old[1])) if old else (wall, cpu)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="documents (default 100,000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per query; the best counts")
    parser.add_argument("--profile", metavar="OP", help="cProfile doqu on one operation (an id below)")
    args = parser.parse_args()
    reason = ENGINE.unavailable()
    if reason:
        sys.exit(f"PostgreSQL unavailable: {reason}")
    from pathlib import Path

    raw: Any = ENGINE.open_raw(Path("."), None)
    doqu: DoquContestant = ENGINE.open_doqu(Path("."), None)
    rows: list[tuple[str, str, dict[str, tuple[float, float]]]] = []
    splits: list[str] = []

    def run(op: str, label: str, work: Callable[[Any], Callable[[], Any]], repeat: int | None = None,
            target: str | None = None) -> None:
        if args.profile == op:
            profiler = cProfile.Profile()
            profiler.enable()
            work(doqu)()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        best = best_of(repeat or args.repeat, {"raw": work(raw), "doqu": work(doqu)})
        rows.append((op, label + (f"  [target {TARGETS[target]}x]" if target else ""), best))
        (rw, rc), (dw, dc) = best["raw"], best["doqu"]
        print(f"  {op:<16} raw {rw:8.4f}s  doqu {dw:8.4f}s  {dw / rw:5.2f}x wall  {dc / rc if rc else 0:5.2f}x cpu",
              flush=True)

    try:
        records = make_records(args.n)
        extra = make_records(1000, seed=11, first_batch=args.n // BATCH + 10)
        print(f"{args.n:,} documents; best of {args.repeat}; " + ", ".join(
            f"{k} {v}" for k, v in ENGINE.versions(None).items()))
        start = time.perf_counter()
        keys_raw = raw.bulk_save(records)
        bulk_raw = time.perf_counter() - start
        start = time.perf_counter()
        keys_doqu = doqu.bulk_save(records)
        bulk_doqu = time.perf_counter() - start
        rows.append(("bulk_save", "bulk save  [target 1.3x]", {"raw": (bulk_raw, 0.0), "doqu": (bulk_doqu, 0.0)}))
        print(f"  bulk_save        raw {bulk_raw:8.4f}s  doqu {bulk_doqu:8.4f}s  {bulk_doqu / bulk_raw:5.2f}x wall")
        # the bulk save apart, while neither table has secondary indexes
        db = doqu.db
        sample = make_records(min(args.n, 20_000), seed=5, first_batch=10 ** 6)
        docs = [Person(**r) for r in sample]
        start = time.perf_counter()
        for doc in docs:
            doc._prepare_save(db)
        encoded = [(db._new_key(), db._encode(Person, doc._outgoing_data())) for doc in docs]
        core = time.perf_counter() - start
        start = time.perf_counter()
        with db.transaction():
            db._store_many(encoded)
        engine = time.perf_counter() - start
        start = time.perf_counter()
        raw.bulk_save(sample)
        baseline = time.perf_counter() - start
        splits.append(f"  bulk save of {len(sample):,}: core (validate, encode, keys) {core:.3f}s, "
                      f"backend (JSON, COPY) "
                      f"{engine:.3f}s, raw COPY {baseline:.3f}s -> backend/raw {engine / baseline:.2f}x")
        raw.conn.execute(f"ANALYZE {raw.t}")
        doqu.db.execute(f"ANALYZE {doqu.db._qualified}")
        probe = [keys_doqu[i] for i in range(0, len(keys_doqu), max(1, len(keys_doqu) // 1000))][:1000]
        probe_raw = [keys_raw[i] for i in range(0, len(keys_raw), max(1, len(keys_raw) // 1000))][:1000]
        batch = (args.n // BATCH) // 2
        run("get", "get by key (1,000)", lambda who: (
            (lambda: [who.get(k) for k in probe_raw]) if who is raw else (lambda: [who.get(k) for k in probe])))
        run("eq_scan", f"equality, no index ({BATCH} found)", lambda who: lambda: who.find_eq("batch", batch),
            target="filter")
        run("range_scan", "range, no index (~7% found)", lambda who: lambda: who.find_range("age", *RANGE),
            target="filter")
        run("order_limit", f"order_by -score [:{TOP}]", lambda who: lambda: who.top("score", TOP))
        run("count_scan", "count equality, no index", lambda who: lambda: who.count_eq("batch", batch))
        run("values", "values(city)", lambda who: lambda: who.values("city"))
        raw.index(INDEXED)
        doqu.index(INDEXED)
        doqu.db.execute(f"ANALYZE {doqu.db._qualified}")
        run("eq_indexed", "equality, indexed", lambda who: lambda: who.find_eq("batch", batch), target="filter")
        run("range_indexed", "range, indexed", lambda who: lambda: who.find_range("age", *RANGE),
            target="filter")
        run("count_indexed", "count equality, indexed", lambda who: lambda: who.count_eq("batch", batch))
        saves = iter(extra)
        run("single_save", "single saves (200)", lambda who: lambda: [who.save(next(saves)) for _ in range(100)],
            repeat=2)

        print("\nwhere the time goes (doqu, best of rounds)")
        print("\n".join(splits))
        query_keys = {
            "eq_scan -> keys only": lambda: Person.objects(db).where(batch=batch).keys(),
            "eq_scan -> documents": lambda: list(Person.objects(db).where(batch=batch)),
            "range -> keys only": lambda: Person.objects(db).where(age__gte=RANGE[0], age__lt=RANGE[1]).keys(),
            "range -> documents": lambda: list(Person.objects(db).where(age__gte=RANGE[0], age__lt=RANGE[1])),
        }
        for label, (wall, cpu) in best_of(args.repeat, query_keys).items():
            print(f"  {label:<26} {wall:8.4f}s wall {cpu:8.4f}s cpu")
    finally:
        raw.close()
        doqu.close()

    print(f"\n{'operation':<44}{'raw wall':>10}{'doqu wall':>11}{'ratio':>8}"
          f"{'raw cpu':>10}{'doqu cpu':>10}{'ratio':>8}")
    for _, label, best in rows:
        (rw, rc), (dw, dc) = best["raw"], best["doqu"]
        cpu = f"{rc:>10.4f}{dc:>10.4f}{dc / rc:>7.2f}x" if rc else ""
        print(f"{label:<44}{rw:>10.4f}{dw:>11.4f}{dw / rw:>7.2f}x{cpu}")


if __name__ == "__main__":
    main()
