"""The Tokyo Cabinet storage on the real library, and its files with Debian's ``tctmgr``.

The conformance suite (doqu/testing/conformance, engine ``tokyo_cabinet``)
covers the shared contract; these tests cover what is particular to this
backend: open modes and locking, generated keys, TC transactions (also
across a crash), indexes and TC's own query plans, the catalogue, and files
shared with other Tokyo Cabinet programs.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable

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
from doqu.ext.tokyo_cabinet import _binding as tc
from doqu.ext.tokyo_cabinet import codec

REPO_ROOT = Path(__file__).resolve().parents[3]


class Person(Document):
    structure = {"name": str, "age": int, "city": str}


def people(db: Any) -> None:
    for key, (name, age, city) in {"a": ("Alice", 31, "Oslo"), "b": ("bob", 17, "Rome"),
                                   "c": ("Carol", 45, "Oslo"), "d": ("Dave", 22, "Lima")}.items():
        db.save(Person, {"name": name, "age": age, "city": city}, primary_key=key)


def _in_thread(func: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Run ``func`` so that a call that hangs fails the test instead."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the call blocked instead of failing fast"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _python(code: str, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


# -- settings ------------------------------------------------------------------------

def test_settings_dict_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = get_db({"backend": "doqu.ext.tokyo_cabinet", "path": str(tmp_path / "a.tct")})
    db.save(None, {"x": 1}, primary_key="k")
    db.disconnect()
    monkeypatch.chdir(tmp_path)
    again = get_db("tokyo-cabinet:///a.tct")
    assert again.get(Document, "k")["x"] == 1
    assert "a.tct" in again.describe_location()
    again.disconnect()
    reader = get_db("tokyo-cabinet:///a.tct?readonly=yes&nolock=false")
    assert reader.settings["readonly"] is True and reader.settings["nolock"] is False
    assert "read-only" in reader.describe_location()
    reader.disconnect()
    with pytest.raises(ConfigurationError, match="colour"):
        get_db({"backend": "tokyo_cabinet", "path": "x.tct", "colour": "red"})
    with pytest.raises(ConfigurationError, match="path"):
        get_db({"backend": "tokyo_cabinet"})
    with pytest.raises(ConfigurationError, match="readonly"):
        get_db("tokyo-cabinet:///a.tct?readonly=perhaps")


def test_missing_library_is_a_configuration_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOQU_TOKYO_CABINET_LIB", str(tmp_path / "no" / "libtokyocabinet.so.9"))
    tc.load_library.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as info:
            get_db({"backend": "tokyo_cabinet", "path": str(tmp_path / "x.tct")})
        assert "apt-get install libtokyocabinet9" in str(info.value)
        from doqu.testing.engines.tokyo_cabinet import ENGINES

        assert "libtokyocabinet9" in (ENGINES[0].unavailable() or "")
    finally:
        monkeypatch.undo()
        tc.load_library.cache_clear()
    assert not os.path.exists(tmp_path / "x.tct")


def test_readonly(open_tc: Any, tmp_path: Path) -> None:
    with pytest.raises(ConnectionError) as info:
        open_tc("missing.tct", readonly=True)
    assert "missing.tct" in str(info.value) and "does not exist" in str(info.value)
    with pytest.raises(ConnectionError, match="does not exist"):
        open_tc("missing.tct", create=False)
    db = open_tc("ro.tct")
    people(db)
    db.disconnect()
    reader = open_tc("ro.tct", readonly=True)
    assert reader.get(Person, "a").name == "Alice"
    assert Person.objects(reader).where(age__gt=20).count() == 3
    with pytest.raises(StorageError, match="read-only"):
        reader.save(None, {"x": 1})
    with pytest.raises(StorageError, match="read-only"):
        reader.delete("a")
    with pytest.raises(StorageError, match="read-only"):
        reader.ensure_index("name")
    with reader.transaction():       # reads in a block are fine
        assert len(reader) == 4
    assert len(reader) == 4


_HOLDER = """
    import sys
    from doqu import get_db
    db = get_db({"backend": "tokyo_cabinet", "path": sys.argv[1]})
    db.save(None, {"by": "holder"}, primary_key="held")
    print("ready", flush=True)
    sys.stdin.readline()
    db.disconnect()
    print("closed", flush=True)
