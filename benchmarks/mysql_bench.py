"""doqu's MariaDB backend against raw PyMySQL + json, on the shared workload of sqlite_bench.py.

    .venv/bin/python benchmarks/mysql_bench.py            # 100,000 documents
    .venv/bin/python benchmarks/mysql_bench.py --n 20000  # quicker
    .venv/bin/python benchmarks/mysql_bench.py --profile "range filter (age 30..34)"
    DOQU_TEST_MYSQL_URL=mysql://user:pw@host/db .venv/bin/python benchmarks/mysql_bench.py

Not a test: it prints seconds and ratios, and asserts nothing. The raw
baseline is what a careful programmer writes with PyMySQL and no library:
the same table layout (``key`` VARCHAR primary key, ``data`` LONGTEXT checked
by ``JSON_VALID``), ``executemany`` for bulk inserts, ``JSON_VALUE`` in
WHERE and ORDER BY, and generated columns for its two indexes. It returns
plain dicts where doqu returns documents, and it does not guard against the
traps doqu handles (case-insensitive default collation, strings that look
like numbers, booleans that read as 1).

Times are wall-clock seconds (the server's work counts: it is most of the
work), best of ``--repeat`` runs with contestants interleaved, so a burst of
load on a shared machine hits both alike; the client's CPU seconds are
printed too. For the filters, a third column runs the same doqu queries
through ``query.records()`` (canonical dicts, as raw returns): the backend's
own cost without the core's document building.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doqu import Document, get_db
from doqu.config import parse_url

CITIES = [f"City{i:02d}" for i in range(100)]  # ~1% of documents per city
TAGS = ["red", "green", "blue", "tea", "jazz", "ski", "books", "code"]
URL = os.environ.get("DOQU_TEST_MYSQL_URL") or "mysql://root@127.0.0.1:3306/test"


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


def timed(func: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return time.perf_counter() - wall, time.process_time() - cpu, result


class Raw:
    """What a careful programmer writes with PyMySQL + json and no library."""

    name = "raw pymysql"

    def __init__(self, table: str) -> None:
        import pymysql

        s = parse_url(URL)
        self.conn = pymysql.connect(host=s.get("host", "localhost"), port=s.get("port", 3306),
                                    user=s.get("user"), password=s.get("password", ""),
                                    database=s.get("database"), charset="utf8mb4", autocommit=True,
                                    ssl_disabled=s.get("host") in ("127.0.0.1", "localhost"))
        self.table = table
        self.sql(f"CREATE TABLE `{table}` (`key` VARCHAR(768) COLLATE utf8mb4_nopad_bin NOT NULL "
                 f"PRIMARY KEY, `data` LONGTEXT COLLATE utf8mb4_bin NOT NULL CHECK (JSON_VALID(`data`))) "
                 f"ENGINE=InnoDB")
        self.next = 0

    def sql(self, sql: str, params: Any = None) -> list[Any]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def bulk_save(self, records: list[dict[str, Any]]) -> None:
        rows = []
        for record in records:
            self.next += 1
            rows.append((str(self.next), json.dumps(record)))
        self.conn.begin()
        with self.conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO `{self.table}` (`key`, `data`) VALUES (%s, %s)", rows)
        self.conn.commit()

    def save(self, record: dict[str, Any]) -> str:
        self.next += 1
        key = str(self.next)
        self.conn.begin()
        self.sql(f"INSERT INTO `{self.table}` (`key`, `data`) VALUES (%s, %s) "
                 f"ON DUPLICATE KEY UPDATE `data` = VALUES(`data`)", (key, json.dumps(record)))
        self.conn.commit()
        return key

    def get(self, key: str) -> dict[str, Any]:
        return json.loads(self.sql(f"SELECT `data` FROM `{self.table}` WHERE `key` = %s", (key,))[0][0])

    def index(self, field: str) -> None:
        kind = "DOUBLE" if field == "age" else "VARCHAR(255)"
        self.sql(f"ALTER TABLE `{self.table}` ADD COLUMN `g_{field}` {kind} "
                 f"AS (JSON_VALUE(`data`, '$.{field}')) VIRTUAL, ADD INDEX (`g_{field}`)")
        setattr(self, f"col_{field}", f"`g_{field}`")

    def col(self, field: str) -> str:
        return getattr(self, f"col_{field}", f"JSON_VALUE(`data`, '$.{field}')")

    def where(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self.sql(f"SELECT `data` FROM `{self.table}` WHERE {sql}", params)]

    def equals(self, field: str, value: Any) -> list[dict[str, Any]]:
        return self.where(f"{self.col(field)} = %s", (value,))

    def count(self, field: str, value: Any) -> int:
        return int(self.sql(f"SELECT count(*) FROM `{self.table}` WHERE {self.col(field)} = %s",
                            (value,))[0][0])

    def range(self, field: str, low: Any, high: Any) -> list[dict[str, Any]]:
        col = self.col(field)
        return self.where(f"{col} >= %s AND {col} < %s", (low, high))

    def top(self, field: str, limit: int) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self.sql(
            f"SELECT `data` FROM `{self.table}` ORDER BY CAST(JSON_VALUE(`data`, '$.{field}') AS DOUBLE) "
            f"DESC LIMIT %s", (limit,))]

    def values(self, field: str) -> list[Any]:
        return [row[0] for row in self.sql(
            f"SELECT DISTINCT JSON_VALUE(`data`, '$.{field}') FROM `{self.table}` ORDER BY 1")]

    def drop(self) -> None:
        self.sql(f"DROP TABLE IF EXISTS `{self.table}`")
        self.conn.close()


class Doqu:
    name = "doqu mysql"

    def __init__(self, table: str) -> None:
        self.db = get_db(URL, table=table)

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

    def drop(self) -> None:
        self.db.execute(f"DROP TABLE IF EXISTS `{self.db._table}`")
        self.db.execute("DELETE FROM doqu_sequences WHERE name = %s", (self.db._table,))
        self.db.disconnect()


class DoquRecords:
    """doqu's query over the same storage, returning raw records: the backend without documents."""

    name = "doqu records"

    def __init__(self, doqu: Doqu) -> None:
        self.db = doqu.db

    def equals(self, field: str, value: Any) -> list[Any]:
        return list(Person.objects(self.db).where(**{field: value}).records())

    def range(self, field: str, low: Any, high: Any) -> list[Any]:
        return list(Person.objects(self.db).where(**{f"{field}__gte": low, f"{field}__lt": high}).records())

    def top(self, field: str, limit: int) -> list[Any]:
        return list(Person.objects(self.db).order_by(f"-{field}")[:limit].records())


