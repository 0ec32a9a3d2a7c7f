"""The ``doqu`` command, run as a real subprocess against real files of real engines."""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.metadata
import json
import os
import pty
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from doqu import Document, get_db
from doqu.testing.conformance.test_values import SAMPLE, Everything
from doqu.testing.registry import all_engines, skip_or_fail

TIMEOUT = 120


def doqu(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doqu.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=TIMEOUT, encoding="utf-8")


def ok(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = doqu(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


# -- engines a separate process can share: files and servers ----------------------------------

def _file_url(suffix: str) -> Callable[[Path], str]:
    return lambda path: f"{suffix}:///{path}.{suffix}"


def _redis_url(path: Path) -> str:
    from doqu.testing.engines.redis import standalone_url, unique_prefix

    base = standalone_url()
    return f"{base}{'&' if '?' in base else '?'}prefix={unique_prefix('cli')}"


def _mysql_url(path: Path) -> str:
    from doqu.testing.engines.mysql import url

    return f"{url()}{'&' if '?' in url() else '?'}table=doqu_cli_{os.getpid()}_{secrets.token_hex(4)}"


def _drop(url: str) -> None:
    """Remove a server-side storage the test made: a Redis key prefix, a MariaDB table."""
    from doqu.config import parse_url

    settings = parse_url(url)
    if settings["backend"] in ("mysql", "mariadb"):
        import pymysql

        connection = pymysql.connect(host=settings.get("host", "127.0.0.1"), port=settings.get("port", 3306),
                                     user=settings.get("user", "root"), password=settings.get("password", ""),
                                     database=settings["database"])
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS `{settings['table']}`")
        finally:
            connection.close()
        return
    db = get_db(url)
    try:
        getattr(db, "drop", db.clear)()
    finally:
        db.disconnect()


#: Engine name (as in the conformance registry) → a URL for a new storage at ``path``.
URLS: dict[str, Callable[[Path], str]] = {
    "shelve": _file_url("shelve"),
    "sqlite": _file_url("sqlite"),
    "redis": _redis_url,
    "mysql": _mysql_url,
}
#: Engines whose storages outlive the test and must be removed.
SERVERS = {"redis", "mysql"}


@pytest.fixture(params=sorted(URLS), scope="module")
def kind(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    engines = {engine.name: engine for engine in all_engines()}
    if name not in engines:
        pytest.skip(f"{name} is not among the engines under test (DOQU_TEST_ENGINES)")
    reason = engines[name].unavailable()
    if reason:
        skip_or_fail(name, reason)
    return name


@pytest.fixture
def make_url(tmp_path: Path, kind: str) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(name: str) -> str:
        made.append(URLS[kind](tmp_path / name))
        return made[-1]

    yield make
    if kind in SERVERS:
        for url in made:
            _drop(url)


def _open(url: str) -> Any:
    return get_db(url)


PEOPLE = [
    {"_key": "ada", "name": "Ada", "age": 36, "born": {"$date": "1815-12-10"}, "tags": ["math", "poetry"],
     "status": "active", "address": {"city": "London"}},
    {"_key": "alan", "name": "Alan", "age": 41, "born": "1912-06-23", "tags": ["math"], "status": "active",
     "address": {"city": "Wilmslow"}},
    {"_key": "grace", "name": "Grace", "age": 85, "born": "1906-12-09", "status": "retired",
     "salary": {"$decimal": "1234.50"}},
    {"_key": "linus", "name": "Linus", "age": 30, "status": "active", "photo": {"$bytes": "AAEC"}},
]


def _people_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PEOPLE), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Iterator[str]:
    """The people, loaded once per engine; the tests that use them only read them."""
    directory = tmp_path_factory.mktemp(f"people-{kind}")
    url = URLS[kind](directory / "people")
    result = ok("load", url, str(_people_file(directory)))
    assert "loaded 4 records" in result.stderr
    yield url
    if kind in SERVERS:
        _drop(url)


@pytest.fixture
def shelve_people(tmp_path: Path) -> str:
    """The people in a shelve file, for tests that do not depend on the engine."""
    url = URLS["shelve"](tmp_path / "people")
    ok("load", url, str(_people_file(tmp_path)), "--quiet")
    return url


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _keys(text: str) -> list[str]:
    return [r["_key"] for r in _lines(text)]


# -- load, query -----------------------------------------------------------------------

def test_loaded_values_are_stored_in_their_types(people: str) -> None:
    class Person(Document):
        structure = {"name": str, "age": int, "born": dt.date, "salary": decimal.Decimal,
                     "photo": bytes, "tags": list, "address": dict}

    with _open(people) as db:
        assert len(db) == 4
        assert db.get(Person, "ada").born == dt.date(1815, 12, 10)
        assert db.get(Person, "grace").salary == decimal.Decimal("1234.50")
        assert db.get(Person, "linus").photo == b"\x00\x01\x02"
        assert db.get(Person, "alan").address == {"city": "Wilmslow"}


@pytest.mark.parametrize("args, keys", [
    (["--where", "age__gt=36"], ["alan", "grace"]),  # 36 is a number
    (["--where", "name=Ada"], ["ada"]),  # not JSON: a string
    (["--where", 'name="Ada"'], ["ada"]),
    (["--where", 'status__in=["retired","gone"]'], ["grace"]),
    (["--where", "tags__contains=math", "--where", "age__lt=40"], ["ada"]),
    (["--where-not", "status=active"], ["grace"]),
    (["--where", "born__lt=1900-01-01"], ["ada"]),  # dates are ISO text
    (["--where", 'born__gte={"$date":"1910-01-01"}'], ["alan"]),
    (["--where", "address__city=London"], ["ada"]),  # a nested field some record has
    (["--where", "photo__exists=false", "--order-by", "-age"], ["grace", "alan", "ada"]),
    (["--order-by", "status,-age"], ["alan", "ada", "linus", "grace"]),
    (["--order-by=-age", "--limit", "2"], ["grace", "alan"]),
])
def test_query_conditions(people: str, args: list[str], keys: list[str]) -> None:
    result = ok("query", people, "--format", "jsonl", *args)
    found = _keys(result.stdout)
    assert (found if "--order-by" in " ".join(args) else sorted(found)) == keys


def test_query_count_and_explain(people: str) -> None:
    assert ok("query", people, "--count").stdout == "4\n"
    assert ok("query", people, "--where", "age__gte=36", "--count").stdout == "3\n"
    assert ok("query", people, "--limit", "1", "--count").stdout == "1\n"
    explained = ok("query", people, "--where", "age__gte=36", "--explain").stdout
    assert "age" in explained and "36" in explained and "engine" in explained


def test_query_table(people: str) -> None:
    lines = ok("query", people, "--where", "status=active", "--order-by", "name").stdout.splitlines()
    assert lines[0].split()[:4] == ["_key", "name", "age", "born"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:3] == ["ada", "Ada", "36"]
    assert '["math","poetry"]' in lines[2]
    assert lines[-1] == "(3 records)"


# -- dump and load back -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_dump_then_load_gives_the_same_records(tmp_path: Path, make_url: Callable[[str], str],
                                               fmt: str) -> None:
    source = make_url("source")
    with _open(source) as db:
        key = Everything(**SAMPLE).save(db)
        db.save(None, {"aware": dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                       "tricky": {"$date": "not a tag"}, "empty": ""}, primary_key="other")
        originals = {d.pk: d.dump() for d in db.get_query()}
    dumped = ok("dump", source, "--format", fmt).stdout
    path = tmp_path / f"dump.{fmt}"
    path.write_text(dumped, encoding="utf-8")
    target = make_url("target")
    ok("load", target, str(path))
    with _open(target) as db:
        assert {d.pk: d.dump() for d in db.get_query()} == originals
        loaded = db.get(Everything, key)
        for name, value in SAMPLE.items():
            assert loaded[name] == value and type(loaded[name]) is type(value), name
    again = ok("dump", target, "--format", fmt).stdout
    if fmt == "jsonl":  # records come in the engine's order
        assert sorted(again.splitlines()) == sorted(dumped.splitlines())
    else:
        assert len(again) == len(dumped)


def test_dump_to_a_file_with_conditions(tmp_path: Path, people: str) -> None:
    out = tmp_path / "out.jsonl"
    result = ok("dump", people, "--where", "age__lt=40", "--order-by", "name", "-o", str(out))
    assert "dumped 2 records" in result.stderr
    assert _keys(out.read_text(encoding="utf-8")) == ["ada", "linus"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".doqu-")] == []


