"""Redis engines for the conformance suite: ``redis`` and ``redis-cluster``.

``redis`` uses the server at ``DOQU_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``). ``redis-cluster`` uses the cluster at
``DOQU_TEST_REDIS_CLUSTER_URL`` if set; otherwise it starts a real cluster
of three primaries and three replicas from ``redis-server`` on free loopback
ports the first time a test needs it, and stops it when the process exits.

Every test gets its own key prefix, removed afterwards (``drop()``); the
database is never flushed. Both engines index the fields the conformance
data queries most, so the suite checks the index code against the same
hand-written answers as the evaluator; ``bio`` and the rest stay unindexed
and go through the evaluator.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from doqu import get_db
from doqu.testing.registry import Engine

__all__ = ["ENGINES", "LocalCluster", "unique_prefix", "TEST_INDEXES", "standalone_url", "cluster_url",
           "unavailable", "open_storage", "dispose"]

#: Fields the conformance data filters and orders by (not ``bio``: that one stays in Python).
TEST_INDEXES = ("name,age,city,tags,born,score,address.city,address.zip,active,weird,qty,day,at,"
                "price,n,text,colour,s,i,k,v,x")

_counter = itertools.count(1)


def unique_prefix(label: str = "t") -> str:
    """A prefix no other test (or test process) uses."""
    return f"doqu-test:{label}:{os.getpid()}:{next(_counter)}:{secrets.token_hex(3)}"


def standalone_url() -> str:
    return os.environ.get("DOQU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _ping(**kwargs: Any) -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'doqu[redis]')"
    try:
        client = redis.Redis(socket_connect_timeout=1, socket_timeout=2, **kwargs)
        try:
            client.ping()
        finally:
            client.close()
    except redis.exceptions.RedisError as exc:
        return f"cannot reach {kwargs.get('host')}:{kwargs.get('port')}: {exc}"
    return None


def standalone_unavailable() -> str | None:
    from doqu.config import parse_url

    settings = parse_url(standalone_url())
    return _ping(host=settings.get("host", "localhost"), port=settings.get("port", 6379),
                 username=settings.get("user"), password=settings.get("password"))


def dispose(db: Any) -> None:
    """Remove the test's prefix (reconnecting if the test disconnected) and close."""
    try:
        if not db.connected:
            db.connect()
        db.drop()
    finally:
        db.disconnect()


@contextlib.contextmanager
def open_storage(cluster: bool = False, **settings: Any) -> Iterator[Any]:
    """A storage under a fresh prefix on the test server or cluster, dropped afterwards.

    On the cluster it shares the session's client unless ``client`` is given
    (``client=None``: the storage makes its own, as applications do).
    """
    if cluster:
        url = cluster_url()
        assert url is not None, _cluster_problem
        if "client" not in settings:
            settings["client"] = _cluster_client(url)
    else:
        url = standalone_url()
    settings.setdefault("prefix", unique_prefix())
    db = get_db(url, **settings)
    try:
        yield db
    finally:
        dispose(db)


def unavailable(cluster: bool = False) -> str | None:
    """Why the server (or cluster) cannot be used here, or None."""
    return cluster_unavailable() if cluster else standalone_unavailable()


@contextlib.contextmanager
def _open_standalone(tmp_path: Path) -> Iterator[Any]:
    with open_storage(indexes=TEST_INDEXES) as db:
        yield db


# -- a local Redis Cluster ------------------------------------------------------------------

