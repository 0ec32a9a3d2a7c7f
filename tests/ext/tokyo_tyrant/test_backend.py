"""The Tokyo Tyrant storage against the ttserver stand-in (tests/tyrant_server.py).

The stand-in speaks the protocol over a real socket and answers from the
real Tokyo Cabinet library; test_standin.py proves it byte-identical to a
recording of a real ttserver 1.1.41. The conformance suite (engine
``tokyo_tyrant``) covers the shared contract; these tests cover what is
particular to a network server: settings, a server that is down, silent or
restarted, a non-table database, several clients, the undo-log
transactions, indexes and the server's query hints, and the ``.tct`` file
moving between this backend and the Tokyo Cabinet one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from doqu import (
    ConfigurationError,
    ConnectionError,
    Document,
    QueryError,
    StorageError,
    ValidationError,
    get_db,
)
from doqu.ext.tokyo_cabinet import _binding
from doqu.ext.tokyo_cabinet import codec
from doqu.ext.tokyo_tyrant import protocol as P
from doqu.ext.tokyo_tyrant import storage as tyrant_storage
from doqu.testing.engines.tokyo_tyrant import standin_class
from doqu.testing.registry import skip_or_fail

# generous: only there so that a broken client fails a test instead of hanging it
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True, scope="module")
def _library() -> None:
    try:
        _binding.load_library()
    except _binding.LibraryMissing as exc:
        skip_or_fail("tokyo_tyrant", f"the ttserver stand-in needs the Tokyo Cabinet library: {exc}")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``start(name='db.tct', port=0, **options)``: a running stand-in, stopped after the test."""
    started: list[Any] = []

    def factory(name: str = "db.tct", port: int = 0, **options: Any) -> Any:
        server = standin_class()(tmp_path / name, port, **options).start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server(start: Callable[..., Any]) -> Any:
    return start()


@pytest.fixture
def connect() -> Iterator[Callable[..., Any]]:
    """``connect(server, **settings)``: a storage on the stand-in, disconnected after the test."""
    opened: list[Any] = []

    def factory(server: Any, **settings: Any) -> Any:
        db = get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": server.port,
                     "timeout": 5, **settings})
        opened.append(db)
        return db

    yield factory
    for db in reversed(opened):
        db.disconnect()


@pytest.fixture
def db(server: Any, connect: Callable[..., Any]) -> Any:
    return connect(server)


def raw(server: Any) -> P.TyrantConnection:
    """A protocol connection, to look at what is really on the server."""
    return P.TyrantConnection("127.0.0.1", server.port, timeout=5)


class Person(Document):
    structure = {"name": str, "age": int, "city": str}


def people(db: Any) -> None:
    for key, (name, age, city) in {"a": ("Alice", 31, "Oslo"), "b": ("bob", 17, "Rome"),
                                   "c": ("Carol", 45, "Oslo"), "d": ("Dave", 22, "Lima")}.items():
        db.save(Person, {"name": name, "age": age, "city": city}, primary_key=key)


# -- settings ------------------------------------------------------------------------

def test_settings_dict_and_url(server: Any) -> None:
    by_url = get_db(f"tokyo-tyrant://127.0.0.1:{server.port}?timeout=2.5&pool_size=2")
    try:
        assert by_url.settings["timeout"] == 2.5 and by_url.settings["pool_size"] == 2
        assert f"127.0.0.1:{server.port}" in by_url.describe_location()
        assert "Tokyo Tyrant" in by_url.describe_location()
        by_url.save(None, {"x": 1}, primary_key="k")
    finally:
        by_url.disconnect()
    by_dict = get_db({"backend": "doqu.ext.tokyo_tyrant", "host": "127.0.0.1",
                      "port": server.port, "timeout": 5})
    try:
        assert by_dict.get(Document, "k")["x"] == 1
        assert by_dict.stat()["type"] == "table"
    finally:
        by_dict.disconnect()


