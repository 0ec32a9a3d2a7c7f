"""Settings and URLs → a connected storage.

``get_db`` is the one entry point: a dict, keywords or a URL choose the
backend, so moving an application to another engine changes one value.
Backends are found, in order, by short name (``sqlite``), in the entry-point
group ``doqu.backends``, or as a dotted module path exposing
``StorageAdapter``. Drivers are imported by the backend module itself, so a
missing optional package is reported with the ``pip install`` line that
fixes it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from doqu.errors import ConfigurationError

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter

__all__ = ["get_db", "get_storage", "parse_url", "load_backend", "BACKENDS", "coerce_settings"]

#: Short names and URL schemes of the built-in backends.
BACKENDS: dict[str, str] = {
    "memory": "doqu.ext.memory",
    "shelve": "doqu.ext.shelve_db",
    "shelve_db": "doqu.ext.shelve_db",
    "sqlite": "doqu.ext.sqlite",
    "sqlite3": "doqu.ext.sqlite",
    "tokyo_cabinet": "doqu.ext.tokyo_cabinet",
    "tokyo-cabinet": "doqu.ext.tokyo_cabinet",
    "tokyo_tyrant": "doqu.ext.tokyo_tyrant",
    "tokyo-tyrant": "doqu.ext.tokyo_tyrant",
    "postgres": "doqu.ext.postgres",
    "postgresql": "doqu.ext.postgres",
    "mysql": "doqu.ext.mysql",
    "mariadb": "doqu.ext.mysql",
    "mongodb": "doqu.ext.mongodb",
    "mongo": "doqu.ext.mongodb",
    "mongodb+srv": "doqu.ext.mongodb",
    "redis": "doqu.ext.redis",
    "redis+cluster": "doqu.ext.redis",
    "sharded": "doqu.ext.sharded",
}

#: Optional package (import name) → the extra that installs it.
EXTRAS: dict[str, str] = {
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "pymysql": "mysql",
    "pymongo": "mongodb",
    "bson": "mongodb",
    "mongomock": "test",
    "redis": "redis",
}

_FILE_SCHEMES = {"sqlite", "sqlite3", "shelve", "shelve_db", "tokyo-cabinet", "tokyo_cabinet"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_url(url: str) -> dict[str, Any]:
    """Split a database URL into settings (``backend`` plus the rest)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"malformed database URL {_safe(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ConfigurationError(
            f"malformed database URL {_safe(url)!r}: expected scheme://..., e.g. sqlite:///app.db"
        )
    settings: dict[str, Any] = {"backend": scheme}
    if scheme in _FILE_SCHEMES:
        # sqlite:///rel.db → 'rel.db'; sqlite:////abs.db → '/abs.db'; sqlite:// → no file
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        settings["path"] = unquote(parts.netloc + ("/" if parts.netloc else "") + path) if (
            path or parts.netloc) else None
    else:
        if parts.hostname:
            settings["host"] = unquote(parts.hostname)
        if port is not None:
            settings["port"] = port
        if parts.username:
            settings["user"] = unquote(parts.username)
        if parts.password is not None:
            settings["password"] = unquote(parts.password)
        database = parts.path.lstrip("/")
        if database:
            settings["database"] = unquote(database)
    if scheme == "redis+cluster":
        settings["cluster"] = True
    if scheme == "mongodb+srv":
        settings["srv"] = True
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        settings[key] = value
    return settings


_USERINFO = re.compile(r"(//[^/@:]*:)[^/]*@")


def _safe(url: str) -> str:
    """The URL with any password masked, for messages (even when it does not parse)."""
    return _USERINFO.sub(r"\1***@", url, count=1)


def load_backend(name: str) -> Any:
    """The module of backend ``name`` (short name, entry point or dotted path)."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"invalid backend {name!r}: give a short name such as 'sqlite' "
                                 f"or a module path such as 'doqu.ext.sqlite'")
    module_path = BACKENDS.get(name.lower())
    if module_path is None:
        for entry in importlib.metadata.entry_points(group="doqu.backends"):
            if entry.name == name:
                loaded = entry.load()
                return loaded if hasattr(loaded, "StorageAdapter") else _wrap(loaded)
        module_path = name
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if exc.name == module_path or (exc.name and module_path.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"unknown backend {name!r}; built-in backends: {', '.join(sorted(set(BACKENDS)))}, "
                f"or a module path such as 'doqu.ext.sqlite', or an entry point in 'doqu.backends'"
            ) from None
        if missing in EXTRAS:
            raise ConfigurationError(
                f"backend {name!r} needs the package {missing!r}: "
                f"pip install 'doqu[{EXTRAS[missing]}]'"
            ) from exc
        raise ConfigurationError(
            f"cannot import backend {name!r} ({module_path}): {exc}; built-in backends: "
            f"{', '.join(sorted(set(BACKENDS)))}"
        ) from exc
    if not hasattr(module, "StorageAdapter"):
        raise ConfigurationError(
            f"{module_path!r} is not a doqu backend: it has no StorageAdapter class"
        )
    return module


def _wrap(adapter_class: Any) -> Any:
    class _Module:
        StorageAdapter = adapter_class

    return _Module


def coerce_settings(adapter_class: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Convert string values (from URLs or config files) to the types a backend declares."""
    types: Mapping[str, type] = getattr(adapter_class, "setting_types", {})
    out = dict(settings)
    for key, value in settings.items():
        kind = types.get(key)
        if kind is None or not isinstance(value, str) or kind is str:
            continue
        try:
            if kind is bool:
                lowered = value.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError(value)
                out[key] = lowered in _TRUE
            else:
                out[key] = kind(value)
        except ValueError:
            raise ConfigurationError(
                f"setting {key!r}: expected {kind.__name__}, got {value!r}"
            ) from None
    return out


def get_db(settings: Mapping[str, Any] | str | None = None, **overrides: Any) -> "BaseStorageAdapter":
    """A connected storage chosen by ``settings`` (a dict or URL); keywords win."""
    if isinstance(settings, str):
        resolved = parse_url(settings)
    elif settings is None:
        resolved = {}
    elif isinstance(settings, Mapping):
        resolved = dict(settings)
    else:
        raise ConfigurationError(
            f"settings must be a dict or a URL string, got {type(settings).__name__}"
        )
    if isinstance(resolved.get("url"), str):
        from_url = parse_url(resolved.pop("url"))
        resolved = {**from_url, **resolved}
    resolved.update(overrides)
    backend = resolved.pop("backend", None)
    if backend is None:
        raise ConfigurationError(
            "missing setting 'backend': e.g. get_db({'backend': 'sqlite', 'path': 'app.db'}) "
            "or get_db('sqlite:///app.db')"
        )
    module = load_backend(backend)
    adapter_class = module.StorageAdapter
    return adapter_class(**coerce_settings(adapter_class, resolved))  # type: ignore[no-any-return]


get_storage = get_db
