"""Canonical encoding and the JSON text helpers."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doqu.conversion import ConverterManager, ExactFloat, canonical, dumps, loads
from doqu.errors import DataProcessorDoesNotExist, ProcessorDoesNotExist, ValidationError

UTC = dt.timezone.utc


def test_canonical_text_sorts_like_the_values() -> None:
    times = [dt.datetime(2020, 1, 1, 0, 0, 0, 5), dt.datetime(2020, 1, 1, 0, 0, 1), dt.datetime(2019, 12, 31)]
    assert sorted(times) == sorted(times, key=canonical)
    clock = [dt.time(9, 0), dt.time(10, 0, 0, 1), dt.time(9, 59, 59)]
    assert sorted(clock) == sorted(clock, key=canonical)


def test_aware_datetimes_become_utc() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert canonical(dt.datetime(2020, 1, 1, 12, tzinfo=plus2)) == "2020-01-01T10:00:00.000000+00:00"


def test_from_db_restores_declared_types() -> None:
    m = ConverterManager()
    assert m.from_db(dt.date, "2020-02-29") == dt.date(2020, 2, 29)
    assert m.from_db(dt.datetime, "2020-01-01T10:00:00.000000+00:00") == dt.datetime(2020, 1, 1, 10, tzinfo=UTC)
    assert m.from_db(bytes, canonical(b"\x00\x01")) == b"\x00\x01"
    assert m.from_db(float, 3) == 3.0 and type(m.from_db(float, 3)) is float
    assert m.from_db(int, 3.0) == 3
    assert m.from_db(decimal.Decimal, ExactFloat("0.10")) == decimal.Decimal("0.10")
    with pytest.raises(ValidationError):
        m.from_db(int, "3")
    with pytest.raises(ValidationError):
        m.from_db(bool, 1)
    with pytest.raises(ProcessorDoesNotExist):
        m.from_db(complex, 1)


def test_register_a_type() -> None:
    class Celsius(float):
        pass

    m = ConverterManager()
    m.register(Celsius, lambda v: Celsius(v))
    assert isinstance(m.from_db(Celsius, 21.5), Celsius)


def test_unsupported_values_name_the_field() -> None:
    with pytest.raises(DataProcessorDoesNotExist) as info:
        canonical({"inner": [1, {2}]}, field="outer")
    assert "outer.inner[1]" in str(info.value)
    with pytest.raises(DataProcessorDoesNotExist):
        canonical({1: "non-str key"})


def test_dumps_keeps_decimals_exact() -> None:
    text = dumps({"d": decimal.Decimal("3.141592653589793238462643383279"), "l": [decimal.Decimal("1")]})
    back = loads(text)
    assert decimal.Decimal(back["d"].text) == decimal.Decimal("3.141592653589793238462643383279")
    assert json.loads(text)["l"] == [1.0]


def test_dumps_refuses_nan() -> None:
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), st.floats(allow_nan=False, allow_infinity=False),
              st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=12)


@given(json_values)
def test_dumps_loads_round_trip(value: object) -> None:
    assert loads(dumps(value)) == value


def test_exact_floats_are_written_back_with_their_digits() -> None:
    text = '{"d":3.141592653589793238462643383279}'
    assert dumps(canonical(loads(text))) == text  # records are written after canonical()