def test_load_from_standard_input(make_url: Callable[[str], str]) -> None:
    url = make_url("stdin")
    ok("load", url, "-", stdin='{"_key": "a", "n": 1}\n{"n": 2}\n')
    assert ok("query", url, "--count").stdout == "2\n"
    ok("load", url, "-", "--format", "csv", stdin="_key,n:int\nb,3\n")
    assert _keys(ok("query", url, "--where", "n=3", "--format", "jsonl").stdout) == ["b"]


def test_a_malformed_file_loads_nothing(tmp_path: Path, people: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "new"}\n{"name": "also new"}\n{"name": \n', encoding="utf-8")
    result = doqu("load", people, str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"doqu: error: {bad} line 3: malformed JSON: Expecting value (column 1)"]
    assert ok("query", people, "--count").stdout == "4\n"


# -- inspect --------------------------------------------------------------------------------

def test_inspect_prints_a_class_that_fits_the_database(people: str) -> None:
    source = ok("inspect", people, "--class-name", "Person").stdout
    namespace: dict[str, Any] = {}
    exec(compile(source, "<doqu inspect>", "exec"), namespace)
    Person = namespace["Person"]

    class Strict(Person):  # type: ignore[misc, valid-type]
        break_on_invalid_incoming_data = True

    with _open(people) as db:
        assert Strict.objects(db).count() == 4
        ada = db.get(Strict, "ada")
        assert ada.born == dt.date(1815, 12, 10)
        assert db.get(Strict, "grace").salary == decimal.Decimal("1234.50")
        for person in Strict.objects(db):
            person.validate()
    assert Person.validators["status"][-1].choices == ["active", "retired"]
    assert "'age': int,  # 4/4 (100%); int; 4 distinct" in source


def test_inspect_statistics_as_json_and_a_sample(people: str) -> None:
    stats = json.loads(ok("inspect", people, "--format", "json").stdout)
    assert stats["records"] == 4 and stats["sampled"] is False
    assert stats["fields"]["status"]["values"] == ["active", "retired"]
    assert stats["fields"]["born"]["types"] == {"date": 3}
    assert stats["fields"]["address"]["fields"]["city"]["present"] == 2
    sampled = json.loads(ok("inspect", people, "--format", "json", "--sample", "2").stdout)
    assert sampled["records"] == 2 and sampled["total"] == 4 and sampled["sampled"] is True
    source = ok("inspect", people).stdout
    if people.startswith(("shelve:", "sqlite:")):
        assert "\nclass People(Document):\n" in source  # named after the file
    assert re.search(r"^class [A-Z]\w*\(Document\):$", source, re.MULTILINE)


# -- copy -------------------------------------------------------------------------------------

def _copy_module() -> None:
    try:
        import doqu.copying  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"doqu.copying is not there yet: {exc}")


