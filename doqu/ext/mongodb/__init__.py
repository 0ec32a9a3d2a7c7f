"""The MongoDB backend (``pip install 'doqu[mongodb]'``).

``get_db('mongodb://localhost/app?collection=docs')``, or
``get_db({'backend': 'mongodb', 'database': 'app', 'client': my_client})`` to
share a client. Each storage is one collection; primary keys are the
documents' ``_id`` strings. See ``docs/mongodb.md`` for how values are stored,
which conditions run in the server, and the transaction fallback.

pymongo is imported when a storage connects, so this module imports without
it and ``get_db`` reports the missing extra.
"""

from doqu.ext.mongodb.query import QueryAdapter
from doqu.ext.mongodb.storage import StorageAdapter

__all__ = ["StorageAdapter", "QueryAdapter"]
