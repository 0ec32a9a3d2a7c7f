"""Reflection: infer a ``Document`` class from the records already stored.

Like Django's ``inspectdb`` or peewee's ``pwiz``, but for schemaless
records: every record is read (or a sample), and each field's types, how
often it is present and, for small sets, its distinct values are counted.
:func:`render_class` turns that into a ready-to-paste class whose
``structure`` and ``validators`` admit every record that was read.

Values are classified as doqu stores them: dates, datetimes and times are
ISO text in the canonical form (see :mod:`doqu.conversion`), so text that
reads as one of those is counted as that type. Base64 text is never taken
for ``bytes`` (too many words are valid base64); engines that return native
``bytes`` are counted as ``bytes``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import keyword
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter
    from doqu.query.base import BaseQueryAdapter

__all__ = ["FieldStats", "Schema", "infer_schema", "inspect_records", "render_class",
           "schema_to_json", "value_kind"]

#: Distinct values are tracked up to this many per field.
DISTINCT_LIMIT = 50

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?\Z")
_ZONE = re.compile(r"(Z|[+-]\d{2}:?\d{2})\Z")
_TIME = re.compile(r"\d{2}:\d{2}:\d{2}(\.\d{1,6})?\Z")

#: Validators query their field, so they are given only to names a query can reach.
_QUERYABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: Python spelling of each kind in generated code.
_PY_TYPES = {
    "str": "str", "int": "int", "float": "float", "bool": "bool", "decimal": "decimal.Decimal",
    "date": "datetime.date", "datetime": "datetime.datetime", "time": "datetime.time",
    "bytes": "bytes", "list": "list", "dict": "dict",
}


def _parses(kind: type, text: str) -> bool:
    try:
        kind.fromisoformat(text.replace("Z", "+00:00"))  # type: ignore[attr-defined]
    except ValueError:
        return False
    return True


def value_kind(value: Any) -> str:
    """The kind of a stored value: str, int, float, decimal, bool, date, datetime, time,
    bytes, list, dict (or the Python type name of anything else)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        from doqu.fixtures import exact_number  # ExactFloat: a Decimal stored by a JSON engine?

        return "decimal" if isinstance(exact_number(value), decimal.Decimal) else "float"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, str):
        if len(value) == 10 and _DATE.match(value) and _parses(dt.date, value):
            return "date"
        if len(value) >= 16 and _DATETIME.match(value) and _parses(dt.datetime, value):
            return "datetime"
        if len(value) >= 8 and _TIME.match(value) and _parses(dt.time, value):
            return "time"
        return "str"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def _aware(value: Any) -> bool:
    if isinstance(value, dt.datetime):
        return value.tzinfo is not None
    return bool(_ZONE.search(value, 16))


def _empty(value: Any) -> bool:
    return value == "" or (isinstance(value, (list, dict, tuple)) and not value)


@dataclass
class FieldStats:
    """What was seen of one field (or one sub-field of a dict field)."""

    present: int = 0
    empty: int = 0
    types: Counter[str] = field(default_factory=Counter)
    #: Distinct scalar values by (kind, value), or ``None`` once there were too many.
    distinct: dict[tuple[str, Any], Any] | None = field(default_factory=dict)
    #: Sub-fields, for dict values.
    fields: dict[str, "FieldStats"] = field(default_factory=dict)
    #: Kinds of list elements.
    items: Counter[str] = field(default_factory=Counter)
    #: Datetimes carrying a time zone (stored in UTC with ``+00:00``).
    aware: int = 0

    def add(self, value: Any) -> None:
        self.present += 1
        if _empty(value):
            self.empty += 1
        kind = value_kind(value)
        self.types[kind] += 1
        if kind == "datetime" and _aware(value):
            self.aware += 1
        if kind == "dict":
            for name, inner in value.items():
                if inner is not None:
                    self.fields.setdefault(str(name), FieldStats()).add(inner)
        elif kind == "list":
            self.items.update(value_kind(v) for v in value if v is not None)
        if self.distinct is not None and kind in ("str", "int", "float", "decimal", "bool",
                                                  "date", "datetime", "time"):
            identity = (kind, value if not isinstance(value, float) else float(value))
            if identity not in self.distinct:
                if len(self.distinct) >= DISTINCT_LIMIT:
                    self.distinct = None
                else:
                    self.distinct[identity] = value
        elif kind not in ("str", "int", "float", "decimal", "bool", "date", "datetime", "time"):
            self.distinct = None  # lists and dicts: distinct counts would mislead

    def python_type(self) -> str | None:
        """The declared type that reads every seen value back, or ``None`` for "any"."""
        kinds = set(self.types)
        if not kinds:
            return None
        if len(kinds) == 1:
            return _PY_TYPES.get(next(iter(kinds)))
        if kinds == {"int", "float"}:
            return "float"
        if kinds <= {"int", "float", "decimal"}:
            return "decimal.Decimal"
        return None

    def choices(self, max_choices: int) -> list[Any] | None:
        """A small closed set of str or int values that repeat, or ``None``."""
        if self.distinct is None or set(self.types) not in ({"str"}, {"int"}):
            return None
        count = len(self.distinct)
        if count > max_choices or self.present < 2 * count:
            return None
        return sorted(self.distinct.values())