@pytest.mark.parametrize("settings,named", [
    ({"port": "not-a-port"}, "port"),
    ({"port": 0}, "port"),
    ({"timeout": 0}, "timeout"),
    ({"pool_size": 0}, "pool size"),
    ({"path": "x.tct"}, "path"),
])
def test_bad_settings_are_configuration_errors(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", **settings})
    assert named in str(info.value)


# -- a server that is down, silent, restarted or of the wrong kind --------------------

def test_server_down_is_a_connection_error_naming_the_address(start: Callable[..., Any]) -> None:
    server = start()
    port = server.port
    server.stop()    # nothing listens there any more
    with pytest.raises(ConnectionError) as info:
        get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": port, "timeout": 30})
    assert f"127.0.0.1:{port}" in str(info.value) and "Tokyo Tyrant" in str(info.value)


def test_a_silent_server_times_out_instead_of_hanging(start: Callable[..., Any]) -> None:
    mute = start("mute.tct", mute=True)    # accepts and reads, never answers
    with pytest.raises(ConnectionError) as info:
        get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": mute.port,
                "timeout": 0.3})
    assert f"127.0.0.1:{mute.port}" in str(info.value) and "0.3" in str(info.value)


def test_restarted_server_is_reconnected_to(start: Callable[..., Any],
                                            connect: Callable[..., Any]) -> None:
    server = start()
    port = server.port
    db = connect(server, pool_size=2)
    people(db)
    server.stop()
    with pytest.raises(ConnectionError) as info:
        db.get(Person, "a")
    assert f"127.0.0.1:{port}" in str(info.value)
    with pytest.raises(ConnectionError):
        Person.objects(db).where(age__gt=20).count()
    start(port=port)     # same file, same port
    # no reconnect() needed: the pool drops the dead sockets and opens new ones
    assert db.get(Person, "a").name == "Alice"
    assert sorted(Person.objects(db).where(age__gt=20).keys()) == ["a", "c", "d"]
    db.save(Person, {"name": "Eve", "age": 50}, primary_key="e")
    db.reconnect()
    assert db.get(Person, "e").age == 50 and len(db) == 5


def test_a_connection_cut_mid_answer_is_not_a_hang(start: Callable[..., Any],
                                                   connect: Callable[..., Any]) -> None:
    server = start()
    db = connect(server)
    people(db)
    query = iter(Person.objects(db).order_by("age"))
    assert next(query).pk == "b"
    server.stop()
    with pytest.raises(ConnectionError):
        list(Person.objects(db))


def test_a_non_table_database_is_refused(start: Callable[..., Any]) -> None:
    server = start("hash.tct", db_type="hash")
    with pytest.raises(ConfigurationError) as info:
        get_db({"backend": "tokyo_tyrant", "host": "127.0.0.1", "port": server.port})
    message = str(info.value)
    assert "'hash'" in message and "table database" in message and ".tct" in message


def test_using_a_disconnected_storage_is_a_clear_error(db: Any) -> None:
    db.disconnect()
    with pytest.raises(StorageError, match="not connected"):
        db.save(None, {"x": 1})


# -- the same file as the Tokyo Cabinet backend ----------------------------------------------

def test_the_served_file_is_read_by_the_tokyo_cabinet_backend(start: Callable[..., Any],
                                                               connect: Callable[..., Any],
                                                               tmp_path: Path) -> None:
    server = start("shared.tct")
    db = connect(server)
    people(db)
    db.save(None, {"tags": ["x", "y"], "address": {"city": "Oslo"}, "n": 1.5, "s": ""},
            primary_key="z")
    db.ensure_index("age", "bio:search")
    db.save(None, {"bio": "Likes tea"}, primary_key="t")
    db.disconnect()
    server.stop()

    cabinet = get_db({"backend": "tokyo_cabinet", "path": str(tmp_path / "shared.tct")})
    try:
        assert len(cabinet) == 6
        assert cabinet.get(Document, "z").dump() == {
            "tags": ["x", "y"], "address": {"city": "Oslo"}, "n": 1.5, "s": ""}
        assert sorted(Person.objects(cabinet).where(age__gte=22).keys()) == ["a", "c", "d"]
        assert Document.objects(cabinet).where(address__city="Oslo").keys() == ["z"]
        search = Document.objects(cabinet).where(bio__search="TEA")
        assert search.keys() == ["t"] and "python filter: (none)" in search.explain()
        assert cabinet.indexes["age"] == "decimal"
        cabinet.save(Person, {"name": "Frank", "age": 60, "city": "Paris"}, primary_key="f")
    finally:
        cabinet.disconnect()

    # and back: the Cabinet backend's write is served again
    db = connect(start("shared.tct"))
    assert db.get(Person, "f").city == "Paris"
    assert sorted(Person.objects(db).where(age__gt=40).keys()) == ["c", "f"]


