"""The sharded backend: placement, fan-out, merging, transactions, settings.

The conformance suite (engines ``sharded-*``) checks that a sharded storage
answers like any other; these tests check *how*: which shard holds what,
which shard is asked, that shards work at once, and what happens on failure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytest

from doqu import ConfigurationError, DataProcessorDoesNotExist, Document, get_db
from doqu.conversion import ConverterManager, canonical
from doqu.databases import databases_from_config
from doqu.ext.memory import QueryAdapter as MemoryQuery
from doqu.ext.memory import StorageAdapter as Memory
from doqu.query.evaluator import get_path, order_key

# -- shards that report what they are asked --------------------------------------------------


class SpyQuery(MemoryQuery):
    def _records(self) -> Iterator[Any]:
        self.storage.log("records", self._start, self._stop)
        yield from super()._records()


class Spy(Memory):
    """A memory shard that logs its reads (with the thread that did them)."""

    query_adapter = SpyQuery

    def _connect(self) -> None:
        super()._connect()
        self.calls: list[tuple[Any, ...]] = []
        self.yielded = 0
        self.on_read: Callable[[], None] | None = None

    def log(self, *call: Any) -> None:
        self.calls.append((*call, threading.current_thread().name))

    def _load_many(self, keys: Any) -> Any:
        self.log("load_many", tuple(keys))
        return super()._load_many(keys)

    def _count(self) -> int:
        if self.on_read:
            self.on_read()
        return super()._count()

    def _iter_records(self) -> Iterator[Any]:
        if self.on_read:
            self.on_read()
        for item in super()._iter_records():
            self.yielded += 1
            yield item


class DatesTagged(Memory):
    """Stores dates as ``{"$date": text}``: a native form unlike doqu's canonical one."""

    class _Converter(ConverterManager):
        def to_db(self, value: Any, storage: Any = None, *, field: str = "?") -> Any:
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                return {"$date": value.isoformat()}
            return canonical(value, field=field)

        def from_db(self, datatype: Any, value: Any) -> Any:
            return super().from_db(datatype, _untag(value))

    converter_manager = _Converter()

    def _canonical(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return {k: _untag(v) for k, v in record.items()}

    def _value_from_db(self, datatype: Any, value: Any) -> Any:
        return super()._value_from_db(datatype, _untag(value))


def _untag(value: Any) -> Any:
    return value["$date"] if isinstance(value, dict) and set(value) == {"$date"} else value


class NoBytes(Memory):
    class _Converter(ConverterManager):
        def to_db(self, value: Any, storage: Any = None, *, field: str = "?") -> Any:
            if isinstance(value, bytes):
                raise DataProcessorDoesNotExist(f"field {field!r}: no bytes here")
            return super().to_db(value, storage, field=field)

    converter_manager = _Converter()


class Item(Document):
    structure = {"n": int, "city": str, "blob": bytes, "day": dt.date}


def expected_shard(key: str, shards: int) -> int:
    """The documented placement of an application key: BLAKE2b-64 of its UTF-8, big-endian, mod n."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % shards


@pytest.fixture
def spies() -> list[Spy]:
    return [Spy(), Spy(), Spy()]


@pytest.fixture
def db(spies: list[Spy]) -> Iterator[Any]:
    storage = get_db({"backend": "sharded", "shards": spies})
    yield storage
    storage.disconnect()


def forget_calls(spies: list[Spy]) -> None:
    for spy in spies:
        spy.calls.clear()


def calls(spy: Spy, kind: str) -> list[tuple[Any, ...]]:
    return [c for c in spy.calls if c[0] == kind]


# -- placement -------------------------------------------------------------------------------

def test_generated_keys_name_their_shard_and_spread(db: Any, spies: list[Spy]) -> None:
    keys = [Item(n=i).save(db) for i in range(9)]
    assert len(set(keys)) == 9
    for name, spy in zip("012", spies):
        assert len(spy) == 3
        assert all(key.startswith(f"{name}:") for key in spy)
    assert sorted(db) == sorted(keys)


def test_application_keys_live_on_their_hashed_shard(db: Any, spies: list[Spy]) -> None:
    keys = ["alice", "bob", "ключ", "x/y", "50%", "k1", "k2", "k3", "k4", "k5"]
    for key in keys:
        db.save(None, {"n": 1}, primary_key=key)
    for key in keys:
        owner = expected_shard(key, 3)
        assert [key in spy for spy in spies] == [i == owner for i in range(3)], key
    assert {expected_shard(k, 3) for k in keys} == {0, 1, 2}  # the test data really spreads
    for key in keys:
        forget_calls(spies)
        assert db.get(Document, key).pk == key
        asked = [i for i, spy in enumerate(spies) if calls(spy, "load_many")]
        assert asked == [expected_shard(key, 3)], key


def test_a_generated_key_skips_one_the_application_took(db: Any, spies: list[Spy]) -> None:
    db.save(None, {"mine": True}, primary_key="0:1")
    db.save(None, {"mine": True}, primary_key="0:2")
    assert "0:1" in spies[0] and "0:2" in spies[0]
    keys = [Item(n=i).save(db) for i in range(6)]
    assert "0:1" not in keys and "0:2" not in keys and len(set(keys)) == 6
    assert db.get(Document, "0:1")["mine"] is True
    assert len(db) == 8


def test_get_many_asks_each_shard_once(db: Any, spies: list[Spy]) -> None:
    keys = [Item(n=i).save(db) for i in range(9)]
    wanted = list(reversed(keys))
    forget_calls(spies)
    found = db.get_many(Item, wanted)
    assert [d.pk for d in found] == wanted and [d.n for d in found] == list(range(8, -1, -1))
    for name, spy in zip("012", spies):
        (call,) = calls(spy, "load_many")
        assert sorted(call[1]) == sorted(k for k in keys if k.startswith(f"{name}:"))
    with pytest.raises(KeyError):
        db.get_many(Item, [keys[0], "1:999"])


# -- queries ---------------------------------------------------------------------------------

def _messy_records(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    values = [None, 0, 1, 1.5, -2, "a", "B", "b", True, False, [1], {"x": 1}]
    return [{"a": rng.choice(values), "b": rng.choice(values), "i": i} for i in range(count)]


def _signature(docs: list[Any], order: list[str]) -> list[tuple[Any, ...]]:
    return [tuple(order_key(get_path(d.dump(), tuple(name.lstrip("-").split("__")))) for name in order)
            for d in docs]


@pytest.mark.parametrize("order", [["a"], ["-a"], ["a", "-b"], ["-b", "a"], ["i"], ["-i"]])
def test_ordered_merge_agrees_with_the_reference(db: Any, order: list[str]) -> None:
    reference = get_db("memory://")
    for record in _messy_records(60, seed=len(order) + len(order[0])):
        reference.save(None, record, primary_key=f"k{record['i']}")
        db.save(None, record, primary_key=f"k{record['i']}")
    expected = list(Document.objects(reference).order_by(*order))
    found = list(Document.objects(db).order_by(*order))
    assert sorted(d.pk for d in found) == sorted(d.pk for d in expected)
    assert _signature(found, order) == _signature(expected, order)
    for start, stop in [(0, 1), (2, 5), (10, 40), (55, 80)]:
        window = list(Document.objects(db).order_by(*order)[start:stop])
        assert _signature(window, order) == _signature(expected[start:stop], order)


def test_slices_are_pushed_down_to_every_shard(db: Any, spies: list[Spy]) -> None:
    for i in range(30):
        Item(n=i).save(db)
    forget_calls(spies)
    found = [d.n for d in Item.objects(db).order_by("-n")[2:5]]
    assert found == [27, 26, 25]
    for spy in spies:
        (call,) = calls(spy, "records")
        assert call[1:3] == (0, 5)  # each shard was asked for its first five only


def test_count_values_and_delete_combine_the_shards(db: Any, spies: list[Spy]) -> None:
    db.save(None, {"v": 1, "city": "Oslo"}, primary_key="0:a")
    db.save(None, {"v": 1.0, "city": "Oslo"}, primary_key="1:a")
    db.save(None, {"v": True, "city": "Rome"}, primary_key="2:a")
    db.save(None, {"v": "x", "city": "Lima"}, primary_key="2:b")
    assert [len(s) for s in spies] == [1, 1, 2]
    query = Document.objects(db)
    found = query.values("v")
    assert len(found) == 3 and found[0] == 1 and found[1] == "x" and found[2] is True
    assert query.values("city") == ["Lima", "Oslo", "Rome"]
    assert query.where(city="Oslo").count() == 2
    assert query.count() == 4
    assert query.where(city="Oslo").delete() == 2
    assert sorted(db) == ["2:a", "2:b"]


def test_queries_run_on_every_shard_at_once(db: Any, spies: list[Spy]) -> None:
    for i in range(12):
        Item(n=i).save(db)
    barrier = threading.Barrier(3, timeout=10)
    for spy in spies:
        spy.on_read = barrier.wait  # passes only when all three shards are reading together
    forget_calls(spies)
    assert sorted(d.n for d in Item.objects(db)) == list(range(12))
    assert Item.objects(db).where(n__gte=6).count() == 6
    assert Item.objects(db).count() == 12
    threads = {c[-1] for spy in spies for c in calls(spy, "records")}
    assert threads and all(name.startswith("doqu-shard") for name in threads)


def test_no_parallel_setting_and_transactions_stay_in_the_calling_thread(spies: list[Spy]) -> None:
    db = get_db({"backend": "sharded", "shards": spies, "parallel": "false"})
    for i in range(6):
        Item(n=i).save(db)
    forget_calls(spies)
    assert Item.objects(db).count() == 6 and len(list(Item.objects(db))) == 6
    assert {c[-1] for spy in spies for c in spy.calls} == {threading.current_thread().name}
    db.disconnect()


def test_reads_inside_a_transaction_see_its_writes(db: Any, spies: list[Spy]) -> None:
    with db.transaction():
        for i in range(6):
            Item(n=i).save(db)
        forget_calls(spies)
        assert sorted(d.n for d in Item.objects(db).order_by("n")) == list(range(6))
        assert {c[-1] for spy in spies for c in spy.calls} == {threading.current_thread().name}


def test_iteration_streams_instead_of_loading_everything(db: Any, spies: list[Spy],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from doqu.ext.sharded import query as sharded_query

    monkeypatch.setattr(sharded_query, "BATCH", 2)
    db.save_many(Item(n=i) for i in range(300))
    for spy in spies:
        spy.yielded = 0
    results = iter(Item.objects(db))
    first = [next(results) for _ in range(3)]
    assert len(first) == 3
    assert sum(spy.yielded for spy in spies) <= 3 * 2 * 2  # a batch and the one fetched ahead
    results.close()  # type: ignore[attr-defined]


def test_explain_shows_every_shard(db: Any) -> None:
    text = Item.objects(db).where(city="Oslo").order_by("-n")[:3].explain()
    assert text.count("backend: memory") == 3
    assert "merge ordered by -n" in text and "at most 3" in text and "city" in text


# -- transactions ----------------------------------------------------------------------------

def test_a_failed_block_rolls_back_every_shard(db: Any, spies: list[Spy]) -> None:
    db.save(None, {"n": 0}, primary_key="keep")
    with pytest.raises(RuntimeError):
        with db.transaction():
            for i in range(6):
                Item(n=i).save(db)
            db.save(None, {"n": 99}, primary_key="keep")
            assert sum(len(s) for s in spies) == 7
            raise RuntimeError("boom")
    assert sorted(db) == ["keep"] and db.get(Item, "keep").n == 0
    assert sum(len(s) for s in spies) == 1


def test_nested_blocks_nest_on_every_shard(db: Any, spies: list[Spy]) -> None:
    with pytest.raises(KeyError):
        with db.transaction():
            Item(n=1).save(db)  # shard 0
            with pytest.raises(ValueError):
                with db.transaction():
                    Item(n=2).save(db)  # shard 1, first touched inside the inner block
                    raise ValueError("inner")
            Item(n=3).save(db)  # shard 2
            assert len(db) == 2
            raise KeyError("outer")
    assert [len(s) for s in spies] == [0, 0, 0]


def test_a_value_one_shard_refuses_writes_nothing_anywhere() -> None:
    shards = [get_db("memory://"), NoBytes(), get_db("memory://")]
    db = get_db({"backend": "sharded", "shards": shards})
    docs = [Item(n=i, blob=b"x") for i in range(6)]
    with pytest.raises(DataProcessorDoesNotExist):
        db.save_many(docs)
    assert [len(s) for s in shards] == [0, 0, 0]
    assert all(d.pk is None for d in docs)


def test_concurrent_writers_get_distinct_keys(db: Any) -> None:
    keys: list[str] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        for i in range(40):
            key = Item(n=w * 100 + i).save(db)
            with lock:
                keys.append(key)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == len(set(keys)) == 160 == len(db)


# -- shards of different engines ---------------------------------------------------------------

def test_each_shard_keeps_its_own_native_form(tmp_path: Path) -> None:
    tagged = DatesTagged()
    shelf = get_db({"backend": "shelve", "path": str(tmp_path / "s.db")})
    db = get_db({"backend": "sharded", "shards": {"mem": get_db("memory://"), "tag": tagged,
                                                  "shelf": shelf}})
    start = dt.date(2023, 12, 30)
    keys = [Item(n=i, day=start + dt.timedelta(days=i)).save(db) for i in range(6)]
    assert {k.split(":")[0] for k in keys} == {"mem", "tag", "shelf"}
    for key in tagged:
        assert isinstance(tagged._records[key]["day"], dict)  # tagged there, by its converter
    for key in shelf:
        assert isinstance(shelf._load(key)["day"], str)
    assert [d.day for d in Item.objects(db).order_by("-day")[:2]] == [start + dt.timedelta(days=5),
                                                                      start + dt.timedelta(days=4)]
    assert Item.objects(db).where(day__year=2024).count() == 4
    assert Item.objects(db).where(day__lt=dt.date(2024, 1, 1)).count() == 2
    assert Item.objects(db).values("day") == [start + dt.timedelta(days=i) for i in range(6)]
    assert db.get(Item, keys[1]).day == start + dt.timedelta(days=1)
    db.disconnect()
    shelf.disconnect()


# -- sharding by a field -----------------------------------------------------------------------

def test_shard_by_field_keeps_equal_values_together(spies: list[Spy]) -> None:
    db = get_db({"backend": "sharded", "shards": spies, "shard_by": "city"})
    cities = ["Oslo", "Rome", "Lima", "Kyiv", "Umeå", "Bergen"]
    for i in range(36):
        Item(n=i, city=cities[i % 6]).save(db)
    homes = {city: {i for i, s in enumerate(spies) if Item.objects(s).where(city=city).count()}
             for city in cities}
    assert all(len(home) == 1 for home in homes.values()), homes
    assert len({next(iter(h)) for h in homes.values()}) > 1  # and they do spread
    db.disconnect()


def test_shard_by_field_with_application_keys(spies: list[Spy]) -> None:
    db = get_db({"backend": "sharded", "shards": spies, "shard_by": "city"})
    db.save(Item, {"n": 1, "city": "Oslo"}, primary_key="ada")
    home = [i for i, s in enumerate(spies) if "ada" in s]
    assert len(home) == 1
    doc = db.get(Item, "ada")
    doc.city = "Somewhere else entirely"
    doc.save()
    assert [i for i, s in enumerate(spies) if "ada" in s] == home  # it stays where it was made
    assert db.get(Item, "ada").city == "Somewhere else entirely" and len(db) == 1
    assert "ada" in db and db.get_many(Item, ["ada"])[0].n == 1
    db.delete("ada")
    assert "ada" not in db and len(db) == 0
    with pytest.raises(KeyError):
        db.delete("ada")
    db.disconnect()


def test_shard_by_a_function() -> None:
    def by_region(record: Mapping[str, Any]) -> str:
        return "north" if record.get("city") in ("Oslo", "Bergen") else "south"

    north, south = get_db("memory://"), get_db("memory://")
    db = get_db({"backend": "sharded", "shards": {"north": north, "south": south}, "shard_by": by_region})
    key = Item(city="Oslo").save(db)
    assert key.startswith("north:") and key in north
    assert Item(city="Rome").save(db) in south
    broken = get_db({"backend": "sharded", "shards": [get_db("memory://")], "shard_by": lambda r: "west"})
    with pytest.raises(ConfigurationError, match="west"):
        Item(city="x").save(broken)
    assert len(broken) == 0


# -- settings -----------------------------------------------------------------------------------

def test_shards_from_urls_are_owned_and_storages_are_borrowed(tmp_path: Path) -> None:
    borrowed = get_db("memory://")
    db = get_db({"backend": "sharded",
                 "shards": [borrowed, f"shelve:///{tmp_path}/a.db", {"backend": "memory"}]})
    owned = [s.storage for s in db.shards[1:]]
    assert [s.owned for s in db.shards] == [False, True, True]
    db.save(None, {"n": 1}, primary_key="x")
    db.disconnect()
    assert borrowed.connected and not any(s.connected for s in owned)
    db.connect()
    assert all(s.storage.connected for s in db.shards) and db.get(Document, "x")["n"] == 1
    db.disconnect()


def test_shards_as_one_string(tmp_path: Path) -> None:
    db = get_db({"backend": "sharded", "shards": f"memory://, shelve:///{tmp_path}/b.db memory://"})
    assert [s.storage.backend_name for s in db.shards] == ["memory", "shelve", "memory"]
    assert "shelve" in db.describe_location()
    db.disconnect()


@pytest.mark.parametrize("settings,message", [
    ({"shards": []}, "empty"),
    ({"shards": 5}, "list"),
    ({"shards": {"a:b": "memory://"}}, "a:b"),
    ({"shards": [3]}, "int"),
    ({"shards": ["nosuch://x"]}, "nosuch"),
    ({"shards": ["memory://"], "workers": 0}, "workers"),
    ({"shards": ["memory://"], "shard_by": 3}, "shard_by"),
    ({"shards": ["memory://"], "shard_by": "a____b"}, "a____b"),
    ({"shards": ["memory://"], "colour": "red"}, "colour"),
    ({}, "shards"),
])
def test_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "sharded", **settings})
    assert message in str(info.value)


def test_the_same_storage_twice_is_refused(tmp_path: Path) -> None:
    same = get_db("memory://")
    with pytest.raises(ConfigurationError, match="same storage"):
        get_db({"backend": "sharded", "shards": [same, same]})
    path = f"shelve:///{tmp_path}/x.db"
    with pytest.raises(ConfigurationError, match="same storage"):
        get_db({"backend": "sharded", "shards": [get_db("memory://"), path, path]})


def test_sharded_database_from_config(tmp_path: Path) -> None:
    dbs = databases_from_config({
        "doqu.a.url": "memory://",
        "doqu.b.url": f"shelve:///{tmp_path}/b.db",
        "doqu.people.backend": "sharded",
        "doqu.people.shards": "a, b, memory://",
        "doqu.people.shard_by": "city",
        "doqu.people.parallel": "no",
    })
    people = dbs["people"]
    assert people.shards[0].storage is dbs["a"] and people.shards[1].storage is dbs["b"]
    assert people.settings["parallel"] is False
    for i, city in enumerate(["Oslo", "Rome", "Lima", "Kyiv"] * 3):
        Item(n=i, city=city).save(people)
    assert len(dbs["a"]) + len(dbs["b"]) + len(people.shards[2].storage) == 12
    dbs.close()
    assert not people.connected and not dbs._entries["a"].storage.connected
    with pytest.raises(ConfigurationError, match="'nope'"):
        databases_from_config({"doqu.s.backend": "sharded", "doqu.s.shards": "nope"})
    with pytest.raises(ConfigurationError, match="'s'"):
        databases_from_config({"doqu.s.backend": "sharded", "doqu.s.shards": "s"})


# -- real SQLite shards, once the SQLite backend exists ------------------------------------------

def test_sqlite_shards_under_concurrent_readers(tmp_path: Path) -> None:
    pytest.importorskip("doqu.ext.sqlite", reason="the SQLite backend is not available yet")
    db = get_db({"backend": "sharded",
                 "shards": [f"sqlite:///{tmp_path}/s{i}.db" for i in range(3)]})
    db.save_many(Item(n=i, city=["Oslo", "Rome"][i % 2]) for i in range(200))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(5):
                assert [d.n for d in Item.objects(db).where(city="Oslo").order_by("-n")[:3]] == [198, 196, 194]
                assert Item.objects(db).count() == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    db.disconnect()
