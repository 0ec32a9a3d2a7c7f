"""The query compiler: which conditions run in Tokyo Cabinet, and as what.

These tests look at the compiled conditions themselves (the executable
answers are checked against the reference in test_differential.py and the
conformance suite). The compiler is engine-neutral: the same plans drive
the Tokyo Tyrant client's query objects.
"""

from __future__ import annotations

import decimal
from typing import Any

from doqu.ext.tokyo_cabinet import _binding as tc
from doqu.ext.tokyo_cabinet import codec, compiler as C
from doqu.ext.tokyo_cabinet.compiler import Compiler, Filter
from doqu.query.conditions import Not, Or, and_, make_leaf

D = decimal.Decimal
NOT_STRING = (b"\x01t:f", C.QCSTROREQ | C.QCNEGATE, b"i,f,d,b,l,m")
IS_NUMBER = (b"\x01t:f", C.QCSTROREQ, b"i,f,d")


def comp(**kinds: str) -> Compiler:
    catalogue = codec.Catalogue().merged({name.encode(): set(k) for name, k in kinds.items()})
    return Compiler(catalogue)


def leaf(op: str, value: Any, path: tuple[str, ...] = ("f",)) -> Any:
    return make_leaf(path, op, value)


def test_constants_are_tokyo_cabinets() -> None:
    from doqu.ext.tokyo_tyrant import protocol

    for name in ["QCSTREQ", "QCSTRINC", "QCSTRBW", "QCSTREW", "QCSTRAND", "QCSTROREQ", "QCSTRRX",
                 "QCNUMEQ", "QCNUMGT", "QCNUMBT", "QCNUMOREQ", "QCFTSPH", "QCFTSEX", "QCNEGATE",
                 "QCNOIDX", "QOSTRASC", "QONUMDESC", "MSUNION", "MSDIFF", "ITLEXICAL",
                 "ITDECIMAL", "ITTOKEN", "ITQGRAM"]:
        assert getattr(C, name) == getattr(tc, name) == getattr(protocol, name), name


def test_string_equality_needs_no_kind_check_unless_the_text_could_be_another_kind() -> None:
    c = comp(f="s")
    assert c.leaf(leaf("equals", "Oslo")) == Filter.conj((b"f", C.QCSTREQ, b"Oslo"))
    for text in ["17", "-1.5", "true", "[1]", "{}"]:
        assert c.leaf(leaf("equals", text)) == Filter.conj(
            (b"f", C.QCSTREQ, text.encode()), NOT_STRING), text
    assert c.leaf(leaf("equals", "")) == Filter.conj((b"f", C.QCSTREQ, b"\x01"))
    assert c.leaf(leaf("equals", "a\x00b")) == Filter.conj((b"f", C.QCSTREQ, b"a\x01\x01b"))


def test_numbers_booleans_and_kinds() -> None:
    c = comp(f="is")
    assert c.leaf(leaf("gt", 20)) == Filter.conj((b"f", C.QCNUMGT, b"20"), IS_NUMBER)
    assert c.leaf(leaf("equals", 2.5e-08)) == Filter.conj(
        (b"f", C.QCNUMEQ, b"0.000000025"), IS_NUMBER)
    assert c.leaf(leaf("between", (1, D("2.50")))) == Filter.conj(
        (b"f", C.QCNUMBT, b"1 2.50"), IS_NUMBER)
    assert c.leaf(leaf("between", (5, 1))) == Filter.nothing()      # TC would swap the bounds
    assert c.leaf(leaf("equals", True)) == Filter.conj(
        (b"f", C.QCSTREQ, b"true"), (b"\x01t:f", C.QCSTREQ, b"b"))
    assert c.leaf(leaf("gt", True)) == Filter.nothing()             # no order on booleans
    assert c.leaf(leaf("gt", "a")) is None                           # TC has no string ranges
    assert c.leaf(leaf("equals", [1])) is None


def test_numbers_tokyo_cabinet_cannot_read_exactly_stay_in_python() -> None:
    assert comp(f="i").leaf(leaf("gt", 2 ** 63)) is None             # operand too long
    assert comp(f="iI").leaf(leaf("gt", 5)) is None                  # the column holds one
    assert comp(f="d").leaf(leaf("equals", 0.1)) is None             # 0.1 is not 1/10
    assert comp(f="g").leaf(leaf("equals", D("0.1"))) is None
    assert comp(f="g").leaf(leaf("equals", 0.1)) is not None         # float vs float is fine
    assert comp(f="d").leaf(leaf("equals", D("0.1"))) is not None
    assert comp(f="i").leaf(leaf("gt", 0.30000000000000004)) is None


def test_negation_is_de_morgan_over_single_negated_conditions() -> None:
    c = comp(f="i")
    filt = c.compile(Not(leaf("gt", 20)))
    assert filt == Filter((((b"f", C.QCNUMGT | C.QCNEGATE, b"20"),),
                           ((b"\x01t:f", C.QCSTROREQ | C.QCNEGATE, b"i,f,d"),)))
    assert c.compile(Not(leaf("exists", True))) == Filter.conj(
        (b"f", C.QCSTRINC | C.QCNEGATE, b""))
    assert c.compile(Not(Not(leaf("equals", 3)))) == c.leaf(leaf("equals", 3))
    assert c.compile(and_(leaf("exists", True), Not(leaf("exists", True)))) == Filter.nothing()


def test_unions_and_the_size_limit() -> None:
    c = comp(f="is", g="s")
    filt = c.compile(Or((leaf("equals", "a"), leaf("equals", "b", ("g",)))))
    assert filt is not None and len(filt.disjuncts) == 2
    many = and_(*(Not(leaf("gt", i)) for i in range(6)))            # 2**6 alternatives
    assert c.compile(many) is None
    assert Compiler(c.catalogue, max_disjuncts=64).compile(many) is not None


