"""RESULTS.md and the plots, from the data ``run.py`` collects (the same data as results.json)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from suite.workload import OP_BY_ID, OPS, TARGETS

#: Operations in the scale section: (op id, expected behaviour).
SCALE_OPS = (("eq_scan", "scan"), ("eq_indexed", "flat"), ("count_scan", "scan"),
             ("count_indexed", "flat"), ("range_indexed", "result"))
#: An indexed operation counts as flat while it grows at most this much for 10x the data.
FLAT = 2.5
EMBEDDED = ("memory", "shelve", "sqlite", "tokyo_cabinet")


# -- lookups -----------------------------------------------------------------------------

class Table:
    """Index over the result rows: (engine, size, op, contestant) -> row."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.rows = {(r["engine"], r["size"], r["op"], r["contestant"]): r for r in data["results"]}
        self.engines = [name for name, e in data["engines"].items() if e.get("sizes")]
        self.sizes = sorted({r["size"] for r in data["results"]})

    def metric(self, engine: str) -> str:
        return str(self.data["engines"][engine]["metric"])

    def time(self, engine: str, size: int, op: str, who: str = "doqu") -> float | None:
        row = self.rows.get((engine, size, op, who))
        return None if row is None else float(row[self.metric(engine)])

    def ratio(self, engine: str, size: int, op: str, who: str = "doqu", base: str = "raw") -> float | None:
        mine, raw = self.time(engine, size, op, who), self.time(engine, size, op, base)
        if mine is None or raw is None or raw <= 0:
            return None
        return mine / raw

    def missed(self, engine: str, op: str, value: float | None) -> bool:
        target = OP_BY_ID[op].target
        spec = self.data["engines"][engine]
        return (value is not None and target is not None and target in spec.get("targets", ())
                and value > TARGETS[target])

    def indexed(self, engine: str, size: int, op: str, who: str = "doqu") -> bool:
        row = self.rows.get((engine, size, op, who))
        return bool(row and row.get("indexed"))

    def no_index(self, engine: str) -> bool:
        """doqu has no indexes on this engine: the indexed steps did not run."""
        return bool(self.data["engines"][engine].get("no_index"))

    def header(self, engine: str) -> str:
        spec = self.data["engines"][engine]
        return f"{engine}{' †' if spec.get('stand_in') else ''}"


# -- formatting ----------------------------------------------------------------------------

def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} µs"


