"""Tokyo Tyrant engines for the conformance suite: ``tokyo_tyrant`` and ``tokyo_tyrant-real``.

``tokyo_tyrant`` runs against the ttserver stand-in of doqu's source tree
(``tests/tyrant_server.py``): a server speaking the Tokyo Tyrant protocol on
127.0.0.1, backed by the real Tokyo Cabinet library, checked byte for byte
against a recording of a real ``ttserver`` 1.1.41. One stand-in is started
per test process, the first time a test needs it, on a fresh ``.tct`` in a
temporary directory, and stopped when the process exits. A few columns of
the conformance data are indexed once, so the suite checks queries that go
through Tokyo Cabinet's indexes against the same hand-written answers.

``tokyo_tyrant-real`` is registered only when ``DOQU_TEST_TYRANT_URL``
(``tokyo-tyrant://host:port``) names a real server holding a table
database. **Its database is emptied before every test.**

Every test gets an empty database: the stand-in's is emptied with
``vanish``, which also restarts generated keys; keys still never repeat
within a test (the contract lets only ``clear()`` restart them).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from doqu import get_db
from doqu.testing.registry import Engine

__all__ = ["ENGINES", "STAND_IN", "standin", "standin_class", "unavailable", "real_url"]

STAND_IN = "tyrant test server backed by the real Tokyo Cabinet library"
#: Columns indexed on the session's stand-in (name: Tokyo Tyrant index type).
SESSION_INDEXES = {b"name": "lexical", b"age": "decimal", b"city": "lexical"}

_lock = threading.Lock()
_standin: Any = None
_problem: str | None = None


def standin_class() -> Any:
    """``TyrantStandIn`` from ``tests/tyrant_server.py`` (it ships with the source tree only)."""
    try:
        from tests.tyrant_server import TyrantStandIn  # type: ignore[import-not-found]

        return TyrantStandIn
    except ImportError:
        pass
    name = "doqu_tests_tyrant_server"
    module = sys.modules.get(name)
    if module is None:
        path = Path(__file__).resolve().parents[3] / "tests" / "tyrant_server.py"
        if not path.is_file():
            raise FileNotFoundError(
                f"the ttserver stand-in {path} is not here (it ships with doqu's source "
                f"tree, not the package); set DOQU_TEST_TYRANT_URL to a real server instead")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module.TyrantStandIn


def _library_problem() -> str | None:
    from doqu.ext.tokyo_cabinet import _binding

    try:
        _binding.load_library()
    except _binding.LibraryMissing as exc:
        return f"the ttserver stand-in needs the Tokyo Cabinet library: {exc}"
    return None


def standin() -> Any:
    """The session's running stand-in, started on first use (``None``: see ``unavailable()``)."""
    global _standin, _problem
    with _lock:
        if _standin is None and _problem is None:
            _problem = _library_problem()
            if _problem is None:
                directory = tempfile.mkdtemp(prefix="doqu-tyrant-")
                try:
                    server = standin_class()(Path(directory) / "conformance.tct").start()
                except Exception as exc:
                    shutil.rmtree(directory, ignore_errors=True)
                    _problem = f"cannot start the ttserver stand-in: {exc}"
                else:
                    atexit.register(_stop, server, directory)
                    _index_session_columns(server.port)
                    _standin = server
        return _standin


def _stop(server: Any, directory: str) -> None:
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _index_session_columns(port: int) -> None:
    db = get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": port})
    try:
        db.ensure_index(*(f"{column.decode()}:{kind}" for column, kind in SESSION_INDEXES.items()))
    finally:
        db.disconnect()


def unavailable() -> str | None:
    if standin() is None:
        return _problem
    return None


@contextlib.contextmanager
def _open(tmp_path: Path) -> Iterator[Any]:
    server = standin()
    assert server is not None, _problem
    _vanish("127.0.0.1", server.port)
    db = get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": server.port,
                 "timeout": 10})
    try:
        yield db
    finally:
        db.disconnect()


def _vanish(host: str, port: int) -> None:
    """Empty the database, doqu's catalogue and settings (search columns) included."""
    from doqu.ext.tokyo_tyrant.protocol import TyrantConnection

    with TyrantConnection(host, port, timeout=10) as conn:
        conn.tbl_vanish()


def real_url() -> str | None:
    return os.environ.get("DOQU_TEST_TYRANT_URL") or None


def _real_unavailable() -> str | None:
    from doqu.errors import DoquError

    url = real_url()
    if url is None:
        return "DOQU_TEST_TYRANT_URL is not set"
    try:
        get_db(url, timeout=2).disconnect()
    except DoquError as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def _open_real(tmp_path: Path) -> Iterator[Any]:
    url = real_url()
    assert url is not None
    from doqu.config import parse_url

    settings = parse_url(url)
    _vanish(settings.get("host", "localhost"), settings.get("port", 1978))
    db = get_db(url)
    try:
        yield db
    finally:
        db.disconnect()


ENGINES = [Engine("tokyo_tyrant", open=_open, unavailable=unavailable, stand_in=STAND_IN)]
if real_url():
    ENGINES.append(Engine("tokyo_tyrant-real", open=_open_real, unavailable=_real_unavailable))
