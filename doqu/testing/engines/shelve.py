from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from doqu import get_db
from doqu.testing.registry import Engine


@contextlib.contextmanager
def _open(tmp_path: Path) -> Iterator[Any]:
    db = get_db({"backend": "shelve", "path": str(tmp_path / "data.shelve")})
    yield db
    db.disconnect()


ENGINES = [Engine("shelve", open=_open)]
