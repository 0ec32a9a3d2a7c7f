"""One module per engine: how to open a doqu storage on it, and its raw-driver baseline.

Each module defines ``ENGINE``, an :class:`EngineSpec`. Stores get unique
names (tables, key prefixes, collections, files in a temporary directory),
and ``close()`` removes what they wrote; nothing else on a server is touched.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from suite.contestants import Contestant, DoquContestant

#: The order engines run and appear in.
NAMES = ("memory", "shelve", "sqlite", "tokyo_cabinet", "postgres", "mysql", "redis", "mongodb",
         "tokyo_tyrant")


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None


@dataclass
class EngineSpec:
    """How the suite runs one engine.

    ``metric``: what the ratios use. ``cpu`` (this process's CPU time) for
    engines that run inside the process: other processes' load on a shared
    machine does not inflate it. ``wall`` for servers, whose own work
    happens in another process and counts.
    """

    name: str
    title: str
    raw_label: str
    metric: str
    open_doqu: Callable[[Path, Any], DoquContestant]
    open_raw: Callable[[Path, Any], Contestant]
    unavailable: Callable[[], str | None] = lambda: None
    versions: Callable[[Any], dict[str, str]] = lambda env: {}
    #: Which ratio targets apply (see ``workload.TARGETS``).
    targets: frozenset[str] = frozenset()
    stand_in: str | None = None
    #: Runs at 1,000,000 documents with ``--large``.
    large: bool = False
    #: Largest size run by default (a slow stand-in); ``--sizes`` given explicitly overrides it.
    max_size: int | None = None
    #: Sizes run by default instead of the suite's (``--sizes`` given explicitly overrides them).
    default_sizes: tuple[int, ...] | None = None
    #: Peers that run beside this engine (TinyDB beside the embedded engines).
    peers: Callable[[Path], list[Contestant]] = lambda workdir: []
    #: A context manager around all of the engine's runs, yielding what ``open_*`` get as ``env``.
    environment: Callable[[], ContextManager[Any]] = _nothing
    notes: list[str] = field(default_factory=list)


def load(names: tuple[str, ...] = NAMES) -> list[EngineSpec]:
    return [importlib.import_module(f"suite.engines.{name}").ENGINE for name in names]


def dumps(record: Any) -> str:
    """Compact JSON, as doqu writes it: the raw side stores the same bytes."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
