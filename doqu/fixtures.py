"""Records in files: fixtures, dumps and loads that any engine reads back exactly.

A file holds *records*, each with its primary key in the field ``_key``
(another name can be chosen). Four formats are read, three written:

``jsonl``   one JSON object per line (what ``doqu dump`` writes by default);
``json``    a JSON array of objects, or an object mapping keys to records;
``yaml``    the same two shapes in YAML (reading needs PyYAML);
``csv``     a header row naming the fields, with optional type hints
            (``age:int``, ``born:date``); an empty cell means "absent".

JSON has no dates, exact decimals or bytes, so values of those Python types
are written as *tagged* objects with one key: ``{"$date": "2024-02-29"}``,
``{"$datetime": "2024-02-29T13:05:00+02:00"}``, ``{"$time": "13:05:00"}``,
``{"$decimal": "3.14159265358979323846"}``, ``{"$bytes": "<base64>"}``. A
record's own one-key object whose key starts with ``$`` is written inside
``{"$dict": ...}`` so it is never mistaken for a tag. Values that an engine
keeps in doqu's canonical form (dates as ISO text, bytes as base64 text, see
:mod:`doqu.conversion`) are dumped as that text and load back as the same
text, so a dump loaded into any engine gives the same records.
MongoDB's extended JSON (``$oid``, ``$numberDecimal``, ``$numberLong``,
``$date``...) is read too, so ``mongoexport`` files load as they are.

Loading checks the whole file before it writes anything, then writes in one
transaction: a malformed line (reported with its number) leaves the storage
unchanged.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import decimal
import io
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TextIO

from doqu.conversion import canonical
from doqu.errors import ConfigurationError, DoquError, ValidationError

if TYPE_CHECKING:
    from doqu.backend_base import BaseStorageAdapter

__all__ = [
    "KEY_FIELD",
    "FORMATS",
    "load_fixture",
    "load_records",
    "read_records",
    "write_records",
    "encode_value",
    "decode_value",
    "parse_number",
    "exact_number",
    "stored_records",
    "detect_format",
    "FileRecord",
]

#: The field that carries a record's primary key in a file.
KEY_FIELD = "_key"
#: Formats read by :func:`read_records`.
FORMATS = ("jsonl", "json", "yaml", "csv")
#: Formats written by :func:`write_records`.
WRITE_FORMATS = ("jsonl", "json", "csv")
#: Type hints a CSV header may carry (``name:type``).
CSV_TYPES = ("str", "int", "float", "bool", "decimal", "date", "datetime", "time", "bytes", "json")

_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl",
    ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".csv": "csv",
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FileRecord:
    """One record read from a file: where it was, its key (if given) and its fields."""

    where: str
    key: str | None
    fields: dict[str, Any]


# -- values --------------------------------------------------------------------

def parse_number(text: str) -> float | decimal.Decimal:
    """A JSON number with a fraction: a float, or a Decimal if a float would lose digits."""
    number = float(text)
    if math.isfinite(number) and decimal.Decimal(repr(number)) == decimal.Decimal(text):
        return number
    return decimal.Decimal(text)


def exact_number(value: float) -> float | decimal.Decimal:
    """A float read from a JSON engine, as the Decimal it was saved as if its text shows one.

    JSON engines hand back :class:`doqu.conversion.ExactFloat`, which keeps the
    stored text. No float encoder writes more digits than a float holds, nor a
    fraction ending in 0 (``1003.10``): text like that was a ``Decimal``.
    """
    text = getattr(value, "text", None)
    if not isinstance(text, str):
        return value
    number = parse_number(text)
    fraction = text.partition(".")[2].split("e")[0].split("E")[0]
    if isinstance(number, decimal.Decimal) or (len(fraction) > 1 and fraction.endswith("0")):
        return decimal.Decimal(text)
    return number


def stored_records(query: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, record)`` for each result of a query, in doqu's canonical form, as stored.

    Documents without a declared type would give JSON-native values (a
    Decimal's digits reduced to a float on some engines); dumps and
    inspection want every stored digit.
    """
    for key, record in query.records():
        yield key, dict(record)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number doqu can store")