"""


def test_a_locked_file_fails_fast_with_a_clear_error(open_tc: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "locked.tct")
    holder = _python(_HOLDER, path, stdin=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        line = holder.stdout.readline()
        assert line.strip() == b"ready", holder.stderr.read() if holder.stderr else line
        for settings in ({}, {"readonly": True}):
            with pytest.raises(ConnectionError) as info:
                _in_thread(lambda settings=settings: open_tc(path, **settings))
            assert "locked by another process" in str(info.value)
            assert path in str(info.value)
        sneaky = _in_thread(lambda: open_tc(path, readonly=True, nolock=True))
        sneaky.disconnect()
        holder.stdin.write(b"\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == b"closed"
        db = _in_thread(lambda: open_tc(path))
        assert db.get(Document, "held")["by"] == "holder"
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate(timeout=30)


def test_one_storage_per_file_per_process(open_tc: Any) -> None:
    open_tc("one.tct")
    with pytest.raises(ConnectionError) as info:
        _in_thread(lambda: open_tc("one.tct"))
    assert "already has the file open" in str(info.value)


def test_not_a_table_database(open_tc: Any, tmp_path: Path) -> None:
    (tmp_path / "junk.tct").write_bytes(b"not a database" * 100)
    with pytest.raises(ConnectionError, match="junk.tct"):
        open_tc("junk.tct")


# -- keys -------------------------------------------------------------------------------

def test_generated_keys_come_from_tctdbgenuid_and_never_collide(open_tc: Any) -> None:
    db = open_tc()
    db.save(None, {"n": 0}, primary_key="2")          # a user key that looks generated
    keys = [db.save(None, {"n": i}) for i in range(3)]
    assert keys == ["1", "3", "4"]
    db.delete("4")
    assert db.save(None, {"n": 9}) == "5"
    db.reconnect()
    assert db.save(None, {"n": 10}) == "6"            # the counter lives in the file
    db.clear()
    assert len(db) == 0 and db.save(None, {"n": 11}) == "1"   # clear() restarts it


def test_the_catalogue_record_is_invisible_and_its_key_reserved(open_tc: Any) -> None:
    db = open_tc()
    people(db)
    assert db.handle.rnum() == 5                      # four records and the catalogue
    assert len(db) == 4 and sorted(db) == ["a", "b", "c", "d"]
    assert Person.objects(db).count() == 4
    assert Person.objects(db).where_not(city="Oslo").count() == 2
    assert codec.decode_key(codec.CATALOGUE_KEY) not in db
    with pytest.raises(ValidationError, match="reserved"):
        db.save(None, {"x": 1}, primary_key=codec.decode_key(codec.CATALOGUE_KEY))
    assert Person.objects(db).delete() == 4
    assert db.handle.rnum() == 1 and len(db) == 0


def test_unusual_keys_and_field_names(open_tc: Any) -> None:
    db = open_tc()
    record = {"\x01t:x": 1, "\x01\x01y": "z", "a.b": 2, "sp ace": {"k": [1]}, "ключ": "ü"}
    for key in ["ключ", "a\x00b", "\ud800", "x" * 1000]:
        db.save(None, record, primary_key=key)
        assert db.get(Document, key).dump() == record
    assert sorted(db) == sorted(["ключ", "a\x00b", "\ud800", "x" * 1000])


# -- transactions ---------------------------------------------------------------------

def test_transactions_are_tokyo_cabinets(open_tc: Any) -> None:
    db = open_tc()
    with db.transaction():
        db.save(None, {"n": 1}, primary_key="a")
        with pytest.raises(tc.TokyoCabinetError):
            db.handle.setindex(b"n", tc.ITLEXICAL)    # TC refuses this inside its transaction
        with pytest.raises(StorageError, match="inside a transaction"):
            db.ensure_index("n")
    assert db.ensure_index("n") is True


def test_nested_transactions_and_deletes_inside_them(open_tc: Any) -> None:
    db = open_tc()
    people(db)
    with db.transaction():
        db.save(None, {"n": 1}, primary_key="outer")
        with pytest.raises(RuntimeError):
            with db.transaction():
                assert Person.objects(db).where(city="Oslo").delete() == 2
                db.save(None, {"n": 2}, primary_key="inner")
                raise RuntimeError("inner fails")
        assert sorted(db) == ["a", "b", "c", "d", "outer"]
        assert Person.objects(db).where(city="Rome").delete() == 1
    assert sorted(db) == ["a", "c", "d", "outer"]


_CRASHER = """
    import os, sys
    from doqu import get_db
    db = get_db({"backend": "tokyo_cabinet", "path": sys.argv[1]})
    db.save(None, {"n": 0}, primary_key="before")
    with db.transaction():
        db.save(None, {"n": 1, "new_kind": 1.5}, primary_key="lost")
        db.delete("before")
        os._exit(0)     # the process dies in the middle of the transaction
