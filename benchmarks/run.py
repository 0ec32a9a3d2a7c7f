"""doqu's benchmark suite: one workload on every engine, doqu against the raw driver, in one run.

    make bench                                   # every engine here, 10,000 and 100,000 documents
    make bench BENCH_ARGS="--engines sqlite,postgres --sizes 10000"
    make bench BENCH_ARGS="--large"              # + 1,000,000 on SQLite and PostgreSQL
    .venv/bin/python benchmarks/run.py --quick   # 2,000 documents, into a temporary directory

Not a test: it asserts nothing about speed. It writes RESULTS.md (tables),
results.json (every number) and plots/*.png into the output directory
(default: benchmarks/). See benchmarks/README.md for how to read them.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import json
import os
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from suite import engines as engine_modules  # noqa: E402
from suite import machine, report  # noqa: E402
from suite.contestants import Contestant, DoquContestant  # noqa: E402
from suite.engines import EngineSpec  # noqa: E402
from suite.workload import (  # noqa: E402
    BATCH,
    INDEXED,
    OP_BY_ID,
    RANGE,
    TARGETS,
    TOP,
    Plan,
    Repeat,
    Sample,
    calls_within,
    make_records,
    run_rounds,
)

DEFAULT_SIZES = (10_000, 100_000)
LARGE = 1_000_000
QUICK = 2_000
#: Operations profiled when they miss a target are run on at most this many documents (bulk save).
PROFILE_BULK = 50_000
#: TinyDB runs up to this size: its JSON file storage rereads the whole file on every call.
PEERS_UP_TO = 100_000


class Run:
    """Everything measured, as plain data (what results.json holds)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.data: dict[str, Any] = {
            "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
            "quick": args.quick,
            "machine": machine.describe(),
            "engines": {},
            "results": [],
            "memory": [],
            "profiles": [],
            "warnings": [],
        }
        self.started = time.perf_counter()

    def warn(self, text: str) -> None:
        print(f"  warning: {text}", flush=True)
        self.data["warnings"].append(text)


def _short(path: str) -> str:
    """A profile entry's file, relative to the package or library it belongs to."""
    for marker in ("site-packages/", "/benchmarks/"):
        if marker in path:
            return path.split(marker, 1)[1]
    if "/doqu/" in path:
        return "doqu/" + path.rsplit("/doqu/", 1)[1]
    stdlib = re.search(r"/lib/python3\.\d+/(.*)", path)
    if stdlib:
        return stdlib.group(1)
    return path


def _area(path: str, func: str) -> str:
    """Which layer a profiled function belongs to."""
    if path == "~" or path.startswith("<"):
        name = func.lower()
        if any(word in name for word in ("recv", "select", "poll", "wait", "send", "sock", "flush")):
            return "socket I/O (includes waiting for the server)"
        if "json" in name or "scanner" in name or "encode" in name or "decode" in name:
            return "json (C)"
        if "sqlite3" in name or "psycopg" in name:
            return "engine library / driver (C)"
        return "builtins (C)"
    if "site-packages" in path:
        return "driver: " + path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/doqu/ext/" in path:
        return "doqu backend"
    if "/doqu/" in path:
        return "doqu core"
    if "/json/" in path:
        return "json (Python)"
    if "/benchmarks/" in path:
        return "benchmark harness"
    return "python stdlib"


