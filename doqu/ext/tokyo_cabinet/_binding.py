"""ctypes binding to the Tokyo Cabinet *table database* C library (``tctdb.h``).

No maintained Python 3 binding exists, so doqu talks to ``libtokyocabinet``
directly.  This module is deliberately thin: it mirrors the C API one call per
method, converts every failure into :class:`TokyoCabinetError`, and owns all
the memory bookkeeping so callers only ever see ``bytes``, ``dict`` and
``list`` objects:

* records come back from ``tctdbget`` as a ``TCMAP`` that we copy and free
  with ``tcmapdel``; pointers returned by ``tcmapget``/``tcmapiternext``/
  ``tclistval`` point *into* their container and are copied with
  :func:`ctypes.string_at` before the container is freed;
* ``tctdbiternext`` returns a ``malloc``-ed key that we free with ``tcfree``;
* search results are ``TCLIST`` objects freed with ``tclistdel``.

Keys, column names and values are ``bytes`` and may contain NUL bytes,
except where the C API takes a C string (query column names and
expressions, index names, paths): those reject NUL with ``ValueError``
instead of silently truncating.

Thread safety: every :class:`TableDB` switches on the library's own mutex
(``tctdbsetmutex``), so one handle can be shared across threads, and the
error code is kept per thread by the library.  A :class:`TableQuery` belongs
to one thread at a time.

Only :mod:`doqu.errors` is imported from doqu, so the storage backend built on
top of this module can be tested and reasoned about separately.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from ctypes import (
    POINTER,
    byref,
    c_bool,
    c_char_p,
    c_int,
    c_int64,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any

import doqu.errors

__all__ = [
    "TokyoCabinetError",
    "TokyoCabinetOpenError",
    "TokyoCabinetTransactionError",
    "LibraryMissing",
    "load_library",
    "library_version",
    "TableDB",
    "TableQuery",
    "metasearch",
    # open modes
    "OREADER", "OWRITER", "OCREAT", "OTRUNC", "ONOLCK", "OLCKNB", "OTSYNC",
    # query conditions
    "QCSTREQ", "QCSTRINC", "QCSTRBW", "QCSTREW", "QCSTRAND", "QCSTROR",
    "QCSTROREQ", "QCSTRRX", "QCNUMEQ", "QCNUMGT", "QCNUMGE", "QCNUMLT",
    "QCNUMLE", "QCNUMBT", "QCNUMOREQ", "QCFTSPH", "QCFTSAND", "QCFTSOR",
    "QCFTSEX", "QCNEGATE", "QCNOIDX",
    # orders
    "QOSTRASC", "QOSTRDESC", "QONUMASC", "QONUMDESC",
    # index types
    "ITLEXICAL", "ITDECIMAL", "ITTOKEN", "ITQGRAM", "ITOPT", "ITVOID", "ITKEEP",
    # meta search
    "MSUNION", "MSISECT", "MSDIFF",
    # error codes
    "ESUCCESS", "ETHREAD", "EINVALID", "ENOFILE", "ENOPERM", "EMETA", "ERHEAD",
    "EOPEN", "ECLOSE", "ETRUNC", "ESYNC", "ESTAT", "ESEEK", "EREAD", "EWRITE",
    "EMMAP", "ELOCK", "EUNLINK", "ERENAME", "EMKDIR", "ERMDIR", "EKEEP",
    "ENOREC", "EMISC",
]

# ---------------------------------------------------------------------------
# Constants, copied by value from tctdb.h / tcutil.h of Tokyo Cabinet 1.4.48.
# ---------------------------------------------------------------------------

# open modes (TDBO*)
OREADER = 1 << 0
OWRITER = 1 << 1
OCREAT = 1 << 2
OTRUNC = 1 << 3
ONOLCK = 1 << 4
OLCKNB = 1 << 5
OTSYNC = 1 << 6

# index types (TDBIT*)
ITLEXICAL = 0
ITDECIMAL = 1
ITTOKEN = 2
ITQGRAM = 3
ITOPT = 9998
ITVOID = 9999
ITKEEP = 1 << 24

# query condition operators (TDBQC*)
QCSTREQ = 0
QCSTRINC = 1
QCSTRBW = 2
QCSTREW = 3
QCSTRAND = 4
QCSTROR = 5
QCSTROREQ = 6
QCSTRRX = 7
QCNUMEQ = 8
QCNUMGT = 9
QCNUMGE = 10
QCNUMLT = 11
QCNUMLE = 12
QCNUMBT = 13
QCNUMOREQ = 14
QCFTSPH = 15
QCFTSAND = 16
QCFTSOR = 17
QCFTSEX = 18
QCNEGATE = 1 << 24
QCNOIDX = 1 << 25

# order types (TDBQO*)
QOSTRASC = 0
QOSTRDESC = 1
QONUMASC = 2
QONUMDESC = 3

# meta search set operations (TDBMS*)
MSUNION = 0
MSISECT = 1
MSDIFF = 2

# error codes (TCE*, tcutil.h)
ESUCCESS = 0
ETHREAD = 1
EINVALID = 2
ENOFILE = 3
ENOPERM = 4
EMETA = 5
ERHEAD = 6
EOPEN = 7
ECLOSE = 8
ETRUNC = 9
ESYNC = 10
ESTAT = 11
ESEEK = 12
EREAD = 13
EWRITE = 14
EMMAP = 15
ELOCK = 16
EUNLINK = 17
ERENAME = 18
EMKDIR = 19
ERMDIR = 20
EKEEP = 21
ENOREC = 22
EMISC = 9999

LIBRARY_ENV = "DOQU_TOKYO_CABINET_LIB"
"""Environment variable naming an explicit path to ``libtokyocabinet``."""

_INSTALL_HINT = "install it with `apt-get install libtokyocabinet9`"

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class TokyoCabinetError(doqu.errors.StorageError):
    """The C library reported a failure.

    ``code`` is the library's error code (one of the ``E*`` constants),
    ``operation`` the C call that failed and ``path`` the database file, so a
    message can be matched without parsing it.
    """

    def __init__(self, message: str, code: int = EMISC,
                 operation: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.path = path


class TokyoCabinetOpenError(TokyoCabinetError, doqu.errors.ConnectionError):
    """Opening the database file failed (missing, locked, unreadable...)."""


class TokyoCabinetTransactionError(TokyoCabinetError, doqu.errors.TransactionError):
    """Beginning, committing or aborting a transaction failed."""


class LibraryMissing(doqu.errors.ConfigurationError):
    """``libtokyocabinet`` could not be loaded, so the backend cannot work."""


# ---------------------------------------------------------------------------
# Library loading
# ---------------------------------------------------------------------------

_P = c_void_p           # every C pointer travels as c_void_p: never truncated
_BUF = c_char_p         # input buffers: bytes are passed without a copy
_INTP = POINTER(c_int)

# name -> (restype, argtypes); every function this module calls is declared.
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    # tcutil.h
    "tcfree": (None, [_P]),
    "tcmapnew2": (_P, [c_uint32]),
    "tcmapdel": (None, [_P]),
    "tcmapput": (None, [_P, _BUF, c_int, _BUF, c_int]),
    "tcmapget": (_P, [_P, _BUF, c_int, _INTP]),
    "tcmapiterinit": (None, [_P]),
    "tcmapiternext": (_P, [_P, _INTP]),
    "tcmaprnum": (c_uint64, [_P]),
    "tclistdel": (None, [_P]),
    "tclistnum": (c_int, [_P]),
    "tclistval": (_P, [_P, c_int, _INTP]),
    # tctdb.h
    "tctdberrmsg": (c_char_p, [c_int]),   # static string: safe to copy eagerly
    "tctdbnew": (_P, []),
    "tctdbdel": (None, [_P]),
    "tctdbecode": (c_int, [_P]),
    "tctdbsetmutex": (c_bool, [_P]),
    "tctdbopen": (c_bool, [_P, c_char_p, c_int]),
    "tctdbclose": (c_bool, [_P]),
    "tctdbput": (c_bool, [_P, _BUF, c_int, _P]),
    "tctdbputkeep": (c_bool, [_P, _BUF, c_int, _P]),
    "tctdbout": (c_bool, [_P, _BUF, c_int]),
    "tctdbget": (_P, [_P, _BUF, c_int]),
    "tctdbiterinit": (c_bool, [_P]),
    "tctdbiternext": (_P, [_P, _INTP]),
    "tctdbsync": (c_bool, [_P]),
    "tctdbvanish": (c_bool, [_P]),
    "tctdbtranbegin": (c_bool, [_P]),
    "tctdbtrancommit": (c_bool, [_P]),
    "tctdbtranabort": (c_bool, [_P]),
    "tctdbrnum": (c_uint64, [_P]),
    "tctdbfsiz": (c_uint64, [_P]),
    "tctdbsetindex": (c_bool, [_P, c_char_p, c_int]),
    "tctdbgenuid": (c_int64, [_P]),
    "tctdbqrynew": (_P, [_P]),
    "tctdbqrydel": (None, [_P]),
    "tctdbqryaddcond": (None, [_P, c_char_p, c_int, c_char_p]),
    "tctdbqrysetorder": (None, [_P, c_char_p, c_int]),
    "tctdbqrysetlimit": (None, [_P, c_int, c_int]),
    "tctdbqrysearch": (_P, [_P]),
    "tctdbqrysearchout": (c_bool, [_P]),
    "tctdbqryhint": (_P, [_P]),          # points into the query: copied at once
    "tctdbmetasearch": (_P, [POINTER(c_void_p), c_int, c_int]),
}


def _candidates() -> list[str]:
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        return [explicit]
    found = ctypes.util.find_library("tokyocabinet")
    names = [found] if found else []
    names += ["libtokyocabinet.so.9", "libtokyocabinet.so", "libtokyocabinet.dylib"]
    return names


@functools.cache
def load_library() -> ctypes.CDLL:
    """Load ``libtokyocabinet`` once and declare every prototype we use.

    ``DOQU_TOKYO_CABINET_LIB`` names an explicit file (and disables the
    search).  The result is cached; ``load_library.cache_clear()`` forgets it
    (tests use that after changing the variable).  Raises
    :class:`LibraryMissing` when nothing loadable is found or the file is not
    Tokyo Cabinet.
    """
    errors: list[str] = []
    last_error: OSError | None = None
    lib: ctypes.CDLL | None = None
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(f"{name}: {exc}")
            last_error = exc
    if lib is None:
        where = (f"{LIBRARY_ENV}={os.environ[LIBRARY_ENV]!r}"
                 if os.environ.get(LIBRARY_ENV) else "the system library path")
        raise LibraryMissing(
            f"the Tokyo Cabinet C library (libtokyocabinet) could not be loaded "
            f"from {where}; {_INSTALL_HINT} (tried: {'; '.join(errors)})") from last_error
    for fname, (restype, argtypes) in _PROTOTYPES.items():
        try:
            func = getattr(lib, fname)
        except AttributeError as exc:
            raise LibraryMissing(
                f"{lib._name!r} is not a usable Tokyo Cabinet library: it does not "
                f"export {fname}; {_INSTALL_HINT}") from exc
        func.restype = restype
        func.argtypes = argtypes
    return lib


def library_version() -> str:
    """The version string of the loaded library (``tcversion``), e.g. ``1.4.48``."""
    value = c_char_p.in_dll(load_library(), "tcversion").value
    return value.decode("ascii", "replace") if value else ""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _as_bytes(value: Any, what: str) -> bytes:
    """Accept bytes-like values only: a ``str`` here is almost always a bug."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def _cstring(value: Any, what: str) -> bytes:
    """Bytes for a C-string parameter; NUL would silently truncate it in C."""
    data = _as_bytes(value, what)
    if b"\0" in data:
        raise ValueError(f"{what} cannot contain NUL bytes: the C API takes a C string "
                         f"there ({data!r})")
    return data


