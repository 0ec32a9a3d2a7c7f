"""Schema inference: statistics, and a generated class that fits the records it came from."""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from typing import Any

import pytest

from doqu import Document, ValidationError, get_db
from doqu.conversion import ExactFloat
from doqu.inspection import (
    DISTINCT_LIMIT,
    class_name_for,
    infer_schema,
    inspect_records,
    render_class,
    schema_to_json,
    value_kind,
)

UTC = dt.timezone.utc


@pytest.mark.parametrize("value, kind", [
    ("2024-02-29", "date"),
    ("2024-02-30", "str"),  # looks like a date, is not one
    ("2024-02-29T13:05:07.123456", "datetime"),
    ("2024-02-29T13:05:07.123456+00:00", "datetime"),
    ("2024-02-29 13:05", "datetime"),
    ("13:05:07.000001", "time"),
    ("25:05:07", "str"),
    ("AAEC", "str"),  # base64 text is never guessed to be bytes
    ("", "str"),
    (b"\x00", "bytes"),
    (dt.date(2024, 1, 1), "date"),
    (dt.datetime(2024, 1, 1), "datetime"),
    (dt.time(1, 2), "time"),
    (True, "bool"),
    (1, "int"),
    (1.5, "float"),
    (ExactFloat("2.5e-08"), "float"),
    (ExactFloat("3.141592653589793238462643383279"), "decimal"),
    (decimal.Decimal("1.10"), "decimal"),
    ([1], "list"),
    ({"a": 1}, "dict"),
])
def test_value_kinds(value: Any, kind: str) -> None:
    assert value_kind(value) == kind