def profile(thunk: Callable[[], Any], top: int = 14, at_least: float = 0.0) -> dict[str, Any]:
    """cProfile ``thunk``: where the time goes, by function (own time) and by layer.

    Calls it again until ``at_least`` seconds have passed (at most 50
    calls), so a query of a few milliseconds still gives steady shares.
    """
    profiler = cProfile.Profile()
    calls, started = 0, time.perf_counter()
    while True:
        profiler.enable()
        thunk()
        profiler.disable()
        calls += 1
        if time.perf_counter() - started >= at_least or calls >= 50:
            break
    stats = pstats.Stats(profiler)
    total = stats.total_tt or 1e-12  # type: ignore[attr-defined]
    entries = []
    areas: dict[str, float] = {}
    for (path, line, func), (_primitive, count, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        area = _area(path, func)
        areas[area] = areas.get(area, 0.0) + own
        entries.append({"function": f"{_short(path)}:{line}({func})" if path != "~" else func,
                        "area": area, "calls": count, "own": own, "cumulative": cumulative,
                        "share": own / total})
    entries.sort(key=lambda e: -e["own"])
    return {"total": total, "calls": calls, "top": entries[:top],
            "areas": sorted(({"area": a, "own": t, "share": t / total} for a, t in areas.items()),
                            key=lambda e: -e["own"])}


def ratio(samples: dict[str, Sample], metric: str, who: str = "doqu") -> float | None:
    mine, raw = samples.get(who), samples.get("raw")
    if mine is None or raw is None:
        return None
    a, b = getattr(mine, metric), getattr(raw, metric)
    return a / b if b > 0 else None


def run_size(spec: EngineSpec, env: Any, n: int, plan: Plan, run: Run, do_profile: bool) -> None:
    """The whole matrix on ``n`` documents: fresh stores, every operation, then cleanup."""
    workdir = Path(tempfile.mkdtemp(prefix=f"doqu-bench-{spec.name}-"))
    contestants: list[Contestant] = []
    try:
        contestants.append(spec.open_doqu(workdir, env))
        contestants.append(spec.open_raw(workdir, env))
        if n <= PEERS_UP_TO:
            contestants.extend(spec.peers(workdir))
        _run_matrix(spec, env, n, plan, run, do_profile, contestants, workdir)
    finally:
        for who in contestants:
            try:
                who.close()
            except Exception as exc:  # keep going: the next engine still runs
                run.warn(f"{spec.name}: closing {who.name} failed: {exc!r}")
        contestants.clear()
        gc.unfreeze()
        gc.collect()
        shutil.rmtree(workdir, ignore_errors=True)


def _run_matrix(spec: EngineSpec, env: Any, n: int, plan: Plan, run: Run, do_profile: bool,
                contestants: list[Contestant], workdir: Path) -> None:
    doqu = contestants[0]
    assert isinstance(doqu, DoquContestant)
    records = make_records(n)
    rnd = random.Random(3)
    keys: dict[str, list[str]] = {}
    probe = rnd.sample(range(n), min(plan.calls, n))
    writes = plan.write_calls * plan.write_rounds
    spare = rnd.sample(range(n), min(n, 2 * writes))
    update_at, delete_at = spare[:writes], spare[writes:]
    extra = make_records(writes, seed=11, first_batch=n // BATCH + 1)
    batch = (n // BATCH) // 2

    def record(op_id: str, samples: dict[str, Sample], calls: int | None = None) -> None:
        op = OP_BY_ID[op_id]
        rows = {name: s.rows for name, s in samples.items() if s.rows is not None}
        if op.group in ("scan", "indexed") and len(set(rows.values())) > 1:
            run.warn(f"{spec.name} {n}: {op_id} returned different sizes: {rows}")
        for name, s in samples.items():
            who = next(c for c in contestants if c.name == name)
            docs = _documents(op_id, n, calls, s.rows)
            run.data["results"].append({
                "engine": spec.name, "size": n, "op": op_id, "contestant": name, "label": who.label,
                "wall": s.wall, "cpu": s.cpu, "rounds": s.rounds, "calls": calls, "scaled": s.scaled,
                "rows": s.rows, "documents": docs,
                "docs_per_s": (docs / getattr(s, spec.metric)) if docs and getattr(s, spec.metric) > 0 else None,
                "indexed": who.has_indexes if op.group == "indexed" else None,
                "walls": [round(w, 6) for w in s.walls], "spent": round(s.spent, 3),
            })
        r = ratio(samples, spec.metric)
        line = "  ".join(f"{name}={getattr(s, spec.metric):.4f}s" for name, s in samples.items())
        spent = sum(s.spent for s in samples.values())
        print(f"  {spec.name:<13} {n:>9,} {op_id:<14} {line}" + (f"  doqu/raw {r:.2f}x" if r else "")
              + f"  [{spent:.1f}s]", flush=True)
        if do_profile and op.target and op.target in spec.targets and r is not None \
                and r > TARGETS[op.target]:
            _profile_miss(spec, env, n, op_id, r, run, doqu, records, batch, workdir)

    def per_call(method: str, items: Callable[[Contestant, int], list[Any]]) -> Callable[..., Any]:
        """One call of ``method`` per item, within the plan's per-round time budget."""
        def make(who: Contestant, number: int) -> Any:
            if who.max_rounds is not None and number >= who.max_rounds:
                return None
            return calls_within(getattr(who, method), items(who, number), plan.call_budget)
        return make

    def at(positions: Callable[[int], list[int]]) -> Callable[[Contestant, int], list[str]]:
        return lambda who, number: [keys[who.name][i] for i in positions(number)]

    def query(call: Callable[[Contestant], Any]) -> Callable[..., Any]:
        """The same call every round; a fast one is repeated within later rounds (``Repeat``)."""
        thunks: dict[str, Repeat] = {}

        def make(who: Contestant, number: int) -> Any:
            if who.max_rounds is not None and number >= who.max_rounds:
                return None
            if who.name not in thunks:
                thunks[who.name] = Repeat(lambda: call(who))
            return thunks[who.name]
        return make

    def once(call: Callable[[Contestant], Any]) -> Callable[..., Any]:
        return lambda who, number: (lambda: call(who))

    # -- writes that build the data ----------------------------------------------------
    def bulk(who: Contestant, number: int) -> Any:
        def thunk() -> list[str]:
            keys[who.name] = who.bulk_save(records)
            return keys[who.name]
        return thunk

    record("bulk_save", run_rounds(contestants, bulk, plan, max_rounds=1), n)
    for who in contestants:
        if len(keys[who.name]) != n:
            raise RuntimeError(f"{spec.name}: {who.name} saved {len(keys[who.name])} of {n}")
    gc.collect()
    gc.freeze()  # the stores' objects: later collections skip them (see workload.clock)

    # -- reads --------------------------------------------------------------------------
    record("get", run_rounds(contestants, per_call("get", at(lambda r: probe)), plan), len(probe))
    record("get_many", run_rounds(contestants, query(lambda who: who.get_many([keys[who.name][i] for i in probe])),
                                  plan), len(probe))
    record("eq_scan", run_rounds(contestants, query(lambda who: who.find_eq("batch", batch)), plan))
    record("range_scan", run_rounds(contestants, query(lambda who: who.find_range("age", *RANGE)), plan))
    record("order_limit", run_rounds(contestants, query(lambda who: who.top("score", TOP)), plan))
    record("count_scan", run_rounds(contestants, query(lambda who: who.count_eq("batch", batch)), plan))
    record("values", run_rounds(contestants, query(lambda who: who.values("city")), plan))

    # -- memory while iterating every document (doqu only) ---------------------------------
    tracemalloc.start()
    try:
        seen = doqu.iterate()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    run.data["memory"].append({"engine": spec.name, "size": n, "peak_bytes": peak, "documents": seen})
    print(f"  {spec.name:<13} {n:>9,} iterate all    peak traced memory {peak / 1024:,.0f} KiB "
          f"({seen:,} documents)", flush=True)

    # -- indexes and indexed queries (skipped where doqu has no indexes: they would scan again) --
    if doqu.has_indexes:
        record("build_index", run_rounds(contestants, once(lambda who: who.index(INDEXED)), plan, max_rounds=1))
        record("eq_indexed", run_rounds(contestants, query(lambda who: who.find_eq("batch", batch)), plan))
        record("range_indexed", run_rounds(contestants, query(lambda who: who.find_range("age", *RANGE)), plan))
        record("count_indexed", run_rounds(contestants, query(lambda who: who.count_eq("batch", batch)), plan))
    else:
        run.data["engines"][spec.name]["no_index"] = True

    # -- per-document writes, a fresh slice of records or keys per round ----------------------
    w, rounds = plan.write_calls, plan.write_rounds
    record("single_save", run_rounds(contestants, per_call("save", lambda who, r: extra[r * w:(r + 1) * w]),
                                     plan, max_rounds=rounds, min_rounds=1), w)
    record("update", run_rounds(contestants, per_call("update", at(lambda r: update_at[r * w:(r + 1) * w])),
                                plan, max_rounds=rounds, min_rounds=1), w)
    record("delete", run_rounds(contestants, per_call("delete", at(lambda r: delete_at[r * w:(r + 1) * w])),
                                plan, max_rounds=rounds, min_rounds=1), w)


def _documents(op_id: str, n: int, calls: int | None, rows: int | None) -> int | None:
    """Documents an operation handles: written, read, returned, counted, or (values) scanned."""
    if op_id in ("bulk_save", "build_index", "values"):
        return n
    if calls is not None:
        return calls
    return rows


def _profile_miss(spec: EngineSpec, env: Any, n: int, op_id: str, found: float, run: Run,
                  doqu: DoquContestant, records: list[dict[str, Any]], batch: int, workdir: Path) -> None:
    """cProfile doqu's side of an operation that missed its target."""
    if op_id == "bulk_save":
        size = min(n, PROFILE_BULK)
        scratch = workdir / "profile"
        scratch.mkdir(exist_ok=True)
        fresh = spec.open_doqu(scratch, env)
        try:
            result = profile(lambda: fresh.bulk_save(records[:size]))
        finally:
            fresh.close()
    else:
        size = n
        calls: dict[str, Callable[[], Any]] = {
            "eq_scan": lambda: doqu.find_eq("batch", batch),
            "eq_indexed": lambda: doqu.find_eq("batch", batch),
            "range_scan": lambda: doqu.find_range("age", *RANGE),
            "range_indexed": lambda: doqu.find_range("age", *RANGE),
        }
        result = profile(calls[op_id], at_least=0.1 if run.data["quick"] else 1.0)
    result.update({"engine": spec.name, "size": n, "profiled_documents": size, "op": op_id,
                   "ratio": found, "target": TARGETS[OP_BY_ID[op_id].target or ""]})
    run.data["profiles"].append(result)
    top = ", ".join(f"{a['area']} {a['share']:.0%}" for a in result["areas"][:4])
    print(f"  {spec.name:<13} {n:>9,} {op_id:<14} profiled (ratio {found:.2f}x): {top}", flush=True)


def sizes_for(spec: EngineSpec, args: argparse.Namespace) -> list[int]:
    if args.sizes:
        return args.sizes
    if args.quick:
        return [QUICK]
    sizes = list(spec.default_sizes or DEFAULT_SIZES)
    if spec.max_size is not None:
        sizes = [s for s in sizes if s <= spec.max_size] or [min(sizes)]
    if args.large and spec.large:
        sizes.append(LARGE)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", help=f"comma-separated, from: {', '.join(engine_modules.NAMES)} "
                                          f"(default: every engine available here)")
    parser.add_argument("--sizes", type=lambda text: [int(x.replace("_", "")) for x in text.split(",")],
                        help="comma-separated document counts (default 10000,100000)")
    parser.add_argument("--large", action="store_true",
                        help=f"also {LARGE:,} documents on the engines that take it (SQLite, PostgreSQL)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK:,} documents, fewer rounds, output to a temporary directory")
    parser.add_argument("--out", type=Path, help="where RESULTS.md, results.json and plots/ go "
                                                 "(default: benchmarks/; with --quick a temporary directory)")
    parser.add_argument("--no-profile", action="store_true", help="do not cProfile the misses")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    parser.add_argument("--from-json", type=Path, metavar="RESULTS_JSON",
                        help="run nothing: write RESULTS.md and the plots again from a results.json")
    args = parser.parse_args(argv)
    if args.from_json:
        out = args.out or args.from_json.parent
        data = json.loads(args.from_json.read_text(encoding="utf-8"))
        out.mkdir(parents=True, exist_ok=True)
        report.write_markdown(data, out / "RESULTS.md")
        if not args.no_plots:
            report.write_plots(data, out / "plots")
        print(f"wrote {out / 'RESULTS.md'}" + ("" if args.no_plots else f" and {out / 'plots'}/"))
        return 0

    names = tuple(engine_modules.NAMES)
    if args.engines:
        wanted = tuple(x.strip() for x in args.engines.split(",") if x.strip())
        unknown = [x for x in wanted if x not in names]
        if unknown:
            parser.error(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = tuple(x for x in names if x in wanted)
    out = args.out or (Path(tempfile.gettempdir()) / "doqu-bench-quick" if args.quick else HERE)
    out.mkdir(parents=True, exist_ok=True)

    run = Run(args)
    specs = engine_modules.load(names)
    for spec in specs:
        entry: dict[str, Any] = {"title": spec.title, "raw": spec.raw_label, "metric": spec.metric,
                                 "stand_in": spec.stand_in, "targets": sorted(spec.targets),
                                 "notes": list(spec.notes), "sizes": []}
        run.data["engines"][spec.name] = entry
        reason = spec.unavailable()
        if reason:
            entry["skipped"] = reason
            print(f"{spec.name}: skipped: {reason}", flush=True)
            continue
        sizes = sizes_for(spec, args)
        print(f"{spec.name}: {', '.join(f'{s:,}' for s in sizes)} documents "
              f"({'CPU' if spec.metric == 'cpu' else 'wall'} time)", flush=True)
        started = time.perf_counter()
        try:
            with spec.environment() as env:
                entry["versions"] = spec.versions(env)
                for n in sizes:
                    plan = Plan.for_size(n, quick=args.quick)
                    run_size(spec, env, n, plan, run, not args.no_profile and n == max(sizes))
                    entry["sizes"].append(n)
        except Exception as exc:
            traceback.print_exc()
            entry["error"] = f"{type(exc).__name__}: {exc}"
            run.warn(f"{spec.name} stopped: {entry['error']}")
        entry["seconds"] = round(time.perf_counter() - started, 1)
        _dump(run, out, partial=True)

    run.data["machine"]["load_average_end"] = machine.load_average()
    run.data["seconds"] = round(time.perf_counter() - run.started, 1)
    from suite.peers import version as tinydb_version

    run.data["tinydb"] = tinydb_version()
    _dump(run, out, partial=False)
    report.write_markdown(run.data, out / "RESULTS.md")
    if not args.no_plots:
        report.write_plots(run.data, out / "plots")
    print(f"\nwrote {out / 'RESULTS.md'}, {out / 'results.json'}"
          + ("" if args.no_plots else f", {out / 'plots'}/") + f" in {run.data['seconds']:.0f} s")
    return 0


def _dump(run: Run, out: Path, partial: bool) -> None:
    run.data["partial"] = partial
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(run.data, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(out / "results.json")


if __name__ == "__main__":
    sys.exit(main())
