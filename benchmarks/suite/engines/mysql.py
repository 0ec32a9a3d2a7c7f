"""MariaDB against PyMySQL + json, on the server of ``DOQU_TEST_MYSQL_URL``.

Both sides get a table of their own, dropped afterwards (doqu's key counter
row in ``doqu_sequences`` too).
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
    from doqu.testing.engines import mysql

    return mysql.url()


def _connect() -> Any:
    import pymysql

    from doqu.testing.engines import mysql

    args = mysql._connect_args()
    args.pop("connect_timeout", None)
    return pymysql.connect(**args)


class RawMySQL(Contestant):
    """What a careful programmer writes with PyMySQL + json.

    doqu's table layout (``key`` VARCHAR primary key with a binary
    collation, ``data`` LONGTEXT checked by ``JSON_VALID``), ``executemany``
    for bulk inserts (PyMySQL folds them into multi-row INSERTs),
    ``JSON_VALUE`` in WHERE and ORDER BY, and for indexes a virtual generated
    column per field with an index on it.
    """

    name = "raw"
    label = "PyMySQL + json"

    def __init__(self) -> None:
        self.table = f"bench_raw_{uuid.uuid4().hex[:10]}"
        self.conn = _connect()
        self.t = f"`{self.table}`"
        self._sql(f"CREATE TABLE {self.t} (`key` VARCHAR(768) COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY, "
                  f"`data` LONGTEXT COLLATE utf8mb4_bin NOT NULL CHECK (JSON_VALID(`data`))) ENGINE=InnoDB")
        self.next = 0
        self.columns: dict[str, str] = {}

    def _key(self) -> str:
        self.next += 1
        return str(self.next)

    def _sql(self, sql: str, params: Any = None) -> list[Any]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        rows = [(self._key(), dumps(r)) for r in records]
        self.conn.begin()
        with self.conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {self.t} (`key`, `data`) VALUES (%s, %s)", rows)
        self.conn.commit()
        return [k for k, _ in rows]

    def _upsert(self, key: str, record: dict[str, Any]) -> None:
        self._sql(f"INSERT INTO {self.t} (`key`, `data`) VALUES (%s, %s) "
                  f"ON DUPLICATE KEY UPDATE `data` = VALUES(`data`)", (key, dumps(record)))

    def save(self, record: dict[str, Any]) -> str:
        key = self._key()
        self._upsert(key, record)
        return key

    def get(self, key: str) -> Any:
        return json.loads(self._sql(f"SELECT `data` FROM {self.t} WHERE `key` = %s", (key,))[0][0])

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            found.update(self._sql(f"SELECT `key`, `data` FROM {self.t} WHERE `key` IN %s", (chunk,)))
        return [json.loads(found[k]) for k in keys]

    def _col(self, field: str) -> str:
        return self.columns.get(field, f"JSON_VALUE(`data`, '$.{field}')")

    def _where(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return [json.loads(row[0]) for row in self._sql(f"SELECT `data` FROM {self.t} WHERE {sql}", params)]

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return self._where(f"{self._col(field)} = %s", (value,))

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        col = self._col(field)
        return self._where(f"{col} >= %s AND {col} < %s", (low, high))

    def top(self, field: str, limit: int) -> list[Any]:
        return [json.loads(row[0]) for row in self._sql(
            f"SELECT `data` FROM {self.t} ORDER BY CAST(JSON_VALUE(`data`, '$.{field}') AS DOUBLE) DESC "
            f"LIMIT %s", (limit,))]

    def count_eq(self, field: str, value: Any) -> int:
        return int(self._sql(f"SELECT count(*) FROM {self.t} WHERE {self._col(field)} = %s", (value,))[0][0])

    def values(self, field: str) -> list[Any]:
        return [row[0] for row in self._sql(
            f"SELECT DISTINCT JSON_VALUE(`data`, '$.{field}') AS v FROM {self.t} WHERE "
            f"JSON_VALUE(`data`, '$.{field}') IS NOT NULL ORDER BY 1")]

    def index(self, fields: Sequence[str]) -> None:
        clauses = []
        for field in fields:
            clauses.append(f"ADD COLUMN `g_{field}` DOUBLE AS (JSON_VALUE(`data`, '$.{field}')) VIRTUAL, "
                           f"ADD INDEX (`g_{field}`)")
        self._sql(f"ALTER TABLE {self.t} " + ", ".join(clauses))
        for field in fields:
            self.columns[field] = f"`g_{field}`"

    def update(self, key: str) -> None:
        self.conn.begin()
        record = json.loads(self._sql(f"SELECT `data` FROM {self.t} WHERE `key` = %s", (key,))[0][0])
        record["age"] += 1
        self._upsert(key, record)
        self.conn.commit()

    def delete(self, key: str) -> None:
        self._sql(f"DELETE FROM {self.t} WHERE `key` = %s", (key,))

    def close(self) -> None:
        try:
            self._sql(f"DROP TABLE IF EXISTS {self.t}")
        finally:
            self.conn.close()


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    table = f"bench_doqu_{uuid.uuid4().hex[:10]}"
    db = get_db(_url(), table=table)

    def cleanup() -> None:
        try:
            db.execute(f"DROP TABLE IF EXISTS `{table}`")
            db.execute("DELETE FROM doqu_sequences WHERE name = %s", (table,))
        finally:
            db.disconnect()

    return DoquContestant(db, cleanup)


def _unavailable() -> str | None:
    from doqu.testing.engines import mysql

    return mysql.unavailable()


def _versions(env: Any) -> dict[str, str]:
    conn = _connect()
    try:
        version = conn.get_server_info()
    finally:
        conn.close()
    return {"MariaDB": version, "PyMySQL": package_version("PyMySQL")}


ENGINE = EngineSpec(
    name="mysql", title="MariaDB", raw_label="PyMySQL + json (generated columns for indexes)",
    metric="wall", open_doqu=_open_doqu, open_raw=lambda workdir, env: RawMySQL(),
    unavailable=_unavailable, versions=_versions, targets=frozenset({"filter", "bulk"}),
)
