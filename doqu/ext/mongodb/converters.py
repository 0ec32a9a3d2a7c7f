"""Values and field names between doqu and BSON.

What is stored, and why:

* ``str``, ``int`` (64-bit), ``float``, ``bool``, ``list``, ``dict``: as BSON's own
  types, so other MongoDB clients read them naturally.
* ``Decimal``: BSON ``Decimal128``, which MongoDB compares and sorts with the
  other numbers by exact value (34 significant digits; more raise
  :class:`~doqu.ValidationError`). Integers beyond 64 bits are refused too:
  BSON has no wider integer.
* ``date``, ``datetime``, ``time``, ``bytes``: doqu's canonical text (ISO 8601;
  aware datetimes in UTC with ``+00:00``; base64). BSON dates keep only
  milliseconds and no timezone, so they could not give back what was saved;
  the fixed-width text sorts chronologically and every operator then answers
  exactly as doqu's evaluator does. Bytes stay text for the same reason: a
  BSON binary is invisible to string operators, while doqu's canonical form
  is base64 text.
* Field names: ``.``, a leading ``$``, NUL and ``%`` cannot (or cannot safely)
  appear in a BSON field name, so they are written ``%2E``, ``%24``, ``%00``
  and ``%25``; a top-level ``_id`` (where the primary key lives) is written
  ``%5Fid`` and the empty name ``%``. Queryable names are identifiers and are
  never changed.

Records written by other applications may hold BSON types doqu never writes
(dates, ObjectIds, binaries...): they are read as pymongo returns them and
shown to the Python evaluator in canonical form.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
from typing import Any, Mapping

from doqu.conversion import ConverterManager, canonical
from doqu.errors import ValidationError

__all__ = ["MongoConverterManager", "encode_key", "decode_key", "encode_record",
           "decode_record", "to_decimal128", "canonical_value", "INT64"]

INT64 = (-(2**63), 2**63 - 1)
_NEEDS_ESCAPE = re.compile(r"[.%\x00]|^\$")
_ESCAPED = re.compile(r"%(25|2E|24|00|5F)")


# -- field names ----------------------------------------------------------------------------

def encode_key(name: str, top: bool = False) -> str:
    """A field name as stored; identity for every name a query can use, except top-level ``_id``."""
    if top and name == "_id":
        return "%5Fid"
    if name == "":
        return "%"
    if not _NEEDS_ESCAPE.search(name):
        return name
    out = name.replace("%", "%25").replace(".", "%2E").replace("\x00", "%00")
    return "%24" + out[1:] if out.startswith("$") else out


def decode_key(name: str) -> str:
    if "%" not in name:
        return name
    if name == "%":
        return ""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), name)


def encode_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record's names as stored (values are already in engine form)."""
    return {encode_key(k, top=True): _encode_names(v) for k, v in record.items()}


def _encode_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {encode_key(k): _encode_names(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_names(v) for v in value]
    return value


def decode_record(document: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document (without ``_id``) back to doqu's field names."""
    return {decode_key(k): _decode_names(v) for k, v in document.items() if k != "_id"}


def _decode_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {decode_key(k): _decode_names(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_names(v) for v in value]
    return value


# -- values -----------------------------------------------------------------------------------

def to_decimal128(value: decimal.Decimal | int, field: str = "?") -> Any:
    """``Decimal128`` holding exactly ``value``; ``ValidationError`` if it cannot."""
    from bson.decimal128 import Decimal128

    try:
        return Decimal128(decimal.Decimal(value))
    except (decimal.Inexact, decimal.Overflow, decimal.InvalidOperation, decimal.Rounded) as exc:
        raise ValidationError(
            f"field {field!r}: {value!r} cannot be stored exactly in MongoDB "
            f"(Decimal128 holds 34 significant digits): {type(exc).__name__}", field=field
        ) from None


def _native(value: Any, field: str) -> Any:
    """Canonical value → the form stored in MongoDB."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ValidationError(
                f"field {field!r}: {value} does not fit MongoDB's 64-bit integers; "
                f"store it as a Decimal", field=field)
        return value
    if isinstance(value, decimal.Decimal):
        return to_decimal128(value, field)
    if isinstance(value, list):
        return [_native(v, f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _native(v, f"{field}.{k}") for k, v in value.items()}
    return value


def canonical_value(value: Any) -> Any:
    """A value read from MongoDB in doqu's canonical form (for the Python evaluator)."""
    from bson.decimal128 import Decimal128
    from bson.objectid import ObjectId

    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, dict):
        return {k: canonical_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return canonical(value)
    return value


def _python(value: Any) -> Any:
    """What an application sees for a stored value without a declared type."""
    from bson.decimal128 import Decimal128

    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, dict):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_python(v) for v in value]
    return value


class MongoConverterManager(ConverterManager):
    """doqu's canonical form, except Decimals as ``Decimal128`` and 64-bit integer checks."""

    def to_db(self, value: Any, storage: Any = None, *, field: str = "?") -> Any:
        return _native(canonical(value, field=field), field)

    def from_db(self, datatype: Any, value: Any) -> Any:
        return super().from_db(datatype, _python(value))
