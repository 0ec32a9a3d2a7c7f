"""Hostile input, on every engine: a correct round trip or a clear doqu error, never a silent change.

Every case saves something an engine may find hard to hold (odd field
names, numbers JSON cannot write exactly, deep nesting, huge values, broken
Unicode, odd keys) and then accepts exactly one of two outcomes:

* the save succeeds and reading back (``get``, ``get_many`` and a query)
  gives exactly what was saved, with the same types; or
* the save raises a :class:`doqu.DoquError` and nothing was written (the
  key is absent and ``len(db)`` did not change).

Anything else fails: a raw driver error, a ``RecursionError``, a value that
comes back different, a record left behind by a refused save. The query
cases check that names and values never act as query syntax (``%``, ``_``,
``$gt``, quotes, dots) and that floats compare exactly in the engine
(integers beyond 64 bits in queries: tests/test_regressions.py).

Cases run in groups (one test per group and engine, reporting every failing
case at once) to keep the catalogue cheap on 16 engines. A case with a
known bug on some engine runs in ``test_known_bug`` instead, marked
``xfail(strict=True)`` on exactly those engines: when the bug is fixed the
test XPASSes and the marker must go.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

import pytest

from doqu import Document, DoquError

# -- the catalogue ----------------------------------------------------------------------

#: Field names that are quoting, path or operator syntax somewhere.
NAMES = {
    "double-quote": 'a"b',
    "single-quote": "a'b",
    "sql": "x'); DROP TABLE documents; --",
    "dot": "a.b",
    "leading-dollar": "$where",
    "inner-dollar": "a$b",
    "brackets": "a[0]",
    "json-path": "$.a",
    "backslash": "a\\b",
    "percent-underscore": "%_",
    "nul": "a\x00b",
    "surrogate": "\ud800",
    "long-10k": "n" * 10_000,
    "spaces": " a b ",
    "unicode": "ключ🙂",
    "numeric": "123",
    "double-underscore": "a__b",
}

#: Primary keys that are quoting, glob or path syntax somewhere.
KEYS = {
    "double-quote": 'k"1',
    "single-quote": "k'1",
    "glob": "k*?[x]",
    "percent": "k%_1",
    "dot-path": "../../etc/passwd",
    "colon": "a:b:c",
    "braces": "k{slot}",
    "space": " k 1 ",
    "nul": "k\x001",
    "surrogate": "k\udfff",
    "long-10k": "k" * 10_000,
    "unicode": "ключ🙂",
    "newline": "k\n1",
}


def _deep_dict(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"d": value}
    return value


def _deep_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


#: JSON-native values (read back without a declared type).
PLAIN_VALUES = {
    "int-2**53+1": 2**53 + 1,
    "int-2**63-1": 2**63 - 1,
    "int--2**63": -(2**63),
    "int-2**63": 2**63,
    "int-2**64+1": 2**64 + 1,
    "int--2**63-1": -(2**63) - 1,
    "int-10**30": 10**30,
    "int--10**40": -(10**40),
    "float-min-subnormal": 5e-324,
    "float-max": 1.7976931348623157e308,
    "float-0.1+0.2": 0.1 + 0.2,
    "float-1e-7": 1e-7,
    "float-17-digits": 123456789.12345678,
    "float-integral": 2.0,
    "empty-string": "",
    "nul-string": "a\x00b",
    "only-nul": "\x00",
    "surrogate-string": "\ud800",
    "surrogate-pair-halves": "\udbff\udfff",
    "line-separators": "a\u2028b\u2029c\r\n",
    "astral": "🙂𝄞\U0010ffff",
    "combining": "e\u0301",
    "control-chars": "".join(chr(i) for i in range(1, 32)),
    "quotes-and-escapes": "'\"\\/%_*?$.[]{}",
    "text-1mb": "ab\u00e9 " * 262_144,
    "empty-list": [],
    "empty-dict": {},
    "list-of-mixed": [1, "1", 1.5, True, [2], {"k": "v"}],
    "nested-hostile-keys": {'a"b': 1, "a.b": 2, "$gt": 3, "": 4, "a\\b": 5},
    "depth-20-dict": _deep_dict(20),
    "depth-100-dict": _deep_dict(100),
    "depth-1000-dict": _deep_dict(1000),
    "depth-1000-list": _deep_list(1000),
    "wide-1000-fields": {f"f{i}": i for i in range(1000)},
}


class Typed(Document):
    structure = {"when": dt.datetime, "day": dt.date, "t": dt.time, "amount": decimal.Decimal,
                 "blob": bytes, "f": float, "n": int}


#: Values restored through a declared type: (field, value).
TYPED_VALUES = {
    "decimal-0.1": ("amount", decimal.Decimal("0.1")),
    "decimal-40-digits": ("amount", decimal.Decimal("3.141592653589793238462643383279502884197")),
    "decimal-1E+400": ("amount", decimal.Decimal("1E+400")),
    "decimal--1E-400": ("amount", decimal.Decimal("-1E-400")),
    "decimal-huge-integer": ("amount", decimal.Decimal(10**40 + 1)),
    "bytes-all-256": ("blob", bytes(range(256)) * 4),
    "bytes-empty": ("blob", b""),
    "datetime-aware-ist": ("when", dt.datetime(2024, 2, 29, 23, 59, 59, 999999,
                                               tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))),
    "datetime-year-1": ("when", dt.datetime(1, 1, 1, 0, 0, 0, 1)),
    "date-year-9999": ("day", dt.date(9999, 12, 31)),
    "time-microseconds": ("t", dt.time(23, 59, 59, 999999)),
    "float-as-declared": ("f", 1e300),
    "int-2**70": ("n", 2**70),
}

#: Values no engine can hold: every engine refuses them and names the field.
NOT_STORABLE = {
    "float-nan": float("nan"),
    "float-inf": float("inf"),
    "float--inf": float("-inf"),
    "decimal-nan": decimal.Decimal("NaN"),
    "decimal-snan": decimal.Decimal("sNaN"),
    "decimal--inf": decimal.Decimal("-Infinity"),
    "nan-in-a-list": [1.0, float("nan")],
    "inf-in-a-dict": {"x": float("inf")},
    "a-set": {1, 2},
    "an-object": object(),
    "a-complex": 1j,
}

#: Literal text for the pattern cases, and the needles each must find alone.
TEXTS = ["a%b", "a_b", "a\\b", "a*b", "a[b]", "a'b", 'a"b', "a.b", "a$b", "a^b", "axb", "ab"]
NEEDLES = {"percent": "a%", "underscore": "a_", "backslash": "a\\", "star": "a*", "bracket": "a[",
           "quote": "a'", "dquote": 'a"', "dot": "a.", "dollar": "a$", "caret": "a^"}


# -- checks -------------------------------------------------------------------------------

def exact(a: Any, b: Any) -> bool:
    """Equality that also demands the same types (``True`` is not ``1``, ``1.0`` is not ``1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    if isinstance(a, int) or isinstance(b, int):
        return isinstance(a, int) and isinstance(b, int) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(exact(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return (a.tzinfo is None) == (b.tzinfo is None) and a == b
    return type(a) is type(b) and a == b


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 120 else text[:100] + f"... ({len(text)} chars)"


def absent(db: Any, key: str) -> bool:
    """``key not in db``; membership must answer, not raise."""
    return key not in db


def save_or_refuse(db: Any, data: dict[str, Any], key: str = "k",
                   cls: type[Document] | None = None) -> DoquError | None:
    """Save ``data`` under ``key``: ``None`` if saved, the error if refused (nothing written)."""
    before = len(db)
    try:
        db.save(cls, data, primary_key=key)
    except DoquError as exc:
        assert len(db) == before, f"a refused save changed len(db): {exc}"
        assert absent(db, key), f"a refused save left the record behind: {exc}"
        return exc
    return None


def assert_round_trip(db: Any, data: dict[str, Any], key: str = "k",
                      cls: type[Document] = Document) -> None:
    """``get``, ``get_many`` and a query of everything all give back exactly ``data``."""
    found = [doc for doc in cls.objects(db) if doc.pk == key]
    assert len(found) == 1, f"a query of all records found {len(found)} records under the key"
    for how, got in (("get", db.get(cls, key).dump()), ("get_many", db.get_many(cls, [key])[0].dump()),
                     ("query", found[0].dump())):
        assert got.keys() == data.keys(), f"{how}: fields changed: {short(sorted(got))}"
        for name in data:
            assert exact(got[name], data[name]), (
                f"{how}: {short(name)}: saved {short(data[name])}, read {short(got[name])}")


def pks(query: Any) -> list[str]:
    return sorted(doc.pk for doc in query)


def check_name(db: Any, name: str) -> None:
    data = {name: "v", "tag": "t"}
    if save_or_refuse(db, data) is None:
        assert_round_trip(db, data)
        assert pks(Document.objects(db).where(tag="t")) == ["k"]
        assert Document.objects(db).where(tag__exists=False).count() == 0


def check_nested_name(db: Any, name: str) -> None:
    data = {"d": {name: "v", "x": 1}, "l": [{name: 1}]}
    if save_or_refuse(db, data) is None:
        assert_round_trip(db, data)
        assert pks(Document.objects(db).where(d__x=1)) == ["k"]


def check_value(db: Any, value: Any) -> None:
    data = {"v": value, "tag": "t"}
    if save_or_refuse(db, data) is None:
        assert_round_trip(db, data)
        assert Document.objects(db).where(tag="t").count() == 1


def check_typed(db: Any, field: str, value: Any) -> None:
    data = {field: value}
    if save_or_refuse(db, data, cls=Typed) is None:
        assert_round_trip(db, data, cls=Typed)


def check_not_storable(db: Any, value: Any) -> None:
    db.save(None, {"x": 1}, primary_key="before")
    error = save_or_refuse(db, {"ok": 1, "bad": value})
    assert error is not None, f"{short(value)} was accepted"
    assert "bad" in str(error), f"the message does not name the field: {error}"
    assert db.get(Document, "before").dump() == {"x": 1}


def check_key(db: Any, key: str) -> None:
    db.save(None, {"x": 0}, primary_key="other")
    if save_or_refuse(db, {"x": 1}, key=key) is not None:
        return
    assert key in db
    assert db.get(Document, key)["x"] == 1
    assert sorted(db) == sorted(["other", key])
    assert pks(Document.objects(db)) == sorted(["other", key])
    assert pks(Document.objects(db).where(x=1)) == [key]
    db.delete(key)
    assert key not in db
    assert list(db) == ["other"]


def check_needle(db: Any, needle: str) -> None:
    for i, text in enumerate(TEXTS):
        db.save(None, {"s": text, "l": [text]}, primary_key=f"k{i}")
    expected = [t for t in TEXTS if t.startswith(needle)]
    assert len(expected) == 1
    q = Document.objects(db)
    texts = lambda query: sorted(d["s"] for d in query)
    assert texts(q.where(s__startswith=needle)) == expected, "startswith"
    assert texts(q.where(s__contains=needle)) == expected, "contains"
    assert texts(q.where(s__endswith=expected[0][1:])) == expected, "endswith"
    assert texts(q.where(s=expected[0])) == expected, "equals"
    assert texts(q.where(l__contains=expected[0])) == expected, "list contains"
    assert texts(q.where(s__in=[expected[0]])) == expected, "in"
    assert q.where_not(s__startswith=needle).count() == len(TEXTS) - 1, "where_not startswith"


def check_dotted_name_is_not_a_path(db: Any) -> None:
    stored_dotted = save_or_refuse(db, {"a.b": 1, "tag": "dotted"}, key="dotted") is None
    db.save(None, {"a": {"b": 2}, "tag": "nested"}, primary_key="nested")
    q = Document.objects(db)
    assert pks(q.where(a__b=1)) == []
    assert pks(q.where(a__b=2)) == ["nested"]
    assert pks(q.where(a__b__exists=True)) == ["nested"]
    assert pks(q.where_not(a__b=2)) == (["dotted"] if stored_dotted else [])
    assert q.values("a__b") == [2]


def check_operator_documents(db: Any) -> None:
    db.save(None, {"d": 5}, primary_key="number")
    db.save(None, {"d": {"$gt": 0}}, primary_key="dict")
    db.save(None, {"d": "$gt"}, primary_key="text")
    db.save(None, {"d": {"$ne": None, "$exists": True}}, primary_key="dict2")
    q = Document.objects(db)
    assert pks(q.where(d={"$gt": 0})) == ["dict"]
    assert pks(q.where(d__in=[{"$gt": 0}])) == ["dict"]
    assert pks(q.where_not(d={"$gt": 0})) == ["dict2", "number", "text"]
    assert pks(q.where(d="$gt")) == ["text"]
    assert pks(q.where(d__gt=0)) == ["number"]
    assert pks(q.where(d={"$exists": True, "$ne": None})) == ["dict2"]
    assert pks(q.where(d__contains="$")) == ["text"]


def check_quotes_are_not_sql(db: Any) -> None:
    db.save(None, {"name": "alice", "tags": ["x"]}, primary_key="a")
    hostile = ["' OR '1'='1", "\" OR \"1\"=\"1", "'); DELETE FROM documents; --", "\\'", "$ne",
               "*", "%", "') OR 1=1 --", "\\\"", "]", "}"]
    q = Document.objects(db)
    for text in hostile:
        assert q.where(name=text).count() == 0, text
        assert list(q.where(name__startswith=text)) == [], text
        assert list(q.where(tags__contains=text)) == [], text
        assert q.where_not(name=text).count() == 1, text
    assert len(db) == 1


def check_float_exactness(db: Any) -> None:
    values = [0.1, 0.1 + 0.2, 0.3, 5e-324, 1e308]
    for i, x in enumerate(values):
        db.save(None, {"x": x}, primary_key=f"k{i}")
    q = Document.objects(db)
    assert pks(q.where(x=0.3)) == ["k2"]
    assert pks(q.where(x=0.1 + 0.2)) == ["k1"]
    assert pks(q.where(x__gt=0.3)) == ["k1", "k4"]
    assert pks(q.where(x__lt=1e-300)) == ["k3"]
    assert [d.pk for d in q.order_by("x")] == ["k3", "k0", "k2", "k1", "k4"]
    assert q.values("x") == sorted(values)


def check_non_finite_operands(db: Any) -> None:
    """A NaN or infinite operand is refused, or answers as Python's comparison would."""
    db.save(None, {"x": 1.5}, primary_key="k")
    for bad, expected_lt in ((float("nan"), []), (float("inf"), ["k"]), (decimal.Decimal("NaN"), [])):
        try:
            found = pks(Document.objects(db).where(x__lt=bad))
        except DoquError:
            continue
        assert found == expected_lt, f"x < {bad!r}"


CaseCheck = Callable[[Any], None]


def _cases() -> dict[str, dict[str, CaseCheck]]:
    groups: dict[str, dict[str, CaseCheck]] = {
        "name": {k: (lambda db, v=v: check_name(db, v)) for k, v in NAMES.items()},
        "nested-name": {k: (lambda db, v=v: check_nested_name(db, v)) for k, v in NAMES.items()},
        "value": {k: (lambda db, v=v: check_value(db, v)) for k, v in PLAIN_VALUES.items()},
        "typed": {k: (lambda db, f=f, v=v: check_typed(db, f, v)) for k, (f, v) in TYPED_VALUES.items()},
        "not-storable": {k: (lambda db, v=v: check_not_storable(db, v)) for k, v in NOT_STORABLE.items()},
        "key": {k: (lambda db, v=v: check_key(db, v)) for k, v in KEYS.items()},
        "pattern": {k: (lambda db, v=v: check_needle(db, v)) for k, v in NEEDLES.items()},
        "query": {
            "empty-field-name-refused": lambda db: check_empty_name(db),
            "dotted-name-is-not-a-path": check_dotted_name_is_not_a_path,
            "operator-documents-are-values": check_operator_documents,
            "quotes-are-not-sql": check_quotes_are_not_sql,
            "floats-compare-exactly": check_float_exactness,
            "non-finite-operands": check_non_finite_operands,
        },
    }
    return groups


def check_empty_name(db: Any) -> None:
    assert save_or_refuse(db, {"": 1, "x": 2}) is not None, "an empty field name was accepted"


CASES = _cases()

_MONGO_UNICODE = ("mongodb: a string with a lone surrogate raises a raw UnicodeEncodeError; "
                  "StorageAdapter._errors does not map it to ValidationError")
_SHELVE_KEY = ("shelve: _load wraps the UnicodeEncodeError of a lone-surrogate key in a StorageError "
               "('cannot read record'), which `key in db` (catching ValidationError) lets through")

#: (group, case) → {engine: reason}: failing today, run by test_known_bug as strict xfails.
KNOWN_BUGS: dict[tuple[str, str], dict[str, str]] = {
    ("name", "surrogate"): {"mongodb": _MONGO_UNICODE},
    ("nested-name", "surrogate"): {"mongodb": _MONGO_UNICODE},
    ("value", "surrogate-string"): {"mongodb": _MONGO_UNICODE},
    ("value", "surrogate-pair-halves"): {"mongodb": _MONGO_UNICODE},
    ("key", "surrogate"): {"shelve": _SHELVE_KEY, "mongodb": _MONGO_UNICODE,
                           "sharded-mixed-mongodb": _MONGO_UNICODE},
}


def _run(db: Any, check: CaseCheck) -> None:
    db.clear()
    check(db)


@pytest.mark.parametrize("group", CASES)
def test_hostile_inputs(db: Any, engine: Any, group: str) -> None:
    """Every case of the group: a round trip or a clean refusal (known bugs excepted, see below)."""
    problems = []
    for case, check in CASES[group].items():
        if (group, case) in KNOWN_BUGS:
            continue
        try:
            _run(db, check)
        except Exception as exc:  # collect them all: one run shows every broken case
            problems.append(f"{group}/{case}: {type(exc).__name__}: {short(str(exc))}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("group,case", list(KNOWN_BUGS), ids=[f"{g}-{c}" for g, c in KNOWN_BUGS])
def test_known_bug(db: Any, engine: Any, group: str, case: str, request: pytest.FixtureRequest) -> None:
    """Cases failing today on some engines (strict xfail there); every other engine must pass them."""
    affected = KNOWN_BUGS[(group, case)]
    reason = affected.get(engine.name) or affected.get("*")
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    _run(db, CASES[group][case])


def test_a_16_mb_value_all_or_nothing(db: Any) -> None:
    """16 MiB of text: stored exactly, or refused with nothing of the bulk save written."""
    value = "0123456789abcdef" * (1024 * 1024)
    docs = [Document(i=i) for i in range(3)] + [Document(big=value)]
    try:
        keys = db.save_many(docs)
    except DoquError:
        assert len(db) == 0, "a refused bulk save left records behind"
        return
    got = db.get(Document, keys[-1])["big"]
    assert len(got) == len(value) and got == value
    assert Document.objects(db).where(i__gte=0).count() == 3
    assert Document.objects(db).where(big__startswith="0123").count() == 1
