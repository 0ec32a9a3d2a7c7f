"""Crash consistency: a writer SIGKILLed at random moments loses no committed batch and leaves no half batch.

A child process (``crash_child.py``) saves batches in transactions, each
record tagged with its batch id and the batch size, and reports every
commit on a pipe. The test kills it with SIGKILL at a random moment (mostly
while a transaction is open, sometimes just after a commit), reopens the
storage and checks:

* every batch the child reported committed is there, complete;
* every batch that is there at all is complete (no uncommitted batch is
  partly visible), with each record exactly once;
* nothing is there that the child never began.

Engines with durable transactions take part: SQLite (WAL file), Tokyo
Cabinet (its own write-ahead transaction), PostgreSQL and MariaDB.
``make test`` kills each 20 times; ``make fuzz`` (``DOQU_FUZZ=1``) 200
times (``DOQU_CRASH_KILLS`` sets the number). The counts are printed (run
with ``-s``) and recorded in docs/guarantees.md.

Left out, on purpose: the undo-log engines (Redis, Tokyo Tyrant, MongoDB
without a replica set, memory, shelve) roll a failed block back from this
process's memory, so a kill mid-block leaves the writes made so far; they
do not claim otherwise (``features.durable_transactions`` is False).
Shelve is tested for what a crash leaves on disk instead: the standard
library's ``dbm.dumb`` (the only dbm this Python has) rewrites its index by
renaming it away and writing a new one, and a kill in between must not
turn into silently lost records or a raw ``SyntaxError`` on reopening.
"""

from __future__ import annotations

import collections
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from doqu import Document, DoquError, get_db

FUZZ = bool(os.environ.get("DOQU_FUZZ"))
KILLS = int(os.environ.get("DOQU_CRASH_KILLS", "200" if FUZZ else "20"))
CHILD = Path(__file__).with_name("crash_child.py")
#: Bounded waits: a round that makes no progress for this long fails the test.
STALL = 30.0

pytestmark = pytest.mark.timeout(0 if FUZZ else 300)


