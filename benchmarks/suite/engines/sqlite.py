"""SQLite (a file) against sqlite3 + json with doqu's table layout; TinyDB's JSON file beside it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from doqu import get_db
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec, dumps


class RawSQLite(Contestant):
    """What a careful programmer writes with sqlite3 + json.

    The same table (``key`` TEXT UNIQUE, ``data`` JSON text), WAL and
    ``synchronous=NORMAL`` as doqu, ``json_extract`` in WHERE and ORDER BY,
    expression indexes on the same expressions; keys from a counter in
    Python. Returns plain dicts.
    """

    name = "raw"
    label = "sqlite3 + json"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = wal")
        self.conn.execute("PRAGMA synchronous = normal")
        self.conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
                          "data TEXT NOT NULL)")
        self.next = 0

    def _key(self) -> str:
        self.next += 1
        return str(self.next)

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        rows = [(self._key(), dumps(r)) for r in records]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO docs (key, data) VALUES (?, ?)", rows)
        self.conn.execute("COMMIT")
        return [key for key, _ in rows]

    def _upsert(self, key: str, record: dict[str, Any]) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO docs (key, data) VALUES (?, ?) ON CONFLICT (key) "
                          "DO UPDATE SET data = excluded.data", (key, dumps(record)))
        self.conn.execute("COMMIT")

    def save(self, record: dict[str, Any]) -> str:
        key = self._key()
        self._upsert(key, record)
        return key

    def get(self, key: str) -> Any:
        return json.loads(self.conn.execute("SELECT data FROM docs WHERE key = ?", (key,)).fetchone()[0])

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            found.update(self.conn.execute(
                f"SELECT key, data FROM docs WHERE key IN ({', '.join('?' * len(chunk))})", chunk))
        return [json.loads(found[k]) for k in keys]

    def _where(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return [json.loads(row[0]) for row in self.conn.execute(f"SELECT data FROM docs WHERE {sql}", params)]

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return self._where(f"json_extract(data, '$.{field}') = ?", (value,))

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        return self._where(f"json_extract(data, '$.{field}') >= ? AND json_extract(data, '$.{field}') < ?",
                           (low, high))

    def top(self, field: str, limit: int) -> list[Any]:
        return [json.loads(row[0]) for row in self.conn.execute(
            f"SELECT data FROM docs ORDER BY json_extract(data, '$.{field}') DESC LIMIT ?", (limit,))]

    def count_eq(self, field: str, value: Any) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM docs WHERE json_extract(data, '$.{field}') = ?",
                                     (value,)).fetchone()[0])

    def values(self, field: str) -> list[Any]:
        return [row[0] for row in self.conn.execute(
            f"SELECT DISTINCT json_extract(data, '$.{field}') AS v FROM docs WHERE v IS NOT NULL ORDER BY 1")]

    def index(self, fields: Sequence[str]) -> None:
        for field in fields:
            self.conn.execute(f"CREATE INDEX idx_{field} ON docs (json_extract(data, '$.{field}'))")

    def update(self, key: str) -> None:
        record = self.get(key)
        record["age"] += 1
        self._upsert(key, record)

    def delete(self, key: str) -> None:
        self.conn.execute("DELETE FROM docs WHERE key = ?", (key,))

    def close(self) -> None:
        self.conn.close()


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    db = get_db(f"sqlite:///{workdir / 'doqu.sqlite3'}")
    return DoquContestant(db, db.disconnect)


def _peers(workdir: Path) -> list[Contestant]:
    from suite.peers import tinydb_file

    peer = tinydb_file(workdir / "tinydb.json")
    return [peer] if peer is not None else []


ENGINE = EngineSpec(
    name="sqlite", title="sqlite (file)", raw_label="sqlite3 + json", metric="cpu",
    open_doqu=_open_doqu, open_raw=lambda workdir, env: RawSQLite(workdir / "raw.sqlite3"),
    versions=lambda env: {"SQLite": sqlite3.sqlite_version}, targets=frozenset({"filter"}),
    large=True, peers=_peers,
)
