"""Tokyo Cabinet (the real library) against raw calls of doqu's ctypes binding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from doqu import get_db
from doqu.ext.tokyo_cabinet import _binding as tc
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec, dumps

#: How the raw side decodes its columns: it knows its own schema.
DECODE: dict[str, Callable[[bytes], Any]] = {
    "name": bytes.decode, "city": bytes.decode, "age": int, "batch": int, "score": float,
    "active": lambda raw: raw == b"true", "tags": json.loads, "address": json.loads,
}


def encode_columns(record: dict[str, Any]) -> dict[bytes, bytes]:
    """Strings as UTF-8, numbers as decimal text, booleans as words, lists and dicts as JSON."""
    cols = {}
    for name, value in record.items():
        if isinstance(value, bool):
            raw = b"true" if value else b"false"
        elif isinstance(value, (int, float)):
            raw = repr(value).encode()
        elif isinstance(value, str):
            raw = value.encode()
        else:
            raw = dumps(value).encode()
        cols[name.encode()] = raw
    return cols


def decode_columns(cols: dict[bytes, bytes]) -> dict[str, Any]:
    return {name.decode(): DECODE[name.decode()](raw) for name, raw in cols.items()}


class RawTokyoCabinet(Contestant):
    """The binding's ``TableDB``: one column per field, TC's own queries and decimal indexes."""

    name = "raw"
    label = "ctypes binding (doqu/ext/tokyo_cabinet/_binding.py)"

    def __init__(self, path: Path) -> None:
        self.db = tc.TableDB()
        self.db.open(str(path), tc.OWRITER | tc.OCREAT)

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        keys = []
        self.db.tranbegin()
        for record in records:
            key = str(self.db.genuid())
            self.db.put(key.encode(), encode_columns(record))
            keys.append(key)
        self.db.trancommit()
        return keys

    def save(self, record: dict[str, Any]) -> str:
        key = str(self.db.genuid())
        self.db.put(key.encode(), encode_columns(record))
        return key

    def get(self, key: str) -> Any:
        cols = self.db.get(key.encode())
        assert cols is not None
        return decode_columns(cols)

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        return [self.get(k) for k in keys]

    def _search(self, *conds: tuple[bytes, int, bytes], order: tuple[bytes, int] | None = None,
                limit: int | None = None) -> list[bytes]:
        with self.db.query() as query:
            for cond in conds:
                query.addcond(*cond)
            if order:
                query.setorder(*order)
            if limit is not None:
                query.setlimit(limit, 0)
            return query.search()

    def _fetch(self, keys: list[bytes]) -> list[Any]:
        out = []
        for key in keys:
            cols = self.db.get(key)
            if cols is not None:
                out.append(decode_columns(cols))
        return out

    def find_eq(self, field: str, value: Any) -> list[Any]:
        return self._fetch(self._search((field.encode(), tc.QCNUMEQ, str(value).encode())))

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        f = field.encode()
        return self._fetch(self._search((f, tc.QCNUMGE, str(low).encode()), (f, tc.QCNUMLT, str(high).encode())))

    def top(self, field: str, limit: int) -> list[Any]:
        return self._fetch(self._search(order=(field.encode(), tc.QONUMDESC), limit=limit))

    def count_eq(self, field: str, value: Any) -> int:
        return len(self._search((field.encode(), tc.QCNUMEQ, str(value).encode())))

    def values(self, field: str) -> list[Any]:
        column = field.encode()
        found = set()
        for key in self.db.keys():
            cols = self.db.get(key)
            if cols is not None and column in cols:
                found.add(DECODE[field](cols[column]))
        return sorted(found)

    def index(self, fields: Sequence[str]) -> None:
        for field in fields:
            self.db.setindex(field.encode(), tc.ITDECIMAL)

    def update(self, key: str) -> None:
        record = self.get(key)
        record["age"] += 1
        self.db.put(key.encode(), encode_columns(record))

    def delete(self, key: str) -> None:
        self.db.out(key.encode())

    def close(self) -> None:
        self.db.close()


def _unavailable() -> str | None:
    try:
        tc.load_library()
    except tc.LibraryMissing as exc:
        return str(exc)
    return None


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    db = get_db({"backend": "tokyo_cabinet", "path": str(workdir / "doqu.tct")})
    return DoquContestant(db, db.disconnect)


ENGINE = EngineSpec(
    name="tokyo_cabinet", title="Tokyo Cabinet", raw_label="ctypes binding, no doqu", metric="cpu",
    open_doqu=_open_doqu, open_raw=lambda workdir, env: RawTokyoCabinet(workdir / "raw.tct"),
    unavailable=_unavailable, versions=lambda env: {"Tokyo Cabinet": tc.library_version()},
)
