"""A service's HTTP API, served by uvicorn inside the service's own event loop, with
the health and readiness endpoints every service has."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[bool]]


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the FastStream app owns the signals and
    stops the server as part of its graceful shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def add_health_routes(
    app: FastAPI,
    checks: dict[str, Check],
    details: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> None:
    @app.get("/health", tags=["operations"], summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], summary="Broker, database and consumers are ready")
    async def ready() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), timeout=5)
            except Exception:
                results[name] = False
        status = 200 if all(results.values()) else 503
        body: dict[str, Any] = {"ready": status == 200, "checks": results}
        if details is not None:
            try:
                body["details"] = await asyncio.wait_for(details(), timeout=5)
            except Exception:
                body["details"] = None
        return JSONResponse(body, status_code=status)


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.server = EmbeddedServer(
            uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name="http")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # the port is taken, say: raise it here
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for demos and tests that start services)."""
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
