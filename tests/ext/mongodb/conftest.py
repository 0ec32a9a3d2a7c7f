"""Fixtures for the MongoDB backend tests.

``server`` is a raw pymongo-compatible client: the mongomock stand-in always,
and a real MongoDB when ``DOQU_TEST_MONGODB_URL`` is set (or when
``DOQU_TEST_REQUIRE`` names ``mongodb-real``, which then fails without it). ``collection`` is a
fresh, empty collection on it; ``storage`` a doqu storage over that collection.
Tests of behaviour where mongomock is known to differ from MongoDB call the
``mongomock_differs`` fixture with a reason: they assert MongoDB's documented
behaviour and are strict expected failures on the stand-in only.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Iterator

import pytest

from doqu import get_db
from doqu.testing.registry import skip_or_fail

URL_VARIABLE = "DOQU_TEST_MONGODB_URL"


def _servers() -> list[str]:
    required = {n.strip() for n in os.environ.get("DOQU_TEST_REQUIRE", "").split(",")}
    wanted = os.environ.get(URL_VARIABLE) or "mongodb-real" in required
    return ["mongomock", "real"] if wanted else ["mongomock"]


@pytest.fixture(params=_servers())
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "mongomock":
        mongomock = pytest.importorskip("mongomock", reason="mongomock (the test extra) is missing")
        client = mongomock.MongoClient(tz_aware=True)
        yield client
        client.close()
        return
    url = os.environ.get(URL_VARIABLE)
    if not url:
        skip_or_fail("mongodb-real", f"{URL_VARIABLE} is not set")
    import pymongo

    client = pymongo.MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        client.close()
        skip_or_fail("mongodb-real", f"no server at {URL_VARIABLE}: {type(exc).__name__}")
    yield client
    client.close()


@pytest.fixture
def database_name(server: Any) -> str:
    return "doqu_test"


@pytest.fixture
def collection(server: Any, database_name: str) -> Iterator[Any]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    coll = server[database_name][name]
    yield coll
    coll.drop()
    server[database_name][f"{name}__doqu_counters"].drop()


@pytest.fixture
def storage(server: Any, collection: Any, database_name: str) -> Iterator[Any]:
    db = get_db({"backend": "mongodb", "client": server, "database": database_name,
                 "collection": collection.name})
    yield db
    db.disconnect()


@pytest.fixture
def is_stand_in(server: Any) -> bool:
    return type(server).__module__.startswith("mongomock")


@pytest.fixture
def mongomock_differs(request: pytest.FixtureRequest, is_stand_in: bool) -> Any:
    """Call with a reason: the running test is a strict expected failure on mongomock only."""
    def mark(reason: str) -> None:
        if is_stand_in:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"mongomock: {reason}"))

    return mark