"""


def test_a_transaction_cut_by_a_crash_leaves_nothing(open_tc: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "crash.tct")
    child = _python(_CRASHER, path)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    db = open_tc(path)
    assert sorted(db) == ["before"]
    assert db.get(Document, "before")["n"] == 0
    assert "new_kind" not in {codec.decode_text(c) for c in db.catalogue.columns}


def test_an_aborted_transaction_forgets_its_catalogue_growth(open_tc: Any) -> None:
    db = open_tc()
    db.save(None, {"x": 1}, primary_key="k")
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.save(None, {"x": "now a string"}, primary_key="j")
            assert "s" in db.catalogue.kinds(b"x")
            raise RuntimeError
    assert db.catalogue.kinds(b"x") == {"i"}
    assert Person.objects(db).order_by("x").explain().endswith("x (engine)")


def test_save_many_is_one_transaction(open_tc: Any) -> None:
    db = open_tc()
    db.save(None, {"n": 0}, primary_key="keep")
    docs = [Document(n=i) for i in range(50)]
    docs[30]._data["n"] = {1}                         # refused when encoding
    with pytest.raises(TypeError):
        db.save_many(docs)
    assert sorted(db) == ["keep"]
    docs[30]._data["n"] = 30
    with pytest.raises(RuntimeError):
        with db.transaction():                        # an outer block that fails later
            db.save_many(docs)
            assert len(db) == 51
            raise RuntimeError
    assert sorted(db) == ["keep"]
    assert len(db.save_many(docs)) == 50 and len(db) == 51


def test_threads_share_one_storage(open_tc: Any) -> None:
    db = open_tc()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                db.save(Person, {"name": f"t{n}", "age": i})
                with db.transaction():
                    db.save(Person, {"name": f"t{n}", "age": -i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(db) == 320
    assert Person.objects(db).where(name="t2").count() == 80


# -- indexes and TC's plans -------------------------------------------------------------

def hint(query: Any) -> str:
    return query.explain().split("TC hint:", 1)[1]


def test_indexes_are_created_and_used(open_tc: Any, tmp_path: Path) -> None:
    db = open_tc()
    people(db)
    assert db.ensure_index("age", "name:lexical", ("city", "address__zip")) is True
    assert db.indexes == {"age": "decimal", "name": "lexical", "city": "lexical",
                          "address__zip": "lexical"}
    assert os.path.exists(f"{tmp_path / 'data.tct'}.idx.age.dec")
    q = Person.objects(db)
    assert 'using an index: "age" asc (NUMGT/NUMGE)' in hint(q.where(age__gt=20))
    assert 'using an index: "name" asc (STREQ)' in hint(q.where(name="bob"))
    assert 'using an index: "city" skip (STROREQ)' in hint(q.where(city__in=["Oslo", "Lima"]))
    assert "scanning the whole table" in hint(q.where(bio="x"))
    assert [p.pk for p in q.where(age__gt=20).order_by("age")] == ["d", "a", "c"]
    with pytest.raises(QueryError, match="unknown index type"):
        db.ensure_index("name:fancy")
    with pytest.raises(QueryError):
        db.ensure_index("name__startswith")
    db.ensure_index("name:qgram")                       # raw TC queries may use it
    assert db.indexes["name"] == "qgram"


def test_declared_indexes_are_created_on_first_use(open_tc: Any) -> None:
    class Indexed(Document):
        structure = {"title": str, "year": int, "body": str}
        indexes = ["title", "year", "body:search"]

    db = open_tc()
    Indexed(title="Dune", year=1965, body="Spice must flow").save(db)   # inside a transaction
    assert db.indexes == {"title": "lexical", "year": "decimal", "body": "search"}
    query = Indexed.objects(db).where(body__search="SPICE flow")
    assert [d.title for d in query] == ["Dune"]
    assert 'using an index: "\x01w:body" inverted (STRAND)' in hint(query)
    assert "python filter: (none)" in query.explain()


def test_search_index_backfills_and_stays_exact(open_tc: Any) -> None:
    db = open_tc()
    texts = {"a": "Likes tea and jazz", "b": "TEA, tea", "c": "teapot", "d": "Straße",
             "e": 5, "f": "", "g": "tea\x00time"}
    for key, text in texts.items():
        db.save(None, {"bio": text}, primary_key=key)
    q = Document.objects(db)
    assert "bio search 'tea'" in q.where(bio__search="tea").explain().split("python filter:")[1]
    expected = {w: sorted(q.where(bio__search=w).keys()) for w in
                ["tea", "TEA jazz", "STRASSE", "", "pot", "time"]}
    db.ensure_index("bio:search")
    for words, keys in expected.items():
        query = q.where(bio__search=words)
        assert "python filter: (none)" in query.explain(), words
        assert sorted(query.keys()) == keys, words
    db.save(None, {"bio": "more tea"}, primary_key="h")
    assert "h" in q.where(bio__search="tea").keys()
    db.clear()
    db.save(None, {"bio": "tea again"}, primary_key="i")
    assert q.where(bio__search="tea").keys() == ["i"]     # the setting survives clear()
    db.reconnect()
    assert "python filter: (none)" in q.where(bio__search="x").explain()


def test_indexing_values_tc_cannot_index_is_a_clear_error(open_tc: Any, tmp_path: Path,
                                                          tctmgr: Any,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "empty.tct")
    tctmgr("create", path)
    tctmgr("put", path, "k", "name", "")
    db = open_tc(path)
    with pytest.raises(StorageError, match="empty"):
        db.ensure_index("name")

    class Named(Document):
        indexes = ["name"]

    with caplog.at_level("WARNING", logger="doqu.tokyo_cabinet"):
        assert Named.objects(db).where(name="").count() == 1     # still answers, unindexed
    assert "Named.indexes" in caplog.text and "empty" in caplog.text
    assert db.indexes == {}


# -- explain and delete -----------------------------------------------------------------

def test_explain_shows_native_conditions_python_filters_and_tc_hints(open_tc: Any) -> None:
    db = open_tc()
    people(db)
    text = Person.objects(db).where(age__gte=18, name__gt="B").order_by("-age")[:2].explain()
    assert "'age' NUMGE '18'" in text and "\\x01t:age' STROREQ 'i,f,d'" in text
    assert "python filter: name gt 'B'" in text
    assert "TC hint:" in text and "order: -age (engine)" in text
    assert "slice: [0:2] (python)" in text
    native = Person.objects(db).where(city="Oslo").order_by("-age")[:1]
    assert "slice: [0:1] (engine)" in native.explain()
    assert [p.pk for p in native] == ["c"]


def test_delete_runs_searchout(open_tc: Any) -> None:
    db = open_tc()
    people(db)
    for i in range(100):
        db.save(None, {"age": i})
    query = Person.objects(db).where(age__lt=30)
    assert query.count() == 32                        # bob, Dave and 0..29
    assert "python filter: (none)" in query.explain()
    assert query.delete() == 32
    assert len(db) == 72 and query.count() == 0
    assert Person.objects(db).where(name__matches="^[AC]").delete() == 2
    assert Person.objects(db).where(name__exists=True).count() == 0 and len(db) == 70


# -- values -------------------------------------------------------------------------------

def test_values_read_back_exactly_and_never_compare_across_kinds(open_tc: Any) -> None:
    class Typed(Document):
        structure = {"d": dt.date, "dec": decimal.Decimal, "raw": bytes, "f": float}

    db = open_tc()
    key = Typed(d=dt.date(2024, 2, 29), dec=decimal.Decimal("1.50"), raw=b"\x00\xff",
                f=1.0).save(db)
    db.save(None, {"n": "17"}, primary_key="s")
    db.save(None, {"n": 17}, primary_key="i")
    db.save(None, {"n": 17.0}, primary_key="f")
    db.save(None, {"n": True}, primary_key="t")
    db.save(None, {"n": 1}, primary_key="one")
    loaded = db.get(Typed, key)
    assert (loaded.d, loaded.dec, loaded.raw, loaded.f) == (
        dt.date(2024, 2, 29), decimal.Decimal("1.50"), b"\x00\xff", 1.0)
    assert str(loaded.dec) == "1.50" and type(loaded.f) is float
    q = Document.objects(db)
    assert sorted(q.where(n=17).keys()) == ["f", "i"]
    assert q.where(n="17").keys() == ["s"]
    assert q.where(n=True).keys() == ["t"] and q.where(n=1).keys() == ["one"]
    assert sorted(q.where(n__gte=1).keys()) == ["f", "i", "one"]
    assert [type(v).__name__ for v in q.values("n")] == ["int", "int", "str", "bool"]


# -- files shared with tctmgr --------------------------------------------------------------

def _listing(text: str) -> dict[str, dict[str, str]]:
    out = {}
    for line in text.splitlines():
        fields = line.split("\t")
        out[fields[0]] = dict(zip(fields[1::2], fields[2::2]))
    return out


def test_tctmgr_reads_what_doqu_wrote(open_tc: Any, tmp_path: Path, tctmgr: Any) -> None:
    path = str(tmp_path / "shared.tct")
    db = open_tc(path)
    people(db)
    db.save(None, {"name": "Eve", "score": 9.5, "tags": ["x", "y"], "active": True,
                   "address": {"city": "Kyiv"}}, primary_key="e")
    db.ensure_index("name")
    db.disconnect()                                   # release the file lock for tctmgr
    listing = _listing(tctmgr("list", "-pv", path))
    assert listing["a"] == {"name": "Alice", "age": "31", "\x01t:age": "i", "city": "Oslo"}
    assert listing["e"]["score"] == "9.5" and listing["e"]["\x01t:score"] == "f"
    assert listing["e"]["tags"] == '["x","y"]' and listing["e"]["active"] == "true"
    assert listing["e"]["address"] == '{"city":"Kyiv"}'
    assert listing["e"]["\x01v.address.city"] == "Kyiv"
    assert codec.decode_key(codec.CATALOGUE_KEY) in listing
    assert sorted(tctmgr("search", path, "city", "STREQ", "Oslo").split()) == ["a", "c"]
    assert sorted(tctmgr("search", path, "age", "NUMGT", "20").split()) == ["a", "c", "d"]
    found = tctmgr("search", "-ph", path, "name", "STREQ", "bob")
    assert found.splitlines()[0] == "b" and 'using an index: "name"' in found
    assert tctmgr("get", path, "d").splitlines() == ["name\tDave", "age\t22", "\x01t:age\ti",
                                                     "city\tLima"]


def test_doqu_reads_what_tctmgr_wrote(open_tc: Any, tmp_path: Path, tctmgr: Any) -> None:
    path = str(tmp_path / "foreign.tct")
    tctmgr("create", path)
    tctmgr("put", path, "k1", "name", "alice", "age", "30")
    tctmgr("put", path, "k2", "name", "bob smith", "note", "ünïcode")
    tctmgr("put", "-sx", path, "6b 33", "6e 75 6c", "61 00 62")        # k3: nul = "a\0b"
    tctmgr("importtsv", path, input=b"k4\tname\tcarol\tage\t7\n")
    db = open_tc(path)
    assert db.get(Document, "k1").dump() == {"name": "alice", "age": "30"}   # schema-less: str
    assert db.get(Document, "k2")["note"] == "ünïcode"
    assert db.get(Document, "k3")["nul"] == "a\x00b"
    assert len(db) == 4 and sorted(db) == ["k1", "k2", "k3", "k4"]
    q = Document.objects(db)
    assert q.where(age="30").keys() == ["k1"]
    assert q.where(age__gt=5).keys() == []            # text is not a number
    assert [d.pk for d in q.order_by("name")] == ["k3", "k1", "k2", "k4"]
    assert q.where(nul__contains="b").keys() == ["k3"]          # raw NUL: filtered in Python
    assert "nul contains 'b'" in q.where(nul__contains="b").explain().split("python filter:")[1]
    db.save(None, {"name": "dora", "age": 4}, primary_key="k5")
    db.disconnect()
    listing = _listing(tctmgr("list", "-pv", path))
    assert listing["k5"] == {"name": "dora", "age": "4", "\x01t:age": "i"}
    assert listing["k1"] == {"name": "alice", "age": "30"}     # untouched


def test_rebuild_catalogue_after_other_programs_wrote(open_tc: Any, tmp_path: Path,
                                                      tctmgr: Any) -> None:
    path = str(tmp_path / "mixed.tct")
    db = open_tc(path)
    for i in range(5):
        db.save(None, {"n": i}, primary_key=f"k{i}")
    assert db.catalogue.kinds(b"n") == {"i"}
    db.disconnect()
    tctmgr("put", path, "x", "n", "é")                # a string doqu's catalogue never saw
    db = open_tc(path)
    assert db.catalogue.kinds(b"n") == {"i"}          # stale: documented
    assert db.rebuild_catalogue().kinds(b"n") == {"i", "u"}
    assert [d.pk for d in Document.objects(db).order_by("-n")] == ["x", "k4", "k3", "k2", "k1",
                                                                    "k0"]
