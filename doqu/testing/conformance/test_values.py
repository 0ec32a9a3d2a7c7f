"""Every supported value type reads back equal, with its declared type."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest

from doqu import DataProcessorDoesNotExist, Document, DoquError, Many, ValidationError


class Country(Document):
    structure = {"name": str}


class Everything(Document):
    structure = {
        "s": str, "i": int, "f": float, "b": bool, "d": dt.date, "dt": dt.datetime,
        "t": dt.time, "dec": decimal.Decimal, "raw": bytes, "items": list, "nested": dict,
        "country": Country, "visited": Many(Country),
    }


UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))

SAMPLE = {
    "s": "hello ✓ 'quoted' \"double\"",
    "i": -(2**53) + 1,
    "f": 2.5e-8,
    "b": False,
    "d": dt.date(2024, 2, 29),
    "dt": dt.datetime(2024, 2, 29, 13, 5, 7, 123456),
    "t": dt.time(23, 59, 58, 999),
    "dec": decimal.Decimal("3.141592653589793238462643383279"),
    "raw": b"\x00\xffbinary\x01",
    "items": [1, "two", 3.5, True, None, [4, {"five": 5}]],
    "nested": {"a": {"b": {"c": [1, 2, {"d": "deep"}]}}, "empty": {}, "list": []},
}


def test_declared_types_round_trip(db: Any) -> None:
    key = Everything(**SAMPLE).save(db)
    loaded = db.get(Everything, key)
    for name, value in SAMPLE.items():
        if name == "items":
            value = [1, "two", 3.5, True, None, [4, {"five": 5}]]
        assert loaded[name] == value, name
        assert type(loaded[name]) is type(value), name


def test_aware_datetimes_come_back_aware_and_equal(db: Any) -> None:
    moment = dt.datetime(2020, 6, 1, 12, 0, tzinfo=UTC_PLUS_2)
    key = Everything(dt=moment).save(db)
    loaded = db.get(Everything, key).dt
    assert loaded == moment
    assert loaded.tzinfo is not None


def test_decimals_keep_every_digit(db: Any) -> None:
    for text in ["0.1", "-12345678901234567890.000000001", "1E+3", "7"]:
        key = Everything(dec=decimal.Decimal(text)).save(db)
        assert db.get(Everything, key).dec == decimal.Decimal(text)


def test_json_native_values_without_a_declared_type(db: Any) -> None:
    record = {"s": "x", "i": 3, "f": 1.25, "b": True, "l": [1, [2]], "m": {"k": {"j": False}}}
    db.save(None, record, primary_key="k")
    loaded = db.get(Document, "k")
    for name, value in record.items():
        assert loaded[name] == value
        assert type(loaded[name]) is type(value), name


def test_none_is_absent(db: Any) -> None:
    key = Everything(s=None, i=1).save(db)
    loaded = db.get(Everything, key)
    assert loaded.s is None
    assert "s" not in loaded.dump()
    assert Everything.objects(db).where(s=None).count() == 1
    assert Everything.objects(db).where(s__exists=True).count() == 0


def test_unsupported_value_type_is_refused_and_nothing_written(db: Any) -> None:
    for bad in [{1, 2}, object(), 3 + 4j]:
        with pytest.raises(DataProcessorDoesNotExist) as info:
            db.save(None, {"ok": 1, "bad": bad})
        assert "bad" in str(info.value)
        assert isinstance(info.value, TypeError)
    with pytest.raises(DataProcessorDoesNotExist):
        db.save(None, {"nested": {"deeper": [1, {2, 3}]}})
    assert len(db) == 0


def test_non_finite_floats_are_refused(db: Any) -> None:
    for bad in [float("nan"), float("inf"), -float("inf")]:
        with pytest.raises(ValidationError):
            db.save(None, {"x": bad})
    assert len(db) == 0


def test_nul_and_other_hostile_strings_round_trip_or_fail_cleanly(db: Any) -> None:
    for i, text in enumerate(["nul\x00inside", "\u2028line", "tab\tcr\r", "🎉 emoji", ""]):
        try:
            db.save(None, {"v": text}, primary_key=f"k{i}")
        except DoquError:
            assert f"k{i}" not in db
            continue
        assert db.get(Document, f"k{i}")["v"] == text


def test_query_operands_are_converted_like_values(db: Any) -> None:
    class Dated(Document):
        structure = {"day": dt.date, "at": dt.datetime, "price": decimal.Decimal}

    Dated(day=dt.date(2020, 1, 1), at=dt.datetime(2020, 1, 1, 8), price=decimal.Decimal("9.99")).save(db)
    Dated(day=dt.date(2021, 6, 15), at=dt.datetime(2021, 6, 15, 20), price=decimal.Decimal("19.5")).save(db)
    q = Dated.objects(db)
    assert q.where(day=dt.date(2020, 1, 1)).count() == 1
    assert q.where(day__gt=dt.date(2020, 6, 1)).count() == 1
    assert q.where(at__lt=dt.datetime(2020, 1, 1, 9)).count() == 1
    assert q.where(day__between=(dt.date(2019, 1, 1), dt.date(2022, 1, 1))).count() == 2
    assert q.where(day__year=2021, day__month=6, day__day=15).count() == 1
    assert q.where(at__year=2020).count() == 1
    assert q.where(price__gt=decimal.Decimal("10")).count() == 1
    assert q.values("day") == [dt.date(2020, 1, 1), dt.date(2021, 6, 15)]
    assert [d.day for d in q.order_by("-day")] == [dt.date(2021, 6, 15), dt.date(2020, 1, 1)]


def test_references_store_keys_and_read_back_documents(db: Any) -> None:
    norway = Country(name="Norway")
    doc = Everything(s="ada", country=norway, visited=[norway, Country(name="Peru")])
    key = doc.save(db)
    assert norway.pk is not None
    loaded = db.get(Everything, key)
    assert loaded.country == norway
    assert loaded.country.name == "Norway"
    assert sorted(c.name for c in loaded.visited) == ["Norway", "Peru"]
    assert Everything.objects(db).where(country=norway).count() == 1
    assert Everything.objects(db).where(visited__contains=norway).count() == 1
    raw = db.get(Document, key)
    assert raw["country"] == norway.pk


def test_reading_a_reference_does_not_change_the_document(db: Any) -> None:
    norway = Country(name="Norway")
    key = Everything(country=norway).save(db)
    loaded = db.get(Everything, key)
    before = loaded.dump()
    _ = loaded.country.name
    assert loaded.dump() == before
    assert not loaded.is_field_changed("country")


def test_backward_relation(db: Any) -> None:
    norway, peru = Country(name="Norway"), Country(name="Peru")
    Everything(s="a", country=norway).save(db)
    Everything(s="b", country=norway).save(db)
    Everything(s="c", country=peru, visited=[norway]).save(db)
    assert sorted(d.s for d in norway.everything_set) == ["a", "b"]
    assert norway.everything_set.count() == 2


def test_wrong_types_are_refused_on_assignment(db: Any) -> None:
    doc = Everything()
    for name, bad in [("i", "7"), ("i", True), ("s", 5), ("d", dt.datetime(2020, 1, 1)),
                      ("b", 0), ("items", "not a list"), ("country", 42)]:
        with pytest.raises(ValidationError) as info:
            doc[name] = bad
        assert name in str(info.value)
