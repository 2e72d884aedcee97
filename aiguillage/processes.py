"""Start and stop the four services as separate processes (the demo, e2e tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from shared.http import free_port
from shared.settings import ServiceName


class ServiceProcesses:
    """The four services, each a child process with its own log file."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        # Free HTTP ports unless the caller chose: two runs on one machine do not collide.
        ports = {f"AIGUILLAGE_{s.value.upper()}_HTTP_PORT": str(free_port()) for s in ServiceName}
        self.env = {**os.environ, **ports, **env}
        self.ports = {
            s.value: int(self.env[f"AIGUILLAGE_{s.value.upper()}_HTTP_PORT"]) for s in ServiceName
        }
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *services: ServiceName | str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for service in services or tuple(ServiceName):
            name = ServiceName(service).value
            log = (self.log_dir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "aiguillage", "run", name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()

    def kill(self, service: ServiceName | str) -> None:
        """kill -9: no graceful anything (fault tests)."""
        proc = self.procs.pop(ServiceName(service).value)
        proc.kill()
        proc.wait()

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
        path = self.log_dir / f"{ServiceName(service).value}.log"
        return path.read_text(errors="replace") if path.exists() else ""
