"""doqu's SQLite backend against raw sqlite3 + json, and against TinyDB, in one run.

    .venv/bin/python benchmarks/sqlite_bench.py            # 100,000 documents
    .venv/bin/python benchmarks/sqlite_bench.py --n 20000  # quicker
    .venv/bin/python benchmarks/sqlite_bench.py --profile "range filter"

Not a test: it prints seconds and ratios, and asserts nothing. The raw
baseline does the same work with the same table layout (``key`` TEXT UNIQUE,
``data`` JSON text, WAL, synchronous=NORMAL) and returns plain dicts where
doqu returns documents. Times are CPU seconds of the process
(``time.process_time``), so other load on a shared machine does not
inflate them; each query runs ``--repeat`` times, contestants interleaved,
and the best counts. TinyDB runs twice, with its query cache off: on its default JSON file
storage (the fair match: both persist to a file; every operation rereads or
rewrites the whole file, so its queries run twice at most, and its gets and
single saves, in memory too, are timed on a small sample and scaled) and on its in-memory storage
(Python dicts, no decoding at all: a bound no file-backed store meets).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doqu import Document, get_db  # noqa: E402

CITIES = [f"City{i:02d}" for i in range(100)]  # ~1% of documents per city
TAGS = ["red", "green", "blue", "tea", "jazz", "ski", "books", "code"]


class Person(Document):
    structure = {"name": str, "age": int, "city": str, "score": float, "tags": list,
                 "active": bool, "address": dict}


def make_records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [{
        "name": f"person{i}", "age": rnd.randint(18, 90), "city": rnd.choice(CITIES),
        "score": round(rnd.uniform(0, 100), 3), "tags": rnd.sample(TAGS, rnd.randint(0, 3)),
        "active": rnd.random() < 0.5, "address": {"zip": f"{rnd.randint(0, 99999):05d}",
                                                  "street": f"{rnd.randint(1, 300)} Main St"},
    } for i in range(n)]


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of this process: other processes' load on a shared machine does not count."""
    start = time.process_time()
    result = func()
    return time.process_time() - start, result


# -- the three contestants --------------------------------------------------------

class Raw:
    """What a careful programmer writes with sqlite3 + json and no library."""

    name = "raw sqlite3"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = wal")
        self.conn.execute("PRAGMA synchronous = normal")
        self.conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
                          "data TEXT NOT NULL)")
        self.next = 0

    def bulk_save(self, records: list[dict[str, Any]]) -> None:
        rows = []
        for record in records:
            self.next += 1
            rows.append((str(self.next), json.dumps(record)))
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO docs (key, data) VALUES (?, ?)", rows)
        self.conn.execute("COMMIT")

    def save(self, record: dict[str, Any]) -> str:
        self.next += 1
        key = str(self.next)
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO docs (key, data) VALUES (?, ?) ON CONFLICT (key) "
                          "DO UPDATE SET data = excluded.data", (key, json.dumps(record)))
        self.conn.execute("COMMIT")
        return key

    def get(self, key: str) -> dict[str, Any]:
        return json.loads(self.conn.execute("SELECT data FROM docs WHERE key = ?", (key,)).fetchone()[0])

    def index(self, field: str) -> None:
        self.conn.execute(f"CREATE INDEX idx_{field} ON docs (json_extract(data, '$.{field}'))")

    def where(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self.conn.execute(f"SELECT data FROM docs WHERE {sql}", params)]

    def equals(self, field: str, value: Any) -> list[dict[str, Any]]:
        return self.where(f"json_extract(data, '$.{field}') = ?", (value,))

    def count(self, field: str, value: Any) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM docs WHERE json_extract(data, '$.{field}') = ?",
                                     (value,)).fetchone()[0])

    def range(self, field: str, low: Any, high: Any) -> list[dict[str, Any]]:
        return self.where(f"json_extract(data, '$.{field}') >= ? AND json_extract(data, '$.{field}') < ?",
                          (low, high))

    def top(self, field: str, limit: int) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self.conn.execute(
            f"SELECT data FROM docs ORDER BY json_extract(data, '$.{field}') DESC LIMIT ?", (limit,))]

    def values(self, field: str) -> list[Any]:
        return [row[0] for row in self.conn.execute(
            f"SELECT DISTINCT json_extract(data, '$.{field}') FROM docs ORDER BY 1")]