_INDEX_SUFFIXES = {"lex": ITLEXICAL, "dec": ITDECIMAL, "tok": ITTOKEN, "qgr": ITQGRAM}


def _scan_indexes(path: bytes) -> dict[bytes, int]:
    """The column indexes the library loaded for ``path``, from their file names.

    Tokyo Cabinet keeps each index in ``PATH.idx.NAME.{lex,dec,tok,qgr}`` with
    ``NAME`` URL-encoded, and loads them at open time.
    """
    directory, base = os.path.split(os.fsdecode(path))
    prefix = base + ".idx."
    found: dict[bytes, int] = {}
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return found
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        stem, dot, suffix = entry[len(prefix):].rpartition(".")
        if dot and suffix in _INDEX_SUFFIXES:
            raw = os.fsencode(stem).replace(b"+", b" ")
            found[urllib.parse.unquote_to_bytes(raw)] = _INDEX_SUFFIXES[suffix]
    return found


def _errmsg(lib: ctypes.CDLL, code: int) -> str:
    raw = lib.tctdberrmsg(code)
    return raw.decode("ascii", "replace") if raw else f"error {code}"


def _copy_list(lib: ctypes.CDLL, tclist: int | None) -> list[bytes]:
    """Copy every element of a ``TCLIST`` and free it."""
    if not tclist:
        return []
    try:
        size = c_int()
        out: list[bytes] = []
        for i in range(lib.tclistnum(tclist)):
            ptr = lib.tclistval(tclist, i, byref(size))
            out.append(ctypes.string_at(ptr, size.value) if ptr else b"")
        return out
    finally:
        lib.tclistdel(tclist)