def test_copy_keeps_keys_and_verifies(people: str, tmp_path: Path) -> None:
    _copy_module()
    target = URLS["shelve"](tmp_path / "copy")
    result = ok("copy", people, target, "--batch", "3")
    assert "copied 4 records" in result.stderr and "verified" in result.stderr
    assert sorted(_keys(ok("dump", target).stdout)) == ["ada", "alan", "grace", "linus"]
    assert ok("dump", target, "--order-by", "name").stdout == ok("dump", people, "--order-by", "name").stdout


def test_copy_a_selection_under_new_keys(people: str, make_url: Callable[[str], str]) -> None:
    _copy_module()
    target = make_url("selection")
    ok("copy", people, target, "--where", "status=active", "--where-not", "name=Ada", "--no-keep-keys")
    records = _lines(ok("dump", target, "--order-by", "name").stdout)
    assert [r["name"] for r in records] == ["Alan", "Linus"]
    assert not {r["_key"] for r in records} & {"alan", "linus"}
    # copying the same selection again adds new records; the verification accounts for them
    ok("copy", people, target, "--where", "status=active", "--where-not", "name=Ada", "--no-keep-keys")
    assert ok("query", target, "--count").stdout == "4\n"


def test_copy_into_itself_is_refused(shelve_people: str) -> None:
    result = doqu("copy", shelve_people, shelve_people)
    assert result.returncode == 2 and "same storage" in result.stderr


# -- errors a person can act on -------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["query", "nosuch://x"], "unknown backend 'nosuch'"),
    (["query", "no-scheme-at-all"], "malformed database URL"),
    (["query", "{db}", "--where", "age__gtt=3"], "unknown operator 'gtt'"),
    (["query", "{db}", "--where", "age__gt"], "expected field__operator=value"),
    (["query", "{db}", "--where", "bad-name=1"], "invalid field path"),
    (["query", "{db}", "--where", 'born__gt={"$date":"yesterday"}'], "bad $date value"),
    (["query", "{db}", "--where", "age__between=3"], "expected two values"),
    (["query", "{db}", "--order-by", "age__gt"], "not lookups"),
    (["query", "{missing}"], "does not exist"),
    (["dump", "{missing}"], "does not exist"),
    (["inspect", "{missing}"], "does not exist"),
    (["inspect", "{db}", "--class-name", "not valid"], "not a valid Python class name"),
    (["load", "{db}", "{tmp}/nope.jsonl"], "no such file"),
    (["load", "{db}", "{tmp}"], "Is a directory"),
    (["copy", "{missing}", "{db}"], "does not exist"),
])
def test_errors_are_one_line_with_status_2(shelve_people: str, tmp_path: Path, args: list[str],
                                           message: str) -> None:
    people = shelve_people
    missing = URLS["shelve"](tmp_path / "missing")
    argv = [a.replace("{db}", people).replace("{missing}", missing).replace("{tmp}", str(tmp_path))
            for a in args]
    result = doqu(*argv)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doqu: error: ") and message in lines[0], lines
    assert result.stdout == ""


