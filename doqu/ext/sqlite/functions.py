"""Python functions registered on every SQLite connection, for what SQL cannot say exactly.

Each one reuses the evaluator's own rules, so a condition run in SQLite
answers as the shared Python evaluator does.
"""

from __future__ import annotations

import json
import re
import sqlite3
from functools import lru_cache

from doqu.query.evaluator import words

__all__ = ["register"]


@lru_cache(maxsize=256)
def _pattern(pattern: str, caseless: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if caseless else 0)


@lru_cache(maxsize=256)
def _wanted(text: str) -> frozenset[str]:
    return frozenset(words(text))


def regexp(pattern: object, value: object) -> int | None:
    """``value REGEXP pattern``: Python ``re.search``, as the evaluator's ``matches``."""
    if not isinstance(value, str) or not isinstance(pattern, str):
        return None
    return 1 if _pattern(pattern, False).search(value) else 0


def regexp_caseless(pattern: object, value: object) -> int | None:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return None
    return 1 if _pattern(pattern, True).search(value) else 0


def search(text: object, value: object) -> int | None:
    """Every word of ``text`` is a word of ``value``, case-folded."""
    if not isinstance(value, str) or not isinstance(text, str):
        return None
    return 1 if _wanted(text) <= words(value) else 0


def sortkey(json_text: object) -> str | None:
    """The text by which the evaluator orders arrays and objects among themselves."""
    if not isinstance(json_text, str):
        return None
    return json.dumps(json.loads(json_text), sort_keys=True, default=str)


def register(connection: sqlite3.Connection) -> None:
    connection.create_function("regexp", 2, regexp, deterministic=True)
    connection.create_function("doqu_regexp_caseless", 2, regexp_caseless, deterministic=True)
    connection.create_function("doqu_search", 2, search, deterministic=True)
    connection.create_function("doqu_sortkey", 1, sortkey, deterministic=True)
