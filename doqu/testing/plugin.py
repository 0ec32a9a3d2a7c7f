"""pytest fixtures for the conformance suite: ``db`` runs once per engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from doqu.testing.registry import Engine, all_engines, skip_or_fail


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        found = all_engines()
        metafunc.parametrize("engine", found, ids=[e.name for e in found], indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.param
    reason = engine.unavailable()
    if reason:
        skip_or_fail(engine.name, reason)
    return engine


@pytest.fixture
def db(engine: Engine, tmp_path: Path) -> Iterator[Any]:
    """A connected, empty storage of the engine under test."""
    with engine.open(tmp_path) as storage:
        yield storage
