"""Bulk save through doqu vs. raw redis-py doing the same work.

    .venv/bin/python benchmarks/redis_bench.py [-n 20000] [--url redis://127.0.0.1:6379/0]

doqu: ``db.save_many(docs)`` of ready-made documents (validation, encoding,
generated keys, the atomic per-bucket write script, the undo log); also its
two halves apart: the engine part (canonical records to Redis, through the
hooks save_many ends in) and the core's Document layer (save_many with the
write skipped). Raw:
the same records as JSON, keys from ``INCRBY``, pipelined ``SET`` + ``SADD``
in batches of the same size. Both write to their own prefix of the same
server, which is removed afterwards. Prints the best of ``--repeat``
interleaved runs, by wall time (what counts: it includes Redis's own work)
and by this process's CPU time (steadier on a busy machine), and the ratios
(target: at most 1.3). Also shown, for information: doqu with two
indexed fields, which adds sorted-set entries to every write.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import redis  # noqa: E402

from doqu import Document, get_db  # noqa: E402


class Item(Document):
    structure = {"name": str, "qty": int, "price": float, "tags": list}


def records(n: int) -> list[dict[str, Any]]:
    return [{"name": f"item {i}", "qty": i % 97, "price": i * 0.25, "tags": ["a", str(i % 7)]}
            for i in range(n)]


class Case:
    """One contender: ``setup()`` -> state, ``work(state)`` is timed, ``cleanup(state)``."""

    def __init__(self, name: str, setup: Callable[[], Any], work: Callable[[Any], None],
                 cleanup: Callable[[Any], None]) -> None:
        self.name, self.setup, self.work, self.cleanup = name, setup, work, cleanup
        self.times: list[float] = []
        self.cpu: list[float] = []

    def run(self) -> None:
        state = self.setup()
        start, cpu = time.perf_counter(), time.process_time()
        self.work(state)
        self.times.append(time.perf_counter() - start)
        self.cpu.append(time.process_time() - cpu)
        self.cleanup(state)


def doqu_case(name: str, url: str, data: list[dict[str, Any]], batch: int, indexes: str = "") -> Case:
    def setup() -> Any:
        db = get_db(url, prefix=f"doqu-bench:{secrets.token_hex(4)}", batch_size=batch, indexes=indexes)
        return db, [Item(**record) for record in data]

    def work(state: Any) -> None:
        db, docs = state
        db.save_many(docs)

    def cleanup(state: Any) -> None:
        db, _ = state
        assert len(db) == len(data)
        db.drop()
        db.disconnect()

    return Case(name, setup, work, cleanup)


def engine_case(url: str, data: list[dict[str, Any]], batch: int) -> Case:
    """The backend's own part of save_many: canonical records in, Redis written.

    Uses the storage hooks save_many ends in (key generation, ``_put_many``
    inside a transaction), so the Document layer of doqu's core is left out.
    """
    def setup() -> Any:
        db = get_db(url, prefix=f"doqu-bench:{secrets.token_hex(4)}", batch_size=batch)
        return db, [dict(record) for record in data]

    def work(state: Any) -> None:
        db, items = state
        db._reserve_keys(len(items))
        keys = [db._new_key() for _ in items]
        with db.transaction():
            db._put_many(list(zip(keys, items)))

    def cleanup(state: Any) -> None:
        db, _ = state
        assert len(db) == len(data)
        db.drop()
        db.disconnect()

    return Case("doqu engine part (records -> Redis)", setup, work, cleanup)


def core_case(url: str, data: list[dict[str, Any]], batch: int) -> Case:
    """save_many with the final write skipped: what doqu's Document layer costs."""
    def setup() -> Any:
        db = get_db(url, prefix=f"doqu-bench:{secrets.token_hex(4)}", batch_size=batch)
        db._put_many = lambda items: None
        return db, [Item(**record) for record in data]

    def work(state: Any) -> None:
        db, docs = state
        db.save_many(docs)

    def cleanup(state: Any) -> None:
        db, _ = state
        db.drop()
        db.disconnect()

    return Case("doqu core only (documents, no write)", setup, work, cleanup)


def raw_case(client: Any, data: list[dict[str, Any]], batch: int) -> Case:
    def setup() -> str:
        return f"raw-bench:{secrets.token_hex(4)}"

    def work(prefix: str) -> None:
        end = client.incrby(f"{prefix}:seq", len(data))
        members = f"{prefix}:keys"
        for start in range(0, len(data), batch):
            pipe = client.pipeline(transaction=False)
            for offset, record in enumerate(data[start:start + batch]):
                key = str(end - len(data) + 1 + start + offset)
                pipe.set(f"{prefix}:r:{key}", json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                pipe.sadd(members, key)
            pipe.execute()

    def cleanup(prefix: str) -> None:
        assert client.scard(f"{prefix}:keys") == len(data)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])

    return Case("raw redis-py (pipelined SET + SADD)", setup, work, cleanup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="documents per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--url", default=os.environ.get("DOQU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    data = records(args.n)
    client = redis.Redis.from_url(args.url, protocol=2)
    raw = raw_case(client, data, args.batch)
    engine = engine_case(args.url, data, args.batch)
    plain = doqu_case("doqu save_many(documents)", args.url, data, args.batch)
    core = core_case(args.url, data, args.batch)
    indexed = doqu_case("doqu save_many, 2 indexed fields", args.url, data, args.batch, "qty,name")
    cases = (raw, engine, plain, core, indexed)
    try:
        for _ in range(args.repeat):  # interleaved, so a busy moment hurts every contender alike
            for case in cases:
                case.run()
    finally:
        client.close()
    print(f"{args.n} documents, best of {args.repeat} interleaved runs, batches of {args.batch}")
    print(f"{'':40} {'wall':>10} {'docs/s':>9} {'client CPU':>11}")
    for case in cases:
        fastest = min(case.times)
        print(f"{case.name:40} {fastest * 1000:7.1f} ms {args.n / fastest:9.0f} {min(case.cpu) * 1000:8.1f} ms")
    for label, pick in (("wall", lambda c: min(c.times)), ("client CPU", lambda c: min(c.cpu))):
        base = pick(raw)
        print(f"ratios by {label}: engine part / raw {pick(engine) / base:.2f} (target <= 1.3); "
              f"save_many / raw {pick(plain) / base:.2f} (Document layer alone {pick(core) / base:.2f}); "
              f"with 2 indexes {pick(indexed) / base:.2f}")


if __name__ == "__main__":
    main()
