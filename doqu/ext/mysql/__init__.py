"""The MariaDB backend (``mysql://`` and ``mariadb://`` URLs), on the pure-Python PyMySQL driver.

``get_db('mysql://user:password@host:3306/app?table=documents')`` or
``get_db({'backend': 'mysql', 'host': 'db', 'database': 'app'})``. Records live
as JSON text in one InnoDB table; queries are compiled to SQL over MariaDB's
JSON functions by the shared compiler in :mod:`doqu.sql`, and whatever
MariaDB cannot answer exactly is filtered in Python. PyMySQL is imported when
a storage connects, so this module imports without it. See docs/mysql.md.
"""

from doqu.ext.mysql.dialect import MariaDBDialect
from doqu.ext.mysql.query import QueryAdapter
from doqu.ext.mysql.storage import StorageAdapter

__all__ = ["MariaDBDialect", "QueryAdapter", "StorageAdapter"]
