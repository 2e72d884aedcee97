"""A three-node RabbitMQ cluster on this machine, for the cluster fault tests.

Three ``rabbitmq-server`` nodes (``aig-c1@localhost``...) with their own AMQP and
distribution ports, data and log folders under a temporary folder, and their own Erlang
cookie in their own ``HOME``: the CLI tools run with that ``HOME`` cannot reach the local
single node (``rabbit@localhost``, another cookie), which stays exactly as it was. No
plugin (an empty enabled-plugins file), ``pause_minority``, joined with
``rabbitmqctl join_cluster``; stopped (kill -9 if need be) and removed afterwards.

The real scripts (``/usr/lib/rabbitmq/bin``) are called, not the Debian wrappers in
``/usr/sbin``, which switch to the ``rabbitmq`` user and its ``HOME`` (the local node's
cookie)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path("/usr/lib/rabbitmq/bin")
FIRST_AMQP_PORT = 5681
FIRST_DIST_PORT = 25681


def _tool(name: str) -> str:
    real = SCRIPTS / name
    if real.exists():
        return str(real)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed")
    return found


@dataclass
class Node:
    index: int
    root: Path

    @property
    def name(self) -> str:
        return f"aig-c{self.index}@localhost"

    @property
    def amqp_port(self) -> int:
        return FIRST_AMQP_PORT + self.index - 1

    @property
    def dist_port(self) -> int:
        return FIRST_DIST_PORT + self.index - 1

    @property
    def url(self) -> str:
        # A short heartbeat: a frozen node is noticed in seconds, not minutes.
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/?heartbeat=5"

    @property
    def folder(self) -> Path:
        return self.root / f"c{self.index}"


@dataclass
class RabbitCluster:
    root: Path
    size: int = 3
    nodes: list[Node] = field(init=False)
    _servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.nodes = [Node(i, self.root) for i in range(1, self.size + 1)]
        self.home = self.root / "home"

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def _env(self, node: Node) -> dict[str, str]:
        folder = node.folder
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),  # its .erlang.cookie: this cluster's own
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def ctl(self, node: Node, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [_tool("rabbitmqctl"), "-n", node.name, *args],
            env=self._env(node),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {node.name}: "
                f"{result.stderr.decode(errors='replace')[-800:]}"
            )
        return result.stdout.decode(errors="replace")

    def _write_config(self, node: Node) -> None:
        folder = node.folder
        (folder / "mnesia").mkdir(parents=True, exist_ok=True)
        (folder / "log").mkdir(parents=True, exist_ok=True)
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq-env.conf").write_text("")
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
            # A node cut off from the other two stops serving: no split brain.
            "cluster_partition_handling = pause_minority\n"
            "loopback_users.guest = true\n"
            # Quicker to notice a frozen peer than the default 60 s.
            "net_ticktime = 10\n"
            "vm_memory_high_watermark.relative = 0.2\n"
            "disk_free_limit.absolute = 50MB\n"
        )

    def _spawn(self, node: Node) -> None:
        log = (node.folder / "server.out").open("ab")
        self._servers[node.index] = subprocess.Popen(
            [_tool("rabbitmq-server")],
            env=self._env(node),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: killed as one
        )
        log.close()

    def _await_startup(self, node: Node, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl(node, "await_startup", "--timeout", "30", timeout=40)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                server = self._servers.get(node.index)
                if server is not None and server.poll() is not None:
                    out = (node.folder / "server.out").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{node.name} exited: {out}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20))
            cookie.chmod(0o400)
        for node in self.nodes:
            self._write_config(node)
            self._spawn(node)
        # Each CLI call costs seconds (an Erlang VM starts): the nodes are awaited side
        # by side. They join one after the other: two nodes joining the same node at
        # once race in Mnesia's schema merge, and the second's start_app then fails
        # ({badmatch, {error, {normal, {mnesia_app, start, ...}}}}) about one run in ten.
        with ThreadPoolExecutor(self.size) as pool:
            list(pool.map(self._await_startup, self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self._join(node, first)
        running = self.ctl(first, "cluster_status", "--formatter", "json")
        for node in self.nodes:
            assert node.name in running, running

    def _join(self, node: Node, first: Node) -> None:
        self.ctl(node, "stop_app")
        self.ctl(node, "join_cluster", first.name)
        self.ctl(node, "start_app")

    def beam_pid(self, node: Node) -> int:
        return int((node.folder / "rabbit.pid").read_text().strip())

    def kill(self, node: Node) -> None:
        """kill -9 of the node's Erlang VM: no goodbye to its peers or clients."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.beam_pid(node), signal.SIGKILL)
        server = self._servers.pop(node.index, None)
        if server is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    def restart(self, node: Node) -> None:
        self._spawn(node)
        self._await_startup(node)

    def pause(self, node: Node) -> None:
        """SIGSTOP: the node freezes, its sockets stay open (neither peers nor clients
        are told), as a node cut off by the network."""
        os.kill(self.beam_pid(node), signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        os.kill(self.beam_pid(node), signal.SIGCONT)

    def heal(self, node: Node) -> None:
        """Restart a node's application: RabbitMQ's recovery of a node that was cut off.
        A node woken after SIGSTOP never saw its peers go, so it did not pause itself
        (pause_minority acts on a partition it sees); it comes back partitioned (Mnesia's
        ``inconsistent_database``), and restarting it makes it rejoin the majority."""
        self.ctl(node, "stop_app")
        self.ctl(node, "start_app")

    def leaders(self, via: Node | None = None) -> Counter[str]:
        """How many queues each node leads (quorum queues: their leader; classic: their
        node)."""
        out = self.ctl(via or self.nodes[0], "list_queues", "name", "leader", "--quiet")
        counts: Counter[str] = Counter()
        for line in out.splitlines():
            match = re.search(r"(aig-c\d+@localhost)", line)
            if match:
                counts[match.group(1)] += 1
        return counts

    def node_named(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        """Stop every node, even a paused or half-started one, and remove its folder."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.resume(node)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.kill(node)
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                os.killpg(server.pid, signal.SIGKILL)
        self._servers.clear()
        shutil.rmtree(self.root, ignore_errors=True)
