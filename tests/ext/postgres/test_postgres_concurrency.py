"""Eight threads sharing one storage, saving and querying at once: no write is lost."""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from doqu import Document

THREADS = 8


class Item(Document):
    structure = {"who": str, "n": int}


def _worker(db: Any, who: str, start: threading.Barrier, results: dict[str, Any]) -> None:
    try:
        start.wait(10)
        keys = []
        for i in range(25):
            keys.append(Item(who=who, n=i).save(db))
            if i % 5 == 0:
                assert Item.objects(db).where(who=who).count() == len(keys)
        for i in range(5):
            with db.transaction():
                keys.extend(Item(who=who, n=100 + i * 4 + j).save(db) for j in range(4))
                assert Item.objects(db).where(who=who, n__gte=100).count() == (i + 1) * 4
        keys.extend(db.save_many([Item(who=who, n=200 + i) for i in range(80)]))  # COPY path
        keys.extend(db.save_many([Item(who=who, n=300 + i) for i in range(10)]))  # pipelined INSERTs
        for i in range(5):
            keys.append(db.save(Item, {"who": who, "n": 400 + i}, primary_key=f"{who}-{i}"))
        mine = {doc.pk for doc in Item.objects(db).where(who=who)}
        assert mine == set(keys), "a thread does not see its own writes"
        results[who] = (keys, None)
    except BaseException:  # report everything to the main thread
        results[who] = ([], traceback.format_exc())


def test_eight_threads_lose_no_write(open_db: Callable[..., Any]) -> None:
    db = open_db(pool_size=THREADS)
    start = threading.Barrier(THREADS)
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=_worker, args=(db, f"t{i}", start, results)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [error for _, error in results.values() if error]
    assert not errors, errors[0]
    assert len(results) == THREADS
    every_key = [key for keys, _ in results.values() for key in keys]
    per_thread = 25 + 20 + 80 + 10 + 5
    assert len(every_key) == len(set(every_key)) == THREADS * per_thread
    assert len(db) == THREADS * per_thread
    assert set(db) == set(every_key)
    for who in results:
        assert sorted(d.n for d in Item.objects(db).where(who=who)) == (
            list(range(25)) + list(range(100, 120)) + list(range(200, 280)) + list(range(300, 310))
            + list(range(400, 405)))


def test_threads_sharing_a_read_modify_write_under_serializable_retry_to_the_right_total(
        open_db: Callable[..., Any]) -> None:
    from doqu import TransactionError

    db = open_db(pool_size=4, isolation_level="serializable")
    db.save(Item, {"who": "counter", "n": 0}, primary_key="counter")

    def bump(times: int, errors: list[str]) -> None:
        try:
            for _ in range(times):
                while True:
                    try:
                        with db.transaction():
                            counter = db.get(Item, "counter")
                            counter.n += 1
                            counter.save()
                        break
                    except TransactionError:
                        continue  # a conflict: run the block again, as documented
        except BaseException:
            errors.append(traceback.format_exc())

    errors: list[str] = []
    threads = [threading.Thread(target=bump, args=(15, errors)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert db.get(Item, "counter").n == 60
