"""Tokyo Cabinet: a fresh table database file in the test's tmp_path."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from doqu import get_db
from doqu.testing.registry import Engine


@contextlib.contextmanager
def _open(tmp_path: Path) -> Iterator[Any]:
    db = get_db({"backend": "tokyo_cabinet", "path": str(tmp_path / "doqu.tct")})
    try:
        yield db
    finally:
        db.disconnect()


def _unavailable() -> str | None:
    from doqu.ext.tokyo_cabinet import _binding

    try:
        _binding.load_library()
    except _binding.LibraryMissing as exc:
        return str(exc)
    return None


ENGINES = [Engine("tokyo_cabinet", open=_open, unavailable=_unavailable)]