def test_in_uses_oreq_operators_when_tokens_allow() -> None:
    c = comp(f="is")
    assert c.leaf(leaf("in", ["Oslo", "Lima"])) == Filter.conj(
        (b"f", C.QCSTROREQ, b"Lima,Oslo"))
    assert c.leaf(leaf("in", [1, 2.5])) == Filter.conj((b"f", C.QCNUMOREQ, b"1 2.5"), IS_NUMBER)
    spaced = c.leaf(leaf("in", ["a b", "c"]))
    assert spaced is not None and len(spaced.disjuncts) == 2        # spaces split TC tokens
    assert c.leaf(leaf("in", [])) == Filter.nothing()


def test_contains_is_native_only_where_no_list_was_ever_stored() -> None:
    assert comp(f="s").leaf(leaf("contains", "tea")) == Filter.conj(
        (b"f", C.QCSTRINC, b"tea"), NOT_STRING)
    assert comp(f="sl").leaf(leaf("contains", "tea")) is None
    assert comp(f="s").leaf(leaf("contains", 5)) == Filter.nothing()
    assert comp(f="s").leaf(leaf("contains", "%_[")) is not None     # no wildcards in TC
    assert comp(f="s").leaf(leaf("startswith", "a\x01")) is None     # the escape's bytes


def test_nested_paths_use_shadow_columns() -> None:
    c = comp(address="m", **{"\x01v.address.city": "s"})
    assert c.leaf(leaf("startswith", "B", ("address", "city"))) == Filter.conj(
        (b"\x01v.address.city", C.QCSTRBW, b"B"), (b"\x01t.address.city", C.QCSTROREQ, b"s,z"))
    assert c.leaf(leaf("exists", True, ("address", "city"))) == Filter.conj(
        (b"\x01t.address.city", C.QCSTRINC, b""))
    cut = comp(address="mx", **{"\x01v.address.city": "s"})
    assert cut.leaf(leaf("exists", True, ("address", "city"))) is None
    assert cut.compile_ordering(((("address", "city"), False),)) is None
    assert c.compile_ordering(((("address", "city"), False),)) is not None


def test_full_text_search_needs_a_word_column() -> None:
    plain = comp(f="s")
    assert plain.leaf(leaf("search", "tea")) is None
    indexed = Compiler(plain.catalogue.with_search(b"f"))
    assert indexed.leaf(leaf("search", "TEA drinks")) == Filter.conj(
        (b"\x01w:f", C.QCSTRAND, b"drinks tea"))


def test_unknown_catalogue_keeps_the_doubtful_operators_in_python() -> None:
    c = Compiler(codec.Catalogue.unknown())
    assert c.leaf(leaf("equals", "Oslo")) is None                    # raw empty values?
    assert c.leaf(leaf("gt", 3)) is None
    assert c.leaf(leaf("exists", True)) is not None
    assert c.compile_ordering(((("f",), False),)) is None


def test_orderings_put_absent_first_ascending_and_last_descending() -> None:
    c = comp(f="isb")
    up = c.compile_ordering(((("f",), False),))
    assert up is not None
    assert [s.order for s in up.segments] == [
        None, (b"f", C.QONUMASC), (b"f", C.QOSTRASC), (b"f", C.QOSTRASC)]
    assert up.segments[0].conds == ((b"f", C.QCSTRINC | C.QCNEGATE, b""),)
    down = c.compile_ordering(((("f",), True),))
    assert down is not None
    assert [s.order for s in down.segments] == [
        (b"f", C.QOSTRDESC), (b"f", C.QOSTRDESC), (b"f", C.QONUMDESC), None]
    assert comp(f="il").compile_ordering(((("f",), False),)) is None  # lists: Python
    assert comp(f="gd").compile_ordering(((("f",), False),)) is None  # float vs Decimal
    assert c.compile_ordering(((("f",), False), (("g",), False))) is None


def test_plans_limit_in_tc_when_one_step_and_in_python_otherwise() -> None:
    c = comp(f="i")
    one = c.plan(Filter.conj((b"f", C.QCNUMGT, b"1")), None, 2, 5)
    assert [(s.limit, s.skip) for s in one.steps] == [(3, 2)] and one.window is None
    ordering = c.compile_ordering(((("f",), False),))
    two = c.plan(Filter.everything(), ordering, 2, 5)
    assert [(s.limit, s.skip) for s in two.steps] == [(5, 0), (5, 0)]
    assert two.window == (2, 5)
    # a purely negative conjunction could match the catalogue record: excluded
    assert two.steps[0].conjunctions[0][-1] == C.NOT_CATALOGUE
    assert C.NOT_CATALOGUE not in two.steps[1].conjunctions[0]
    assert c.plan(Filter.nothing()).steps == ()
    assert c.plan(Filter.everything(), None, 3, 3).steps == ()


def test_steps_drive_tokyo_tyrant_queries_too() -> None:
    from doqu.ext.tokyo_tyrant.protocol import TyrantQuery

    c = comp(f="i")
    plan = c.plan(c.leaf(leaf("gt", 20)) or Filter.nothing(), None, 1, 3)
    query = plan.steps[0].apply(TyrantQuery(), 0)
    assert query.elements() == [b"addcond\0f\0%d\x0020" % C.QCNUMGT,
                                b"addcond\0\x01t:f\0%d\0i,f,d" % C.QCSTROREQ,
                                b"setlimit\x002\x001"]


def test_described_plans_name_columns_and_operators() -> None:
    c = comp(f="i")
    text = c.plan(c.compile(Not(leaf("gt", 20))) or Filter.nothing()).describe()
    assert "'f' NOT NUMGT '20'" in text and "UNION" in text
