"""A throwaway Redis Cluster for tests: ``primaries`` primaries (and ``replicas`` replicas
each), every node a `RedisServer` on a free loopback port.

>>> with RedisCluster() as cluster:
...     queue = JobQueue("q", redis=cluster.url)
...     cluster.move_slot(cluster.slot_of("{q}"), to_port=cluster.other_primary(...))

Readiness is polled, never slept for: the cluster is ready once every node says
``cluster_state:ok`` and they all agree on who serves which slot.
"""

from __future__ import annotations

import binascii
import shutil
import socket
import subprocess
from collections.abc import Callable

from .testing import HOST, RedisServer, StartStop, free_port, redis_command, wait_until
from .testing_tls import TlsFiles

__all__ = ["RedisCluster"]

READY_TIMEOUT_S = 30.0
SLOTS = 16384


def _ok(reply: object, what: str) -> object:
    if isinstance(reply, RuntimeError):
        raise RuntimeError(f"{what}: {reply}")
    return reply


def _cluster_port(taken: set[int]) -> int:
    """A free port, not in ``taken``, whose cluster bus port (10000 higher) is free too: so
    at most 55535."""
    while True:
        port = free_port()
        if port > 55535 or port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind((HOST, port + 10000))
            except OSError:
                continue
        taken.add(port)
        return port


def _role_offset(role: object) -> int:
    """The replication offset a replica's ROLE reply tells (-1 when it is no replica)."""
    if isinstance(role, list) and role[0] == b"slave" and isinstance(role[4], int):
        return role[4]
    return -1


