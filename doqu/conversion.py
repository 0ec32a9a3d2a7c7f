"""Values between Python and engines.

doqu keeps one *canonical* form of a record, used by the shared Python
evaluator and by every engine that stores JSON: only ``str``, ``int``,
``float``, ``bool``, ``Decimal`` (a JSON number written exactly), ``list``
and ``dict``. Everything else is encoded so that it sorts correctly as text:

==============  ==========================================================
Python          canonical form
==============  ==========================================================
date            ``"2024-02-29"``
datetime        ``"2024-02-29T13:05:00.000000"``; aware ones converted to
                UTC and suffixed ``"+00:00"`` so they come back aware
time            ``"13:05:00.000000"`` (fixed width, so text order is time order)
bytes           base64 text
Document        its primary key
==============  ==========================================================

The declared type in a document's ``structure`` turns the value back
(:meth:`ConverterManager.from_db`). Engines with richer native types (MongoDB)
subclass :class:`ConverterManager`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import json.scanner
import math
from typing import Any, Callable

from doqu.errors import DataProcessorDoesNotExist, ProcessorDoesNotExist, ValidationError

__all__ = ["ConverterManager", "canonical", "dumps", "loads", "JSON_NATIVE"]

JSON_NATIVE = (str, int, float, bool, list, dict)


class ConverterManager:
    """Converts values to an engine's form (``to_db``) and back (``from_db``).

    Subclasses register extra types with :meth:`register`. ``to_db`` gets the
    storage so that references can be resolved to keys in that storage.
    """

    def __init__(self) -> None:
        self._from_db: dict[type, Callable[[Any], Any]] = {
            str: _expect(str),
            bool: _expect(bool),
            int: _to_int,
            float: _to_float,
            decimal.Decimal: _to_decimal,
            dt.datetime: _to_datetime,
            dt.date: _to_date,
            dt.time: _to_time,
            bytes: _to_bytes,
            list: _expect(list),
            dict: _expect(dict),
        }

    def register(self, datatype: type, from_db: Callable[[Any], Any]) -> None:
        """Teach the manager to restore values of ``datatype``."""
        self._from_db[datatype] = from_db

    # -- to the engine ---------------------------------------------------
    def to_db(self, value: Any, storage: Any = None, *, field: str = "?") -> Any:
        """Return the engine form of ``value``; ``None`` stays ``None`` (= absent)."""
        return canonical(value, field=field)

    # -- from the engine -------------------------------------------------
    def from_db(self, datatype: Any, value: Any) -> Any:
        """Restore ``value`` read from the engine to ``datatype`` (``None``: as stored)."""
        if value is None or datatype is None:
            return value
        try:
            convert = self._from_db[datatype]
        except KeyError:
            for known, convert in self._from_db.items():
                if isinstance(datatype, type) and issubclass(datatype, known):
                    break
            else:
                raise ProcessorDoesNotExist(
                    f"no converter for datatype {datatype!r}; register one with "
                    f"ConverterManager.register()"
                ) from None
        return convert(value)


_SCALARS = (str, int, float, bool)


def canonical(value: Any, *, field: str = "?") -> Any:
    """Encode a Python value into doqu's canonical JSON-friendly form."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if isinstance(value, ExactFloat):
            return decimal.Decimal(value.text)  # digits a float cannot hold: keep them
        if not math.isfinite(value):
            raise ValidationError(
                f"field {field!r}: {value!r} cannot be stored (not a finite number)", field=field
            )
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValidationError(
                f"field {field!r}: {value!r} cannot be stored (not a finite number)", field=field
            )
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return value.isoformat(timespec="microseconds") + "+00:00"
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise DataProcessorDoesNotExist(
                f"field {field!r}: time values with a timezone are not supported"
            )
        return value.isoformat(timespec="microseconds")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (list, tuple)):
        try:
            return [canonical(v, field=field) for v in value]
        except (DataProcessorDoesNotExist, ValidationError):
            for i, v in enumerate(value):  # again, only to name the element in the message
                canonical(v, field=f"{field}[{i}]")
            raise
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise DataProcessorDoesNotExist(
                    f"field {field!r}: dict keys must be str, got {type(k).__name__} {k!r}"
                )
            if v is not None:
                out[k] = canonical(v, field=field) if type(v) in _SCALARS else \
                    canonical(v, field=f"{field}.{k}")
        return out
    pk = _reference_key(value, field)
    if pk is not None:
        return pk
    raise DataProcessorDoesNotExist(
        f"field {field!r}: values of type {type(value).__name__} cannot be stored; "
        f"supported: str, int, float, bool, None, date, datetime, time, Decimal, bytes, "
        f"list, dict and documents"
    )


