"""Several databases: config, binding, routers, per-request defaults, and the docs page."""

from __future__ import annotations

import asyncio
import doctest
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from doqu import ConfigurationError, Document, get_db
from doqu import routing
from doqu.databases import DatabaseRegistry, databases_from_config

ROOT = Path(__file__).resolve().parents[1]


class Post(Document):
    structure = {"title": str}


class LogEntry(Document):
    structure = {"message": str}
    database = "log"


class AuditEntry(LogEntry):
    """Inherits ``database = 'log'``."""


class Visit(Document):
    structure = {"path": str}


@pytest.fixture(autouse=True)
def no_active_registry() -> Iterator[None]:
    """Every test starts and ends without a process-wide registry."""
    routing._activate(None)
    yield
    routing._activate(None)


@pytest.fixture
def dbs() -> Iterator[DatabaseRegistry]:
    registry = DatabaseRegistry({"default": "memory://", "log": "memory://", "other": "memory://"})
    yield registry
    registry.close()


# -- config -------------------------------------------------------------------------

def test_config_coerces_types_and_ignores_foreign_keys(tmp_path: Path) -> None:
    config = {
        "doqu.default.url": "memory://",
        "doqu.log.url": f"shelve:///{tmp_path}/log.db",
        "doqu.log.sync": " yes ",
        "app.debug": "true",
        "doqu_like.x.url": "nonsense",
    }
    dbs = databases_from_config(config)
    assert sorted(dbs) == ["default", "log"]
    assert dbs["log"].settings["sync"] is True
    assert dbs["log"].settings["path"] == f"{tmp_path}/log.db"
    dbs.close()


