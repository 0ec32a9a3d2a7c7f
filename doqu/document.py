"""Documents: typed, validated *views* of records.

A :class:`Document` subclass declares what it knows about a record::

    class Person(Document):
        structure = {"name": str, "born": date, "country": Country}
        validators = {"name": [required()]}
        defaults = {"born": date.today}
        labels = {"born": "Date of birth"}

A class may know only some of a record's fields: the others are kept as
they were read and written back untouched, so two classes can share records.
Validators with ``filter_query`` also narrow what the class sees:
``Person.objects(db)`` is a query of the records they admit.

Class settings are merged down the hierarchy in ``__init_subclass__``
(dicts extended, other values replaced) into plain class attributes; nothing
is hidden in a metaclass.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import logging
import pickle
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Mapping

from doqu.errors import (
    ConfigurationError,
    DocumentNotFound,
    UnknownFieldError,
    ValidationError,
)
from doqu.fields import Field, Many
from doqu.query.conditions import Leaf, Node, and_, or_
from doqu.validators import Optional, StopValidation

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.query.base import BaseQueryAdapter

__all__ = ["Document"]

log = logging.getLogger("doqu.document")

DICT_SETTINGS = (
    "structure", "validators", "defaults", "labels",
    "incoming_processors", "outgoing_processors", "get_item_processors", "set_item_processors",
)


def _is_document_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, Document)


class Document(MutableMapping):  # type: ignore[type-arg]
    """A record seen through a schema; a mutable mapping with attribute access too."""

    structure: ClassVar[dict[str, Any]] = {}
    validators: ClassVar[dict[str, list[Any]]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    labels: ClassVar[dict[str, str]] = {}
    incoming_processors: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    outgoing_processors: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    get_item_processors: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    set_item_processors: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    #: Keep values exactly as the engine returned them (no declared-type restoring).
    skip_type_conversion: ClassVar[bool] = False
    #: Raise instead of logging when a stored record does not fit the structure.
    break_on_invalid_incoming_data: ClassVar[bool] = False
    label: ClassVar[str | None] = None
    label_plural: ClassVar[str | None] = None
    #: Fields (or tuples of fields) the engine should index; see ``ensure_index``.
    indexes: ClassVar[list[Any]] = []
    #: Name of the database this class lives in (see :mod:`doqu.routing`).
    database: ClassVar[str | None] = None
    essential_fields: ClassVar[tuple[str, ...]] = ()
    pickled_fields: ClassVar[frozenset[str]] = frozenset()

    # -- class construction --------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = {name: dict(cls.__dict__.get(name) or {}) for name in DICT_SETTINGS}
        essential = list(cls.__dict__.get("essential_fields", ()))
        pickled = set()
        for attr_name, attr in list(cls.__dict__.items()):
            if isinstance(attr, Field):
                for setting, values in attr.contribute(attr_name).items():
                    own[setting].update(values)
                if attr.essential:
                    essential.append(attr_name)
                if attr.pickled:
                    pickled.add(attr_name)
        for name in DICT_SETTINGS:
            merged: dict[str, Any] = {}
            for base in reversed(cls.__mro__[1:]):
                merged.update(base.__dict__.get(name) or {})
            merged.update(own[name])
            setattr(cls, name, merged)
        cls.validators = {
            name: list(chain) if isinstance(chain, (list, tuple)) else [chain]
            for name, chain in cls.validators.items()
        }
        cls.structure = {k: (cls if t == "self" else t) for k, t in cls.structure.items()}
        for k, t in cls.structure.items():
            if isinstance(t, Many) and t.target == "self":
                cls.structure[k] = Many(cls)
        cls.essential_fields = tuple(dict.fromkeys(
            [*(f for b in cls.__mro__[1:] for f in b.__dict__.get("essential_fields", ())), *essential]))
        cls.pickled_fields = frozenset().union(
            *(b.__dict__.get("pickled_fields", frozenset()) for b in cls.__mro__[1:]), pickled)
        if "label" not in cls.__dict__:
            cls.label = cls.__name__
        if "label_plural" not in cls.__dict__:
            cls.label_plural = f"{cls.label}s"
        cls._types_cache = None
        cls._plan_cache = None
        cls._filter_cache = ()
        cls._backrefs = {}
        for field, target in cls.structure.items():
            if _is_document_class(target) or (isinstance(target, Many) and _is_document_class(target.target)):
                cls._register_backref(field, target)

    @classmethod
    def _register_backref(cls, field: str, target: Any) -> None:
        many = isinstance(target, Many)
        owner = target.target if many else target
        owner._backrefs.setdefault(f"{cls.__name__.lower()}_set", (cls, field, many))

    @classmethod
    def _schema_types(cls) -> dict[str, Any]:
        """The structure with references resolved to classes (cached)."""
        cached = cls.__dict__.get("_types_cache")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        types: dict[str, Any] = {}
        for name, declared in cls.structure.items():
            if isinstance(declared, Many):
                target = _resolve_reference(declared.target, cls, name)
                types[name] = declared if target is declared.target else Many(target)
                if target is not declared.target:
                    cls._register_backref(name, types[name])
            elif isinstance(declared, str):
                types[name] = _resolve_reference(declared, cls, name)
                cls._register_backref(name, types[name])
            else:
                types[name] = declared
        cls._types_cache = types
        cls._plan_cache = _FieldPlan(cls, types)
        return types

    @classmethod
    def _field_plan(cls) -> "_FieldPlan":
        """Per-class tables for the per-document hot paths (loading, checking, saving)."""
        plan = cls.__dict__.get("_plan_cache")
        if plan is None:
            cls._schema_types()
            plan = cls.__dict__["_plan_cache"]
        return plan  # type: ignore[no-any-return]

    @classmethod
    def _class_filter(cls) -> Node | None:
        """The condition tree the class's validators impose on its queries (cached)."""
        cached = cls.__dict__.get("_filter_cache", ())
        if cached != ():
            return cached  # type: ignore[no-any-return]
        from doqu.query.base import BaseQueryAdapter

        blank = BaseQueryAdapter.__new__(BaseQueryAdapter)
        blank.__dict__.update(storage=None, doc_class=None, _tree=None, _ordering=(),
                              _start=0, _stop=None, _cache=None)
        tree: Node | None = None
        for name, chain in cls.validators.items():
            query, optional = blank, False
            for validator in chain:
                if isinstance(validator, Optional):
                    optional = True
                elif hasattr(validator, "filter_query"):
                    query = validator.filter_query(query, name)
            node = query._tree
            if node is not None and optional:
                node = or_(Leaf((name,), "exists", False), node)
            tree = and_(tree, node)
        cls._filter_cache = tree
        return tree

    # -- instances --------------------------------------------------------------
    def __init__(self, data: Mapping[str, Any] | None = None, **fields: Any) -> None:
        self._init_state()
        values = {**(data or {}), **fields}
        for name, value in values.items():
            self[name] = value
        for name, default in self.defaults.items():
            if self._data.get(name) is None:
                self[name] = default() if callable(default) else default

    def _init_state(self) -> None:
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_pk", None)
        object.__setattr__(self, "_storage", None)
        object.__setattr__(self, "_saved", None)
        object.__setattr__(self, "_refs", {})

    @classmethod
    def _from_storage(cls, storage: "BaseStorageAdapter", key: str, record: Mapping[str, Any]) -> "Document":
        doc = cls.__new__(cls)
        doc._init_state()
        plan = cls._field_plan()
        from_db = storage.converter_manager.from_db
        problems = []
        data = doc._data
        decoders = plan.decoders
        incoming = cls.incoming_processors
        for name, raw in record.items():
            decode = decoders.get(name)
            try:
                if decode is None:  # undeclared, or conversion skipped: as the engine gives it
                    value = from_db(None, raw)
                elif decode is _PICKLED:
                    value = pickle.loads(from_db(bytes, raw))
                elif decode is _AS_STORED:
                    value = raw
                else:
                    value = from_db(decode, raw)
            except (ValidationError, pickle.UnpicklingError, TypeError, ValueError) as exc:
                problems.append(f"{name}: {exc}")
                value = raw
            if incoming:
                processor = incoming.get(name)
                if processor is not None:
                    value = processor(value)
            data[name] = value
        doc._pk = key
        doc._storage = storage
        doc._saved = _snapshot(data)
        if problems:
            message = (f"{cls.__name__} {key!r} in {storage.describe_location()} does not fit "
                       f"the structure: {'; '.join(problems)}")
            if cls.break_on_invalid_incoming_data:
                raise ValidationError(message)
            log.warning(message)
        elif cls.break_on_invalid_incoming_data:
            doc.validate()
        return doc

    # -- mapping and attribute access ---------------------------------------------
    def __getitem__(self, name: str) -> Any:
        data = self._data
        if name in data:
            value = data[name]
        elif name in self.structure:
            value = None
        else:
            raise KeyError(name)
        if value is not None and name in self.structure:
            declared = self._schema_types()[name]
            if _is_document_class(declared) and isinstance(value, str):
                value = self._dereference(name, declared, value)
            elif isinstance(declared, Many) and isinstance(value, list):
                value = [self._dereference(name, declared.target, v) if isinstance(v, str) else v
                         for v in value]
        processor = self.get_item_processors.get(name)
        return processor(value) if processor else value

    def _dereference(self, name: str, target: type["Document"], key: str) -> Any:
        cached = self._refs.get((name, key))
        if cached is not None:
            return cached
        if self._storage is None:
            return key
        try:
            doc = self._storage.get(target, key)
        except DocumentNotFound:
            raise DocumentNotFound(
                f"{type(self).__name__} {self._pk!r}: field {name!r} refers to "
                f"{target.__name__} {key!r}, which does not exist"
            ) from None
        self._refs[(name, key)] = doc
        return doc

    def __setitem__(self, name: str, value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError(f"field names are non-empty str, got {name!r}", field=str(name))
        if self.structure and name not in self.structure:
            raise UnknownFieldError(
                f"{type(self).__name__} has no field {name!r}; declared: {', '.join(self.structure)}"
            )
        processor = self.set_item_processors.get(name)
        if processor is not None:
            value = processor(value)
        error = self._type_error(name, value)
        if error:
            raise ValidationError(error, field=name)
        if isinstance(value, tuple):
            value = list(value)
        if value is None:
            self._data.pop(name, None)
        else:
            self._data[name] = value
        if self._refs:
            self._refs = {k: v for k, v in self._refs.items() if k[0] != name}

    def __delitem__(self, name: str) -> None:
        self[name] = None

    def __iter__(self) -> Iterator[str]:
        yield from self.structure
        for name in self._data:
            if name not in self.structure:
                yield name

    def __len__(self) -> int:
        return len(self.structure) + sum(1 for n in self._data if n not in self.structure)

    def __contains__(self, name: object) -> bool:
        return name in self.structure or name in self._data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.structure or name in self._data:
            return self[name]
        for klass in type(self).__mro__:
            backref = klass.__dict__.get("_backrefs", {}).get(name)
            if backref is not None:
                return self._backward_query(*backref)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute or field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or hasattr(type(self), name) and name not in self.structure:
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        if name in self.structure or name in self._data:
            self[name] = None
        else:
            object.__delattr__(self, name)

    def _backward_query(self, source: type["Document"], field: str, many: bool) -> "BaseQueryAdapter":
        if self._pk is None or self._storage is None:
            raise ValidationError(f"{type(self).__name__} is not saved, so nothing can refer to it")
        op = f"{field}__contains" if many else field
        return source.objects(self._storage).where(**{op: self._pk})

    # -- identity ------------------------------------------------------------------
    @property
    def pk(self) -> str | None:
        """The primary key, or ``None`` before the first save."""
        return self._pk

    @property
    def storage(self) -> "BaseStorageAdapter | None":
        return self._storage

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        if self._pk is None or other._pk is None:
            return self is other
        return bool(self._pk == other._pk and self._storage is not None and other._storage is not None
                    and self._storage.identity == other._storage.identity)

    def __hash__(self) -> int:
        if self._pk is None or self._storage is None:
            return id(self)
        return hash((self._storage.identity, self._pk))

    def __str__(self) -> str:
        return str(self._pk) if self._pk is not None else "unsaved"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self}>"

    # -- validation ----------------------------------------------------------------
    def _type_error(self, name: str, value: Any) -> str | None:
        if value is None:
            return None
        check = self._field_plan().checks.get(name)
        if check is None or check(value):
            return None
        declared = self._schema_types()[name]
        expected = declared.__name__ if isinstance(declared, type) else repr(declared)
        return (f"{type(self).__name__}.{name}: expected {expected}, "
                f"got {type(value).__name__} {value!r:.80}")

    def validate(self) -> None:
        """Raise :class:`ValidationError` listing every field that is wrong."""
        errors: dict[str, str] = {}
        for name in self.structure:
            error = self._type_error(name, self._data.get(name))
            if error:
                errors[name] = error
        for name, chain in self.validators.items():
            if name in errors:
                continue
            value = self._data.get(name)
            for validator in chain:
                try:
                    validator(self, value)
                except StopValidation as stop:
                    if stop.message:
                        errors[name] = stop.message
                    break
                except ValidationError as exc:
                    errors[name] = exc.message or str(exc)
                    break
        if errors:
            detail = "; ".join(f"{name}: {msg}" for name, msg in errors.items())
            raise ValidationError(f"{type(self).__name__} is invalid: {detail}",
                                  field=next(iter(errors)), errors=errors)

    def is_valid(self) -> bool:
        try:
            self.validate()
        except ValidationError:
            return False
        return True

    def is_field_changed(self, name: str) -> bool:
        """Whether ``name`` differs from what was last loaded or saved."""
        if self._saved is None:
            return self._data.get(name) is not None
        return bool(self._data.get(name) != self._saved.get(name))

    # -- persistence -----------------------------------------------------------------
    @classmethod
    def _storage_for(cls, db: "BaseStorageAdapter | None", write: bool) -> "BaseStorageAdapter":
        if db is not None:
            return db
        from doqu import routing

        return routing.storage_for(cls, write=write)

    def _fill_defaults(self) -> None:
        for name, default in self.defaults.items():
            if self._data.get(name) is None:
                self[name] = default() if callable(default) else default

    def _prepare_save(self, storage: "BaseStorageAdapter", _seen: set[int] | None = None) -> None:
        """Defaults and validation for this document and unsaved ones it refers to."""
        seen = _seen if _seen is not None else set()
        if id(self) in seen:
            return
        seen.add(id(self))
        self._fill_defaults()
        self.validate()
        for ref in self._unsaved_references():
            ref._prepare_save(storage, seen)

    def _unsaved_references(self) -> list["Document"]:
        """Unsaved documents this one refers to (declared reference fields, or any
        undeclared value holding documents)."""
        found = []
        structure = self.structure
        ref_fields = self._field_plan().ref_fields
        for name, value in self._data.items():
            if name in structure and name not in ref_fields:
                continue
            if isinstance(value, Document):
                if value._pk is None:
                    found.append(value)
            elif isinstance(value, list):
                found.extend(v for v in value if isinstance(v, Document) and v._pk is None)
        return found

    def _save_references(self, storage: "BaseStorageAdapter", _path: tuple[int, ...] = ()) -> None:
        path = (*_path, id(self))
        for ref in self._unsaved_references():
            if id(ref) in path:
                raise ValidationError(
                    f"{type(self).__name__} and {type(ref).__name__} refer to each other in a "
                    f"cycle of unsaved documents: save one of them first"
                )
            ref._save_references(storage, path)
            if ref._pk is None:
                ref._mark_saved(storage, storage.save(type(ref), ref._outgoing_data()))

    def _outgoing_data(self) -> dict[str, Any]:
        if not self.outgoing_processors and not self.pickled_fields:
            return dict(self._data)
        out = {}
        for name, value in self._data.items():
            processor = self.outgoing_processors.get(name)
            if processor is not None:
                value = processor(value)
            if name in self.pickled_fields and value is not None:
                value = pickle.dumps(value)
            out[name] = value
        return out

    def _mark_saved(self, storage: "BaseStorageAdapter", key: str) -> None:
        self._pk = key
        self._storage = storage
        self._saved = _snapshot(self._data)

    def save(self, db: "BaseStorageAdapter | None" = None, keep_key: bool = False) -> str:
        """Fill defaults, validate, save unsaved references, then write; returns the key.

        Saving into a storage other than the one the document came from
        creates a new record there unless ``keep_key`` is true.
        """
        storage = db if db is not None else (
            self._storage if self._storage is not None else self._storage_for(None, True))
        self._prepare_save(storage)
        same = self._storage is not None and self._storage.identity == storage.identity
        key = self._pk if (same or keep_key) else None
        if self._unsaved_references():
            with storage.transaction():  # the references and this document, or nothing
                self._save_references(storage)
                new_key = storage.save(type(self), self._outgoing_data(), primary_key=key)
        else:  # storage.save is atomic on its own: spare the engine a nested transaction
            new_key = storage.save(type(self), self._outgoing_data(), primary_key=key)
        self._mark_saved(storage, new_key)
        return new_key

    def save_as(self, key: str | None = None, storage: "BaseStorageAdapter | None" = None) -> "Document":
        """Save a copy under ``key`` (or a new key), possibly in another storage; returns the copy."""
        target = storage if storage is not None else (
            self._storage if self._storage is not None else self._storage_for(None, True))
        clone = self.convert_to(type(self))
        clone._pk = None
        clone._storage = None
        clone._prepare_save(target)
        with target.transaction():
            clone._save_references(target)
            new_key = target.save(type(clone), clone._outgoing_data(), primary_key=key)
        clone._mark_saved(target, new_key)
        return clone

    def delete(self) -> None:
        """Remove the record; the document stays usable as unsaved data."""
        if self._pk is None or self._storage is None:
            raise DocumentNotFound(f"{type(self).__name__} is not saved, so it cannot be deleted")
        self._storage.delete(self._pk)
        self._pk = None
        self._saved = None

    def convert_to(self, other: type["Document"], overrides: Mapping[str, Any] | None = None) -> "Document":
        """The same record seen through another class (same key and storage)."""
        doc = other.__new__(other)
        doc._init_state()
        doc._data = _snapshot(self._data)
        doc._pk, doc._storage = self._pk, self._storage
        doc._saved = _snapshot(self._saved) if self._saved is not None else None
        for name, value in (overrides or {}).items():
            doc[name] = value
        return doc

    def dump(self) -> dict[str, Any]:
        """A plain dict of every field, references as primary keys."""
        out = {}
        for name, value in self._data.items():
            if isinstance(value, Document):
                value = value.pk
            elif isinstance(value, list):
                value = [v.pk if isinstance(v, Document) else v for v in value]
            out[name] = value
        return out

    @classmethod
    def objects(cls, db: "BaseStorageAdapter | None" = None) -> "BaseQueryAdapter":
        """A query of every record in ``db`` that this class's validators admit."""
        return cls._storage_for(db, write=False).get_query(cls)

    @classmethod
    def object(cls, db: "BaseStorageAdapter | None", pk: str) -> "Document":
        """The document stored under ``pk``; ``KeyError`` if none."""
        return cls._storage_for(db, write=False).get(cls, pk)

    @classmethod
    def save_many(cls, documents: Iterable["Document"], db: "BaseStorageAdapter | None" = None) -> list[str]:
        """Validate all, then save them in one transaction."""
        return cls._storage_for(db, write=True).save_many(documents)


