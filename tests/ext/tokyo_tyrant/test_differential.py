"""Tokyo Tyrant against the memory reference, on the values that break Tokyo Cabinet.

The Tokyo Tyrant backend claims the same corrections as the Tokyo Cabinet
one (it runs the same compiler); this test holds it to that with the same
generated records, queries and indexes as
``tests/ext/tokyo_cabinet/test_differential.py`` (imported from there, so
the two stay alike), sent through the protocol to the ttserver stand-in:
strings with NUL, ``\\x01`` or nothing in them, numbers Tokyo Cabinet
cannot read exactly, non-ASCII text under regular expressions, nested
shadows, mixed kinds in orderings.

``make test`` runs a bounded, derandomised profile; ``DOQU_FUZZ=1`` a long
random one.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from doqu import Document, DoquError, get_db
from doqu.ext.tokyo_cabinet import _binding
from doqu.query.evaluator import same
from doqu.testing.engines.tokyo_tyrant import standin_class
from doqu.testing.registry import skip_or_fail

FUZZ = bool(os.environ.get("DOQU_FUZZ"))
EXAMPLES = int(os.environ.get("DOQU_FUZZ_EXAMPLES", "3000" if FUZZ else "30"))
pytestmark = pytest.mark.timeout(0 if FUZZ else 300)


def _cabinet_differential() -> Any:
    name = "doqu_tests_tokyo_cabinet_differential"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tokyo_cabinet" / "test_differential.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


TC = _cabinet_differential()


@pytest.fixture(autouse=True, scope="module")
def _library() -> None:
    try:
        _binding.load_library()
    except _binding.LibraryMissing as exc:
        skip_or_fail("tokyo_tyrant", f"the ttserver stand-in needs the Tokyo Cabinet library: {exc}")


@pytest.fixture
def new_target(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """A fresh server and file per example, so no index or setting leaks into the next one."""
    running: list[tuple[Any, Any]] = []
    count = itertools.count()

    def stop() -> None:
        while running:
            server, db = running.pop()
            if db is not None:
                db.disconnect()
            server.stop()

    def factory() -> Any:
        stop()    # the previous example's
        server = standin_class()(tmp_path / f"diff{next(count)}.tct").start()
        running.append((server, None))
        db = get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": server.port,
                     "timeout": 10})
        running[-1] = (server, db)
        return db

    yield factory
    stop()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not FUZZ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(records=TC.RECORDS, steps=TC.STEPS, order=TC.ORDER, indexes=TC.INDEXES,
       window=st.tuples(st.integers(0, 3), st.integers(0, 5)))
def test_same_answers_as_the_reference(new_target: Callable[[], Any],
                                       records: list[dict[str, Any]], steps: list[Any],
                                       order: list[str], indexes: list[str],
                                       window: tuple[int, int]) -> None:
    reference = get_db("memory://")
    target = new_target()
    for i, record in enumerate(records):
        target.save(None, record, primary_key=f"k{i}")
        reference.save(None, record, primary_key=f"k{i}")
    if indexes:
        target.ensure_index(*indexes)
    try:
        expected_query = TC.build(reference, steps, order)
    except DoquError:
        return    # an invalid query is invalid everywhere
    query = TC.build(target, steps, order)
    note(query.explain())
    expected = list(expected_query)
    found = list(query)
    assert sorted(d.pk for d in found) == sorted(d.pk for d in expected)
    assert query.count() == len(expected)
    for doc in found:
        assert all(same(doc[k], v) for k, v in reference.get(Document, doc.pk).items())
    if order:
        assert TC.signature(found, order) == TC.signature(expected, order)
        start, size = window
        assert TC.signature(list(query[start:start + size]), order) == TC.signature(
            expected[start:start + size], order)
    for name in ["a", "n__x"]:
        got, want = query.values(name), expected_query.values(name)
        assert len(got) == len(want) and all(same(x, y) for x, y in zip(got, want)), name
    assert query.delete() == len(expected)
    assert sorted(target) == sorted(set(reference) - {d.pk for d in expected})