def _cli(command: str, *args: str) -> None:
    """``redis-cli --cluster <command> <args> --cluster-yes``; raises when it fails."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not installed (it comes with redis-server)")
    subprocess.run(
        [cli, "--cluster", command, *args, "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=READY_TIMEOUT_S,
    )


def _wait(what: str, ready: Callable[[], bool], timeout: float = READY_TIMEOUT_S) -> None:
    wait_until(f"redis cluster: {what}", ready, timeout)


class RedisCluster(StartStop):
    """A cluster of ``primaries`` primaries with ``replicas`` replicas each."""

    def __init__(
        self, *, primaries: int = 3, replicas: int = 0, tls: TlsFiles | None = None
    ) -> None:
        """With ``tls`` every node also listens on a TLS port (``tls_url``) and the
        cluster bus and replication go over TLS; tools keep the plain ports."""
        self.primaries = primaries
        self.replicas = replicas
        node_args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000",
            # A (re)joining replica is in sync in milliseconds.
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        taken: set[int] = set()
        self.servers = [
            RedisServer(port=_cluster_port(taken), extra_args=node_args, tls=tls)
            for _ in range(primaries * (1 + replicas))
        ]
        for server in self.servers if tls is not None else []:
            # With tls-cluster the bus port is the TLS port + 10,000: picked like the port.
            server.tls_port = _cluster_port(taken)

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [(HOST, s.port) for s in self.servers]

    @property
    def url(self) -> str:
        """``redis+cluster://host:port,...``."""
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.nodes)

    @property
    def tls_url(self) -> str:
        """``rediss+cluster://host:port,...`` to the nodes' TLS ports (a cluster made
        with ``tls``: a TLS client is told the nodes' TLS ports)."""
        return "rediss+cluster://" + ",".join(f"{HOST}:{s.tls_port}" for s in self.servers)

    def start(self) -> RedisCluster:
        for server in self.servers:
            server.start()
        replicas = ["--cluster-replicas", str(self.replicas)]
        _cli("create", *(f"{h}:{p}" for h, p in self.nodes), *replicas)
        self.wait_until_stable()
        return self

    def wait_until_stable(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every running node says ``cluster_state:ok`` and all of them map
        every slot to the same primaries."""

        def stable() -> bool:
            running = [s for s in self.servers if s.running]
            states = {self._info_field(s.port, "cluster_state") for s in running}
            maps = {tuple(sorted(self._slot_map(s.port).items())) for s in running}
            full = all(len(dict(m)) == SLOTS for m in maps)
            return states == {"ok"} and len(maps) == 1 and full

        _wait("a stable cluster", stable, timeout)

    def _info_field(self, port: int, name: str) -> str | None:
        reply = redis_command(port, "CLUSTER", "INFO")
        text = reply.decode() if isinstance(reply, bytes) else ""
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
        return None

    def _slot_map(self, port: int) -> dict[int, int]:
        """slot -> port of its primary, as node ``port`` sees it."""
        reply = _ok(redis_command(port, "CLUSTER", "SLOTS"), "CLUSTER SLOTS")
        found: dict[int, int] = {}
        for entry in reply if isinstance(reply, list) else []:
            first, last, primary = entry[0], entry[1], entry[2]
            for slot in range(first, last + 1):
                found[slot] = int(primary[1])
        return found

    def slot_of(self, key: str) -> int:
        reply = _ok(redis_command(self.servers[0].port, "CLUSTER", "KEYSLOT", key), "KEYSLOT")
        assert isinstance(reply, int)
        return reply

    def owner(self, slot: int) -> int:
        """The port of the primary that serves ``slot``."""
        for server in self.servers:
            if server.running:
                return self._slot_map(server.port)[slot]
        raise RuntimeError("no node of the cluster runs")

    def primary_ports(self) -> list[int]:
        """The ports of the primaries that serve slots, in the order of their first slot."""
        ports: list[int] = []
        for port in sorted(self._slot_map(self.owner(0)).items()):
            if port[1] not in ports:
                ports.append(port[1])
        return ports

    def queue_names_per_primary(self, prefix: str) -> list[str]:
        """One queue name per primary (``prefix-N``), each in a slot that primary serves."""
        found: dict[int, str] = {}
        n = 0
        while len(found) < self.primaries:
            name = f"{prefix}-{n}"
            found.setdefault(self.owner(self.slot_of(f"{{{name}}}")), name)
            n += 1
        return list(found.values())

    def partitioned_name(self, prefix: str, partitions: int) -> str:
        """A queue name (``prefix-N``) whose first ``min(partitions, primaries)``
        partitions each land on another primary (see ``jobqueue.partitions``)."""
        from .partitions import partition_name

        spread = min(partitions, self.primaries)
        n = 0
        while True:
            name = f"{prefix}-{n}"
            owners = {
                self.owner(self.slot_of(f"{{{partition_name(name, i)}}}")) for i in range(spread)
            }
            if len(owners) == spread:
                return name
            n += 1

    @staticmethod
    def name_in_slot(prefix: str, slot: int) -> str:
        """A queue name (``prefix-N``) whose keys hash to ``slot`` (CRC16/XMODEM, as Redis)."""
        n = 0
        while binascii.crc_hqx(f"{prefix}-{n}".encode(), 0) % SLOTS != slot:
            n += 1
        return f"{prefix}-{n}"

    def first_slot(self, port: int) -> int:
        """The lowest slot the primary on ``port`` serves (the first that ``redis-cli
        --cluster reshard`` takes from it)."""
        return min(slot for slot, owner in self._slot_map(self.owner(0)).items() if owner == port)

    def reshard_with_cli(self, from_port: int, to_port: int, slots: int = 1) -> None:
        """``redis-cli --cluster reshard``: move the ``slots`` lowest slots of the primary
        on ``from_port`` to the one on ``to_port``, keys and all; then wait until stable."""
        nodes = ["--cluster-from", self.node_id(from_port), "--cluster-to", self.node_id(to_port)]
        _cli("reshard", f"{HOST}:{from_port}", *nodes, "--cluster-slots", str(slots))
        self.wait_until_stable()

    def node_id(self, port: int) -> str:
        reply = _ok(redis_command(port, "CLUSTER", "MYID"), "CLUSTER MYID")
        assert isinstance(reply, bytes)
        return reply.decode()

    def move_slot(
        self,
        slot: int,
        to_port: int,
        *,
        batch: int = 10,
        between_batches: Callable[[], None] | None = None,
    ) -> int:
        """Move ``slot`` and its keys to the primary on ``to_port`` as ``redis-cli --cluster
        reshard`` does (IMPORTING, MIGRATING, ``MIGRATE`` in batches of ``batch`` keys, then
        ``SETSLOT NODE`` on every primary), while clients keep running; returns the number
        of keys moved. ``between_batches`` runs after each batch (to stretch the window)."""
        from_port = self.owner(slot)
        if from_port == to_port:
            return 0
        to_id, from_id = self.node_id(to_port), self.node_id(from_port)
        _ok(redis_command(to_port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", from_id), "IMP")
        _ok(redis_command(from_port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", to_id), "MIG")
        moved = 0
        while True:
            keys = redis_command(from_port, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch))
            if not isinstance(keys, list) or not keys:
                break
            names = [k for k in keys if isinstance(k, bytes)]
            reply = redis_command(
                from_port,
                *["MIGRATE", HOST, str(to_port), "", "0", "5000", "KEYS"],
                *names,
                timeout=10.0,
            )
            _ok(reply, "MIGRATE")
            moved += len(names)
            if between_batches is not None:
                between_batches()
        # The target first, then the source: the order redis-cli uses, so that no client
        # is sent back and forth between two nodes that both disown the slot.
        ports = [to_port, from_port] + [
            p for p in self.primary_ports() if p not in (to_port, from_port)
        ]
        for port in ports:
            _ok(redis_command(port, "CLUSTER", "SETSLOT", str(slot), "NODE", to_id), "SETSLOT")
        self.wait_until_stable()
        return moved

    def replica_of(self, primary_port: int) -> RedisServer:
        """A running replica of the primary on ``primary_port``."""
        primary_id = self.node_id(primary_port)
        for server in self.servers:
            if server.running and server.port != primary_port:
                role = redis_command(server.port, "ROLE")
                if isinstance(role, list) and role[0] == b"slave" and role[2] == primary_port:
                    return server
        raise RuntimeError(f"the primary {primary_port} ({primary_id}) has no replica")

    def wait_replicas_in_sync(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every running replica is linked to its primary and has all of its
        writes. A link that is up is not enough: after a diskless full sync Redis 7.0
        sends a replica the write stream only once the replica has acknowledged (within a
        second), so a failover just after a sync would lose every write made meanwhile."""

        def linked() -> bool:
            roles = [redis_command(s.port, "ROLE") for s in self.servers if s.running]
            replicas = [r for r in roles if isinstance(r, list) and r[0] == b"slave"]
            return all(r[3] == b"connected" for r in replicas)

        _wait("the replicas linked", linked, timeout)
        wanted: dict[int, int] = {}  # replica port -> the offset it must reach
        for port in self.primary_ports():
            key = self.name_in_slot("jobqueue-sync", self.first_slot(port))
            _ok(redis_command(port, "SET", key, "1"), "SET")  # a write to wait for
            _ok(redis_command(port, "DEL", key), "DEL")
            role = redis_command(port, "ROLE")
            assert isinstance(role, list)
            for replica in role[2]:
                wanted[int(replica[1])] = role[1]

        def caught_up() -> bool:
            return all(
                _role_offset(redis_command(port, "ROLE")) >= offset
                for port, offset in wanted.items()
            )

        _wait("the replicas in sync", caught_up, timeout)

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def wait_for_failover(self, slot: int, old_port: int, timeout: float = READY_TIMEOUT_S) -> int:
        """Wait until a node other than ``old_port`` serves ``slot`` and the running nodes
        agree on a full slot map; the new primary's port."""
        _wait("the failover", lambda: self.owner(slot) != old_port, timeout)
        self.wait_until_stable(timeout)
        return self.owner(slot)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
