"""Queries on Redis give the contract's answers, with and without indexes, on a
server and on a cluster.

Two sources of truth, neither of them this backend: the hand-written cases
of the conformance suite, and the memory backend (the shared evaluator
alone) over generated records full of awkward values (big integers beyond
2**53, NUL characters, empty strings, every kind on one field, nested
paths). Small ``batch_size`` values push the ordered index walk past its
first page and into its group-by-group tie breaking.
"""

from __future__ import annotations

import decimal
import random
from typing import Any, Iterator

import pytest

from doqu import Document, get_db
from doqu.query.evaluator import get_path, order_key
from doqu.testing.conformance.data import PEOPLE, Person, key_set, load_people
from doqu.testing.conformance.test_operators import CASES
from doqu.testing.engines.redis import open_storage, unavailable
from doqu.testing.registry import skip_or_fail

pytest.importorskip("redis")

PEOPLE_FIELDS = "name,age,city,tags,born,score,address.city,address.zip,active,bio"


def _require(cluster: bool) -> None:
    reason = unavailable(cluster)
    if reason:
        skip_or_fail("redis-cluster" if cluster else "redis", reason)


@pytest.fixture(scope="module", params=["scan", "indexed"])
def people(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The conformance people on the server, with no index or with every field indexed."""
    _require(False)
    indexes = PEOPLE_FIELDS if request.param == "indexed" else ""
    with open_storage(indexes=indexes) as db:
        load_people(db)
        yield Person.objects(db)


@pytest.mark.parametrize("conditions,expected", CASES, ids=[repr(c) for c, _ in CASES])
def test_conformance_cases(people: Any, conditions: dict[str, Any], expected: set[str]) -> None:
    query = people.where(**conditions)
    assert key_set(query) == expected
    assert query.count() == len(expected)
    if len(conditions) == 1:
        negated = people.where_not(**conditions)
        assert key_set(negated) == set(PEOPLE) - expected
        assert negated.count() == len(PEOPLE) - len(expected)


def test_indexed_conditions_run_in_redis(people: Any) -> None:
    text = people.where(age__gt=20, city__startswith="O").explain()
    if people.storage.indexed_fields:
        assert "ZRANGEBYSCORE" in text and "ZRANGEBYLEX" in text
        assert "python filter: (none)" in text
    else:
        assert "stream every record" in text and "python filter: age gt 20" in text


# -- against the memory backend -------------------------------------------------------------------

POOL: list[Any] = [
    None, None, 0, 1, -1, 2, 17, 17.0, 2.5, -0.5, 1e300, -1e300, 2 ** 53, 2 ** 53 + 1, -(2 ** 60) - 1,
    10 ** 30, 10 ** 400, "", "a", "a\x00", "a\x00b", "ab", "a b", "B", "Z", "ä", "😀", "\x7f",
    "2020-01-02", "2020-01-02T03:04:05.000000", True, False, [], [1], ["a"], [1, "a"], [True],
    {}, {"a": 1}, {"a": "1"},
]
OPERANDS: list[Any] = [
    0, 1, 2, 17, 2.5, -1, 2 ** 53, 2 ** 53 + 1, 2 ** 53 - 1, -(2 ** 60) - 1, 10 ** 30, 10 ** 400,
    decimal.Decimal("0.1"), decimal.Decimal("17"), decimal.Decimal("2.5000000000000000001"), 1e300,
    "", "a", "a\x00", "a\x00b", "ab", "B", "ä", "😀", "2020-01-02", True, False,
]


def _value(rng: random.Random) -> Any:
    return rng.choice(POOL)


def _records(seed: int, count: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(seed)
    out = {}
    for i in range(count):
        record = {"f": _value(rng), "g": rng.choice([1, 2, 3, "x", None]),
                  "nested": rng.choice([None, "flat", {"x": _value(rng)}, {"y": 1}])}
        out[f"r{i:03}"] = {k: v for k, v in record.items() if v is not None}
    return out


def _conditions(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["f", "f", "nested__x", "g"])
    op = rng.choice(["equals", "gt", "gte", "lt", "lte", "between", "in", "startswith", "exists"])
    if op == "exists":
        value: Any = rng.choice([True, False])
    elif op == "startswith":
        value = rng.choice(["", "a", "a\x00", "ä", "2020-"])
    elif op == "in":
        value = rng.sample(OPERANDS, rng.randrange(0, 4)) + rng.choice([[], [None]])
    elif op == "between":
        pair = sorted(rng.sample([o for o in OPERANDS if isinstance(o, (int, float, decimal.Decimal))
                                  and not isinstance(o, bool)], 2))
        if rng.random() < 0.3:
            pair = sorted(rng.sample([o for o in OPERANDS if isinstance(o, str)], 2))
        value = tuple(pair)
    else:
        value = rng.choice(OPERANDS)
    return {f"{field}__{op}": value}


def _order_keys(docs: list[Any], names: list[str]) -> list[tuple[Any, ...]]:
    keys = []
    for doc in docs:
        record = doc.dump()
        keys.append(tuple(order_key(get_path(record, name.lstrip("-").split("__"))) for name in names))
    return keys


def compare_with_memory(db: Any, seed: int, count: int = 120, queries: int = 100) -> None:
    """Run random queries on ``db`` and on the memory backend over the same records."""
    data = _records(seed, count)
    memory = get_db("memory://")
    for key, record in data.items():
        memory.save(None, record, primary_key=key)
    for key, record in data.items():
        db.save(None, record, primary_key=key)
    rng = random.Random(seed + 1)
    for _ in range(queries):
        conds = _conditions(rng)
        mine, theirs = Document.objects(db), Document.objects(memory)
        if rng.random() < 0.3:
            mine, theirs = mine.where_not(**conds), theirs.where_not(**conds)
        else:
            mine, theirs = mine.where(**conds), theirs.where(**conds)
        if rng.random() < 0.3:
            other = _conditions(rng)
            if rng.random() < 0.5:
                mine = mine | Document.objects(db).where(**other)
                theirs = theirs | Document.objects(memory).where(**other)
            else:
                mine, theirs = mine.where(**other), theirs.where(**other)
        expected = theirs.keys()
        assert sorted(mine.keys()) == sorted(expected), (conds, mine.explain())
        assert mine.count() == len(expected), (conds, mine.explain())
        names = rng.choice([["f"], ["-f"], ["f", "g"], ["-f", "-g"], ["g", "-f"], ["nested__x"]])
        start = rng.randrange(0, 5)
        stop = rng.choice([None, start + rng.randrange(0, 40)])
        ordered_mine = list(mine.order_by(*names)[start:stop])
        ordered_theirs = list(theirs.order_by(*names)[start:stop])
        assert _order_keys(ordered_mine, names) == _order_keys(ordered_theirs, names), (
            conds, names, start, stop, mine.order_by(*names).explain())
    for name in ["f", "g", "nested__x"]:
        assert Document.objects(db).values(name) == Document.objects(memory).values(name)
    assert db.verify_indexes() == []


@pytest.mark.parametrize("indexes,batch_size,queries", [
    ("f,g,nested.x", 500, 100), ("f,g,nested.x", 4, 50), ("", 500, 60)],
    ids=["indexed", "indexed-small-pages", "scan"])
def test_random_queries_match_the_memory_backend(indexes: str, batch_size: int, queries: int) -> None:
    _require(False)
    with open_storage(indexes=indexes, batch_size=batch_size) as db:
        compare_with_memory(db, seed=7, queries=queries)


@pytest.mark.parametrize("client", ["shared-resp3", "own-resp2"])
def test_random_queries_match_the_memory_backend_on_a_cluster(client: str) -> None:
    _require(True)
    settings: dict[str, Any] = {} if client == "shared-resp3" else {"client": None}
    with open_storage(cluster=True, indexes="f,g,nested.x", batch_size=6, **settings) as db:
        assert db._layout.shards == 16
        compare_with_memory(db, seed=11, count=80, queries=60)


def test_ordering_walks_the_index_lazily_and_breaks_ties_in_python() -> None:
    _require(False)
    with open_storage(indexes="rank", batch_size=3) as db:
        for i in range(40):
            db.save(None, {"rank": i % 4, "name": f"n{39 - i:02}"}, primary_key=f"k{i:02}")
        query = Document.objects(db).order_by("-rank", "name")
        assert "walking the index of 'rank', ties broken in Python" in query.explain()
        found = [(d["rank"], d["name"]) for d in query[5:12]]
        everything = sorted(((i % 4, f"n{39 - i:02}") for i in range(40)), key=lambda t: (-t[0], t[1]))
        assert found == everything[5:12]
        assert query.count() == 40 and query[5:12].count() == 7
