"""Values and field names between doqu and BSON."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doqu import DataProcessorDoesNotExist, ValidationError

bson = pytest.importorskip("bson")
Decimal128 = bson.decimal128.Decimal128
ObjectId = bson.objectid.ObjectId

from doqu.ext.mongodb.converters import (  # noqa: E402
    MongoConverterManager,
    canonical_value,
    decode_key,
    decode_record,
    encode_key,
    encode_record,
)

manager = MongoConverterManager()


# -- field names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name,stored", [
    ("plain_name", "plain_name"),
    ("a.b", "a%2Eb"),
    ("$dollar", "%24dollar"),
    ("mid$dle", "mid$dle"),
    ("50%", "50%25"),
    ("nul\x00", "nul%00"),
    ("", "%"),
    ("ünï sp ace", "ünï sp ace"),
])
def test_awkward_names_are_escaped(name: str, stored: str) -> None:
    assert encode_key(name) == stored
    assert decode_key(stored) == name


def test_id_is_escaped_only_at_the_top() -> None:
    assert encode_key("_id", top=True) == "%5Fid"
    assert encode_key("_id") == "_id"
    record = {"_id": 1, "n": {"_id": 2, "a.b": [{"$c": 3}]}}
    stored = encode_record(record)
    assert stored == {"%5Fid": 1, "n": {"_id": 2, "a%2Eb": [{"%24c": 3}]}}
    assert decode_record({"_id": "key", **stored}) == record


@given(st.text(), st.booleans())
def test_names_round_trip_and_are_valid_bson_names(name: str, top: bool) -> None:
    stored = encode_key(name, top=top)
    assert decode_key(stored) == name
    assert stored and "." not in stored and "\x00" not in stored and not stored.startswith("$")
    assert not (top and stored == "_id")


# -- values ---------------------------------------------------------------------------------------

def test_values_are_stored_in_canonical_form_with_decimal128() -> None:
    to_db = manager.to_db
    assert to_db(Decimal("3.141592653589793238462643383279")) == Decimal128(
        "3.141592653589793238462643383279")
    assert to_db([1, {"p": Decimal("0.1")}]) == [1, {"p": Decimal128("0.1")}]
    assert to_db(dt.date(2024, 2, 29)) == "2024-02-29"
    assert to_db(dt.datetime(2024, 2, 29, 13, 5, 7, 123456)) == "2024-02-29T13:05:07.123456"
    aware = dt.datetime(2020, 6, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert to_db(aware) == "2020-06-01T10:00:00.000000+00:00"
    assert to_db(dt.time(23, 59, 58, 999)) == "23:59:58.000999"
    assert to_db(b"\x00\xff") == "AP8="


def test_values_mongodb_cannot_hold_are_refused_with_the_field_name() -> None:
    with pytest.raises(ValidationError) as info:
        manager.to_db(2**63, field="big")
    assert "big" in str(info.value) and "Decimal" in str(info.value)
    assert manager.to_db(2**63 - 1) == 2**63 - 1
    with pytest.raises(ValidationError) as info:
        manager.to_db({"x": Decimal("1." + "1" * 40)}, field="d")
    assert "34" in str(info.value)
    with pytest.raises(DataProcessorDoesNotExist):
        manager.to_db({1, 2}, field="s")


def test_decimals_come_back_as_decimals_with_and_without_a_declared_type() -> None:
    assert manager.from_db(Decimal, Decimal128("1E+3")) == Decimal("1E+3")
    assert manager.from_db(None, [Decimal128("2.50")]) == [Decimal("2.50")]
    assert manager.from_db(int, Decimal128("7")) == 7
    assert manager.from_db(dt.date, "2024-02-29") == dt.date(2024, 2, 29)


def test_foreign_bson_values_in_canonical_form() -> None:
    oid = ObjectId("0123456789abcdef01234567")
    record = {"o": oid, "d": Decimal128("2.5"), "b": b"\x00\x01",
              "t": dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
              "l": [dt.datetime(2020, 1, 2)], "n": {"x": Decimal128("1")}}
    assert canonical_value(record) == {
        "o": "0123456789abcdef01234567", "d": Decimal("2.5"), "b": "AAE=",
        "t": "2020-01-02T03:04:05.000000+00:00", "l": ["2020-01-02T00:00:00.000000"],
        "n": {"x": Decimal("1")}}
