"""Records ↔ the JSON text PostgreSQL stores as ``jsonb``.

``jsonb`` keeps numbers as ``numeric`` and prints them back in positional
form: ``2.5e-08`` comes back as ``0.000000025``, and a float with a positive
exponent (``1e+16``) would come back as the *integer* ``10000000000000000``.
So floats with a positive exponent are written positionally with a ``.0``
(``10000000000000000.0``: still a float when read), and a number read back is
a plain ``float`` whenever it equals the float its text denotes; only digits
a float cannot hold (a ``Decimal``'s) are kept as
:class:`doqu.conversion.ExactFloat`.

``jsonb`` cannot hold the NUL character; :func:`encode` refuses such records
with a :class:`doqu.ValidationError` naming the field, before anything is sent.
"""

from __future__ import annotations

import decimal
import json
import json.scanner
import re
from typing import Any

from doqu.conversion import ExactFloat, dumps
from doqu.errors import ValidationError

__all__ = ["encode", "loads", "check_text"]


class _NotJSON(Exception):
    pass


def _not_json(value: Any) -> Any:
    raise _NotJSON


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                           default=_not_json).encode
#: A string (skipped) or a float written with a positive exponent (rewritten). Decimals are
#: written with ``E`` by doqu.conversion and read back as integers, which suits them.
_EXPONENT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?e\+[0-9]+)')


def _exact_text(value: float) -> str:
    """A float from 2**53 up (always an integer) as its exact digits plus ``.0``."""
    return format(decimal.Decimal(value), "f") + ".0"


def _positional(match: re.Match[str]) -> str:
    number = match.group(1)
    return match.group(0) if number is None else _exact_text(float(number))


def encode(record: Any) -> str:
    """A canonical record → JSON text that ``jsonb`` stores and returns without changing kinds."""
    try:
        text = _encode(record)
    except _NotJSON:  # Decimals: written exactly by doqu.conversion.dumps
        text = dumps(record)
    if "\\u0000" in text:
        check_text(record)
    if "e+" in text:
        text = _EXPONENT.sub(_positional, text)
    return text


def check_text(value: Any, where: str = "") -> None:
    """Raise ValidationError if a string or key anywhere in ``value`` holds NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(
                f"field {where or '?'!r}: PostgreSQL cannot store the NUL character (\\u0000) in jsonb",
                field=where.split(".")[0].split("[")[0] or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if "\x00" in key:
                raise ValidationError(
                    f"field name {path!r}: PostgreSQL cannot store the NUL character (\\u0000) in jsonb",
                    field=(where or key).split(".")[0])
            check_text(item, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_text(item, f"{where}[{i}]")


def _number(text: str) -> float:
    value = float(text)
    shortest = repr(value)
    if shortest == text:
        return value
    if "e" in shortest:  # jsonb prints numbers positionally
        if shortest[shortest.index("e") + 1] == "-":
            if text == format(decimal.Decimal(shortest), "f"):
                return value
        elif text == _exact_text(value):
            return value
    return ExactFloat(text)  # digits a float cannot hold (a Decimal's): keep them


_DECODER = json.JSONDecoder(parse_float=_number)
_scan = json.scanner.make_scanner(_DECODER)


def loads(text: str) -> Any:
    """``jsonb`` output text → canonical record."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _DECODER.decode(text)  # raises a JSONDecodeError saying where
    return value if end == len(text) else _DECODER.decode(text)