def _people(db: Any, count: int = 24) -> None:
    statuses = ["active", "retired", "active"]
    for i in range(count):
        record: dict[str, Any] = {
            "name": f"person {i}",
            "age": 20 + i,
            "status": statuses[i % 3],
            "born": dt.date(1950, 1, 1) + dt.timedelta(days=400 * i),
            "seen": dt.datetime(2024, 1, 1, 12, tzinfo=UTC) + dt.timedelta(hours=i),
            "wake": dt.time(6, i % 60),
            "score": 1 if i % 2 else 2.5,
            "salary": decimal.Decimal("1000.10") + i,
            "tags": ["a", "b"][: i % 3],
            "note": "" if i % 4 == 0 else "text",
        }
        if i % 2:
            record["address"] = {"city": ["Paris", "Oslo"][i % 4 // 2], "zip": f"{i:05d}"}
        if i % 3:
            record["level"] = i % 3
        if i % 5 == 0:
            record["mixed"] = "x" if i % 10 else 7
        db.save(None, record, primary_key=f"p{i}")


def test_statistics_count_presence_types_and_values() -> None:
    db = get_db("memory://")
    _people(db)
    schema = infer_schema(db)
    assert schema.records == 24 and not schema.sampled
    stats = schema_to_json(schema)["fields"]
    assert stats["name"]["present"] == 24 and stats["name"]["distinct"] == 24
    assert stats["status"]["values"] == ["active", "retired"]
    assert stats["born"]["types"] == {"date": 24}
    assert stats["seen"]["types"] == {"datetime": 24} and stats["seen"]["aware"] == 24
    assert stats["score"]["types"] == {"float": 12, "int": 12}
    assert stats["level"]["present"] == 16 and stats["level"]["values"] == [1, 2]
    assert stats["address"]["present"] == 12
    assert stats["address"]["fields"]["city"]["values"] == ["Oslo", "Paris"]
    assert stats["address"]["fields"]["zip"]["ratio"] == 1.0
    assert stats["tags"]["items"] == {"str": 24} and stats["tags"]["empty"] == 8
    assert stats["note"]["empty"] == 6
    assert stats["mixed"]["types"] == {"int": 3, "str": 2}
    assert stats["salary"]["python_type"] == "decimal.Decimal"


def test_distinct_values_stop_being_counted_past_the_limit() -> None:
    schema = inspect_records({"n": i} for i in range(DISTINCT_LIMIT + 5))
    assert schema.fields["n"].distinct is None
    assert schema_to_json(schema)["fields"]["n"]["distinct"] is None


def test_a_sample_reads_only_that_many_records() -> None:
    db = get_db("memory://")
    _people(db)
    schema = infer_schema(db, sample=5)
    assert schema.records == 5 and schema.total == 24 and schema.sampled
    assert "a sample of 5 of 24 records" in render_class(schema)


def _exec(source: str, name: str) -> type[Document]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<inspect>", "exec"), namespace)
    cls = namespace[name]
    assert issubclass(cls, Document)
    return cls


def test_the_generated_class_fits_the_records_on_every_engine(db: Any, caplog: Any) -> None:
    _people(db)
    source = render_class(infer_schema(db), "Person")
    Person = _exec(source, "Person")

    class Strict(Person):  # any record that does not fit raises instead of logging
        break_on_invalid_incoming_data = True

    assert Strict.objects(db).count() == len(db) == 24
    with caplog.at_level(logging.WARNING, logger="doqu.document"):
        people = {p.pk: p for p in Strict.objects(db)}
    assert not caplog.records
    p3 = people["p3"]
    assert p3.born == dt.date(1950, 1, 1) + dt.timedelta(days=1200)
    assert p3.seen == dt.datetime(2024, 1, 1, 15, tzinfo=UTC)
    assert p3.wake == dt.time(6, 3)
    assert p3.salary == decimal.Decimal("1003.10") and isinstance(p3.salary, decimal.Decimal)
    assert p3.score == 1.0 and isinstance(p3.score, float)
    assert p3.address == {"city": "Oslo", "zip": "00003"}
    for person in people.values():
        person.validate()
    # the validators it wrote mean something
    assert Person.validators["status"][-1].choices == ["active", "retired"]
    with pytest.raises(ValidationError):
        Person(name="x", age=1, status="unknown", born=dt.date(2000, 1, 1), seen=dt.datetime.now(UTC),
               wake=dt.time(1), score=1.0, salary=decimal.Decimal(1), tags=[], note="").validate()
    new = Person(name="new", age=3, status="active", born=dt.date(2000, 1, 1),
                 seen=dt.datetime(2024, 5, 1, tzinfo=UTC), wake=dt.time(7), score=2.0,
                 salary=decimal.Decimal("5.5"), tags=[], note="")
    new.save(db)
    assert Strict.objects(db).count() == 25


def test_validators_follow_what_was_seen() -> None:
    db = get_db("memory://")
    _people(db)
    source = render_class(infer_schema(db), "Person")
    Person = _exec(source, "Person")
    names = {name: [type(v).__name__ for v in chain] for name, chain in Person.validators.items()}
    assert names["name"] == ["Required"]  # always present, never empty, all distinct
    assert names["status"] == ["Required", "AnyOf"]
    assert names["level"] == ["Optional", "AnyOf"]  # sometimes absent, two values
    assert names["note"] == ["Exists", "AnyOf"]  # always present, sometimes empty
    assert names["tags"] == ["Exists"]
    assert "address" not in names and "mixed" not in names
    assert Person.structure["mixed"] is None  # str and int: any type
    assert Person.structure["score"] is float  # int and float
    assert Person.structure["tags"] is list and Person.structure["address"] is dict
    assert "#   address.city: 12/12 (100%); str; 2 distinct" in source


def test_max_choices_bounds_any_of() -> None:
    db = get_db("memory://")
    _people(db)
    Person = _exec(render_class(infer_schema(db), "Person", max_choices=0), "Person")
    assert all(type(v).__name__ != "AnyOf" for chain in Person.validators.values() for v in chain)


def test_awkward_field_names_still_give_valid_python() -> None:
    db = get_db("memory://")
    for i in range(3):
        db.save(None, {"first name": "A", "it's \"quoted\"": i, "line\nbreak": True,
                       "nested": {"odd key\n# x": 1}, "class": "kw"})
    Odd = _exec(render_class(infer_schema(db), "Odd"), "Odd")
    assert set(Odd.structure) == {"first name", "it's \"quoted\"", "line\nbreak", "nested", "class"}
    assert set(Odd.validators) == {"nested", "class"}  # the others cannot be queried
    assert Odd.objects(db).count() == 3


def test_an_empty_storage_gives_an_empty_class() -> None:
    Empty = _exec(render_class(infer_schema(get_db("memory://")), "Empty"), "Empty")
    assert Empty.structure == {}


def test_class_names() -> None:
    assert class_name_for("people") == "People"
    assert class_name_for("app_users") == "AppUsers"
    assert class_name_for("") == "Record"
    assert class_name_for("2024") == "Record"
    with pytest.raises(ValueError):
        render_class(inspect_records([]), "not valid")
