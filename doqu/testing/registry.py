"""Which engines the conformance suite runs on, and how to open them."""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

__all__ = ["Engine", "register", "all_engines", "required_engines", "skip_or_fail"]


@dataclass
class Engine:
    """How to get a fresh, empty storage of one engine for one test.

    ``open(tmp_path)`` is a context manager yielding a connected, empty
    storage and cleaning up after the test. ``unavailable()`` returns why the
    engine cannot run here (missing server, library or package), or ``None``.
    ``stand_in`` names what replaces the real engine, if anything (docs
    must say so too).
    """

    name: str
    open: Callable[[Path], ContextManager[Any]]
    unavailable: Callable[[], str | None] = lambda: None
    stand_in: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)


_ENGINES: dict[str, Engine] = {}
_discovered = False


def register(engine: Engine) -> Engine:
    """Add (or replace) an engine in the suite."""
    _ENGINES[engine.name] = engine
    return engine


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("doqu.testing.engines")

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for engine in getattr(module, "ENGINES", ()):
            _ENGINES.setdefault(engine.name, engine)


def all_engines() -> list[Engine]:
    """Registered engines, limited by ``DOQU_TEST_ENGINES`` (comma-separated) if set."""
    _discover()
    wanted = [n.strip() for n in os.environ.get("DOQU_TEST_ENGINES", "").split(",") if n.strip()]
    if wanted:
        unknown = [n for n in wanted if n not in _ENGINES]
        if unknown:
            raise ValueError(f"DOQU_TEST_ENGINES names unknown engines {unknown}; known: {sorted(_ENGINES)}")
        return [_ENGINES[n] for n in wanted]
    return list(_ENGINES.values())


def required_engines() -> set[str]:
    """Names in ``DOQU_TEST_REQUIRE``: for these a skip becomes a failure."""
    return {n.strip() for n in os.environ.get("DOQU_TEST_REQUIRE", "").split(",") if n.strip()}


def skip_or_fail(name: str, reason: str) -> None:
    """Skip a test whose engine or service is missing, unless CI requires it."""
    import pytest

    if name in required_engines():
        pytest.fail(f"{name} is required (DOQU_TEST_REQUIRE) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"{name} unavailable: {reason}")