def test_records_written_by_other_programs_are_read_and_queried(server: Any, db: Any) -> None:
    with raw(server) as conn:   # plain string columns, no doqu catalogue
        conn.tbl_put(b"p1", {b"name": b"Ann", b"age": b"7"})
        conn.tbl_put(b"p2", {b"name": b"Ben", b"age": b"12"})
    assert db.get(Document, "p1").dump() == {"name": "Ann", "age": "7"}
    query = Document.objects(db)
    assert query.where(age__gt=5).count() == 0          # strings are not numbers
    assert query.where(age="12").keys() == ["p2"]
    assert query.order_by("age").keys() == ["p2", "p1"]   # as strings
    assert len(db) == 2
    db.save(None, {"name": "Cid", "age": 9}, primary_key="p3")
    assert query.where(age__gt=5).keys() == ["p3"]


# -- keys and the catalogue ------------------------------------------------------------------

def test_generated_keys_come_from_genuid_and_skip_used_numbers(server: Any, db: Any) -> None:
    db.save(None, {"x": "taken"}, primary_key="2")
    keys = [db.save(None, {"x": i}) for i in range(3)]
    assert keys == ["1", "3", "4"]
    assert db.get(Document, "2")["x"] == "taken"
    db.delete("4")
    assert db.save(None, {"x": "new"}) == "5"


def test_the_catalogue_record_is_invisible_and_its_key_reserved(server: Any, db: Any) -> None:
    people(db)
    with raw(server) as conn:
        assert conn.rnum() == 5 and conn.tbl_get(codec.CATALOGUE_KEY) is not None
    assert len(db) == 4 and sorted(db) == ["a", "b", "c", "d"]
    assert len(list(Document.objects(db).where_not(name="x"))) == 4
    with pytest.raises(ValidationError, match="reserved"):
        db.save(None, {"x": 1}, primary_key=codec.CATALOGUE_KEY.decode())


def test_a_second_client_sees_new_kinds_of_value(server: Any, connect: Callable[..., Any]) -> None:
    """Native conditions are chosen by the catalogue; another client may grow it at any time."""
    first, second = connect(server), connect(server)
    first.save(None, {"tags": "jazz and tea"}, primary_key="s")
    query = Document.objects(second).where(tags__contains="tea")
    assert query.keys() == ["s"]
    assert "python filter: (none)" in query.explain()     # substring: TC's STRINC
    first.save(None, {"tags": ["tea", "books"]}, primary_key="l")
    assert sorted(query.keys()) == ["l", "s"]               # a list element now: Python
    assert "python filter: tags contains 'tea'" in query.explain()
    second.save(None, {"age": 3.25}, primary_key="f")
    first.save(None, {"age": 7}, primary_key="i")
    with raw(server) as conn:
        stored = codec.Catalogue.from_columns(conn.tbl_get(codec.CATALOGUE_KEY) or {})
    assert {"s", "l"} <= stored.kinds(b"tags") and {"f", "i"} <= stored.kinds(b"age")


def test_a_writer_picks_up_a_search_index_enabled_by_another_client(
        server: Any, connect: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tyrant_storage, "CATALOGUE_MAX_AGE", 0.0)   # instead of waiting
    writer, admin = connect(server), connect(server)
    writer.save(None, {"bio": "plays jazz"}, primary_key="before")
    admin.ensure_index("bio:search")
    writer.save(None, {"bio": "Jazz and tea"}, primary_key="after")   # writer never queried
    query = Document.objects(admin).where(bio__search="JAZZ")
    assert "python filter: (none)" in query.explain()                 # the word column
    assert sorted(query.keys()) == ["after", "before"]


