"""Fixtures for the SQLite backend's own tests (the conformance suite has its own ``db``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from doqu import get_db


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "test.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[Any]:
    """A storage on a fresh file."""
    db = get_db({"backend": "sqlite", "path": str(path)})
    try:
        yield db
    finally:
        db.disconnect()
