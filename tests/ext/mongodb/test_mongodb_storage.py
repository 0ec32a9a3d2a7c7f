"""The MongoDB storage: settings, what is stored, keys, foreign records, pushing work down."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest

from doqu import (
    ConfigurationError,
    ConnectionError,
    Document,
    QueryError,
    TransactionError,
    get_db,
)

bson = pytest.importorskip("bson")
ObjectId = bson.objectid.ObjectId
Decimal128 = bson.decimal128.Decimal128


def keys(query: Any) -> list[str]:
    return [doc.pk for doc in query]


# -- settings -------------------------------------------------------------------------------

def test_database_is_required() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db("mongodb://localhost")
    assert "database" in str(info.value)


@pytest.mark.parametrize("name", ["a$b", "system.users", "x\x00"])
def test_invalid_collection_names(name: str) -> None:
    mongomock = pytest.importorskip("mongomock")
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "mongodb", "client": mongomock.MongoClient(), "database": "d",
                "collection": name})
    assert "collection" in str(info.value)


def test_a_ready_client_excludes_connection_settings() -> None:
    mongomock = pytest.importorskip("mongomock")
    with pytest.raises(ConfigurationError) as info:
        get_db("mongodb://elsewhere/app", client=mongomock.MongoClient())
    assert "host" in str(info.value)


def test_transactions_setting() -> None:
    mongomock = pytest.importorskip("mongomock")
    with pytest.raises(TransactionError) as info:
        get_db({"backend": "mongodb", "client": mongomock.MongoClient(), "database": "d",
                "transactions": "true"})
    assert "replica set" in str(info.value)
    with pytest.raises(ConfigurationError):
        get_db({"backend": "mongodb", "client": mongomock.MongoClient(), "database": "d",
                "transactions": "sometimes"})
    db = get_db({"backend": "mongodb", "client": mongomock.MongoClient(), "database": "d"})
    assert db.features.durable_transactions is False  # the undo log, not a server transaction


def test_unknown_client_option_names_the_option() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db("mongodb://localhost/app?colour=red")
    assert "colour" in str(info.value)


def test_unreachable_server_is_a_connection_error_without_the_password() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        get_db("mongodb://ada:s3cret@127.0.0.1:9/app?collection=docs", timeout=0.3)
    message = str(info.value)
    assert "127.0.0.1:9" in message and "app.docs" in message and "mongodb" in message
    assert "s3cret" not in message
    assert time.monotonic() - started < 20  # bounded by the timeout, not a hang


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymongo", None)
    with pytest.raises(ConfigurationError) as info:
        get_db("mongodb://localhost/app")
    assert "pip install 'doqu[mongodb]'" in str(info.value)


def test_the_backend_module_imports_without_the_driver() -> None:
    code = ("import sys; sys.modules['pymongo'] = None; sys.modules['bson'] = None\n"
            "import doqu.ext.mongodb as m; print(m.StorageAdapter.backend_name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mongodb"


# -- what is stored ------------------------------------------------------------------------------

def test_stored_form(storage: Any, collection: Any) -> None:
    storage.save(None, {"a.b": 1, "$x": 2, "_id": 3, "price": Decimal("9.99"),
                        "day": dt.date(2024, 2, 29), "nested": {"k.j": [{"$s": 1}]}},
                 primary_key="k")
    assert collection.find_one({"_id": "k"}) == {
        "_id": "k", "a%2Eb": 1, "%24x": 2, "%5Fid": 3, "price": Decimal128("9.99"),
        "day": "2024-02-29", "nested": {"k%2Ej": [{"%24s": 1}]}}
    assert storage.get(Document, "k").dump() == {
        "a.b": 1, "$x": 2, "_id": 3, "price": Decimal("9.99"), "day": "2024-02-29",
        "nested": {"k.j": [{"$s": 1}]}}


def test_foreign_records_with_object_ids(storage: Any, collection: Any) -> None:
    oid = ObjectId()
    collection.insert_one({"_id": oid, "name": "foreign"})
    assert list(storage) == [str(oid)]
    doc = storage.get(Document, str(oid))
    assert doc["name"] == "foreign"
    doc["name"] = "changed"
    doc.save()
    assert collection.find_one({"_id": oid})["name"] == "changed"
    assert collection.count_documents({}) == 1
    storage.delete(str(oid))
    assert collection.count_documents({}) == 0


def test_foreign_bson_dates_read_as_datetimes(storage: Any, collection: Any) -> None:
    class Event(Document):
        structure = {"on": dt.date}

    collection.insert_one({"_id": "e", "on": dt.datetime(2020, 1, 2), "at": dt.datetime(2020, 1, 2, 3)})
    assert storage.get(Event, "e").on == dt.date(2020, 1, 2)
    assert storage.get(Document, "e")["at"].replace(tzinfo=None) == dt.datetime(2020, 1, 2, 3)


# -- keys ------------------------------------------------------------------------------------------

def test_generated_keys_skip_taken_ones_and_live_in_their_own_collection(
        storage: Any, collection: Any, server: Any) -> None:
    storage.save(None, {"n": 0}, primary_key="1")
    storage.save(None, {"n": 0}, primary_key="3")
    generated = [storage.save(None, {"n": i}) for i in range(3)]
    assert generated == ["2", "4", "5"]
    assert len(storage) == 5
    counters = server[collection.database.name][f"{collection.name}__doqu_counters"]
    assert counters.count_documents({}) == 1
    storage.clear()
    assert storage.save(None, {"n": 1}) == "1"  # clear() may restart keys


def test_storages_over_one_collection_are_the_same_storage(storage: Any, server: Any,
                                                            collection: Any) -> None:
    other = get_db({"backend": "mongodb", "client": server, "database": collection.database.name,
                    "collection": collection.name})
    key = storage.save(None, {"n": 1})
    assert storage.identity == other.identity
    assert storage.get(Document, key) == other.get(Document, key)
    assert other.save(None, {"n": 2}) != key  # the counter is shared


# -- indexes ---------------------------------------------------------------------------------------

def test_ensure_index(storage: Any, collection: Any) -> None:
    class Person(Document):
        indexes = ["name", ("-age", "address__city")]

    assert storage.features.indexes
    assert storage.ensure_index(*Person.indexes) is True
    found = {tuple(info["key"]) for info in collection.index_information().values()}
    assert (("name", 1),) in found
    assert (("age", -1), ("address.city", 1)) in found
    with pytest.raises(QueryError):
        storage.ensure_index("age__gt")


# -- queries pushed down ------------------------------------------------------------------------------

@pytest.fixture
def mixed(storage: Any) -> Any:
    for key, record in {"n": {"x": 1}, "s": {"x": "a"}, "d": {"x": {"k": 1}}, "l": {"x": [0, 9]},
                        "t": {"x": True}, "none": {}}.items():
        storage.save(None, record, primary_key=key)
    return Document.objects(storage)


def test_order_falls_back_to_python_when_a_sort_path_holds_a_list(mixed: Any) -> None:
    query = mixed.order_by("x")
    assert keys(query) == ["none", "n", "s", "d", "l", "t"]  # absent, number, string, dict, list, bool
    assert "order: x (python)" in query.explain()
    assert keys(mixed.order_by("-x")) == ["t", "l", "d", "s", "n", "none"]


def test_order_runs_in_the_engine_for_scalars(mixed: Any) -> None:
    query = mixed.where(x__exists=True).where_not(x__contains_any=[0, 9]).where_not(x__contains="k")
    assert keys(query.where_not(x__equals={"k": 1}).order_by("-x")) == ["t", "s", "n"]
    assert "order: -x (engine)" in query.where_not(x__equals={"k": 1}).order_by("-x").explain()


def test_strings_order_by_code_point(storage: Any) -> None:
    for i, name in enumerate(["é", "a", "B", "Z", "b"]):
        storage.save(None, {"name": name}, primary_key=f"k{i}")
    assert [d["name"] for d in Document.objects(storage).order_by("name")] == ["B", "Z", "a", "b", "é"]


def test_values_leave_out_paths_through_lists(storage: Any) -> None:
    storage.save(None, {"p": [{"q": 1}], "tags": ["b", "a"]}, primary_key="1")
    storage.save(None, {"p": {"q": 2}, "tags": ["b", "a"]}, primary_key="2")
    storage.save(None, {"p": {"q": 2.0}, "tags": []}, primary_key="3")
    query = Document.objects(storage)
    assert query.values("p__q") == [2]
    assert query.values("tags") == [["b", "a"], []]


def test_decimals_compare_and_sort_with_other_numbers(storage: Any) -> None:
    for key, price in {"a": Decimal("9.99"), "b": 10, "c": Decimal("10.5"), "d": 2.5}.items():
        storage.save(None, {"price": price}, primary_key=key)
    query = Document.objects(storage)
    assert keys(query.where(price__gt=Decimal("9.99")).order_by("-price")) == ["c", "b"]
    assert keys(query.where(price=10).order_by("price")) == ["b"]
    assert query.values("price") == [2.5, Decimal("9.99"), 10, Decimal("10.5")]


def test_delete_counts_and_rolls_back_inside_a_transaction(storage: Any) -> None:
    for i in range(5):
        storage.save(None, {"n": i}, primary_key=f"k{i}")
    query = Document.objects(storage)
    with pytest.raises(RuntimeError):
        with storage.transaction():
            assert query.where(n__gte=2).delete() == 3
            assert len(storage) == 2
            raise RuntimeError("undo")
    assert len(storage) == 5
    assert query.where(n__lt=2).delete() == 2
    assert sorted(storage) == ["k2", "k3", "k4"]


def test_explain_shows_the_filter_and_what_python_does(storage: Any) -> None:
    storage.save(None, {"bio": "tea, tea, tea"}, primary_key="e")
    storage.save(None, {"bio": "plays jazz"}, primary_key="b")
    query = Document.objects(storage).where(bio__startswith="tea").where(bio__matches=r"(tea).*\1")
    text = query.explain()
    assert '"$regex": "^tea"' in text
    assert r"python filter: bio matches '(tea).*\\1'" in text
    assert keys(query) == ["e"]
    assert query.count() == 1


def test_elements_never_cross_kinds_or_nesting(storage: Any) -> None:
    for key, tags in {"num": [1], "bool": [True], "nested": [[1]], "text": "1", "flat": 1}.items():
        storage.save(None, {"tags": tags}, primary_key=key)
    query = Document.objects(storage)
    assert keys(query.where(tags__contains=1)) == ["num"]
    assert keys(query.where(tags__contains=True)) == ["bool"]
    assert keys(query.where(tags__contains="1")) == ["text"]
    assert keys(query.where(tags=1)) == ["flat"]
    assert keys(query.where(tags__in=[True])) == []


def test_paths_through_lists_are_absent(storage: Any) -> None:
    storage.save(None, {"n": [{"x": 1}]}, primary_key="list")
    storage.save(None, {"n": {"x": 1}}, primary_key="dict")
    storage.save(None, {"n": "x"}, primary_key="text")
    query = Document.objects(storage)
    assert keys(query.where(n__x=1)) == ["dict"]
    assert sorted(keys(query.where(n__x=None))) == ["list", "text"]
    assert sorted(keys(query.where_not(n__x=1))) == ["list", "text"]


@pytest.fixture
def prices(storage: Any) -> Any:
    for key, price in {"float": 9.99, "dec": Decimal("9.99"), "dec0": Decimal("9.990"),
                       "ten": 10, "above": Decimal("9.990000000000000000001")}.items():
        storage.save(None, {"price": price}, primary_key=key)
    return Document.objects(storage)


def test_a_float_operand_meets_decimals_as_floats(prices: Any) -> None:
    from doqu.ext.mongodb.numbers import FLOATS_MEET_DECIMALS_AS_FLOATS

    found = set(keys(prices.where(price=9.99)))
    if FLOATS_MEET_DECIMALS_AS_FLOATS:  # float(Decimal("9.990000000000000000001")) == 9.99
        assert found == {"float", "dec", "dec0", "above"}
        assert set(keys(prices.where(price__gt=9.99))) == {"ten"}
    else:
        assert found == {"float"}


def test_a_decimal_operand_meets_floats_as_a_float(prices: Any, mongomock_differs: Any) -> None:
    from doqu.ext.mongodb.numbers import FLOATS_MEET_DECIMALS_AS_FLOATS

    mongomock_differs("Decimal128('9.990') never equals Decimal128('9.99')")
    expected = {"dec", "dec0"} | ({"float"} if FLOATS_MEET_DECIMALS_AS_FLOATS else set())
    assert set(keys(prices.where(price=Decimal("9.99")))) == expected
