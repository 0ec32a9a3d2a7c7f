"""Several processes and threads on one SQLite file: nothing lost, no "database is locked"."""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from doqu import Document, get_db


class Item(Document):
    structure = {"who": str, "n": int}


def _writer(path: str, who: str, start: Any, results: Any) -> None:
    """Save 150 records four ways and bump a shared counter; report the keys or the error."""
    try:
        db = get_db({"backend": "sqlite", "path": path, "timeout": 20})
        start.wait(10)
        keys = []
        for i in range(50):
            keys.append(Item(who=who, n=i).save(db))
            if i % 10 == 0:
                Item.objects(db).where(who=who).count()
        for i in range(10):
            with db.transaction():
                keys.extend(Item(who=who, n=100 + i * 5 + j).save(db) for j in range(5))
        keys.extend(db.save_many([Item(who=who, n=200 + i) for i in range(40)]))
        for i in range(10):
            keys.append(db.save(Item, {"who": who, "n": 300 + i}, primary_key=f"{who}-{i}"))
        for _ in range(30):  # read-modify-write: a lost update would show in the total
            with db.transaction():
                counter = db.get(Item, "counter")
                Item.objects(db).where(who=who).count()
                counter.n += 1
                counter.save()
        db.disconnect()
        results.put((who, keys, None))
    except BaseException:  # report everything, including "database is locked"
        results.put((who, [], traceback.format_exc()))


def test_two_processes_writing_one_file_lose_nothing(path: Path) -> None:
    with get_db(f"sqlite:///{path}") as db:  # the file exists first, as in an application
        db.save(Item, {"who": "nobody", "n": 0}, primary_key="counter")
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(str(path), who, start, results)) for who in ("p1", "p2")]
    for w in workers:
        w.start()
    start.set()
    reports = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(30)
    errors = [error for _, _, error in reports if error]
    assert not errors, errors[0]
    keys = [key for _, ks, _ in reports for key in ks]
    assert len(keys) == 2 * 150 == len(set(keys))
    db = get_db(f"sqlite:///{path}")
    try:
        assert len(db) == 301
        assert sorted(db) == sorted(keys + ["counter"])
        assert db.get(Item, "counter").n == 60
        for who in ("p1", "p2"):
            assert sorted(d.n for d in Item.objects(db).where(who=who)) == sorted(
                list(range(50)) + list(range(100, 150)) + list(range(200, 240)) + list(range(300, 310)))
    finally:
        db.disconnect()


def _run_threads(target: Any, count: int) -> list[str]:
    errors: list[str] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_threads_sharing_one_storage(store: Any) -> None:
    def work(i: int) -> None:
        for n in range(60):
            Item(who=f"t{i}", n=n).save(store)
            if n % 20 == 0:
                assert Item.objects(store).where(who=f"t{i}").count() == n + 1
        with store.transaction():
            store.save_many([Item(who=f"t{i}", n=100 + n) for n in range(40)])
        assert sum(1 for _ in Item.objects(store).where(who=f"t{i}")) == 100

    assert _run_threads(work, 4) == []
    assert len(store) == 400
    assert len(set(store)) == 400


def test_a_thread_never_sees_another_threads_uncommitted_writes(store: Any) -> None:
    opened, reading = threading.Event(), threading.Event()
    seen: list[int] = []

    def writer(_: int) -> None:
        try:
            with store.transaction():
                store.save(None, {"x": 1}, primary_key="uncommitted")
                opened.set()
                reading.wait(10)
                time.sleep(0.1)  # give a wrongly unlocked reader the chance to look
                raise RuntimeError("roll back")
        except RuntimeError:
            pass

    def reader(_: int) -> None:
        opened.wait(10)
        reading.set()
        seen.append(len(store))
        seen.append(Item.objects(store).count())

    errors = _run_threads(lambda i: (writer if i == 0 else reader)(i), 2)
    assert errors == []
    assert seen == [0, 0]


def test_threads_with_a_storage_each_on_one_file(path: Path) -> None:
    get_db(f"sqlite:///{path}").disconnect()

    def work(i: int) -> None:
        db = get_db(f"sqlite:///{path}")
        try:
            for n in range(40):
                Item(who=f"s{i}", n=n).save(db)
                Item.objects(db).where(n__lt=5).count()
        finally:
            db.disconnect()

    assert _run_threads(work, 4) == []
    db = get_db(f"sqlite:///{path}")
    try:
        assert len(db) == 160 and len(set(db)) == 160
    finally:
        db.disconnect()


def _use_inherited(db: Any, results: Any) -> None:
    try:
        Item(who="child", n=1).save(db)
        results.put((db.get(Item, "parent").who, None))
    except BaseException:
        results.put((None, traceback.format_exc()))


def test_a_forked_child_opens_its_own_connection(store: Any) -> None:
    store.save(Item, {"who": "parent", "n": 0}, primary_key="parent")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_use_inherited, args=(store, results))
    child.start()
    seen, error = results.get(timeout=60)
    child.join(30)
    assert error is None, error
    assert seen == "parent"
    assert Item.objects(store).where(who="child").count() == 1  # the parent's connection still works
    Item(who="parent again", n=2).save(store)
    assert len(store) == 3
