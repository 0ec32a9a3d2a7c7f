"""doqu: documents and one query API over any storage engine.

    >>> from doqu import Document, get_db
    >>> db = get_db("sqlite:///app.db")
    >>> class Person(Document):
    ...     structure = {"name": str, "age": int}
    >>> Person(name="Ada", age=36).save(db)
    >>> Person.objects(db).where(age__gte=18).order_by("-age")[:10]
"""

from doqu.config import get_db, get_storage
from doqu.copying import CopyReport, copy
from doqu.databases import DatabaseRegistry, databases_from_config
from doqu.document import Document
from doqu.errors import (
    ConfigurationError,
    ConnectionError,
    DataProcessorDoesNotExist,
    DocumentNotFound,
    DoquError,
    LookupProcessorDoesNotExist,
    ProcessorDoesNotExist,
    QueryError,
    StorageError,
    TransactionError,
    UnknownFieldError,
    ValidationError,
)
from doqu.fields import Field, Many
from doqu.fixtures import load_fixture

__version__ = "0.1.0"

__all__ = [
    "Document",
    "Field",
    "Many",
    "get_db",
    "get_storage",
    "databases_from_config",
    "DatabaseRegistry",
    "copy",
    "CopyReport",
    "load_fixture",
    "DoquError",
    "ConfigurationError",
    "ConnectionError",
    "DataProcessorDoesNotExist",
    "DocumentNotFound",
    "LookupProcessorDoesNotExist",
    "ProcessorDoesNotExist",
    "QueryError",
    "StorageError",
    "TransactionError",
    "UnknownFieldError",
    "ValidationError",
    "__version__",
]
