"""The SQLite backend, doqu's embedded default (standard library ``sqlite3`` only).

``get_db('sqlite:///app.db')``, ``get_db('sqlite://')`` (in memory) or
``get_db({'backend': 'sqlite', 'path': 'app.db', 'table': 'documents'})``.
Records live as JSON text in one table; queries are compiled to SQL over
SQLite's JSON1 functions by the shared compiler in :mod:`doqu.sql`, and
whatever SQLite cannot answer exactly is filtered in Python. See
docs/sqlite.md.
"""

from doqu.ext.sqlite.dialect import SQLiteDialect
from doqu.ext.sqlite.query import QueryAdapter
from doqu.ext.sqlite.storage import StorageAdapter

__all__ = ["StorageAdapter", "QueryAdapter", "SQLiteDialect"]
