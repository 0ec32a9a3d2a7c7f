"""Tokyo Cabinet table database storage backend for doqu.

``get_db('tokyo-cabinet:///data.tct')`` or
``get_db({'backend': 'tokyo_cabinet', 'path': 'data.tct'})``; see
``docs/tokyo_cabinet.md``. The C library (Debian: ``libtokyocabinet9``) is
loaded on first connect, so importing this package never fails.

* :mod:`.codec`: doqu records <-> flat columns (shared with Tokyo Tyrant);
* :mod:`.compiler`: doqu conditions -> TC query conditions (shared too);
* :mod:`.storage`: the storage on the C library through :mod:`._binding`.
"""

from .storage import QueryAdapter, StorageAdapter

__all__ = ["StorageAdapter", "QueryAdapter"]
