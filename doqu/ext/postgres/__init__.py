"""The PostgreSQL backend: records as ``jsonb``, queries compiled to SQL, psycopg 3 with a pool.

``get_db('postgresql://user@host:5432/app?table=documents')`` or
``get_db({'backend': 'postgres', 'host': ..., 'database': ..., 'table': ...})``.
Needs ``pip install 'doqu[postgres]'`` (psycopg 3 and psycopg_pool), imported
only when a storage connects. See docs/postgres.md.
"""

from doqu.ext.postgres.dialect import PostgresDialect
from doqu.ext.postgres.query import QueryAdapter
from doqu.ext.postgres.storage import StorageAdapter

__all__ = ["StorageAdapter", "QueryAdapter", "PostgresDialect"]