def rate(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e3:
        return f"{value / 1e3:.0f}k" if value >= 1e4 else f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _table(head: list[str], rows: Iterable[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] + ["--:"] * (len(head) - 1)
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


# -- markdown ---------------------------------------------------------------------------------

def write_markdown(data: dict[str, Any], path: Path) -> None:
    path.write_text("\n".join(markdown(data)) + "\n", encoding="utf-8")


def markdown(data: dict[str, Any]) -> list[str]:
    t = Table(data)
    m = data["machine"]
    minutes = data.get("seconds", 0) / 60
    out = ["# Benchmark results", "",
           f"Written by `benchmarks/run.py` (`{data['command']}`) on {data['generated']}, "
           f"in {minutes:.1f} minutes." + (" **Quick mode: 2,000 documents, fewer rounds; for "
                                            "development only.**" if data.get("quick") else ""),
           "How to read it, and what the numbers mean for doqu: `benchmarks/README.md`, "
           "section \"Speed\". Every number is also in `results.json`.", ""]
    out += ["## Machine", ""]
    load = f"{m.get('load_average_start')} at the start, {m.get('load_average_end')} at the end"
    out += _table(["", ""], [
        ["CPU", f"{m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable)"],
        ["memory", f"{m['memory_gib']} GiB"],
        ["OS", m["os"]],
        ["Python", m["python"]],
        ["load average (1, 5, 15 min)", load + " (other work shared the machine; see \"metric\")"],
    ], ["---", "---"])
    out += ["", "Engines, drivers and how each side runs (metric: what the times and ratios use, "
                "`cpu` = this process's CPU time, `wall` = elapsed time):", ""]
    rows = []
    for name, spec in data["engines"].items():
        versions = ", ".join(f"{k} {v}" for k, v in (spec.get("versions") or {}).items())
        state = spec.get("skipped") and f"skipped: {spec['skipped']}" or spec.get("error") or \
            ", ".join(f"{s:,}" for s in spec.get("sizes", []))
        rows.append([t.header(name), spec["raw"], spec["metric"], versions or "–", state])
    out += _table(["engine", "raw baseline", "metric", "versions", "documents"], rows,
                  ["---", "---", "---", "---", "---"])
    notes = [(n, note) for n, s in data["engines"].items() for note in s.get("notes", ())]
    if notes:
        out += [""] + [f"- {name}: {note}." for name, note in notes]
    stand_ins = [(n, s["stand_in"]) for n, s in data["engines"].items() if s.get("stand_in")]
    if stand_ins:
        out += [""] + [f"† **stand-in**: {name} runs on {what}, not on the real engine; its times say "
                       f"how doqu's backend code performs, not how the real engine would."
                       for name, what in stand_ins]
    if data.get("tinydb"):
        out += ["", f"Peer: TinyDB {data['tinydb']} (MemoryStorage beside `memory`, JSON file storage "
                    f"beside `sqlite`), query cache off."]

    for size in t.sizes:
        engines = [e for e in t.engines if size in data["engines"][e]["sizes"]]
        if not engines:
            continue
        out += ["", f"## doqu ÷ raw driver, {size:,} documents", "",
                "Each cell: doqu's time divided by the raw driver's time for the same work (1.00 = "
                "as fast; below 1 = doqu faster). **⚠** = above its target (filters returning "
                "documents ≤ 1.5 on SQLite and the servers; bulk save ≤ 1.3 on the servers). "
                "*(no index)*: doqu has no indexes on this engine, so the indexed steps do not run "
                "(they would scan again). *(scan)*: the raw side's engine ignores indexes.", ""]
        rows = []
        for op in OPS:
            row = [op.label]
            for engine in engines:
                value = t.ratio(engine, size, op.id)
                if op.group in ("index", "indexed") and t.no_index(engine):
                    row.append("*(no index)*")
                    continue
                cell = "–" if value is None else f"{value:.2f}"
                if t.missed(engine, op.id, value):
                    cell = f"**{cell} ⚠**"
                if op.group == "indexed" and value is not None and not t.indexed(engine, size, op.id, "raw"):
                    cell += " *(scan)*"
                row.append(cell)
            rows.append(row)
        out += _table(["operation"] + [t.header(e) for e in engines], rows)

        out += ["", f"### Throughput, {size:,} documents: doqu · raw, documents per second", "",
                "Documents written, read, returned or counted per second (values: documents "
                "scanned; build indexes: documents indexed).", ""]
        rows = []
        for op in OPS:
            row = [op.label]
            for engine in engines:
                d, r = (t.rows.get((engine, size, op.id, w)) for w in ("doqu", "raw"))
                if op.group in ("index", "indexed") and t.no_index(engine):
                    row.append("–")
                    continue
                row.append(f"{rate(d and d['docs_per_s'])} · {rate(r and r['docs_per_s'])}")
            rows.append(row)
        out += _table(["operation"] + [t.header(e) for e in engines], rows)

        out += _peers(t, size)

    out += _scale(t)
    out += _memory(t)
    out += _profiles(data)
    out += ["", "## Operations", ""]
    out += _table(["operation", "what runs"], [[op.label, op.description] for op in OPS], ["---", "---"])
    if data.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {w}" for w in data["warnings"]]
    if data.get("partial"):
        out += ["", "**This run did not finish: the tables above are partial.**"]
    return out


def _peers(t: Table, size: int) -> list[str]:
    columns = [("memory", "doqu"), ("memory", "tinydb-memory"), ("sqlite", "doqu"), ("shelve", "doqu"),
               ("tokyo_cabinet", "doqu"), ("sqlite", "tinydb-json")]
    columns = [(e, w) for e, w in columns if (e, size, "bulk_save", w) in t.rows]
    if not any(w.startswith("tinydb") for _, w in columns):
        return []
    head = ["operation"] + [("TinyDB memory" if w == "tinydb-memory" else "TinyDB JSON file"
                             if w == "tinydb-json" else f"doqu {e}") for e, w in columns]
    pairs = [(("memory", "tinydb-memory"), ("memory", "doqu"), "TinyDB memory ÷ doqu memory"),
             (("sqlite", "tinydb-json"), ("sqlite", "doqu"), "TinyDB JSON ÷ doqu sqlite")]
    pairs = [p for p in pairs if p[0] in columns and p[1] in columns]
    head += [label for _, _, label in pairs]
    rows = []
    for op in OPS:
        row = [op.label]
        for engine, who in columns:
            found = t.rows.get((engine, size, op.id, who))
            cell = seconds(t.time(engine, size, op.id, who)) if found else "–"
            if found and found.get("scaled"):
                cell += " ~"
            row.append(cell)
        for (pe, pw), (de, dw), _ in pairs:
            mine, theirs = t.time(pe, size, op.id, pw), t.time(de, size, op.id, dw)
            row.append(_times(mine / theirs) if mine and theirs and op.id != "build_index" else "–")
        rows.append(row)
    return ["", f"### TinyDB beside the embedded engines, {size:,} documents", "",
            "CPU seconds per operation (whole operation: e.g. 1,000 gets). TinyDB has no indexes, "
            "so its indexed steps scan. ~ = timed on the calls done within the time budget and "
            "scaled to all of them (every call of TinyDB's JSON storage rereads the whole file, "
            "every write of either storage rewrites the whole table).", ""] + _table(head, rows)


def _times(value: float) -> str:
    """A ratio with two significant digits (0.031, 0.45, 3.2, 180)."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.2g}" if value < 10 else f"{value:.1f}"


def _growth(values: list[float | None]) -> str:
    parts = []
    for before, after in zip(values, values[1:]):
        parts.append("–" if not before or not after else f"×{after / before:.1f}")
    return ", ".join(parts)


def _scale(t: Table) -> list[str]:
    engines = [e for e in t.engines if len(t.data["engines"][e]["sizes"]) > 1]
    if not engines:
        return []
    out = ["", "## Scale: how time grows with the data", "",
           "doqu's time at each size, and how much it grew from one size to the next. The data "
           "grows ×10 per step. Scans should grow about as much; an indexed lookup returning the "
           f"same {100} documents at every size should stay nearly flat (✓: at most ×{FLAT} per "
           "step; ⚠: more; *(no index)*: doqu has no indexes on this engine). The range filter "
           "returns 7% of the data, so it grows with the data even through an index.", ""]
    head = ["engine"] + [OP_BY_ID[op].label for op, _ in SCALE_OPS]
    rows = []
    for engine in engines:
        sizes = t.data["engines"][engine]["sizes"]
        row = [t.header(engine) + " (" + " → ".join(_k(s) for s in sizes) + ")"]
        for op, kind in SCALE_OPS:
            if OP_BY_ID[op].group == "indexed" and t.no_index(engine):
                row.append("*(no index)*")
                continue
            values = [t.time(engine, s, op) for s in sizes]
            cell = " → ".join(seconds(v) for v in values) + f" ({_growth(values)})"
            if kind == "flat":
                steps = [b / a for a, b in zip(values, values[1:]) if a and b]
                cell += " ✓" if steps and max(steps) <= FLAT else " ⚠"
            row.append(cell)
        rows.append(row)
    return out + _table(head, rows, ["---"] + ["---"] * len(SCALE_OPS))


def _k(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 and size % 1_000_000 == 0 else f"{size // 1000}k"


def _memory(t: Table) -> list[str]:
    by_engine: dict[str, dict[int, int]] = defaultdict(dict)
    for entry in t.data["memory"]:
        by_engine[entry["engine"]][entry["size"]] = entry["peak_bytes"]
    if not by_engine:
        return []
    out = ["", "## Memory while iterating every document", "",
           "Peak memory traced by `tracemalloc` while `for doc in Person.objects(db)` walks every "
           "document (Python allocations during the loop; memory the engine's C library or server "
           "holds is not traced). Streaming keeps it flat as the data grows.", ""]
    rows = []
    for engine, peaks in by_engine.items():
        sizes = sorted(peaks)
        values: list[float | None] = [float(peaks[s]) for s in sizes]
        rows.append([t.header(engine), " → ".join(f"{peaks[s] / 1024:,.0f} KiB ({_k(s)})" for s in sizes),
                     _growth(values) or "–"])
    return out + _table(["engine", "peak", "growth"], rows, ["---", "---", "--:"])


def _profiles(data: dict[str, Any]) -> list[str]:
    if not data["profiles"]:
        return []
    out = ["", "## Where the time goes: the operations above their targets", "",
           "doqu's side of each miss, run once under cProfile (the profiler slows Python code "
           "more than C code, so shares are a guide, not a measurement). *Own time*: time spent "
           "in the function itself. For the servers, time waiting for the server's answer shows "
           "up as socket I/O.", ""]
    for p in data["profiles"]:
        op = OP_BY_ID[p["op"]]
        runs = p.get("calls", 1)
        out += [f"### {p['engine']}, {op.label}: {p['ratio']:.2f}× (target {p['target']}), "
                f"{p['profiled_documents']:,} documents", "",
                f"Profiled over {runs} call{'s' if runs != 1 else ''}; "
                f"{p['total']:.2f} s under the profiler.", ""]
        out += ["By layer: " + "; ".join(f"{a['area']} {a['share']:.0%}" for a in p["areas"][:6]
                                         if a["share"] >= 0.005), ""]
        rows = [[f"`{e['function']}`", f"{e['calls']:,}", f"{e['own']:.3f}", f"{e['share']:.0%}"]
                for e in p["top"][:10]]
        out += _table(["function", "calls", "own s", "share"], rows, ["---", "--:", "--:", "--:"])
        out += [""]
    return out


# -- plots ------------------------------------------------------------------------------------

def write_plots(data: dict[str, Any], folder: Path) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install 'doqu[bench]'): no plots")
        return []
    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    t = Table(data)
    written = []
    for size in t.sizes:
        target = folder / f"ratios_{size}.png"
        if _plot_ratios(t, size, target):
            written.append(target)
    target = folder / "scaling.png"
    if _plot_scaling(t, target):
        written.append(target)
    return written


def _plot_ratios(t: Table, size: int, target: Path) -> bool:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap, LogNorm

    engines = [e for e in t.engines if size in t.data["engines"][e]["sizes"]]
    if not engines:
        return False
    grid = [[None if (op.group in ("index", "indexed") and t.no_index(e)) else t.ratio(e, size, op.id)
             for e in engines] for op in OPS]
    present = [v for row in grid for v in row if v]
    if not present:
        return False
    fig, ax = plt.subplots(figsize=(max(1.25 * len(engines) + 3.6, 8.5), 0.48 * len(OPS) + 2.2), dpi=110)
    low, high = 0.5, 16.0

    def at(v: float) -> float:
        return math.log(v / low) / math.log(high / low)

    # green below 1, white at 1, yellow at the targets, red from 4 up
    cmap = LinearSegmentedColormap.from_list("ratio", [
        (0.0, "#2e7d32"), (at(1.0), "#f7f7f7"), (at(1.5), "#fbe7a1"), (at(4.0), "#f08c00"), (1.0, "#b71c1c")])
    norm = LogNorm(vmin=low, vmax=high)
    masked = [[(v if v else float("nan")) for v in row] for row in grid]
    ax.imshow(masked, cmap=cmap, norm=norm, aspect="auto")
    marks: set[str] = set()
    for i, op in enumerate(OPS):
        for j, engine in enumerate(engines):
            v = grid[i][j]
            if v is None:
                if op.group in ("index", "indexed") and t.no_index(engine):
                    ax.text(j, i, "no index", ha="center", va="center", fontsize=8, color="grey")
                continue
            text = f"{v:.2f}" if v < 10 else f"{v:.0f}"
            missed = t.missed(engine, op.id, v)
            if missed:
                marks.add("! above target")
            if op.group == "indexed" and not t.indexed(engine, size, op.id, "raw"):
                text += "*"
                marks.add("* the raw side's engine ignores indexes")
            ax.text(j, i, text + (" !" if missed else ""), ha="center", va="center", fontsize=9,
                    fontweight="bold" if missed else "normal",
                    color="white" if v > 6 or v < 0.6 else "black")
    ax.set_xticks(range(len(engines)))
    ax.set_xticklabels([t.header(e) for e in engines], rotation=30, ha="right")
    ax.set_yticks(range(len(OPS)))
    ax.set_yticklabels([op.label for op in OPS])
    if any(t.data["engines"][e].get("stand_in") for e in engines):
        marks.add("† stand-in")
    legend = "   ".join(sorted(marks, key=lambda m: "!*†".index(m[0])))
    ax.set_title(f"doqu ÷ raw driver, {size:,} documents (lower is better; 1 = as fast)"
                 + (f"\n{legend}" if legend else ""), fontsize=10)
    ax.set_xticks([x - 0.5 for x in range(1, len(engines))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(OPS))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(ax.images[0], ax=ax, fraction=0.03, pad=0.02, label="doqu ÷ raw (log scale)")
    ticks = [0.5, 1, 1.5, 2, 4, 8, 16]
    bar.set_ticks(ticks)
    bar.set_ticklabels([f"{x:g}" for x in ticks])
    bar.ax.minorticks_off()
    fig.tight_layout()
    fig.savefig(target)
    plt.close(fig)
    return True


def _plot_scaling(t: Table, target: Path) -> bool:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    engines = [e for e in t.engines if len(t.data["engines"][e]["sizes"]) > 1]
    if not engines:
        return False
    panels = [(op, kind) for op, kind in SCALE_OPS] + [("memory", "flat")]
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), dpi=100)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {e: (colours[i % len(colours)], "-" if i < len(colours) else "--") for i, e in enumerate(engines)}
    memory: dict[str, dict[int, int]] = defaultdict(dict)
    for entry in t.data["memory"]:
        memory[entry["engine"]][entry["size"]] = entry["peak_bytes"]
    all_sizes = sorted({s for e in engines for s in t.data["engines"][e]["sizes"]})
    for ax, (op, kind) in zip(axes.flat, panels):
        for engine in engines:
            sizes = t.data["engines"][engine]["sizes"]
            if op == "memory":
                ys = [memory[engine].get(s) for s in sizes]
                ys = [y / 1024 if y is not None else None for y in ys]
            else:
                ys = [t.time(engine, s, op) for s in sizes]
            points = [(s, y) for s, y in zip(sizes, ys) if y]
            if not points:
                continue
            colour, style = styles[engine]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colour,
                    linestyle=style, label=t.header(engine))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(all_sizes)
        ax.set_xticklabels([_k(s) for s in all_sizes])
        ax.minorticks_off()
        _decades(ax, len(all_sizes))
        if op == "memory":
            ax.set_title("peak traced memory, iterating every document\n(flat = streams)", fontsize=10)
            ax.set_ylabel("KiB")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: seconds(v)))
            expect = {"scan": "grows ×10 per ×10 data", "flat": "should stay flat",
                      "result": "result grows with the data"}[kind]
            ax.set_title(f"{OP_BY_ID[op].label}\n({expect})", fontsize=10)
            ax.set_ylabel("seconds (doqu)")
        ax.set_xlabel("documents")
        ax.grid(True, which="major", alpha=0.3)
        _guide(ax, all_sizes, kind if op != "memory" else "flat")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes.flat[1:]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="lower center", ncol=min(6, len(seen)),
               fontsize=9, frameon=False)
    fig.suptitle("How doqu's time and memory grow with the data (log-log; grey: ×10 per ×10 "
                 "documents)", fontsize=12)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(target)
    plt.close(fig)
    return True


def _decades(ax: Any, steps: int) -> None:
    """Show at least one decade more than the data grows, so flat looks flat and ×10 looks steep."""
    low, high = ax.get_ylim()
    need = 10.0 ** max(1, steps)  # ×10 per step, and some room
    if high / low < need:
        middle = math.sqrt(low * high)
        ax.set_ylim(middle / math.sqrt(need), middle * math.sqrt(need))


def _guide(ax: Any, sizes: list[int], kind: str) -> None:
    """A grey line of slope 1 (linear growth) through the middle of the panel, for reference."""
    if len(sizes) < 2:
        return
    low, high = ax.get_ylim()
    mid = math.sqrt(low * high)
    first, last = sizes[0], sizes[-1]
    factor = last / first
    y0 = mid / math.sqrt(factor)
    ax.plot([first, last], [y0, y0 * factor], color="grey", alpha=0.5, linewidth=3, zorder=0)
    ax.set_ylim(low, high)
