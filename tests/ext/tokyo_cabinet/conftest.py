"""Fixtures for the Tokyo Cabinet backend tests: real library, files in tmp_path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from doqu import get_db
from doqu.ext.tokyo_cabinet import _binding
from doqu.testing.registry import skip_or_fail


@pytest.fixture(autouse=True)
def _library() -> None:
    try:
        _binding.load_library()
    except _binding.LibraryMissing as exc:
        skip_or_fail("tokyo_cabinet", str(exc))


@pytest.fixture
def open_tc(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``open_tc(name='data.tct', **settings)``: a connected storage, closed after the test."""
    opened: list[Any] = []

    def factory(name: str | Path = "data.tct", **settings: Any) -> Any:
        path = Path(name) if Path(name).is_absolute() else tmp_path / name
        db = get_db({"backend": "tokyo_cabinet", "path": str(path), **settings})
        opened.append(db)
        return db

    yield factory
    for db in reversed(opened):
        db.disconnect()


@pytest.fixture
def tctmgr() -> Callable[..., str]:
    """Run Debian's ``tctmgr``; its stdout as text."""
    exe = shutil.which("tctmgr")
    if exe is None:
        skip_or_fail("tokyo_cabinet", "the tctmgr tool is not installed (apt-get install tokyocabinet-bin)")

    def run(*args: str, input: bytes | None = None) -> str:
        result = subprocess.run([exe, *args], capture_output=True, timeout=60, input=input)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout.decode("utf-8")

    return run
