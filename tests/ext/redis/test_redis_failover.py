"""A primary of a real Redis Cluster dies during a run of saves.

With ``wait_replicas=1`` a save returns only once a replica has the write,
so after the failover every save that returned must be readable; the saves
caught by the crash must fail with :class:`doqu.ConnectionError` (the
driver's bounded timeouts and doqu's bounded retries), never hang. The
loops below are bounded by counts and deadlines; nothing asserts a duration.
"""

from __future__ import annotations

import shutil
import time
from typing import Iterator

import pytest

from doqu import ConnectionError as DoquConnectionError
from doqu import Document, get_db
from doqu.testing.engines.redis import LocalCluster, unique_prefix
from doqu.testing.registry import skip_or_fail


class Event(Document):
    structure = {"n": int, "label": str}
    indexes = ["n"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        skip_or_fail("redis-cluster", "redis-server/redis-cli not found on PATH")
    pytest.importorskip("redis")
    local = LocalCluster(node_timeout=1000)
    try:
        local.start()
    except RuntimeError as exc:
        skip_or_fail("redis-cluster", str(exc))
    yield local
    local.stop()


def _failed_over(cluster: LocalCluster, victim: int) -> bool:
    """The victim is marked failed and every slot has a live primary again."""
    live = cluster.live_ports()
    try:
        info = cluster.info(live[0], "cluster")
        primaries = cluster.primary_ports()
    except Exception:
        return False
    return info.get("cluster_state") == "ok" and victim not in primaries and len(primaries) == 3


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_acknowledged_saves_survive_a_primary_crash(cluster: LocalCluster) -> None:
    db = get_db(cluster.url, prefix=unique_prefix("failover"), wait_replicas=1, wait_timeout=500,
                socket_timeout=1.0, connect_timeout=0.5)
    acknowledged: dict[str, int] = {}
    failures: list[BaseException] = []
    counter = iter(range(1_000_000))

    def save_one() -> bool:
        n = next(counter)
        key = f"e{n}"
        try:
            db.save(Event, {"n": n, "label": f"event {n}"}, primary_key=key)
        except Exception as exc:  # anything else than ConnectionError fails the test below
            failures.append(exc)
            return False
        acknowledged[key] = n
        return True

    for _ in range(60):
        assert save_one(), failures[-1:]
    victim = next(p for p in cluster.primary_ports() if p != cluster.ports[0])
    cluster.kill(victim)

    # keep saving through the crash until the cluster has failed over (bounded)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (failures and _failed_over(cluster, victim)):
        for _ in range(20):
            save_one()
    assert failures, "killing a primary should have failed some saves"
    assert _failed_over(cluster, victim), "the cluster did not fail over within the deadline"

    # the killed node comes back as a replica of the promoted one: WAIT can succeed again
    cluster.spawn(victim)
    cluster.wait_healthy(timeout=60)
    late = []
    for _ in range(300):
        if save_one():
            late.append(True)
            if len(late) >= 60:
                break
    assert len(late) >= 60, failures[-3:]

    print(f"{len(acknowledged)} acknowledged, {len(failures)} failed:",
          sorted({type(exc).__name__ for exc in failures}))
    wrong = [exc for exc in failures if not isinstance(exc, DoquConnectionError)]
    assert not wrong, wrong[:3]
    assert all("redis" in str(exc) for exc in failures)

    db.reconnect()
    found = {doc.pk: doc.n for doc in db.get_many(Event, list(acknowledged))}
    assert found == acknowledged
    # the index saw the same writes as the records
    assert Event.objects(db).where(n__in=list(acknowledged.values())).count() == len(acknowledged)
    db.drop()
    db.disconnect()
