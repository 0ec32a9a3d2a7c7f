"""Document behaviour that does not depend on an engine (memory storage for saves)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

import doqu
from doqu import ConfigurationError, Document, Field, Many, ValidationError, get_db


@pytest.fixture
def db() -> Any:
    return get_db("memory://")


class Node(Document):
    structure = {"name": str, "parent": "self", "children": Many("self")}


class Shouter(Document):
    structure = {"word": str}
    set_item_processors = {"word": str.strip}
    get_item_processors = {"word": str.upper}
    outgoing_processors = {"word": lambda w: f"<{w}>"}
    incoming_processors = {"word": lambda w: w.strip("<>")}


class Bag(Document):
    blob = Field(dict, pickled=True)
    when = Field(dt.date, essential=True)


class ByPath(Document):
    structure = {"node": "doqu.testing.conformance.data.TypedPerson"}


class Broken(Document):
    structure = {"ref": "no.such.module.Thing"}


def test_self_references_and_many(db: Any) -> None:
    root = Node(name="root")
    child = Node(name="child", parent=root)
    child.save(db)  # saves root first
    root.children = [child]
    root.save(db)
    loaded = db.get(Node, child.pk)
    assert loaded.parent.name == "root"
    assert [c.name for c in db.get(Node, root.pk).children] == ["child"]
    assert root.node_set.count() == 1  # backward relation through "parent"


def test_a_cycle_of_unsaved_documents_is_refused(db: Any) -> None:
    a, b = Node(name="a"), Node(name="b")
    a.parent, b.parent = b, a
    with pytest.raises(ValidationError, match="cycle"):
        a.save(db)
    assert len(db) == 0


def test_processors(db: Any) -> None:
    doc = Shouter(word="  hi ")
    assert doc._data["word"] == "hi" and doc.word == "HI"
    key = doc.save(db)
    assert db.get(Document, key)["word"] == "<hi>"
    assert db.get(Shouter, key)._data["word"] == "hi"


def test_pickled_and_essential_fields(db: Any) -> None:
    bag = Bag(blob={"set": {1, 2}}, when=dt.date(2020, 1, 1))
    key = bag.save(db)
    assert db.get(Bag, key).blob == {"set": {1, 2}}
    assert Bag.essential_fields == ("when",)


def test_dotted_path_references(db: Any) -> None:
    from doqu.testing.conformance.data import TypedPerson

    key = ByPath(node=TypedPerson(name="n")).save(db)
    assert db.get(ByPath, key).node.name == "n"
    assert isinstance(db.get(ByPath, key).node, TypedPerson)


def test_unresolvable_reference_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no.such.module.Thing"):
        Broken._schema_types()


def test_dangling_reference_raises_key_error(db: Any) -> None:
    db.save(None, {"name": "orphan", "parent": "404"}, primary_key="o")
    with pytest.raises(KeyError, match="404"):
        db.get(Node, "o").parent


def test_labels_and_defaults_of_the_class() -> None:
    class Thing(Document):
        label = "Thing"

    assert Thing.label_plural == "Things"
    assert Node.label == "Node"


def test_attribute_access() -> None:
    doc = Node(name="x")
    assert doc.name == "x" and doc.parent is None
    with pytest.raises(AttributeError):
        doc.nothing_like_this
    del doc.name
    assert doc.name is None
    schemaless = Document(a=1)
    schemaless.b = 2
    assert dict(schemaless) == {"a": 1, "b": 2}
    with pytest.raises(KeyError):
        schemaless["missing"]


def test_incoming_mismatch_is_logged(db: Any, caplog: Any) -> None:
    db.save(None, {"name": 5}, primary_key="k")
    with caplog.at_level(logging.WARNING, logger="doqu.document"):
        doc = db.get(Node, "k")
    assert doc.name == 5
    assert "does not fit" in caplog.text and "name" in caplog.text
    assert not doc.is_valid()


def test_validation_collects_every_field() -> None:
    class Two(Document):
        structure = {"a": int, "b": str}
        validators = {"a": [doqu.validators.required()], "b": [doqu.validators.required()]}

    with pytest.raises(ValidationError) as info:
        Two().validate()
    assert set(info.value.errors) == {"a", "b"}


def test_objects_without_a_storage_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="objects"):
        Node.objects()


def test_unsaved_document_cannot_be_deleted() -> None:
    with pytest.raises(KeyError):
        Node(name="x").delete()
