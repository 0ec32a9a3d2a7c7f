"""Talking to the server(s): one pipeline per node, errors mapped to doqu's.

Every command is sent with the hash slot it touches. On a single server
all commands go down one pipeline; on Redis Cluster they are grouped by the
primary that owns each slot (from redis-py's slot map) and each group goes
down its own pipeline, so a bulk write costs one round trip per node.

Own pipelines per node, rather than redis-py's cluster pipeline, because a
``WAIT`` must run on the very connection that made the writes it waits for.

Retries are deliberate and bounded:

* redirections (``MOVED``, ``ASK``, ``TRYAGAIN``, ``CLUSTERDOWN``,
  ``READONLY``) mean "not executed here": refresh the slot map, send again;
* a lost connection during a *read* is retried the same way;
* a lost connection during a *write* is not: the write may or may not have
  happened, so the caller gets :class:`doqu.ConnectionError` at once and
  the slot map is refreshed before the next command.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from doqu.errors import ConfigurationError, ConnectionError, StorageError

__all__ = ["import_redis", "Nodes", "ReplicationError", "MISSING"]

#: Placeholder for "no reply" in write outcomes.
MISSING: Any = object()
_ATTEMPTS = 5


class ReplicationError(ConnectionError):
    """A write reached the primary but not ``wait_replicas`` replicas in time.

    It is applied on the primary, so it may still be read, but a failover
    right now could lose it: the application must treat it as unacknowledged.
    """


def import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the test environment has it
        raise ConfigurationError(
            "backend 'redis' needs the package 'redis' (redis-py): pip install 'doqu[redis]'"
        ) from exc
    return redis


class Nodes:
    """Runs ``(slot, command)`` lists, pipelined per node."""

    def __init__(self, client: Any, cluster: bool, location: str) -> None:
        self.redis = import_redis()
        self.client = client
        self.cluster = cluster
        self.location = location
        self._stale = False
        exc = self.redis.exceptions
        self._lost = (exc.ConnectionError, exc.TimeoutError)
        self._redirects: tuple[type[BaseException], ...] = (
            exc.AskError, exc.TryAgainError, exc.ClusterDownError, exc.ReadOnlyError,
        )

    # -- errors --------------------------------------------------------------------
    def error(self, exc: BaseException, action: str) -> Exception:
        """The doqu error for a driver exception."""
        exc_mod = self.redis.exceptions
        if isinstance(exc, (StorageError, ConfigurationError)):
            return exc  # type: ignore[return-value]
        if isinstance(exc, exc_mod.AuthenticationError):
            return ConnectionError(f"redis: {action}: {self.location} refused the credentials: {exc}")
        if isinstance(exc, self._lost + self._redirects + (exc_mod.RedisClusterException,)):
            return ConnectionError(f"redis: {action}: cannot reach {self.location}: {exc}")
        return StorageError(f"redis: {action} failed on {self.location}: {exc}")

    def refresh(self) -> None:
        """Re-read the cluster's slot map (after a failover or a redirection)."""
        self._stale = False
        if self.cluster:
            try:
                self.client.nodes_manager.initialize()
            except Exception:  # every node unreachable: the next command reports it
                self._stale = True

    # -- running ---------------------------------------------------------------------
    def _groups(self, commands: Sequence[tuple[int, tuple[Any, ...]]],
                indices: Sequence[int]) -> list[tuple[Any, list[int]]]:
        if not self.cluster:
            return [(self.client, list(indices))]
        groups: dict[str, tuple[Any, list[int]]] = {}
        manager = self.client.nodes_manager
        for i in indices:
            node = manager.get_node_from_slot(commands[i][0])
            if node.name not in groups:
                groups[node.name] = (self.client.get_redis_connection(node), [])
            groups[node.name][1].append(i)
        return list(groups.values())

    def read(self, commands: Sequence[tuple[int, tuple[Any, ...]]], action: str = "read") -> list[Any]:
        """Replies in order; raises the first error as a doqu error."""
        replies, errors = self._run(commands, write=False, wait=None, action=action)
        for error in errors:
            if error is not None:
                raise error
        return replies

    def one(self, slot: int, *command: Any, action: str = "read") -> Any:
        return self.read([(slot, command)], action)[0]

    def write(self, commands: Sequence[tuple[int, tuple[Any, ...]]], wait: tuple[int, int] | None,
              action: str = "write") -> tuple[list[Any], list[Exception | None]]:
        """(replies, errors): a reply is MISSING if the command may not have run.

        A command can have both a reply and an error: it ran, but ``WAIT``
        did not see enough replicas acknowledge it.
        """
        return self._run(commands, write=True, wait=wait, action=action)

    def _run(self, commands: Sequence[tuple[int, tuple[Any, ...]]], write: bool,
             wait: tuple[int, int] | None, action: str) -> tuple[list[Any], list[Exception | None]]:
        replies: list[Any] = [MISSING] * len(commands)
        errors: list[Exception | None] = [None] * len(commands)
        pending = list(range(len(commands)))
        last: BaseException | None = None
        attempts = _ATTEMPTS if self.cluster else 2
        for attempt in range(attempts):
            if not pending:
                break
            if attempt:
                time.sleep(min(0.05 * 2 ** attempt, 0.5))
            if self._stale or attempt:
                self.refresh()
            try:
                groups = self._groups(commands, pending)
            except (self.redis.exceptions.SlotNotCoveredError, *self._redirects) as exc:
                last = exc
                continue
            retry: list[int] = []
            for client, indices in groups:
                retry.extend(self._run_group(client, commands, indices, write, wait, action,
                                             replies, errors))
            if retry:
                last = errors[retry[0]]
                for i in retry:
                    errors[i] = None
            pending = retry
        for i in pending:
            if isinstance(last, self._lost):
                errors[i] = ConnectionError(f"redis: {action}: cannot reach {self.location}: {last}")
            else:
                errors[i] = ConnectionError(
                    f"redis: {action}: {self.location} did not accept the command after "
                    f"{attempts} attempts (the cluster may be failing over): {last}")
        return replies, errors

    def _run_group(self, client: Any, commands: Sequence[tuple[int, tuple[Any, ...]]],
                   indices: list[int], write: bool, wait: tuple[int, int] | None, action: str,
                   replies: list[Any], errors: list[Exception | None]) -> list[int]:
        """Run one node's commands; returns the indices worth sending again."""
        pipe = client.pipeline(transaction=False)
        for i in indices:
            pipe.execute_command(*commands[i][1])
        if wait is not None:
            pipe.execute_command("WAIT", wait[0], wait[1])
        try:
            out = pipe.execute(raise_on_error=False)
        except self._lost as exc:
            if isinstance(exc, self.redis.exceptions.AuthenticationError):
                for i in indices:
                    errors[i] = self.error(exc, action)
                return []
            self._stale = True
            if write:  # it may have run: never send a write twice blindly
                for i in indices:
                    errors[i] = ConnectionError(
                        f"redis: {action}: lost the connection to {self.location} "
                        f"({_node_name(client)}); the write may or may not have been applied: {exc}")
                return []
            for i in indices:
                errors[i] = exc  # type: ignore[assignment]
            return list(indices)
        except self.redis.exceptions.RedisError as exc:
            for i in indices:
                errors[i] = self.error(exc, action)
            return []
        acked = out.pop() if wait is not None else None
        retry = []
        ran = []
        for i, reply in zip(indices, out):
            if isinstance(reply, self._redirects):
                self._stale = True
                errors[i] = reply
                retry.append(i)
            elif isinstance(reply, Exception):
                errors[i] = self.error(reply, action)
            else:
                replies[i] = reply
                ran.append(i)
        if wait is not None and ran:
            if isinstance(acked, Exception) or acked < wait[0]:
                seen = acked if not isinstance(acked, Exception) else f"none ({acked})"
                for i in ran:
                    errors[i] = ReplicationError(
                        f"redis: {action}: {_node_name(client)} got the write, but only {seen} of "
                        f"{wait[0]} replicas acknowledged it within {wait[1]} ms (wait_replicas); "
                        f"it is not durable")
        return retry


def _node_name(client: Any) -> str:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
