"""SQLite: a file in the test's tmp_path, and an in-memory database (``sqlite://``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from doqu import get_db
from doqu.testing.registry import Engine


@contextlib.contextmanager
def _open_file(tmp_path: Path) -> Iterator[Any]:
    db = get_db(f"sqlite:///{tmp_path / 'doqu.sqlite3'}")
    try:
        yield db
    finally:
        db.disconnect()


@contextlib.contextmanager
def _open_memory(tmp_path: Path) -> Iterator[Any]:
    db = get_db("sqlite://")
    try:
        yield db
    finally:
        db.disconnect()


ENGINES = [
    Engine("sqlite", open=_open_file),
    Engine("sqlite-memory", open=_open_memory),
]