class Doqu:
    name = "doqu sqlite"

    def __init__(self, path: str) -> None:
        self.db = get_db({"backend": "sqlite", "path": path})

    def bulk_save(self, records: list[dict[str, Any]]) -> None:
        self.db.save_many([Person(**r) for r in records])

    def save(self, record: dict[str, Any]) -> str:
        return Person(**record).save(self.db)

    def get(self, key: str) -> Any:
        return self.db.get(Person, key)

    def index(self, field: str) -> None:
        self.db.ensure_index(field)

    def equals(self, field: str, value: Any) -> list[Any]:
        return list(Person.objects(self.db).where(**{field: value}))

    def count(self, field: str, value: Any) -> int:
        return Person.objects(self.db).where(**{field: value}).count()

    def range(self, field: str, low: Any, high: Any) -> list[Any]:
        return list(Person.objects(self.db).where(**{f"{field}__gte": low, f"{field}__lt": high}))

    def top(self, field: str, limit: int) -> list[Any]:
        return list(Person.objects(self.db).order_by(f"-{field}")[:limit])

    def values(self, field: str) -> list[Any]:
        return Person.objects(self.db).values(field)


class Tiny:
    """TinyDB, on its default JSON file storage or on its in-memory storage."""

    def __init__(self, path: str | None) -> None:
        from tinydb import Query, TinyDB
        from tinydb.storages import MemoryStorage

        self.file = path is not None
        self.name = "tinydb file" if self.file else "tinydb memory"
        self.db = TinyDB(path) if path is not None else TinyDB(storage=MemoryStorage)
        self.table = self.db.table("people", cache_size=0)  # no query cache: every run works
        self.Query = Query

    def bulk_save(self, records: list[dict[str, Any]]) -> None:
        self.table.insert_multiple(records)

    def save(self, record: dict[str, Any]) -> int:
        return self.table.insert(record)

    def get(self, key: str) -> Any:
        return self.table.get(doc_id=int(key))

    def index(self, field: str) -> None:
        pass  # TinyDB has no indexes

    def equals(self, field: str, value: Any) -> list[Any]:
        return self.table.search(self.Query()[field] == value)

    def count(self, field: str, value: Any) -> int:
        return self.table.count(self.Query()[field] == value)

    def range(self, field: str, low: Any, high: Any) -> list[Any]:
        q = self.Query()[field]
        return self.table.search((q >= low) & (q < high))

    def top(self, field: str, limit: int) -> list[Any]:
        return sorted(self.table.all(), key=lambda d: d.get(field, 0), reverse=True)[:limit]

    def values(self, field: str) -> list[Any]:
        return sorted({d[field] for d in self.table.all() if field in d})


# -- the run -----------------------------------------------------------------------

