"""Concurrency: many writers at once lose nothing, duplicate nothing, and never fail on a lock.

* SQLite: several *processes* write one file at once (generated keys,
  application keys, bulk saves in transactions, single saves), reading and
  counting as they go.
* Server engines (PostgreSQL, MariaDB, Redis, and the Tokyo Tyrant
  stand-in): several *threads* write at once, both sharing one storage
  object and each with a storage of its own.

Afterwards every record written is there exactly once, with the content its
writer gave it; generated keys never repeat; every transaction's batch is
complete; no writer saw an error ("database is locked" included).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from doqu import Document, get_db

FUZZ = bool(os.environ.get("DOQU_FUZZ"))
WORKERS = 4
PER_WORKER = 200 if FUZZ else 40
THREADS = 8

# The writer each process/thread runs: `rounds` rounds of four kinds of write.
# Returns the keys it generated and the keys it chose.
WRITER = r'''
def write(db, worker, rounds):
    from doqu import Document
    generated, chosen = [], []
    for r in range(rounds):
        kind = r % 4
        if kind == 0:  # one save, generated key
            generated.append(db.save(None, {"w": worker, "r": r, "n": 0, "of": 1}))
        elif kind == 1:  # a bulk save in one transaction, generated keys
            docs = [Document(w=worker, r=r, n=i, of=5) for i in range(5)]
            with db.transaction():
                generated.extend(db.save_many(docs))
        elif kind == 2:  # several single saves in one transaction, application keys
            with db.transaction():
                for i in range(3):
                    key = f"w{worker}-r{r}-{i}"
                    db.save(None, {"w": worker, "r": r, "n": i, "of": 3}, primary_key=key)
                    chosen.append(key)
        else:  # read and query while others write
            assert len(db) >= 0
            assert Document.objects(db).where(w=worker).count() >= 0
            key = f"w{worker}-overwrite"
            db.save(None, {"w": worker, "r": r, "n": 0, "of": 1, "ow": True}, primary_key=key)
            if key not in chosen:
                chosen.append(key)
    return generated, chosen
'''

_namespace: dict[str, Any] = {}
exec(WRITER, _namespace)  # noqa: S102 - our own code, shared with the child processes
write: Callable[[Any, int, int], tuple[list[str], list[str]]] = _namespace["write"]

CHILD = WRITER + r'''
import json, sys
from doqu import get_db
settings, worker, rounds = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
db = get_db(settings)
print("ready", flush=True)
sys.stdin.readline()  # go
generated, chosen = write(db, worker, rounds)
db.disconnect()
print(json.dumps({"generated": generated, "chosen": chosen}), flush=True)
'''


def expected_records(worker: int, rounds: int) -> int:
    """Records a writer leaves: per 4 rounds 1 + 5 + 3, plus its one overwritten record."""
    per_kind = collections.Counter(r % 4 for r in range(rounds))
    return per_kind[0] + 5 * per_kind[1] + 3 * per_kind[2] + (1 if per_kind[3] else 0)


def check(db: Any, results: dict[int, tuple[list[str], list[str]]], rounds: int) -> None:
    all_generated = [k for generated, _ in results.values() for k in generated]
    assert len(all_generated) == len(set(all_generated)), "a generated key was handed out twice"
    chosen = {k for _, keys in results.values() for k in keys}
    assert not set(all_generated) & chosen
    stored = sorted(db)
    assert len(stored) == len(set(stored)), "a key is listed twice"
    assert set(stored) == set(all_generated) | chosen, "records lost or invented"
    total = sum(expected_records(w, rounds) for w in results)
    assert len(db) == total
    assert Document.objects(db).count() == total
    batches: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for doc in Document.objects(db):
        record = doc.dump()
        if not record.get("ow"):
            batches[(record["w"], record["r"])].append(record["n"])
        else:
            assert doc.pk == f"w{record['w']}-overwrite"
    for (worker, r), ns in batches.items():
        of = {0: 1, 1: 5, 2: 3}[r % 4]
        assert sorted(ns) == list(range(of)), f"writer {worker} round {r}: {sorted(ns)} of {of}"


# -- SQLite: processes ----------------------------------------------------------------------

def run_processes(settings: dict[str, Any], rounds: int) -> dict[int, tuple[list[str], list[str]]]:
    """WORKERS processes open the storage, wait for everyone, then write at once."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(settings), str(w), str(rounds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for w in range(WORKERS)]
    results: dict[int, tuple[list[str], list[str]]] = {}
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                proc.wait(timeout=60)
                raise AssertionError(f"a writer could not open the storage:\n{proc.stderr.read()[-3000:]}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for w, proc in enumerate(procs):
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"writer {w} failed:\n{err[-3000:]}"
            found = json.loads(out.strip().splitlines()[-1])
            results[w] = (found["generated"], found["chosen"])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_sqlite_processes_writing_one_file(tmp_path: Path, journal_mode: str) -> None:
    settings = {"backend": "sqlite", "path": str(tmp_path / "shared.sqlite"), "journal_mode": journal_mode}
    results = run_processes(settings, PER_WORKER)
    db = get_db(settings)
    try:
        check(db, results, PER_WORKER)
    finally:
        db.disconnect()


def test_sqlite_processes_creating_the_file_at_once(tmp_path: Path) -> None:
    """No file yet: the writers, started together, also race to create the file, table and counter."""
    settings = {"backend": "sqlite", "path": str(tmp_path / "new.sqlite")}
    results = run_processes(settings, 8)
    db = get_db(settings)
    try:
        check(db, results, 8)
    finally:
        db.disconnect()


# -- threads -----------------------------------------------------------------------------------

def run_threads(make: Callable[[], Any], shared: bool) -> dict[int, tuple[list[str], list[str]]]:
    """THREADS writers at once, on one storage object (``shared``) or one each."""
    common = make() if shared else None
    own: list[Any] = []
    results: dict[int, tuple[list[str], list[str]]] = {}
    errors: list[str] = []
    start = threading.Barrier(THREADS)

    def worker(w: int) -> None:
        try:
            db = common
            if db is None:
                db = make()
                own.append(db)
            start.wait(timeout=60)
            results[w] = write(db, w, PER_WORKER)
        except BaseException as exc:  # reported below
            errors.append(f"writer {w}: {type(exc).__name__}: {exc}")
            with contextlib.suppress(threading.BrokenBarrierError):
                start.abort()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads), "a writer hangs"
    for db in [*own, *([common] if common is not None else [])]:
        db.disconnect()
    assert not errors, "\n".join(errors)
    return results


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    path = str(tmp_path / "threads.sqlite")
    return lambda: get_db({"backend": "sqlite", "path": path})


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    url, table = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_table")
    return lambda: get_db(url, table=table, pool_size=THREADS + 2)


def _mysql(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    url, table = request.getfixturevalue("mysql_url"), request.getfixturevalue("mysql_table")
    return lambda: get_db(url, table=table)


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return lambda: get_db(url, prefix=prefix, indexes="w,r")


def _tyrant(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    server = request.getfixturevalue("tyrant_server")
    return lambda: get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": server.port, "timeout": 30})


ENGINES = {"sqlite": _sqlite, "postgres": _postgres, "mysql": _mysql, "redis": _redis, "tokyo_tyrant": _tyrant}


@pytest.mark.parametrize("shared", [True, False], ids=["one-storage", "storage-each"])
@pytest.mark.parametrize("name", ENGINES)
def test_threads_writing_at_once(request: pytest.FixtureRequest, tmp_path: Path, name: str,
                                 shared: bool) -> None:
    make = ENGINES[name](request, tmp_path)
    results = run_threads(make, shared)
    db = make()
    try:
        check(db, results, PER_WORKER)
    finally:
        db.disconnect()
