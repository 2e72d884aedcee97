"""Start and stop the four services as separate processes (the demo, e2e tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from shared.http import read_port_file
from shared.settings import ServiceName

# How long a service may take to connect, migrate its database and listen.
LISTEN_TIMEOUT_SECONDS = 90.0


class ServiceProcesses:
    """The four services, each a child process with its own log file.

    Unless the caller chose them, each service listens on a port the system picks (port
    0) and writes it to ``<log_dir>/ports/<service>.port`` once it listens; ``start``
    waits for that, so ``ports`` names a server that answers. A port chosen free here
    and handed over would race: another process (a test worker's outgoing connection
    takes an ephemeral port too) may take it before the service binds it.
    """

    def __init__(self, env: Mapping[str, str], log_dir: Path, cwd: Path | None = None) -> None:
        # ``cwd``: where the services run from; with ``PYTHONPATH`` in ``env``, another
        # checkout's code (a previous release's worktree) on this interpreter.
        self.cwd = cwd
        self.port_dir = log_dir / "ports"
        chosen = {f"AIGUILLAGE_{s.value.upper()}_HTTP_PORT": "0" for s in ServiceName}
        # The port folder is always this object's own: replicas (another ServiceProcesses
        # given the same environment) must not read each other's ports.
        self.env = {
            **os.environ,
            **chosen,
            **env,
            "AIGUILLAGE_PORT_FILE_DIR": str(self.port_dir),
        }
        self.ports: dict[str, int] = {}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.console: subprocess.Popen[bytes] | None = None

    def start(self, *services: ServiceName | str, wait: bool = True) -> None:
        """Start the services (all four by default); with ``wait``, return once each
        listens on its HTTP port (a service whose HTTP port setting is empty: at once)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port_dir.mkdir(parents=True, exist_ok=True)
        names = [ServiceName(s).value for s in services or tuple(ServiceName)]
        for name in names:
            (self.port_dir / f"{name}.port").unlink(missing_ok=True)
            self.ports.pop(name, None)
            log = (self.log_dir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "aiguillage", "run", name],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
        if wait:
            self.wait_listening(*names)

    def wait_listening(
        self, *services: ServiceName | str, timeout: float = LISTEN_TIMEOUT_SECONDS
    ) -> None:
        """Wait until each service wrote the port it listens on (and read it)."""
        deadline = time.monotonic() + timeout
        for service in services or tuple(self.procs):
            name = ServiceName(service).value
            while (port := self._listening(name)) is None:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited ({proc.returncode}) before it listened:\n"
                        f"{self.log(name)[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{name} did not listen within {timeout:.0f} s:\n{self.log(name)[-3000:]}"
                    )
                time.sleep(0.05)
            if port >= 0:
                self.ports[name] = port

    def _listening(self, name: str) -> int | None:
        chosen = self.env.get(f"AIGUILLAGE_{name.upper()}_HTTP_PORT", "0")
        if not chosen:  # no HTTP API: nothing to wait for (-1: no port)
            return -1
        written = read_port_file(self.port_dir, name)
        if written is None:
            return None
        return written if chosen == "0" else int(chosen)

    def start_console(self, port: int = 0, timeout: float = 60.0) -> int:
        """The web console in its own process, with the services' environment; returns
        the port it listens on once it does. It finds the services' ports in the same
        folder whenever it calls one, so it may start before them (the notifier needs
        the console's address for the patient's link)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.port_dir / "console.port").unlink(missing_ok=True)
        with (self.log_dir / "console.log").open("ab") as log:
            self.console = subprocess.Popen(
                [sys.executable, "-m", "aiguillage", "console", "--port", str(port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while (written := read_port_file(self.port_dir, "console")) is None:
            if self.console.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the console did not start:\n{self.log('console')[-3000:]}")
            time.sleep(0.05)
        return written

    def stop_console(self) -> None:
        if self.console is None:
            return
        self.console.terminate()
        try:
            self.console.wait(20)
        except subprocess.TimeoutExpired:
            self.console.kill()
            self.console.wait()
        self.console = None

    def kill(self, service: ServiceName | str) -> None:
        """kill -9: no graceful anything (fault tests)."""
        proc = self.procs.pop(ServiceName(service).value)
        proc.kill()
        proc.wait()

    def terminate(self, service: ServiceName | str, timeout: float = 30.0) -> int:
        """SIGTERM one service and wait for it to hand over and exit; its exit code."""
        proc = self.procs.pop(ServiceName(service).value)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM everything, wait for a graceful stop, SIGKILL what lingers."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def dead(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def log(self, service: ServiceName | str) -> str:
        name = "console" if service == "console" else ServiceName(service).value
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