def encode_value(value: Any) -> Any:
    """A Python value → JSON-ready data, tagging what JSON cannot say."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        number = exact_number(value)  # doqu.conversion.ExactFloat from a JSON engine
        return {"$decimal": str(number)} if isinstance(number, decimal.Decimal) else float(number)
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, Mapping):
        out = {str(k): encode_value(v) for k, v in value.items() if v is not None}
        if len(out) == 1 and next(iter(out)).startswith("$"):
            return {"$dict": out}
        return out
    pk = getattr(value, "pk", None)  # a referenced document
    if isinstance(pk, str):
        return pk
    return canonical(value)  # raises DataProcessorDoesNotExist naming the type


def _fromisoformat(kind: type, text: Any) -> Any:
    if not isinstance(text, str):
        raise ValueError(f"expected ISO text, got {text!r}")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read "Z"
    return kind.fromisoformat(text)  # type: ignore[attr-defined]


def _decode_date(value: Any) -> Any:
    if isinstance(value, dict) and "$numberLong" in value:  # MongoDB: milliseconds since the epoch
        millis = int(value["$numberLong"])
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=millis)
    if isinstance(value, str) and len(value) > 10:  # MongoDB writes datetimes as $date too
        return _fromisoformat(dt.datetime, value)
    return _fromisoformat(dt.date, value)


def _decode_decimal(text: Any) -> decimal.Decimal:
    if not isinstance(text, (str, int)) or isinstance(text, bool):
        raise ValueError(f"expected the number as text, got {text!r}")
    number = decimal.Decimal(text)
    if not number.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _decode_base64(text: Any) -> bytes:
    if isinstance(text, dict):  # MongoDB: {"base64": ..., "subType": ...}
        text = text.get("base64")
    if not isinstance(text, str):
        raise ValueError(f"expected base64 text, got {text!r}")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _decode_int(text: Any) -> int:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"expected an integer as text, got {text!r}")
    return int(text)


def _decode_float(text: Any) -> float:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a number, got {text!r}")
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _decode_str(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"expected text, got {text!r}")
    return text


_TAGS: dict[str, Callable[[Any], Any]] = {
    "$date": _decode_date,
    "$datetime": lambda v: _fromisoformat(dt.datetime, v),
    "$time": lambda v: _fromisoformat(dt.time, v),
    "$decimal": _decode_decimal,
    "$bytes": _decode_base64,
    # MongoDB extended JSON, as mongoexport writes it
    "$oid": _decode_str,
    "$numberDecimal": _decode_decimal,
    "$numberLong": _decode_int,
    "$numberInt": _decode_int,
    "$numberDouble": _decode_float,
    "$binary": _decode_base64,
}


def decode_value(value: Any) -> Any:
    """JSON data → Python values, reading the tags :func:`encode_value` writes."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            tag, inner = next(iter(value.items()))
            if tag == "$dict":
                if not isinstance(inner, dict):
                    raise ValueError(f"$dict holds an object, got {inner!r}")
                return {k: decode_value(v) for k, v in inner.items()}
            decode = _TAGS.get(tag)
            if decode is not None:
                try:
                    return decode(inner)
                except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:
                    raise ValueError(f"bad {tag} value {inner!r}: {exc}") from None
        return {k: decode_value(v) for k, v in value.items()}
    return value


def json_loads(text: str) -> Any:
    """JSON text → data with exact decimals and no NaN (tags not yet decoded)."""
    return json.loads(text, parse_float=parse_number, parse_constant=_reject_constant)


def json_dumps(data: Any) -> str:
    """Encoded data → compact JSON text on one line."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# -- reading ---------------------------------------------------------------------

def detect_format(path: str, sample: str = "") -> str:
    """The format of ``path`` from its extension, else from its first character."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    first = sample.lstrip()[:1]
    if first in ("[", "{"):
        return "json"
    raise ValidationError(
        f"cannot tell the format of {path!r} from its name; give one of {', '.join(FORMATS)}"
    )


