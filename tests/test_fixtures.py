"""Files of records: the tagged JSON codec, every reader and writer, load_fixture."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doqu import DataProcessorDoesNotExist, Document, ValidationError, get_db
from doqu.conversion import ExactFloat
from doqu.fixtures import (
    decode_value,
    encode_value,
    exact_number,
    json_dumps,
    json_loads,
    load_fixture,
    parse_number,
    read_records,
    stored_records,
    write_records,
)
from doqu.testing.conformance.test_values import SAMPLE, Everything

UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))


def _through_json(value: Any) -> Any:
    return decode_value(json_loads(json_dumps(encode_value(value))))


# -- the codec -------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    dt.date(2024, 2, 29),
    dt.datetime(2024, 2, 29, 13, 5, 7, 123456),
    dt.datetime(2020, 6, 1, 12, 0, tzinfo=PLUS2),
    dt.time(23, 59, 58, 999),
    decimal.Decimal("3.141592653589793238462643383279"),
    decimal.Decimal("1E+3"),
    decimal.Decimal("-0.000"),
    b"\x00\xffbinary\x01",
    b"",
    2.5e-8,
    -(2**70),
    "",
    "{\"$date\": \"not a tag\"}",
])
def test_values_json_cannot_say_come_back_with_their_type(value: Any) -> None:
    back = _through_json(value)
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, dt.datetime):
        assert back.utcoffset() == value.utcoffset()
    if isinstance(value, decimal.Decimal):
        assert str(back) == str(value)  # every digit and the exponent


def test_the_tags_are_the_documented_ones() -> None:
    assert encode_value(dt.date(2024, 2, 29)) == {"$date": "2024-02-29"}
    assert encode_value(dt.datetime(2024, 1, 2, 3, 4, 5)) == {"$datetime": "2024-01-02T03:04:05"}
    assert encode_value(dt.time(13, 5)) == {"$time": "13:05:00"}
    assert encode_value(decimal.Decimal("1.10")) == {"$decimal": "1.10"}
    assert encode_value(b"\x00\x01\x02") == {"$bytes": "AAEC"}


def test_a_records_own_dollar_object_is_never_taken_for_a_tag() -> None:
    tricky = {"$date": "2024-01-01"}
    assert encode_value(tricky) == {"$dict": {"$date": "2024-01-01"}}
    assert _through_json(tricky) == tricky
    assert _through_json({"$dict": {"x": 1}}) == {"$dict": {"x": 1}}
    assert _through_json([{"$bytes": "AAEC"}, {"$anything": 1}]) == [{"$bytes": "AAEC"}, {"$anything": 1}]
    # two keys are never a tag
    assert decode_value({"$date": "2024-01-01", "b": 1}) == {"$date": "2024-01-01", "b": 1}


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(), st.datetimes(), st.datetimes(timezones=st.just(PLUS2)), st.times(), st.binary(),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)


def _without_none_in_dicts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none_in_dicts(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none_in_dicts(v) for v in value]
    return value


def _typed(value: Any) -> Any:
    """Value and type together, for an equality that does not let 1 == 1.0 == True pass."""
    if isinstance(value, dict):
        return ("dict", {k: _typed(v) for k, v in value.items()})
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, decimal.Decimal):
        return ("Decimal", str(value))
    if isinstance(value, dt.datetime):
        return ("datetime", value.isoformat())
    return (type(value).__name__, value)


@given(values)
def test_any_value_survives_json(value: Any) -> None:
    assert _typed(_through_json(value)) == _typed(_without_none_in_dicts(value))


def test_numbers_keep_their_digits() -> None:
    assert type(parse_number("0.1")) is float
    assert type(parse_number("0.10")) is float  # no more precision than the float
    assert type(parse_number("0.000000025")) is float
    exact = parse_number("3.141592653589793238462643383279")
    assert exact == decimal.Decimal("3.141592653589793238462643383279")
    assert isinstance(parse_number("1e400"), decimal.Decimal)  # too big for a float


def test_exact_floats_from_json_engines_are_dumped_without_losing_digits() -> None:
    assert encode_value(ExactFloat("2.5e-08")) == 2.5e-08
    assert encode_value(ExactFloat("3.141592653589793238462643383279")) == \
        {"$decimal": "3.141592653589793238462643383279"}
    # no float encoder writes a fraction ending in 0: that text was a Decimal
    assert encode_value(ExactFloat("1003.10")) == {"$decimal": "1003.10"}
    assert type(exact_number(ExactFloat("1.0"))) is float  # as likely a float as Decimal("1")
    assert type(exact_number(ExactFloat("0.000000025"))) is float
    assert exact_number(2.5) == 2.5


def test_unsupported_values_are_refused_by_name() -> None:
    with pytest.raises(DataProcessorDoesNotExist):
        encode_value({1, 2})
    with pytest.raises(ValueError):
        json_loads('{"x": NaN}')


def test_mongoexport_extended_json_is_read() -> None:
    line = ('{"_id":{"$oid":"65a1f0c2e4b0a1b2c3d4e5f6"},"when":{"$date":"2024-01-02T03:04:05.678Z"},'
            '"price":{"$numberDecimal":"19.990"},"n":{"$numberLong":"9007199254740993"},'
            '"raw":{"$binary":{"base64":"AAEC","subType":"00"}}}')
    [item] = read_records("export.jsonl", key_field="_id", text=line + "\n")
    assert item.key == "65a1f0c2e4b0a1b2c3d4e5f6"
    assert item.fields == {
        "when": dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "price": decimal.Decimal("19.990"),
        "n": 9007199254740993,
        "raw": b"\x00\x01\x02",
    }


# -- reading ------------------------------------------------------------------------

def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_fixture_defaults_to_a_new_memory_storage(tmp_path: Path) -> None:
    path = _write(tmp_path, "people.jsonl",
                  '{"_key": "ada", "name": "Ada", "born": {"$date": "1815-12-10"}}\n'
                  '\n'
                  '{"name": "Alan"}\n')
    db = load_fixture(path)
    assert db.backend_name == "memory"
    assert len(db) == 2
    assert db.get(Document, "ada")["born"] == "1815-12-10"  # canonical text without a declared type
    assert [d["name"] for d in db.get_query().where(name="Alan")] == ["Alan"]
    assert load_fixture(path) is not db  # each call without db makes its own storage


def test_load_fixture_into_a_given_storage_upserts_by_key(tmp_path: Path) -> None:
    db = get_db("memory://")
    db.save(None, {"name": "old"}, primary_key="ada")
    db.save(None, {"name": "other"}, primary_key="keep")
    path = _write(tmp_path, "p.json", '[{"_key": "ada", "name": "Ada"}, {"name": "Bob"}]')
    assert load_fixture(path, db) is db
    assert len(db) == 3
    assert db.get(Document, "ada")["name"] == "Ada"
    assert db.get(Document, "keep")["name"] == "other"


def test_json_object_maps_keys_to_records(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.json", '{"ada": {"name": "Ada"}, "7": {"name": "Seven", "_key": 7}}')
    db = load_fixture(path)
    assert db.get(Document, "ada")["name"] == "Ada"
    assert db.get(Document, "7")["name"] == "Seven"


def test_json_lines_in_a_file_named_json(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.json", '{"name": "A"}\n{"name": "B"}\n')
    assert sorted(d["name"] for d in load_fixture(path).get_query()) == ["A", "B"]


def test_yaml_lists_and_mappings_with_native_dates(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    listed = _write(tmp_path, "a.yaml", "- _key: ada\n  name: Ada\n  born: 1815-12-10\n"
                                        "- name: Alan\n  seen: 2020-01-01T10:00:00+02:00\n")
    db = load_fixture(listed)
    assert db.get(Document, "ada")["born"] == "1815-12-10"
    alan = db.get_query().where(name="Alan").first()
    assert alan["seen"] == "2020-01-01T08:00:00.000000+00:00"  # aware → UTC, canonical
    mapped = _write(tmp_path, "b.yml", "ada:\n  name: Ada\n  tags: [math, poetry]\n")
    assert load_fixture(mapped).get(Document, "ada")["tags"] == ["math", "poetry"]


def test_csv_with_type_hints(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.csv",
                  "_key,name,age:int,score:float,ok:bool,price:decimal,born:date,at:datetime,"
                  "t:time,raw:bytes,extra:json\n"
                  'a,Ada,36,1.5,true,0.10,1815-12-10,2020-01-01T10:00:00+02:00,13:05:00,AAEC,"{""x"": [1]}"\n'
                  "b,,,,false,,,,,,\n")
    db = load_fixture(path)
    a = db.get(Document, "a")
    assert a.dump()["age"] == 36 and a.dump()["score"] == 1.5 and a.dump()["ok"] is True
    assert a.dump()["price"] == decimal.Decimal("0.10")
    assert a.dump()["born"] == "1815-12-10"
    assert a.dump()["at"] == "2020-01-01T08:00:00.000000+00:00"
    assert a.dump()["t"] == "13:05:00.000000"
    assert a.dump()["raw"] == "AAEC"
    assert a.dump()["extra"] == {"x": [1]}
    assert db.get(Document, "b").dump() == {"ok": False}  # empty cells are absent


def test_csv_without_hints_is_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "plain.csv", "name,zip\nAda,007\n")
    [doc] = list(load_fixture(path).get_query())
    assert doc.dump() == {"name": "Ada", "zip": "007"}


@pytest.mark.parametrize("name, text, where", [
    ("bad.jsonl", '{"a": 1}\n{"a": 2}\n{"a": \n', "bad.jsonl line 3: malformed JSON"),
    ("bad.jsonl", '{"a": 1}\n[1, 2]\n', "bad.jsonl line 2: expected a record"),
    ("bad.jsonl", '{"a": {"$date": "2024-13-45"}}\n', "bad.jsonl line 1: bad $date value"),
    ("bad.jsonl", '{"a": NaN}\n', "bad.jsonl line 1: malformed JSON"),
    ("bad.jsonl", '{"_key": ["x"], "a": 1}\n', "bad.jsonl line 1: _key must be a non-empty string"),
    ("bad.json", '[\n{"a": 1},\n{"a": 2,,}\n]', "bad.json line 3: malformed JSON"),
    ("bad.json", '[{"a": 1}, 5]', "bad.json record 2: expected a record"),
    ("bad.json", '"text"', "expected a JSON list of records"),
    ("bad.csv", "a:int\n1\nx\n", "bad.csv line 3: column 'a' (int)"),
    ("bad.csv", "a:integer\n1\n", "bad.csv line 1: column 'a:integer' has the unknown type"),
    ("bad.csv", "a,b\n1,2,3\n", "bad.csv line 2: 3 cells"),
    ("bad.csv", "a,a\n1,2\n", "bad.csv line 1: repeated column"),
    ("bad.yaml", "- a: 1\n- b: [\n", "bad.yaml line 3: malformed YAML"),
])
def test_malformed_files_name_the_place_and_write_nothing(tmp_path: Path, name: str, text: str,
                                                         where: str) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    db = get_db("memory://")
    db.save(None, {"before": True}, primary_key="k")
    with pytest.raises(ValidationError) as info:
        load_fixture(_write(tmp_path, name, text), db)
    assert where in str(info.value)
    assert [d.pk for d in db.get_query()] == ["k"]


def test_a_value_no_engine_stores_fails_before_anything_is_written(tmp_path: Path) -> None:
    db = get_db("memory://")
    path = _write(tmp_path, "p.jsonl", '{"a": 1}\n{"a": {"$decimal": "NaN"}}\n')
    with pytest.raises(ValidationError, match="p.jsonl line 2"):
        load_fixture(path, db)
    assert len(db) == 0


def test_a_missing_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_fixture(tmp_path / "nope.jsonl")


def test_an_unknown_extension_is_sniffed_or_refused(tmp_path: Path) -> None:
    assert len(load_fixture(_write(tmp_path, "data.txt", '[{"a": 1}]'))) == 1
    with pytest.raises(ValidationError, match="cannot tell the format"):
        load_fixture(_write(tmp_path, "data.txt", "a,b\n1,2\n"))
    assert len(load_fixture(_write(tmp_path, "data.txt", "a,b\n1,2\n"), format="csv")) == 1


# -- writing and reading back, on every engine --------------------------------------------

EXTRA = {
    "aware": dt.datetime(2020, 6, 1, 12, 0, tzinfo=PLUS2),
    "dollar": {"$date": "2024-01-01"},
    "empty": "",
    "zero": 0,
    "big": 2**62,  # past a double's 53 bits, within every engine's 64
}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_every_value_type_round_trips_through_a_file(db: Any, tmp_path: Path, fmt: str) -> None:
    key = Everything(**SAMPLE).save(db)
    db.save(None, EXTRA, primary_key="extra")
    db.save(None, {"only": "one field"}, primary_key="x:y")
    originals = dict(stored_records(db.get_query()))
    path = tmp_path / f"dump.{fmt}"
    with open(path, "w", encoding="utf-8", newline="") as out:
        assert write_records(out, originals.items(), fmt) == 3
    db.clear()
    load_fixture(path, db)
    def as_text(records: dict[str, Any]) -> dict[str, str]:
        return {key: json_dumps(encode_value(record)) for key, record in records.items()}

    assert as_text(dict(stored_records(db.get_query()))) == as_text(originals)
    loaded = db.get(Everything, key)
    for name, value in SAMPLE.items():
        assert loaded[name] == value, name
        assert type(loaded[name]) is type(value), name
    extra = db.get(Document, "extra").dump()
    assert extra["dollar"] == {"$date": "2024-01-01"}
    assert extra["empty"] == "" and extra["zero"] == 0 and extra["big"] == 2**62
    assert dt.datetime.fromisoformat(extra["aware"]) == EXTRA["aware"]


def test_dumping_a_record_with_the_key_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="_key"):
        write_records(io.StringIO(), [("k", {"_key": "clash"})], "jsonl")
    out = io.StringIO()
    write_records(out, [("k", {"_key": "clash"})], "jsonl", key_field="id")
    assert json.loads(out.getvalue()) == {"id": "k", "_key": "clash"}


def test_csv_header_says_each_columns_type() -> None:
    out = io.StringIO()
    write_records(out, [("1", {"n": 1, "s": "a", "mixed": 1, "d": decimal.Decimal("1.5")}),
                        ("2", {"n": 2, "s": "b", "mixed": "x", "e": ""})], "csv")
    header = out.getvalue().splitlines()[0]
    assert header == "_key,n:int,s,mixed:json,d:decimal,e:json"
