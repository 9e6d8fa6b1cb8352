"""A real Redis Cluster for tests: six Debian redis-server processes in cluster mode (three
masters, a replica each) on free loopback ports, joined with `redis-cli --cluster create`.
A master can be killed (SIGKILL) to make its replica take over."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

NODE_TIMEOUT_MS = 1000  # how long a silent master stays master: failovers within seconds


@dataclass
class ClusterNode:
    port: int
    bus_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class RedisClusterServers:
    """`start()` builds the cluster and returns once every node reports cluster_state:ok and
    agrees on three masters; `stop()` kills every node and removes their folders."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (make test installs it)")
        self.masters = masters
        self.replicas = replicas
        self.root = Path(tempfile.mkdtemp(prefix="sb-redis-cluster-"))
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        """REDIS_URL of the gateways: any node serves as the seed."""
        return f"redis://{self.nodes[0].address}/0"

    def cli(self, node: ClusterNode, *args: str, timeout: float = 10) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(node.port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout

    def _spawn(self, node: ClusterNode) -> None:
        node.workdir.mkdir(parents=True, exist_ok=True)
        node.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(node.port),
                "--cluster-port",
                str(node.bus_port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # A replica syncs at once and may always take over (however long it was cut
                # off): a test kills a master right after the cluster formed.
                "--repl-diskless-sync-delay",
                "0",
                "--cluster-replica-validity-factor",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(node.workdir),
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait(self, what: str, test: Callable[[], bool], timeout: float = 30) -> None:
        # A real server becomes ready in its own time: poll its answer, never a fixed sleep.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if test():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis cluster: timed out waiting for {what}\n{self.logs()}")

    def start(self) -> None:
        count = self.masters * (1 + self.replicas)
        for i in range(count):
            self.nodes.append(ClusterNode(free_port(), free_port(), self.root / f"node{i}"))
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self._wait(f"{node.address} to answer", lambda n=node: self.cli(n, "PING") == "PONG\n")
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(n.address for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
        self._wait("cluster_state:ok on every node", self._settled)
        self._wait("every replica in sync with its master", self._replicas_synced)

    def _replicas_synced(self) -> bool:
        links = [self.cli(n, "INFO", "replication") for n in self.live_nodes()]
        replicas = [info for info in links if "role:slave" in info]
        return len(replicas) == self.masters * self.replicas and all(
            "master_link_status:up" in info for info in replicas
        )

    def _settled(self) -> bool:
        for node in self.live_nodes():
            if "cluster_state:ok" not in self.cli(node, "CLUSTER", "INFO"):
                return False
        return len(self.master_nodes()) == self.masters

    def live_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def master_nodes(self) -> list[ClusterNode]:
        """The masters that serve slots, as the live nodes see them (all must agree)."""
        views = set()
        for node in self.live_nodes():
            lines = self.cli(node, "CLUSTER", "NODES").splitlines()
            views.add(
                frozenset(
                    int(f[1].split("@")[0].rsplit(":", 1)[1])
                    for f in (line.split() for line in lines)
                    if "master" in f[2] and "fail" not in f[2] and len(f) > 8
                )
            )
        if len(views) != 1:
            return []
        ports = next(iter(views))
        return [n for n in self.nodes if n.port in ports]

    def master_of_slot(self, slot: int, timeout: float = 30) -> ClusterNode:
        """The master serving `slot`, once the cluster's view names one: right after a
        failover the node asked may not yet know the promoted replica's slots."""
        found: list[ClusterNode] = []

        def named() -> bool:
            try:
                found.append(self._master_of_slot_now(slot))
            except LookupError:
                return False
            return True

        self._wait(f"a master serving slot {slot}", named, timeout)
        return found[-1]

    def _master_of_slot_now(self, slot: int) -> ClusterNode:
        for line in self.cli(self.live_nodes()[0], "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            node = next(n for n in self.nodes if n.port == port)
            if node.proc is not None and node.proc.poll() is not None:
                continue  # killed: the node asked has not yet heard (gossip is not instant)
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return node
        raise LookupError(f"no master serves slot {slot}")

    def replica_of(self, master: ClusterNode, timeout: float = 30) -> ClusterNode:
        """A replica of `master`, once the master lists one: after an earlier failover the
        demoted node attaches to its new master in its own time."""
        master_id = self.cli(master, "CLUSTER", "MYID").strip()
        found: list[ClusterNode] = []

        def listed() -> bool:
            for line in self.cli(master, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "slave" in fields[2] and "fail" not in fields[2] and fields[3] == master_id:
                    port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                    found.append(next(n for n in self.nodes if n.port == port))
                    return True
            return False

        self._wait(f"a replica of {master.address}", listed, timeout)
        return found[-1]

    def wait_for(self, what: str, test: Callable[[], bool], timeout: float = 30) -> None:
        self._wait(what, test, timeout)

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL one node, then wait until the others have promoted its replica."""
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)
        self._wait(
            "a replica to take over",
            lambda: self._settled() and node not in self.master_nodes(),
            timeout=60,
        )

    def logs(self) -> str:
        out = []
        for node in self.nodes:
            log = node.workdir / "redis.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-8:]
                out.append(f"--- {node.address} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
