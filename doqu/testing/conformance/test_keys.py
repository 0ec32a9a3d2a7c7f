"""Primary keys, upsert, get/get_many, and the storage as a container of keys."""

from __future__ import annotations

from typing import Any

import pytest

from doqu import Document, DocumentNotFound, ValidationError


class Note(Document):
    structure = {"text": str, "n": int}


def test_generated_keys_are_strings_and_never_repeat(db: Any) -> None:
    seen = set()
    for i in range(5):
        key = Note(text="x", n=i).save(db)
        assert isinstance(key, str) and key
        assert key not in seen
        seen.add(key)
    for key in list(seen)[:3]:
        db.delete(key)
    for i in range(5):
        key = Note(text="y", n=i).save(db)
        assert key not in seen
        seen.add(key)


def test_save_with_existing_key_replaces_the_record(db: Any) -> None:
    db.save(None, {"text": "one", "extra": 1}, primary_key="k")
    db.save(None, {"text": "two"}, primary_key="k")
    doc = db.get(Document, "k")
    assert doc["text"] == "two"
    assert "extra" not in doc
    assert len(db) == 1


def test_document_save_twice_updates_in_place(db: Any) -> None:
    note = Note(text="a", n=1)
    key = note.save(db)
    note.n = 2
    assert note.save() == key
    assert db.get(Note, key).n == 2
    assert len(db) == 1


def test_get_of_a_missing_key_raises_key_error(db: Any) -> None:
    with pytest.raises(KeyError):
        db.get(Note, "missing")
    with pytest.raises(DocumentNotFound):
        Note.object(db, "missing")


def test_get_many_keeps_the_order_of_the_keys(db: Any) -> None:
    for key in ["x", "y", "z"]:
        db.save(None, {"text": key}, primary_key=key)
    found = db.get_many(Note, ["z", "x", "y"])
    assert [d.text for d in found] == ["z", "x", "y"]
    assert [d.pk for d in found] == ["z", "x", "y"]


def test_get_many_with_a_missing_key_raises(db: Any) -> None:
    db.save(None, {"text": "x"}, primary_key="x")
    with pytest.raises(KeyError):
        db.get_many(Note, ["x", "nope"])


def test_storage_contains_len_iter(db: Any) -> None:
    for key in ["k1", "k2", "k3"]:
        db.save(None, {"n": 1}, primary_key=key)
    assert "k2" in db and "k9" not in db
    assert len(db) == 3
    assert sorted(db) == ["k1", "k2", "k3"]
    db.delete("k2")
    assert "k2" not in db and len(db) == 2


def test_delete_of_a_missing_key_raises_key_error(db: Any) -> None:
    with pytest.raises(KeyError):
        db.delete("missing")


def test_keys_must_be_non_empty_strings(db: Any) -> None:
    for bad in [1, "", None, b"k"]:
        if bad is None:
            continue
        with pytest.raises(ValidationError):
            db.save(None, {"n": 1}, primary_key=bad)
    assert len(db) == 0


def test_clear(db: Any) -> None:
    for i in range(3):
        Note(text=str(i)).save(db)
    db.clear()
    assert len(db) == 0
    assert Note.objects(db).count() == 0
    assert Note(text="after").save(db)


def test_get_or_create(db: Any) -> None:
    first = db.get_or_create(Note, text="hello")
    second = db.get_or_create(Note, text="hello")
    assert first.pk is not None and first == second
    assert len(db) == 1


def test_keys_with_unusual_characters(db: Any) -> None:
    for key in ["a b", "ключ", "x/y", "it's", 'q"q', "50%", "a_b", "$1"]:
        db.save(None, {"k": key}, primary_key=key)
        assert db.get(Document, key)["k"] == key
    assert len(db) == 8