FILTERS = {"equality, no index", "range filter (age 30..34)", "order_by -score, limit 20",
           "equality, indexed", "range filter, indexed"}


def run(n: int, repeat: int, profile: str | None) -> None:
    records = make_records(n)
    extra = make_records(1000, seed=11)
    suffix = uuid.uuid4().hex[:8]
    raw, doqu = Raw(f"bench_raw_{suffix}"), Doqu(f"bench_doqu_{suffix}")
    records_only = DoquRecords(doqu)
    contestants: list[Any] = [raw, doqu]
    rnd = random.Random(3)
    keys = [str(rnd.randint(1, n)) for _ in range(1000)]
    city, rows = CITIES[17], []

    def bench(label: str, make: Callable[[Any], Callable[[], Any]], times: int = repeat) -> None:
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        sizes: dict[str, Any] = {}
        if profile and profile == label:
            profiler = cProfile.Profile()
            profiler.enable()
            make(doqu)()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        for _ in range(times):
            for who in contestants + ([records_only] if label in FILTERS else []):
                seconds, cpu_seconds, result = timed(make(who))
                wall[who.name] = min(seconds, wall.get(who.name, seconds))
                cpu[who.name] = min(cpu_seconds, cpu.get(who.name, cpu_seconds))
                sizes[who.name] = len(result) if isinstance(result, list) else result
        rows.append((label, wall, cpu))
        if len({str(v) for v in sizes.values()}) > 1 and label not in ("get by key (1,000)",
                                                                       "single saves (1,000)"):
            print(f"  note: {label} sizes differ: {sizes}")
        print(f"  {label:<30} " + "  ".join(f"{k}={v:.4f}s" for k, v in wall.items()), flush=True)

    try:
        print(f"{n:,} documents; wall seconds, best of {repeat}; server {URL.split('@')[-1]}")
        bench("bulk save", lambda who: (lambda: who.bulk_save(records)), times=1)
        bench("get by key (1,000)", lambda who: (lambda: [who.get(k) for k in keys]))
        bench("equality, no index", lambda who: (lambda: who.equals("city", city)))
        bench("count equality, no index", lambda who: (lambda: who.count("city", city)))
        bench("range filter (age 30..34)", lambda who: (lambda: who.range("age", 30, 35)))
        bench("order_by -score, limit 20", lambda who: (lambda: who.top("score", 20)))
        bench("values(city)", lambda who: (lambda: who.values("city")))
        for who in contestants:
            who.index("city")
            who.index("age")
        bench("equality, indexed", lambda who: (lambda: who.equals("city", city)))
        bench("count equality, indexed", lambda who: (lambda: who.count("city", city)))
        bench("range filter, indexed", lambda who: (lambda: who.range("age", 30, 35)))
        bench("single saves (1,000)", lambda who: (lambda: [who.save(r) for r in extra]), times=1)

        print()
        print(f"{'operation':<30}{'raw wall':>11}{'doqu wall':>11}{'ratio':>8}"
              f"{'raw cpu':>10}{'doqu cpu':>10}{'records':>11}{'ratio':>8}")
        for label, wall, cpu in rows:
            line = (f"{label:<30}{wall[raw.name]:>10.4f}s{wall[doqu.name]:>10.4f}s"
                    f"{wall[doqu.name] / wall[raw.name]:>7.2f}x"
                    f"{cpu[raw.name]:>9.4f}s{cpu[doqu.name]:>9.4f}s")
            if records_only.name in wall:
                line += (f"{wall[records_only.name]:>10.4f}s"
                         f"{wall[records_only.name] / wall[raw.name]:>7.2f}x")
            print(line)
        print("\nrecords: the same doqu query through query.records() (canonical dicts, no documents)")
    finally:
        raw.drop()
        doqu.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="documents (default 100,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per query; the best counts")
    parser.add_argument("--profile", metavar="OPERATION", help="cProfile doqu on one operation")
    args = parser.parse_args()
    run(args.n, args.repeat, args.profile)


if __name__ == "__main__":
    main()