def _copy_map(lib: ctypes.CDLL, tcmap: int) -> dict[bytes, bytes]:
    """Copy a ``TCMAP`` into a dict (binary safe); the caller frees it."""
    out: dict[bytes, bytes] = {}
    ksize = c_int()
    vsize = c_int()
    lib.tcmapiterinit(tcmap)
    while True:
        kptr = lib.tcmapiternext(tcmap, byref(ksize))
        if not kptr:
            break
        key = ctypes.string_at(kptr, ksize.value)
        vptr = lib.tcmapget(tcmap, key, len(key), byref(vsize))
        out[key] = ctypes.string_at(vptr, vsize.value) if vptr else b""
    return out


# ---------------------------------------------------------------------------
# Table database
# ---------------------------------------------------------------------------


class TableDB:
    """One ``TCTDB`` handle: a table database file opened through the C API.

    The handle is created with the library mutex on, so a single instance can
    be shared by threads.  ``close()`` may be called any number of times; the
    C object itself is released (``tctdbdel``) when the instance is garbage
    collected.  ``path`` is the file last opened successfully (kept after
    ``close()`` so messages can name it), ``None`` before the first open.
    """

    def __init__(self) -> None:
        self._lib = load_library()
        self._lock = threading.RLock()
        self._handle: int | None = None
        self._queries: set[int] = set()   # live TDBQRY handles, freed before tctdbdel
        self._iter_epoch = 0
        self._open = False
        self._writer = False
        # column -> index type, as the C handle knows them (loaded at open)
        self._indexes: dict[bytes, int] = {}
        self.path: str | None = None
        self._handle = self._new_handle()

    # -- lifecycle ---------------------------------------------------------

    def _new_handle(self) -> int:
        handle = self._lib.tctdbnew()
        if not handle:
            raise TokyoCabinetError("tctdbnew failed: out of memory", EMISC, "tctdbnew")
        if not self._lib.tctdbsetmutex(handle):
            code = self._lib.tctdbecode(handle)
            self._lib.tctdbdel(handle)
            raise TokyoCabinetError(
                f"tctdbsetmutex failed: {_errmsg(self._lib, code)}", code, "tctdbsetmutex")
        return int(handle)

    def _require_handle(self) -> int:
        if not self._handle:
            raise TokyoCabinetError("the table database handle has been released",
                                    EINVALID, None, self.path)
        return self._handle

    def _require_open(self, operation: str) -> int:
        handle = self._require_handle()
        if not self._open:
            where = f" ({self.path})" if self.path else ""
            raise TokyoCabinetError(
                f"{operation} on a closed table database{where}: invalid operation",
                EINVALID, operation, self.path)
        return handle

    def _error(self, operation: str, code: int | None = None,
               cls: type[TokyoCabinetError] = TokyoCabinetError) -> TokyoCabinetError:
        """Build the exception for a failed call, reading the per-thread ecode."""
        if code is None:
            code = self._lib.tctdbecode(self._handle) if self._handle else EMISC
        where = self.path if self.path is not None else "<not opened>"
        message = f"{operation} failed on {where}: {_errmsg(self._lib, code)} (code {code})"
        if code == ELOCK:
            message += ("; the file is locked by another process (it is open for "
                        "writing elsewhere, or a reader holds it while we want to write)")
        elif code == ETHREAD and operation == "tctdbopen":
            message += ("; the file is already open through another handle in this "
                        "process (Tokyo Cabinet allows one handle per file per process)")
        elif code == ENOFILE:
            message += "; the file does not exist (open with OWRITER|OCREAT to create it)"
        elif code == EMETA:
            message += "; the file is not a Tokyo Cabinet table database or is damaged"
        return cls(message, code, operation, self.path)

    def open(self, path: str | os.PathLike[str], mode: int) -> None:
        """Connect to ``path`` with a bitwise-or of the ``O*`` constants.

        Without ``OLCKNB`` the C library waits for the file lock, so a second
        writer blocks until the first closes; with ``OLCKNB`` it fails at once
        with :class:`TokyoCabinetOpenError` (code ``ELOCK``).
        """
        raw = os.fsencode(path)
        if b"\0" in raw:
            raise ValueError(f"path cannot contain NUL bytes: {path!r}")
        with self._lock:
            handle = self._require_handle()
            if self._open:
                raise TokyoCabinetError(
                    f"tctdbopen failed on {os.fsdecode(raw)}: already open on {self.path}; "
                    f"close() it first", EINVALID, "tctdbopen", self.path)
            previous, self.path = self.path, os.fsdecode(raw)
            if not self._lib.tctdbopen(handle, raw, int(mode)):
                exc = self._error("tctdbopen", cls=TokyoCabinetOpenError)
                # Start over with a fresh C object so no state of the failed
                # open (error code, "fatal" flag) leaks into later calls.
                self.path = previous
                self._replace_handle()
                raise exc
            self._open = True
            self._writer = bool(mode & OWRITER)
            self._iter_epoch += 1
            self._indexes = _scan_indexes(raw)

    def _replace_handle(self) -> None:
        old = self._handle
        self._free_queries()
        self._handle = None
        if old:
            self._lib.tctdbdel(old)
        self._handle = self._new_handle()

    def close(self) -> None:
        """Flush and close the file; a no-op when it is not open.

        An open transaction is aborted by the library.  Raises
        :class:`TokyoCabinetError` when flushing fails (the handle is closed
        either way).
        """
        with self._lock:
            if not self._open or not self._handle:
                return
            self._open = False
            self._iter_epoch += 1
            if not self._lib.tctdbclose(self._handle):
                raise self._error("tctdbclose")

    @property
    def is_open(self) -> bool:
        """Whether the handle is currently connected to a file."""
        return self._open

    @property
    def indexes(self) -> dict[bytes, int]:
        """Column -> ``IT*`` type of the indexes this handle maintains (a copy)."""
        return dict(self._indexes)

    def _free_queries(self) -> None:
        for qhandle in list(self._queries):
            self._lib.tctdbqrydel(qhandle)
        self._queries.clear()

    def __del__(self) -> None:
        try:
            handle = self._handle
        except AttributeError:      # __init__ failed before the handle existed
            return
        if not handle:
            return
        try:
            if self._open:
                self._open = False
                self._lib.tctdbclose(handle)
            self._free_queries()
        finally:
            self._handle = None
            self._lib.tctdbdel(handle)

    def __enter__(self) -> TableDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<TableDB {self.path!r} {state}>"

    # -- records -----------------------------------------------------------

    def _build_map(self, pk: bytes, cols: Mapping[bytes, bytes], operation: str) -> int:
        """Validate a record and copy it into a new ``TCMAP`` (caller frees it).

        The checks guard against inputs on which the C library does not fail
        but ``assert()``s and aborts the whole process: an empty primary key,
        and an empty value in a column with a lexical or decimal index.
        """
        if not pk:
            raise ValueError("the primary key cannot be empty: Tokyo Cabinet aborts "
                             "the process when storing a record under an empty key")
        items = [(_as_bytes(k, "column name"), _as_bytes(v, "column value"))
                 for k, v in cols.items()]
        for name, value in items:
            if not name:
                raise ValueError("column names cannot be empty: Tokyo Cabinet reserves "
                                 "the empty name for the primary key")
            if not value and self._indexes.get(name) in (ITLEXICAL, ITDECIMAL):
                raise TokyoCabinetError(
                    f"{operation} refused on {self.path}: column {name!r} has a "
                    f"{'lexical' if self._indexes[name] == ITLEXICAL else 'decimal'} "
                    f"index and its value is empty, which makes Tokyo Cabinet abort "
                    f"the process: invalid operation", EINVALID, operation, self.path)
        tcmap = self._lib.tcmapnew2(len(items) + 1)
        if not tcmap:
            raise TokyoCabinetError("tcmapnew2 failed: out of memory", EMISC, "tcmapnew2")
        for name, value in items:
            self._lib.tcmapput(tcmap, name, len(name), value, len(value))
        return int(tcmap)

    def _store(self, func: Any, operation: str, pk: bytes,
               cols: Mapping[bytes, bytes]) -> bool:
        key = _as_bytes(pk, "primary key")
        # An empty value is only dangerous if a lexical/decimal index on its
        # column appears between our check and the C call: hold the lock that
        # setindex() takes for that (rare) case.
        guard = self._lock if any(not v for v in cols.values()) else contextlib.nullcontext()
        with guard:
            tcmap = self._build_map(key, cols, operation)
            try:
                return bool(func(self._require_open(operation), key, len(key), tcmap))
            finally:
                self._lib.tcmapdel(tcmap)

    def put(self, pk: bytes, cols: Mapping[bytes, bytes]) -> None:
        """Store a record, replacing any record with the same primary key.

        Columns are replaced as a whole, not merged.  An empty ``pk`` raises
        ``ValueError``, and so does an empty column name; an empty value in a
        column with a lexical/decimal index raises :class:`TokyoCabinetError`
        (``EINVALID``): the C library would abort the process on either.
        """
        if not self._store(self._lib.tctdbput, "tctdbput", pk, cols):
            raise self._error("tctdbput")

    def putkeep(self, pk: bytes, cols: Mapping[bytes, bytes]) -> bool:
        """Store a record only if the key is new; ``False`` when it exists."""
        if self._store(self._lib.tctdbputkeep, "tctdbputkeep", pk, cols):
            return True
        code = self._lib.tctdbecode(self._handle)
        if code == EKEEP:
            return False
        raise self._error("tctdbputkeep", code)

    def get(self, pk: bytes) -> dict[bytes, bytes] | None:
        """The record's columns, or ``None`` when no record has this key."""
        key = _as_bytes(pk, "primary key")
        tcmap = self._lib.tctdbget(self._require_open("tctdbget"), key, len(key))
        if not tcmap:
            code = self._lib.tctdbecode(self._handle)
            if code == ENOREC:
                return None
            raise self._error("tctdbget", code)
        try:
            return _copy_map(self._lib, tcmap)
        finally:
            self._lib.tcmapdel(tcmap)

    def out(self, pk: bytes) -> bool:
        """Remove a record; ``False`` when there was none."""
        key = _as_bytes(pk, "primary key")
        if self._lib.tctdbout(self._require_open("tctdbout"), key, len(key)):
            return True
        code = self._lib.tctdbecode(self._handle)
        if code == ENOREC:
            return False
        raise self._error("tctdbout", code)

    def keys(self) -> Iterator[bytes]:
        """Iterate over every primary key, in the file's (arbitrary) order.

        The C library has a single iterator per handle: starting another
        ``keys()`` (or ``setindex``/``vanish``/reopen, which reset it) makes an
        older, unfinished iterator raise :class:`TokyoCabinetError` instead
        of silently yielding wrong keys.  Records may be removed while
        iterating.
        """
        handle = self._require_open("tctdbiterinit")
        with self._lock:
            self._iter_epoch += 1
            epoch = self._iter_epoch
            if not self._lib.tctdbiterinit(handle):
                raise self._error("tctdbiterinit")
        return self._iterate(epoch)

    def _iterate(self, epoch: int) -> Iterator[bytes]:
        size = c_int()
        while True:
            with self._lock:
                if epoch != self._iter_epoch:
                    raise TokyoCabinetError(
                        f"key iteration over {self.path} was invalidated by a newer "
                        f"keys(), setindex(), vanish() or reopen on the same handle",
                        EINVALID, "tctdbiternext", self.path)
                handle = self._require_open("tctdbiternext")
                ptr = self._lib.tctdbiternext(handle, byref(size))
                if not ptr:
                    code = self._lib.tctdbecode(handle)
                    if code in (ENOREC, ESUCCESS):
                        return
                    raise self._error("tctdbiternext", code)
                try:
                    key = ctypes.string_at(ptr, size.value)
                finally:
                    self._lib.tcfree(ptr)
            yield key

    def rnum(self) -> int:
        """Number of records."""
        return int(self._lib.tctdbrnum(self._require_open("tctdbrnum")))

    def fsiz(self) -> int:
        """Size of the database file in bytes."""
        return int(self._lib.tctdbfsiz(self._require_open("tctdbfsiz")))

    def genuid(self) -> int:
        """A new unique id from a counter stored in the file (1, 2, 3, ...).

        Deleting records never rewinds it, but ``vanish()`` does (it truncates
        the file, counter included).
        """
        uid = self._lib.tctdbgenuid(self._require_open("tctdbgenuid"))
        if uid < 0:
            raise self._error("tctdbgenuid")
        return int(uid)

    def setindex(self, column: bytes, itype: int) -> bool:
        """Create, rebuild (``IT*``), optimise (``ITOPT``) or drop (``ITVOID``) an index.

        ``column`` ``b""`` is the primary key.  Returns ``False`` only when
        ``ITKEEP`` was given and the index already exists, or when
        ``ITVOID``/``ITOPT`` name an index that does not exist; other
        failures raise.
        """
        name = _cstring(column, "index column name")
        itype = int(itype)
        base = itype & ~ITKEEP
        operation = f"tctdbsetindex({name!r}, {itype})"
        with self._lock:
            handle = self._require_open(operation)
            if base in (ITLEXICAL, ITDECIMAL) and name and self._writer:
                self._refuse_empty_values(name, operation)
            self._iter_epoch += 1     # setindex rewinds the shared iterator
            if self._lib.tctdbsetindex(handle, name, itype):
                if base == ITVOID:
                    self._indexes.pop(name, None)
                elif base != ITOPT:
                    self._indexes[name] = base
                return True
            code = self._lib.tctdbecode(handle)
            if code == EKEEP and itype & ITKEEP:
                return False
            if (code == EINVALID and base in (ITOPT, ITVOID) and self._writer
                    and name not in self._indexes):
                return False
            raise self._error(operation, code)

    def _refuse_empty_values(self, name: bytes, operation: str) -> None:
        """Building a lexical/decimal index over an empty value aborts the process."""
        query = TableQuery(self)
        try:
            query.addcond(name, QCSTREQ | QCNOIDX, b"")
            query.setlimit(1)
            found = query.search()
        finally:
            query.close()
        if found:
            raise TokyoCabinetError(
                f"{operation} refused on {self.path}: record {found[0]!r} (and maybe "
                f"others) has an empty {name!r} value, and indexing it makes Tokyo "
                f"Cabinet abort the process: invalid operation", EINVALID, operation,
                self.path)

    # -- transactions and maintenance --------------------------------------

    def tranbegin(self) -> None:
        """Begin a transaction on this handle.

        The transaction belongs to the handle, not the thread: writes made by
        other threads through the same handle meanwhile become part of it
        (and are discarded by ``tranabort``).  A second ``tranbegin`` blocks
        until the first transaction ends.
        """
        if not self._lib.tctdbtranbegin(self._require_handle()):
            raise self._error("tctdbtranbegin", cls=TokyoCabinetTransactionError)

    def trancommit(self) -> None:
        """Commit the current transaction."""
        if not self._lib.tctdbtrancommit(self._require_handle()):
            raise self._error("tctdbtrancommit", cls=TokyoCabinetTransactionError)

    def tranabort(self) -> None:
        """Abort the current transaction, discarding its updates."""
        if not self._lib.tctdbtranabort(self._require_handle()):
            raise self._error("tctdbtranabort", cls=TokyoCabinetTransactionError)

    def sync(self) -> None:
        """Flush updates to the device so other processes see them."""
        if not self._lib.tctdbsync(self._require_handle()):
            raise self._error("tctdbsync")

    def vanish(self) -> None:
        """Remove every record (indexes are kept, emptied)."""
        with self._lock:
            self._iter_epoch += 1
            if not self._lib.tctdbvanish(self._require_handle()):
                raise self._error("tctdbvanish")

    # -- errors and queries --------------------------------------------------

    def ecode(self) -> int:
        """The last error code of the calling thread (``E*`` constant)."""
        return int(self._lib.tctdbecode(self._require_handle()))

    def errmsg(self, code: int | None = None) -> str:
        """The library's message for ``code`` (default: the last error)."""
        if code is None:
            code = self.ecode()
        return _errmsg(self._lib, code)

    def query(self) -> TableQuery:
        """A new, unconditioned query on this database."""
        return TableQuery(self)


