"""Copying between engines: ``save_as``/``save`` into another storage, and ``doqu.copying.copy``."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

from doqu import ConfigurationError, DataProcessorDoesNotExist, Document, get_db
from doqu.conversion import ConverterManager, ExactFloat, canonical, dumps, loads
from doqu.copying import CopyReport, copy
from doqu.ext.memory import StorageAdapter as Memory

# -- an engine whose native form differs from doqu's canonical form -------------------------

_TAGS = {"$date": dt.date, "$datetime": dt.datetime, "$decimal": decimal.Decimal, "$bytes": bytes}


def untag(value: Any) -> Any:
    """Tagged native form → canonical form."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _TAGS:
            tag, inner = next(iter(value.items()))
            return decimal.Decimal(inner) if tag == "$decimal" else inner
        return {k: untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value


class TaggedConverter(ConverterManager):
    """Stores dates, datetimes, Decimals and bytes as tagged dicts (like MongoDB extended JSON)."""

    def to_db(self, value: Any, storage: Any = None, *, field: str = "?") -> Any:
        for tag, kind in (("$datetime", dt.datetime), ("$date", dt.date),
                          ("$decimal", decimal.Decimal), ("$bytes", bytes)):
            if isinstance(value, kind):
                return {tag: str(value) if tag == "$decimal" else canonical(value, field=field)}
        if isinstance(value, (list, tuple)):
            return [self.to_db(v, storage, field=field) for v in value]
        if isinstance(value, dict):
            return {k: self.to_db(v, storage, field=f"{field}.{k}") for k, v in value.items() if v is not None}
        return canonical(value, field=field)

    def from_db(self, datatype: Any, value: Any) -> Any:
        return super().from_db(datatype, untag(value))


class Tagged(Memory):
    backend_name = "tagged-memory"
    converter_manager = TaggedConverter()

    def _canonical(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return untag(dict(record))

    def _value_from_db(self, datatype: Any, value: Any) -> Any:
        return super()._value_from_db(datatype, untag(value))


class NoBytes(Memory):
    """A target that refuses bytes values."""

    class _Converter(ConverterManager):
        def to_db(self, value: Any, storage: Any = None, *, field: str = "?") -> Any:
            if isinstance(value, bytes):
                raise DataProcessorDoesNotExist(f"field {field!r}: this engine stores no bytes")
            return super().to_db(value, storage, field=field)

    converter_manager = _Converter()


class Country(Document):
    structure = {"name": str}


class Event(Document):
    structure = {"title": str, "when": dt.date, "at": dt.datetime, "price": decimal.Decimal,
                 "blob": bytes, "country": Country}


WHEN = dt.date(2024, 2, 29)
AT = dt.datetime(2024, 2, 29, 13, 5, tzinfo=dt.timezone.utc)
PRICE = decimal.Decimal("12.50")


def raw(storage: Memory, key: str) -> dict[str, Any]:
    """The record exactly as the engine holds it."""
    return storage._records[key]


@pytest.fixture
def tagged() -> Iterator[Tagged]:
    db = Tagged()
    yield db
    db.disconnect()


@pytest.fixture
def memory() -> Iterator[Any]:
    db = get_db("memory://")
    yield db
    db.disconnect()


def test_the_tagged_engine_really_differs(tagged: Tagged, memory: Any) -> None:
    key = Event(title="t", when=WHEN, price=PRICE).save(tagged)
    assert raw(tagged, key)["when"] == {"$date": "2024-02-29"}
    key = Event(title="t", when=WHEN, price=PRICE).save(memory)
    assert raw(memory, key)["when"] == "2024-02-29"


# -- save_as / save into another storage --------------------------------------------------

def test_save_as_converts_through_the_target(tagged: Tagged, memory: Any) -> None:
    key = Event(title="t", when=WHEN, at=AT, price=PRICE, blob=b"\x00\x01").save(tagged)
    tagged._records[key]["extra"] = {"$date": "2023-01-01"}  # a field Event does not declare
    loaded = tagged.get(Event, key)
    copy_ = loaded.save_as(storage=memory)
    stored = raw(memory, copy_.pk)
    assert stored["when"] == "2024-02-29"
    assert stored["at"] == "2024-02-29T13:05:00.000000+00:00"
    assert stored["price"] == PRICE
    assert stored["blob"] == "AAE="
    assert stored["extra"] == "2023-01-01"  # undeclared: the JSON-native value, not the tagged dict
    back = memory.get(Event, copy_.pk)
    assert (back.when, back.at, back.price, back.blob) == (WHEN, AT, PRICE, b"\x00\x01")


def test_save_as_into_the_tagged_engine(tagged: Tagged, memory: Any) -> None:
    key = Event(title="t", when=WHEN, price=PRICE).save(memory)
    copy_ = memory.get(Event, key).save_as(key="same", storage=tagged)
    assert copy_.pk == "same" and copy_.storage is tagged
    assert raw(tagged, "same")["when"] == {"$date": "2024-02-29"}
    assert raw(tagged, "same")["price"] == {"$decimal": "12.50"}
    assert tagged.get(Event, "same").when == WHEN


def test_save_into_another_storage_converts_too(tagged: Tagged, memory: Any) -> None:
    doc = Event(title="t", when=WHEN)
    doc.save(tagged)
    first_key = doc.pk
    doc.save(memory)  # a new record there; the document now belongs to memory
    assert raw(memory, doc.pk)["when"] == "2024-02-29"
    assert doc.storage is memory and first_key in tagged


# -- copy ------------------------------------------------------------------------------------

def _fill(db: Any, n: int) -> None:
    for i in range(n):
        Event(title=f"e{i}", when=WHEN + dt.timedelta(days=i), price=PRICE * i).save(db)


def test_copy_keeps_keys_and_values(tagged: Tagged, memory: Any) -> None:
    _fill(tagged, 7)
    calls: list[tuple[int, int]] = []
    report = copy(tagged.get_query(Event), memory, batch_size=3,
                  progress=lambda done, total: calls.append((done, total)))
    assert isinstance(report, CopyReport)
    assert (report.copied, report.skipped) == (7, 0)
    assert calls == [(3, 7), (6, 7), (7, 7)]
    assert sorted(memory) == sorted(tagged)
    for key in tagged:
        assert raw(memory, key)["when"] == untag(raw(tagged, key)["when"])
        assert memory.get(Event, key).when == tagged.get(Event, key).when


def test_copy_a_whole_storage_without_a_class(tagged: Tagged, memory: Any) -> None:
    _fill(memory, 4)
    report = copy(memory, tagged)
    assert report.copied == 4
    for key in memory:
        # no declared types: the canonical text arrives as text, never as another engine's form
        assert raw(tagged, key)["when"] == raw(memory, key)["when"]
        assert tagged.get(Event, key).when == memory.get(Event, key).when


def test_copy_a_query_only_copies_its_results(memory: Any, tmp_path: Path) -> None:
    _fill(memory, 6)
    target = get_db({"backend": "shelve", "path": str(tmp_path / "t.db")})
    query = Event.objects(memory).where(title__in=["e1", "e4"])
    assert copy(query, target).copied == 2
    assert sorted(e.title for e in Event.objects(target)) == ["e1", "e4"]
    target.disconnect()


def test_copy_with_new_keys(memory: Any) -> None:
    _fill(memory, 3)
    target = get_db("memory://")
    target.save(None, {"title": "already"}, primary_key="1")
    assert copy(memory, target, keep_keys=False).copied == 3
    assert len(target) == 4 and target.get(Document, "1")["title"] == "already"
    assert sorted(e.title for e in Event.objects(target)) == ["already", "e0", "e1", "e2"]


def test_copy_replaces_or_skips_existing_keys(memory: Any) -> None:
    _fill(memory, 3)
    target = get_db("memory://")
    target.save(None, {"title": "mine"}, primary_key="2")
    report = copy(memory, target, existing="skip")
    assert (report.copied, report.skipped) == (2, 1)
    assert target.get(Document, "2")["title"] == "mine"
    report = copy(memory, target)
    assert (report.copied, report.skipped) == (3, 0)
    assert target.get(Document, "2")["title"] == "e1"


def test_copy_keeps_references_valid(memory: Any, tagged: Tagged) -> None:
    norway = Country(name="Norway")
    Event(title="x", country=norway).save(memory)
    copy(memory, tagged)
    event = Event.objects(tagged).where(title="x").first()
    assert event.country.name == "Norway" and event.country.storage is tagged


def test_a_refused_value_stops_before_its_batch(memory: Any) -> None:
    for i in range(5):
        memory.save(Event, {"title": f"e{i}", "blob": b"x" if i == 3 else None}, primary_key=f"k{i}")
    target = NoBytes()
    with pytest.raises(DataProcessorDoesNotExist):
        copy(Event.objects(memory).order_by("title"), target, batch_size=2)
    assert sorted(target) == ["k0", "k1"]  # the first batch; nothing of the failing one


def test_copy_between_sharded_and_plain(memory: Any, tmp_path: Path) -> None:
    shards = [get_db("memory://"), Tagged(), get_db({"backend": "shelve", "path": str(tmp_path / "s")})]
    sharded = get_db({"backend": "sharded", "shards": shards, "shard_by": "title"})
    _fill(memory, 9)
    assert copy(memory, sharded, batch_size=4).copied == 9
    assert sorted(sharded) == sorted(memory)
    assert all(len(s) for s in shards)
    fresh = get_db("memory://")
    assert copy(Event.objects(sharded).order_by("when"), fresh).copied == 9
    assert [e.when for e in Event.objects(fresh)] == [e.when for e in Event.objects(memory)]
    again = get_db({"backend": "sharded", "shards": ["memory://", "memory://"], "shard_by": "title"})
    assert copy(memory, again, keep_keys=False).copied == 9
    for shard in again.shards:  # new keys are made on the shard the field chooses
        for key in shard.storage:
            assert key.startswith(f"{shard.name}:")
    sharded.disconnect()
    again.disconnect()
    for shard in shards:
        shard.disconnect()


def test_copy_refuses_bad_arguments(memory: Any) -> None:
    with pytest.raises(ConfigurationError, match="same storage"):
        copy(memory, memory)
    with pytest.raises(ConfigurationError):
        copy([], memory)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        copy(memory, "memory://")  # type: ignore[arg-type]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigurationError):
            copy(memory, get_db("memory://"), batch_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        copy(memory, get_db("memory://"), existing="merge")  # type: ignore[arg-type]


def test_report_text() -> None:
    assert str(CopyReport(copied=3, skipped=1, seconds=0.5)) == "copied 3 records, skipped 1 in 0.50s"


# -- against the MongoDB backend (mongomock stand-in), whose native form differs ----------------

@pytest.fixture
def mongo() -> Iterator[Any]:
    mongomock = pytest.importorskip("mongomock")
    pytest.importorskip("doqu.ext.mongodb")
    client = mongomock.MongoClient(tz_aware=True)
    db = get_db({"backend": "mongodb", "client": client, "database": "doqu_test", "collection": "copy"})
    yield db
    db.disconnect()
    client.close()


def test_copy_to_and_from_mongodb_converts_decimals(mongo: Any, memory: Any) -> None:
    from bson.decimal128 import Decimal128

    _fill(memory, 3)
    assert copy(Event.objects(memory), mongo).copied == 3
    for key in memory:
        native = mongo._coll.find_one({"_id": key})
        assert isinstance(native["price"], Decimal128)  # the target's own form
        assert mongo.get(Event, key).price == memory.get(Event, key).price
    fresh = get_db("memory://")
    assert copy(mongo, fresh).copied == 3
    for key in memory:
        assert type(raw(fresh, key)["price"]) is decimal.Decimal  # never Decimal128 outside MongoDB
        assert fresh.get(Event, key).price == memory.get(Event, key).price
    copy_ = mongo.get(Event, "2").save_as(storage=fresh, key="via-save-as")
    assert type(raw(fresh, copy_.pk)["price"]) is decimal.Decimal


class JsonText(Memory):
    """Keeps records as JSON text and hands out plain floats for undeclared values, like the Redis backend."""

    def _store(self, key: str, record: dict[str, Any]) -> None:
        super()._store(key, {"json": dumps(record)})

    def _load(self, key: str) -> dict[str, Any] | None:
        stored = super()._load(key)
        return loads(stored["json"]) if stored is not None else None

    def _iter_records(self) -> Iterator[Any]:
        for key, stored in super()._iter_records():
            yield key, loads(stored["json"])

    def _value_from_db(self, datatype: Any, value: Any) -> Any:
        value = super()._value_from_db(datatype, value)
        return float(value) if type(value) is ExactFloat else value


def test_undeclared_values_travel_in_canonical_form() -> None:
    """A JSON engine holds an undeclared Decimal as a number; its exact digits must survive a copy."""

    class Salaried(Document):
        structure = {"salary": decimal.Decimal}

    source = JsonText()
    source.save(None, {"name": "Grace", "salary": decimal.Decimal("1234.50")}, primary_key="grace")
    undeclared = source.get(Document, "grace")["salary"]
    assert isinstance(undeclared, float) and undeclared == 1234.5  # a JSON-native float...
    assert str(source.get(Salaried, "grace").salary) == "1234.50"  # ...that kept the digits
    target = get_db("memory://")
    copy(source, target)
    assert str(target.get(Salaried, "grace").salary) == "1234.50"
    assert target.get(Document, "grace")["name"] == "Grace"
    assert copy(Salaried.objects(source), get_db("memory://")).copied == 1
