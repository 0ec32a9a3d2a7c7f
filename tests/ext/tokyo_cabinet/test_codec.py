"""The record layout (codec) and the facts about Tokyo Cabinet it relies on.

The claims the query compiler builds on are checked against the real
library here: which number texts TC's parser reads exactly, that the string
escape keeps byte order, equality and prefixes, and that no column value is
ever empty or holds NUL.
"""

from __future__ import annotations

import decimal
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doqu.conversion import canonical
from doqu.errors import StorageError
from doqu.ext.tokyo_cabinet import _binding as tc
from doqu.ext.tokyo_cabinet import codec
from doqu.ext.tokyo_cabinet.compiler import QCNUMEQ, QCNUMGT, QCNUMLT, QONUMASC, QOSTRASC

D = decimal.Decimal


@pytest.fixture
def table(tmp_path: Path) -> Any:
    db = tc.TableDB()
    db.open(str(tmp_path / "codec.tct"), tc.OWRITER | tc.OCREAT)
    yield db
    db.close()


def keys_of(db: Any, column: bytes, op: int, expr: bytes) -> set[int]:
    with db.query() as query:
        query.addcond(column, op, expr)
        return {int(k) for k in query.search()}


# -- values ----------------------------------------------------------------------

RECORD = {
    "s": "plain", "empty": "", "nul": "a\x00b", "ctl": "x\x01y\x02", "uni": "Zoë ✓",
    "i": -(2 ** 53) + 1, "big": 2 ** 70, "f": 2.5e-08, "g": 0.1, "fl": 1e300,
    "d": D("3.141592653589793238462643383279"), "d_exp": D("1E+3"), "t": True, "no": False,
    "looks_num": "17", "looks_bool": "true", "l": [1, "two", 3.5, None, [4]],
    "m": {"a": {"b": {"c": [1, {"d": "deep"}]}}, "n": "x\x00", "q": 1.5},
    "\x01starts with the reserved byte": 1, "a.b": "dotted", "sp ace": {"k": 1},
}


def test_round_trip_keeps_every_type() -> None:
    cols = codec.encode_record(canonical(RECORD))
    back = codec.decode_record(cols)
    assert set(back) == set(RECORD)
    for name, value in RECORD.items():
        assert back[name] == value, name
        assert type(back[name]) is type(value), name


def test_columns_are_never_empty_and_never_hold_nul() -> None:
    cols = codec.encode_record(canonical(RECORD))
    for name, value in cols.items():
        assert value, name                       # an empty value in an indexed column aborts TC
        assert b"\0" not in value, name          # TC's string operators stop at NUL
        assert name


def test_plain_strings_have_no_type_column_and_others_do() -> None:
    cols = codec.encode_record({"s": "plain", "n": 5, "b": False, "e": ""})
    assert cols[b"s"] == b"plain" and b"\x01t:s" not in cols
    assert (cols[b"n"], cols[b"\x01t:n"]) == (b"5", b"i")
    assert (cols[b"b"], cols[b"\x01t:b"]) == (b"false", b"b")
    assert (cols[b"e"], cols[b"\x01t:e"]) == (b"\x01", b"z")


def test_numbers_are_plain_decimal_text() -> None:
    assert codec.number_text(2.5e-08) == "0.000000025"
    assert codec.number_text(1e20) == "100000000000000000000"
    assert codec.number_text(D("1E+3")) == "1000"
    assert codec.number_text(17.0) == "17.0"
    assert codec.number_text(-0.0) == "-0.0"


def test_nested_dicts_get_shadow_columns_for_identifier_keys() -> None:
    cols = codec.encode_record({"address": {"city": "Oslo", "geo": {"lat": 59.9}, "not id": 1,
                                            "tags": ["a"]}})
    assert cols[b"\x01v.address.city"] == b"Oslo"
    assert cols[b"\x01t.address.city"] == b"s"
    assert cols[b"\x01t.address.geo"] == b"m" and b"\x01v.address.geo" not in cols
    assert (cols[b"\x01v.address.geo.lat"], cols[b"\x01t.address.geo.lat"]) == (b"59.9", b"f")
    assert cols[b"\x01t.address.tags"] == b"l"
    assert not any(b"not id" in name for name in cols)
    assert codec.decode_record(cols) == {"address": {"city": "Oslo", "geo": {"lat": 59.9},
                                                     "not id": 1, "tags": ["a"]}}


def test_shadows_stop_at_the_limits_and_say_so() -> None:
    deep: dict[str, Any] = {"v": 1}
    for _ in range(codec.MAX_DEPTH + 1):
        deep = {"k": deep}
    kinds = codec.record_kinds({"deep": deep})
    assert "x" in kinds[b"deep"]
    wide = {f"k{i}": i for i in range(codec.MAX_SHADOWS)}
    assert "x" in codec.record_kinds({"wide": wide})[b"wide"]
    assert "x" not in codec.record_kinds({"ok": {"a": {"b": 1}}})[b"ok"]


def test_column_refs() -> None:
    assert codec.column_ref(("age",)) == codec.ColumnRef(b"age", b"\x01t:age", False, b"age")
    ref = codec.column_ref(("address", "city"))
    assert ref is not None and (ref.value, ref.type, ref.nested) == (
        b"\x01v.address.city", b"\x01t.address.city", True)
    assert codec.column_ref(tuple("abcdefgh")) is None          # deeper than MAX_DEPTH


def test_unknown_marker_and_malformed_values_raise_storage_errors() -> None:
    with pytest.raises(StorageError, match="marker"):
        codec.decode_record({b"x": b"1", b"\x01t:x": b"?"})
    with pytest.raises(StorageError, match="does not fit"):
        codec.decode_record({b"x": b"abc", b"\x01t:x": b"i"})
    with pytest.raises(StorageError, match="malformed"):
        codec.unescape_string(b"a\x01\x05")


