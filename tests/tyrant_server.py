"""A stand-in for ``ttserver`` serving a table database, for tests only.

No ``ttserver`` can be installed where doqu is tested, so this small threaded
TCP server speaks the same binary protocol on 127.0.0.1 and answers from a
real Tokyo Cabinet table database through doqu's ctypes binding. It follows
what ``ttserver`` 1.1.41 does for a ``.tct`` database closely enough that a
recorded session with the real server replays byte for byte
(``tests/ext/tokyo_tyrant/test_standin.py`` checks exactly that), so tests of
the client against it mean something.

Commands: put, out, get, mget, vsiz, iterinit, iternext, fwmkeys, sync,
vanish, rnum, size, stat and misc (table functions put, putkeep, putcat, out,
get, putlist, outlist, getlist, iterinit, iternext, sync, vanish, error,
setindex, search, metasearch, genuid; search also takes ``hint``, answered
with Tokyo Cabinet's query hint as a last element, as tcadbmisc does).
Anything else makes it hang up, as ``ttserver`` does for an unknown command.
``hang_up()`` makes it drop the connection after carrying out a request, as
a server dying mid-request would.

Known differences from the real server: ``size`` depends on how the file was
opened and tuned; ``fwmkeys`` restarts the shared key iterator (Tokyo
Cabinet's own prefix scan does not); ``putcat`` is a get-merge-put under the
server lock rather than one library call.
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator

from doqu.ext.tokyo_cabinet import _binding as tc

__all__ = ["TyrantStandIn"]

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_OK = b"\x00"
_FAIL = b"\x01"
_MAX_LENGTH = 256 << 20

Read = Callable[[int], bytes]


class _HangUp(Exception):
    """Close this client's connection (bad request, or the server is stopping)."""


# -- helpers mirroring Tokyo Cabinet's string conventions ------------------

def _join(cols: dict[bytes, bytes]) -> bytes:
    """tcstrjoin4: ``col\\0val\\0col\\0val``."""
    return b"\0".join(part for item in cols.items() for part in item)


def _split(blob: bytes) -> dict[bytes, bytes]:
    """tcstrsplit4: the inverse; an unpaired trailing name is dropped."""
    if not blob:
        return {}
    parts = blob.split(b"\0")
    return {parts[i]: parts[i + 1] for i in range(0, len(parts) - 1, 2)}


def _vnum_size(n: int) -> int:
    """Bytes of Tokyo Cabinet's variable-length number encoding (7 bits per byte)."""
    size = 1
    while n >= 128:
        n >>= 7
        size += 1
    return size


def _record_size(cols: dict[bytes, bytes]) -> int:
    """What ``vsiz`` reports for a table record: the size of TC's serialised
    column map (``tcmapdump``), not of the NUL-joined form."""
    return sum(_vnum_size(len(k)) + len(k) + _vnum_size(len(v)) + len(v)
               for k, v in cols.items())


_NUM_RE = re.compile(rb"\s*[-+]?\d+(\.\d*)?\s*")
_INT_RE = re.compile(rb"\s*([-+]?\d+)")


def _atoi(text: bytes) -> int:
    """tcatoi: the leading integer, 0 when there is none."""
    match = _INT_RE.match(text)
    return int(match.group(1)) if match else 0


def _named(text: bytes, names: dict[bytes, int]) -> int:
    """A type given by name (case-insensitive) or by number; -1 if neither."""
    value = names.get(text.upper())
    if value is not None:
        return value
    return _atoi(text) if _NUM_RE.fullmatch(text) else -1


_CONDOPS = {
    b"STREQ": tc.QCSTREQ, b"STRINC": tc.QCSTRINC, b"STRBW": tc.QCSTRBW,
    b"STREW": tc.QCSTREW, b"STRAND": tc.QCSTRAND, b"STROR": tc.QCSTROR,
    b"STROREQ": tc.QCSTROREQ, b"STRRX": tc.QCSTRRX, b"NUMEQ": tc.QCNUMEQ,
    b"NUMGT": tc.QCNUMGT, b"NUMGE": tc.QCNUMGE, b"NUMLT": tc.QCNUMLT,
    b"NUMLE": tc.QCNUMLE, b"NUMBT": tc.QCNUMBT, b"NUMOREQ": tc.QCNUMOREQ,
    b"FTSPH": tc.QCFTSPH, b"FTSAND": tc.QCFTSAND, b"FTSOR": tc.QCFTSOR,
    b"FTSEX": tc.QCFTSEX,
}
_ORDERS = {b"STRASC": tc.QOSTRASC, b"STRDESC": tc.QOSTRDESC,
           b"NUMASC": tc.QONUMASC, b"NUMDESC": tc.QONUMDESC}
