"""MongoDB in the conformance suite.

``mongodb`` runs against mongomock, an in-process stand-in for a MongoDB
server (no server can run in CI here): it exercises the whole backend, the
filter documents included, but mongomock is not MongoDB (see
docs/mongodb.md for the known differences). ``mongodb-real`` runs against
the server named by ``DOQU_TEST_MONGODB_URL`` (e.g.
``mongodb://localhost:27017/doqu_test``), each test in a fresh collection
that is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from doqu import get_db
from doqu.testing.registry import Engine, required_engines

URL_VARIABLE = "DOQU_TEST_MONGODB_URL"


def _mongomock_missing() -> str | None:
    for package, extra in (("pymongo", "mongodb"), ("mongomock", "test")):
        if importlib.util.find_spec(package) is None:
            return f"the package {package!r} is not installed (pip install 'doqu[{extra}]')"
    return None


@contextlib.contextmanager
def _open_stand_in(tmp_path: Path) -> Iterator[Any]:
    import mongomock

    client = mongomock.MongoClient(tz_aware=True)
    db = get_db({"backend": "mongodb", "client": client, "database": "doqu_test",
                 "collection": "documents"})
    try:
        yield db
    finally:
        db.disconnect()
        client.close()


@functools.lru_cache(maxsize=1)
def _real_unavailable() -> str | None:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        return f"{URL_VARIABLE} is not set"
    if importlib.util.find_spec("pymongo") is None:
        return "the package 'pymongo' is not installed (pip install 'doqu[mongodb]')"
    import pymongo

    client: Any = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        return f"no MongoDB server at {URL_VARIABLE} ({type(exc).__name__})"
    finally:
        client.close()
    return None


@contextlib.contextmanager
def _open_real(tmp_path: Path) -> Iterator[Any]:
    url = os.environ[URL_VARIABLE]
    name = f"doqu_{uuid.uuid4().hex[:12]}"
    settings: dict[str, Any] = {"url": url, "collection": name}
    if not urlsplit(url).path.strip("/"):
        settings["database"] = "doqu_test"
    db = get_db(settings)
    try:
        yield db
    finally:
        if not db.connected:
            db.connect()
        db._coll.drop()
        db._counters.drop()
        db.disconnect()


ENGINES = [
    Engine("mongodb", open=_open_stand_in, unavailable=_mongomock_missing, stand_in="mongomock"),
]
if os.environ.get(URL_VARIABLE) or "mongodb-real" in required_engines():
    ENGINES.append(Engine("mongodb-real", open=_open_real, unavailable=_real_unavailable))
