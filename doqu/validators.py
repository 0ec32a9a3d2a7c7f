"""Validators for document fields.

A validator is a callable ``validator(document, value)`` that raises
:class:`ValidationError` when the value is wrong, or :class:`StopValidation`
to end the field's chain early (``Optional`` does this for empty values).

Validators that can be expressed as a query also have
``filter_query(query, name)``: a document class is then a *view* of the
records that its validators admit, and ``Cls.objects(db)`` asks the engine
for just those. Each class has a lowercase alias (``required``,
``any_of``...) for the declarative style.
"""

from __future__ import annotations

import decimal
import ipaddress
import re
from typing import Any, Iterable

from doqu.errors import ValidationError

__all__ = [
    "ValidationError", "StopValidation",
    "Required", "required", "Optional", "optional", "Exists", "exists",
    "Equals", "equals", "EqualTo", "equal_to", "AnyOf", "any_of",
    "Length", "length", "NumberRange", "number_range", "Regexp", "regexp",
    "Email", "email", "IPAddress", "ip_address", "URL", "url",
]


class StopValidation(Exception):
    """Ends a field's validator chain; with a message it is an error too."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, dict)) and not value)


class _Validator:
    message: str | None = None

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    def fail(self, default: str) -> ValidationError:
        return ValidationError(self.message or default)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({args})"


class Required(_Validator):
    """The field must have a non-empty value; the class sees only records that have it."""

    def __call__(self, instance: Any, value: Any) -> None:
        if _empty(value):
            raise StopValidation(self.message or "this field is required")

    def filter_query(self, query: Any, name: str) -> Any:
        return query.where(**{f"{name}__exists": True})


class Optional(_Validator):
    """An empty value is fine and skips the remaining validators of the field."""

    def __call__(self, instance: Any, value: Any) -> None:
        if _empty(value):
            raise StopValidation()


class Exists(_Validator):
    """The field must be present (any value but ``None``)."""

    def __call__(self, instance: Any, value: Any) -> None:
        if value is None:
            raise StopValidation(self.message or "this field must be present")

    def filter_query(self, query: Any, name: str) -> Any:
        return query.where(**{f"{name}__exists": True})


class Equals(_Validator):
    """The field must equal a fixed value; the class sees only such records."""

    def __init__(self, other_value: Any, message: str | None = None) -> None:
        super().__init__(message)
        self.other_value = other_value

    def __call__(self, instance: Any, value: Any) -> None:
        if value != self.other_value:
            raise self.fail(f"must equal {self.other_value!r}")

    def filter_query(self, query: Any, name: str) -> Any:
        return query.where(**{name: self.other_value})


class EqualTo(_Validator):
    """The field must equal another field of the same document."""

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message)
        self.name = name

    def __call__(self, instance: Any, value: Any) -> None:
        if value != instance.get(self.name):
            raise self.fail(f"must be equal to {self.name}")


class AnyOf(_Validator):
    """The field must be one of the choices; the class sees only such records."""

    def __init__(self, choices: Iterable[Any], message: str | None = None) -> None:
        super().__init__(message)
        self.choices = list(choices)

    def __call__(self, instance: Any, value: Any) -> None:
        if value not in self.choices:
            raise self.fail(f"must be one of {self.choices!r}")

    def filter_query(self, query: Any, name: str) -> Any:
        return query.where(**{f"{name}__in": self.choices})


class Length(_Validator):
    """Length bounds (inclusive) for strings and lists; ``-1`` means unbounded."""

    def __init__(self, min: int = -1, max: int = -1, message: str | None = None) -> None:
        super().__init__(message)
        if max != -1 and min > max:
            raise ValueError("Length: min must not exceed max")
        self.min, self.max = min, max

    def __call__(self, instance: Any, value: Any) -> None:
        size = len(value) if value is not None else 0
        if size < self.min or (self.max != -1 and size > self.max):
            raise self.fail(f"length must be between {self.min} and {self.max}, got {size}")


class NumberRange(_Validator):
    """Inclusive numeric bounds; the class sees only records in range."""

    def __init__(self, min: float | None = None, max: float | None = None,
                 message: str | None = None) -> None:
        super().__init__(message)
        self.min, self.max = min, max

    def __call__(self, instance: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            raise self.fail(f"must be a number, got {value!r}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise self.fail(f"must be between {self.min} and {self.max}, got {value!r}")

    def filter_query(self, query: Any, name: str) -> Any:
        if self.min is not None:
            query = query.where(**{f"{name}__gte": self.min})
        if self.max is not None:
            query = query.where(**{f"{name}__lte": self.max})
        return query


class Regexp(_Validator):
    """The string must match the pattern at its start (``re.match``)."""

    def __init__(self, regex: str | re.Pattern[str], flags: int = 0, message: str | None = None) -> None:
        super().__init__(message)
        self.regex = re.compile(regex, flags) if isinstance(regex, str) else regex

    def __call__(self, instance: Any, value: Any) -> None:
        if not isinstance(value, str) or not self.regex.match(value):
            raise self.fail(f"must match {self.regex.pattern!r}")

    def filter_query(self, query: Any, name: str) -> Any:
        flags = self.regex.flags & ~re.UNICODE
        if flags not in (0, re.IGNORECASE):
            return query  # the engine cannot express other flags; validation still applies
        op = "matches_caseless" if flags else "matches"
        return query.where(**{f"{name}__{op}": f"^(?:{self.regex.pattern})"})


class Email(Regexp):
    """A plausible e-mail address (something@domain.tld)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(r"[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}\Z", message=message or "invalid e-mail address")

    def filter_query(self, query: Any, name: str) -> Any:
        return query


class IPAddress(_Validator):
    """An IPv4 (and/or IPv6) address in text form."""

    def __init__(self, ipv4: bool = True, ipv6: bool = False, message: str | None = None) -> None:
        super().__init__(message)
        if not (ipv4 or ipv6):
            raise ValueError("IPAddress: allow at least one of ipv4, ipv6")
        self.ipv4, self.ipv6 = ipv4, ipv6

    def __call__(self, instance: Any, value: Any) -> None:
        try:
            address = ipaddress.ip_address(value)
        except (ValueError, TypeError):
            raise self.fail(f"invalid IP address {value!r}") from None
        if (address.version == 4 and not self.ipv4) or (address.version == 6 and not self.ipv6):
            raise self.fail(f"IPv{address.version} addresses are not allowed here")


class URL(Regexp):
    """An http(s) or ftp URL; ``require_tld`` asks for a dotted host name."""

    def __init__(self, require_tld: bool = True, message: str | None = None) -> None:
        host = r"[^\s/:?#]+\.[A-Za-z]{2,}" if require_tld else r"[^\s/:?#]+"
        super().__init__(rf"(?:https?|ftp)://{host}(?::\d+)?(?:[/?#]\S*)?\Z", re.IGNORECASE,
                         message=message or "invalid URL")

    def filter_query(self, query: Any, name: str) -> Any:
        return query


required = Required
optional = Optional
exists = Exists
equals = Equals
equal_to = EqualTo
any_of = AnyOf
length = Length
number_range = NumberRange
regexp = Regexp
email = Email
ip_address = IPAddress
url = URL