# -- helpers ----------------------------------------------------------------------

def _snapshot(data: Mapping[str, Any]) -> dict[str, Any]:
    saved = dict(data)
    for k, v in saved.items():
        if type(v) is list or type(v) is dict:
            saved[k] = _copy(v)
    return saved


def _copy(value: Any) -> Any:
    """Copy nested lists and dicts; documents inside are shared, not copied."""
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _resolve_reference(spec: Any, owner: type, field: str) -> Any:
    if not isinstance(spec, str):
        return spec
    module_name, _, attr = spec.rpartition(".")
    if not module_name:
        module_name = owner.__module__
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"{owner.__name__}.{field}: cannot resolve the reference {spec!r} "
            f"(use 'package.module.ClassName'): {exc}"
        ) from exc
    if not _is_document_class(target):
        raise ConfigurationError(f"{owner.__name__}.{field}: {spec!r} is not a Document class")
    return target


_PICKLED = object()     # decode marker: unpickle the stored bytes
_AS_STORED = object()   # decode marker: references keep their stored keys until read


class _FieldPlan:
    """What each declared field needs when a document is loaded, checked or saved."""

    def __init__(self, cls: type[Document], types: Mapping[str, Any]) -> None:
        self.decoders: dict[str, Any] = {}
        self.checks: dict[str, Callable[[Any], bool]] = {}
        self.ref_fields: frozenset[str] = frozenset(
            name for name, t in types.items() if _is_document_class(t) or isinstance(t, Many))
        for name, declared in types.items():
            if name in cls.pickled_fields:
                self.decoders[name] = _PICKLED
            elif name in self.ref_fields:
                self.decoders[name] = _AS_STORED
            elif not cls.skip_type_conversion and declared is not None:
                self.decoders[name] = declared
            if declared is not None:
                self.checks[name] = _checker(declared)


def _checker(declared: Any) -> Callable[[Any], bool]:
    if _is_document_class(declared):
        return lambda v: isinstance(v, (declared, str))
    if isinstance(declared, Many):
        target = declared.target
        return lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, (target, str)) for x in v)
    strict = _STRICT.get(declared)
    if strict is not None:
        return strict
    if isinstance(declared, type):
        return lambda v: isinstance(v, declared)
    return lambda v: True


_STRICT = {
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    decimal.Decimal: lambda v: isinstance(v, (int, decimal.Decimal)) and not isinstance(v, bool),
    dt.date: lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime),
    list: lambda v: isinstance(v, (list, tuple)),
}
