"""Redis storage for doqu: one key prefix of a Redis server or a Redis Cluster.

``get_db('redis://localhost:6379/0?prefix=app')`` or
``get_db('redis+cluster://127.0.0.1:7000?prefix=app')``; needs redis-py
(``pip install 'doqu[redis]'``), imported only when a storage connects.

Records are JSON strings; declared indexes are sorted sets kept by doqu and
used for equality, ranges, ``in``, ``startswith``, ``exists``, ordering and
counting; everything else is filtered by the shared evaluator. See
``docs/redis.md`` for the design and its guarantees.
"""

from doqu.ext.redis.nodes import ReplicationError
from doqu.ext.redis.query import QueryAdapter
from doqu.ext.redis.storage import StorageAdapter

__all__ = ["StorageAdapter", "QueryAdapter", "ReplicationError"]
