"""PyMySQL connections for one storage: a small pool, streamed results, error mapping.

Why a pool: a PyMySQL connection must not be used by two threads at once,
and one thread may need two connections at once (iterating a streamed query
while saving documents in the loop). Every statement outside a transaction
borrows an idle connection and returns it; a transaction pins one connection
to its thread until it ends; a streamed result keeps its connection until it
is read to the end. At most ``size`` idle connections are kept; more are
opened while more are busy, and closed when they come back.

A connection that the server dropped while it sat idle (``KILL``, a restart,
``wait_timeout``) is noticed when it is borrowed, without a round trip, by
peeking at its socket: an idle connection has nothing to read unless the
server closed it.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["CONNECTION_ERRNOS", "Connection", "Pool", "Stream"]

#: Server and client error numbers that mean the connection is gone.
CONNECTION_ERRNOS = frozenset({
    1053,  # server shutdown in progress
    1927,  # connection was killed
    2003,  # can't connect
    2006,  # server has gone away
    2013,  # lost connection during query
    2014,  # commands out of sync (the protocol state is unknown)
    2055,  # lost connection (system error)
    4031,  # disconnected by the server because of inactivity
})
#: Rows read per step from a streamed result.
BATCH = 500
#: Rows an abandoned stream may still read to keep its connection; beyond, the connection is closed.
DRAIN_LIMIT = 2000


class Connection:
    """One PyMySQL connection and the streamed result it may still be delivering."""

    __slots__ = ("broken", "generation", "raw", "stream")

    def __init__(self, raw: Any, generation: int) -> None:
        self.raw = raw
        self.stream: Stream | None = None
        self.generation = generation
        self.broken = False

    def settle(self) -> None:
        """Make the connection ready for a new statement: buffer the rest of an open stream."""
        if self.stream is not None:
            self.stream.buffer_rest()

    def alive(self) -> bool:
        """False if the server has closed this idle connection (checked without a round trip)."""
        sock = getattr(self.raw, "_sock", None)
        if sock is None:
            return False
        flags = getattr(socket, "MSG_DONTWAIT", 0)
        if not flags:
            return True  # no non-blocking peek on this platform: find out on first use
        try:
            sock.recv(1, socket.MSG_PEEK | flags)
        except (BlockingIOError, InterruptedError):
            return True  # nothing to read: the normal state of an idle connection
        except OSError:
            return False
        return False  # EOF or an unsolicited error packet: the server hung up

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # already broken; closing is best effort
            pass


class Stream:
    """Rows of one unbuffered result, read in batches; buffered in memory if the connection is needed."""

    def __init__(self, connection: Connection, cursor: Any) -> None:
        self.connection = connection
        self.cursor = cursor
        self.buffer: list[Sequence[Any]] | None = None
        self.done = False

    def fetch(self) -> list[Sequence[Any]]:
        if self.buffer is not None:
            rows, self.buffer = self.buffer, []
            return rows
        if self.done:
            return []
        rows = list(self.cursor.fetchmany(BATCH))
        if not rows:
            self._finish()
        return rows

    def buffer_rest(self) -> None:
        """Read every remaining row now, so the connection can run another statement."""
        if self.buffer is None and not self.done:
            self.buffer = list(self.cursor.fetchall())
            self._finish()

    def abandon(self, keep: bool = False) -> None:
        """The reader stopped early: drain a little (everything if ``keep``), or give the connection up.

        ``keep`` is for a transaction's connection, which must survive.
        """
        if self.done:
            return
        try:
            steps = 0
            while keep or steps < DRAIN_LIMIT // BATCH:
                if not self.cursor.fetchmany(BATCH):
                    self._finish()
                    return
                steps += 1
        except Exception:  # a connection that fails while draining is given up below
            pass
        # give the connection up; PyMySQL's result would try to read the rest when collected
        result = getattr(self.cursor, "_result", None)
        if result is not None and getattr(result, "unbuffered_active", False):
            result.unbuffered_active = False
        self.connection.broken = True
        self.done = True
        if self.connection.stream is self:
            self.connection.stream = None

    def _finish(self) -> None:
        self.done = True
        try:
            self.cursor.close()
        finally:
            if self.connection.stream is self:
                self.connection.stream = None


class Pool:
    """Idle connections of one storage, opened on demand by ``factory``."""

    def __init__(self, factory: Callable[[], Any], size: int) -> None:
        self._factory = factory
        self._size = size
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self.generation = 0
        self.pid = os.getpid()

    def forked(self) -> bool:
        """In a child process forked since: forget (never use, never close) the parent's connections.

        Closing them would send the parent's server sessions a QUIT; using them
        would interleave two processes on one socket.
        """
        if os.getpid() == self.pid:
            return False
        with self._lock:
            self._idle = []
            self.generation += 1
            self.pid = os.getpid()
        return True

    def acquire(self) -> Connection:
        self.forked()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
                generation = self.generation
            if conn is None:
                return Connection(self._factory(), generation)
            if conn.alive():
                return conn
            conn.close()

    def release(self, conn: Connection) -> None:
        if conn.stream is not None:
            conn.stream.abandon()
        with self._lock:
            keep = (not conn.broken and conn.generation == self.generation
                    and len(self._idle) < self._size)
            if keep:
                self._idle.append(conn)
            inherited = os.getpid() != self.pid
        if inherited:
            return  # a connection of the parent process: leave its session alone
        if not keep:
            conn.close()

    def add(self, raw: Any) -> None:
        """Keep a freshly opened connection for later."""
        self.release(Connection(raw, self.generation))

    def close_all(self) -> None:
        """Close the idle connections; busy ones are closed when they come back."""
        with self._lock:
            idle, self._idle = self._idle, []
            self.generation += 1
        for conn in idle:
            conn.close()

    def __iter__(self) -> Iterator[Connection]:
        with self._lock:
            return iter(list(self._idle))
