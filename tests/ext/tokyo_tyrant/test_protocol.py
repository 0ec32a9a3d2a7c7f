"""The Tokyo Tyrant client against a recording of a real ttserver.

For every recorded vector the intent is written out below by hand; the
encoder given that intent must produce the recorded request byte for byte,
and the decoder must turn the recorded response into the value written next
to it. The socket tests at the end use tiny scripted servers (no Tokyo
Cabinet needed) to check partial reads, timeouts and failures.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from doqu import errors
from doqu.ext.tokyo_tyrant import protocol as P
from doqu.ext.tokyo_tyrant.protocol import TyrantQuery as Q

VECTORS_PATH = Path(__file__).resolve().parents[2] / "data" / "tyrant_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())["vectors"]


def pks(text: str) -> list[bytes]:
    return [p.encode() for p in text.split()]


def rec(**cols: str) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in cols.items()}


ALICE = rec(name="alice", age="31", city="Oslo", bio="likes tea and jazz")
ALICE_TAGGED = {**ALICE, b"tag": b"vip"}
BOB = rec(name="bob", age="17", city="Rome", bio="plays jazz")
CAROL = rec(name="carol", age="45", city="Oslo", bio="drinks tea")
DAVE = rec(name="dave", age="22", city="Lima", bio="reads books")
EVE = rec(name="Eve", age="38", city="Kyiv", bio="tea tea tea")
ZOE = rec(name="Zoë", age="7.5", city="Zürich")
ZED = rec(name="zed", age="77")


class Intent(NamedTuple):
    note: str
    encode: Callable[[], bytes]
    decode: Callable[[bytes], Any]
    expected: Any


def cond(column: str, op: int, expr: str) -> Q:
    return Q().addcond(column.encode(), op, expr.encode())


def search(note: str, query: Q, expected: str) -> Intent:
    return Intent(note, lambda: P.encode_search(query), P.decode_search, pks(expected))


NOT = P.QCNEGATE

INTENTS: list[Intent] = [
    Intent("misc vanish", P.encode_tbl_vanish, P.decode_misc_ok, True),
    Intent("misc setindex age decimal",
           lambda: P.encode_setindex(b"age", P.ITDECIMAL), P.decode_misc_ok, True),
    Intent("misc setindex name lexical",
           lambda: P.encode_setindex(b"name", P.ITLEXICAL), P.decode_misc_ok, True),
    Intent("misc setindex bio token",
           lambda: P.encode_setindex(b"bio", P.ITTOKEN), P.decode_misc_ok, True),
    Intent("misc setindex name lexical|keep (exists -> fails)",
           lambda: P.encode_setindex(b"name", P.ITLEXICAL | P.ITKEEP), P.decode_misc_ok, False),
    Intent("misc genuid", P.encode_genuid, P.decode_genuid, 1),
    Intent("misc put alice", lambda: P.encode_tbl_put(b"1", ALICE), P.decode_misc_ok, True),
    Intent("misc genuid", P.encode_genuid, P.decode_genuid, 2),
    Intent("misc put bob", lambda: P.encode_tbl_put(b"2", BOB), P.decode_misc_ok, True),
    Intent("misc genuid", P.encode_genuid, P.decode_genuid, 3),
    Intent("misc put carol", lambda: P.encode_tbl_put(b"3", CAROL), P.decode_misc_ok, True),
    Intent("misc genuid", P.encode_genuid, P.decode_genuid, 4),
    Intent("misc put dave", lambda: P.encode_tbl_put(b"4", DAVE), P.decode_misc_ok, True),
    Intent("misc genuid", P.encode_genuid, P.decode_genuid, 5),
    Intent("misc put Eve", lambda: P.encode_tbl_put(b"5", EVE), P.decode_misc_ok, True),
    Intent("misc put with explicit key 'k7' and unicode",
           lambda: P.encode_tbl_put("k7", {"name": "Zoë", "age": "7.5", "city": "Zürich"}),
           P.decode_misc_ok, True),
    Intent("misc putkeep existing '1' (fails)",
           lambda: P.encode_tbl_putkeep(b"1", rec(name="x")), P.decode_misc_ok, False),
    Intent("misc putkeep new 'k8'",
           lambda: P.encode_tbl_putkeep(b"k8", rec(name="hal", age="9")), P.decode_misc_ok, True),
    Intent("misc putcat '1' adds only new column",
           lambda: P.encode_tbl_putcat(b"1", rec(name="IGNORED", tag="vip")),
           P.decode_misc_ok, True),
    Intent("misc get '1'", lambda: P.encode_tbl_get(b"1"), P.decode_tbl_get, ALICE_TAGGED),
    Intent("misc get missing", lambda: P.encode_tbl_get(b"nope"), P.decode_tbl_get, None),
    Intent("misc getlist 1 3 zz", lambda: P.encode_tbl_getlist(pks("1 3 zz")),
           P.decode_tbl_getlist, {b"1": ALICE_TAGGED, b"3": CAROL}),
    search("search name STREQ 'bob'", cond("name", P.QCSTREQ, "bob"), "2"),
    search("search NOT name STREQ 'bob'", cond("name", P.QCSTREQ | NOT, "bob"), "1 3 4 5 k7 k8"),
    search("search name STRINC 'ar'", cond("name", P.QCSTRINC, "ar"), "3"),
    search("search NOT name STRINC 'ar'", cond("name", P.QCSTRINC | NOT, "ar"), "1 2 4 5 k7 k8"),
    search("search name STRBW 'a'", cond("name", P.QCSTRBW, "a"), "1"),
    search("search NOT name STRBW 'a'", cond("name", P.QCSTRBW | NOT, "a"), "2 3 4 5 k7 k8"),
    search("search name STREW 'e'", cond("name", P.QCSTREW, "e"), "5 1 4"),
    search("search NOT name STREW 'e'", cond("name", P.QCSTREW | NOT, "e"), "2 3 k7 k8"),
    search("search bio STRAND 'tea,jazz'", cond("bio", P.QCSTRAND, "tea,jazz"), "1"),
    search("search NOT bio STRAND 'tea,jazz'", cond("bio", P.QCSTRAND | NOT, "tea,jazz"),
           "2 3 4 5 k7 k8"),
    search("search bio STROR 'books,jazz'", cond("bio", P.QCSTROR, "books,jazz"), "4 1 2"),
    search("search NOT bio STROR 'books,jazz'", cond("bio", P.QCSTROR | NOT, "books,jazz"),
           "3 5 k7 k8"),
    search("search city STROREQ 'Oslo,Lima'", cond("city", P.QCSTROREQ, "Oslo,Lima"), "1 3 4"),
    search("search NOT city STROREQ 'Oslo,Lima'",
           cond("city", P.QCSTROREQ | NOT, "Oslo,Lima"), "2 5 k7 k8"),
    search("search name STRRX '^[a-c]'", cond("name", P.QCSTRRX, "^[a-c]"), "1 2 3"),
    search("search NOT name STRRX '^[a-c]'", cond("name", P.QCSTRRX | NOT, "^[a-c]"),
           "4 5 k7 k8"),
    search("search age NUMEQ '31'", cond("age", P.QCNUMEQ, "31"), "1"),
    search("search NOT age NUMEQ '31'", cond("age", P.QCNUMEQ | NOT, "31"), "2 3 4 5 k7 k8"),
    search("search age NUMGT '30'", cond("age", P.QCNUMGT, "30"), "1 5 3"),
    search("search NOT age NUMGT '30'", cond("age", P.QCNUMGT | NOT, "30"), "2 4 k7 k8"),
    search("search age NUMGE '31'", cond("age", P.QCNUMGE, "31"), "1 5 3"),
    search("search NOT age NUMGE '31'", cond("age", P.QCNUMGE | NOT, "31"), "2 4 k7 k8"),
    search("search age NUMLT '22'", cond("age", P.QCNUMLT, "22"), "2 k8 k7"),
    search("search NOT age NUMLT '22'", cond("age", P.QCNUMLT | NOT, "22"), "1 3 4 5"),
    search("search age NUMLE '22'", cond("age", P.QCNUMLE, "22"), "4 2 k8 k7"),
    search("search NOT age NUMLE '22'", cond("age", P.QCNUMLE | NOT, "22"), "1 3 5"),
    search("search age NUMBT '20,40'", cond("age", P.QCNUMBT, "20,40"), "4 1 5"),
    search("search NOT age NUMBT '20,40'", cond("age", P.QCNUMBT | NOT, "20,40"), "2 3 k7 k8"),
    search("search age NUMOREQ '17,45'", cond("age", P.QCNUMOREQ, "17,45"), "2 3"),
    search("search NOT age NUMOREQ '17,45'", cond("age", P.QCNUMOREQ | NOT, "17,45"),
           "1 4 5 k7 k8"),
    search("search bio FTSPH 'tea'", cond("bio", P.QCFTSPH, "tea"), "1 3 5"),
    search("search NOT bio FTSPH 'tea'", cond("bio", P.QCFTSPH | NOT, "tea"), "2 4 k7 k8"),
    search("search bio FTSAND 'tea jazz'", cond("bio", P.QCFTSAND, "tea jazz"), "1"),
    search("search NOT bio FTSAND 'tea jazz'", cond("bio", P.QCFTSAND | NOT, "tea jazz"),
           "2 3 4 5 k7 k8"),
    search("search bio FTSOR 'books jazz'", cond("bio", P.QCFTSOR, "books jazz"), "1 2 4"),
    search("search NOT bio FTSOR 'books jazz'", cond("bio", P.QCFTSOR | NOT, "books jazz"),
           "3 5 k7 k8"),
    search("search bio FTSEX 'tea && !jazz'", cond("bio", P.QCFTSEX, "tea && !jazz"), ""),
    search("search NOT bio FTSEX 'tea && !jazz'", cond("bio", P.QCFTSEX | NOT, "tea && !jazz"),
           "1 2 3 4 5 k7 k8"),
    search("search age NUMGT 20 NOIDX", cond("age", P.QCNUMGT | P.QCNOIDX, "20"), "1 3 4 5"),
    search("search all order by age STRASC", Q().setorder(b"age", P.QOSTRASC),
           "2 4 1 5 3 k7 k8"),
    search("search all order by name STRASC", Q().setorder(b"name", P.QOSTRASC),
           "5 k7 1 2 3 4 k8"),
    search("search all order by age STRDESC", Q().setorder(b"age", P.QOSTRDESC),
           "k8 k7 3 5 1 4 2"),
    search("search all order by name STRDESC", Q().setorder(b"name", P.QOSTRDESC),
           "k8 4 3 2 1 k7 5"),
    search("search all order by age NUMASC", Q().setorder(b"age", P.QONUMASC),
           "k7 k8 2 4 1 5 3"),
    search("search all order by name NUMASC", Q().setorder(b"name", P.QONUMASC),
           "1 2 3 4 5 k7 k8"),
    search("search all order by age NUMDESC", Q().setorder(b"age", P.QONUMDESC),
           "3 5 1 4 2 k8 k7"),
    search("search all order by name NUMDESC", Q().setorder(b"name", P.QONUMDESC),
           "1 2 3 4 5 k7 k8"),
    search("search city=Oslo order age NUMASC limit 1 skip 1",
           cond("city", P.QCSTREQ, "Oslo").setorder(b"age", P.QONUMASC).setlimit(1, 1), "3"),
    Intent("search age>20 limit 2 skip 0 + get",
           lambda: P.encode_search(cond("age", P.QCNUMGT, "20").setorder(b"age", P.QONUMASC)
                                   .setlimit(2, 0), get=()),
           P.decode_search_get,
           [{b"": b"4", **DAVE}, {b"": b"1", **ALICE_TAGGED}]),
    Intent("search age>20 + get name,age",
           lambda: P.encode_search(cond("age", P.QCNUMGT, "20").setorder(b"age", P.QONUMASC),
                                   get=[b"name", b"age"]),
           P.decode_search_get,
           [rec(name="dave", age="22"), rec(name="alice", age="31"),
            rec(name="Eve", age="38"), rec(name="carol", age="45")]),
    Intent("search age>20 + count",
           lambda: P.encode_search(cond("age", P.QCNUMGT, "20"), count=True),
           P.decode_search_count, 4),
    search("search two conds (AND) city=Oslo age<40",
           cond("city", P.QCSTREQ, "Oslo").addcond(b"age", P.QCNUMLT, b"40"), "1"),
    search("search missing column tag STREQ vip", cond("tag", P.QCSTREQ, "vip"), "1"),
    search("search NOT missing column tag STREQ vip", cond("tag", P.QCSTREQ | NOT, "vip"),
           "2 3 4 5 k7 k8"),
    search("search by primary key (empty column name) STRBW k", cond("", P.QCSTRBW, "k"),
           "k7 k8"),
    Intent("metasearch union name=bob | age>40",
           lambda: P.encode_metasearch([cond("name", P.QCSTREQ, "bob"),
                                        cond("age", P.QCNUMGT, "40")], P.MSUNION),
           P.decode_search, pks("2 3")),
    Intent("metasearch intersection city=Oslo & age>40",
           lambda: P.encode_metasearch([cond("city", P.QCSTREQ, "Oslo"),
                                        cond("age", P.QCNUMGT, "40")], P.MSISECT),
           P.decode_search, pks("3")),
    Intent("metasearch difference city=Oslo - age>40",
           lambda: P.encode_metasearch([cond("city", P.QCSTREQ, "Oslo"),
                                        cond("age", P.QCNUMGT, "40")], P.MSDIFF),
           P.decode_search, pks("1")),
    Intent("misc iterinit", P.encode_tbl_iterinit, P.decode_misc_ok, True),
    Intent("misc iternext", P.encode_tbl_iternext, P.decode_tbl_iternext, (b"1", ALICE_TAGGED)),
    Intent("misc iternext", P.encode_tbl_iternext, P.decode_tbl_iternext, (b"2", BOB)),
    Intent("plain put p1 (NUL-separated columns)",
           lambda: P.encode_put(b"p1", P.join_columns(ZED)), P.decode_status, True),
    Intent("plain get p1", lambda: P.encode_get(b"p1"), P.decode_value, b"name\0zed\0age\x0077"),
    Intent("plain get missing", lambda: P.encode_get(b"miss"), P.decode_value, None),
    # vsiz of a table record is the size of Tokyo Cabinet's internal column
    # map (length-prefixed names and values), not of the NUL-joined form (15)
    Intent("plain vsiz p1", lambda: P.encode_vsiz(b"p1"), P.decode_vsiz, 16),
    Intent("mget 1 p1 zz", lambda: P.encode_mget(pks("1 p1 zz")), P.decode_mget,
           {b"1": P.join_columns(ALICE_TAGGED), b"p1": P.join_columns(ZED)}),
    Intent("fwmkeys 'k' max -1", lambda: P.encode_fwmkeys(b"k", -1), P.decode_keys, pks("k7 k8")),
    Intent("plain iterinit", P.encode_iterinit, P.decode_status, True),
    Intent("plain iternext", P.encode_iternext, P.decode_value, b"1"),
    Intent("rnum", P.encode_rnum, P.decode_u64, 8),
    Intent("size", P.encode_size, P.decode_u64, 654336),
    Intent("search age>40 + out",
           lambda: P.encode_search(cond("age", P.QCNUMGT, "40"), out=True),
           P.decode_misc_ok, True),
    Intent("misc out '2'", lambda: P.encode_tbl_out(b"2"), P.decode_misc_ok, True),
    Intent("misc out '2' again (missing)", lambda: P.encode_tbl_out(b"2"), P.decode_misc_ok, False),
    Intent("misc error", P.encode_error, P.decode_error, "22: no record found"),
    Intent("plain out p1", lambda: P.encode_out(b"p1"), P.decode_status, False),
    Intent("plain out p1 again (missing)", lambda: P.encode_out(b"p1"), P.decode_status, False),
    Intent("misc putlist two records",
           lambda: P.encode_tbl_putlist({b"L1": rec(name="lin", age="50"),
                                         b"L2": rec(name="lou", age="51")}),
           P.decode_misc, []),
    Intent("misc outlist L2 and missing", lambda: P.encode_tbl_outlist(pks("L2 nope")),
           P.decode_misc, []),
    Intent("misc sync", P.encode_tbl_sync, P.decode_misc_ok, True),
    Intent("misc bogus function", lambda: P.encode_misc(b"bogus"), P.decode_misc_raw, (1, [])),
    Intent("rnum", P.encode_rnum, P.decode_u64, 6),
    Intent("misc vanish", P.encode_tbl_vanish, P.decode_misc_ok, True),
    Intent("rnum after vanish", P.encode_rnum, P.decode_u64, 0),
    Intent("misc genuid after vanish", P.encode_genuid, P.decode_genuid, 1),
]


def test_every_vector_has_an_intent() -> None:
    assert len(VECTORS) == len(INTENTS) == 107
    assert [v["note"] for v in VECTORS] == [i.note for i in INTENTS]


@pytest.mark.parametrize("index", range(len(INTENTS)))
def test_encoder_produces_recorded_request(index: int) -> None:
    vector, intent = VECTORS[index], INTENTS[index]
    assert intent.encode().hex() == vector["request"], vector["note"]


@pytest.mark.parametrize("index", range(len(INTENTS)))
def test_decoder_reads_recorded_response(index: int) -> None:
    vector, intent = VECTORS[index], INTENTS[index]
    assert intent.decode(bytes.fromhex(vector["response"])) == intent.expected, vector["note"]


def _response(note: str) -> bytes:
    return bytes.fromhex(next(v["response"] for v in VECTORS if v["note"] == note))


def _request(note: str) -> bytes:
    return bytes.fromhex(next(v["request"] for v in VECTORS if v["note"] == note))


# -- decoder edge cases -------------------------------------------------------

def test_misc_failure_carries_a_count_and_raises() -> None:
    failed = _response("misc bogus function")
    assert failed == b"\x01\x00\x00\x00\x00"
    with pytest.raises(P.TyrantError, match="bogus"):
        P.decode_misc(failed, "bogus")
    with pytest.raises(P.TyrantError):
        P.decode_search(failed)
    with pytest.raises(P.TyrantError):
        P.decode_genuid(failed)
    assert issubclass(P.TyrantError, errors.StorageError)


def test_plain_failures_are_a_lone_status_byte() -> None:
    assert _response("plain get missing") == b"\x01"
    assert P.decode_value(b"\x01") is None
    assert P.decode_vsiz(b"\x01") is None
    assert P.decode_status(b"\x01") is False
    # a misc-style count after a plain failure is garbage, not ignored
    with pytest.raises(P.TyrantProtocolError):
        P.decode_value(b"\x01\x00\x00\x00\x00")


@pytest.mark.parametrize("note", ["misc get '1'", "mget 1 p1 zz", "rnum",
                                  "search age>20 + get name,age", "plain get p1"])
def test_truncated_or_padded_responses_are_protocol_errors(note: str) -> None:
    vector = next(v for v in VECTORS if v["note"] == note)
    intent = INTENTS[VECTORS.index(vector)]
    data = bytes.fromhex(vector["response"])
    with pytest.raises(P.TyrantProtocolError, match="truncated"):
        intent.decode(data[:-1])
    with pytest.raises(P.TyrantProtocolError, match="unexpected"):
        intent.decode(data + b"\x00")
    assert issubclass(P.TyrantProtocolError, errors.ConnectionError)


def test_decode_stat_and_table_check() -> None:
    text = b"version\t1.1.41\ntype\ttable\nrnum\t3\n"
    info = P.decode_stat(b"\x00" + len(text).to_bytes(4, "big") + text)
    assert info == {"version": "1.1.41", "type": "table", "rnum": "3"}
    assert P.database_type(info) == "table"
    assert P.database_type({"type": "hash"}) == "hash"
    assert P.database_type({}) == "unknown"


def test_columns_round_trip_and_refuse_nul() -> None:
    assert P.split_columns(P.join_columns(ALICE)) == ALICE
    assert P.split_columns(b"") == {}
    assert P.split_columns(b"a\0b\0dangling") == {b"a": b"b"}
    with pytest.raises(errors.ValidationError, match="NUL"):
        P.join_columns({b"a": b"x\0y"})
    with pytest.raises(errors.ValidationError, match="NUL"):
        Q().addcond(b"a", P.QCSTREQ, b"x\0y")


def test_query_elements_and_opts() -> None:
    query = Q().addcond(b"age", P.QCNUMGT | P.QCNEGATE, b"3").setorder(b"name", P.QOSTRDESC)
    query.setlimit(10, 5)
    assert query.elements() == [b"addcond\0age\x0016777225\x003", b"setorder\0name\x001",
                                b"setlimit\x0010\x005"]
    opts = slice(6, 10)   # magic(2) + name length(4), then the options word
    assert P.encode_search(query)[opts] == b"\0\0\0\1"            # read-only
    assert P.encode_search(query, out=True)[opts] == b"\0\0\0\0"  # must be logged
    with pytest.raises(errors.QueryError):
        P.encode_metasearch([])


def test_fwmkeys_sends_max_signed() -> None:
    assert P.encode_fwmkeys(b"k") == _request("fwmkeys 'k' max -1")
    assert P.encode_fwmkeys(b"k", 3)[6:10] == b"\0\0\0\3"


def test_connection_rejects_bad_settings() -> None:
    with pytest.raises(errors.ConfigurationError, match="port"):
        P.TyrantConnection("127.0.0.1", 0)
    with pytest.raises(errors.ConfigurationError, match="timeout"):
        P.TyrantConnection("127.0.0.1", 1978, timeout=0)
    with pytest.raises(errors.ConfigurationError, match="pool size"):
        P.TyrantPool("127.0.0.1", 1978, size=0)


# -- socket behaviour against scripted servers ---------------------------------

def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class ScriptedServer:
    """Accepts connections on 127.0.0.1 and runs ``script(conn)`` for each one."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:   # timeout: look at the stop flag again
                continue
            conn.settimeout(5)
            self.connections.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.script(conn)
        except (OSError, EOFError):
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def start(script: Callable[[socket.socket], None]) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_answer_arriving_byte_by_byte_is_reassembled(scripted) -> None:
    request, response = _request("misc get '1'"), _response("misc get '1'")

    def trickle(conn: socket.socket) -> None:
        assert _recv_exactly(conn, len(request)) == request
        for i in range(len(response)):
            conn.sendall(response[i:i + 1])
            time.sleep(0.001)   # separate segments, so the client sees partial reads
        _recv_exactly(conn, 1)  # hold the connection until the client closes

    server = scripted(trickle)
    with P.TyrantConnection("127.0.0.1", server.port, timeout=5) as conn:
        assert conn.tbl_get(b"1") == ALICE_TAGGED


