"""The exceptions doqu raises.

Every error is a :class:`DoquError`, and also subclasses the built-in that an
application would already catch for the same mistake, so existing ``except
KeyError`` or ``except ValueError`` clauses keep working::

    DoquError
    ├── ConfigurationError (ValueError)      bad settings, unknown backend, missing extra
    ├── ValidationError (ValueError)         a value breaks a document's structure or validators
    ├── UnknownFieldError (KeyError, AttributeError)
    │                                        a field the structure does not declare
    ├── QueryError (ValueError)              a malformed lookup or an impossible query
    │   └── LookupProcessorDoesNotExist      an operator no backend knows
    ├── ProcessorDoesNotExist (TypeError)    no converter for a declared type
    │   └── DataProcessorDoesNotExist        a value of a type no engine can store
    ├── StorageError (RuntimeError)          the engine refused an operation
    │   ├── ConnectionError                  the engine cannot be reached
    │   └── TransactionError                 begin/commit/rollback failed
    └── DocumentNotFound (KeyError)          ``get`` of a key that does not exist

Driver exceptions are re-raised as the most specific doqu error ``from`` the
original, so the cause stays visible in tracebacks.
"""

from __future__ import annotations

__all__ = [
    "DoquError",
    "ConfigurationError",
    "ValidationError",
    "UnknownFieldError",
    "QueryError",
    "LookupProcessorDoesNotExist",
    "ProcessorDoesNotExist",
    "DataProcessorDoesNotExist",
    "StorageError",
    "ConnectionError",
    "TransactionError",
    "DocumentNotFound",
]


class DoquError(Exception):
    """Root of every error doqu raises on purpose."""


class ConfigurationError(DoquError, ValueError):
    """Settings that cannot work; the message names the setting and the fix."""


class ValidationError(DoquError, ValueError):
    """A value does not fit a document's structure or validators.

    ``field`` names the offending field when one is known; ``errors`` maps
    field names to messages when several fields failed at once.
    """

    def __init__(self, message: str = "", field: str | None = None,
                 errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = dict(errors or ({field: message} if field else {}))

    def __str__(self) -> str:
        return self.message


class UnknownFieldError(DoquError, KeyError, AttributeError):
    """A field that the document's ``structure`` does not declare."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class QueryError(DoquError, ValueError):
    """A query that cannot be built: malformed path, bad operand, misuse."""


class LookupProcessorDoesNotExist(QueryError):
    """An operator that does not exist; the message lists the known ones."""


class ProcessorDoesNotExist(DoquError, TypeError):
    """No converter is registered for a declared datatype."""


class DataProcessorDoesNotExist(ProcessorDoesNotExist):
    """A value of a type that doqu cannot store; names the field and type."""


class StorageError(DoquError, RuntimeError):
    """The engine refused or failed an operation."""


class ConnectionError(StorageError):  # noqa: A001 - deliberately shadows the builtin inside doqu
    """The engine cannot be reached; the message names backend and address."""


class TransactionError(StorageError):
    """A transaction could not be begun, committed or rolled back."""


class DocumentNotFound(DoquError, KeyError):
    """No record is stored under the requested primary key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
