"""PostgreSQL against psycopg 3 + json, on the server of ``DOQU_TEST_POSTGRES_URL``.

Both sides get a table of their own (``bench_doqu_<random>``, ``bench_raw_<random>``),
dropped afterwards with everything in it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Sequence

from doqu import get_db
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec, dumps, package_version


def _url() -> str:
    from doqu.testing.engines import postgres

    return postgres.url()


def _conninfo() -> str:
    from doqu.testing.engines import postgres

    return postgres.conninfo()


class RawPostgres(Contestant):
    """What a careful programmer writes with psycopg 3: ``jsonb``, COPY, B-trees on expressions.

    One autocommit connection; bulk saves through ``COPY`` in one
    transaction, single saves as one upsert each; filters on ``data ->
    'field'`` compared as ``jsonb`` (numbers compare as numbers), indexed by
    B-trees on the same expressions; psycopg's own ``jsonb`` loading
    (``json.loads``). Results fetched whole (no server-side cursor).
    """

    name = "raw"
    label = "psycopg 3 + jsonb"

    def __init__(self) -> None:
        import psycopg

        self.table = f"bench_raw_{uuid.uuid4().hex[:10]}"
        self.conn = psycopg.connect(_conninfo(), autocommit=True)
        self.conn.execute(f'CREATE TABLE "{self.table}" (key text PRIMARY KEY, data jsonb NOT NULL)')
        self.next = 0
        self.t = f'"{self.table}"'

    def _key(self) -> str:
        self.next += 1
        return str(self.next)

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        keys = []
        with self.conn.transaction(), self.conn.cursor() as cursor:
            with cursor.copy(f"COPY {self.t} (key, data) FROM STDIN") as copy:
                for record in records:
                    key = self._key()
                    copy.write_row((key, dumps(record)))
                    keys.append(key)
        return keys

    def _upsert(self, key: str, record: dict[str, Any]) -> None:
        self.conn.execute(f"INSERT INTO {self.t} (key, data) VALUES (%s, %s) ON CONFLICT (key) "
                          f"DO UPDATE SET data = excluded.data", (key, dumps(record)))

    def save(self, record: dict[str, Any]) -> str:
        key = self._key()
        self._upsert(key, record)
        return key

    def get(self, key: str) -> Any:
        row = self.conn.execute(f"SELECT data FROM {self.t} WHERE key = %s", (key,)).fetchone()
        assert row is not None
        return row[0]

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        found = dict(self.conn.execute(f"SELECT key, data FROM {self.t} WHERE key = ANY(%s)", (list(keys),)))
        return [found[k] for k in keys]

    def _where(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return [row[0] for row in self.conn.execute(f"SELECT data FROM {self.t} WHERE {sql}", params)]

    @staticmethod
    def _path(field: str) -> str:
        """``data -> 'field'``: the field name is part of the SQL (as in the index), never a
        parameter, so prepared statements keep matching the expression index."""
        from psycopg import sql

        return f"data -> {sql.Literal(field).as_string(None)}"

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return self._where(f"{self._path(field)} = %s::jsonb", (json.dumps(value),))

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        path = self._path(field)
        return self._where(f"{path} >= %s::jsonb AND {path} < %s::jsonb", (json.dumps(low), json.dumps(high)))

    def top(self, field: str, limit: int) -> list[Any]:
        path = self._path(field)
        return [row[0] for row in self.conn.execute(
            f"SELECT data FROM {self.t} WHERE {path} IS NOT NULL ORDER BY {path} DESC LIMIT %s", (limit,))]

    def count_eq(self, field: str, value: Any) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM {self.t} WHERE {self._path(field)} = %s::jsonb",
                                (json.dumps(value),)).fetchone()
        assert row is not None
        return int(row[0])

    def values(self, field: str) -> list[Any]:
        path = self._path(field)
        return [row[0] for row in self.conn.execute(
            f"SELECT DISTINCT {path} AS v FROM {self.t} WHERE {path} IS NOT NULL ORDER BY 1")]

    def index(self, fields: Sequence[str]) -> None:
        for field in fields:
            self.conn.execute(f"CREATE INDEX ON {self.t} (({self._path(field)}))")
        self.conn.execute(f"ANALYZE {self.t}")

    def update(self, key: str) -> None:
        with self.conn.transaction():
            row = self.conn.execute(f"SELECT data FROM {self.t} WHERE key = %s", (key,)).fetchone()
            assert row is not None
            record = row[0]
            record["age"] += 1
            self._upsert(key, record)

    def delete(self, key: str) -> None:
        self.conn.execute(f"DELETE FROM {self.t} WHERE key = %s", (key,))

    def close(self) -> None:
        try:
            self.conn.execute(f"DROP TABLE IF EXISTS {self.t}")
        finally:
            self.conn.close()


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    table = f"bench_doqu_{uuid.uuid4().hex[:10]}"
    db = get_db(_url(), table=table)

    def cleanup() -> None:
        try:
            db.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
        finally:
            db.disconnect()

    return DoquContestant(db, cleanup)


def _unavailable() -> str | None:
    from doqu.testing.engines import postgres

    return postgres.unavailable()


def _versions(env: Any) -> dict[str, str]:
    import psycopg

    with psycopg.connect(_conninfo()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {"PostgreSQL": str(row[0]).split()[0] if row else "?", "psycopg": package_version("psycopg"),
            "psycopg-pool": package_version("psycopg-pool")}


ENGINE = EngineSpec(
    name="postgres", title="PostgreSQL", raw_label="psycopg 3 + jsonb (COPY, expression B-trees)",
    metric="wall", open_doqu=_open_doqu, open_raw=lambda workdir, env: RawPostgres(),
    unavailable=_unavailable, versions=_versions, targets=frozenset({"filter", "bulk"}), large=True,
)
