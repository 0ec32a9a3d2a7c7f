"""Several named databases: configuration, class binding, routers, per-request defaults.

An application names its databases once, usually from its config file::

    doqu.default.url = sqlite:///app.db
    doqu.log.url     = redis://localhost/1
    doqu.log.prefix  = log

>>> dbs = databases_from_config(settings)        # doctest: +SKIP
>>> dbs.activate()                                # doctest: +SKIP

and classes find their storage by name: a class attribute
(``database = 'log'``), ``dbs.bind(LogEntry, 'log')``, or a router decide;
every other class uses ``default``, which ``with dbs.using('blog_42'):``
changes for the current thread or asyncio task only. Storages connect on
first use; ``close()`` disconnects them all.

See docs/databases.md.
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol

from doqu import routing
from doqu.config import coerce_settings, load_backend, parse_url
from doqu.errors import ConfigurationError

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.document import Document

__all__ = ["DatabaseRegistry", "databases_from_config", "Router", "DEFAULT"]

#: The database of every class nothing else decides for.
DEFAULT = "default"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")
_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Router(Protocol):
    """Decides databases per class, Django-style. Both methods are optional.

    Each returns a database name, or ``None`` to leave the decision to the
    next router and, after the last, to bindings and the default.
    """

    def db_for_read(self, doc_class: type["Document"]) -> str | None: ...

    def db_for_write(self, doc_class: type["Document"]) -> str | None: ...


@dataclass
class _Entry:
    """A configured database: its checked settings until first use, then its storage."""

    settings: dict[str, Any] | None
    storage: "BaseStorageAdapter | None" = None
    adapter: Any = None
    labels: dict[str, str] = field(default_factory=dict)


class DatabaseRegistry:
    """Named storages, connected on first use, and the rules that pick one for a class.

    ``databases`` maps names to URLs, settings dicts or connected storages.
    ``routers`` are asked first (see :class:`Router`). ``factory(name)``
    returns settings for names that were not configured (``None`` if the
    name is unknown), e.g. one SQLite file per blog.
    """

    def __init__(self, databases: Mapping[str, Any] | None = None, *, routers: Iterable[Any] = (),
                 factory: Callable[[str], Any] | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self._bindings: dict[type, str] = {}
        self._lock = threading.RLock()
        self._creating: set[str] = set()
        self.routers: list[Any] = list(routers)
        self.factory = factory
        for name, settings in (databases or {}).items():
            self.add(name, settings)

    # -- databases ---------------------------------------------------------------
    def add(self, name: str, settings: Any, *, replace: bool = False) -> None:
        """Name a database: a URL, a settings dict or a connected storage.

        Settings are checked now (backend, setting names and types) and
        connected on first use.
        """
        from doqu.backend_base import BaseStorageAdapter

        _check_name(name, f"database name {name!r}")
        if isinstance(settings, BaseStorageAdapter):
            entry = _Entry(settings=None, storage=settings)
        elif isinstance(settings, (str, Mapping)):
            options = {"url": settings} if isinstance(settings, str) else dict(settings)
            entry = _checked_entry(name, options, lambda opt: f"database {name!r} setting {opt!r}")
        else:
            raise ConfigurationError(
                f"database {name!r}: expected a URL, a settings dict or a storage, "
                f"got {type(settings).__name__}"
            )
        with self._lock:
            if name in self._entries and not replace:
                raise ConfigurationError(f"database {name!r} is already configured; pass replace=True")
            old = self._entries.get(name)
            self._entries[name] = entry
        if old is not None and old.storage is not None and old.storage is not entry.storage:
            old.storage.disconnect()

    def discard(self, name: str) -> None:
        """Forget a database and disconnect it (e.g. a per-blog database no longer needed)."""
        with self._lock:
            entry = self._entries.pop(name, None)
        if entry is not None and entry.storage is not None:
            entry.storage.disconnect()

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        if not isinstance(name, str):
            raise ConfigurationError(f"database names are str, got {type(name).__name__} {name!r}")
        if self.factory is not None:
            settings = self.factory(name)
            if settings is not None:
                with self._lock:
                    if name not in self._entries:
                        self.add(name, settings)
                    return self._entries[name]
        known = ", ".join(sorted(self._entries)) or "none"
        raise ConfigurationError(f"no database named {name!r}; configured: {known}")

    def __getitem__(self, name: str) -> "BaseStorageAdapter":
        """The storage called ``name``, connecting it on first use."""
        entry = self._entry(name)
        storage = entry.storage
        if storage is not None and storage.connected:
            return storage
        with self._lock:
            if entry.storage is None:
                entry.storage = self._create(name, entry)
            elif not entry.storage.connected:
                entry.storage.connect()
            return entry.storage

    def _create(self, name: str, entry: _Entry) -> "BaseStorageAdapter":
        from doqu.ext.sharded import StorageAdapter as Sharded

        assert entry.settings is not None
        settings = dict(entry.settings)
        settings.pop("backend", None)
        adapter = entry.adapter
        if name in self._creating:
            raise ConfigurationError(f"database {name!r} is sharded over itself")
        self._creating.add(name)
        try:
            if isinstance(adapter, type) and issubclass(adapter, Sharded):
                settings["shards"] = self._shard_members(name, entry, settings["shards"])
            return adapter(**settings)  # type: ignore[no-any-return]
        finally:
            self._creating.discard(name)

    def _shard_members(self, name: str, entry: _Entry, shards: Any) -> Any:
        """Shards named by database name become those databases; URLs stay URLs."""
        if isinstance(shards, str):
            shards = [token for token in re.split(r"[\s,]+", shards) if token]
        if not isinstance(shards, (list, tuple)):
            return shards
        members = []
        for token in shards:
            if isinstance(token, str) and "://" not in token:
                if token == name:
                    raise ConfigurationError(f"{entry.labels.get('shards', name)}: {name!r} cannot be "
                                             f"one of its own shards")
                members.append(self[token])
            else:
                members.append(token)
        return members

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        parts = []
        for name, entry in list(self._entries.items()):
            storage = entry.storage
            state = storage.describe_location() if storage is not None and storage.connected else "not connected"
            parts.append(f"{name}: {state}")
        return f"<DatabaseRegistry {'; '.join(parts)}>"

    # -- which database a class uses -------------------------------------------------
    def bind(self, doc_class: type["Document"], name: str) -> None:
        """Store ``doc_class`` (and its subclasses) in database ``name``."""
        from doqu.document import Document

        if not (isinstance(doc_class, type) and issubclass(doc_class, Document)):
            raise ConfigurationError(f"bind() takes a Document class, got {doc_class!r}")
        self._entry(name)  # refuses unknown names now rather than on first save
        with self._lock:
            self._bindings[doc_class] = name

    def unbind(self, doc_class: type["Document"]) -> None:
        with self._lock:
            self._bindings.pop(doc_class, None)

    def add_router(self, router: Any) -> None:
        """Ask ``router`` after the routers already added."""
        if not (hasattr(router, "db_for_read") or hasattr(router, "db_for_write")):
            raise ConfigurationError(f"{router!r} is no router: it has neither db_for_read nor db_for_write")
        self.routers.append(router)

    @property
    def default_name(self) -> str:
        """The database of unbound classes here and now (changed by ``using``)."""
        using = routing.current_using()
        if using is not None and using.registry is self and using.default is not None:
            return using.default
        return DEFAULT

    def name_for(self, doc_class: type["Document"], write: bool = False) -> str:
        """Routers first (first answer wins), then bindings and ``database`` along the MRO, then the default."""
        method_name = "db_for_write" if write else "db_for_read"
        for router in self.routers:
            method = getattr(router, method_name, None)
            if method is None:
                continue
            answer = method(doc_class)
            if answer is not None:
                if not isinstance(answer, str):
                    raise ConfigurationError(
                        f"router {router!r}.{method_name}({doc_class.__name__}) returned {answer!r}; "
                        f"expected a database name or None"
                    )
                return answer
        for klass in doc_class.__mro__:
            bound = self._bindings.get(klass)
            if bound is not None:
                return bound
            declared = klass.__dict__.get("database")
            if isinstance(declared, str) and declared:
                return declared
        return self.default_name

    def storage_for(self, doc_class: type["Document"], write: bool = False) -> "BaseStorageAdapter":
        """The storage ``doc_class`` reads from (or writes to)."""
        return self[self.name_for(doc_class, write=write)]

    # -- activation and per-request defaults ------------------------------------------
    def activate(self) -> "DatabaseRegistry":
        """Make this the registry of the whole process (until another is activated)."""
        routing._activate(self)
        return self

    def deactivate(self) -> None:
        routing._deactivate(self)

    @contextlib.contextmanager
    def using(self, name: str | None = None) -> Iterator["DatabaseRegistry"]:
        """Within the block, in this thread or task only: this registry, with ``name`` as default.

        Classes bound to a database (by attribute, ``bind`` or router) keep
        theirs. Code run by a thread pool from inside the block does not see
        it unless run with ``contextvars.copy_context().run``.
        """
        if name is not None:
            self._entry(name)
        token = routing._enter(routing.Using(self, name))
        try:
            yield self
        finally:
            routing._leave(token)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect every storage; the next use connects again."""
        with self._lock:
            storages = [e.storage for e in self._entries.values() if e.storage is not None]
        errors = []
        for storage in storages:
            try:
                storage.disconnect()
            except Exception as exc:  # close the rest; report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> "DatabaseRegistry":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()
        self.close()


