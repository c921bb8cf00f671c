"""A throwaway Redis Sentinel deployment for tests: a primary, its replicas and three
sentinels, each a `RedisServer` on a free loopback port.

>>> with SentinelSet() as deployment:
...     queue = JobQueue("q", redis=deployment.url)
...     deployment.kill_primary()  # SIGKILL, as a crash; the sentinels fail over

Failure detection is fast (``down-after-milliseconds`` 1000) so that a failover takes a
few seconds. Readiness is polled, never slept for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from .testing import HOST, RedisServer, StartStop, redis_command, wait_until
from .testing_tls import TlsFiles

__all__ = ["SentinelSet"]

SERVICE = "mymaster"
READY_TIMEOUT_S = 30.0


def _info_field(port: int, section: str, name: str, password: str | None) -> str | None:
    reply = redis_command(port, "INFO", section, password=password)
    if not isinstance(reply, bytes):
        return None
    for line in reply.decode().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


def _role(port: int, password: str | None) -> str | None:
    reply = redis_command(port, "ROLE", password=password)
    return reply[0].decode() if isinstance(reply, list) and isinstance(reply[0], bytes) else None


def _wait(what: str, ready: Callable[[], bool], timeout: float = READY_TIMEOUT_S) -> None:
    wait_until(f"sentinel deployment: {what}", ready, timeout)


class SentinelSet(StartStop):
    """One primary, ``replicas`` replicas and ``sentinels`` sentinels (quorum 2)."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        service: str = SERVICE,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        replication_link: Callable[[int], int] | None = None,
        password: str | None = None,
        sentinel_password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """``replication_link(primary_port)`` returns the port replicas connect to instead
        of the primary's (a proxy that delays the stream, say). The sentinels put such a
        replica back on the primary after ``failover_timeout_ms``: make that long.
        ``password`` protects the Redis servers, ``sentinel_password`` the sentinels.
        With ``tls`` every process also listens on a TLS port: replicas and sentinels use
        those, and so do clients of ``tls_url``; tools keep the plain ports."""
        self.service = service
        self._link = replication_link
        self._down_after_ms = down_after_ms
        self._failover_timeout_ms = failover_timeout_ms
        # Diskless sync without delay: a (re)joining replica is in sync in milliseconds.
        data_args = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
        if password is not None:
            data_args += ["--masterauth", password]
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        self.servers = [
            RedisServer(extra_args=data_args, password=password, tls=tls)
            for _ in range(1 + replicas)
        ]
        self.sentinels = [
            RedisServer(password=sentinel_password, tls=tls) for _ in range(sentinels)
        ]

    @property
    def sentinel_addrs(self) -> list[tuple[str, int]]:
        return [(HOST, s.port) for s in self.sentinels]

    @property
    def url(self) -> str:
        """``redis+sentinel://host:port,.../service``."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinel_addrs)
        auth = "" if self.password is None else f":{self.password}@"
        return f"redis+sentinel://{auth}{hosts}/{self.service}"

    @property
    def tls_url(self) -> str:
        """``rediss+sentinel://`` to the sentinels' TLS ports (a set made with ``tls``)."""
        hosts = ",".join(f"{HOST}:{s.tls_port}" for s in self.sentinels)
        auth = "" if self.password is None else f":{self.password}@"
        return f"rediss+sentinel://{auth}{hosts}/{self.service}"

    def _served_port(self, server: RedisServer) -> int:
        """The port replicas and sentinels reach ``server`` on: its TLS one with ``tls``."""
        return server.port if self.tls is None else server.tls_port

    def start(self) -> SentinelSet:
        primary, *replicas = self.servers
        primary.start()
        served = self._served_port(primary)
        upstream = served if self._link is None else self._link(served)
        for replica in replicas:
            replica.extra_args += ["--replicaof", HOST, str(upstream)]
            replica.start()
        for replica in replicas:
            _wait(f"replica {replica.port} in sync", functools.partial(self._linked, replica))
        for sentinel in self.sentinels:
            sentinel.config = self._sentinel_config(served)
            sentinel.extra_args = ["--sentinel"]
            sentinel.start()
        others = len(self.sentinels) - 1
        for sentinel in self.sentinels:
            # A failover needs each sentinel to know the replicas and the other sentinels
            # (found through hello messages, every 2 s).
            _wait(
                f"sentinel {sentinel.port} sees the deployment",
                functools.partial(self._sees, sentinel, len(replicas), others),
            )
        return self

    def _sentinel_config(self, primary_port: int) -> str:
        s = self.service
        return (
            f"sentinel monitor {s} {HOST} {primary_port} 2\n"
            f"sentinel down-after-milliseconds {s} {self._down_after_ms}\n"
            f"sentinel failover-timeout {s} {self._failover_timeout_ms}\n"
            f"sentinel parallel-syncs {s} 1\n"
            + ("" if self.password is None else f"sentinel auth-pass {s} {self.password}\n")
        )

    def _linked(self, replica: RedisServer) -> bool:
        status = _info_field(replica.port, "replication", "master_link_status", self.password)
        return status == "up"

    def _sees(self, sentinel: RedisServer, replicas: int, others: int) -> bool:
        return (
            self._count(sentinel.port, "replicas") == replicas
            and self._count(sentinel.port, "sentinels") == others
        )

    def _count(self, port: int, what: str) -> int:
        reply = redis_command(port, "SENTINEL", what, self.service, password=self.sentinel_password)
        return len(reply) if isinstance(reply, list) else -1

    def primary_port(self) -> int | None:
        """The primary's port as the first answering sentinel names it."""
        for sentinel in self.sentinels:
            try:
                port = self._named_by(sentinel.port)
            except OSError:
                continue
            if port is not None:
                return port
        return None

    @property
    def primary(self) -> RedisServer:
        port = self.primary_port()
        found = [s for s in self.servers if s.port == port]
        if not found:
            raise RuntimeError(f"no server of this deployment is the primary ({port})")
        return found[0]

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary; returns it (``start()`` brings it back)."""
        primary = self.primary
        primary.kill()
        return primary

    def wait_for_failover(self, old_port: int, timeout: float = READY_TIMEOUT_S) -> int:
        """Wait until every sentinel names a new primary that says it is one, and the old
        primary, when it still runs, has been turned into a replica; the new port. (Until
        then the old primary still takes writes, which its demotion then discards.)"""

        def done() -> bool:
            ports = {self._named_by(s.port) for s in self.sentinels if s.running}
            if len(ports) != 1:
                return False
            port = ports.pop()
            if port is None or port == old_port:
                return False
            return _role(port, self.password) == "master" and (
                not self._running_on(old_port) or _role(old_port, self.password) == "slave"
            )

        _wait("the failover", done, timeout)
        port = self.primary_port()
        assert port is not None
        return port

    def wait_replicas_in_sync(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every running server but the primary replicates from it (a demoted
        primary rejoins a few seconds after a failover)."""
        expected = sum(1 for s in self.servers if s.running) - 1

        def in_sync() -> bool:
            port = self.primary_port()
            if port is None:
                return False
            reply = redis_command(port, "INFO", "replication", password=self.password)
            lines = reply.decode().splitlines() if isinstance(reply, bytes) else []
            online = [x for x in lines if x.startswith("slave") and "state=online" in x]
            return len(online) == expected

        _wait("the replicas in sync", in_sync, timeout)

    def report(self) -> str:
        """Each process's role and log, for a test that failed: what the sentinels did
        and when."""
        parts = []
        for server in self.servers:
            try:
                role = _role(server.port, self.password) if server.running else "stopped"
            except OSError as e:
                role = f"no answer: {e}"
            parts.append(f"--- server {server.port} ({role})\n{server.log()}")
        for sentinel in self.sentinels:
            parts.append(f"--- sentinel {sentinel.port}\n{sentinel.log()}")
        return "\n".join(parts)

    def _running_on(self, port: int) -> bool:
        return any(s.port == port and s.running for s in self.servers)

    def _named_by(self, sentinel_port: int) -> int | None:
        reply = redis_command(
            sentinel_port,
            "SENTINEL",
            "get-master-addr-by-name",
            self.service,
            password=self.sentinel_password,
        )
        if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
            named = int(reply[1])
            # With TLS sentinels name TLS ports; the helpers here speak of plain ones.
            return next((s.port for s in self.servers if s.tls_port == named), named)
        return None

    def stop(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            server.stop()
