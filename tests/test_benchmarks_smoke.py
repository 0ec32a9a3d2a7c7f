"""The benchmark suite runs end to end and writes well-formed output.

Runs ``benchmarks/run.py --quick`` on memory and SQLite (a few hundred
documents) into a temporary directory. It checks the files and their
structure, and that doqu and each raw baseline answered every query with
the same number of documents; it asserts nothing about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("memory", "sqlite")
SIZE = 400


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--sizes", str(SIZE),
         "--engines", ",".join(ENGINES), "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_results_json_covers_the_matrix(output: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from suite.workload import OPS
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    data = json.loads((output / "results.json").read_text(encoding="utf-8"))
    assert data["partial"] is False
    assert data["warnings"] == []
    for key in ("cpu", "cores", "memory_gib", "python"):
        assert data["machine"][key]
    rows = {(r["engine"], r["op"], r["contestant"]): r for r in data["results"]}
    assert data["engines"]["memory"].get("no_index") is True  # its indexed steps do not run
    assert not data["engines"]["sqlite"].get("no_index")
    for engine in ENGINES:
        assert data["engines"][engine]["sizes"] == [SIZE]
        for op in OPS:
            if data["engines"][engine].get("no_index") and op.group in ("index", "indexed"):
                assert (engine, op.id, "doqu") not in rows
                continue
            for who in ("doqu", "raw"):
                row = rows[(engine, op.id, who)]
                assert row["size"] == SIZE
                assert row["wall"] >= 0 and row["cpu"] >= 0 and row["rounds"] >= 1
            if op.group in ("scan", "indexed"):
                assert rows[(engine, op.id, "doqu")]["rows"] == rows[(engine, op.id, "raw")]["rows"], op.id
        memory = [m for m in data["memory"] if m["engine"] == engine]
        assert len(memory) == 1 and memory[0]["documents"] == SIZE and memory[0]["peak_bytes"] > 0
    assert rows[("sqlite", "eq_scan", "raw")]["rows"] == 100  # one batch: the workload's promise
    assert rows[("sqlite", "count_indexed", "doqu")]["rows"] == 100
    for profile in data["profiles"]:
        assert profile["engine"] == "sqlite" and profile["ratio"] > profile["target"]
        assert profile["top"] and abs(sum(a["share"] for a in profile["areas"]) - 1) < 0.01


def test_results_md_has_the_tables(output: Path) -> None:
    text = (output / "RESULTS.md").read_text(encoding="utf-8")
    assert "## Machine" in text
    assert f"## doqu ÷ raw driver, {SIZE:,} documents" in text
    assert "TinyDB" in text
    table = text.split(f"## doqu ÷ raw driver, {SIZE:,} documents", 1)[1].split("###", 1)[0]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[2:4] == [" memory ", " sqlite "]
    assert len(lines) == 2 + 15  # header, rule, one row per operation
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 3 and cells[0]


def test_plots_are_png(output: Path) -> None:
    pytest.importorskip("matplotlib")
    plots = sorted((output / "plots").glob("*.png"))
    assert [p.name for p in plots] == [f"ratios_{SIZE}.png"]  # one size: no scaling plot
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
