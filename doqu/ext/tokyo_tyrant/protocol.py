"""The Tokyo Tyrant binary protocol, spoken in pure Python over a TCP socket.

Three layers, so each can be tested on its own:

* pure request encoders (``encode_*``) and response decoders (``decode_*``),
  checked byte for byte against a recording of a real ``ttserver``;
* :class:`TyrantConnection`, one socket with a deadline on every request;
* :class:`TyrantPool`, a thread-safe set of connections that throws away a
  connection that failed, so a restarted server is simply reconnected to.

Wire format, as ``ttserver`` 1.1.41 speaks it (all integers big-endian):

* every request starts with the magic byte ``0xC8`` and a command byte;
* plain commands carry length-prefixed keys and values and answer with a
  status byte (0 = success) followed, on success only, by the payload;
* ``misc`` (``0xC8 0x90``) carries a function name, an options word and a list
  of length-prefixed elements, and *always* answers with a status byte and an
  element count, even on failure (``01 00000000``);
* table records travel either as alternating column/value elements (misc
  ``put``/``get``) or as one ``col\\0val\\0col\\0val`` blob (``putlist``,
  ``getlist``, ``iternext``, search ``get`` and the plain commands).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from doqu import errors

__all__ = [
    "DEFAULT_PORT", "DEFAULT_TIMEOUT", "DEFAULT_POOL_SIZE", "RDBMONOULOG",
    "QCSTREQ", "QCSTRINC", "QCSTRBW", "QCSTREW", "QCSTRAND", "QCSTROR", "QCSTROREQ",
    "QCSTRRX", "QCNUMEQ", "QCNUMGT", "QCNUMGE", "QCNUMLT", "QCNUMLE", "QCNUMBT",
    "QCNUMOREQ", "QCFTSPH", "QCFTSAND", "QCFTSOR", "QCFTSEX", "QCNEGATE", "QCNOIDX",
    "QOSTRASC", "QOSTRDESC", "QONUMASC", "QONUMDESC",
    "ITLEXICAL", "ITDECIMAL", "ITTOKEN", "ITQGRAM", "ITOPT", "ITVOID", "ITKEEP",
    "MSUNION", "MSISECT", "MSDIFF",
    "TyrantError", "TyrantProtocolError", "TyrantQuery", "TyrantConnection", "TyrantPool",
    "join_columns", "split_columns",
    "encode_put", "encode_out", "encode_get", "encode_mget", "encode_vsiz",
    "encode_iterinit", "encode_iternext", "encode_fwmkeys", "encode_sync",
    "encode_vanish", "encode_rnum", "encode_size", "encode_stat", "encode_misc",
    "encode_tbl_put", "encode_tbl_putkeep", "encode_tbl_putcat", "encode_tbl_out",
    "encode_tbl_get", "encode_tbl_putlist", "encode_tbl_outlist", "encode_tbl_getlist",
    "encode_tbl_iterinit", "encode_tbl_iternext", "encode_tbl_vanish", "encode_tbl_sync",
    "encode_genuid", "encode_setindex", "encode_search", "encode_metasearch",
    "encode_error",
    "decode_status", "decode_value", "decode_mget", "decode_vsiz", "decode_keys",
    "decode_u64", "decode_stat", "decode_misc_raw", "decode_misc", "decode_misc_ok",
    "decode_tbl_get", "decode_tbl_getlist", "decode_tbl_iternext", "decode_search",
    "decode_search_get", "decode_search_count", "decode_genuid", "decode_error",
    "database_type", "require_table_database",
]

DEFAULT_PORT = 1978
DEFAULT_TIMEOUT = 10.0
DEFAULT_POOL_SIZE = 4

#: misc option "do not write this call to the update log"; the reference
#: client sets it on read-only functions, and the recording shows it does.
RDBMONOULOG = 1

# Condition operators of a table query (numbers as Tokyo Cabinet defines them).
QCSTREQ, QCSTRINC, QCSTRBW, QCSTREW, QCSTRAND, QCSTROR, QCSTROREQ, QCSTRRX = range(8)
(QCNUMEQ, QCNUMGT, QCNUMGE, QCNUMLT, QCNUMLE, QCNUMBT, QCNUMOREQ,
 QCFTSPH, QCFTSAND, QCFTSOR, QCFTSEX) = range(8, 19)
QCNEGATE = 1 << 24   # flag: invert the condition (also matches records lacking the column)
QCNOIDX = 1 << 25    # flag: do not use an index for this condition
# Order types.
QOSTRASC, QOSTRDESC, QONUMASC, QONUMDESC = range(4)
# Index types.
ITLEXICAL, ITDECIMAL, ITTOKEN, ITQGRAM = range(4)
ITOPT = 9998
ITVOID = 9999
ITKEEP = 1 << 24     # flag: fail instead of rebuilding an index that exists
# Meta-search set operations.
MSUNION, MSISECT, MSDIFF = range(3)

_MAGIC = 0xC8
_CMD_PUT = 0x10
_CMD_OUT = 0x20
_CMD_GET = 0x30
_CMD_MGET = 0x31
_CMD_VSIZ = 0x38
_CMD_ITERINIT = 0x50
_CMD_ITERNEXT = 0x51
_CMD_FWMKEYS = 0x58
_CMD_SYNC = 0x70
_CMD_VANISH = 0x72
_CMD_RNUM = 0x80
_CMD_SIZE = 0x81
_CMD_STAT = 0x88
_CMD_MISC = 0x90

# ttserver refuses arguments larger than this; a bigger length in a response
# means the stream is out of step, not that a huge value is coming.
_MAX_LENGTH = 256 << 20
_MAX_COUNT = 1 << 24

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")

BytesLike = bytes | str
# Mapping keys are invariant: spell out the key types callers really pass.
ColumnsLike = Mapping[bytes, BytesLike] | Mapping[str, BytesLike] | Mapping[BytesLike, BytesLike]
RecordsLike = (Mapping[bytes, ColumnsLike] | Mapping[str, ColumnsLike]
               | Mapping[BytesLike, ColumnsLike] | Iterable[tuple[BytesLike, ColumnsLike]])
Reader = Callable[[int], bytes]
_T = TypeVar("_T")


class TyrantError(errors.StorageError):
    """The server answered, but refused the command (status byte not 0).

    The connection stays usable: the server still sent a complete answer.
    """

    def __init__(self, command: str, address: str | None = None) -> None:
        where = f" at {address}" if address else ""
        super().__init__(f"Tokyo Tyrant{where} refused {command!r}")
        self.command = command
        self.address = address


class TyrantProtocolError(errors.ConnectionError):
    """The bytes received do not form a valid answer; the stream is out of step."""


# --------------------------------------------------------------------------
# small encoding helpers
# --------------------------------------------------------------------------

def _b(value: BytesLike) -> bytes:
    """Accept text for convenience; the wire only carries bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"expected bytes or str, got {type(value).__name__}")


