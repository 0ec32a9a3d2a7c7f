"""Tokyo Tyrant against raw protocol calls, both on the test stand-in server (marked as a stand-in).

No ``ttserver`` is installed here: both sides talk to ``tests/tyrant_server.py``,
a Python server speaking the Tokyo Tyrant protocol over the real Tokyo
Cabinet library, each in a process of its own (as a server would be), on a
fresh file per size. The raw side uses doqu's protocol client
(:class:`doqu.ext.tokyo_tyrant.protocol.TyrantConnection`), the only Python
client at hand, directly: keys from ``genuid``, batches through
``putlist``/``getlist``, searches that return the records in the same
round trip (``search`` with ``get``). Server time is mostly the stand-in's
Python, so the ratios say more about doqu's round trips than about speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from doqu import get_db
from suite.contestants import Contestant, DoquContestant
from suite.engines import EngineSpec
from suite.engines.tokyo_cabinet import DECODE, decode_columns, encode_columns

ROOT = Path(__file__).resolve().parents[3]
_SERVE = """
import sys
sys.path.insert(0, {root!r})
from tests.tyrant_server import TyrantStandIn
server = TyrantStandIn({path!r}).start()
print(server.port, flush=True)
sys.stdin.read()
server.stop()
"""
BATCH = 256


class StandIn:
    """One stand-in server in a child process, over the file ``path``; ``close()`` stops it."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE.format(root=str(ROOT), path=str(path))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"the Tokyo Tyrant stand-in did not start (said {line!r})")
        self.port = int(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RawTyrant(Contestant):
    name = "raw"
    label = "protocol client (TyrantConnection), no doqu"

    def __init__(self, path: Path) -> None:
        from doqu.ext.tokyo_tyrant.protocol import TyrantConnection, TyrantQuery

        self.server = StandIn(path)
        self.conn = TyrantConnection("127.0.0.1", self.server.port, timeout=60)
        self.conn.connect()
        self.Query = TyrantQuery

    def bulk_save(self, records: Sequence[dict[str, Any]]) -> list[str]:
        keys = []
        for start in range(0, len(records), BATCH):
            chunk = [(str(self.conn.genuid()), encode_columns(r)) for r in records[start:start + BATCH]]
            self.conn.tbl_putlist([(k.encode(), cols) for k, cols in chunk])
            keys.extend(k for k, _ in chunk)
        return keys

    def save(self, record: dict[str, Any]) -> str:
        key = str(self.conn.genuid())
        self.conn.tbl_put(key.encode(), encode_columns(record))
        return key

    def get(self, key: str) -> Any:
        cols = self.conn.tbl_get(key.encode())
        assert cols is not None
        return decode_columns(cols)

    def get_many(self, keys: Sequence[str]) -> list[Any]:
        found: dict[bytes, dict[bytes, bytes]] = {}
        for start in range(0, len(keys), BATCH):
            found.update(self.conn.tbl_getlist([k.encode() for k in keys[start:start + BATCH]]))
        return [decode_columns(found[k.encode()]) for k in keys]

    def _records(self, query: Any) -> list[Any]:
        out = []
        for cols in self.conn.search_get(query):
            cols.pop(b"", None)  # the primary key
            out.append(decode_columns(cols))
        return out

    def find_eq(self, field: str, value: Any) -> list[Any]:
        from doqu.ext.tokyo_tyrant.protocol import QCNUMEQ

        return self._records(self.Query().addcond(field, QCNUMEQ, str(value)))

    def find_range(self, field: str, low: Any, high: Any) -> list[Any]:
        from doqu.ext.tokyo_tyrant.protocol import QCNUMGE, QCNUMLT

        return self._records(self.Query().addcond(field, QCNUMGE, str(low)).addcond(field, QCNUMLT, str(high)))

    def top(self, field: str, limit: int) -> list[Any]:
        from doqu.ext.tokyo_tyrant.protocol import QONUMDESC

        return self._records(self.Query().setorder(field, QONUMDESC).setlimit(limit, 0))

    def count_eq(self, field: str, value: Any) -> int:
        from doqu.ext.tokyo_tyrant.protocol import QCNUMEQ

        return self.conn.search_count(self.Query().addcond(field, QCNUMEQ, str(value)))

    def values(self, field: str) -> list[Any]:
        column = field.encode()
        rows = self.conn.search_get(self.Query(), [column])
        return sorted({DECODE[field](cols[column]) for cols in rows if column in cols})

    def index(self, fields: Sequence[str]) -> None:
        from doqu.ext.tokyo_tyrant.protocol import ITDECIMAL

        for field in fields:
            self.conn.setindex(field, ITDECIMAL)

    def update(self, key: str) -> None:
        record = self.get(key)
        record["age"] += 1
        self.conn.tbl_put(key.encode(), encode_columns(record))

    def delete(self, key: str) -> None:
        self.conn.tbl_out(key.encode())

    def close(self) -> None:
        self.conn.close()
        self.server.close()


def _open_doqu(workdir: Path, env: Any) -> DoquContestant:
    server = StandIn(workdir / "doqu.tct")
    try:
        db = get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": server.port, "timeout": 60})
    except BaseException:
        server.close()
        raise

    def cleanup() -> None:
        try:
            db.disconnect()
        finally:
            server.close()

    return DoquContestant(db, cleanup)


def _unavailable() -> str | None:
    from doqu.ext.tokyo_cabinet import _binding

    if not (ROOT / "tests" / "tyrant_server.py").is_file():
        return "the stand-in tests/tyrant_server.py is not here (it ships with the source tree)"
    try:
        _binding.load_library()
    except _binding.LibraryMissing as exc:
        return f"the stand-in needs the Tokyo Cabinet library: {exc}"
    return None


ENGINE = EngineSpec(
    name="tokyo_tyrant", title="Tokyo Tyrant", raw_label="protocol client, no doqu", metric="wall",
    open_doqu=_open_doqu, open_raw=lambda workdir, env: RawTyrant(workdir / "raw.tct"),
    unavailable=_unavailable, stand_in="the ttserver stand-in of tests/tyrant_server.py (Python, "
    "over the real Tokyo Cabinet library), one child process per store",
    versions=lambda env: {"server": "stand-in (tests/tyrant_server.py)"},
    max_size=10_000,
    notes=["runs at 10,000 documents only by default: the stand-in server is Python, one "
           "round trip per request"],
)