def _open_text(path: str) -> TextIO:
    if path == "-":  # read whole, so that stdin itself is never closed
        data = sys.stdin.buffer.read()
        try:
            return io.StringIO(data.decode("utf-8-sig"), newline="")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"<stdin>: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    return open(path, encoding="utf-8-sig", newline="")


def read_records(path: str | os.PathLike[str], format: str | None = None,
                 key_field: str = KEY_FIELD, text: str | None = None) -> Iterator[FileRecord]:
    """Stream the records of a file (``text`` instead of reading it, e.g. for stdin).

    Raises :class:`doqu.ValidationError` naming the file and line (or record
    number) of anything malformed; a missing file raises ``FileNotFoundError``.
    """
    name = os.fspath(path)
    label = "<stdin>" if name == "-" else name
    fmt = format
    if fmt is None and name == "-":
        fmt = "jsonl"
    elif fmt is None:
        sample = text[:64] if text is not None else ""
        if text is None and os.path.splitext(name)[1].lower() not in _EXTENSIONS:
            with _open_text(name) as probe:
                sample = probe.read(64)
        fmt = detect_format(name, sample)
    if fmt not in FORMATS:
        raise ValidationError(f"unknown file format {fmt!r}; known: {', '.join(FORMATS)}")
    stream: TextIO = io.StringIO(text) if text is not None else _open_text(name)
    try:
        if fmt == "jsonl":
            yield from _read_jsonl(stream, label, key_field)
        elif fmt == "json":
            yield from _read_json(stream, label, key_field)
        elif fmt == "yaml":
            yield from _read_yaml(stream, label, key_field)
        else:
            yield from _read_csv(stream, label, key_field)
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{label}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    finally:
        if text is None and name != "-":
            stream.close()


def _record(where: str, data: Any, key_field: str, key: Any = None) -> FileRecord:
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: expected a record (an object), got {_kind(data)}")
    try:
        fields = decode_value(data)
    except ValueError as exc:
        raise ValidationError(f"{where}: {exc}") from None
    if key_field in fields:
        given = fields.pop(key_field)
        if key is not None and given is not None and str(given) != key:
            raise ValidationError(
                f"{where}: {key_field} {given!r} differs from the key {key!r} it is filed under")
        key = given if given is not None else key
    return FileRecord(where, _check_file_key(where, key, key_field), fields)


def _check_file_key(where: str, key: Any, key_field: str) -> str | None:
    """Keys are text; integer keys (as in Django fixtures) are taken as their digits."""
    if key is None:
        return None
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    if not isinstance(key, str) or not key:
        raise ValidationError(f"{where}: {key_field} must be a non-empty string, got {key!r}")
    return key


def _kind(data: Any) -> str:
    if isinstance(data, list):
        return "a list"
    if data is None:
        return "null"
    return f"{type(data).__name__} {data!r:.40}"


def _read_jsonl(stream: TextIO, label: str, key_field: str) -> Iterator[FileRecord]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        where = f"{label} line {number}"
        try:
            data = json_loads(line)
        except ValueError as exc:
            raise ValidationError(f"{where}: malformed JSON: {_json_problem(exc)}") from None
        yield _record(where, data, key_field)


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (column {exc.colno})"
    return str(exc)


def _read_json(stream: TextIO, label: str, key_field: str) -> Iterator[FileRecord]:
    text = stream.read()
    try:
        data = json_loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one object per line, in a file named .json
            yield from _read_jsonl(io.StringIO(text), label, key_field)
            return
        raise ValidationError(f"{label} line {exc.lineno}: malformed JSON: {exc.msg} "
                              f"(column {exc.colno})") from None
    except ValueError as exc:
        raise ValidationError(f"{label}: malformed JSON: {exc}") from None
    yield from _read_document(data, label, key_field, "a JSON")


def _read_document(data: Any, label: str, key_field: str, what: str) -> Iterator[FileRecord]:
    if isinstance(data, list):
        for index, item in enumerate(data, start=1):
            yield _record(f"{label} record {index}", item, key_field)
    elif isinstance(data, dict):
        for key, item in data.items():
            yield _record(f"{label} record {key!r}", item, key_field, key=str(key))
    elif data is None:
        return
    else:
        raise ValidationError(f"{label}: expected {what} list of records or an object mapping "
                              f"keys to records, got {_kind(data)}")