def _no_nul(value: bytes, what: str) -> bytes:
    if b"\0" in value:
        raise errors.ValidationError(
            f"{what} {value!r} contains a NUL byte, which Tokyo Tyrant uses as a separator")
    return value


def _lp(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def join_columns(cols: ColumnsLike) -> bytes:
    """``{col: val}`` -> ``col\\0val\\0col\\0val``, the blob form of a table record."""
    parts: list[bytes] = []
    for name, value in cols.items():
        parts.append(_no_nul(_b(name), "column name"))
        parts.append(_no_nul(_b(value), "column value"))
    return b"\0".join(parts)


def split_columns(blob: bytes) -> dict[bytes, bytes]:
    """Inverse of :func:`join_columns`; a trailing key without value is dropped, as TC does."""
    if not blob:
        return {}
    parts = blob.split(b"\0")
    return {parts[i]: parts[i + 1] for i in range(0, len(parts) - 1, 2)}


def _flat_columns(pk: BytesLike, cols: ColumnsLike) -> list[bytes]:
    out = [_b(pk)]
    for name, value in cols.items():
        out.append(_b(name))
        out.append(_b(value))
    return out


def _head(cmd: int) -> bytes:
    return bytes((_MAGIC, cmd))


# --------------------------------------------------------------------------
# plain command encoders
# --------------------------------------------------------------------------

def encode_put(key: BytesLike, value: BytesLike) -> bytes:
    """Plain ``put``; on a table database ``value`` is a :func:`join_columns` blob."""
    key, value = _b(key), _b(value)
    return _head(_CMD_PUT) + _U32.pack(len(key)) + _U32.pack(len(value)) + key + value


def encode_out(key: BytesLike) -> bytes:
    return _head(_CMD_OUT) + _lp(_b(key))


def encode_get(key: BytesLike) -> bytes:
    return _head(_CMD_GET) + _lp(_b(key))


def encode_mget(keys: Iterable[BytesLike]) -> bytes:
    raw = [_b(k) for k in keys]
    return _head(_CMD_MGET) + _U32.pack(len(raw)) + b"".join(_lp(k) for k in raw)


def encode_vsiz(key: BytesLike) -> bytes:
    return _head(_CMD_VSIZ) + _lp(_b(key))


def encode_iterinit() -> bytes:
    return _head(_CMD_ITERINIT)


def encode_iternext() -> bytes:
    return _head(_CMD_ITERNEXT)


def encode_fwmkeys(prefix: BytesLike, max: int = -1) -> bytes:  # noqa: A002 - protocol name
    """Keys starting with ``prefix``; ``max`` < 0 means no limit (sent signed)."""
    prefix = _b(prefix)
    return _head(_CMD_FWMKEYS) + _U32.pack(len(prefix)) + _I32.pack(max) + prefix


def encode_sync() -> bytes:
    return _head(_CMD_SYNC)


def encode_vanish() -> bytes:
    return _head(_CMD_VANISH)


def encode_rnum() -> bytes:
    return _head(_CMD_RNUM)


def encode_size() -> bytes:
    return _head(_CMD_SIZE)


def encode_stat() -> bytes:
    return _head(_CMD_STAT)


def encode_misc(name: BytesLike, elements: Iterable[BytesLike] = (), opts: int = 0) -> bytes:
    """``misc``: magic, name length, options, element count, name, elements."""
    name = _b(name)
    elems = [_b(e) for e in elements]
    return (_head(_CMD_MISC) + _U32.pack(len(name)) + _U32.pack(opts)
            + _U32.pack(len(elems)) + name + b"".join(_lp(e) for e in elems))


# --------------------------------------------------------------------------
# table (misc) encoders
# --------------------------------------------------------------------------

def encode_tbl_put(pk: BytesLike, cols: ColumnsLike) -> bytes:
    return encode_misc(b"put", _flat_columns(pk, cols))


def encode_tbl_putkeep(pk: BytesLike, cols: ColumnsLike) -> bytes:
    return encode_misc(b"putkeep", _flat_columns(pk, cols))


def encode_tbl_putcat(pk: BytesLike, cols: ColumnsLike) -> bytes:
    """Add columns to a record, keeping the values of columns it already has."""
    return encode_misc(b"putcat", _flat_columns(pk, cols))


def encode_tbl_out(pk: BytesLike) -> bytes:
    return encode_misc(b"out", [pk])


def encode_tbl_get(pk: BytesLike) -> bytes:
    return encode_misc(b"get", [pk], RDBMONOULOG)


def _records(records: RecordsLike) -> Iterator[tuple[BytesLike, ColumnsLike]]:
    return iter(records.items() if isinstance(records, Mapping) else records)


def encode_tbl_putlist(records: RecordsLike) -> bytes:
    """Store many records at once; elements alternate pk and column blob."""
    elems: list[bytes] = []
    for pk, cols in _records(records):
        elems.append(_b(pk))
        elems.append(join_columns(cols))
    return encode_misc(b"putlist", elems)


def encode_tbl_outlist(pks: Iterable[BytesLike]) -> bytes:
    return encode_misc(b"outlist", pks)


def encode_tbl_getlist(pks: Iterable[BytesLike]) -> bytes:
    return encode_misc(b"getlist", pks, RDBMONOULOG)


def encode_tbl_iterinit() -> bytes:
    return encode_misc(b"iterinit")


def encode_tbl_iternext() -> bytes:
    return encode_misc(b"iternext", (), RDBMONOULOG)


def encode_tbl_vanish() -> bytes:
    return encode_misc(b"vanish")


def encode_tbl_sync() -> bytes:
    return encode_misc(b"sync")


def encode_genuid() -> bytes:
    return encode_misc(b"genuid")


def encode_setindex(column: BytesLike, itype: int) -> bytes:
    """Index ``column``; ``itype`` is an ``IT*`` number, optionally ``| ITKEEP``."""
    return encode_misc(b"setindex", [_b(column), b"%d" % itype])


def encode_error() -> bytes:
    return encode_misc(b"error", (), RDBMONOULOG)


@dataclass
class TyrantQuery:
    """Conditions, order and limit of a table search, as misc ``search`` elements.

    Mirrors Tokyo Cabinet's query object so backend code reads the same for
    both engines. Several conditions are ANDed; an empty column name means
    the primary key.
    """

    conditions: list[tuple[bytes, int, bytes]] = field(default_factory=list)
    order: tuple[bytes, int] | None = None
    limit: tuple[int, int] | None = None

    def addcond(self, column: BytesLike, op: int, expr: BytesLike) -> TyrantQuery:
        self.conditions.append((_no_nul(_b(column), "column name"), int(op),
                                _no_nul(_b(expr), "condition operand")))
        return self

    def setorder(self, column: BytesLike, otype: int = QOSTRASC) -> TyrantQuery:
        self.order = (_no_nul(_b(column), "column name"), int(otype))
        return self

    def setlimit(self, max: int = -1, skip: int = 0) -> TyrantQuery:  # noqa: A002 - TC's name
        self.limit = (int(max), int(skip))
        return self

    def elements(self) -> list[bytes]:
        out = [b"addcond\0%s\0%d\0%s" % cond for cond in self.conditions]
        if self.order is not None:
            out.append(b"setorder\0%s\0%d" % self.order)
        if self.limit is not None:
            out.append(b"setlimit\0%d\0%d" % self.limit)
        return out


def encode_search(query: TyrantQuery, *, get: Sequence[BytesLike] | None = None,
                  count: bool = False, out: bool = False) -> bytes:
    """``search``: primary keys; ``get=()`` all columns, ``get=[...]`` named ones.

    ``out`` removes the matching records, so it is the one search sent
    without ``RDBMONOULOG``: it must reach the update log.
    """
    elems = query.elements()
    if get is not None:
        elems.append(b"\0".join([b"get", *(_no_nul(_b(c), "column name") for c in get)]))
    if count:
        elems.append(b"count")
    if out:
        elems.append(b"out")
    return encode_misc(b"search", elems, 0 if out else RDBMONOULOG)


def encode_metasearch(queries: Sequence[TyrantQuery], mstype: int = MSUNION) -> bytes:
    """Combine the results of several queries; ``next`` separates them."""
    if not queries:
        raise errors.QueryError("metasearch needs at least one query")
    elems: list[bytes] = []
    for i, query in enumerate(queries):
        if i:
            elems.append(b"next")
        elems.extend(query.elements())
    elems.append(b"mstype\0%d" % mstype)
    return encode_misc(b"metasearch", elems, RDBMONOULOG)


# --------------------------------------------------------------------------
# response parsers: each takes ``read(n) -> exactly n bytes``
# --------------------------------------------------------------------------

def _u32(read: Reader) -> int:
    return int(_U32.unpack(read(4))[0])


def _length(read: Reader) -> int:
    n = _u32(read)
    if n > _MAX_LENGTH:
        raise TyrantProtocolError(f"implausible length {n} in response")
    return n


def _count(read: Reader) -> int:
    n = _u32(read)
    if n > _MAX_COUNT:
        raise TyrantProtocolError(f"implausible element count {n} in response")
    return n


def _p_status(read: Reader) -> int:
    return read(1)[0]


def _p_value(read: Reader) -> bytes | None:
    if read(1)[0]:
        return None
    return read(_length(read))


def _p_mget(read: Reader) -> dict[bytes, bytes]:
    if read(1)[0]:
        raise TyrantError("mget")
    out: dict[bytes, bytes] = {}
    for _ in range(_count(read)):
        ksiz, vsiz = _length(read), _length(read)
        key = read(ksiz)
        out[key] = read(vsiz)
    return out


def _p_vsiz(read: Reader) -> int | None:
    if read(1)[0]:
        return None
    return _u32(read)


def _p_keys(read: Reader) -> list[bytes]:
    if read(1)[0]:
        raise TyrantError("fwmkeys")
    return [read(_length(read)) for _ in range(_count(read))]


def _p_u64(read: Reader) -> int:
    if read(1)[0]:
        raise TyrantError("rnum/size")
    return int(_U64.unpack(read(8))[0])


def _p_stat(read: Reader) -> dict[str, str]:
    if read(1)[0]:
        raise TyrantError("stat")
    text = read(_length(read)).decode("utf-8", "replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            out[name] = value
    return out


def _p_misc(read: Reader) -> tuple[int, list[bytes]]:
    status = read(1)[0]
    return status, [read(_length(read)) for _ in range(_count(read))]


def _elements(name: str, status: int, elems: list[bytes]) -> list[bytes]:
    if status:
        raise TyrantError(name)
    return elems


def _pairs(elems: list[bytes]) -> dict[bytes, bytes]:
    if len(elems) % 2:
        raise TyrantProtocolError("odd number of column elements in response")
    return {elems[i]: elems[i + 1] for i in range(0, len(elems), 2)}


def _p_tbl_get(read: Reader) -> dict[bytes, bytes] | None:
    status, elems = _p_misc(read)
    # the server reports a missing record as a plain misc failure
    return None if status else _pairs(elems)


def _p_tbl_getlist(read: Reader) -> dict[bytes, dict[bytes, bytes]]:
    blobs = _pairs(_elements("getlist", *_p_misc(read)))
    return {pk: split_columns(blob) for pk, blob in blobs.items()}


def _p_tbl_iternext(read: Reader) -> tuple[bytes, dict[bytes, bytes]] | None:
    status, elems = _p_misc(read)
    if status:
        return None
    if not elems:
        raise TyrantProtocolError("iternext answered without a key")
    return elems[0], split_columns(elems[1]) if len(elems) > 1 else {}


def _p_search(read: Reader) -> list[bytes]:
    return _elements("search", *_p_misc(read))


def _p_search_get(read: Reader) -> list[dict[bytes, bytes]]:
    return [split_columns(e) for e in _elements("search", *_p_misc(read))]


def _single_number(name: str, elems: list[bytes]) -> int:
    if len(elems) != 1:
        raise TyrantProtocolError(f"{name} answered with {len(elems)} elements, expected 1")
    try:
        return int(elems[0])
    except ValueError:
        raise TyrantProtocolError(f"{name} answered {elems[0]!r}, not a number") from None


def _p_search_count(read: Reader) -> int:
    return _single_number("search count", _elements("search", *_p_misc(read)))


def _p_genuid(read: Reader) -> int:
    return _single_number("genuid", _elements("genuid", *_p_misc(read)))


def _p_error(read: Reader) -> str:
    elems = _elements("error", *_p_misc(read))
    return "; ".join(e.decode("utf-8", "replace") for e in elems)


def _misc_ok(read: Reader) -> bool:
    return _p_misc(read)[0] == 0


def _misc_checked(name: str) -> Callable[[Reader], list[bytes]]:
    def parse(read: Reader) -> list[bytes]:
        return _elements(name, *_p_misc(read))
    return parse


# --------------------------------------------------------------------------
# pure decoders of a whole recorded response
# --------------------------------------------------------------------------

def _decode_whole(parse: Callable[[Reader], _T], data: bytes) -> _T:
    view = memoryview(data)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(view):
            raise TyrantProtocolError(
                f"response truncated: needed {n} bytes at offset {pos} of {len(view)}")
        chunk = bytes(view[pos:pos + n])
        pos += n
        return chunk

    result = parse(read)
    if pos != len(view):
        raise TyrantProtocolError(f"{len(view) - pos} unexpected bytes after the response")
    return result


def decode_status(data: bytes) -> bool:
    """Status-only answers (plain put, out, iterinit, sync, vanish): True on success."""
    return _decode_whole(_p_status, data) == 0


def decode_value(data: bytes) -> bytes | None:
    """Plain ``get`` and ``iternext``: the value, or None (a lone ``01`` byte)."""
    return _decode_whole(_p_value, data)


def decode_mget(data: bytes) -> dict[bytes, bytes]:
    return _decode_whole(_p_mget, data)


def decode_vsiz(data: bytes) -> int | None:
    return _decode_whole(_p_vsiz, data)


def decode_keys(data: bytes) -> list[bytes]:
    """``fwmkeys``: the matching keys."""
    return _decode_whole(_p_keys, data)


def decode_u64(data: bytes) -> int:
    """``rnum`` and ``size``: an unsigned 64-bit number."""
    return _decode_whole(_p_u64, data)


def decode_stat(data: bytes) -> dict[str, str]:
    """``stat``: ``name\\tvalue`` lines as a dict."""
    return _decode_whole(_p_stat, data)


def decode_misc_raw(data: bytes) -> tuple[int, list[bytes]]:
    """Any misc answer as ``(status, elements)``, never raising on status 1."""
    return _decode_whole(_p_misc, data)


def decode_misc(data: bytes, name: str = "misc") -> list[bytes]:
    """A misc answer's elements; raises :class:`TyrantError` on failure."""
    return _decode_whole(_misc_checked(name), data)


def decode_misc_ok(data: bytes) -> bool:
    """Whether a misc call succeeded (put/putkeep/out/setindex/...)."""
    return _decode_whole(_misc_ok, data)


def decode_tbl_get(data: bytes) -> dict[bytes, bytes] | None:
    return _decode_whole(_p_tbl_get, data)


def decode_tbl_getlist(data: bytes) -> dict[bytes, dict[bytes, bytes]]:
    """``getlist``: found records by pk; missing pks are simply absent."""
    return _decode_whole(_p_tbl_getlist, data)


def decode_tbl_iternext(data: bytes) -> tuple[bytes, dict[bytes, bytes]] | None:
    return _decode_whole(_p_tbl_iternext, data)


def decode_search(data: bytes) -> list[bytes]:
    return _decode_whole(_p_search, data)


def decode_search_get(data: bytes) -> list[dict[bytes, bytes]]:
    """Search with ``get``: one dict per record; the pk is under ``b""`` when
    all columns were asked for, and absent when columns were named."""
    return _decode_whole(_p_search_get, data)


def decode_search_count(data: bytes) -> int:
    return _decode_whole(_p_search_count, data)


def decode_genuid(data: bytes) -> int:
    return _decode_whole(_p_genuid, data)


def decode_error(data: bytes) -> str:
    """misc ``error``: ``"<code>: <message>"`` of the server's last error."""
    return _decode_whole(_p_error, data)


# --------------------------------------------------------------------------
# connection
# --------------------------------------------------------------------------

class _Closed(Exception):
    """The server closed the connection while an answer was expected."""


class TyrantConnection:
    """One socket to a ``ttserver``; not for sharing between threads without a pool.

    The first request connects if :meth:`connect` was not called. Every
    request runs under one deadline of ``timeout`` seconds (connect, send and
    every partial read), so a silent or half-closed server raises
    :class:`doqu.errors.ConnectionError` instead of hanging. Any transport
    failure closes the socket: the stream can no longer be trusted. A refusal
    by the server (:class:`TyrantError`) leaves it open.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if not isinstance(port, int) or not 0 < port < 65536:
            raise errors.ConfigurationError(
                f"Tokyo Tyrant port must be an integer in 1..65535, got {port!r}")
        if not timeout or timeout <= 0:
            raise errors.ConfigurationError(
                f"Tokyo Tyrant timeout must be a positive number of seconds, got {timeout!r}")
        self.host = host
        self.port = port
        self.timeout = float(timeout)
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._lock = threading.RLock()

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<TyrantConnection {self.address} {state}>"

    def __enter__(self) -> TyrantConnection:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        """Open the socket (no-op if open); raises ConnectionError naming host:port."""
        with self._lock:
            if self._sock is not None:
                return
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as exc:
                raise errors.ConnectionError(
                    f"cannot connect to Tokyo Tyrant at {self.address}: {exc}") from exc
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not TCP (never here), harmless
                pass
            self._sock = sock
            self._buf.clear()

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            self._buf.clear()
            if sock is not None:
                try:
                    sock.close()
                except OSError:  # pragma: no cover - close of a dead socket
                    pass

    def is_usable(self) -> bool:
        """Open, and the server has not closed its end (checked without blocking).

        Lets a pool drop connections to a server that restarted before
        sending a request into them.
        """
        with self._lock:
            sock = self._sock
            if sock is None:
                return False
            try:
                sock.setblocking(False)
                try:
                    sock.recv(1, socket.MSG_PEEK)
                finally:
                    sock.settimeout(self.timeout)
            except (BlockingIOError, InterruptedError):
                return True   # nothing to read: idle and alive
            except OSError:
                pass          # reset by the peer
            # EOF, a reset, or bytes nobody asked for: the stream is unusable
            self.close()
            return False

    # -- transport ---------------------------------------------------------

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        sock = self._sock
        assert sock is not None
        buf = self._buf
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(remaining)
            chunk = sock.recv(max(n - len(buf), 65536))
            if not chunk:
                raise _Closed()
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _call(self, request: bytes, parse: Callable[[Reader], _T]) -> _T:
        with self._lock:
            self.connect()
            sock = self._sock
            assert sock is not None
            deadline = time.monotonic() + self.timeout
            try:
                sock.settimeout(self.timeout)
                sock.sendall(request)
                result = parse(lambda n: self._recv_exact(n, deadline))
                if self._buf:
                    raise TyrantProtocolError(
                        f"{len(self._buf)} unexpected bytes after the response")
                return result
            except TyrantError as exc:
                # a complete answer was read: the stream is still in step
                if exc.address is None:
                    raise TyrantError(exc.command, self.address) from None
                raise
            except TyrantProtocolError as exc:
                self.close()
                raise TyrantProtocolError(
                    f"Tokyo Tyrant at {self.address} sent a malformed answer: {exc}") from None
            except _Closed:
                self.close()
                raise errors.ConnectionError(
                    f"Tokyo Tyrant at {self.address} closed the connection") from None
            except TimeoutError as exc:  # socket.timeout is an alias
                self.close()
                raise errors.ConnectionError(
                    f"Tokyo Tyrant at {self.address} did not answer within "
                    f"{self.timeout:g}s") from exc
            except OSError as exc:
                self.close()
                raise errors.ConnectionError(
                    f"lost connection to Tokyo Tyrant at {self.address}: {exc}") from exc
            except BaseException:
                # interrupted halfway through: the stream is out of step
                self.close()
                raise

    def _require(self, ok: bool, command: str) -> None:
        if not ok:
            raise TyrantError(command, self.address)

    # -- plain commands ----------------------------------------------------

    def put(self, key: BytesLike, value: BytesLike) -> None:
        self._require(self._call(encode_put(key, value), _p_status) == 0, "put")

    def out(self, key: BytesLike) -> bool:
        """Remove a record; False if there was none."""
        return self._call(encode_out(key), _p_status) == 0

    def get(self, key: BytesLike) -> bytes | None:
        return self._call(encode_get(key), _p_value)

    def mget(self, keys: Iterable[BytesLike]) -> dict[bytes, bytes]:
        """Values of the keys that exist; missing keys are absent."""
        return self._call(encode_mget(keys), _p_mget)

    def vsiz(self, key: BytesLike) -> int | None:
        """Stored size of a value (for tables: of TC's internal record form)."""
        return self._call(encode_vsiz(key), _p_vsiz)

    def iterinit(self) -> None:
        self._require(self._call(encode_iterinit(), _p_status) == 0, "iterinit")

    def iternext(self) -> bytes | None:
        """Next key of the server-wide iterator, None at the end."""
        return self._call(encode_iternext(), _p_value)

    def fwmkeys(self, prefix: BytesLike, max: int = -1) -> list[bytes]:  # noqa: A002
        return self._call(encode_fwmkeys(prefix, max), _p_keys)

    def sync(self) -> None:
        self._require(self._call(encode_sync(), _p_status) == 0, "sync")

    def vanish(self) -> None:
        self._require(self._call(encode_vanish(), _p_status) == 0, "vanish")

    def rnum(self) -> int:
        return self._call(encode_rnum(), _p_u64)

    def size(self) -> int:
        return self._call(encode_size(), _p_u64)

    def stat(self) -> dict[str, str]:
        return self._call(encode_stat(), _p_stat)

    def database_type(self) -> str:
        """``stat``'s ``type`` line: ``table``, ``hash``, ``B+ tree``, ..."""
        return database_type(self.stat())

    def misc(self, name: BytesLike, elements: Iterable[BytesLike] = (),
             opts: int = 0) -> list[bytes]:
        """Any misc function; raises :class:`TyrantError` if the server refuses it."""
        label = _b(name).decode("utf-8", "replace")
        return self._call(encode_misc(name, elements, opts), _misc_checked(label))

    # -- table functions (misc) -------------------------------------------

    def tbl_put(self, pk: BytesLike, cols: ColumnsLike) -> None:
        self._require(self._call(encode_tbl_put(pk, cols), _misc_ok), "put")

    def tbl_putkeep(self, pk: BytesLike, cols: ColumnsLike) -> bool:
        """Store only if ``pk`` is new; False if a record already exists."""
        return self._call(encode_tbl_putkeep(pk, cols), _misc_ok)

    def tbl_putcat(self, pk: BytesLike, cols: ColumnsLike) -> None:
        self._require(self._call(encode_tbl_putcat(pk, cols), _misc_ok), "putcat")

    def tbl_out(self, pk: BytesLike) -> bool:
        """Remove a record; False if there was none."""
        return self._call(encode_tbl_out(pk), _misc_ok)

    def tbl_get(self, pk: BytesLike) -> dict[bytes, bytes] | None:
        return self._call(encode_tbl_get(pk), _p_tbl_get)

    def tbl_putlist(self, records: RecordsLike) -> None:
        self._call(encode_tbl_putlist(records), _misc_checked("putlist"))

    def tbl_outlist(self, pks: Iterable[BytesLike]) -> None:
        """Remove records; pks that do not exist are ignored by the server."""
        self._call(encode_tbl_outlist(pks), _misc_checked("outlist"))

    def tbl_getlist(self, pks: Iterable[BytesLike]) -> dict[bytes, dict[bytes, bytes]]:
        return self._call(encode_tbl_getlist(pks), _p_tbl_getlist)

    def tbl_iterinit(self) -> None:
        self._call(encode_tbl_iterinit(), _misc_checked("iterinit"))

    def tbl_iternext(self) -> tuple[bytes, dict[bytes, bytes]] | None:
        """Next ``(pk, columns)`` of the server-wide iterator, None at the end."""
        return self._call(encode_tbl_iternext(), _p_tbl_iternext)

    def tbl_vanish(self) -> None:
        self._call(encode_tbl_vanish(), _misc_checked("vanish"))

    def tbl_sync(self) -> None:
        self._call(encode_tbl_sync(), _misc_checked("sync"))

    def genuid(self) -> int:
        """A new unique integer primary key from the server's counter."""
        return self._call(encode_genuid(), _p_genuid)

    def setindex(self, column: BytesLike, itype: int) -> bool:
        """Create (or with ITVOID drop) an index.

        With ``ITKEEP`` a refusal means the index already exists and returns
        False; without it a refusal raises :class:`TyrantError`.
        """
        if self._call(encode_setindex(column, itype), _misc_ok):
            return True
        if itype & ITKEEP:
            return False
        raise TyrantError("setindex", self.address)

    def search(self, query: TyrantQuery) -> list[bytes]:
        """Primary keys of matching records, in the query's order."""
        return self._call(encode_search(query), _p_search)

    def search_get(self, query: TyrantQuery,
                   columns: Sequence[BytesLike] | None = None) -> list[dict[bytes, bytes]]:
        """Matching records in one round trip; see :func:`decode_search_get`."""
        return self._call(encode_search(query, get=tuple(columns or ())), _p_search_get)

    def search_count(self, query: TyrantQuery) -> int:
        return self._call(encode_search(query, count=True), _p_search_count)

    def search_out(self, query: TyrantQuery) -> None:
        """Remove every matching record."""
        self._call(encode_search(query, out=True), _misc_checked("search"))

    def metasearch(self, queries: Sequence[TyrantQuery], mstype: int = MSUNION) -> list[bytes]:
        return self._call(encode_metasearch(queries, mstype), _p_search)

    def error(self) -> str:
        """The server's last error, e.g. ``"22: no record found"``."""
        return self._call(encode_error(), _p_error)


# --------------------------------------------------------------------------
# pool
# --------------------------------------------------------------------------

class TyrantPool:
    """Up to ``size`` connections shared between threads.

    A connection whose request failed is closed and not reused; an idle one
    whose server went away is noticed before it is handed out. So after a
    server restart the next request simply opens a new socket.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 timeout: float = DEFAULT_TIMEOUT, size: int = DEFAULT_POOL_SIZE) -> None:
        if not isinstance(size, int) or size < 1:
            raise errors.ConfigurationError(
                f"Tokyo Tyrant pool size must be a positive integer, got {size!r}")
        # validates host/port/timeout once, up front
        self._template = TyrantConnection(host, port, timeout)
        self.size = size
        self._idle: list[TyrantConnection] = []
        self._in_use = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def address(self) -> str:
        return self._template.address

    @property
    def timeout(self) -> float:
        return self._template.timeout

    def __repr__(self) -> str:
        return f"<TyrantPool {self.address} size={self.size}>"

    def __enter__(self) -> TyrantPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _acquire(self) -> TyrantConnection:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                if self._closed:
                    raise errors.ConnectionError(
                        f"the pool for Tokyo Tyrant at {self.address} is closed")
                while self._idle:
                    conn = self._idle.pop()
                    if conn.is_usable():
                        self._in_use += 1
                        return conn
                    conn.close()
                if self._in_use < self.size:
                    self._in_use += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise errors.ConnectionError(
                        f"no free connection to Tokyo Tyrant at {self.address} within "
                        f"{self.timeout:g}s (pool size {self.size})")
                self._cond.wait(remaining)
        t = self._template
        conn = TyrantConnection(t.host, t.port, t.timeout)
        try:
            conn.connect()
        except BaseException:
            with self._cond:
                self._in_use -= 1
                self._cond.notify()
            raise
        return conn

    def _release(self, conn: TyrantConnection) -> None:
        with self._cond:
            self._in_use -= 1
            if self._closed or not conn.is_open:
                conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    @contextmanager
    def connection(self) -> Iterator[TyrantConnection]:
        """Borrow a connection for the ``with`` block; it goes back afterwards
        unless a failure closed it."""
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def close(self) -> None:
        """Close idle connections now and borrowed ones when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for conn in idle:
            conn.close()


# --------------------------------------------------------------------------
# database type check
# --------------------------------------------------------------------------

def database_type(stat: Mapping[str, str]) -> str:
    """The ``type`` line of a ``stat`` answer (``"unknown"`` if absent)."""
    return stat.get("type", "unknown")


def require_table_database(conn: TyrantConnection) -> dict[str, str]:
    """Return ``stat``, or refuse a server that does not hold a table database.

    doqu stores documents as table records; a hash or B+ tree database would
    accept plain puts and then fail on every query, so refuse it up front.
    """
    info = conn.stat()
    kind = database_type(info)
    if kind != "table":
        raise errors.ConfigurationError(
            f"Tokyo Tyrant at {conn.address} serves a {kind!r} database, but doqu needs "
            "a table database: start ttserver with a database file name ending in '.tct'")
    return info