def test_clear_restarts_keys_and_keeps_search_settings(db: Any) -> None:
    db.ensure_index("bio:search")
    db.save(None, {"bio": "Likes tea"})
    db.clear()
    assert len(db) == 0 and db.save(None, {"bio": "Drinks TEA daily"}) == "1"
    query = Document.objects(db).where(bio__search="tea")
    assert query.keys() == ["1"] and "python filter: (none)" in query.explain()


def test_nul_and_separator_bytes_in_keys_and_values_survive_the_wire(db: Any) -> None:
    """The protocol joins columns with NUL: keys travel as their own elements, values escaped."""
    odd = {"a\0b": {"s": "x\0y", "t": "\x01", "e": ""}, "\x01k": {"s": "\0"}, "k": {"s": "z"}}
    for key, record in odd.items():
        db.save(None, record, primary_key=key)
    assert sorted(db) == sorted(odd)
    assert [d.dump() for d in db.get_many(Document, list(odd))] == list(odd.values())
    query = Document.objects(db)
    assert query.where(s="x\0y").keys() == ["a\0b"] and query.where(e="").keys() == ["a\0b"]
    assert sorted(query.where(s__exists=True).keys()) == sorted(odd)
    assert query.where(s="\0").delete() == 1 and sorted(db) == ["a\0b", "k"]


# -- transactions: an undo log in this process ------------------------------------------------

def test_transactions_are_an_undo_log(db: Any) -> None:
    assert db.features.durable_transactions is False
    db.save(None, {"n": 0}, primary_key="keep")
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.save_many([Document(n=i) for i in range(300)])    # more than one batch
            db.save(None, {"n": 99}, primary_key="keep")
            Document.objects(db).where(n__lt=5).delete()
            raise RuntimeError("boom")
    assert sorted(db) == ["keep"] and db.get(Document, "keep")["n"] == 0


def test_a_failed_save_writes_nothing(db: Any) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        db.save(None, {"ok": 1, "bad\0name": 2})
    assert len(db) == 0
    with pytest.raises(ValidationError):
        db.save_many([Document(a=1), Document(**{"x\0y": 1})])
    assert len(db) == 0


def test_bulk_writes_and_reads_keep_order(db: Any) -> None:
    keys = db.save_many([Document(i=i) for i in range(700)])
    assert len(set(keys)) == 700 and len(db) == 700
    shuffled = keys[::-3] + keys[1::3]
    assert [d["i"] for d in db.get_many(Document, shuffled)] == [int(k) - 1 for k in shuffled]
    assert Document.objects(db).where(i__gte=100).delete() == 600
    assert len(db) == 100


def test_threads_share_one_storage(db: Any) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(25):
                key = db.save(None, {"worker": worker, "i": i})
                assert db.get(Document, key)["i"] == i
                assert Document.objects(db).where(worker=worker).count() == i + 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(db) == 150 and len(set(db)) == 150


# -- queries, indexes and the server's hints --------------------------------------------------

def test_explain_shows_the_searches_python_filters_and_server_hints(db: Any) -> None:
    people(db)
    query = Person.objects(db).where(age__gte=18, name__gt="B").order_by("-age")[:2]
    text = query.explain()
    assert "'age' NUMGE '18'" in text and "'\\x01t:age' STROREQ 'i,f,d'" in text
    assert "python filter: name gt 'B'" in text
    assert "server hint:" in text and "order: -age (engine)" in text
    assert [p.pk for p in query] == ["c", "d"]
    assert "Tokyo Tyrant" in text.splitlines()[0]
    native = Person.objects(db).where(city="Oslo").order_by("-age")[:1]
    assert "slice: [0:1] (engine)" in native.explain()
    assert [p.pk for p in native] == ["c"]