# -- checking settings -------------------------------------------------------------------

def _check_name(name: Any, label: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"{label}: database names are letters, digits, '_' and '-', e.g. 'default' or 'blog_42'"
        )


def _checked_entry(name: str, options: dict[str, Any], key_for: Callable[[str], str]) -> _Entry:
    """Parse and check one database's settings; every error names the key to fix.

    ``key_for(option)`` says how the user wrote (or would write) that option.
    """
    settings: dict[str, Any] = {}
    origin: dict[str, str] = {}
    url = options.get("url")
    if url is not None:
        if not isinstance(url, str):
            raise ConfigurationError(f"{key_for('url')}: expected a URL string, got {type(url).__name__}")
        try:
            from_url = parse_url(url.strip())
        except ConfigurationError as exc:
            raise ConfigurationError(f"{key_for('url')}: {exc}") from None
        settings.update(from_url)
        origin.update({opt: key_for("url") for opt in from_url})
    for opt, value in options.items():
        if opt != "url":
            settings[opt] = value.strip() if isinstance(value, str) else value
            origin[opt] = key_for(opt)
    backend = settings.get("backend")
    if backend in (None, ""):
        raise ConfigurationError(
            f"{key_for('url')} is missing: database {name!r} names no backend; give a URL "
            f"(e.g. sqlite:///app.db) or {key_for('backend')}"
        )
    try:
        adapter = load_backend(backend).StorageAdapter
    except ConfigurationError as exc:
        raise ConfigurationError(f"{origin['backend']}: {exc}") from exc
    known = getattr(adapter, "known_settings", None)
    if known is not None:
        for opt in settings:
            if opt != "backend" and opt not in known:
                accepts = ", ".join(known) or "no settings"
                raise ConfigurationError(
                    f"{origin[opt]}: backend {backend!r} has no setting {opt!r}; it accepts {accepts}"
                )
    for opt in getattr(adapter, "required_settings", ()):
        if settings.get(opt) in (None, ""):
            raise ConfigurationError(
                f"{key_for(opt)} is missing: backend {backend!r} needs it (or give it in the URL)"
            )
    coerced: dict[str, Any] = {}
    for opt, value in settings.items():
        try:
            coerced.update(coerce_settings(adapter, {opt: value}))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{origin[opt]}: {exc}") from None
    return _Entry(settings=coerced, adapter=adapter, labels=origin)


