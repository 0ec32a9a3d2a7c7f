"""Redis against redis-py + json, on the server of ``DOQU_TEST_REDIS_URL``.

Each side writes under a key prefix of its own (``doqu-bench:<random>``,
``raw-bench:<random>``) and removes exactly those keys afterwards; the
database is never flushed.
"""

from __future__ import annotations

import heapq
import json
import secrets
from pathlib import Path
from typing import Any, Iterator, Sequence

from doqu import get_db
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec, dumps, package_version

PIPELINE = 500


def _url() -> str:
    from doqu.testing.engines import redis as engine

    return engine.standalone_url()


def _client() -> Any:
    import redis

    return redis.Redis.from_url(_url(), protocol=2)


class RawRedis(Contestant):
    """What a careful programmer writes with redis-py: JSON strings, a key set, sorted-set indexes.

    A record is ``SET p:r:<key> <json>``, its key also in the set ``p:keys``;
    keys from ``INCRBY p:seq``. Writes go through pipelines (one MULTI per
    single save, batches of 500 for bulk saves); reads are GET/MGET; a scan
    is SSCAN over the key set plus MGET per batch, filtered in Python. Once
    indexed, a numeric field has a sorted set ``p:i:<field>`` (score = value),
    kept up to date by every later write, and queries use ZRANGEBYSCORE /
    ZCOUNT on it.
    """

    name = "raw"
    label = "redis-py + json"

    def __init__(self) -> None:
        self.client = _client()
        self.prefix = f"raw-bench:{secrets.token_hex(4)}"
        self.keyset = f"{self.prefix}:keys"
        self.indexed: list[str] = []

    def _r(self, key: str) -> str:
        return f"{self.prefix}:r:{key}"

    def _write(self, pipe: Any, key: str, record: dict[str, Any]) -> None:
        pipe.set(self._r(key), dumps(record))
        pipe.sadd(self.keyset, key)
        for field in self.indexed:
            if field in record:
                pipe.zadd(f"{self.prefix}:i:{field}", {key: record[field]})

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        end = self.client.incrby(f"{self.prefix}:seq", len(records))
        keys = [str(end - len(records) + 1 + i) for i in range(len(records))]
        for start in range(0, len(records), PIPELINE):
            pipe = self.client.pipeline(transaction=False)
            for key, record in zip(keys[start:start + PIPELINE], records[start:start + PIPELINE]):
                self._write(pipe, key, record)
            pipe.execute()
        return keys

    def save(self, record: dict[str, Any]) -> str:
        key = str(self.client.incr(f"{self.prefix}:seq"))
        pipe = self.client.pipeline(transaction=True)
        self._write(pipe, key, record)
        pipe.execute()
        return key

    def get(self, key: str) -> Any:
        return json.loads(self.client.get(self._r(key)))

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        out = []
        for start in range(0, len(keys), PIPELINE):
            out.extend(json.loads(raw) for raw in self.client.mget([self._r(k) for k in keys[start:start + PIPELINE]]))
        return out

    def _all(self) -> Iterator[dict[str, Any]]:
        batch: list[str] = []
        for member in self.client.sscan_iter(self.keyset, count=PIPELINE):
            batch.append(self._r(member.decode()))
            if len(batch) >= PIPELINE:
                yield from (json.loads(raw) for raw in self.client.mget(batch) if raw is not None)
                batch = []
        if batch:
            yield from (json.loads(raw) for raw in self.client.mget(batch) if raw is not None)

    def _by_score(self, field: str, low: Any, high: Any) -> list[Any]:
        members = self.client.zrangebyscore(f"{self.prefix}:i:{field}", low, high)
        return self.get_many([m.decode() for m in members])

    def find_eq(self, field: str, value: Any) -> list[Any]:
        if field in self.indexed:
            return self._by_score(field, value, value)
        return [r for r in self._all() if r.get(field) == value]

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        if field in self.indexed:
            return self._by_score(field, low, f"({high}")
        return [r for r in self._all() if field in r and low <= r[field] < high]

    def top(self, field: str, limit: int) -> list[Any]:
        return heapq.nlargest(limit, (r for r in self._all() if field in r), key=lambda r: r[field])

    def count_eq(self, field: str, value: Any) -> int:
        if field in self.indexed:
            return int(self.client.zcount(f"{self.prefix}:i:{field}", value, value))
        return sum(1 for r in self._all() if r.get(field) == value)

    def values(self, field: str) -> list[Any]:
        return sorted({r[field] for r in self._all() if field in r})

    def index(self, fields: Sequence[str]) -> None:
        batch: list[str] = []

        def flush() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key, raw in zip(batch, self.client.mget([self._r(k) for k in batch])):
                if raw is None:
                    continue
                record = json.loads(raw)
                for field in fields:
                    if field in record:
                        pipe.zadd(f"{self.prefix}:i:{field}", {key: record[field]})
            pipe.execute()

        for member in self.client.sscan_iter(self.keyset, count=PIPELINE):
            batch.append(member.decode())
            if len(batch) >= PIPELINE:
                flush()
                batch = []
        if batch:
            flush()
        self.indexed.extend(fields)

    def update(self, key: str) -> None:
        record = self.get(key)
        record["age"] += 1
        pipe = self.client.pipeline(transaction=True)
        self._write(pipe, key, record)
        pipe.execute()

    def delete(self, key: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._r(key))
        pipe.srem(self.keyset, key)
        for field in self.indexed:
            pipe.zrem(f"{self.prefix}:i:{field}", key)
        pipe.execute()

    def close(self) -> None:
        try:
            doomed = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
            for start in range(0, len(doomed), 1000):
                self.client.delete(*doomed[start:start + 1000])
        finally:
            self.client.close()


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    db = get_db(_url(), prefix=f"doqu-bench:{secrets.token_hex(4)}")

    def cleanup() -> None:
        try:
            if not db.connected:
                db.connect()
            db.drop()
        finally:
            db.disconnect()

    return DoquContestant(db, cleanup)


def _unavailable() -> str | None:
    from doqu.testing.engines import redis as engine

    return engine.standalone_unavailable()


def _versions(env: Any) -> dict[str, str]:
    client = _client()
    try:
        info = client.info("server")
    finally:
        client.close()
    return {"Redis": str(info.get("redis_version")), "redis-py": package_version("redis")}


ENGINE = EngineSpec(
    name="redis", title="Redis", raw_label="redis-py + json (pipelines, sorted sets for indexes)",
    metric="wall", open_doqu=_open_doqu, open_raw=lambda workdir, env: RawRedis(),
    unavailable=_unavailable, versions=_versions, targets=frozenset({"filter", "bulk"}),
)