def test_usage_mistakes_exit_with_status_2() -> None:
    for argv in (["query"], ["frobnicate"], ["query", "memory://", "--limit", "-1"],
                 ["copy", "memory://", "memory://", "--batch", "0"]):
        result = doqu(*argv)
        assert result.returncode == 2 and "usage:" in result.stderr and "Traceback" not in result.stderr


def test_quiet_prints_nothing_but_the_output(tmp_path: Path, make_url: Callable[[str], str]) -> None:
    url = make_url("quiet")
    result = ok("load", url, str(_people_file(tmp_path)), "--quiet")
    assert result.stderr == "" and result.stdout == ""
    result = ok("--quiet", "dump", url, "-o", str(tmp_path / "out.json"), "--format", "json")
    assert result.stderr == ""
    assert len(json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))) == 4


def test_the_console_script_is_declared() -> None:
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("doqu") == "doqu.cli:main"
    assert ok("--version").stdout.startswith("doqu ")
    installed = shutil.which("doqu", path=os.path.dirname(sys.executable))
    if installed is None:
        pytest.skip("the doqu script is not installed next to this Python")
    result = subprocess.run([installed, "query", "memory://", "--count"], capture_output=True,
                            text=True, timeout=TIMEOUT, check=False)
    assert (result.returncode, result.stdout) == (0, "0\n")


# -- a terminal: progress bars, Ctrl-C ---------------------------------------------------------

def _on_a_terminal(argv: list[str], until: Callable[[str], bool] | None = None,
                   then: Callable[[subprocess.Popen[bytes]], None] | None = None) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; call ``then`` once the screen shows ``until``."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "doqu.cli", *argv], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
                if until is not None and then is not None and until(screen.decode("utf-8", "replace")):
                    then(process)
                    until = None
            elif process.poll() is not None:
                break
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return status, screen.decode("utf-8", "replace")


def test_progress_bars_only_on_a_terminal(tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    url = URLS["shelve"](tmp_path / "bar")
    big = tmp_path / "big.jsonl"
    big.write_text("".join(f'{{"n": {i}}}\n' for i in range(3000)), encoding="utf-8")
    status, screen = _on_a_terminal(["load", url, str(big), "--batch", "500"])
    assert status == 0
    assert "loading" in screen and "/3000" in screen and "loaded 3000 records" in screen
    status, screen = _on_a_terminal(["dump", url, "-o", str(tmp_path / "out.jsonl")])
    assert status == 0 and "dumping" in screen
    status, screen = _on_a_terminal(["dump", url, "-o", str(tmp_path / "out.jsonl"), "--quiet"])
    assert status == 0 and screen == ""
    piped = ok("load", url, str(big))  # stderr is a pipe: the summary, no bar
    assert piped.stderr == "doqu: loaded 3000 records into " + piped.stderr.split(" into ", 1)[1]
    assert "\r" not in piped.stderr and "%" not in piped.stderr


def test_ctrl_c_during_a_copy_stops_cleanly(tmp_path: Path) -> None:
    _copy_module()
    pytest.importorskip("tqdm")  # the bar tells the test that copying has begun
    source, target = URLS["shelve"](tmp_path / "big"), URLS["shelve"](tmp_path / "partial")
    total = 15000
    with _open(source) as db:
        Document.save_many([Document(n=i, text="x" * 40) for i in range(total)], db)

    status, screen = _on_a_terminal(["copy", source, target, "--batch", "100"],
                                     until=lambda text: "copying" in text,
                                     then=lambda process: process.send_signal(signal.SIGINT))
    assert status == 130, screen
    assert "interrupted after copying" in screen
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen
    with _open(target) as db:  # the target is a readable file, holding part of the copy
        assert len(db) < total
        assert all(doc["text"] == "x" * 40 for doc in db.get_query()[:50])
    with _open(source) as db:
        assert len(db) == total