@dataclass
class Schema:
    """The statistics of every field of the records read."""

    records: int = 0
    #: How many records the storage holds, when only a sample was read.
    total: int | None = None
    fields: dict[str, FieldStats] = field(default_factory=dict)
    location: str = ""

    @property
    def sampled(self) -> bool:
        return self.total is not None and self.total > self.records


def inspect_records(records: Iterable[Mapping[str, Any]],
                    progress: Callable[[int], None] | None = None) -> Schema:
    """Count fields, types and values over ``records`` (plain mappings)."""
    schema = Schema()
    for record in records:
        schema.records += 1
        for name, value in record.items():
            if value is not None:
                schema.fields.setdefault(str(name), FieldStats()).add(value)
        if progress is not None:
            progress(schema.records)
    return schema


def infer_schema(source: "BaseStorageAdapter | BaseQueryAdapter", sample: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Schema:
    """Read every record of a storage or query (or the first ``sample``) and count."""
    from doqu.fixtures import stored_records
    from doqu.query.base import BaseQueryAdapter

    query = source if isinstance(source, BaseQueryAdapter) else source.get_query()
    total = query.count()
    limited = query[:sample] if sample is not None else query
    expected = min(total, sample) if sample is not None else total
    report = (lambda done: progress(done, expected)) if progress is not None else None
    schema = inspect_records((record for _, record in stored_records(limited)), report)
    schema.total = total
    schema.location = query.storage.describe_location()
    return schema


# -- output -------------------------------------------------------------------------

def _percent(part: int, whole: int) -> str:
    if not whole:
        return "0%"
    share = 100 * part / whole
    if 0 < share < 1:
        return "<1%"
    if 99 < share < 100:
        return ">99%"
    return f"{share:.0f}%"


def _describe(stats: FieldStats, whole: int) -> str:
    """One comment line: presence, types, distinct values."""
    parts = [f"{stats.present}/{whole} ({_percent(stats.present, whole)})"]
    if len(stats.types) == 1:
        kind = next(iter(stats.types))
        parts.append(_kind_label(kind, stats))
    else:
        parts.append(", ".join(f"{_kind_label(kind, stats)} {_percent(n, stats.present)}"
                               for kind, n in stats.types.most_common()))
    if stats.items:
        parts.append("items: " + ", ".join(kind for kind, _ in stats.items.most_common()))
    if stats.empty:
        parts.append(f"{stats.empty} empty")
    if stats.distinct is not None and stats.distinct:
        parts.append(f"{len(stats.distinct)} distinct")
    elif stats.distinct is None and set(stats.types) <= {"str", "int", "float", "decimal", "date",
                                                          "datetime", "time", "bool"}:
        parts.append(f"over {DISTINCT_LIMIT} distinct")
    return "; ".join(parts)


def _kind_label(kind: str, stats: FieldStats) -> str:
    if kind == "datetime" and stats.aware:
        return "datetime (aware)" if stats.aware == stats.types["datetime"] else "datetime (some aware)"
    return kind


def _name(name: str) -> str:
    """A field name fit for a comment: plain if it is a simple word, else quoted."""
    return name if re.fullmatch(r"[\w.-]+", name) else repr(name)


def _comment(text: str) -> str:
    return " ".join(text.split())  # never a newline inside a comment


def _subfield_lines(stats: FieldStats, prefix: str, indent: str, depth: int = 0) -> list[str]:
    lines = []
    for name, inner in stats.fields.items():
        path = f"{prefix}.{_name(name)}"
        lines.append(f"{indent}#   {_comment(path)}: {_comment(_describe(inner, stats.types['dict']))}")
        if inner.fields and depth < 4:
            lines.extend(_subfield_lines(inner, path, indent, depth + 1))
    return lines


def class_name_for(text: str) -> str:
    """A CamelCase class name made from a table, collection or file name."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words)
    if not name or not name.isidentifier() or keyword.iskeyword(name):
        return "Record"
    return name


def render_class(schema: Schema, class_name: str = "Record", max_choices: int = 10) -> str:
    """Python source of a ``Document`` subclass that fits the records counted in ``schema``."""
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise ValueError(f"{class_name!r} is not a valid Python class name")
    whole = schema.records
    structure: list[str] = []
    validators: list[str] = []
    used_validators: set[str] = set()
    modules: set[str] = set()
    for name in sorted(schema.fields):
        stats = schema.fields[name]
        declared = stats.python_type()
        if declared and "." in declared:
            modules.add(declared.split(".")[0])
        structure.append(f"        {name!r}: {declared or 'None'},  # {_comment(_describe(stats, whole))}")
        if stats.fields:
            structure.extend(_subfield_lines(stats, _name(name), "        "))
        if not _QUERYABLE.match(name):
            structure[-1] += " (no validators: not a queryable name)"
            continue
        chain: list[str] = []
        always = stats.present == whole and whole > 0
        if always:
            chain.append("exists()" if stats.empty else "required()")
        choices = stats.choices(max_choices)
        if choices is not None:
            if not always:
                chain.append("optional()")
            chain.append(f"any_of({choices!r})")
        if chain:
            used_validators.update(c.split("(")[0] for c in chain)
            validators.append(f"        {name!r}: [{', '.join(chain)}],")
    lines = ['"""A document class inferred by `doqu inspect`; review it before use."""', ""]
    lines.extend(f"import {module}" for module in sorted(modules))
    if modules:
        lines.append("")
    lines.append("from doqu import Document")
    if used_validators:
        lines.append(f"from doqu.validators import {', '.join(sorted(used_validators))}")
    lines.extend(["", ""])
    seen = f"{whole} records"
    if schema.sampled:
        seen = f"a sample of {whole} of {schema.total} records"
    lines.append(f"# Inferred from {_comment(seen)} in {_comment(schema.location) or 'the storage'}.")
    if schema.sampled:
        lines.append("# Records outside the sample may not fit these validators: check them.")
    lines.append(f"class {class_name}(Document):")
    if structure:
        lines.append("    structure = {")
        lines.extend(structure)
        lines.append("    }")
    if validators:
        lines.append("    validators = {")
        lines.extend(validators)
        lines.append("    }")
    if not structure:
        lines.append("    pass  # no records, so no fields were seen")
    return "\n".join(lines) + "\n"


def _stats_json(stats: FieldStats, whole: int, max_choices: int) -> dict[str, Any]:
    from doqu.fixtures import encode_value

    out: dict[str, Any] = {
        "present": stats.present,
        "ratio": round(stats.present / whole, 4) if whole else 0,
        "empty": stats.empty,
        "types": dict(stats.types.most_common()),
        "python_type": stats.python_type(),
        "distinct": len(stats.distinct) if stats.distinct is not None else None,
    }
    if stats.aware:
        out["aware"] = stats.aware
    if stats.distinct is not None and 0 < len(stats.distinct) <= max_choices:
        out["values"] = [encode_value(v) for v in sorted(stats.distinct.values(),
                                                         key=lambda v: (str(type(v)), v))]
    if stats.items:
        out["items"] = dict(stats.items.most_common())
    if stats.fields:
        out["fields"] = {name: _stats_json(inner, stats.types["dict"], max_choices)
                         for name, inner in sorted(stats.fields.items())}
    return out


def schema_to_json(schema: Schema, max_choices: int = 10) -> dict[str, Any]:
    """The statistics as JSON-ready data (``doqu inspect --format json``)."""
    return {
        "location": schema.location,
        "records": schema.records,
        "total": schema.total if schema.total is not None else schema.records,
        "sampled": schema.sampled,
        "fields": {name: _stats_json(stats, schema.records, max_choices)
                   for name, stats in sorted(schema.fields.items())},
    }
