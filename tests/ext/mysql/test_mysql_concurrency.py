"""Eight threads share one storage, saving and querying at once: no write is lost or crossed."""

from __future__ import annotations

import threading
from typing import Any

from doqu import Document, TransactionError

THREADS = 8
SAVES = 60


class Entry(Document):
    structure = {"thread": int, "i": int, "label": str}


def test_eight_threads_save_and_query_at_once(store: Any) -> None:
    start = threading.Barrier(THREADS)
    saved: dict[int, list[str]] = {}
    problems: list[BaseException] = []

    def work(n: int) -> None:
        mine: list[str] = []
        try:
            start.wait(30)
            for i in range(SAVES):
                mine.append(Entry(thread=n, i=i, label=f"t{n}-{i}").save(store))
                if i % 6 == 0:  # read own writes while the others write
                    assert Entry.objects(store).where(thread=n).count() == len(mine)
                    newest = Entry.objects(store).where(thread=n).order_by("-i")[0]
                    assert newest.i == i and newest["label"] == f"t{n}-{i}"
                if i % 15 == 0:  # and commit some in explicit transactions and bulk
                    with store.transaction():
                        batch = [Entry(thread=n, i=-j - 1, label="bulk") for j in range(5)]
                        mine += store.save_many(batch)
                        mine.append(Entry(thread=n, i=-100 - i, label="tx").save(store))
        except BaseException as exc:  # reported below, with the thread's number
            problems.append(exc)
        saved[n] = mine

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not problems, problems
    every_key = [key for keys in saved.values() for key in keys]
    assert len(every_key) == len(set(every_key)), "a generated key was handed out twice"
    per_thread = SAVES + (SAVES // 15) * 6
    assert len(every_key) == THREADS * per_thread
    assert len(store) == len(every_key)
    for n, keys in saved.items():
        docs = store.get_many(Entry, keys)
        assert all(doc.thread == n for doc in docs)
        assert sorted(d.i for d in docs if d.i >= 0) == list(range(SAVES))
        assert Entry.objects(store).where(thread=n).count() == per_thread


def test_threads_sharing_a_storage_use_separate_connections(store: Any) -> None:
    ids: set[int] = set()
    lock = threading.Lock()
    inside = threading.Barrier(4)

    def work() -> None:
        with store.transaction():
            (connection_id,), = store.execute("SELECT CONNECTION_ID()")
            with lock:
                ids.add(connection_id)
            inside.wait(30)  # all four transactions are open at once

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(ids) == 4


def test_a_deadlock_ends_the_victims_transaction_for_good(store: Any) -> None:
    store.save(None, {"v": 0}, primary_key="k1")
    store.save(None, {"v": 0}, primary_key="k2")
    both_hold_one = threading.Barrier(2)
    outcome: dict[str, list[str]] = {"victim": [], "winner": []}

    def work(name: str, first: str, second: str) -> None:
        events: list[str] = []
        try:
            with store.transaction():
                store.save(None, {"v": name}, primary_key=first)
                both_hold_one.wait(30)
                try:
                    store.save(None, {"v": name}, primary_key=second)  # one of the two deadlocks
                except TransactionError:
                    events.append("deadlock")
                    try:  # the server rolled the transaction back: nothing may run outside it
                        store.save(None, {"v": name}, primary_key=f"after-{name}")
                    except TransactionError:
                        events.append("refused")
        except TransactionError:
            events.append("commit refused")
        outcome["victim" if events else "winner"].append(name)
        outcome.setdefault(name, []).extend(events)

    threads = [threading.Thread(target=work, args=("a", "k1", "k2")),
               threading.Thread(target=work, args=("b", "k2", "k1"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcome["victim"]) == 1 and len(outcome["winner"]) == 1, outcome
    victim, winner = outcome["victim"][0], outcome["winner"][0]
    assert outcome[victim] == ["deadlock", "refused", "commit refused"]
    assert store.get(Document, "k1")["v"] == winner and store.get(Document, "k2")["v"] == winner
    assert f"after-{victim}" not in store
