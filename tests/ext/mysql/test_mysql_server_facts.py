"""The MariaDB behaviours doqu.ext.mysql.dialect relies on, asked of the server itself.

If an upgrade changes one of these, this file says which, before a query
quietly answers differently.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from doqu.ext.mysql.regex import MULTI_FOLDS, to_pcre, word_pattern


def _one(store: Any, sql: str, *params: Any) -> Any:
    return store.execute(sql, params)[0][0]


def test_json_value_and_json_query_split_scalars_from_structures(store: Any) -> None:
    doc = '{"t": true, "f": false, "n": 1.50, "s": "x\\"\\u00e9", "z": null, "l": [1], "d": {}}'
    assert _one(store, "SELECT JSON_VALUE(%s, '$.t')", doc) == "1"
    assert _one(store, "SELECT JSON_VALUE(%s, '$.f')", doc) == "0"
    assert _one(store, "SELECT JSON_VALUE(%s, '$.n')", doc) == "1.50"  # the number's own text
    assert _one(store, "SELECT JSON_VALUE(%s, '$.s')", doc) == 'x"é'  # unescaped
    for path in ("$.z", "$.l", "$.d", "$.missing"):
        assert _one(store, f"SELECT JSON_VALUE(%s, '{path}')", doc) is None
    for path in ("$.t", "$.n", "$.s", "$.z", "$.missing"):
        assert _one(store, f"SELECT JSON_QUERY(%s, '{path}')", doc) is None
    assert _one(store, "SELECT JSON_EXTRACT(%s, '$.t')", doc) == "true"
    assert _one(store, "SELECT JSON_TYPE(JSON_EXTRACT(%s, '$.n'))", doc) == "DOUBLE"
    assert _one(store, "SELECT JSON_TYPE(JSON_EXTRACT(%s, '$.t'))", doc) == "BOOLEAN"


def test_nopad_bin_compares_by_code_point(store: Any) -> None:
    assert _one(store, "SELECT 'a' = 'a ' COLLATE utf8mb4_bin") == 1  # the trap
    assert _one(store, "SELECT 'a' = 'a ' COLLATE utf8mb4_nopad_bin") == 0
    assert _one(store, "SELECT 'a' = 'A' COLLATE utf8mb4_nopad_bin") == 0
    assert _one(store, "SELECT %s < %s COLLATE utf8mb4_nopad_bin", "z", "é") == 1
    assert _one(store, "SELECT %s < %s COLLATE utf8mb4_nopad_bin", "\uffff", "😀") == 1
    assert _one(store, "SELECT %s < %s COLLATE utf8mb4_nopad_bin", "a\t", "a") == 0


def test_json_overlaps_compares_top_level_elements_only(store: Any) -> None:
    if not store.dialect.json_overlaps:
        pytest.skip("JSON_OVERLAPS needs MariaDB 10.9")
    assert _one(store, "SELECT JSON_OVERLAPS('[[1, 2], 3]', '[1]')") == 0
    assert _one(store, "SELECT JSON_CONTAINS('[[1, 2], 3]', '1')") == 1  # why not JSON_CONTAINS
    assert _one(store, "SELECT JSON_OVERLAPS('[1.0]', '[1]')") == 1
    assert _one(store, "SELECT JSON_OVERLAPS('[true]', '[1]')") == 0
    assert _one(store, "SELECT JSON_OVERLAPS('[\"X\"]', '[\"x\"]')") == 0
    assert _one(store, "SELECT JSON_OVERLAPS('5', '[5]')") == 1  # why JSON_QUERY goes first


def test_json_extract_matches_keys_by_their_json_text(store: Any) -> None:
    # JSON_VALUE decodes escaped keys, JSON_EXTRACT does not: so doqu writes keys unescaped
    # (json.dumps(ensure_ascii=False)) and never addresses keys with quotes, backslashes or
    # control characters, whose JSON text a writer may spell in more than one way
    escaped = '{"\\u00e9": 1}'
    assert _one(store, "SELECT JSON_VALUE(%s, '$.\"é\"')", escaped) == "1"
    assert _one(store, "SELECT JSON_EXTRACT(%s, '$.\"é\"')", escaped) is None
    assert _one(store, "SELECT JSON_EXTRACT(%s, '$.\"é\"')", '{"é": 1}') == "1"
    assert _one(store, "SELECT JSON_VALUE(%s, '$.\"a b\"')", '{"a b": 1}') == "1"


def test_regexp_is_pcre_with_unicode_properties(store: Any) -> None:
    def matches(text: str, pattern: str) -> bool:
        return bool(_one(store, "SELECT %s COLLATE utf8mb4_nopad_bin REGEXP %s", text, pattern))

    cases = [("١٢", r"^\d+$"), ("é", r"^\w$"), ("É", "(?i)é"), ("a\nb", "a.b"), ("ab\n", "b$"),
             ("a\x1cb", r"a\sb"), ("Abc", "abc"), ("a\u2028b", "a.b"), ("K", "(?i)k")]
    for text, pattern in cases:
        translated = to_pcre(pattern.removeprefix("(?i)"))
        assert translated is not None
        if pattern.startswith("(?i)"):
            translated = "(?i)" + translated
        flags = re.IGNORECASE if pattern.startswith("(?i)") else 0
        assert matches(text, translated) is bool(re.search(pattern.removeprefix("(?i)"), text, flags)), \
            (text, pattern)
    assert matches("Tea, time", word_pattern("tea")) and not matches("teatime", word_pattern("tea"))


def test_patterns_outside_the_shared_subset_stay_in_python() -> None:
    for pattern in [r"(a)\1", "(?i)a", "(?P<x>a)", "[[:alpha:]]", r"\x41", r"\u00e9", "a{,2}",
                    "[a-z&&b]", r"\Sx[\S]", "a{"]:
        assert to_pcre(pattern) is None, pattern
    assert to_pcre(r"^\w+\s\d{2,3}$") == r"^\w+[\s\x{1c}-\x{1f}]\d{2,3}$"


def test_string_warnings_in_where_do_not_fail_deletes_in_strict_mode(store: Any) -> None:
    # the number test casts every scalar before the kind guard rejects strings
    store.save(None, {"x": "abc"}, primary_key="s")
    store.save(None, {"x": 5}, primary_key="n")
    assert store.get_query().where(x=5).delete() == 1
    assert list(store) == ["s"]


def test_the_multi_letter_folding_table_is_complete() -> None:
    found: dict[str, str] = {}
    for code in range(0x80, 0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        folded = char.casefold()
        if folded.isascii() and len(folded) > 1:
            found[folded] = found.get(folded, "") + char
    assert found == MULTI_FOLDS


def test_search_folds_like_python(store: Any) -> None:
    texts = {"a": "Die Straße", "b": "DIE STRASSE", "c": "ﬁsh and chips", "d": "Kelvin", "e": "ſun",
             "f": "stress test", "g": "strasser"}
    for key, text in texts.items():
        store.save(None, {"t": text}, primary_key=key)
    for words in ["strasse", "Straße", "fish", "kelvin", "sun", "test stress", "die"]:
        query = store.get_query().where(t__search=words)
        assert "python filter: (none)" in query.explain(), words
        expected = {k for k, v in texts.items() if {w.casefold() for w in re.findall(r"\w+", words)}
                    <= {w.casefold() for w in re.findall(r"\w+", v)}}
        assert set(query.keys()) == expected, words
