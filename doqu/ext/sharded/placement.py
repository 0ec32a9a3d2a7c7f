"""Which shard holds a record: the key scheme and the shard functions.

Keys stay plain ``str``. A key the sharded storage generates is
``"<shard name>:<key the shard generated>"``, so ``get``/``delete`` read the
owner off the key. A key the application chose (``"alice"``) is placed by a
stable hash of the key when sharding by key (the default), so it too is
found without asking every shard. When sharding by a field, the field picks
the shard of a *new* record; application-chosen keys without a shard prefix
are then looked up on every shard (they cannot be derived from the key).

Python's ``hash()`` is salted per process, so the hashes here are BLAKE2
digests: a key lands on the same shard in every process and every run.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Mapping, Sequence

from doqu.conversion import canonical
from doqu.errors import ConfigurationError
from doqu.query.evaluator import get_path

__all__ = ["SEPARATOR", "NAME", "stable_hash", "split_key", "FieldShardFunction", "shard_function",
           "resolve_answer", "value_hash"]

#: Between the shard name and the shard's own key in generated keys.
SEPARATOR = ":"
#: What a shard name may look like (it becomes part of keys).
NAME = re.compile(r"[A-Za-z0-9_-]+\Z")

#: ``shard_by``: the record (canonical form) → a shard name or index.
ShardFunction = Callable[[Mapping[str, Any]], Any]


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (unlike ``hash()``)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def split_key(key: str) -> tuple[str, str] | None:
    """``"eu:17"`` → ``("eu", "17")``; ``None`` when the key carries no shard prefix."""
    head, sep, rest = key.partition(SEPARATOR)
    if sep and rest and NAME.match(head):
        return head, rest
    return None


def value_hash(value: Any) -> int:
    """Stable hash of a canonical value (absent counts as ``None``)."""
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), default=str)
    return stable_hash(text)


class FieldShardFunction:
    """Shard by the value at a field path: equal values share a shard."""

    def __init__(self, spec: str) -> None:
        parts = tuple(spec.replace(".", "__").split("__"))
        if not spec or not all(parts):
            raise ConfigurationError(
                f"sharded: shard_by={spec!r} is not a field name; give e.g. 'city' or 'address__city'"
            )
        self.path = parts
        self.spec = spec

    def __call__(self, record: Mapping[str, Any]) -> int:
        return value_hash(get_path(record, self.path))

    def __repr__(self) -> str:
        return f"field {self.spec!r}"


def shard_function(spec: Any) -> ShardFunction | None:
    """The ``shard_by`` setting as a function (``None``: shard by key)."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, str):
        return FieldShardFunction(spec)
    if callable(spec):
        return spec  # type: ignore[no-any-return]
    raise ConfigurationError(
        f"sharded: shard_by must be a field name or a function of the record, got {spec!r}"
    )


def resolve_answer(answer: Any, names: Sequence[str], by_name: Mapping[str, int]) -> int:
    """Turn a custom shard function's answer (a shard name or index) into an index."""
    if isinstance(answer, str) and answer in by_name:
        return by_name[answer]
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(names):
            return answer
        raise ConfigurationError(
            f"sharded: the shard function answered {answer!r}; there are shards 0..{len(names) - 1}"
        )
    raise ConfigurationError(
        f"sharded: the shard function answered {answer!r}, which names no shard; "
        f"known: {', '.join(names)}"
    )
