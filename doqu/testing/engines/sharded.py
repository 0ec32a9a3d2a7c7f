"""The sharded backend in the conformance suite.

- ``sharded-memory``: three memory shards (the fan-out and merge logic alone);
- ``sharded-by-field``: three memory shards placed by ``shard_by='city'``, so
  application keys are found by asking every shard;
- ``sharded-sqlite``: three SQLite files;
- ``sharded-mixed``: memory + shelve + SQLite;
- ``sharded-mixed-mongodb``: memory + SQLite + MongoDB (mongomock stand-in),
  whose native form differs (Decimals as ``Decimal128``).

The SQLite engines appear only once ``doqu.ext.sqlite`` can be imported;
until then ``sharded-shelve`` (three shelve files) takes the place of
``sharded-sqlite`` and ``sharded-mixed`` is memory + shelve.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable, Iterator

from doqu import get_db
from doqu.testing.registry import Engine


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # not written yet, or its driver is missing: leave it out
        return False
    return True


_SQLITE = _importable("doqu.ext.sqlite")


def _sharded(members: Callable[[Path, contextlib.ExitStack], list[Any]], **settings: Any) -> Callable[[Path], Any]:
    @contextlib.contextmanager
    def open_(tmp_path: Path) -> Iterator[Any]:
        with contextlib.ExitStack() as cleanup:
            shards = members(tmp_path, cleanup)
            for shard in shards:
                cleanup.callback(shard.disconnect)
            db = get_db({"backend": "sharded", "shards": shards, **settings})
            cleanup.callback(db.disconnect)
            yield db

    return open_


def _memory(tmp_path: Path, cleanup: contextlib.ExitStack) -> list[Any]:
    return [get_db("memory://") for _ in range(3)]


def _shelve(tmp_path: Path, cleanup: contextlib.ExitStack) -> list[Any]:
    return [get_db({"backend": "shelve", "path": str(tmp_path / f"shard{i}.shelve")}) for i in range(3)]


def _sqlite(tmp_path: Path, cleanup: contextlib.ExitStack) -> list[Any]:
    return [get_db({"backend": "sqlite", "path": str(tmp_path / f"shard{i}.sqlite")}) for i in range(3)]


def _mixed(tmp_path: Path, cleanup: contextlib.ExitStack) -> list[Any]:
    members = [get_db("memory://"), get_db({"backend": "shelve", "path": str(tmp_path / "shard.shelve")})]
    if _SQLITE:
        members.append(get_db({"backend": "sqlite", "path": str(tmp_path / "shard.sqlite")}))
    return members


def _mixed_mongodb(tmp_path: Path, cleanup: contextlib.ExitStack) -> list[Any]:
    import mongomock

    client: Any = mongomock.MongoClient(tz_aware=True)
    cleanup.callback(client.close)
    return [get_db("memory://"),
            get_db({"backend": "sqlite", "path": str(tmp_path / "shard.sqlite")}),
            get_db({"backend": "mongodb", "client": client, "database": "doqu_test",
                    "collection": "documents"})]


def _mongomock_missing() -> str | None:
    if not _SQLITE:
        return "the SQLite backend (doqu.ext.sqlite) cannot be imported"
    for package, extra in (("pymongo", "mongodb"), ("mongomock", "test")):
        if importlib.util.find_spec(package) is None:
            return f"the package {package!r} is not installed (pip install 'doqu[{extra}]')"
    if not _importable("doqu.ext.mongodb"):
        return "the MongoDB backend (doqu.ext.mongodb) cannot be imported"
    return None


ENGINES = [
    Engine("sharded-memory", open=_sharded(_memory)),
    Engine("sharded-by-field", open=_sharded(_memory, shard_by="city")),
    Engine("sharded-mixed", open=_sharded(_mixed)),
]
if _SQLITE:
    ENGINES.append(Engine("sharded-sqlite", open=_sharded(_sqlite)))
    ENGINES.append(Engine("sharded-mixed-mongodb", open=_sharded(_mixed_mongodb),
                          unavailable=_mongomock_missing, stand_in="mongomock"))
else:
    ENGINES.append(Engine("sharded-shelve", open=_sharded(_shelve)))