def _read_yaml(stream: TextIO, label: str, key_field: str) -> Iterator[FileRecord]:
    try:
        import yaml
    except ImportError:
        raise ConfigurationError(
            f"{label}: reading YAML needs PyYAML: pip install 'doqu[cli]' (or pip install PyYAML)"
        ) from None
    try:
        data = yaml.safe_load(stream)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label} line {mark.line + 1}" if mark is not None else label
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(f"{where}: malformed YAML: {problem}") from None
    yield from _read_document(data, label, key_field, "a YAML")


def _read_csv(stream: TextIO, label: str, key_field: str) -> Iterator[FileRecord]:
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = [_csv_column(cell, label) for cell in header]
        names = [name for name, _ in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationError(f"{label} line 1: repeated column(s) {', '.join(duplicates)}")
        for row in reader:
            if not any(row):
                continue
            where = f"{label} line {reader.line_num}"
            if len(row) > len(columns):
                raise ValidationError(
                    f"{where}: {len(row)} cells but the header names {len(columns)} columns")
            data: dict[str, Any] = {}
            for (name, kind), cell in zip(columns, row):
                if cell == "":
                    continue
                try:
                    data[name] = _CSV_READ[kind](cell)
                except (ValueError, ArithmeticError, binascii.Error) as exc:
                    raise ValidationError(f"{where}: column {name!r} ({kind}): cannot read {cell!r}: "
                                          f"{exc}") from None
            key = data.pop(key_field, None)
            yield FileRecord(where, _check_file_key(where, key, key_field), data)
    except csv.Error as exc:
        raise ValidationError(f"{label} line {reader.line_num}: malformed CSV: {exc}") from None


def _csv_column(cell: str, label: str) -> tuple[str, str]:
    name, colon, kind = cell.rpartition(":")
    if not colon:
        name, kind = cell, "str"
    elif kind not in CSV_TYPES:
        raise ValidationError(
            f"{label} line 1: column {cell!r} has the unknown type {kind!r}; known types: "
            f"{', '.join(CSV_TYPES)} (write {cell + ':str'!r} for a name with a colon)"
        )
    if not name:
        raise ValidationError(f"{label} line 1: a column has no name")
    return name, kind


def _csv_bool(cell: str) -> bool:
    lowered = cell.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


_CSV_READ: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": _decode_float,
    "bool": _csv_bool,
    "decimal": _decode_decimal,
    "date": lambda c: _fromisoformat(dt.date, c),
    "datetime": lambda c: _fromisoformat(dt.datetime, c),
    "time": lambda c: _fromisoformat(dt.time, c),
    "bytes": _decode_base64,
    "json": lambda c: decode_value(json_loads(c)),
}


# -- loading ---------------------------------------------------------------------

def load_records(db: "BaseStorageAdapter", path: str | os.PathLike[str], *, format: str | None = None,
                 key_field: str = KEY_FIELD, batch_size: int = 1000,
                 progress: Progress | None = None) -> int:
    """Check every record of the file, then save them all in one transaction; returns how many.

    Records with a key replace the record stored under it; the others get new keys.
    """
    if batch_size < 1:
        raise ValidationError(f"batch size must be at least 1, got {batch_size}")
    name = os.fspath(path)
    text = _open_text(name).read() if name == "-" else None

    def records() -> Iterator[FileRecord]:
        return read_records(name, format, key_field, text=text)

    total = 0
    for item in records():  # first pass: nothing is written unless every record is fine
        _encode(db, item)
        total += 1
    done = 0
    with db.transaction():
        batch: list[tuple[str, dict[str, Any]]] = []
        for item in records():
            record = _encode(db, item)
            batch.append((item.key if item.key is not None else db._new_key(), record))
            if len(batch) >= batch_size:
                db._put_many(batch)
                done += len(batch)
                batch = []
                if progress is not None:
                    progress(done, total)
        if batch:
            db._put_many(batch)
            done += len(batch)
        if progress is not None:
            progress(done, total)
    return done


