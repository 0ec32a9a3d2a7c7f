"""Where everything lives in Redis: the key layout of one storage.

A storage is a key *prefix*, split into ``shards`` buckets. A record goes to
bucket ``crc32(key) % shards`` and every key of a bucket carries the same
hash tag, ``{<prefix>:<suffix>}``, so that on Redis Cluster a record, the
bucket's key set and the bucket's index entries share one hash slot: one Lua
script can change them together, atomically. The suffix of bucket *i* is
chosen so that its slot falls in the *i*-th equal part of the 16384 slots,
which spreads the buckets evenly over nodes that own contiguous slot ranges
(the usual layout).

Per bucket tag ``T``::

    T:r:<key>            the record, JSON text (string)
    T:k                  the bucket's record keys (set)
    T:v                  index-registry version this bucket requires (string)
    T:i:<field>:<kind>   index entries of one field, one structure per kind

Per storage, in one slot of their own (``M = {<prefix>:meta}``)::

    M:seq       counter for generated keys (INCR)
    M:shards    the bucket count, fixed when the prefix is first used
    M:indexes   field -> "building" | "ready" (hash)
    M:version   bumped whenever an index is added (string)

Index members that carry a string value are encoded so that Redis's byte
order (``ZRANGEBYLEX``) is code-point order: UTF-8, with NUL escaped as
``00 FF`` and the value terminated by ``00 00`` before the record key.
"""

from __future__ import annotations

import zlib
from typing import Iterable

__all__ = ["Layout", "lex", "TERM", "lex_member", "split_member", "check_prefix", "SLOTS"]

SLOTS = 16384
#: Ends the value part of a lex member; sorts below any continuation.
TERM = b"\x00\x00"
_NUL = b"\x00"
_NUL_ESCAPED = b"\x00\xff"


def text_bytes(text: str) -> bytes:
    """UTF-8 that also carries lone surrogates (they survive JSON and keys)."""
    return text.encode("utf-8", "surrogatepass")


def bytes_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def lex(text: str) -> bytes:
    """Order-preserving byte form of a string (no ``00 00`` inside)."""
    data = text_bytes(text)
    return data.replace(_NUL, _NUL_ESCAPED) if _NUL in data else data


def lex_member(text: str, pk: bytes) -> bytes:
    return lex(text) + TERM + pk


def split_member(member: bytes) -> tuple[str, str]:
    """(value, primary key) of a lex member."""
    cut = member.index(TERM)
    value = member[:cut]
    if _NUL in value:
        value = value.replace(_NUL_ESCAPED, _NUL)
    return bytes_text(value), bytes_text(member[cut + 2:])


def member_key(member: bytes) -> bytes:
    """The primary key (bytes) at the end of a lex member."""
    return member[member.index(TERM) + 2:]


def check_prefix(prefix: object) -> str:
    """A prefix is any non-empty text without braces or control characters."""
    from doqu.errors import ConfigurationError

    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(f"redis: the setting 'prefix' must be non-empty text, got {prefix!r}")
    bad = sorted({c for c in prefix if c in "{}" or ord(c) < 0x20 or c == "\x7f"})
    if bad:
        raise ConfigurationError(
            f"redis: the prefix {prefix!r} contains {', '.join(map(repr, bad))}; braces would "
            f"change Redis Cluster hash tags, so use letters, digits and punctuation such as ':-_./'"
        )
    if len(prefix) > 200:
        raise ConfigurationError("redis: the prefix is longer than 200 characters")
    return prefix


def _slot(data: bytes) -> int:
    from redis.crc import key_slot  # the driver's CRC16, the one the cluster uses

    return key_slot(data)


def _bucket_suffix(prefix: str, index: int, shards: int) -> str:
    """A tag suffix whose slot lies in the index-th of ``shards`` equal slot ranges."""
    if shards == 1:
        return "0"
    low, high = index * SLOTS // shards, (index + 1) * SLOTS // shards
    if low == high:  # more shards than slots: any slot will do
        return str(index)
    attempt = 0
    while True:
        suffix = str(index) if attempt == 0 else f"{index}.{attempt}"
        if low <= _slot(text_bytes(f"{prefix}:{suffix}")) < high:
            return suffix
        attempt += 1


class Layout:
    """Key names of one storage (all ``bytes``)."""

    def __init__(self, prefix: str, shards: int) -> None:
        self.prefix = prefix
        self.shards = shards
        self.tags = [text_bytes("{" + f"{prefix}:{_bucket_suffix(prefix, i, shards)}" + "}")
                     for i in range(shards)]
        self.slots = [_slot(tag) for tag in self.tags]
        meta = text_bytes("{" + prefix + ":meta}")
        self.meta_slot = _slot(meta)
        self.seq = meta + b":seq"
        self.shards_key = meta + b":shards"
        self.registry = meta + b":indexes"
        self.version = meta + b":version"
        self._index_keys: dict[tuple[int, str, str], bytes] = {}

    def meta_keys(self) -> list[bytes]:
        return [self.seq, self.shards_key, self.registry, self.version]

    def bucket(self, pk: bytes) -> int:
        return zlib.crc32(pk) % self.shards if self.shards > 1 else 0

    def record(self, bucket: int, pk: bytes) -> bytes:
        return self.tags[bucket] + b":r:" + pk

    def keyset(self, bucket: int) -> bytes:
        return self.tags[bucket] + b":k"

    def bucket_version(self, bucket: int) -> bytes:
        return self.tags[bucket] + b":v"

    def index(self, bucket: int, field: str, kind: str) -> bytes:
        try:
            return self._index_keys[(bucket, field, kind)]
        except KeyError:
            key = self._index_keys[(bucket, field, kind)] = self.tags[bucket] + f":i:{field}:{kind}".encode()
            return key

    def index_keys(self, bucket: int, fields: Iterable[str]) -> list[bytes]:
        from doqu.ext.redis.index import KINDS

        return [self.index(bucket, field, kind) for field in fields for kind in KINDS]