def test_catalogue_round_trip() -> None:
    catalogue = codec.Catalogue().merged({b"age": {"i", "s"}}).with_search(b"bio")
    back = codec.Catalogue.from_columns(catalogue.to_columns())
    assert back.kinds(b"age") == {"i", "s"} and back.search == {b"bio"}
    assert back.missing({b"age": {"i"}}) == {}
    assert back.missing({b"age": {"f"}}) == {b"age": frozenset("isf")}
    assert codec.Catalogue.unknown().kinds(b"anything") == codec.ALL_KINDS
    with pytest.raises(StorageError, match="format"):
        codec.Catalogue.from_columns({b"\x01format": b"99"})


# -- the string escape ----------------------------------------------------------------

TEXTS = st.text(alphabet="\x00\x01\x02\x03ab\u00e9\U0001f389", max_size=6)


@settings(max_examples=300, deadline=None)
@given(a=TEXTS, b=TEXTS)
def test_escape_keeps_order_equality_and_prefixes(a: str, b: str) -> None:
    ea, eb = codec.escape_operand(a), codec.escape_operand(b)
    assert (ea == eb) == (a == b)
    assert (ea < eb) == (a < b)                  # UTF-8 byte order is code point order
    if a:                                        # (the compiler never escapes "" as a prefix)
        assert eb.startswith(ea) == b.startswith(a)
    raw, escaped = codec.escape_string(a)
    assert (codec.unescape_string(raw) if escaped else codec.decode_text(raw)) == a


def test_escaped_strings_sort_and_match_in_tokyo_cabinet(table: Any) -> None:
    texts = ["", "\x00", "\x00a", "\x01", "a", "a\x00", "a\x00b", "a\x01", "ab", "b\x01\x02"]
    shuffled = list(enumerate(texts))
    random.Random(3).shuffle(shuffled)
    for i, text in shuffled:
        table.put(str(i).encode(), {b"v": codec.escape_operand(text)})
    with table.query() as query:
        query.setorder(b"v", QOSTRASC)
        assert [texts[int(k)] for k in query.search()] == sorted(texts)
    for i, text in enumerate(texts):
        with table.query() as query:
            query.addcond(b"v", tc.QCSTREQ, codec.escape_operand(text))
            assert query.search() == [str(i).encode()]


# -- numbers: what TC's parser reads exactly ---------------------------------------------

def test_number_classes() -> None:
    assert codec.number_class(2 ** 62) == "i" and codec.number_class(2 ** 63) == "I"
    assert codec.number_class(0.5) == "f"       # exactly its short text
    assert codec.number_class(0.1) == "g"       # not exactly 0.1, but its text is short
    assert codec.number_class(0.30000000000000004) == "F"   # 17 digits
    assert codec.number_class(1e20) == "F"
    assert codec.number_class(D("9.99")) == "d"
    assert codec.number_class(D("1234567890.1234567")) == "D"
    assert codec.number_class(D("0.0000000000000001")) == "d"
    assert codec.number_class(D("0.00000000000000001")) == "D"


def _random_exact_text(rnd: random.Random) -> str:
    if rnd.random() < 0.3:
        return str(rnd.choice([-1, 1]) * rnd.randrange(0, 2 ** 63))
    digits = rnd.randint(1, 16)
    whole_digits = rnd.randint(0, digits)
    whole = str(rnd.randrange(10 ** (whole_digits - 1), 10 ** whole_digits)) if whole_digits else "0"
    fraction = "".join(rnd.choice("0123456789") for _ in range(digits - whole_digits))
    text = whole + ("." + fraction if fraction else "")
    return "-" + text if rnd.random() < 0.5 else text


def test_tokyo_cabinet_compares_exact_class_numbers_exactly(table: Any) -> None:
    """The rule behind the i/f/g/d letters, against the library itself."""
    rnd = random.Random(7)
    texts = [_random_exact_text(rnd) for _ in range(800)]
    for text in texts[:200]:                   # neighbours one unit apart
        if "." in text:
            unit = D(1).scaleb(-len(text.split(".")[1]))
            texts += [format(D(text) + unit, "f"), format(D(text) - unit, "f")]
    for text in texts:
        assert codec._tc_exact_text(text), text
    for i, text in enumerate(texts):
        table.put(str(i).encode(), {b"x": text.encode()})
    with table.query() as query:
        query.setorder(b"x", QONUMASC)
        ordered = [D(texts[int(k)]) for k in query.search()]
    assert ordered == sorted(ordered)
    for probe in rnd.sample(texts, 25):
        value = D(probe)
        assert keys_of(table, b"x", QCNUMEQ, probe.encode()) == {
            i for i, t in enumerate(texts) if D(t) == value}
        assert keys_of(table, b"x", QCNUMGT, probe.encode()) == {
            i for i, t in enumerate(texts) if D(t) > value}
        assert keys_of(table, b"x", QCNUMLT, probe.encode()) == {
            i for i, t in enumerate(texts) if D(t) < value}


def test_tokyo_cabinet_misreads_what_the_rule_excludes(table: Any) -> None:
    """Why the rule exists: 17 digits and exponents are not read exactly."""
    table.put(b"1", {b"x": b"0.30000000000000004"})
    table.put(b"2", {b"x": b"2.5e-08"})
    assert keys_of(table, b"x", QCNUMEQ, b"0.3") == {1}          # digits beyond 16 ignored
    assert keys_of(table, b"x", QCNUMEQ, b"2.5") == {2}          # the exponent is ignored
    assert not codec._tc_exact_text("0.30000000000000004")
