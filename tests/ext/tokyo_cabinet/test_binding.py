"""Tests of the ctypes binding against the real Tokyo Cabinet library and files.

No mocks: every test opens real table database files under ``tmp_path``, and
the interoperability tests drive Debian's ``tctmgr`` tool on the same files.
The module is skipped when the library cannot be loaded, unless
``DOQU_TEST_REQUIRE`` lists ``tokyo_cabinet`` (then missing pieces fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

import doqu.errors
from doqu.ext.tokyo_cabinet import _binding as tc


def _required() -> bool:
    names = os.environ.get("DOQU_TEST_REQUIRE", "")
    return "tokyo_cabinet" in {name.strip() for name in names.split(",")}


def _unavailable(reason: str) -> NoReturn:
    if _required():
        pytest.fail(f"{reason} (DOQU_TEST_REQUIRE asks for tokyo_cabinet)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


try:
    tc.load_library()
except tc.LibraryMissing as _exc:  # pragma: no cover - depends on the machine
    _unavailable(f"Tokyo Cabinet C library not loadable: {_exc}")

REPO_ROOT = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "table.tct")


@pytest.fixture
def db(path: str) -> Iterator[tc.TableDB]:
    handle = tc.TableDB()
    handle.open(path, tc.OWRITER | tc.OCREAT)
    yield handle
    handle.close()


PEOPLE: dict[bytes, dict[bytes, bytes]] = {
    b"p1": {b"name": b"alice", b"age": b"30", b"tags": b"red green",
            b"bio": b"The quick brown fox"},
    b"p2": {b"name": b"bob", b"age": b"5", b"tags": b"blue", b"bio": b"lazy dog"},
    b"p3": {b"name": b"carol", b"age": b"abc", b"bio": b"quick dog"},
    b"p4": {b"name": b"dave", b"age": b"12.5"},
    b"p5": {b"city": b"oslo"},                 # no name, no age
    b"p6": {b"name": b"eve", b"age": b"-3", b"tags": b"red,blue"},
}


@pytest.fixture
def people(db: tc.TableDB) -> tc.TableDB:
    for pk, cols in PEOPLE.items():
        db.put(pk, cols)
    return db


def search(db: tc.TableDB, *conds: tuple[bytes, int, bytes],
           order: tuple[bytes, int] | None = None,
           limit: tuple[int, int] | None = None) -> list[bytes]:
    """Run one query; sorted keys when no order is asked (TC's natural order is arbitrary)."""
    with db.query() as query:
        for cond in conds:
            query.addcond(*cond)
        if order is not None:
            query.setorder(*order)
        if limit is not None:
            query.setlimit(*limit)
        found = query.search()
    return found if order is not None else sorted(found)


def tctmgr(*args: str) -> str:
    exe = shutil.which("tctmgr")
    if exe is None:
        _skip_or_fail("the tctmgr tool is not installed (apt-get install tokyocabinet-bin)")
    result = subprocess.run([exe, *args], capture_output=True, timeout=60)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout.decode("utf-8")


def _skip_or_fail(reason: str) -> NoReturn:
    if _required():
        pytest.fail(reason)
    pytest.skip(reason)


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def test_library_version_is_the_debian_one() -> None:
    assert tc.library_version().startswith("1.4.")


def test_load_library_is_cached() -> None:
    assert tc.load_library() is tc.load_library()


def test_library_missing_when_env_points_nowhere(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("DOQU_TOKYO_CABINET_LIB", str(tmp_path / "nope" / "libtc.so"))
    tc.load_library.cache_clear()
    try:
        with pytest.raises(tc.LibraryMissing) as info:
            tc.load_library()
        assert "apt-get install libtokyocabinet9" in str(info.value)
        assert "nope" in str(info.value)
        assert isinstance(info.value.__cause__, OSError)
        assert isinstance(info.value, doqu.errors.ConfigurationError)
        assert isinstance(info.value, ValueError)
        with pytest.raises(tc.LibraryMissing):
            tc.TableDB()
    finally:
        monkeypatch.undo()
        tc.load_library.cache_clear()
    assert tc.load_library() is not None


def test_library_missing_when_env_points_to_another_library(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes.util
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no libc name to load")
    monkeypatch.setenv("DOQU_TOKYO_CABINET_LIB", libc)
    tc.load_library.cache_clear()
    try:
        with pytest.raises(tc.LibraryMissing, match="does not export"):
            tc.load_library()
    finally:
        monkeypatch.undo()
        tc.load_library.cache_clear()


def test_env_var_can_name_the_real_library(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    real = "/usr/lib/x86_64-linux-gnu/libtokyocabinet.so.9"
    if not os.path.exists(real):
        pytest.skip("library not at the Debian amd64 path")
    monkeypatch.setenv("DOQU_TOKYO_CABINET_LIB", real)
    tc.load_library.cache_clear()
    try:
        db = tc.TableDB()
        db.open(path, tc.OWRITER | tc.OCREAT)
        db.put(b"k", {b"a": b"1"})
        assert db.get(b"k") == {b"a": b"1"}
        db.close()
    finally:
        monkeypatch.undo()
        tc.load_library.cache_clear()


# ---------------------------------------------------------------------------
# open / close
# ---------------------------------------------------------------------------


def test_constants_match_tctdb_h() -> None:
    assert (tc.OREADER, tc.OWRITER, tc.OCREAT, tc.OTRUNC, tc.ONOLCK, tc.OLCKNB,
            tc.OTSYNC) == (1, 2, 4, 8, 16, 32, 64)
    assert (tc.QCSTREQ, tc.QCSTRRX, tc.QCNUMEQ, tc.QCNUMOREQ, tc.QCFTSPH, tc.QCFTSEX) == (
        0, 7, 8, 14, 15, 18)
    assert (tc.QCNEGATE, tc.QCNOIDX) == (1 << 24, 1 << 25)
    assert (tc.ITLEXICAL, tc.ITDECIMAL, tc.ITTOKEN, tc.ITQGRAM) == (0, 1, 2, 3)
    assert (tc.ITOPT, tc.ITVOID, tc.ITKEEP) == (9998, 9999, 1 << 24)
    assert (tc.MSUNION, tc.MSISECT, tc.MSDIFF) == (0, 1, 2)
    assert (tc.ESUCCESS, tc.ELOCK, tc.EKEEP, tc.ENOREC, tc.EMISC) == (0, 16, 21, 22, 9999)


def test_open_create_close_reopen_reader(path: str) -> None:
    db = tc.TableDB()
    assert not db.is_open and db.path is None
    db.open(path, tc.OWRITER | tc.OCREAT)
    assert db.is_open and db.path == path
    db.put(b"k", {b"a": b"1"})
    db.close()
    db.close()                                  # idempotent
    assert not db.is_open and db.path == path
    db.open(Path(path), tc.OREADER)             # same handle, reopened, PathLike
    assert db.get(b"k") == {b"a": b"1"}
    with pytest.raises(tc.TokyoCabinetError) as info:
        db.put(b"k2", {b"a": b"2"})
    assert info.value.code == tc.EINVALID
    assert "invalid operation" in str(info.value) and path in str(info.value)
    db.close()


def test_open_missing_file_without_ocreat(path: str) -> None:
    db = tc.TableDB()
    with pytest.raises(tc.TokyoCabinetOpenError) as info:
        db.open(path, tc.OWRITER)
    assert info.value.code == tc.ENOFILE
    assert "file not found" in str(info.value) and path in str(info.value)
    assert isinstance(info.value, doqu.errors.ConnectionError)
    assert not db.is_open
    assert db.path is None                      # only successful opens set it
    # the handle is usable afterwards and reports fresh error codes
    db.open(path, tc.OWRITER | tc.OCREAT)
    assert db.get(b"missing") is None
    assert db.ecode() == tc.ENOREC
    db.close()


def test_open_non_table_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tct"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(tc.TokyoCabinetOpenError) as info:
        tc.TableDB().open(str(junk), tc.OREADER)
    assert info.value.code != tc.ESUCCESS


def test_otrunc_empties_the_file(path: str) -> None:
    with tc.TableDB() as db:
        db.open(path, tc.OWRITER | tc.OCREAT)
        db.put(b"k", {b"a": b"1"})
        db.setindex(b"a", tc.ITLEXICAL)
    with tc.TableDB() as db:
        db.open(path, tc.OWRITER | tc.OTRUNC)
        assert db.rnum() == 0
        assert db.indexes == {}                 # OTRUNC also removes index files


def test_open_twice_on_one_handle(db: tc.TableDB, path: str) -> None:
    with pytest.raises(tc.TokyoCabinetError, match="already open"):
        db.open(path, tc.OREADER)


def test_operations_on_closed_handle_raise(path: str) -> None:
    db = tc.TableDB()
    for call in (lambda: db.get(b"k"), lambda: db.put(b"k", {b"a": b"b"}), db.rnum,
                 db.fsiz, db.genuid, lambda: list(db.keys())):
        with pytest.raises(tc.TokyoCabinetError) as info:
            call()
        assert info.value.code == tc.EINVALID
    with pytest.raises(tc.TokyoCabinetTransactionError):
        db.tranbegin()


def test_onolck_and_otsync_modes(path: str) -> None:
    with tc.TableDB() as db:
        db.open(path, tc.OWRITER | tc.OCREAT | tc.OTSYNC | tc.ONOLCK)
        db.put(b"k", {b"a": b"1"})
        db.sync()
    with tc.TableDB() as db:
        db.open(path, tc.OREADER | tc.ONOLCK)
        assert db.get(b"k") == {b"a": b"1"}


def test_path_with_nul_is_rejected() -> None:
    with pytest.raises(ValueError):
        tc.TableDB().open("bad\0path", tc.OREADER)


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------


def test_put_get_round_trip_binary_and_unicode(db: tc.TableDB, path: str) -> None:
    every_byte = bytes(range(256))
    record = {
        b"nul": b"a\0b\0",
        b"col\0with\0nul": b"v",
        "名前".encode(): "Zoë — ünïcödé ✓".encode(),
        b"bytes": every_byte,
        b"tab\tand\nnewline": b"x\ty\nz",
        b"empty": b"",
    }
    key = b"pk\0\xff\xfe" + "ключ".encode()
    db.put(key, record)
    assert db.get(key) == record
    db.close()
    db.open(path, tc.OREADER)
    assert db.get(key) == record
    assert list(db.keys()) == [key]


def test_put_replaces_the_whole_record(db: tc.TableDB) -> None:
    db.put(b"k", {b"a": b"1", b"b": b"2"})
    db.put(b"k", {b"c": b"3"})
    assert db.get(b"k") == {b"c": b"3"}
    db.put(b"k", {})
    assert db.get(b"k") == {}
    assert db.rnum() == 1


def test_get_missing_returns_none(db: tc.TableDB) -> None:
    assert db.get(b"nope") is None
    assert db.get(b"") is None


def test_putkeep(db: tc.TableDB) -> None:
    assert db.putkeep(b"k", {b"a": b"1"}) is True
    assert db.putkeep(b"k", {b"a": b"2"}) is False
    assert db.ecode() == tc.EKEEP
    assert db.get(b"k") == {b"a": b"1"}


def test_out(db: tc.TableDB) -> None:
    db.put(b"k", {b"a": b"1"})
    assert db.out(b"k") is True
    assert db.out(b"k") is False
    assert db.get(b"k") is None


def test_argument_validation(db: tc.TableDB) -> None:
    with pytest.raises(TypeError):
        db.put("str-key", {b"a": b"1"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        db.put(b"k", {"a": b"1"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        db.put(b"k", {b"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="primary key cannot be empty"):
        db.put(b"", {b"a": b"1"})       # the C library would abort() the process
    with pytest.raises(ValueError, match="primary key cannot be empty"):
        db.putkeep(b"", {b"a": b"1"})
    with pytest.raises(ValueError, match="column names cannot be empty"):
        db.put(b"k", {b"": b"1"})
    db.put(bytearray(b"k"), {memoryview(b"a"): bytearray(b"1")})  # type: ignore[arg-type,dict-item]
    assert db.get(b"k") == {b"a": b"1"}


def test_keys_rnum_fsiz(db: tc.TableDB) -> None:
    assert list(db.keys()) == [] and db.rnum() == 0
    empty_size = db.fsiz()
    assert empty_size > 0
    keys = {f"key{i}".encode() for i in range(200)}
    for key in keys:
        db.put(key, {b"v": key * 10})
    assert set(db.keys()) == keys
    assert db.rnum() == 200
    assert db.fsiz() > empty_size


def test_keys_allows_removal_while_iterating(db: tc.TableDB) -> None:
    for i in range(50):
        db.put(b"k%d" % i, {b"v": b"x"})
    for key in db.keys():
        assert db.out(key)
    assert db.rnum() == 0


def test_an_older_keys_iterator_is_invalidated(db: tc.TableDB) -> None:
    for i in range(5):
        db.put(b"k%d" % i, {b"v": b"x"})
    first = db.keys()
    next(first)
    second = db.keys()
    assert len(list(second)) == 5
    with pytest.raises(tc.TokyoCabinetError, match="invalidated"):
        next(first)


def test_genuid_is_monotonic_across_deletes_and_reopen(db: tc.TableDB, path: str) -> None:
    ids = []
    for _ in range(3):
        uid = db.genuid()
        ids.append(uid)
        db.put(str(uid).encode(), {b"a": b"1"})
        db.out(str(uid).encode())
    db.close()
    db.open(path, tc.OWRITER)
    ids.append(db.genuid())
    assert ids == [1, 2, 3, 4]


def test_vanish_resets_the_genuid_counter(db: tc.TableDB) -> None:
    """Surprising but real: vanish() truncates the file, seed included."""
    assert [db.genuid(), db.genuid()] == [1, 2]
    db.vanish()
    assert db.genuid() == 1


def test_vanish_and_sync(db: tc.TableDB) -> None:
    db.put(b"a", {b"x": b"1"})
    db.put(b"b", {b"x": b"2"})
    db.sync()
    db.vanish()
    assert db.rnum() == 0 and list(db.keys()) == []


def test_ecode_and_errmsg(db: tc.TableDB) -> None:
    db.get(b"missing")
    assert db.ecode() == tc.ENOREC
    assert db.errmsg() == "no record found"
    assert db.errmsg(tc.ELOCK) == "lock error"
    assert db.errmsg(tc.ESUCCESS) == "success"


def test_handles_are_released(path: str) -> None:
    """Dropping objects without close() must not crash or leak the file lock."""
    db = tc.TableDB()
    db.open(path, tc.OWRITER | tc.OCREAT)
    db.put(b"k", {b"a": b"1"})
    query = db.query()
    query.addcond(b"a", tc.QCSTREQ, b"1")
    del db, query
    import gc
    gc.collect()
    again = tc.TableDB()
    again.open(path, tc.OWRITER | tc.OLCKNB)
    assert again.get(b"k") == {b"a": b"1"}
    again.close()


def test_one_handle_shared_by_threads(db: tc.TableDB) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                key = b"t%d-%d" % (n, i)
                db.put(key, {b"n": str(n).encode(), b"i": str(i).encode()})
                assert db.get(key) == {b"n": str(n).encode(), b"i": str(i).encode()}
                assert db.get(b"absent-%d" % n) is None     # per-thread ecode
            assert len(search(db, (b"n", tc.QCSTREQ, str(n).encode()))) == 300
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert db.rnum() == 1200


# ---------------------------------------------------------------------------
# locking
# ---------------------------------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys
    from doqu.ext.tokyo_cabinet import _binding as tc
    db = tc.TableDB()
    db.open(sys.argv[1], tc.OWRITER | tc.OCREAT)
    db.put(b"held", {b"by": b"subprocess"})
    db.sync()
    print("ready", flush=True)
    sys.stdin.readline()
    db.close()
    print("closed", flush=True)
""")


def _run_with_watchdog(func, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Run ``func`` in a thread so a hanging open fails the test instead of hanging it."""
    outcome: dict[str, object] = {}

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
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


def test_second_writer_on_locked_file_fails_fast(path: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        line = holder.stdout.readline()
        assert line.strip() == b"ready", holder.stderr.read() if holder.stderr else line
        db = tc.TableDB()
        with pytest.raises(tc.TokyoCabinetOpenError) as info:
            _run_with_watchdog(lambda: db.open(path, tc.OWRITER | tc.OLCKNB))
        assert info.value.code == tc.ELOCK
        assert "lock error" in str(info.value) and "locked by another process" in str(info.value)
        assert path in str(info.value)
        assert not db.is_open
        # a non-blocking reader is refused as well while the writer holds the lock
        with pytest.raises(tc.TokyoCabinetOpenError):
            _run_with_watchdog(lambda: db.open(path, tc.OREADER | tc.OLCKNB))
        holder.stdin.write(b"\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == b"closed"
        # once released, the same handle opens fine
        _run_with_watchdog(lambda: db.open(path, tc.OWRITER | tc.OLCKNB))
        assert db.get(b"held") == {b"by": b"subprocess"}
        db.close()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate(timeout=30)          # also closes the pipes


def test_second_handle_in_the_same_process_is_refused(db: tc.TableDB, path: str) -> None:
    other = tc.TableDB()
    for mode in (tc.OWRITER | tc.OLCKNB, tc.OREADER, tc.OWRITER):
        with pytest.raises(tc.TokyoCabinetOpenError) as info:
            _run_with_watchdog(lambda mode=mode: other.open(path, mode))
        assert info.value.code == tc.ETHREAD
        assert "already open" in str(info.value)


# ---------------------------------------------------------------------------
# queries: conditions
# ---------------------------------------------------------------------------

CONDITIONS = [
    # string operators (case sensitive, exact bytes)
    ("STREQ", b"name", tc.QCSTREQ, b"bob", {b"p2"}),
    ("STREQ-case", b"name", tc.QCSTREQ, b"BOB", set()),
    ("STRINC", b"name", tc.QCSTRINC, b"aro", {b"p3"}),
    ("STRINC-empty-matches-every-present-value", b"name", tc.QCSTRINC, b"",
     {b"p1", b"p2", b"p3", b"p4", b"p6"}),
    ("STRBW", b"name", tc.QCSTRBW, b"da", {b"p4"}),
    ("STREW", b"name", tc.QCSTREW, b"ce", {b"p1"}),
    ("STRAND-all-tokens", b"tags", tc.QCSTRAND, b"green red", {b"p1"}),
    ("STRAND-tokens-are-whole-words", b"tags", tc.QCSTRAND, b"gre", set()),
    ("STROR-space-or-comma", b"tags", tc.QCSTROR, b"green,blue", {b"p1", b"p2", b"p6"}),
    ("STROREQ", b"name", tc.QCSTROREQ, b"bob dave,zed", {b"p2", b"p4"}),
    ("STRRX", b"name", tc.QCSTRRX, b"^[a-c].*[eb]$", {b"p1", b"p2"}),
    # numeric operators: values (and operands) that are not numbers count as 0
    ("NUMEQ", b"age", tc.QCNUMEQ, b"30", {b"p1"}),
    ("NUMEQ-fraction", b"age", tc.QCNUMEQ, b"12.5", {b"p4"}),
    ("NUMEQ-zero-matches-text", b"age", tc.QCNUMEQ, b"0", {b"p3"}),
    ("NUMGT", b"age", tc.QCNUMGT, b"12.5", {b"p1"}),
    ("NUMGE", b"age", tc.QCNUMGE, b"12.5", {b"p1", b"p4"}),
    ("NUMLT-text-is-zero", b"age", tc.QCNUMLT, b"5", {b"p3", b"p6"}),
    ("NUMLE", b"age", tc.QCNUMLE, b"5", {b"p2", b"p3", b"p6"}),
    ("NUMBT", b"age", tc.QCNUMBT, b"5 13", {b"p2", b"p4"}),
    ("NUMBT-reversed-bounds", b"age", tc.QCNUMBT, b"13,5", {b"p2", b"p4"}),
    ("NUMOREQ", b"age", tc.QCNUMOREQ, b"5,30 99", {b"p1", b"p2"}),
    ("NUMGT-text-operand-is-zero", b"age", tc.QCNUMGT, b"abc", {b"p1", b"p2", b"p4"}),
    # full-text operators: case-insensitive substring/word matching
    ("FTSPH", b"bio", tc.QCFTSPH, b"quick brown", {b"p1"}),
    ("FTSPH-case-insensitive-substring", b"bio", tc.QCFTSPH, b"UIC", {b"p1", b"p3"}),
    ("FTSAND", b"bio", tc.QCFTSAND, b"quick dog", {b"p3"}),
    ("FTSOR", b"bio", tc.QCFTSOR, b"fox lazy", {b"p1", b"p2"}),
    ("FTSEX-and", b"bio", tc.QCFTSEX, b"quick && dog", {b"p3"}),
    ("FTSEX-or", b"bio", tc.QCFTSEX, b"fox || lazy", {b"p1", b"p2"}),
    ("FTSEX-not", b"bio", tc.QCFTSEX, b"quick !! fox", {b"p3"}),
    # the primary key is column b""
    ("primary-key", b"", tc.QCSTRBW, b"p", set(PEOPLE)),
    ("primary-key-eq", b"", tc.QCSTREQ, b"p5", {b"p5"}),
    # flags
    ("NOIDX", b"name", tc.QCSTREQ | tc.QCNOIDX, b"bob", {b"p2"}),
    # negation also matches records that LACK the column (p5 has no name)
    ("NEGATE-STREQ", b"name", tc.QCSTREQ | tc.QCNEGATE, b"bob",
     {b"p1", b"p3", b"p4", b"p5", b"p6"}),
    ("NEGATE-NUMGT", b"age", tc.QCNUMGT | tc.QCNEGATE, b"10", {b"p2", b"p3", b"p5", b"p6"}),
    ("NEGATE-STRINC-empty-finds-missing-columns", b"name", tc.QCSTRINC | tc.QCNEGATE, b"",
     {b"p5"}),
    ("missing-column-never-matches-positively", b"nosuch", tc.QCSTRINC, b"", set()),
]


@pytest.mark.parametrize("column,op,expr,expected",
                         [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS])
def test_condition(people: tc.TableDB, column: bytes, op: int, expr: bytes,
                   expected: set[bytes]) -> None:
    assert set(search(people, (column, op, expr))) == expected


@pytest.mark.parametrize("column,op,expr,expected",
                         [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS])
def test_condition_is_the_same_with_indexes(people: tc.TableDB, column: bytes, op: int,
                                            expr: bytes, expected: set[bytes]) -> None:
    """Indexes change the plan, never the answer."""
    assert people.setindex(b"name", tc.ITLEXICAL)
    assert people.setindex(b"age", tc.ITDECIMAL)
    assert people.setindex(b"tags", tc.ITTOKEN)
    assert people.setindex(b"bio", tc.ITQGRAM)
    assert people.setindex(b"", tc.ITLEXICAL)
    assert set(search(people, (column, op, expr))) == expected


def test_conditions_are_anded(people: tc.TableDB) -> None:
    assert search(people, (b"age", tc.QCNUMGE, b"5"), (b"tags", tc.QCSTROR, b"blue")) == [
        b"p2"]
    assert search(people, (b"name", tc.QCSTREQ, b"bob"), (b"name", tc.QCSTREQ, b"eve")) == []


def test_condition_strings_reject_nul(people: tc.TableDB) -> None:
    with people.query() as query:
        with pytest.raises(ValueError):
            query.addcond(b"na\0me", tc.QCSTREQ, b"x")
        with pytest.raises(ValueError):
            query.addcond(b"name", tc.QCSTREQ, b"x\0y")
        with pytest.raises(TypeError):
            query.addcond("name", tc.QCSTREQ, b"x")  # type: ignore[arg-type]


def test_empty_query_returns_every_key(people: tc.TableDB) -> None:
    assert set(search(people)) == set(PEOPLE)


# ---------------------------------------------------------------------------
# queries: order, limit, searchout, metasearch, hint
# ---------------------------------------------------------------------------


def test_string_orders(people: tc.TableDB) -> None:
    has_name = (b"name", tc.QCSTRINC, b"")
    assert search(people, has_name, order=(b"name", tc.QOSTRASC)) == [
        b"p1", b"p2", b"p3", b"p4", b"p6"]
    assert search(people, has_name, order=(b"name", tc.QOSTRDESC)) == [
        b"p6", b"p4", b"p3", b"p2", b"p1"]
    # byte-wise string order of numbers: "-3" < "12.5" < "30" < "5" < "abc"
    assert search(people, (b"age", tc.QCSTRINC, b""), order=(b"age", tc.QOSTRASC)) == [
        b"p6", b"p4", b"p1", b"p2", b"p3"]


def test_numeric_orders_treat_text_as_zero(people: tc.TableDB) -> None:
    has_age = (b"age", tc.QCSTRINC, b"")
    # p3's "abc" sorts as 0: between -3 and 5
    assert search(people, has_age, order=(b"age", tc.QONUMASC)) == [
        b"p6", b"p3", b"p2", b"p4", b"p1"]
    assert search(people, has_age, order=(b"age", tc.QONUMDESC)) == [
        b"p1", b"p4", b"p2", b"p3", b"p6"]


def test_records_lacking_the_order_column_come_last_in_both_directions(
        people: tc.TableDB) -> None:
    for otype in (tc.QOSTRASC, tc.QOSTRDESC, tc.QONUMASC, tc.QONUMDESC):
        found = search(people, order=(b"age", otype))
        assert len(found) == len(PEOPLE)
        assert found[-1] == b"p5"


def test_order_by_primary_key(people: tc.TableDB) -> None:
    assert search(people, order=(b"", tc.QOSTRASC)) == sorted(PEOPLE)
    assert search(people, order=(b"", tc.QOSTRDESC)) == sorted(PEOPLE, reverse=True)


def test_limit_and_skip(people: tc.TableDB) -> None:
    order = (b"", tc.QOSTRASC)
    assert search(people, order=order, limit=(2, 0)) == [b"p1", b"p2"]
    assert search(people, order=order, limit=(2, 3)) == [b"p4", b"p5"]
    assert search(people, order=order, limit=(-1, 4)) == [b"p5", b"p6"]
    assert search(people, order=order, limit=(10, 10)) == []
    assert search(people, order=order, limit=(0, 0)) == []
    with people.query() as query:
        query.setorder(b"", tc.QOSTRASC)
        query.setlimit(3)
        assert query.search() == [b"p1", b"p2", b"p3"]
        query.setlimit()                        # back to no limit
        assert len(query.search()) == len(PEOPLE)


def test_searchout(people: tc.TableDB) -> None:
    with people.query() as query:
        query.addcond(b"age", tc.QCNUMLT, b"10")
        query.searchout()
        assert "out=3" in query.hint()
    assert set(people.keys()) == {b"p1", b"p4", b"p5"}
    assert people.rnum() == 3


def test_searchout_on_reader_raises(people: tc.TableDB, path: str) -> None:
    people.close()
    people.open(path, tc.OREADER)
    with people.query() as query:
        query.addcond(b"name", tc.QCSTREQ, b"bob")
        with pytest.raises(tc.TokyoCabinetError) as info:
            query.searchout()
    assert info.value.code == tc.EINVALID


def test_metasearch(people: tc.TableDB) -> None:
    starts_a_to_c = people.query()
    starts_a_to_c.addcond(b"name", tc.QCSTRRX, b"^[a-c]")
    young = people.query()
    young.addcond(b"age", tc.QCNUMLT, b"10")
    assert sorted(tc.metasearch([starts_a_to_c, young], tc.MSUNION)) == [
        b"p1", b"p2", b"p3", b"p6"]
    assert sorted(tc.metasearch([starts_a_to_c, young], tc.MSISECT)) == [b"p2", b"p3"]
    assert sorted(tc.metasearch([young, starts_a_to_c], tc.MSDIFF)) == [b"p6"]
    # the first query's order and limit apply to the combined result
    starts_a_to_c.setorder(b"name", tc.QOSTRDESC)
    assert tc.metasearch([starts_a_to_c, young], tc.MSUNION) == [b"p6", b"p3", b"p2", b"p1"]
    starts_a_to_c.setlimit(2, 1)
    assert tc.metasearch([starts_a_to_c, young], tc.MSUNION) == [b"p3", b"p2"]
    hint = starts_a_to_c.hint()
    assert "[0]" in hint and "[1]" in hint     # per-query plans, on the first query
    assert tc.metasearch([], tc.MSUNION) == []
    assert sorted(tc.metasearch([young], tc.MSUNION)) == [b"p2", b"p3", b"p6"]
    starts_a_to_c.close()
    young.close()


def test_metasearch_rejects_queries_of_other_databases(people: tc.TableDB,
                                                       tmp_path: Path) -> None:
    with tc.TableDB() as other:
        other.open(str(tmp_path / "other.tct"), tc.OWRITER | tc.OCREAT)
        with pytest.raises(ValueError, match="same TableDB"):
            tc.metasearch([people.query(), other.query()], tc.MSUNION)


def test_hint_describes_the_plan(people: tc.TableDB) -> None:
    with people.query() as query:
        assert query.hint() == ""               # nothing executed yet
        query.addcond(b"name", tc.QCSTREQ, b"bob")
        query.search()
        hint = query.hint()
    assert "scanning the whole table" in hint
    assert "result set size: 1" in hint


def test_setindex_and_hint_mentions_the_index(people: tc.TableDB, path: str) -> None:
    assert people.setindex(b"name", tc.ITLEXICAL) is True
    assert people.setindex(b"age", tc.ITDECIMAL) is True
    assert people.setindex(b"tags", tc.ITTOKEN) is True
    assert people.setindex(b"bio", tc.ITQGRAM) is True
    assert people.indexes == {b"name": tc.ITLEXICAL, b"age": tc.ITDECIMAL,
                              b"tags": tc.ITTOKEN, b"bio": tc.ITQGRAM}
    assert os.path.exists(path + ".idx.name.lex")

    def plan(column: bytes, op: int, expr: bytes) -> str:
        with people.query() as query:
            query.addcond(column, op, expr)
            query.search()
            return query.hint()

    assert 'using an index: "name" asc (STREQ)' in plan(b"name", tc.QCSTREQ, b"bob")
    assert 'using an index: "age"' in plan(b"age", tc.QCNUMGT, b"10")
    assert 'using an index: "tags" inverted (STROR)' in plan(b"tags", tc.QCSTROR, b"red")
    assert 'using an index: "bio" inverted (FTS)' in plan(b"bio", tc.QCFTSPH, b"dog")
    # NOIDX and negation bypass indexes
    assert "scanning the whole table" in plan(b"name", tc.QCSTREQ | tc.QCNOIDX, b"bob")
    assert "scanning the whole table" in plan(b"name", tc.QCSTREQ | tc.QCNEGATE, b"bob")
    # indexes are maintained on update and removal
    people.put(b"p7", {b"name": b"bob", b"age": b"77"})
    people.out(b"p2")
    assert search(people, (b"name", tc.QCSTREQ, b"bob")) == [b"p7"]
    # ITKEEP refuses an existing index; ITOPT optimises; ITVOID drops
    assert people.setindex(b"name", tc.ITLEXICAL | tc.ITKEEP) is False
    assert people.setindex(b"name", tc.ITOPT) is True
    assert people.setindex(b"name", tc.ITVOID) is True
    assert people.setindex(b"name", tc.ITVOID) is False
    assert b"name" not in people.indexes
    assert not os.path.exists(path + ".idx.name.lex")
    assert "scanning the whole table" in plan(b"name", tc.QCSTREQ, b"bob")
    # indexes persist: a new handle loads them from their files
    people.close()
    people.open(path, tc.OREADER)
    assert people.indexes == {b"age": tc.ITDECIMAL, b"tags": tc.ITTOKEN, b"bio": tc.ITQGRAM}
    assert 'using an index: "age"' in plan(b"age", tc.QCNUMEQ, b"30")


def test_setindex_on_reader_raises(people: tc.TableDB, path: str) -> None:
    people.close()
    people.open(path, tc.OREADER)
    with pytest.raises(tc.TokyoCabinetError) as info:
        people.setindex(b"name", tc.ITLEXICAL)
    assert info.value.code == tc.EINVALID
    with pytest.raises(ValueError):
        people.setindex(b"na\0me", tc.ITLEXICAL)


@pytest.mark.parametrize("itype", [tc.ITLEXICAL, tc.ITDECIMAL])
def test_empty_values_in_lexical_or_decimal_index_are_refused(db: tc.TableDB,
                                                              itype: int) -> None:
    """The C library assert()s (aborts the process) here; the binding refuses first."""
    db.put(b"a", {b"c": b"x"})
    db.setindex(b"c", itype)
    with pytest.raises(tc.TokyoCabinetError, match="abort") as info:
        db.put(b"b", {b"c": b""})
    assert info.value.code == tc.EINVALID
    with pytest.raises(tc.TokyoCabinetError, match="abort"):
        db.putkeep(b"b", {b"c": b""})
    assert db.get(b"b") is None
    db.put(b"b", {b"other": b""})               # other columns may be empty


@pytest.mark.parametrize("itype", [tc.ITLEXICAL, tc.ITDECIMAL])
def test_indexing_a_column_holding_empty_values_is_refused(db: tc.TableDB,
                                                           itype: int) -> None:
    db.put(b"a", {b"c": b""})
    with pytest.raises(tc.TokyoCabinetError, match="empty") as info:
        db.setindex(b"c", itype)
    assert info.value.code == tc.EINVALID
    assert db.indexes == {}


@pytest.mark.parametrize("itype", [tc.ITTOKEN, tc.ITQGRAM])
def test_token_and_qgram_indexes_accept_empty_values(db: tc.TableDB, itype: int) -> None:
    db.put(b"a", {b"c": b""})
    assert db.setindex(b"c", itype)
    db.put(b"b", {b"c": b""})
    assert sorted(search(db, (b"c", tc.QCSTREQ, b""))) == [b"a", b"b"]


def test_index_names_are_url_encoded_on_disk(db: tc.TableDB, path: str) -> None:
    names = [b"a b", b"a.b", "ü".encode(), b"a+b", b"x/y", b"%41"]
    for name in names:
        assert db.setindex(name, tc.ITTOKEN)
    db.close()
    db.open(path, tc.OWRITER)
    assert db.indexes == {name: tc.ITTOKEN for name in names}


def test_query_lifecycle(people: tc.TableDB) -> None:
    query = people.query()
    query.addcond(b"name", tc.QCSTREQ, b"bob")
    query.close()
    query.close()                               # idempotent
    with pytest.raises(tc.TokyoCabinetError, match="closed"):
        query.search()
    live = people.query()
    people.close()
    with pytest.raises(tc.TokyoCabinetError, match="closed table database"):
        live.search()
    live.close()


# ---------------------------------------------------------------------------
# transactions
# ---------------------------------------------------------------------------


def test_transaction_abort_discards(people: tc.TableDB, path: str) -> None:
    people.setindex(b"name", tc.ITLEXICAL)
    people.tranbegin()
    people.put(b"new", {b"name": b"zed"})
    people.out(b"p1")
    people.put(b"p2", {b"name": b"robert"})
    assert people.get(b"new") == {b"name": b"zed"}      # visible inside
    people.tranabort()
    assert people.get(b"new") is None
    assert people.get(b"p1") == PEOPLE[b"p1"]
    assert people.get(b"p2") == PEOPLE[b"p2"]
    assert people.rnum() == len(PEOPLE)
    assert search(people, (b"name", tc.QCSTREQ, b"zed")) == []     # index rolled back too
    assert search(people, (b"name", tc.QCSTREQ, b"bob")) == [b"p2"]
    people.close()
    people.open(path, tc.OREADER)
    assert people.get(b"new") is None


def test_transaction_commit_keeps(people: tc.TableDB, path: str) -> None:
    people.tranbegin()
    people.put(b"new", {b"name": b"zed"})
    people.out(b"p1")
    people.trancommit()
    people.close()
    people.open(path, tc.OREADER)
    assert people.get(b"new") == {b"name": b"zed"}
    assert people.get(b"p1") is None


def test_close_aborts_an_open_transaction(people: tc.TableDB, path: str) -> None:
    people.tranbegin()
    people.put(b"new", {b"name": b"zed"})
    people.close()
    people.open(path, tc.OREADER)
    assert people.get(b"new") is None


def test_transaction_belongs_to_the_handle_not_the_thread(db: tc.TableDB) -> None:
    db.tranbegin()
    writer = threading.Thread(target=lambda: db.put(b"from-thread", {b"a": b"1"}))
    writer.start()
    writer.join(timeout=60)
    assert not writer.is_alive()                # not blocked by the transaction...
    db.tranabort()
    assert db.get(b"from-thread") is None       # ...but rolled back with it
    # a second tranbegin waits for the first transaction to end
    began = threading.Event()

    def second() -> None:
        db.tranbegin()
        began.set()
        db.trancommit()

    db.tranbegin()
    other = threading.Thread(target=second)
    other.start()
    assert not began.wait(0.5)
    db.trancommit()
    other.join(timeout=60)
    assert began.is_set()


def test_transaction_errors(people: tc.TableDB, path: str) -> None:
    with pytest.raises(tc.TokyoCabinetTransactionError) as info:
        people.trancommit()                     # no transaction
    assert isinstance(info.value, doqu.errors.TransactionError)
    assert isinstance(info.value, tc.TokyoCabinetError)
    people.close()
    people.open(path, tc.OREADER)
    with pytest.raises(tc.TokyoCabinetTransactionError):
        people.tranbegin()                      # readers cannot write


# ---------------------------------------------------------------------------
# interoperability with the real tctmgr tool
# ---------------------------------------------------------------------------


def _parse_hex_listing(output: str) -> dict[bytes, dict[bytes, bytes]]:
    """Parse ``tctmgr list -pv -px``: TAB-separated fields, bytes as spaced hex."""
    records: dict[bytes, dict[bytes, bytes]] = {}
    for line in output.splitlines():
        fields = [bytes.fromhex(field) for field in line.split("\t")]
        records[fields[0]] = dict(zip(fields[1::2], fields[2::2], strict=True))
    return records


def test_tctmgr_lists_what_the_binding_wrote(path: str) -> None:
    with tc.TableDB() as db:
        db.open(path, tc.OWRITER | tc.OCREAT)
        for pk, cols in PEOPLE.items():
            db.put(pk, cols)
        db.put(b"bin\0key", {b"nul": b"a\0b", "ü".encode(): "ß".encode()})
    listing = tctmgr("list", "-pv", "-px", path)
    expected = dict(PEOPLE)
    expected[b"bin\0key"] = {b"nul": b"a\0b", "ü".encode(): "ß".encode()}
    assert _parse_hex_listing(listing) == expected
    plain = tctmgr("list", "-pv", path)
    assert "p2\tname\tbob\tage\t5\ttags\tblue\tbio\tlazy dog" in plain.splitlines()
    assert tctmgr("search", path, "name", "STREQ", "bob").split() == ["p2"]
    assert sorted(tctmgr("search", path, "age", "NUMLT", "10").split()) == ["p2", "p3", "p6"]
    assert tctmgr("get", path, "p4").splitlines() == ["name\tdave", "age\t12.5"]


def test_binding_reads_what_tctmgr_wrote(path: str) -> None:
    tctmgr("create", path)
    tctmgr("put", path, "k1", "name", "alice", "age", "30")
    tctmgr("put", path, "k2", "name", "bob smith", "note", "ünïcode")
    tctmgr("put", "-sx", path, "6b 33", "6e 75 6c", "61 00 62")   # k3: nul = "a\0b"
    tsv = "k4\tname\tcarol\tage\t7\n"
    subprocess.run([shutil.which("tctmgr") or "tctmgr", "importtsv", path],
                   input=tsv.encode(), check=True, timeout=60)
    tctmgr("setindex", "-it", "lexical", path, "name")
    with tc.TableDB() as db:
        db.open(path, tc.OWRITER)
        assert db.rnum() == 4
        assert db.get(b"k1") == {b"name": b"alice", b"age": b"30"}
        assert db.get(b"k2") == {b"name": b"bob smith", b"note": "ünïcode".encode()}
        assert db.get(b"k3") == {b"nul": b"a\0b"}
        assert db.get(b"k4") == {b"name": b"carol", b"age": b"7"}
        assert db.indexes == {b"name": tc.ITLEXICAL}
        with db.query() as query:
            query.addcond(b"name", tc.QCSTRBW, b"bob")
            assert query.search() == [b"k2"]
            assert 'using an index: "name"' in query.hint()
        with pytest.raises(tc.TokyoCabinetError, match="abort"):
            db.put(b"k5", {b"name": b""})
        # the binding's writes keep tctmgr's index usable
        db.put(b"k5", {b"name": b"dora"})
    found = tctmgr("search", "-ph", path, "name", "STREQ", "dora")
    assert found.splitlines()[0] == "k5"
    assert 'using an index: "name"' in found
