"""The sharded backend: one logical storage spread over several storages.

``get_db({'backend': 'sharded', 'shards': [db1, db2, db3]})`` (storages,
settings dicts or URLs, of any engines). Saves go to one shard, ``get`` and
``delete`` straight to the shard that owns the key, queries run on every
shard at once and their answers are merged. See docs/databases.md.
"""

from doqu.ext.sharded.query import QueryAdapter
from doqu.ext.sharded.storage import Shard, StorageAdapter

__all__ = ["StorageAdapter", "QueryAdapter", "Shard"]
