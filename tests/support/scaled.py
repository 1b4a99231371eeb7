"""The scaled topology's servers for tests: a private RabbitMQ node and a local Redis Cluster, on free loopback ports.

The RabbitMQ node is Debian's ``rabbitmq-server`` started from /usr/lib/rabbitmq/bin (the /usr/sbin wrapper switches
user and logs to /var/log) with its own node name, ports, data and log directories, config, Erlang cookie (its own
HOME) and its own epmd: nothing is shared with a RabbitMQ service of the machine. The Redis Cluster is made of
``redis-server --cluster-enabled yes`` processes joined by ``redis-cli --cluster create``. Every process is started in
its own process group and stopped by its PID.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from kombu import Connection
from redis.cluster import RedisCluster

from tests.support.processes import ManagedProcess, RedisServer, free_port, wait_until

RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
MISSING_RABBITMQ = (
    f"{RABBITMQ_BIN}/rabbitmq-server is not installed. The tests of the scaled topology start their own RabbitMQ node "
    "on free loopback ports. `make test` installs Debian's rabbitmq-server package (as root); otherwise install it, "
    "e.g. `sudo apt-get install rabbitmq-server`, or set RABBITMQ_BIN to the directory holding rabbitmq-server and "
    "rabbitmqctl."
)
# What a test may leave on the broker: the task queues, the dead-letter queue, Celery's delayed-delivery queues.
QUEUES = ("ingest", "flush", "signal.dead-letter")
DELAYED_QUEUES = tuple(f"celery_delayed_{level}" for level in range(28))


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _epmd() -> str:
    found = shutil.which("epmd") or next(iter(sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))), None)
    if found is None:
        raise FileNotFoundError("epmd (Erlang) is not installed; it comes with Debian's rabbitmq-server")
    return found


class RabbitMQNode:
    """A private RabbitMQ node: ``start``, ``stop`` (graceful), ``kill``, ``restart`` with the same data."""

    def __init__(self, base_dir: Path) -> None:
        self.dir = Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.node = f"signal-test-{uuid.uuid4().hex[:8]}@localhost"
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            # above the upload's hard time limit, as in production
            "consumer_timeout = 1800000\n"
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")  # never the machine's /etc/rabbitmq/rabbitmq-env.conf
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # the Erlang cookie lives here, for the node and its CLI
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
        }
        self.epmd: ManagedProcess | None = None
        self.server: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, timeout_s: float = 90.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self, timeout_s: float = 90.0) -> RabbitMQNode:
        if self.epmd is None or not self.epmd.running():
            self.epmd = ManagedProcess(
                [_epmd(), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                name="epmd",
                log_dir=self.dir,
                env=self.env,
            ).start()
            wait_until(lambda: not _bindable(self.epmd_port), 10, message="epmd did not listen")
        (self.dir / "rabbitmq.pid").unlink(missing_ok=True)
        self.server = ManagedProcess(
            [str(RABBITMQ_BIN / "rabbitmq-server")], name="rabbitmq", log_dir=self.dir, env=self.env
        ).start()
        waited = self.ctl(
            "wait", "--timeout", str(int(timeout_s)), str(self.dir / "rabbitmq.pid"), timeout_s=timeout_s + 10
        )
        if waited.returncode != 0:
            raise AssertionError(f"RabbitMQ did not start: {waited.stdout}{waited.stderr}\n{self.server.describe()}")
        wait_until(self.answers, 30, message=lambda: f"RabbitMQ does not accept AMQP: {self.server.describe()}")
        return self

    def answers(self) -> bool:
        try:
            with Connection(self.url, connect_timeout=1) as conn:
                conn.ensure_connection(max_retries=1)
                return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def stop(self, timeout_s: float = 60.0) -> None:
        """A graceful stop (what a rolling restart does); the node's data stays for ``start``."""
        if self.server is None or not self.server.running():
            return
        self.ctl("stop", timeout_s=timeout_s)
        if self.server.wait(timeout_s) is None:
            self.server.kill()
        self.server.signal_group(signal.SIGKILL)

    def kill(self) -> None:
        """The node crashes: SIGKILL to its whole process group."""
        if self.server is not None:
            self.server.kill()

    def close(self) -> None:
        try:
            self.stop(timeout_s=30)
        finally:
            if self.server is not None:
                self.server.kill()
            if self.epmd is not None:
                self.epmd.stop(timeout=5)

    def reset(self) -> None:
        """Start a test from empty queues: delete the fleet's queues (their arguments may differ between tests) and
        empty Celery's delayed-delivery queues (a retry scheduled by an earlier test must not arrive in this one)."""
        with Connection(self.url, connect_timeout=5) as conn:
            for name in QUEUES:
                channel = conn.channel()
                channel.queue_delete(name)
                channel.close()
            for name in DELAYED_QUEUES:
                channel = conn.channel()
                try:
                    channel.queue_purge(name)
                except conn.channel_errors:
                    pass  # not declared yet
                finally:
                    try:
                        channel.close()
                    except conn.connection_errors + conn.channel_errors:
                        pass

    def log_text(self) -> str:
        return self.server.log_text() if self.server is not None else ""