def _encode(db: "BaseStorageAdapter", item: FileRecord) -> dict[str, Any]:
    try:
        if item.key is not None:
            db._check_key(item.key)
        return db._encode(None, item.fields)
    except DoquError as exc:
        raise type(exc)(f"{item.where}: {exc}") from None


def load_fixture(path: str | os.PathLike[str], db: "BaseStorageAdapter | None" = None, *,
                 format: str | None = None, key_field: str = KEY_FIELD) -> "BaseStorageAdapter":
    """Load a fixture file into ``db`` (a new memory storage if none) and return the storage.

    The format comes from the extension (``.jsonl``, ``.json``, ``.yaml``,
    ``.csv``) unless ``format`` names it; a malformed record raises
    :class:`doqu.ValidationError` with its line and leaves ``db`` unchanged.
    """
    if db is None:
        from doqu.config import get_db

        db = get_db("memory://")
    load_records(db, path, format=format, key_field=key_field)
    return db


# -- writing ---------------------------------------------------------------------

def _file_record(key: str, fields: Mapping[str, Any], key_field: str) -> dict[str, Any]:
    if key_field in fields:
        raise ValidationError(
            f"record {key!r} has a field named {key_field!r}, which files use for the key; "
            f"choose another key field name"
        )
    out: dict[str, Any] = {key_field: key}
    for name, value in fields.items():
        if value is not None:
            out[name] = encode_value(value)
    return out


def write_records(out: IO[str], items: Iterable[tuple[str, Mapping[str, Any]]], format: str = "jsonl",
                  key_field: str = KEY_FIELD, progress: Callable[[int], None] | None = None) -> int:
    """Write ``(key, fields)`` pairs as ``jsonl``, ``json`` or ``csv``; returns how many."""
    if format == "jsonl":
        count = 0
        for key, fields in items:
            out.write(json_dumps(_file_record(key, fields, key_field)) + "\n")
            count += 1
            if progress is not None:
                progress(count)
        return count
    if format == "json":
        count = 0
        out.write("[")
        for key, fields in items:
            out.write(("," if count else "") + "\n" + json_dumps(_file_record(key, fields, key_field)))
            count += 1
            if progress is not None:
                progress(count)
        out.write("\n]\n" if count else "]\n")
        return count
    if format == "csv":
        return _write_csv(out, items, key_field, progress)
    raise ValidationError(f"unknown output format {format!r}; known: {', '.join(WRITE_FORMATS)}")


def _csv_kind(value: Any) -> str:
    """The CSV column type that writes ``value`` (an encoded value) exactly."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str" if value else "json"  # an empty cell means absent, so "" needs JSON
    if isinstance(value, dict) and len(value) == 1:
        tag = next(iter(value))
        simple = {"$decimal": "decimal", "$date": "date", "$datetime": "datetime",
                  "$time": "time", "$bytes": "bytes"}
        if tag in simple:
            return simple[tag]
    return "json"


def _csv_cell(value: Any, kind: str) -> str:
    if kind == "json":
        return json_dumps(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind in ("int", "str"):
        return str(value)
    if kind == "float":
        return repr(float(value))
    return str(next(iter(value.values())))  # a tagged value: its text


def _write_csv(out: IO[str], items: Iterable[tuple[str, Mapping[str, Any]]], key_field: str,
               progress: Callable[[int], None] | None) -> int:
    # Column types are known only after every record, so records wait in a spool file.
    kinds: dict[str, set[str]] = {}
    count = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for key, fields in items:
            record = _file_record(key, fields, key_field)
            for name, value in record.items():
                kinds.setdefault(name, set()).add(_csv_kind(value))
            spool.write(json_dumps(record) + "\n")
            count += 1
            if progress is not None:
                progress(count)
        if not count:
            return 0
        columns = [(name, next(iter(seen)) if len(seen) == 1 else "json") for name, seen in kinds.items()]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([name if kind == "str" and ":" not in name else f"{name}:{kind}"
                         for name, kind in columns])
        spool.seek(0)
        for line in spool:
            record = json.loads(line)
            writer.writerow(["" if record.get(name) is None else _csv_cell(record[name], kind)
                             for name, kind in columns])
    return count