class TableQuery:
    """One ``TDBQRY``: conditions, order and limit, then ``search()``.

    It keeps its :class:`TableDB` alive; ``close()`` frees the C object early
    and is idempotent.  Conditions accumulate (they are ANDed); use
    :func:`metasearch` for unions/differences.
    """

    def __init__(self, db: TableDB) -> None:
        self._db = db
        self._lib = db._lib
        self._handle: int | None = None
        with db._lock:
            qhandle = self._lib.tctdbqrynew(db._require_handle())
            if not qhandle:
                raise TokyoCabinetError("tctdbqrynew failed: out of memory", EMISC,
                                        "tctdbqrynew", db.path)
            db._queries.add(qhandle)
            self._handle = qhandle

    def _require(self) -> int:
        if not self._handle or self._handle not in self._db._queries:
            raise TokyoCabinetError("the query has been closed", EINVALID,
                                    "tctdbqry", self._db.path)
        return self._handle

    def close(self) -> None:
        """Free the C query object; safe to call repeatedly."""
        handle, self._handle = self._handle, None
        if not handle:
            return
        with self._db._lock:
            if handle in self._db._queries:   # else the TableDB already freed it
                self._db._queries.discard(handle)
                self._lib.tctdbqrydel(handle)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:   # noqa: BLE001 - never raise from a finaliser
            pass

    def __enter__(self) -> TableQuery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def addcond(self, column: bytes, op: int, expr: bytes) -> None:
        """Add a condition ``column op expr`` (``b""`` is the primary key).

        ``op`` is a ``QC*`` constant, optionally or-ed with ``QCNEGATE`` /
        ``QCNOIDX``.  Both strings are C strings in the API, so NUL bytes are
        rejected.
        """
        name = _cstring(column, "condition column name")
        value = _cstring(expr, "condition expression")
        self._lib.tctdbqryaddcond(self._require(), name, int(op), value)

    def setorder(self, column: bytes, otype: int) -> None:
        """Order the results by ``column`` with a ``QO*`` constant (last call wins)."""
        name = _cstring(column, "order column name")
        self._lib.tctdbqrysetorder(self._require(), name, int(otype))

    def setlimit(self, max: int = -1, skip: int = 0) -> None:  # noqa: A002 - mirrors the C API
        """Return at most ``max`` keys (negative: no limit) after skipping ``skip``."""
        self._lib.tctdbqrysetlimit(self._require(), int(max), int(skip))

    def search(self) -> list[bytes]:
        """Primary keys of the matching records."""
        handle = self._require()
        self._db._require_open("tctdbqrysearch")
        return _copy_list(self._lib, self._lib.tctdbqrysearch(handle))

    def searchout(self) -> None:
        """Remove every matching record (needs a writer)."""
        handle = self._require()
        self._db._require_open("tctdbqrysearchout")
        if not self._lib.tctdbqrysearchout(handle):
            raise self._db._error("tctdbqrysearchout")

    def hint(self) -> str:
        """The library's explanation of the last execution (index use, sizes)."""
        ptr = self._lib.tctdbqryhint(self._require())
        return ctypes.string_at(ptr).decode("utf-8", "replace") if ptr else ""


def metasearch(queries: Sequence[TableQuery], mstype: int) -> list[bytes]:
    """Combine several queries of one database with ``MSUNION``/``MSISECT``/``MSDIFF``.

    Ordering and limit of the first query apply to the combined result.
    """
    queries = list(queries)
    if not queries:
        return []
    db = queries[0]._db
    for query in queries[1:]:
        if query._db is not db:
            raise ValueError("metasearch needs queries of the same TableDB")
    handles = [query._require() for query in queries]
    db._require_open("tctdbmetasearch")
    array = (c_void_p * len(handles))(*handles)
    return _copy_list(db._lib, db._lib.tctdbmetasearch(array, len(handles), int(mstype)))