class Writer:
    """The child process and the lines it reports."""

    def __init__(self, spec: dict[str, Any]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self._buffer = b""

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def line(self, timeout: float = STALL) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                raise AssertionError(f"the writer said nothing for {timeout:g}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise AssertionError(f"the writer's parent exited: {err[-2000:]}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=STALL)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Tally:
    """What the rounds saw, for the report."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))


def one_round(writer: Writer, number: int, rng: random.Random, tally: Tally) -> tuple[set[int], dict[int, int]]:
    """Start a writer, kill it at a random moment; (batches reported committed, batches begun → size)."""
    writer.send({"seed": rng.randrange(2**32), "first_batch": number * 100_000})
    pid = None
    committed: set[int] = set()
    begun: dict[int, int] = {}
    commits_first = rng.randint(0, 3)
    after_commit = rng.random() < 0.25  # else: kill while a transaction is open
    open_batch = None
    while True:
        text = writer.line()
        kind, *rest = text.split()
        if kind == "E":
            raise AssertionError(f"the writer failed: {text}")
        if kind == "P":
            pid = int(rest[0])
        elif kind == "B":
            begun[int(rest[0])] = int(rest[1])
            open_batch = int(rest[0])
        elif kind == "C":
            committed.add(int(rest[0]))
            open_batch = None
        if pid is None or len(committed) < commits_first:
            continue
        if (open_batch is not None and not after_commit) or (open_batch is None and after_commit and committed):
            if open_batch is not None:
                time.sleep(rng.uniform(0, 0.004))  # somewhere inside the transaction
            os.kill(pid, signal.SIGKILL)
            tally.counts["kills"] += 1
            break
    while True:  # lines written before the kill, then the parent's report
        text = writer.line()
        kind, *rest = text.split()
        if kind == "C":
            committed.add(int(rest[0]))
        elif kind == "B":
            begun[int(rest[0])] = int(rest[1])
        elif kind == "X":
            status = int(rest[1])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, text
            break
    return committed, begun


def check(db: Any, committed: set[int], begun: dict[int, int], tally: Tally) -> None:
    batches: dict[int, list[int]] = collections.defaultdict(list)
    for doc in Document.objects(db):
        record = doc.dump()
        assert begun.get(record["batch"]) == record["size"], f"a record of a batch never begun: {record}"
        batches[record["batch"]].append(record["i"])
    for batch, indexes in batches.items():
        assert sorted(indexes) == list(range(begun[batch])), (
            f"batch {batch} is partly visible: {len(indexes)} of {begun[batch]} records")
    lost = committed - set(batches)
    assert not lost, f"committed batches lost: {sorted(lost)}"
    tally.counts["batches-checked"] = len(batches)
    last = max(begun)
    if last not in committed:
        tally.counts["killed-in-transaction" if last not in batches else "committed-unreported"] += 1


def run_kills(settings: dict[str, Any], open_db: Any, preload: tuple[str, ...] = (),
              max_batch: int = 40, max_pad: int = 3000) -> Tally:
    rng = random.Random(0 if not FUZZ else None)
    tally = Tally()
    committed: set[int] = set()
    begun: dict[int, int] = {}
    writer = Writer({"settings": settings, "preload": list(preload), "max_batch": max_batch,
                     "max_pad": max_pad})
    try:
        for number in range(1, KILLS + 1):
            done, started = one_round(writer, number, rng, tally)
            committed |= done
            begun.update(started)
            db = open_db()
            try:
                check(db, committed, begun, tally)
            finally:
                db.disconnect()
    finally:
        writer.close()
    tally.counts["batches-committed"] = len(committed)
    print(f"\n{settings['backend']}: {tally}")
    return tally


def _assert_meaningful(tally: Tally) -> None:
    assert tally.counts["kills"] == KILLS
    assert tally.counts["batches-committed"] > 0
    # most kills must land inside an open transaction, or the test proves little
    assert tally.counts["killed-in-transaction"] >= KILLS // 4, str(tally)


def test_sqlite_survives_kills(tmp_path: Path) -> None:
    settings = {"backend": "sqlite", "path": str(tmp_path / "crash.sqlite")}
    _assert_meaningful(run_kills(settings, lambda: get_db(settings)))


def test_sqlite_rollback_journal_survives_kills(tmp_path: Path) -> None:
    """The same with the classic rollback journal instead of WAL."""
    settings = {"backend": "sqlite", "path": str(tmp_path / "crash.sqlite"), "journal_mode": "delete"}
    _assert_meaningful(run_kills(settings, lambda: get_db(settings)))


def test_tokyo_cabinet_survives_kills(tmp_path: Path) -> None:
    from doqu.ext.tokyo_cabinet import _binding

    try:
        _binding.load_library()
    except _binding.LibraryMissing as exc:
        from doqu.testing.registry import skip_or_fail

        skip_or_fail("tokyo_cabinet", str(exc))
    settings = {"backend": "tokyo_cabinet", "path": str(tmp_path / "crash.tct")}
    _assert_meaningful(run_kills(settings, lambda: get_db(settings)))


def test_postgres_survives_kills(pg_url: str, pg_table: str) -> None:
    from doqu.config import parse_url

    resolved = {**parse_url(pg_url), "table": pg_table, "pool_min_size": 1, "pool_size": 2}
    _assert_meaningful(run_kills(resolved, lambda: get_db(resolved),
                                 preload=("psycopg", "psycopg_pool", "doqu.ext.postgres.driver")))


def test_mysql_survives_kills(mysql_url: str, mysql_table: str) -> None:
    from doqu.config import parse_url

    resolved = {**parse_url(mysql_url), "table": mysql_table}
    _assert_meaningful(run_kills(resolved, lambda: get_db(resolved), preload=("pymysql",)))


# -- shelve: what a crash leaves on disk -----------------------------------------------------

@pytest.fixture
def crashed_shelve(tmp_path: Path) -> Iterator[Path]:
    """A shelve file of five records, closed cleanly; tests then put it in a crash state."""
    path = tmp_path / "data.shelve"
    db = get_db({"backend": "shelve", "path": str(path)})
    for i in range(5):
        db.save(None, {"i": i}, primary_key=f"k{i}")
    db.disconnect()
    assert Path(f"{path}.dir").exists(), "this Python's dbm is not dbm.dumb; the crash states below are its own"
    yield path


def _reopen_keeps_records_or_refuses(path: Path) -> None:
    try:
        db = get_db({"backend": "shelve", "path": str(path)})
    except DoquError:
        return  # a clear refusal: the data is still on disk for someone to recover
    try:
        assert sorted(db) == [f"k{i}" for i in range(5)], "records silently lost"
    finally:
        db.disconnect()


@pytest.mark.xfail(strict=True, reason="shelve crash: after a kill between dbm.dumb renaming the index to "
                                       ".bak and writing the new one, reopening silently starts empty")
def test_shelve_killed_after_the_index_was_renamed_away(crashed_shelve: Path) -> None:
    # dbm.dumb._commit: unlink .bak, rename .dir → .bak, then write a new .dir; the kill lands between
    os.replace(f"{crashed_shelve}.dir", f"{crashed_shelve}.bak")
    _reopen_keeps_records_or_refuses(crashed_shelve)


@pytest.mark.xfail(strict=True, reason="shelve crash: a .dir index cut short by a kill makes get_db raise a "
                                       "raw SyntaxError instead of a DoquError")
def test_shelve_killed_while_writing_the_index(crashed_shelve: Path) -> None:
    index = Path(f"{crashed_shelve}.dir")
    text = index.read_text(encoding="latin-1")
    os.replace(index, f"{crashed_shelve}.bak")
    index.write_text(text[: len(text) // 2], encoding="latin-1")  # the kill cut the write mid-line
    _reopen_keeps_records_or_refuses(crashed_shelve)
