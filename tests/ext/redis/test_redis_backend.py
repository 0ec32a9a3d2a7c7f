"""The Redis backend on a single server: settings, keys, layout, writes, indexes, errors.

Runs against the server at DOQU_TEST_REDIS_URL (default 127.0.0.1:6379),
each test under its own key prefix (never flushing the database), and
against private ``redis-server`` processes where a test must kill the
server or count the commands it received.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import doqu
from doqu import Document, get_db
from doqu.errors import ConfigurationError, QueryError, StorageError
from doqu.testing.engines.redis import dispose, standalone_url, unavailable, unique_prefix
from doqu.testing.registry import skip_or_fail

redis = pytest.importorskip("redis")


@pytest.fixture(autouse=True)
def _server() -> None:
    reason = unavailable()
    if reason:
        skip_or_fail("redis", reason)


@pytest.fixture
def make_db() -> Iterator[Callable[..., Any]]:
    """Storages on the test server; every prefix used is dropped afterwards."""
    made: list[Any] = []

    def make(**settings: Any) -> Any:
        settings.setdefault("prefix", unique_prefix("ext"))
        db = get_db(standalone_url(), **settings)
        made.append(db)
        return db

    yield make
    for db in reversed(made):
        dispose(db)


@pytest.fixture
def raw() -> Iterator[Any]:
    """A plain redis-py client on the test server, to look behind doqu's back."""
    settings = doqu.config.parse_url(standalone_url())
    client = redis.Redis(host=settings.get("host", "localhost"), port=settings.get("port", 6379),
                         db=int(settings.get("database") or 0))
    yield client
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateServer:
    """A redis-server of our own, to kill, restart, or count commands on."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
            finally:
                client.close()
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self) -> Any:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def calls(self, command: str) -> int:
        client = self.client()
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivateServer]:
    if shutil.which("redis-server") is None:
        skip_or_fail("redis", "redis-server not found on PATH")
    server = PrivateServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Person(Document):
    structure = {"name": str, "age": int, "city": str, "price": decimal.Decimal, "born": dt.date}


# -- settings --------------------------------------------------------------------------------

def test_string_settings_from_the_url_are_converted() -> None:
    prefix = unique_prefix("url")
    db = get_db(f"{standalone_url()}?prefix={prefix}&batch_size=7&wait_timeout=50"
                f"&socket_timeout=2.5&shards=3&indexes=age,city")
    try:
        assert db.prefix == prefix
        assert (db.batch_size, db.wait_timeout, db.socket_timeout) == (7, 50, 2.5)
        assert db._layout.shards == 3
        assert db.indexed_fields == {"age", "city"}
        assert prefix in db.describe_location()
    finally:
        dispose(db)


@pytest.mark.parametrize("settings,named", [
    ({"batch_size": "many"}, "batch_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"wait_replicas": -1}, "wait_replicas"),
    ({"prefix": "a{b}"}, "prefix"),
    ({"prefix": ""}, "prefix"),
    ({"cluster": True, "database": 2}, "database"),
    ({"shards": 20000}, "shards"),
    ({"colour": "red"}, "colour"),
    ({"indexes": 5}, "indexes"),
])
def test_bad_settings_are_refused_with_their_name(settings: dict[str, Any], named: str) -> None:
    settings.setdefault("prefix", unique_prefix("bad"))
    with pytest.raises(ConfigurationError) as info:
        get_db(standalone_url(), **settings)
    assert named in str(info.value)


def test_the_shard_count_is_fixed_when_a_prefix_is_first_used(make_db: Any) -> None:
    first = make_db(shards=4)
    first.save(None, {"n": 1}, primary_key="k")
    with pytest.raises(ConfigurationError) as info:
        get_db(standalone_url(), prefix=first.prefix, shards=2)
    assert "4 shards" in str(info.value)
    again = get_db(standalone_url(), prefix=first.prefix)
    assert again._layout.shards == 4 and again.get(Document, "k")["n"] == 1
    again.disconnect()


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now fails
    with pytest.raises(ConfigurationError) as info:
        get_db(standalone_url(), prefix=unique_prefix("nodriver"))
    assert "doqu[redis]" in str(info.value)


def test_unreachable_server_names_the_address_but_not_the_password() -> None:
    port = _free_port()
    with pytest.raises(doqu.ConnectionError) as info:
        get_db(f"redis://ada:s3cret@127.0.0.1:{port}/0", prefix="p", connect_timeout=0.5)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_refused_credentials_are_a_connection_error_without_the_password() -> None:
    settings = doqu.config.parse_url(standalone_url())
    url = f"redis://nobody:s3cret@{settings.get('host', 'localhost')}:{settings.get('port', 6379)}/0"
    with pytest.raises(doqu.ConnectionError) as info:
        get_db(url, prefix=unique_prefix("auth"))
    assert "credentials" in str(info.value) and "s3cret" not in str(info.value)


def test_a_lost_server_raises_connection_error_and_reconnect_recovers(private_server: PrivateServer) -> None:
    db = get_db(private_server.url, prefix="lost", connect_timeout=0.5, socket_timeout=1)
    db.save(None, {"n": 1}, primary_key="k")
    private_server.stop()
    with pytest.raises(doqu.ConnectionError) as info:
        db.save(None, {"n": 2}, primary_key="k2")
    assert str(private_server.port) in str(info.value)
    with pytest.raises(doqu.ConnectionError):
        db.get(Document, "k")
    with pytest.raises(doqu.ConnectionError):
        Person.objects(db).count()
    private_server.start()  # an empty server: the old one kept nothing on disk
    db.reconnect()
    db.save(None, {"n": 3}, primary_key="k3")
    assert db.get(Document, "k3")["n"] == 3
    db.disconnect()


def test_connections_the_server_closed_are_replaced(private_server: PrivateServer) -> None:
    db = get_db(private_server.url, prefix="idle", indexes="n")
    db.save(None, {"n": 1}, primary_key="k")
    admin = private_server.client()
    try:
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    finally:
        admin.close()
    db.save(None, {"n": 2}, primary_key="k2")  # a write: not resent, so it must not need to be
    assert Document.objects(db).where(n__gte=1).count() == 2
    db.disconnect()


# -- layout and keys -------------------------------------------------------------------------------

def test_a_record_is_one_json_string_and_its_key_is_in_the_key_set(make_db: Any, raw: Any) -> None:
    db = make_db()
    Person(name="Ada", price=decimal.Decimal("3.141592653589793238462643383279"),
           born=dt.date(1815, 12, 10)).save(db)
    key = next(iter(db))
    stored = raw.get(f"{{{db.prefix}:0}}:r:{key}".encode())
    assert stored == ('{"name":"Ada","price":3.141592653589793238462643383279,'
                      '"born":"1815-12-10"}').encode()
    assert raw.sismember(f"{{{db.prefix}:0}}:k".encode(), key)
    assert db.get(Person, key).price == decimal.Decimal("3.141592653589793238462643383279")


def test_clear_and_drop_touch_only_their_own_prefix(make_db: Any, raw: Any) -> None:
    base = unique_prefix("mine")
    mine = make_db(prefix=base, indexes="n")
    longer = make_db(prefix=base + ":more", indexes="n")
    similar = make_db(prefix=base + "x")
    for db in (mine, longer, similar):
        for i in range(5):
            db.save(None, {"n": i})
    mine.clear()
    assert len(mine) == 0 and Person.objects(mine).where(n__gte=0).count() == 0
    assert len(longer) == 5 and len(similar) == 5
    assert longer.verify_indexes() == []
    assert mine.save(None, {"n": 9}) == "1"  # clear() restarts the generated keys
    mine.drop()
    left = [k for k in raw.scan_iter(match=f"*{base}*".encode(), count=1000)
            if k.startswith((f"{{{base}:0}}".encode(), f"{{{base}:meta}}".encode()))]
    assert left == []
    assert len(longer) == 5 and len(similar) == 5


def test_generated_keys_skip_keys_already_taken(make_db: Any) -> None:
    db = make_db()
    db.save(None, {"v": "mine"}, primary_key="1")
    db.save(None, {"v": "mine too"}, primary_key="3")
    generated = [db.save(None, {"v": i}) for i in range(4)]
    assert not {"1", "3"} & set(generated)
    assert db.get(Document, "1")["v"] == "mine" and db.get(Document, "3")["v"] == "mine too"
    keys = db.save_many(Document({"v": i}) for i in range(5))
    assert len(set(keys) | set(generated) | {"1", "3"}) == 11


def test_generated_keys_are_unique_across_clients_and_threads(make_db: Any) -> None:
    first = make_db()
    second = make_db(prefix=first.prefix)
    found: list[str] = []
    lock = threading.Lock()

    def work(db: Any) -> None:
        mine = [db.save(None, {"t": 1}) for _ in range(30)]
        mine += db.save_many(Document({"t": 2}) for _ in range(30))
        with lock:
            found.extend(mine)

    threads = [threading.Thread(target=work, args=(db,)) for db in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == 240 == len(set(found)) == len(first)


# -- writes, transactions, concurrency --------------------------------------------------------------

def test_a_failed_transaction_restores_records_byte_for_byte(make_db: Any, raw: Any) -> None:
    db = make_db(indexes="name,price")
    Person(name="Ada", price=decimal.Decimal("0.1000000000000000000001")).save(db)
    db.save(Person, {"name": "Bob"}, primary_key="bob")
    ada = Person.objects(db).where(name="Ada").first()
    key = f"{{{db.prefix}:0}}:r:{ada.pk}".encode()
    before = raw.get(key)
    with pytest.raises(RuntimeError):
        with db.transaction():
            ada.name = "Ada Lovelace"
            ada.save()
            db.delete("bob")
            db.save(Person, {"name": "Carl"}, primary_key="carl")
            raise RuntimeError("boom")
    assert raw.get(key) == before
    assert sorted(db) == sorted([ada.pk, "bob"])
    assert Person.objects(db).where(name="Ada").keys() == [ada.pk]
    assert Person.objects(db).where(name__startswith="Ada L").count() == 0
    assert db.verify_indexes() == []


def test_a_failed_save_many_writes_nothing_and_leaves_indexes_exact(make_db: Any) -> None:
    db = make_db(indexes="age")
    db.save(Person, {"name": "keep", "age": 1}, primary_key="keep")
    docs = [Person(name=str(i), age=i) for i in range(10)]
    docs[7]._data["age"] = {1, 2}  # passes validation, refused when encoding
    with pytest.raises(doqu.DoquError):
        db.save_many(docs)
    assert sorted(db) == ["keep"]
    assert db.verify_indexes() == []


def test_indexes_stay_exact_under_concurrent_writers(make_db: Any) -> None:
    first = make_db(indexes="n,tag")
    second = make_db(prefix=first.prefix)
    assert second.indexed_fields == {"n", "tag"}
    values: list[Any] = [1, 2, 2.5, "x", "y", True, None, [1], {"a": 1}, 2 ** 60 + 1]

    def work(db: Any, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(120):
            key = f"k{rng.randrange(12)}"
            if rng.random() < 0.15:
                try:
                    db.delete(key)
                except KeyError:
                    pass
            else:
                db.save(None, {"n": rng.choice(values), "tag": rng.choice(values)}, primary_key=key)

    threads = [threading.Thread(target=work, args=(db, seed))
               for seed, db in enumerate((first, second, first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert first.verify_indexes() == []
    records = {key: first.get(Document, key).dump() for key in first}
    assert Person.objects(first).where(n=2).count() == sum(
        1 for r in records.values() if r.get("n") == 2 and not isinstance(r.get("n"), bool))


def test_a_writer_with_an_old_index_registry_maintains_new_indexes(make_db: Any) -> None:
    writer = make_db()
    indexer = make_db(prefix=writer.prefix)
    writer.save(None, {"n": 1}, primary_key="before")
    indexer.ensure_index("n")
    assert "n" not in writer.indexed_fields  # it has not heard of the index yet
    writer.save(None, {"n": 5}, primary_key="after")  # the bucket demands the new registry: it reloads
    assert "n" in writer.indexed_fields
    query = Person.objects(indexer).where(n=5)
    assert "ZRANGEBYSCORE" in query.explain()
    assert query.keys() == ["after"]
    assert indexer.verify_indexes() == []


def test_ensure_index_builds_over_existing_records_in_batches(make_db: Any) -> None:
    db = make_db(batch_size=7)
    values = [3, -1, 2.5, "3", "abc", True, None, [3], {"n": 3}, 10 ** 30, 2 ** 53 + 1]
    for i in range(60):
        db.save(None, {"n": values[i % len(values)], "i": i}, primary_key=f"r{i}")
    query = Person.objects(db).where(n__gt=2)
    assert "stream every record" in query.explain()
    expected = set(query.keys())
    assert db.ensure_index("n") is True
    assert "ZRANGEBYSCORE" in query.explain()
    assert set(query.keys()) == expected and query.count() == len(expected)
    assert db.verify_indexes() == []
    assert db.ensure_index("n") is True  # again: nothing to do


def test_document_indexes_are_ensured_on_first_use(make_db: Any) -> None:
    class Indexed(Document):
        structure = {"age": int, "city": str, "name": str}
        indexes = ["age", ("city", "name")]

    db = make_db()
    Indexed(age=3, city="Oslo", name="x").save(db)
    assert {"age", "city", "name"} <= db.indexed_fields
    text = Indexed.objects(db).where(age__gte=3, city="Oslo").explain()
    assert "ZRANGEBYSCORE" in text and "ZRANGEBYLEX" in text and "python filter: (none)" in text


def test_ensure_index_takes_field_paths_only(make_db: Any) -> None:
    db = make_db()
    for bad in ["age__gt", "a-b", "", 5]:
        with pytest.raises(QueryError):
            db.ensure_index(bad)
    assert db.ensure_index("address__city") and "address.city" in db.indexed_fields


def test_count_of_an_indexed_condition_reads_no_record(private_server: PrivateServer) -> None:
    db = get_db(private_server.url, prefix="count", indexes="age")
    db.save_many(Person(name=str(i), age=i) for i in range(50))
    reads = private_server.calls("mget") + private_server.calls("get")
    assert Person.objects(db).where(age__gte=10).count() == 40
    assert Person.objects(db).where_not(age__gte=10).count() == 10
    assert private_server.calls("mget") + private_server.calls("get") == reads
    assert private_server.calls("zcount") >= 2
    db.disconnect()


# -- clients, replicas, foreign data ---------------------------------------------------------------

def test_a_shared_client_speaking_resp3_works_and_stays_open(make_db: Any) -> None:
    settings = doqu.config.parse_url(standalone_url())
    client = redis.Redis(host=settings.get("host", "localhost"), port=settings.get("port", 6379))
    try:
        assert client.get_connection_kwargs().get("protocol") in (None, 3)
        db = make_db(client=client, indexes="age,name")
        db.save_many(Person(name=f"n{i}", age=i % 4) for i in range(20))
        assert [d.age for d in Person.objects(db).order_by("-age")[:3]] == [3, 3, 3]
        assert Person.objects(db).where(age__in=[1, 2]).count() == 10
        assert db.verify_indexes() == []
        db.disconnect()
        assert client.ping()
        db.connect()
    finally:
        client.close()


def test_a_shared_client_must_return_bytes() -> None:
    settings = doqu.config.parse_url(standalone_url())
    client = redis.Redis(host=settings.get("host", "localhost"), port=settings.get("port", 6379),
                         decode_responses=True)
    try:
        with pytest.raises(ConfigurationError) as info:
            get_db(standalone_url(), prefix=unique_prefix("decoded"), client=client)
        assert "decode_responses" in str(info.value)
    finally:
        client.close()


def test_wait_replicas_refuses_a_save_no_replica_acknowledged(make_db: Any) -> None:
    db = make_db(wait_replicas=1, wait_timeout=20)  # the test server has no replicas
    with pytest.raises(doqu.ConnectionError) as info:
        db.save(None, {"n": 1}, primary_key="k")
    assert isinstance(info.value, doqu.ext.redis.ReplicationError)
    assert "0 of 1 replicas" in str(info.value)
    assert "k" not in db  # the failed save was undone


def test_a_record_that_is_not_doqu_json_is_reported_and_can_be_overwritten(make_db: Any, raw: Any) -> None:
    db = make_db(indexes="n")
    db.save(None, {"n": 1}, primary_key="k")
    raw.set(f"{{{db.prefix}:0}}:r:k".encode(), b"\xff not json")
    with pytest.raises(StorageError) as info:
        db.get(Document, "k")
    assert "'k'" in str(info.value)
    db.save(None, {"n": 2}, primary_key="k")
    assert db.get(Document, "k")["n"] == 2


def test_values_outside_json_round_trip(make_db: Any) -> None:
    db = make_db(indexes="s")
    for i, text in enumerate(["lone \udcff surrogate", "nul\x00", "\u2028", "ünï"]):
        db.save(None, {"s": text}, primary_key=f"k{i}\x00\udcff")
        assert db.get(Document, f"k{i}\x00\udcff")["s"] == text
        assert Person.objects(db).where(s=text).keys() == [f"k{i}\x00\udcff"]
    assert db.verify_indexes() == []


def test_deleting_through_an_index_keeps_it_exact(make_db: Any) -> None:
    db = make_db(indexes="age")
    db.save_many(Person(name=str(i), age=i) for i in range(30))
    assert Person.objects(db).where(age__gte=10).where_not(age=15).delete() == 19
    assert sorted(d.age for d in Person.objects(db)) == list(range(10)) + [15]
    assert Person.objects(db).where(age__gte=0).count() == 11
    assert db.verify_indexes() == []


def test_a_lost_index_registry_is_reported_not_retried_forever(make_db: Any, raw: Any) -> None:
    db = make_db(indexes="n")
    db.save(None, {"n": 1}, primary_key="k")
    raw.delete(f"{{{db.prefix}:meta}}:version".encode())
    other = make_db(prefix=db.prefix)
    with pytest.raises(StorageError) as info:
        other.save(None, {"n": 2}, primary_key="k2")
    assert "registry" in str(info.value)
