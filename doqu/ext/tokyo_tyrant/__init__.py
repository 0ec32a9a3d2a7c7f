"""Tokyo Tyrant storage backend for doqu: a table database on a ``ttserver``.

``get_db('tokyo-tyrant://localhost:1978')`` or
``get_db({'backend': 'tokyo_tyrant', 'host': 'localhost', 'port': 1978})``;
see ``docs/tokyo_tyrant.md``. Pure Python: no library is needed on the
client.

* :mod:`.protocol`: the binary protocol, a connection and a thread-safe pool;
* :mod:`.storage`: the storage, laying records out with the Tokyo Cabinet
  backend's codec, so the server's ``.tct`` file is readable by both;
* :mod:`.query`: queries compiled by the Tokyo Cabinet compiler, sent as
  table searches.
"""

from .query import QueryAdapter
from .storage import StorageAdapter

__all__ = ["StorageAdapter", "QueryAdapter"]
