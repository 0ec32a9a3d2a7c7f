"""Documents as views of records, class settings, validation and saving."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from doqu import Document, Field, UnknownFieldError, ValidationError
from doqu.validators import any_of, number_range, optional, required


class Named(Document):
    structure = {"name": str}
    validators = {"name": [required()]}


class Aged(Named):
    structure = {"age": int}
    defaults = {"age": 0}
    labels = {"age": "Age in years"}


class Adult(Document):
    structure = {"age": int}
    validators = {"age": [number_range(min=18)]}


class MaybeAdult(Document):
    structure = {"age": int}
    validators = {"age": [optional(), number_range(min=18)]}


class Stamped(Document):
    structure = {"title": str, "created": dt.date, "kind": str}
    defaults = {"created": lambda: dt.date(2000, 1, 1), "kind": "note"}


class WithFields(Document):
    title = Field(str, required=True, label="Title")
    colour = Field(str, choices=["red", "green"])
    structure = {"size": int}


def test_settings_merge_down_the_hierarchy() -> None:
    assert Aged.structure == {"name": str, "age": int}
    assert set(Aged.validators) == {"name"}
    assert Aged.labels == {"age": "Age in years"}
    assert Named.structure == {"name": str}


def test_field_sugar_contributes_to_the_same_settings() -> None:
    assert WithFields.structure == {"title": str, "colour": str, "size": int}
    assert WithFields.labels == {"title": "Title"}
    doc = WithFields(title="t", colour="red")
    assert doc.title == "t" and doc["colour"] == "red"
    doc.colour = "blue"
    with pytest.raises(ValidationError):
        doc.validate()


def test_a_class_is_a_view_and_saving_keeps_unknown_fields(db: Any) -> None:
    db.save(None, {"name": "Ada", "age": 36, "secret": {"x": 1}, "tags": ["a"]}, primary_key="k")
    doc = db.get(Named, "k")
    assert doc.name == "Ada"
    doc.name = "Ada L."
    doc.save()
    raw = db.get(Document, "k")
    assert raw["name"] == "Ada L."
    assert raw["age"] == 36 and raw["secret"] == {"x": 1} and raw["tags"] == ["a"]


def test_validators_decide_which_records_a_class_sees(db: Any) -> None:
    for key, record in {"young": {"age": 12}, "old": {"age": 40}, "none": {"name": "x"},
                        "text": {"age": "40"}}.items():
        db.save(None, record, primary_key=key)
    assert sorted(Adult.objects(db).keys()) == ["old"]
    assert sorted(MaybeAdult.objects(db).keys()) == ["none", "old"]
    assert sorted(Named.objects(db).keys()) == ["none"]
    assert Adult.objects(db).count() == 1


def test_any_of_narrows_the_view(db: Any) -> None:
    class Primary(Document):
        validators = {"colour": [any_of(["red", "green", "blue"])]}

    for i, colour in enumerate(["red", "pink", "blue", None]):
        db.save(None, {"colour": colour, "i": i})
    assert sorted(d["i"] for d in Primary.objects(db)) == [0, 2]


def test_unknown_field_raises_key_error() -> None:
    doc = Named(name="x")
    with pytest.raises(KeyError):
        doc["nope"] = 1
    with pytest.raises(UnknownFieldError):
        doc.nope = 1
    with pytest.raises(KeyError):
        Named(nope=1)


def test_invalid_document_writes_nothing(db: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Named().save(db)
    assert "name" in str(info.value)
    assert len(db) == 0


def test_invalid_reference_target_writes_nothing(db: Any) -> None:
    class Holder(Document):
        structure = {"owner": Named}

    with pytest.raises(ValidationError):
        Holder(owner=Named()).save(db)  # the unsaved owner has no name
    assert len(db) == 0


def test_defaults_are_filled(db: Any) -> None:
    doc = Stamped(title="t")
    assert doc.kind == "note"
    doc.kind = None
    key = doc.save(db)
    loaded = db.get(Stamped, key)
    assert loaded.created == dt.date(2000, 1, 1) and loaded.kind == "note"


def test_incoming_record_that_does_not_fit_is_still_returned(db: Any) -> None:
    db.save(None, {"age": "not a number"}, primary_key="k")
    doc = db.get(Aged, "k")
    assert doc["age"] == "not a number"
    with pytest.raises(ValidationError):
        doc.save()
    assert db.get(Document, "k")["age"] == "not a number"


def test_break_on_invalid_incoming_data(db: Any) -> None:
    class Strict(Aged):
        break_on_invalid_incoming_data = True

    db.save(None, {"name": "x", "age": "nope"}, primary_key="k")
    with pytest.raises(ValidationError):
        db.get(Strict, "k")


def test_equality_is_same_storage_and_key(db: Any) -> None:
    db.save(None, {"name": "x"}, primary_key="k")
    assert db.get(Named, "k") == db.get(Aged, "k")
    assert db.get(Named, "k") != Named(name="x")
    assert Named(name="x") != Named(name="x")
    one = Named(name="x")
    assert one == one
    assert len({db.get(Named, "k"), db.get(Aged, "k")}) == 1


def test_document_delete(db: Any) -> None:
    doc = Named(name="x")
    doc.save(db)
    doc.delete()
    assert len(db) == 0 and doc.pk is None


def test_is_field_changed(db: Any) -> None:
    doc = Aged(name="x", age=1)
    doc.save(db)
    assert not doc.is_field_changed("age")
    doc.age = 2
    assert doc.is_field_changed("age") and not doc.is_field_changed("name")


def test_convert_to_and_save_as(db: Any) -> None:
    doc = Named(name="x")
    doc.save(db)
    aged = doc.convert_to(Aged, {"age": 5})
    assert aged.pk == doc.pk and aged.age == 5
    copy = doc.save_as()
    assert copy.pk != doc.pk and copy.name == "x"
    assert len(db) == 2
    named = doc.save_as(key="chosen")
    assert named.pk == "chosen" and db.get(Named, "chosen").name == "x"


def test_save_many_validates_first(db: Any) -> None:
    docs = [Named(name=str(i)) for i in range(5)] + [Named()]
    with pytest.raises(ValidationError):
        Named.save_many(docs, db)
    assert len(db) == 0
    keys = Named.save_many(docs[:5], db)
    assert len(set(keys)) == 5 and len(db) == 5
    assert all(d.pk is not None for d in docs[:5])


def test_save_many_bulk(db: Any) -> None:
    keys = db.save_many(Aged(name=f"n{i}", age=i) for i in range(300))
    assert len(keys) == 300 == len(set(keys))
    assert Aged.objects(db).where(age__gte=100).count() == 200


def test_repr_and_str() -> None:
    class Labeled(Named):
        def __str__(self) -> str:
            return self.name or "?"

    assert repr(Labeled(name="Ada")) == "<Labeled: Ada>"


def test_mapping_behaviour() -> None:
    doc = Aged(name="x")
    assert dict(doc) == {"name": "x", "age": 0}
    assert set(doc.keys()) == {"name", "age"}
    assert doc.get("name") == "x"
