"""Which storage a document class uses when none is passed.

Until several databases are configured, every class must be given a storage
explicitly (``Person.objects(db)``, ``person.save(db)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from doqu.errors import ConfigurationError

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.document import Document

__all__ = ["storage_for"]


def storage_for(doc_class: type["Document"], write: bool = False) -> "BaseStorageAdapter":
    """The storage ``doc_class`` reads from (or writes to, with ``write``)."""
    raise ConfigurationError(
        f"no storage given for {doc_class.__name__}: pass one, e.g. "
        f"{doc_class.__name__}.objects(db) or doc.save(db)"
    )