def run(n: int, repeat: int, tiny_sample: int, profile: str | None, workdir: str) -> None:
    records = make_records(n)
    extra = make_records(1000, seed=11)
    raw, doqu = Raw(os.path.join(workdir, "raw.sqlite3")), Doqu(os.path.join(workdir, "doqu.sqlite3"))
    contestants: list[Any] = [raw, doqu]
    try:
        contestants += [Tiny(os.path.join(workdir, "tiny.json")), Tiny(None)]
    except ImportError:
        print("tinydb is not installed: pip install 'doqu[bench]'")
    tiny_file = next((c for c in contestants if getattr(c, "file", False)), None)
    rnd = random.Random(3)
    keys = [str(rnd.randint(1, n)) for _ in range(1000)]
    city, rows = CITIES[17], []

    def bench(label: str, work: Callable[[Any, int], Callable[[], Any]], sampled: bool = False,
              times: int = repeat) -> None:
        """``work(who, size)``: a function doing ``size`` of 1,000 operations (``sampled``)."""
        row: dict[str, float] = {}
        if profile and profile == label:
            profiler = cProfile.Profile()
            profiler.enable()
            work(doqu, 1000)()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        for attempt in range(times):  # interleaved, so a burst of load hits everyone alike
            for who in contestants:
                slow = who is tiny_file
                if slow and attempt >= 2:
                    continue  # every TinyDB file operation rereads or rewrites the whole file
                size = tiny_sample if (sampled and isinstance(who, Tiny)) else 1000
                seconds, _ = timed(work(who, size))
                seconds *= 1000 / size
                row[who.name] = min(seconds, row.get(who.name, seconds))
        rows.append((label, row))
        print(f"  {label:<30} " + "  ".join(f"{k}={v:.4f}s" for k, v in row.items()), flush=True)

    print(f"{n:,} documents; CPU seconds, best of {repeat}; sqlite {sqlite3.sqlite_version}")
    bench("bulk save", lambda who, _: (lambda: who.bulk_save(records)), times=1)
    bench("get by key (1,000)", lambda who, k: (lambda: [who.get(key) for key in keys[:k]]), sampled=True)
    bench("equality, no index", lambda who, _: (lambda: who.equals("city", city)))
    bench("count equality, no index", lambda who, _: (lambda: who.count("city", city)))
    bench("range (age 30..34)", lambda who, _: (lambda: who.range("age", 30, 35)))
    bench("order_by -score [:20]", lambda who, _: (lambda: who.top("score", 20)))
    bench("values(city)", lambda who, _: (lambda: who.values("city")))
    for who in contestants:
        who.index("city")
        who.index("age")
    bench("equality, indexed", lambda who, _: (lambda: who.equals("city", city)))
    bench("count equality, indexed", lambda who, _: (lambda: who.count("city", city)))
    bench("range, indexed", lambda who, _: (lambda: who.range("age", 30, 35)))
    # last, since it adds records
    bench("single saves (1,000)", lambda who, k: (lambda: [who.save(r) for r in extra[:k]]),
          sampled=True, times=1)

    names = [c.name for c in contestants]
    print(f"\nCPU seconds (TinyDB: get and single saves timed on {tiny_sample} and scaled to 1,000)")
    header = f"{'operation':<28}" + "".join(f"{name:>15}" for name in names) + f"{'doqu/raw':>10}"
    extra_cols = [name for name in names if name.startswith("tinydb")]
    header += "".join(f"{name.split()[1] + '/doqu':>13}" for name in extra_cols)
    print(header)
    for label, row in rows:
        line = f"{label:<28}" + "".join(f"{row[name]:>14.4f}s" for name in names)
        line += f"{row['doqu sqlite'] / row['raw sqlite3']:>9.2f}x"
        line += "".join(f"{row[name] / row['doqu sqlite']:>12.1f}x" for name in extra_cols)
        print(line)
    table = dict(rows)
    scan, indexed = table["count equality, no index"], table["count equality, indexed"]
    print(f"\nindexed equality count: {scan['doqu sqlite'] / indexed['doqu sqlite']:.0f}x faster than "
          f"the unindexed scan (doqu)")
    doqu.db.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="documents (default 100,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per query; the best counts")
    parser.add_argument("--tiny-sample", type=int, default=5,
                        help="TinyDB file gets and saves actually timed (scaled to 1,000)")
    parser.add_argument("--profile", metavar="OPERATION", help="cProfile doqu on one operation")
    parser.add_argument("--dir", help="where the database files go (default: a temporary directory)")
    args = parser.parse_args()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
        run(args.n, args.repeat, args.tiny_sample, args.profile, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="doqu-bench-") as workdir:
            run(args.n, args.repeat, args.tiny_sample, args.profile, workdir)


if __name__ == "__main__":
    main()
