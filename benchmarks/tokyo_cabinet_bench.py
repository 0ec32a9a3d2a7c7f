"""doqu's Tokyo Cabinet backend against raw calls of the ctypes binding.

Not a test: it prints timings and the doqu/raw ratio for each operation, so
the cost of doqu's layer (encoding, type checks, catalogue, documents) is
visible. Both sides use the same library, file layout and queries; the raw
side skips everything doqu adds.

    .venv/bin/python benchmarks/tokyo_cabinet_bench.py [-n 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from doqu import Document, get_db
from doqu.ext.tokyo_cabinet import _binding as tc
from doqu.ext.tokyo_cabinet import codec

CITIES = ["Oslo", "Rome", "Lima", "Kyiv", "Umeå", "Bergen", "Paris", "Quito"]


class Person(Document):
    structure = {"name": str, "age": int, "city": str, "score": float}


def make_rows(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(42)
    return [{"name": f"person{i}", "age": rnd.randrange(0, 100), "city": rnd.choice(CITIES),
             "score": round(rnd.random() * 10, 2)} for i in range(n)]


def best(func: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def run(n: int, repeat: int, directory: Path) -> list[tuple[str, float, float]]:
    rows = make_rows(n)
    probe_keys = random.Random(1).sample(range(n), min(n, 2000))

    # -- doqu ---------------------------------------------------------------
    db = get_db({"backend": "tokyo_cabinet", "path": str(directory / "doqu.tct")})

    def doqu_save() -> list[str]:
        db.clear()
        return db.save_many(Person(**row) for row in rows)

    t_doqu_save, keys = best(doqu_save, repeat)
    doqu_get = best(lambda: [db.get(Person, keys[i]) for i in probe_keys], repeat)[0]
    q = Person.objects(db)
    # a comprehension, not list(query): list() asks len() for a size hint, and the
    # query's __len__ runs the query a second time (reported as a core issue)
    doqu_eq, found_eq = best(lambda: [p for p in q.where(city="Oslo")], repeat)
    doqu_range, found_range = best(lambda: [p for p in q.where(age__gte=30, age__lt=40)],
                                   repeat)
    doqu_count, count = best(lambda: q.where(age__gte=50).count(), repeat)
    db.disconnect()

    # -- raw binding ----------------------------------------------------------
    raw = tc.TableDB()
    raw.open(str(directory / "raw.tct"), tc.OWRITER | tc.OCREAT)
    encoded = [{b"name": r["name"].encode(), b"age": str(r["age"]).encode(),
                b"city": r["city"].encode(), b"score": repr(r["score"]).encode()} for r in rows]

    def raw_save() -> list[bytes]:
        raw.vanish()
        raw.tranbegin()
        out = []
        for cols in encoded:
            key = str(raw.genuid()).encode()
            raw.put(key, cols)
            out.append(key)
        raw.trancommit()
        return out

    t_raw_save, raw_keys = best(raw_save, repeat)
    raw_get = best(lambda: [raw.get(raw_keys[i]) for i in probe_keys], repeat)[0]

    def raw_search(*conds: tuple[bytes, int, bytes], fetch: bool = True) -> Any:
        with raw.query() as query:
            for cond in conds:
                query.addcond(*cond)
            found = query.search()
        return [raw.get(k) for k in found] if fetch else len(found)

    raw_eq, raw_found_eq = best(lambda: raw_search((b"city", tc.QCSTREQ, b"Oslo")), repeat)
    raw_range, raw_found_range = best(
        lambda: raw_search((b"age", tc.QCNUMGE, b"30"), (b"age", tc.QCNUMLT, b"40")), repeat)
    raw_count, raw_n = best(lambda: raw_search((b"age", tc.QCNUMGE, b"50"), fetch=False), repeat)
    raw.close()

    assert len(found_eq) == len(raw_found_eq) and len(found_range) == len(raw_found_range)
    assert count == raw_n
    assert codec.CATALOGUE_KEY not in raw_keys
    return [
        (f"bulk save {n} (save_many / one transaction)", t_doqu_save, t_raw_save),
        (f"get by key x{len(probe_keys)}", doqu_get, raw_get),
        (f"equality filter city=Oslo ({len(found_eq)} rows)", doqu_eq, raw_eq),
        (f"range filter 30<=age<40 ({len(found_range)} rows)", doqu_range, raw_range),
        (f"count age>=50 ({count})", doqu_count, raw_count),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="documents (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best counts")
    args = parser.parse_args()
    print(f"Tokyo Cabinet {tc.library_version()}, N={args.n}, best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.n, args.repeat, Path(tmp))
    width = max(len(name) for name, _, _ in results)
    print(f"{'operation':<{width}}  {'doqu s':>9}  {'raw s':>9}  {'doqu/raw':>8}")
    for name, doqu_t, raw_t in results:
        print(f"{name:<{width}}  {doqu_t:9.4f}  {raw_t:9.4f}  {doqu_t / raw_t:8.1f}")


if __name__ == "__main__":
    main()