def _cluster_port() -> int:
    """A port P with P and its cluster bus port P + 10000 free."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisClusterServers:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on loopback."""

    def __init__(self, base_dir: Path, *, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 2000) -> None:
        self.dir = Path(base_dir)
        self.masters, self.replicas = masters, replicas
        self.nodes: list[RedisServer] = []
        for _ in range(masters * (1 + replicas)):
            port = _cluster_port()
            self.nodes.append(
                RedisServer(
                    port=port,
                    data_dir=self.dir / str(port),
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(node_timeout_ms),
                        # a replica stopped for a while may still take over: the failover tests pause one on purpose
                        "--cluster-replica-validity-factor",
                        "0",
                    ],
                )
            )

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def url_of(self, node: RedisServer) -> str:
        return node.url

    def start(self, timeout_s: float = 60.0) -> RedisClusterServers:
        for node in self.nodes:
            node.start()
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if created.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        wait_until(self.healthy, timeout_s, interval_s=0.2, message=lambda: f"the cluster is not ready: {self.view()}")
        return self

    def info(self, node: RedisServer, section: str) -> dict[str, Any]:
        with node.client(socket_timeout=2) as c:
            return c.info(section)  # type: ignore[no-any-return]

    def healthy(self) -> bool:
        """Every running node sees every slot served, and every replica is in sync with its master."""
        for node in self.nodes:
            if not node.running():
                continue
            try:
                with node.client(socket_timeout=2) as c:
                    info = c.cluster("info")
                    if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                        return False
                    replication = c.info("replication")
                    if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                        return False
                    if replication["role"] == "master" and int(replication["connected_slaves"]) < self.replicas:
                        return False
            except redis.RedisError:
                return False
        return True

    def view(self) -> str:
        out = []
        for node in self.nodes:
            try:
                with node.client(socket_timeout=2) as c:
                    out.append(f"{node.port}: {c.execute_command('CLUSTER', 'NODES').decode()}")
            except redis.RedisError as exc:
                out.append(f"{node.port}: {type(exc).__name__}")
        return "\n".join(out)

    def client(self, node: RedisServer | None = None, **kwargs: Any) -> RedisCluster:
        node = node or next(n for n in self.nodes if n.running())
        return RedisCluster(host="127.0.0.1", port=node.port, **kwargs)

    def role(self, node: RedisServer) -> str:
        return str(self.info(node, "replication")["role"])

    def running_masters(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.running() and n.ping() and self.role(n) == "master"]

    def flushall(self) -> None:
        for node in self.running_masters():
            with node.client() as c:
                c.flushall()
                c.config_resetstat()

    def node_of(self, key: str) -> RedisServer:
        """The master serving ``key``'s slot."""
        with self.client() as c:
            target = c.get_node_from_key(key)
        return next(n for n in self.nodes if n.port == target.port)

    def replica_of(self, master: RedisServer) -> RedisServer:
        for node in self.nodes:
            if node is master or not node.running():
                continue
            replication = self.info(node, "replication")
            if replication["role"] == "slave" and int(replication["master_port"]) == master.port:
                return node
        raise LookupError(f"no replica of {master.port}")

    def in_sync(self, master: RedisServer, replica: RedisServer) -> bool:
        """The replica has every write the master made so far."""
        offset = int(self.info(master, "replication")["master_repl_offset"])
        return int(self.info(replica, "replication")["slave_repl_offset"]) >= offset

    def stop(self) -> None:
        for node in self.nodes:
            if node.popen is not None and node.running():
                os.kill(node.pid, signal.SIGCONT)  # a paused node cannot act on SIGTERM
            node.stop(timeout=10)


def wait_for_master(cluster: RedisClusterServers, node: RedisServer, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    wait_until(
        lambda: cluster.role(node) == "master",
        max(deadline - time.monotonic(), 0.1),
        interval_s=0.1,
        message=lambda: f"{node.port} was not promoted: {cluster.view()}",
    )