def _reference_key(value: Any, field: str) -> str | None:
    from doqu.document import Document  # late: document imports this module

    if isinstance(value, Document):
        if value.pk is None:
            raise ValidationError(
                f"field {field!r}: the referenced {type(value).__name__} is not saved yet",
                field=field,
            )
        return value.pk
    return None


def _expect(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
            return value
        raise ValidationError(f"expected {kind.__name__}, found {type(value).__name__} {value!r}")

    return convert


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValidationError(f"expected int, found bool {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    raise ValidationError(f"expected int, found {type(value).__name__} {value!r}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        raise ValidationError(f"expected float, found {type(value).__name__} {value!r}")
    return float(value)


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, ExactFloat):
        return decimal.Decimal(value.text)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationError(f"expected Decimal, found {type(value).__name__} {value!r}")
    return decimal.Decimal(repr(value) if isinstance(value, float) else value)


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(f"expected datetime, found {value!r}")


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise ValidationError(f"expected date, found {value!r}")


def _to_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(f"expected time, found {value!r}")


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            pass
    raise ValidationError(f"expected bytes (base64 text), found {value!r}")


# -- JSON text ---------------------------------------------------------------

class ExactFloat(float):
    """A float parsed from JSON that remembers its text, so Decimals survive exactly."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> "ExactFloat":
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def _decimal_json(value: decimal.Decimal) -> str:
    text = format(value, "f") if -30 < value.adjusted() < 30 else str(value)
    if "." not in text and "E" not in text and "e" not in text:
        text += ".0"  # keep it a JSON *float* so it reads back as a number with its text
    return text


class _NotJSON(Exception):
    pass


def _not_json(value: Any) -> Any:
    raise _NotJSON


_fast_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                default=_not_json).encode


def dumps(record: Any) -> str:
    """Canonical record → compact JSON text (Decimals exact, no NaN).

    One prebuilt C encoder; the exact (slower) writer only for records holding
    a Decimal, which the C encoder would have to round to a float.
    """
    try:
        return _fast_encode(record)
    except _NotJSON:
        return _encode_with_decimals(record)


def _has_decimal(value: Any) -> bool:
    if isinstance(value, (decimal.Decimal, ExactFloat)):
        return True
    if isinstance(value, dict):
        return any(_has_decimal(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_decimal(v) for v in value)
    return False


def _encode_with_decimals(value: Any) -> str:
    if isinstance(value, decimal.Decimal):
        return _decimal_json(value)
    if isinstance(value, ExactFloat):
        return value.text  # read from JSON: write back the very same digits
    if isinstance(value, dict):
        return "{" + ",".join(
            json.dumps(k, ensure_ascii=False) + ":" + _encode_with_decimals(v)
            for k, v in value.items()
        ) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode_with_decimals(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _number(text: str) -> float:
    # a plain float when the text is its shortest repr (what the encoder writes);
    # otherwise (a Decimal's digits) keep the text so Decimal fields stay exact
    value = float(text)
    return value if repr(value) == text else ExactFloat(text)


_DECODER = json.JSONDecoder(parse_float=_number)
_scan = json.scanner.make_scanner(_DECODER)  # type: ignore[attr-defined]


def loads(text: str | bytes) -> Any:
    """JSON text → canonical record; floats whose text a float cannot reproduce keep it."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    try:  # the C scanner directly: compact text needs no whitespace handling
        value, end = _scan(text, 0)
    except StopIteration:
        return _DECODER.decode(text)  # raises a JSONDecodeError saying where
    return value if end == len(text) else _DECODER.decode(text)