_INDEXES = {b"LEX": tc.ITLEXICAL, b"LEXICAL": tc.ITLEXICAL, b"STR": tc.ITLEXICAL,
            b"DEC": tc.ITDECIMAL, b"DECIMAL": tc.ITDECIMAL, b"NUM": tc.ITDECIMAL,
            b"TOK": tc.ITTOKEN, b"TOKEN": tc.ITTOKEN, b"QGR": tc.ITQGRAM,
            b"QGRAM": tc.ITQGRAM, b"FTS": tc.ITQGRAM, b"OPT": tc.ITOPT,
            b"OPTIMIZE": tc.ITOPT, b"VOID": tc.ITVOID, b"NULL": tc.ITVOID}
_MSTYPES = {b"UNION": tc.MSUNION, b"OR": tc.MSUNION, b"ISECT": tc.MSISECT,
            b"INTERSECTION": tc.MSISECT, b"AND": tc.MSISECT, b"DIFF": tc.MSDIFF,
            b"DIFFERENCE": tc.MSDIFF, b"ANDNOT": tc.MSDIFF}


def _condop(text: bytes) -> int:
    flags = 0
    if text[:1] in (b"~", b"!"):
        flags |= tc.QCNEGATE
        text = text[1:]
    if text[:1] == b"+":
        flags |= tc.QCNOIDX
        text = text[1:]
    op = _named(text, _CONDOPS)
    return op | flags if op >= 0 else -1


def _indextype(text: bytes) -> int:
    keep = 0
    if text[:1] == b"+":
        keep = tc.ITKEEP
        text = text[1:]
    itype = _named(text, _INDEXES)
    return itype | keep if itype >= 0 else -1


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True     # a restarted stand-in takes the same port
    daemon_threads = True
    block_on_close = False

    def __init__(self, standin: TyrantStandIn, address: tuple[str, int]) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        standin: TyrantStandIn = self.server.standin  # type: ignore[attr-defined]
        standin._serve(self.request)