def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the server gets SIGTERM if the test process dies without cleaning up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _free_ports(count: int) -> list[int]:
    """Ports free on loopback, each with its cluster bus port (+10000) free too."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            first = socket.socket()
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            held.append(first)
            if port + 10000 > 65535 or port in ports:
                continue
            bus = socket.socket()
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                bus.close()
                continue
            held.append(bus)
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


class LocalCluster:
    """A throwaway Redis Cluster of real ``redis-server`` processes on loopback."""

    def __init__(self, primaries: int = 3, replicas: int = 1, node_timeout: int = 1000,
                 server: str = "redis-server", cli: str = "redis-cli") -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout = node_timeout
        self.server = shutil.which(server) or server
        self.cli = shutil.which(cli) or cli
        self.ports: list[int] = []
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.directory: str | None = None

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 60.0) -> "LocalCluster":
        last: Exception | None = None
        for _ in range(3):  # a port taken between choosing and binding: choose again
            try:
                self._start(timeout)
                return self
            except Exception as exc:
                last = exc
                self.stop()
        raise RuntimeError(f"could not start a local Redis Cluster: {last}") from last

    def _start(self, timeout: float) -> None:
        self.directory = tempfile.mkdtemp(prefix="doqu-redis-cluster-")
        self.ports = _free_ports(self.primaries * (1 + self.replicas))
        for port in self.ports:
            self.spawn(port)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            self._wait(lambda p=port: self.client(p).ping(), deadline, f"node {port} to start")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        result = subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", str(self.replicas),
             "--cluster-yes"], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")
        self.wait_healthy(deadline)

    def spawn(self, port: int) -> None:
        """Start (or restart, with its saved cluster config) the node on ``port``."""
        assert self.directory is not None
        args = [self.server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(self.node_timeout), "--dir", self.directory,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.directory, f"{port}.log")]
        self.processes[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                preexec_fn=_die_with_parent)

    def client(self, port: int) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=2,
                           decode_responses=True)

    @staticmethod
    def _wait(check: Any, deadline: float, what: str) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception as exc:
                last = exc
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}: {last}")

    def info(self, port: int, section: str) -> dict[str, str]:
        command = ("CLUSTER", "INFO") if section == "cluster" else ("INFO", section)
        client = self.client(port)
        try:
            text = client.execute_command(*command)
        finally:
            client.close()
        if isinstance(text, dict):
            return {k: str(v) for k, v in text.items()}
        return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)

    def live_ports(self) -> list[int]:
        return [port for port, proc in self.processes.items() if proc.poll() is None]

    def wait_healthy(self, deadline: float | None = None, timeout: float = 60.0) -> None:
        """Every live node: cluster_state ok, all nodes known; every replica linked to its primary."""
        deadline = deadline or time.monotonic() + timeout
        live = self.live_ports()

        def healthy() -> bool:
            for port in live:
                cluster = self.info(port, "cluster")
                if cluster.get("cluster_state") != "ok" or int(cluster.get("cluster_known_nodes", 0)) < len(self.ports):
                    return False
                replication = self.info(port, "replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False
            return True

        self._wait(healthy, deadline, "the cluster to be healthy")

    def primary_ports(self) -> list[int]:
        """Ports of the live primaries that own slots."""
        for port in self.live_ports():
            client = self.client(port)
            try:
                text = client.execute_command("CLUSTER", "NODES")
            except Exception:
                continue
            finally:
                client.close()
            found = []
            lines = text if isinstance(text, list) else str(text).splitlines()
            for line in lines:
                fields = str(line).split()
                if len(fields) >= 9 and "master" in fields[2] and "fail" not in fields[2]:
                    found.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
            return sorted(found)
        return []

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would."""
        proc = self.processes[port]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.processes.clear()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


_cluster_lock = threading.Lock()
_cluster: LocalCluster | None = None
_cluster_problem: str | None = None


def cluster_url() -> str | None:
    """The session's cluster, started on first use (None if it cannot run; see the reason)."""
    global _cluster, _cluster_problem
    given = os.environ.get("DOQU_TEST_REDIS_CLUSTER_URL")
    if given:
        return given
    with _cluster_lock:
        if _cluster is None and _cluster_problem is None:
            if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
                _cluster_problem = "redis-server/redis-cli not found on PATH (set DOQU_TEST_REDIS_CLUSTER_URL)"
            else:
                try:
                    import redis  # noqa: F401
                except ImportError:
                    _cluster_problem = "redis-py is not installed (pip install 'doqu[redis]')"
            if _cluster_problem is None:
                try:
                    _cluster = LocalCluster().start()
                    atexit.register(_cluster.stop)
                except Exception as exc:
                    _cluster_problem = str(exc)
        return _cluster.url if _cluster is not None else None


def cluster_unavailable() -> str | None:
    url = cluster_url()
    if url is None:
        return _cluster_problem
    from doqu.config import parse_url

    settings = parse_url(url)
    return _ping(host=settings.get("host", "localhost"), port=settings.get("port", 6379),
                 username=settings.get("user"), password=settings.get("password"))


_shared_client: Any = None


def _cluster_client(url: str) -> Any:
    """One RedisCluster client for the whole session: making one costs a COMMAND and a
    CLUSTER SLOTS round, far more than a test. It speaks redis-py's default protocol
    (RESP3), while storages that make their own client use RESP2: both get exercised."""
    global _shared_client
    with _cluster_lock:
        if _shared_client is None:
            import redis

            from doqu.config import parse_url

            settings = parse_url(url)
            _shared_client = redis.RedisCluster(host=settings.get("host", "localhost"),
                                                port=settings.get("port", 6379),
                                                username=settings.get("user"),
                                                password=settings.get("password"),
                                                socket_timeout=5, socket_connect_timeout=2)
            atexit.register(_shared_client.close)
        return _shared_client


@contextlib.contextmanager
def _open_cluster(tmp_path: Path) -> Iterator[Any]:
    with open_storage(cluster=True, indexes=TEST_INDEXES) as db:
        yield db


ENGINES = [
    Engine("redis", open=_open_standalone, unavailable=standalone_unavailable),
    Engine("redis-cluster", open=_open_cluster, unavailable=cluster_unavailable),
]