def test_config_connects_lazily_and_close_disconnects(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    dbs = databases_from_config({"doqu.default.backend": "shelve", "doqu.default.path": str(path)})
    assert list(tmp_path.iterdir()) == []  # nothing opened yet
    storage = dbs["default"]
    assert storage.connected and list(tmp_path.iterdir())
    storage.save(None, {"x": 1}, primary_key="k")
    dbs.close()
    assert not storage.connected
    assert dbs["default"].get(Document, "k")["x"] == 1  # the next use connects again
    dbs.close()


def test_config_url_options_are_overridden_by_keys() -> None:
    dbs = databases_from_config({"db.default.url": "shelve:///a.db?sync=no", "db.default.path": "b.db",
                                 "db.default.sync": "on"}, prefix="db")
    entry = dbs._entries["default"]
    assert entry.settings == {"backend": "shelve", "path": "b.db", "sync": True}


@pytest.mark.parametrize("key", [
    "doqu.default", "doqu.default.url.extra", "doqu..url", "doqu.bad name.url",
    "doqu.default.", "doqu.default.9lives",
])
def test_malformed_config_keys_are_named(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        databases_from_config({"doqu.ok.url": "memory://", key: "memory://"})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize("config,key", [
    ({"doqu.log.url": "memory://", "doqu.log.colour": "red"}, "doqu.log.colour"),
    ({"doqu.log.url": "nosuch://x"}, "doqu.log.url"),
    ({"doqu.log.backend": "nosuchengine"}, "doqu.log.backend"),
    ({"doqu.log.url": "redis://host:notaport/0"}, "doqu.log.url"),
    ({"doqu.log.url": "shelve:///x.db", "doqu.log.sync": "perhaps"}, "doqu.log.sync"),
    ({"doqu.log.url": "shelve:///x.db?sync=perhaps"}, "doqu.log.url"),
    ({"doqu.log.prefix": "log"}, "doqu.log"),
    ({"doqu.log.url": 5}, "doqu.log.url"),
])
def test_config_errors_name_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        databases_from_config(config)
    assert key in str(info.value)


def test_config_missing_required_setting() -> None:
    with pytest.raises(ConfigurationError) as info:
        databases_from_config({"doqu.files.backend": "shelve"})
    assert "'doqu.files.path'" in str(info.value)


def test_config_with_no_databases() -> None:
    with pytest.raises(ConfigurationError) as info:
        databases_from_config({"other.thing": 1})
    assert "doqu.default.url" in str(info.value)
    with pytest.raises(ConfigurationError):
        databases_from_config("doqu.default.url=memory://")  # type: ignore[arg-type]


def test_registry_add_and_errors(dbs: DatabaseRegistry) -> None:
    with pytest.raises(ConfigurationError, match="already configured"):
        dbs.add("log", "memory://")
    with pytest.raises(ConfigurationError, match="'colour'"):
        dbs.add("x", {"backend": "memory", "colour": "red"})
    with pytest.raises(ConfigurationError):
        dbs.add("bad name", "memory://")
    with pytest.raises(ConfigurationError):
        dbs.add("y", 42)
    assert "x" not in dbs and "y" not in dbs
    with pytest.raises(ConfigurationError, match="no database named 'nope'"):
        dbs["nope"]
    mine = get_db("memory://")
    dbs.add("mine", mine)
    assert dbs["mine"] is mine
    old = dbs["other"]
    dbs.add("other", "memory://", replace=True)
    assert not old.connected and dbs["other"] is not old
    dbs.discard("mine")
    assert "mine" not in dbs and not mine.connected


# -- binding and routers -------------------------------------------------------------------

def test_class_attribute_binding_and_default(dbs: DatabaseRegistry) -> None:
    dbs.activate()
    post_key = Post(title="p").save()
    LogEntry(message="m").save()
    AuditEntry(message="a").save()
    assert sorted(dbs["default"]) == [post_key]
    assert len(dbs["log"]) == 2 and len(dbs["other"]) == 0
    assert [p.title for p in Post.objects()] == ["p"]
    assert sorted(e["message"] for e in LogEntry.objects()) == ["a", "m"]
    assert Post.object(None, post_key).title == "p"


def test_registry_bind_wins_over_attribute_and_is_inherited(dbs: DatabaseRegistry) -> None:
    dbs.activate()
    dbs.bind(Visit, "other")
    dbs.bind(AuditEntry, "other")
    Visit(path="/").save()
    AuditEntry(message="a").save()
    LogEntry(message="m").save()
    assert len(dbs["other"]) == 2 and len(dbs["log"]) == 1
    Special = type("Special", (Visit,), {})  # a subclass of a bound class
    assert dbs.name_for(Special) == "other"
    dbs.unbind(Visit)
    assert dbs.name_for(Special) == "default"
    with pytest.raises(ConfigurationError, match="nope"):
        dbs.bind(Visit, "nope")
    with pytest.raises(ConfigurationError):
        dbs.bind(object, "log")  # type: ignore[arg-type]


def test_save_many_and_save_as_without_storage(dbs: DatabaseRegistry) -> None:
    dbs.activate()
    keys = LogEntry.save_many([LogEntry(message=str(i)) for i in range(3)])
    assert sorted(dbs["log"]) == sorted(keys)
    post = Post(title="x")
    post.save()
    copy = post.save_as()
    assert copy.storage is dbs["default"] and len(dbs["default"]) == 2


def test_routers_first_answer_wins(dbs: DatabaseRegistry) -> None:
    class Replicas:
        def db_for_read(self, doc_class: type) -> str | None:
            return "other" if doc_class is Post else None

    class Everything:
        def db_for_read(self, doc_class: type) -> str | None:
            return "log"

        def db_for_write(self, doc_class: type) -> str | None:
            return None

    dbs.add_router(Replicas())
    dbs.add_router(Everything())
    assert dbs.name_for(Post) == "other"
    assert dbs.name_for(Visit) == "log"
    assert dbs.name_for(Post, write=True) == "default"
    assert dbs.name_for(LogEntry, write=True) == "log"
    with pytest.raises(ConfigurationError):
        dbs.add_router(object())


def test_router_bad_answers(dbs: DatabaseRegistry) -> None:
    class Broken:
        def db_for_write(self, doc_class: type) -> Any:
            return 3

    class Unknown:
        def db_for_write(self, doc_class: type) -> Any:
            return "missing"

    dbs.activate()
    dbs.routers = [Broken()]
    with pytest.raises(ConfigurationError, match="returned 3"):
        Post(title="x").save()
    dbs.routers = [Unknown()]
    with pytest.raises(ConfigurationError, match="missing"):
        Post(title="x").save()
    assert sum(len(dbs[n]) for n in dbs) == 0


def test_loaded_document_saves_back_to_its_storage(dbs: DatabaseRegistry) -> None:
    dbs.activate()
    key = dbs["other"].save(Post, {"title": "elsewhere"})
    doc = Post.object(dbs["other"], key)
    doc.title = "changed"
    assert doc.save() == key
    assert dbs["other"].get(Post, key).title == "changed"
    assert len(dbs["default"]) == 0


def test_without_an_active_registry_the_error_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError) as info:
        Post.objects()
    assert "Post.objects(db)" in str(info.value) and "activate()" in str(info.value)
    with pytest.raises(ConfigurationError):
        Post(title="x").save()


def test_activation_is_explicit_and_reversible(dbs: DatabaseRegistry) -> None:
    other = DatabaseRegistry({"default": "memory://"})
    assert routing.current_registry() is None  # creating registries activates nothing
    dbs.activate()
    assert routing.current_registry() is dbs
    other.deactivate()  # not the active one: no effect
    assert routing.current_registry() is dbs
    with other.activate():
        assert routing.current_registry() is other
    assert routing.current_registry() is None  # leaving the block deactivated it
    dbs.activate()
    dbs.deactivate()
    assert routing.current_registry() is None


def test_importing_activates_nothing() -> None:
    code = ("import doqu, doqu.databases, doqu.routing, doqu.copying, doqu.ext.sharded\n"
            "from doqu.databases import databases_from_config\n"
            "databases_from_config({'doqu.default.url': 'memory://'})\n"
            "assert doqu.routing.current_registry() is None\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- per request --------------------------------------------------------------------------

def test_using_changes_the_default_only(dbs: DatabaseRegistry) -> None:
    with dbs.using("other"):
        assert routing.current_registry() is dbs  # using() also makes the registry current
        Post(title="in other").save()
        LogEntry(message="still log").save()
        with dbs.using("default"):
            Post(title="in default").save()
        Post(title="other again").save()
    assert sorted(p["title"] for p in dbs["other"].get_query()) == ["in other", "other again"]
    assert [p["title"] for p in dbs["default"].get_query()] == ["in default"]
    assert len(dbs["log"]) == 1
    assert routing.current_registry() is None
    with pytest.raises(ConfigurationError, match="nope"):
        with dbs.using("nope"):
            pass


def test_using_another_registry_inside_an_active_one(dbs: DatabaseRegistry) -> None:
    dbs.activate()
    other = DatabaseRegistry({"default": "memory://"})
    with other.using():
        Post(title="x").save()
    Post(title="y").save()
    assert len(other["default"]) == 1 and len(dbs["default"]) == 1


def test_factory_makes_databases_on_demand(tmp_path: Path) -> None:
    made = []

    def per_blog(name: str) -> str | None:
        if name.startswith("blog_"):
            made.append(name)
            return f"shelve:///{tmp_path}/{name}.db"
        return None

    dbs = DatabaseRegistry({"default": "memory://"}, factory=per_blog)
    with dbs.using("blog_1"):
        Post(title="one").save()
    with dbs.using("blog_1"):
        assert [p.title for p in Post.objects()] == ["one"]
    with pytest.raises(ConfigurationError):
        dbs.using("nothing").__enter__()
    assert made == ["blog_1"]
    dbs.close()


BLOGS = 6
POSTS = 15


def _check_landing(dbs: DatabaseRegistry) -> None:
    for blog in range(BLOGS):
        titles = sorted(p.title for p in dbs[f"blog_{blog}"].get_query(Post))
        assert titles == sorted(f"{blog}-{n}" for n in range(POSTS)), blog
    assert len(dbs["default"]) == 0
    assert len(dbs["log"]) == BLOGS * POSTS


def test_using_is_per_thread() -> None:
    dbs = DatabaseRegistry({"default": "memory://", "log": "memory://",
                            **{f"blog_{i}": "memory://" for i in range(BLOGS)}})
    dbs.activate()
    barrier = threading.Barrier(BLOGS, timeout=10)
    errors: list[BaseException] = []

    def request(blog: int) -> None:
        try:
            with dbs.using(f"blog_{blog}"):
                barrier.wait()  # every thread is inside its own using() at once
                for n in range(POSTS):
                    Post(title=f"{blog}-{n}").save()
                    LogEntry(message=f"{blog}-{n}").save()
                    barrier.wait()  # interleave the threads' saves
                assert Post.objects().count() == POSTS
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(BLOGS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    _check_landing(dbs)
    dbs.close()


def test_using_is_per_asyncio_task() -> None:
    dbs = DatabaseRegistry({"default": "memory://", "log": "memory://",
                            **{f"blog_{i}": "memory://" for i in range(BLOGS)}})
    inside = 0

    async def request(blog: int, everyone_inside: asyncio.Event) -> None:
        nonlocal inside
        with dbs.using(f"blog_{blog}"):
            inside += 1
            if inside == BLOGS:
                everyone_inside.set()
            await everyone_inside.wait()
            for n in range(POSTS):
                Post(title=f"{blog}-{n}").save()
                await asyncio.sleep(0)  # let the other tasks run in between
                LogEntry(message=f"{blog}-{n}").save()
                await asyncio.sleep(0)
            assert Post.objects().count() == POSTS

    async def main() -> None:
        everyone_inside = asyncio.Event()
        await asyncio.gather(*(request(i, everyone_inside) for i in range(BLOGS)))

    with dbs.using():  # the tasks copy this context: the registry, with no default override
        asyncio.run(main())
    _check_landing(dbs)
    dbs.close()


# -- the docs page ------------------------------------------------------------------------

def test_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```pycon block of docs/databases.md, in order, as one session."""
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "databases.md").read_text()
    blocks = [(m.start(), m.group(1)) for m in re.finditer(r"```pycon\n(.*?)```", text, re.S)]
    assert len(blocks) >= 6
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict[str, Any] = {}
    for offset, block in blocks:
        lineno = text.count("\n", 0, offset) + 1
        test = parser.get_doctest(block, globs, f"databases.md:{lineno}", "docs/databases.md", lineno)
        runner.run(test, clear_globs=False)
        globs = test.globs  # DocTest copies its globals: carry them to the next block
    assert runner.failures == 0, f"{runner.failures} failing examples in docs/databases.md (see output)"