def test_answer_cut_short_raises_connection_error_naming_address(scripted) -> None:
    response = _response("misc get '1'")

    def cut(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(response[:7])
        conn.shutdown(socket.SHUT_RDWR)

    server = scripted(cut)
    conn = P.TyrantConnection("127.0.0.1", server.port, timeout=5)
    with pytest.raises(errors.ConnectionError, match=f"127.0.0.1:{server.port}"):
        conn.tbl_get(b"1")
    assert not conn.is_open


def test_silent_server_raises_after_timeout_instead_of_hanging(scripted) -> None:
    def silent(conn: socket.socket) -> None:
        while conn.recv(65536):
            pass

    server = scripted(silent)
    conn = P.TyrantConnection("127.0.0.1", server.port, timeout=0.3)
    with pytest.raises(errors.ConnectionError, match=f"127.0.0.1:{server.port}.*0.3s"):
        conn.rnum()
    assert not conn.is_open


def test_refused_connection_names_address() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()   # nothing listens there now
    with pytest.raises(errors.ConnectionError, match=f"127.0.0.1:{port}"):
        P.TyrantConnection("127.0.0.1", port, timeout=2).connect()


def test_misc_refusal_keeps_connection_usable(scripted) -> None:
    def refuse_then_count(conn: socket.socket) -> None:
        bogus = _request("misc bogus function")
        assert _recv_exactly(conn, len(bogus)) == bogus
        conn.sendall(_response("misc bogus function"))
        assert _recv_exactly(conn, 2) == P.encode_rnum()
        conn.sendall(_response("rnum"))
        _recv_exactly(conn, 1)

    server = scripted(refuse_then_count)
    with P.TyrantConnection("127.0.0.1", server.port, timeout=5) as conn:
        with pytest.raises(P.TyrantError, match=f"127.0.0.1:{server.port}.*bogus"):
            conn.misc(b"bogus")
        assert conn.is_open
        assert conn.rnum() == 8


def test_pool_discards_a_failed_connection(scripted) -> None:
    count = 0

    def first_dies(conn: socket.socket) -> None:
        nonlocal count
        count += 1
        mine = count
        _recv_exactly(conn, 2)
        if mine == 1:
            conn.shutdown(socket.SHUT_RDWR)   # dies mid-request
            return
        conn.sendall(_response("rnum"))
        _recv_exactly(conn, 1)

    server = scripted(first_dies)
    with P.TyrantPool("127.0.0.1", server.port, timeout=5, size=1) as pool:
        with pytest.raises(errors.ConnectionError):
            with pool.connection() as conn:
                conn.rnum()
        assert not conn.is_open and not pool._idle   # thrown away, not put back
        with pool.connection() as conn:
            assert conn.rnum() == 8
    assert count == 2