def databases_from_config(config: Mapping[str, Any], prefix: str = "doqu.", *,
                          routers: Iterable[Any] = (),
                          factory: Callable[[str], Any] | None = None) -> DatabaseRegistry:
    """A registry of the databases a flat config mapping names under ``prefix``.

    Keys look like ``doqu.<database>.<option>``: ``url`` and any setting of
    the backend (``backend``, ``path``, ``prefix`` ...); string values are
    converted to the types the backend declares. Keys not starting with
    ``prefix`` are ignored; malformed or unknown ones raise
    :class:`~doqu.ConfigurationError` naming the key. Nothing connects yet.
    """
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"config must be a mapping of keys to values, got {type(config).__name__}")
    if prefix and not prefix.endswith("."):
        prefix += "."
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        name, sep, option = rest.partition(".")
        if not sep or not _NAME.match(name) or not _OPTION.match(option):
            raise ConfigurationError(
                f"config key {key!r} is malformed: expected {prefix}<database>.<option>, "
                f"e.g. {prefix}default.url"
            )
        grouped.setdefault(name, {})[option] = value
    if not grouped:
        raise ConfigurationError(
            f"no config keys start with {prefix!r}; expected e.g. {prefix}default.url = sqlite:///app.db"
        )
    registry = DatabaseRegistry(routers=routers, factory=factory)
    for name, options in grouped.items():
        entry = _checked_entry(name, options, _config_key(prefix, name))
        registry._entries[name] = entry
    for name, entry in registry._entries.items():
        _check_shard_names(registry, name, entry)
    return registry


def _config_key(prefix: str, name: str) -> Callable[[str], str]:
    def key_for(option: str) -> str:
        return f"config key '{prefix}{name}.{option}'"

    return key_for


def _check_shard_names(registry: DatabaseRegistry, name: str, entry: _Entry) -> None:
    """A sharded database's ``shards`` string must name databases or be URLs."""
    settings = entry.settings or {}
    shards = settings.get("shards")
    if not isinstance(shards, str):
        return
    from doqu.ext.sharded import StorageAdapter as Sharded

    if not (isinstance(entry.adapter, type) and issubclass(entry.adapter, Sharded)):
        return
    for token in (t for t in re.split(r"[\s,]+", shards) if t):
        if "://" not in token and (token not in registry or token == name):
            raise ConfigurationError(
                f"{entry.labels.get('shards', name)}: shard {token!r} is neither a URL nor another "
                f"configured database; configured: {', '.join(sorted(registry)) or 'none'}"
            )
