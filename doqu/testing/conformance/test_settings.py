"""Choosing an engine by settings: errors that name the problem and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from doqu import ConfigurationError, get_db, get_storage
from doqu.config import parse_url


def test_get_storage_is_an_alias() -> None:
    assert get_storage is get_db


def test_unknown_short_name() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "nosuchengine"})
    assert "nosuchengine" in str(info.value) and "sqlite" in str(info.value)


def test_module_that_is_no_backend() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "doqu.errors"})
    assert "StorageAdapter" in str(info.value)


def test_module_that_does_not_exist() -> None:
    with pytest.raises(ConfigurationError):
        get_db({"backend": "doqu.ext.nothing_here"})


def test_missing_backend_setting() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"path": "x"})
    assert "backend" in str(info.value)


def test_missing_required_setting() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "shelve"})
    assert "path" in str(info.value)


def test_unknown_setting() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "memory", "colour": "red"})
    assert "colour" in str(info.value)


def test_malformed_url() -> None:
    with pytest.raises(ConfigurationError):
        get_db("not a url")
    with pytest.raises(ConfigurationError):
        get_db("redis://host:notaport/0")


def test_keyword_overrides_win(tmp_path: Any) -> None:
    db = get_db({"backend": "shelve", "path": "ignored"}, path=str(tmp_path / "x.db"))
    assert str(tmp_path) in db.describe_location()
    db.disconnect()


@pytest.mark.parametrize("url,expected", [
    ("sqlite:///app.db", {"backend": "sqlite", "path": "app.db"}),
    ("sqlite:////abs/app.db", {"backend": "sqlite", "path": "/abs/app.db"}),
    ("sqlite://", {"backend": "sqlite", "path": None}),
    ("memory://", {"backend": "memory"}),
    ("shelve:///data.db", {"backend": "shelve", "path": "data.db"}),
    ("tokyo-cabinet:///data.tct", {"backend": "tokyo-cabinet", "path": "data.tct"}),
    ("postgresql://user:pw@host:5433/db?table=docs",
     {"backend": "postgresql", "host": "host", "port": 5433, "user": "user", "password": "pw",
      "database": "db", "table": "docs"}),
    ("redis://localhost/0?prefix=app",
     {"backend": "redis", "host": "localhost", "database": "0", "prefix": "app"}),
    ("redis+cluster://127.0.0.1:7000?prefix=app",
     {"backend": "redis+cluster", "host": "127.0.0.1", "port": 7000, "cluster": True, "prefix": "app"}),
    ("mongodb://localhost/app?collection=docs",
     {"backend": "mongodb", "host": "localhost", "database": "app", "collection": "docs"}),
    ("tokyo-tyrant://localhost:1978",
     {"backend": "tokyo-tyrant", "host": "localhost", "port": 1978}),
])
def test_url_parsing(url: str, expected: dict[str, Any]) -> None:
    assert parse_url(url) == expected


def test_engine_switch_is_one_value(engine: Any, tmp_path: Any) -> None:
    """The same application code runs unchanged on every engine."""
    from doqu import Document

    class Item(Document):
        structure = {"name": str, "qty": int}

    with engine.open(tmp_path) as db:
        for i in range(5):
            Item(name=f"item{i}", qty=i).save(db)
        assert [i.name for i in Item.objects(db).where(qty__gte=3).order_by("-qty")] == ["item4", "item3"]
