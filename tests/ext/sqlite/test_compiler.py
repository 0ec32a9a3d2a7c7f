"""The SQL the compiler writes: values and odd field names bound, negation safe on NULL."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from doqu import Document
from doqu.ext.sqlite.dialect import SQLiteDialect
from doqu.query.conditions import And, Leaf, Not, make_leaf
from doqu.sql import Compiler
from doqu.sql.compiler import _successor


class Rec(Document):
    pass


HOSTILE_VALUES = ["it's", 'say "hi"', "'; DROP TABLE documents; --", "a\\b", "%", "_", "*", "?",
                  "[x", "{}", "ünïcødé ✓", "$.x", "x" * 300]
HOSTILE_KEYS = ["it's", "a b", "a.b", "$where", "[0]", "x'); DROP TABLE documents; --", "ünï", "a-b"]
OPS = ["equals", "gt", "gte", "lt", "lte", "in", "contains", "contains_any", "startswith",
       "endswith", "matches", "matches_caseless", "search"]


@pytest.fixture
def compiler() -> Compiler:
    return Compiler(SQLiteDialect(), "documents")


def _operand(op: str, value: str) -> Any:
    if op in ("in", "contains_any"):
        return [value, "other"]
    if op in ("matches", "matches_caseless"):
        return "^" + value.replace("\\", "\\\\").replace("*", r"\*").replace("?", r"\?") \
            .replace("[", r"\[").replace("{", r"\{").replace("$", r"\$").replace(".", r"\.")
    return value


@pytest.mark.parametrize("op", OPS)
def test_values_are_bound_never_pasted(compiler: Compiler, op: str) -> None:
    for value in HOSTILE_VALUES:
        operand = _operand(op, value)
        sql = compiler.select(make_leaf(("name",), op, operand))
        if len(value) > 1:
            assert value not in sql.sql, (op, value, sql.sql)
        else:  # one character may well occur in SQL: the text must be that of a tame value
            tame = "A" if value < "[" else "a"  # (type guards depend on where a string sorts)
            assert sql.sql == compiler.select(make_leaf(("name",), op, _operand(op, tame))).sql
        assert "DROP" not in sql.sql
        assert sql.sql.count("?") == len(sql.params)
        wanted = operand if isinstance(operand, str) else operand[0]
        assert any(isinstance(p, str) and wanted in p for p in sql.params), (op, value, sql.params)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_odd_field_names_are_bound_paths(compiler: Compiler, key: str) -> None:
    for op in OPS + ["exists"]:
        value = True if op == "exists" else _operand(op, "v")
        leaf = Leaf(("outer", key), op, tuple(value) if isinstance(value, list) else value)
        assert compiler.supports(leaf), (op, key)
        sql = compiler.select(leaf, ordering=((("outer", key), True),))
        assert key not in sql.sql, (op, sql.sql)
        assert f'$."outer"."{key}"' in sql.params
        assert sql.sql.count("?") == len(sql.params)


def test_identifier_paths_are_inlined_as_literals_for_indexes(compiler: Compiler) -> None:
    sql = compiler.select(make_leaf(("address", "city"), "equals", "Oslo"))
    assert """json_extract("data", '$."address"."city"') = ?""" in sql.sql
    assert sql.params == ("Oslo",)


def test_keys_sqlite_cannot_address_run_in_python(compiler: Compiler) -> None:
    for key in ['q"uote', "back\\slash", "new\nline"]:
        assert not compiler.supports(Leaf((key,), "equals", 1))
        assert not compiler.supports_ordering((((key,), False),))


def test_odd_field_names_give_right_answers(store: Any) -> None:
    records = {"k1": {"it's": 1, "a.b": "x", "q\"uote": "y", "n": {"a b": True}},
               "k2": {"it's": 2, "a.b": "z", "q\"uote": "y", "n": {"a b": False}},
               "k3": {"other": 1}}
    for key, record in records.items():
        store.save(None, record, primary_key=key)
    query = Rec.objects(store)

    def run(node: Any) -> set[str]:
        return set(query._clone(_tree=node).keys())

    assert run(Leaf(("it's",), "gt", 1)) == {"k2"}
    assert run(Not(Leaf(("it's",), "gt", 1))) == {"k1", "k3"}
    assert run(Leaf(("a.b",), "equals", "x")) == {"k1"}
    assert run(Leaf(("n", "a b"), "equals", True)) == {"k1"}
    assert run(Leaf(('q"uote',), "equals", "y")) == {"k1", "k2"}  # in Python
    plan = query._clone(_tree=And((Leaf(("it's",), "gt", 0), Leaf(('q"uote',), "equals", "y"))))._plan()
    assert plan.native == Leaf(("it's",), "gt", 0)
    assert plan.residual == Leaf(('q"uote',), "equals", "y")
    assert query._clone(_ordering=((("it's",), True),)).keys()[:2] == ["k2", "k1"]


def test_negation_uses_is_not_true(compiler: Compiler) -> None:
    sql = compiler.select(Not(make_leaf(("age",), "gt", 5)))
    assert "IS NOT TRUE" in sql.sql
    assert " NOT (" not in sql.sql


def test_negation_is_true_where_the_field_is_absent_or_of_another_kind(store: Any) -> None:
    for key, age in {"num": 7, "small": 3, "text": "9", "none": None, "bool": True, "list": [9]}.items():
        store.save(None, {"age": age, "k": key}, primary_key=key)
    query = Rec.objects(store)
    assert set(query.where(age__gt=5).keys()) == {"num"}
    assert set(query.where_not(age__gt=5).keys()) == {"small", "text", "none", "bool", "list"}
    assert set(query.where_not(age__contains=9).keys()) == {"num", "small", "text", "none", "bool"}
    assert set(query.where_not(age__startswith="9").keys()) == {"num", "small", "none", "bool", "list"}
    assert set(query.where_not(age__in=[7, 3]).keys()) == {"text", "none", "bool", "list"}
    assert query._plan().residual is None


def test_ranges_on_one_path_merge_and_drop_the_type_guard(compiler: Compiler) -> None:
    alone = compiler.select(make_leaf(("age",), "lt", 35)).sql
    assert "json_type" in alone  # below 35 lie the booleans 0 and 1
    merged = compiler.select(And((make_leaf(("age",), "gte", 30), make_leaf(("age",), "lt", 35))))
    assert "json_type" not in merged.sql
    assert merged.params == (30, 35)
    empty = compiler.select(And((make_leaf(("age",), "gt", 5), make_leaf(("age",), "lt", 3))))
    assert "FALSE" in empty.sql


def test_booleans_zero_and_one_are_kept_apart(store: Any) -> None:
    for key, value in {"t": True, "f": False, "one": 1, "zero": 0, "half": 0.5, "onef": 1.0}.items():
        store.save(None, {"v": value}, primary_key=key)
    q = Rec.objects(store)
    assert set(q.where(v=1).keys()) == {"one", "onef"}
    assert set(q.where(v=True).keys()) == {"t"}
    assert set(q.where(v__lt=1).keys()) == {"zero", "half"}
    assert set(q.where(v__gte=0, v__lte=1).keys()) == {"zero", "half", "one", "onef"}
    assert set(q.where(v__in=[0, False]).keys()) == {"zero", "f"}
    assert set(q.where(v__gt=0.25, v__lt=0.75).keys()) == {"half"}
    assert q.values("v") == [0, 0.5, 1, False, True]


def test_strings_never_match_json_text_of_arrays_and_objects(store: Any) -> None:
    store.save(None, {"v": ["a"]}, primary_key="list")
    store.save(None, {"v": {"a": 1}}, primary_key="dict")
    store.save(None, {"v": '["a"]'}, primary_key="text")
    q = Rec.objects(store)
    assert q.where(v='["a"]').keys() == ["text"]
    assert q.where(v='{"a":1}').keys() == []
    assert set(q.where(v__gte="[").keys()) == {"text"}
    assert q.where(v__startswith="[").keys() == ["text"]
    assert q.where(v=["a"]).keys() == ["list"]
    assert q.where(v={"a": 1}).keys() == ["dict"]


def test_structured_equality_ignores_key_order_and_int_float(store: Any) -> None:
    store.save(None, {"v": {"b": [1, 2.5], "a": "x"}}, primary_key="k")
    q = Rec.objects(store)
    assert q.where(v={"a": "x", "b": [1.0, 2.5]}).keys() == ["k"]
    assert q.where(v={"a": "x", "b": [1, 2.5, 3]}).keys() == []
    assert q.where(v={"a": "x"}).keys() == []
    assert q.where(v={"a": "x", "b": [True, 2.5]}).keys() == []
    assert q._clone(_tree=make_leaf(("v",), "equals", {"a": "x", "b": [1, 2.5]}))._plan().residual is None


def test_numbers_sqlite_cannot_hold_exactly_run_in_python(store: Any) -> None:
    store.save(None, {"v": 2 ** 70}, primary_key="big")
    store.save(None, {"v": 2 ** 70 + 1}, primary_key="big1")
    q = Rec.objects(store)
    assert not store.compiler.supports(Leaf(("v",), "equals", 2 ** 70))
    assert q.where(v=2 ** 70 + 1).keys() == ["big1"]
    assert q.where(v__gt=2 ** 62).count() == 2
    assert store.compiler.supports(Leaf(("v",), "gt", decimal.Decimal("1.5")))


def test_like_wildcards_are_plain_characters(store: Any) -> None:
    for key, text in {"pct": "100%", "under": "a_b", "star": "a*b", "plain": "axb", "case": "A_B"}.items():
        store.save(None, {"t": text}, primary_key=key)
    q = Rec.objects(store)
    assert set(q.where(t__contains="_").keys()) == {"under", "case"}
    assert q.where(t__startswith="a_").keys() == ["under"]
    assert q.where(t__endswith="_b").keys() == ["under"]
    assert q.where(t__contains="*").keys() == ["star"]
    assert q.where(t__endswith="%").keys() == ["pct"]


def test_successor_of_prefixes() -> None:
    assert _successor("ab") == "ac"
    assert _successor("a\U0010ffff") == "b"
    assert _successor("\ud7ff") == "\ue000"
    assert _successor("\U0010ffff") is None
