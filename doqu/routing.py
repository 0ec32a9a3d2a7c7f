"""Which storage a document class uses when none is passed.

``Person.objects()`` and ``person.save()`` without a storage ask the
*active* :class:`~doqu.databases.DatabaseRegistry`, found in this order:

1. the registry of the innermost ``with dbs.using(...)`` block in the
   current context (thread or asyncio task: a :mod:`contextvars` variable);
2. the registry made process-wide with ``dbs.activate()``.

Nothing is activated by importing or by creating a registry: an application
says which registry is in charge, once, at start-up. Without one, a storage
must be passed explicitly (``Person.objects(db)``, ``person.save(db)``).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doqu.errors import ConfigurationError

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.databases import DatabaseRegistry
    from doqu.document import Document

__all__ = ["storage_for", "current_registry", "Using"]


@dataclass(frozen=True)
class Using:
    """What ``dbs.using(name)`` set for the current context."""

    registry: "DatabaseRegistry"
    #: The database unbound classes use here, or ``None`` for the registry's own default.
    default: str | None


#: The innermost ``using()`` of the current thread or task.
_using: contextvars.ContextVar[Using | None] = contextvars.ContextVar("doqu_using", default=None)
#: The process-wide registry set by ``DatabaseRegistry.activate()``; starts empty.
_active: "DatabaseRegistry | None" = None


def current_registry() -> "DatabaseRegistry | None":
    """The registry ``Document`` methods use when no storage is passed, if any."""
    using = _using.get()
    if using is not None:
        return using.registry
    return _active


def current_using() -> Using | None:
    return _using.get()


def _activate(registry: "DatabaseRegistry | None") -> None:
    global _active
    _active = registry


def _deactivate(registry: "DatabaseRegistry") -> None:
    global _active
    if _active is registry:
        _active = None


def _enter(using: Using) -> contextvars.Token[Any]:
    return _using.set(using)


def _leave(token: contextvars.Token[Any]) -> None:
    _using.reset(token)


def storage_for(doc_class: type["Document"], write: bool = False) -> "BaseStorageAdapter":
    """The storage ``doc_class`` reads from (or writes to, with ``write``)."""
    registry = current_registry()
    if registry is None:
        raise ConfigurationError(
            f"no storage given for {doc_class.__name__} and no database registry is active: "
            f"pass one ({doc_class.__name__}.objects(db), doc.save(db)), or configure databases "
            f"once at start-up: dbs = doqu.databases_from_config(config); dbs.activate()"
        )
    return registry.storage_for(doc_class, write=write)
