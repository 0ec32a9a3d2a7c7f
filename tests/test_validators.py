"""Validators check values and, where they can, narrow a class's query."""

from __future__ import annotations

import decimal
import re
from typing import Any

import pytest

from doqu import Document
from doqu.query.conditions import Leaf, Or, describe
from doqu.validators import (
    URL, AnyOf, Email, EqualTo, Equals, Exists, IPAddress, Length, NumberRange, Optional,
    Regexp, Required, StopValidation, ValidationError, any_of, email, equals, number_range,
    optional, regexp, required,
)


def passes(validator: Any, value: Any, doc: Any = None) -> bool:
    try:
        validator(doc, value)
    except (ValidationError, StopValidation):
        return False
    return True


@pytest.mark.parametrize("validator,good,bad", [
    (Required(), ["x", 0, [1]], [None, "", [], {}]),
    (Exists(), ["", 0], [None]),
    (Equals(3), [3], [4, "3"]),
    (AnyOf(["a", "b"]), ["a"], ["c", None]),
    (Length(2, 3), ["ab", [1, 2, 3]], ["a", "abcd"]),
    (NumberRange(1, 5), [1, 5, 2.5, decimal.Decimal("3")], [0, 6, "3", True, None]),
    (Regexp(r"\d+"), ["12a"], ["a12", 12]),
    (Email(), ["a@b.io"], ["a@b", "no", "a b@c.de"]),
    (IPAddress(), ["10.0.0.1"], ["::1", "999.1.1.1", "x"]),
    (IPAddress(ipv4=False, ipv6=True), ["::1"], ["10.0.0.1"]),
    (URL(), ["https://example.org/x?y", "ftp://a.bc"], ["example.org", "http://localhost"]),
    (URL(require_tld=False), ["http://localhost:8080/"], ["localhost"]),
])
def test_validators_accept_and_refuse(validator: Any, good: list, bad: list) -> None:
    for value in good:
        assert passes(validator, value), value
    for value in bad:
        assert not passes(validator, value), value


def test_equal_to_compares_fields() -> None:
    class Pw(Document):
        structure = {"pw": str, "again": str}
        validators = {"again": [EqualTo("pw")]}

    assert Pw(pw="x", again="x").is_valid()
    assert not Pw(pw="x", again="y").is_valid()


def test_optional_stops_the_chain() -> None:
    class Opt(Document):
        structure = {"n": int}
        validators = {"n": [optional(), number_range(1, 2)]}

    assert Opt().is_valid() and Opt(n=1).is_valid() and not Opt(n=5).is_valid()


def test_error_messages_are_custom() -> None:
    with pytest.raises(ValidationError, match="pick red"):
        AnyOf(["red"], message="pick red")(None, "blue")


def test_filters_become_conditions() -> None:
    class V(Document):
        validators = {
            "a": [required()], "b": [equals(1)], "c": [any_of([1, 2])],
            "d": [optional(), number_range(0, 9)], "e": [regexp("x+", re.IGNORECASE)],
            "f": [email()],
        }

    text = describe(V._class_filter())
    assert "a exists True" in text and "b equals 1" in text and "c in (1, 2)" in text
    assert "d exists False OR (d gte 0 AND d lte 9)" in text
    assert "e matches_caseless '^(?:x+)'" in text
    assert "f " not in text  # no filter for e-mail: validation only


def test_optional_filter_admits_absent() -> None:
    class W(Document):
        validators = {"n": [Optional(), NumberRange(min=1)]}

    tree = W._class_filter()
    assert isinstance(tree, Or) and tree.children[0] == Leaf(("n",), "exists", False)
