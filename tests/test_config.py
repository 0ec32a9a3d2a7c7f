"""Backend loading and settings coercion."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from doqu import ConfigurationError, get_db
from doqu.backend_base import BaseStorageAdapter
from doqu.config import coerce_settings, load_backend, parse_url
from doqu.ext.memory import StorageAdapter as Memory


def test_dotted_module_path() -> None:
    assert load_backend("doqu.ext.memory").StorageAdapter is Memory


def test_third_party_module(monkeypatch: Any) -> None:
    module = types.ModuleType("my_backend")

    class Adapter(Memory):
        backend_name = "mine"

    module.StorageAdapter = Adapter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_backend", module)
    assert get_db({"backend": "my_backend"}).backend_name == "mine"


def test_missing_extra_message(tmp_path: Any, monkeypatch: Any) -> None:
    # a backend module whose driver import fails, as it would without the extra
    (tmp_path / "fake_backend_pkg.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"pip install 'doqu\[postgres\]'"):
        load_backend("fake_backend_pkg")


def test_coerce_settings() -> None:
    class A(BaseStorageAdapter):
        setting_types = {"port": int, "ssl": bool, "timeout": float}

    out = coerce_settings(A, {"port": "5432", "ssl": "yes", "timeout": "1.5", "name": "x"})
    assert out == {"port": 5432, "ssl": True, "timeout": 1.5, "name": "x"}
    with pytest.raises(ConfigurationError, match="port"):
        coerce_settings(A, {"port": "many"})
    with pytest.raises(ConfigurationError, match="ssl"):
        coerce_settings(A, {"ssl": "perhaps"})


def test_passwords_are_masked_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db("postgresql://user:s3cret@host:notaport/db")
    assert "s3cret" not in str(info.value)


def test_url_settings_can_be_overridden() -> None:
    assert parse_url("redis://h/0?prefix=a")["prefix"] == "a"
    db = get_db({"url": "memory://"})
    assert db.backend_name == "memory"
