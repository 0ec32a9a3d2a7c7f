"""Redis Cluster specifics: records spread over the nodes, writes batched per node.

Uses the session's local cluster (three primaries, three replicas) from
``doqu.testing.engines.redis``, or DOQU_TEST_REDIS_CLUSTER_URL.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from doqu import Document
from doqu.ext.redis.keys import SLOTS
from doqu.testing.engines.redis import cluster_url, open_storage, unavailable
from doqu.testing.registry import skip_or_fail

redis = pytest.importorskip("redis")


class Item(Document):
    structure = {"n": int, "name": str}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A plain redis-py cluster client, to look behind doqu's back."""
    reason = unavailable(cluster=True)
    if reason:
        skip_or_fail("redis-cluster", reason)
    from doqu.config import parse_url

    settings = parse_url(cluster_url() or "")
    client = redis.RedisCluster(host=settings["host"], port=settings["port"], protocol=2)
    yield client
    client.close()


def _owner(cluster: Any, slot: int) -> str:
    return str(cluster.nodes_manager.get_node_from_slot(slot).name)


def test_buckets_spread_evenly_over_the_slot_space_and_the_primaries(cluster: Any) -> None:
    with open_storage(cluster=True) as db:
        layout = db._layout
        assert layout.shards == 16
        for index, slot in enumerate(layout.slots):
            assert index * SLOTS // 16 <= slot < (index + 1) * SLOTS // 16
        owners = [_owner(cluster, slot) for slot in layout.slots]
        primaries = {node.name for node in cluster.get_primaries()}
        assert set(owners) == primaries
        assert min(owners.count(name) for name in primaries) >= 4  # 16 buckets over 3 nodes


def test_records_land_on_every_primary(cluster: Any) -> None:
    with open_storage(cluster=True, indexes="n") as db:
        keys = db.save_many(Item(n=i, name=f"item {i}") for i in range(300))
        layout = db._layout
        per_node: dict[str, int] = {}
        for bucket, slot in enumerate(layout.slots):
            node = cluster.nodes_manager.get_node_from_slot(slot)
            count = cluster.get_redis_connection(node).scard(layout.keyset(bucket))
            per_node[node.name] = per_node.get(node.name, 0) + count
        assert sum(per_node.values()) == 300 == len(set(keys))
        assert len(per_node) == 3 and min(per_node.values()) > 0
        assert Item.objects(db).where(n__gte=100).count() == 200
        assert [d.n for d in Item.objects(db).order_by("-n")[:3]] == [299, 298, 297]
        assert db.verify_indexes() == []


def _eval_calls(cluster: Any) -> int:
    total = 0
    for node in cluster.get_primaries():
        stats = cluster.get_redis_connection(node).info("commandstats")
        total += int(stats.get("cmdstat_eval", {}).get("calls", 0))
    return total


def test_save_many_sends_one_script_per_bucket_and_batch(cluster: Any) -> None:
    with open_storage(cluster=True, indexes="n", batch_size=100) as db:
        docs = [Item(n=i, name=str(i)) for i in range(1000)]
        before = _eval_calls(cluster)
        db.save_many(docs)
        calls = _eval_calls(cluster) - before
        # ~62 records per bucket: one write script per bucket, plus one key check per bucket
        assert 16 <= calls <= 2 * 16 + 4, calls
        assert len(db) == 1000


def test_a_storage_with_its_own_cluster_client_reconnects(cluster: Any) -> None:
    with open_storage(cluster=True, client=None) as db:
        assert db._owns_client and "redis cluster via" in db.describe_location()
        db.save(None, {"n": 1}, primary_key="k")
        db.reconnect()
        assert db.get(Document, "k")["n"] == 1