def test_indexes_are_created_and_used(server: Any, db: Any) -> None:
    people(db)
    assert db.ensure_index("age", "city:lexical") is True
    text = Person.objects(db).where(age__gt=20).explain()
    assert "using an index" in text and '"age"' in text
    assert sorted(Person.objects(db).where(age__gt=20).keys()) == ["a", "c", "d"]
    with raw(server) as conn:      # they exist: creating them again "keeps" and fails
        assert conn.setindex(b"age", P.ITDECIMAL | P.ITKEEP) is False
        assert conn.setindex(b"city", P.ITLEXICAL | P.ITKEEP) is False
    db.drop_index("city")
    with raw(server) as conn:
        assert conn.setindex(b"city", P.ITLEXICAL | P.ITKEEP) is True
    with pytest.raises(QueryError):
        db.ensure_index("age:bogus")


def test_declared_indexes_are_created_on_first_use(server: Any, db: Any) -> None:
    class Indexed(Document):
        structure = {"score": int}
        indexes = ["score"]

    Indexed(score=3).save(db)
    with raw(server) as conn:
        assert conn.setindex(b"score", P.ITDECIMAL | P.ITKEEP) is False   # exists
    assert "using an index" in Indexed.objects(db).where(score__gt=1).explain()


def test_search_index_backfills_and_stays_exact(db: Any) -> None:
    db.save(None, {"bio": "Likes tea and jazz"}, primary_key="a")
    db.save(None, {"bio": "TEAPOT"}, primary_key="b")
    db.ensure_index("bio:search")
    db.save(None, {"bio": "tea, tea"}, primary_key="c")
    query = Document.objects(db).where(bio__search="Tea")
    assert sorted(query.keys()) == ["a", "c"]
    assert "python filter: (none)" in query.explain()


def test_indexing_a_column_with_empty_values_is_refused(server: Any, db: Any,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Tokyo Cabinet aborts the server process when it indexes an empty value."""
    with raw(server) as conn:
        conn.tbl_put(b"e", {b"name": b""})
    with pytest.raises(StorageError, match="empty"):
        db.ensure_index("name")

    class Named(Document):
        indexes = ["name"]

    with caplog.at_level("WARNING", logger="doqu.tokyo_tyrant"):
        assert Named.objects(db).where(name="").count() == 1     # still answers
    assert "Named.indexes" in caplog.text and "empty" in caplog.text
    assert db.stat()["type"] == "table"                          # the server is alive


def test_delete_runs_on_the_server(db: Any) -> None:
    people(db)
    for i in range(100):
        db.save(None, {"age": i})
    query = Person.objects(db).where(age__lt=30)
    assert query.count() == 32                        # bob, Dave and 0..29
    assert "python filter: (none)" in query.explain()
    assert query.delete() == 32
    assert len(db) == 72 and query.count() == 0
    union = Person.objects(db).where(name="Alice") | Person.objects(db).where(age__gt=98)
    assert union.delete() == 2 and len(db) == 70
    assert Person.objects(db).where(name__matches="^[AC]").delete() == 1
    assert Person.objects(db).where(name__exists=True).count() == 0 and len(db) == 69


def test_a_lost_answer_is_retried_only_where_repeating_is_harmless(server: Any, db: Any) -> None:
    people(db)
    server.hang_up()             # the server reads, answers nothing and hangs up
    assert db.get(Person, "a").name == "Alice"           # a read: retried on a new socket
    server.hang_up()
    db.save(Person, {"name": "Bea", "age": 5}, primary_key="b")    # a put: repeated
    assert db.get(Person, "b").name == "Bea"
    server.hang_up()
    with pytest.raises(ConnectionError, match="closed the connection"):
        db._remove("c")          # not repeated: a second "out" would report a missing key
    assert "c" not in db         # the server did carry it out
    server.hang_up()
    with pytest.raises(ConnectionError, match="closed the connection"):
        db.save(None, {"x": 1})  # genuid is not repeated either
    assert db.save(None, {"x": 2}) == "2" and len(db) == 4