class TyrantStandIn:
    """A ``ttserver`` look-alike on 127.0.0.1 over the table database at ``path``.

    ``port=0`` picks a free port; pass a previous ``port`` to "restart" a
    server where clients expect it. ``db_type`` is what ``stat`` reports as
    the database type (to test refusing a non-table server), and a ``mute``
    server accepts connections and reads requests but never answers.
    """

    def __init__(self, path: str | os.PathLike[str], port: int = 0, *,
                 host: str = "127.0.0.1", db_type: str = "table", mute: bool = False) -> None:
        self.path = os.fspath(path)
        self.host = host
        self.requested_port = port
        self.db_type = db_type
        self.mute = mute
        self._hang_ups = 0
        self.port = 0
        self._db: tc.TableDB | None = None
        self._db_lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._client_threads: set[threading.Thread] = set()
        self._clients_lock = threading.Lock()
        self._iter: Iterator[bytes] | None = None
        self._started = time.time()
        self._commands: dict[int, Callable[[Read], bytes]] = {
            0x10: self._cmd_put, 0x20: self._cmd_out, 0x30: self._cmd_get,
            0x31: self._cmd_mget, 0x38: self._cmd_vsiz, 0x50: self._cmd_iterinit,
            0x51: self._cmd_iternext, 0x58: self._cmd_fwmkeys, 0x70: self._cmd_sync,
            0x72: self._cmd_vanish, 0x80: self._cmd_rnum, 0x81: self._cmd_size,
            0x88: self._cmd_stat, 0x90: self._cmd_misc,
        }

    # -- lifecycle ---------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TyrantStandIn:
        if not self.mute:
            db = tc.TableDB()
            db.open(self.path, tc.OWRITER | tc.OCREAT)
            self._db = db
        try:
            self._server = _Server(self, (self.host, self.requested_port))
        except BaseException:
            self._close_db()
            raise
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"tyrant-standin-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut every client off (they see EOF), close the file."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._clients_lock:
            clients = list(self._clients)
            threads = list(self._client_threads)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(5)
        self._close_db()

    def _close_db(self) -> None:
        with self._db_lock:
            db, self._db = self._db, None
            self._iter = None
            if db is not None:
                db.close()

    def hang_up(self, requests: int = 1) -> None:
        """Carry out the next ``requests`` requests, then close the client's
        connection instead of answering (a server that dies mid-request)."""
        with self._clients_lock:
            self._hang_ups += requests

    def __enter__(self) -> TyrantStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- connection loop ---------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.add(sock)
            self._client_threads.add(threading.current_thread())
        try:
            if self.mute:
                while sock.recv(65536):
                    pass
                return
            rfile = sock.makefile("rb")
            try:
                self._loop(sock, rfile.read)
            finally:
                rfile.close()
        except (OSError, _HangUp):
            pass
        finally:
            with self._clients_lock:
                self._clients.discard(sock)
                self._client_threads.discard(threading.current_thread())

    def _loop(self, sock: socket.socket, raw_read: Callable[[int], bytes]) -> None:
        def read(n: int) -> bytes:
            data = raw_read(n) if n else b""
            if len(data) != n:
                raise _HangUp("client went away mid-request")
            return data

        while True:
            head = raw_read(2)
            if len(head) < 2 or head[0] != 0xC8:
                return
            command = self._commands.get(head[1])
            if command is None:
                return
            response = command(read)
            with self._clients_lock:
                hang_up, self._hang_ups = self._hang_ups > 0, max(0, self._hang_ups - 1)
            if hang_up:
                return
            sock.sendall(response)

    # -- request field readers ---------------------------------------------

    @staticmethod
    def _length(read: Read) -> int:
        n = int(_U32.unpack(read(4))[0])
        if n > _MAX_LENGTH:
            raise _HangUp("implausible length")
        return n

    def _db_or_hangup(self) -> tc.TableDB:
        if self._db is None:
            raise _HangUp("server stopping")
        return self._db

    # -- plain commands ------------------------------------------------------

    def _cmd_put(self, read: Read) -> bytes:
        ksiz, vsiz = self._length(read), self._length(read)
        key, value = read(ksiz), read(vsiz)
        with self._db_lock:
            try:
                self._db_or_hangup().put(key, _split(value))
            except (tc.TokyoCabinetError, ValueError):
                return _FAIL
        return _OK

    def _cmd_out(self, read: Read) -> bytes:
        key = read(self._length(read))
        with self._db_lock:
            try:
                return _OK if self._db_or_hangup().out(key) else _FAIL
            except (tc.TokyoCabinetError, ValueError):
                return _FAIL

    def _get(self, key: bytes) -> dict[bytes, bytes] | None:
        try:
            return self._db_or_hangup().get(key)
        except (tc.TokyoCabinetError, ValueError):
            return None

    def _cmd_get(self, read: Read) -> bytes:
        key = read(self._length(read))
        with self._db_lock:
            cols = self._get(key)
        if cols is None:
            return _FAIL
        value = _join(cols)
        return _OK + _U32.pack(len(value)) + value

    def _cmd_mget(self, read: Read) -> bytes:
        keys = [read(self._length(read)) for _ in range(self._length(read))]
        found: list[bytes] = []
        with self._db_lock:
            for key in keys:
                cols = self._get(key)
                if cols is not None:
                    value = _join(cols)
                    found.append(_U32.pack(len(key)) + _U32.pack(len(value)) + key + value)
        return _OK + _U32.pack(len(found)) + b"".join(found)

    def _cmd_vsiz(self, read: Read) -> bytes:
        key = read(self._length(read))
        with self._db_lock:
            cols = self._get(key)
        if cols is None:
            return _FAIL
        return _OK + _U32.pack(_record_size(cols))

    def _iterinit(self) -> bool:
        try:
            self._iter = self._db_or_hangup().keys()
            return True
        except tc.TokyoCabinetError:
            self._iter = None
            return False

    def _iternext(self) -> bytes | None:
        if self._iter is None:
            return None
        try:
            return next(self._iter)
        except (StopIteration, tc.TokyoCabinetError):
            self._iter = None
            return None

    def _cmd_iterinit(self, read: Read) -> bytes:
        with self._db_lock:
            return _OK if self._iterinit() else _FAIL

    def _cmd_iternext(self, read: Read) -> bytes:
        with self._db_lock:
            key = self._iternext()
        if key is None:
            return _FAIL
        return _OK + _U32.pack(len(key)) + key

    def _cmd_fwmkeys(self, read: Read) -> bytes:
        psiz = self._length(read)
        limit = int(_I32.unpack(read(4))[0])
        prefix = read(psiz)
        keys: list[bytes] = []
        with self._db_lock:
            if limit != 0:
                for key in self._db_or_hangup().keys():
                    if key.startswith(prefix):
                        keys.append(key)
                        if 0 < limit <= len(keys):
                            break
        return _OK + _U32.pack(len(keys)) + b"".join(_U32.pack(len(k)) + k for k in keys)

    def _cmd_sync(self, read: Read) -> bytes:
        with self._db_lock:
            return _OK if self._sync() else _FAIL

    def _cmd_vanish(self, read: Read) -> bytes:
        with self._db_lock:
            return _OK if self._vanish() else _FAIL

    def _cmd_rnum(self, read: Read) -> bytes:
        with self._db_lock:
            return _OK + _U64.pack(self._db_or_hangup().rnum())

    def _cmd_size(self, read: Read) -> bytes:
        with self._db_lock:
            return _OK + _U64.pack(self._db_or_hangup().fsiz())

    def _cmd_stat(self, read: Read) -> bytes:
        with self._db_lock:
            db = self._db_or_hangup()
            rnum, size = db.rnum(), db.fsiz()
        lines = [
            ("version", "1.1.41"), ("libver", "319"), ("protver", "0.91"),
            ("os", "Linux"), ("time", f"{time.time():.6f}"), ("pid", str(os.getpid())),
            ("sid", "0"), ("type", self.db_type), ("path", self.path),
            ("rnum", str(rnum)), ("size", str(size)), ("bigend", "0"),
            ("ru_real", f"{time.time() - self._started:.6f}"),
        ]
        text = "".join(f"{name}\t{value}\n" for name, value in lines).encode()
        return _OK + _U32.pack(len(text)) + text

    def _sync(self) -> bool:
        try:
            self._db_or_hangup().sync()
            return True
        except tc.TokyoCabinetError:
            return False

    def _vanish(self) -> bool:
        try:
            self._db_or_hangup().vanish()
            self._iter = None
            return True
        except tc.TokyoCabinetError:
            return False

    # -- misc ------------------------------------------------------------------

    def _cmd_misc(self, read: Read) -> bytes:
        nsiz = self._length(read)
        read(4)   # options: RDBMONOULOG only matters to an update log, which we lack
        count = self._length(read)
        name = read(nsiz)
        args = [read(self._length(read)) for _ in range(count)]
        with self._db_lock:
            db = self._db_or_hangup()
            function = getattr(self, "_misc_" + name.decode("ascii", "replace"), None)
            try:
                result = function(db, args) if function is not None else None
            except (tc.TokyoCabinetError, ValueError):
                result = None
        if result is None:
            # a refusal still carries an (empty) element count
            return _FAIL + _U32.pack(0)
        return _OK + _U32.pack(len(result)) + b"".join(_U32.pack(len(e)) + e for e in result)

    # Each _misc_NAME(db, args) returns the answer's elements, or None for a
    # refusal. Argument handling follows tcadbmisc for table databases.

    @staticmethod
    def _columns_from(args: list[bytes]) -> dict[bytes, bytes]:
        return {args[i]: args[i + 1] for i in range(1, len(args) - 1, 2)}

    def _misc_put(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        if not args:
            return None
        db.put(args[0], self._columns_from(args))
        return []

    def _misc_putkeep(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        if not args:
            return None
        return [] if db.putkeep(args[0], self._columns_from(args)) else None

    def _misc_putcat(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        if not args:
            return None
        merged = db.get(args[0]) or {}
        for column, value in self._columns_from(args).items():
            merged.setdefault(column, value)   # existing columns win
        db.put(args[0], merged)
        return []

    def _misc_out(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        if not args:
            return None
        return [] if db.out(args[0]) else None

    def _misc_get(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        if not args:
            return None
        cols = db.get(args[0])
        if cols is None:
            return None
        return [part for item in cols.items() for part in item]

    def _misc_putlist(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        for i in range(0, len(args) - 1, 2):
            db.put(args[i], _split(args[i + 1]))
        return []

    def _misc_outlist(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        for pk in args:
            db.out(pk)    # False (no such record) is not an error here
        return []

    def _misc_getlist(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        out: list[bytes] = []
        for pk in args:
            cols = db.get(pk)
            if cols is not None:
                out += [pk, _join(cols)]
        return out

    def _misc_iterinit(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        if args:   # starting from a given key is not supported by the binding
            return None
        return [] if self._iterinit() else None

    def _misc_iternext(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        pk = self._iternext()
        if pk is None:
            return None
        cols = db.get(pk)
        return [pk] if cols is None else [pk, _join(cols)]

    def _misc_sync(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        return [] if self._sync() else None

    def _misc_vanish(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        return [] if self._vanish() else None

    def _misc_error(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        code = db.ecode()
        return [f"{code}: {db.errmsg(code)}".encode()]

    def _misc_genuid(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        return [b"%d" % db.genuid()]

    def _misc_setindex(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        ok = True
        for i in range(0, len(args) - 1, 2):
            itype = _indextype(args[i + 1])
            if itype < 0 or not db.setindex(args[i], itype):
                ok = False
        return [] if ok else None

    def _misc_search(self, db: tc.TableDB, args: list[bytes]) -> list[bytes] | None:
        queries = [db.query()]
        mstype = tc.MSUNION
        columns: list[bytes] | None = None
        to_out = to_count = to_hint = False
        try:
            for arg in args:
                tokens = arg.split(b"\0")
                cmd, n = tokens[0], len(tokens)
                query = queries[-1]
                if cmd in (b"addcond", b"cond") and n > 3:
                    op = _condop(tokens[2])
                    if op >= 0:
                        query.addcond(tokens[1], op, tokens[3])
                elif cmd in (b"setorder", b"order") and n > 2:
                    otype = _named(tokens[2], _ORDERS)
                    if otype >= 0:
                        query.setorder(tokens[1], otype)
                elif cmd in (b"setlimit", b"limit", b"setmax", b"max") and n > 1:
                    query.setlimit(_atoi(tokens[1]), _atoi(tokens[2]) if n > 2 else 0)
                elif cmd in (b"get", b"columns"):
                    columns = (columns or []) + tokens[1:]
                elif cmd == b"next":
                    queries.append(db.query())
                elif cmd == b"mstype" and n > 1:
                    mstype = _named(tokens[1], _MSTYPES)
                    if mstype < 0:
                        mstype = tc.MSUNION
                elif cmd in (b"out", b"remove"):
                    to_out = True
                elif cmd == b"count":
                    to_count = True
                elif cmd == b"hint":
                    to_hint = True
            if to_out:
                pks = queries[-1].search()
                result = self._records(db, pks, columns) if columns is not None else []
                for pk in pks:
                    db.out(pk)
            else:
                if len(queries) > 1:
                    pks = tc.metasearch(queries, mstype)
                else:
                    pks = queries[0].search()
                result = self._records(db, pks, columns) if columns is not None else pks
            if to_count:
                # the count of the last query object, as Tokyo Cabinet keeps it
                counted = pks if len(queries) == 1 else queries[-1].search()
                result = [b"%d" % len(counted)]
            if to_hint:
                # Tokyo Cabinet 1.4.x (tcadbmisc) appends the first query's
                # hint as one more element, marked by two NULs and [[HINT]]
                result.append(b"\0\0[[HINT]]\n" + queries[0].hint().encode("utf-8"))
            return result
        finally:
            for query in queries:
                query.close()

    _misc_metasearch = _misc_search

    @staticmethod
    def _records(db: tc.TableDB, pks: list[bytes], columns: list[bytes]) -> list[bytes]:
        """Search ``get``: the primary key travels as the column named ``""``,
        first; naming columns keeps just those, in the order asked."""
        out: list[bytes] = []
        for pk in pks:
            cols = db.get(pk)
            if cols is None:
                continue
            full = {b"": pk, **{k: v for k, v in cols.items() if k}}
            if columns:
                full = {c: full[c] for c in columns if c in full}
            out.append(_join(full))
        return out
