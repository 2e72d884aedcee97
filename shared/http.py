"""A service's HTTP API, served by uvicorn inside the service's own event loop, with
the health and readiness endpoints every service has."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.nesting import MAX_DEPTH, too_deep
from shared.settings import Settings

Check = Callable[[], Awaitable[bool]]


def development(settings: object) -> bool:
    """``AIGUILLAGE_ENVIRONMENT=development``: what only tests and demos may do (an
    unregistered referrer, a plain-http or loopback webhook). Anything else, or no such
    setting, is production: the safe side."""
    return str(getattr(settings, "environment", "production")) == "development"


# A year: a browser that once reached us over TLS never tries plain http again. Not
# includeSubDomains: the operator's other hosts are not ours to bind.
HSTS = "max-age=31536000"
UNKNOWN_ADDRESS = "unknown"


class Proxies:
    """Whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed: the reverse
    proxies of AIGUILLAGE_TRUSTED_PROXIES, and no one else. Anyone may write these
    headers; believed from anyone, they would let a guesser pick a fresh address for
    every log-in attempt."""

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(t, strict=False) for t in trusted)

    def trusts(self, address: str | None) -> bool:
        found = _ip(address or "")
        return found is not None and any(found in network for network in self.networks)

    def client_address(self, scope: Scope) -> str:
        """The client's address: the socket's peer, or, when the peer is a trusted
        proxy, the last hop of X-Forwarded-For that is not one (what our own proxies
        saw; the hops before it are the client's to write)."""
        peer = _peer(scope)
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in _header_values(scope, b"x-forwarded-for")]
        for hop in reversed(hops):
            if not self.trusts(hop):
                found = _ip(hop)
                # Not an address: our proxy wrote nonsense; the proxy is what we know.
                return str(found) if found is not None else peer
        first = _ip(hops[0]) if hops else None
        return str(first) if first is not None else peer

    def over_tls(self, scope: Scope) -> bool:
        """Served over https: the socket's scheme, or what a trusted proxy says (the
        value nearest to us)."""
        if scope.get("scheme") in ("https", "wss"):
            return True
        if not self.trusts(_peer(scope)):
            return False
        said = _header_values(scope, b"x-forwarded-proto")
        return bool(said) and said[-1].strip().lower() == "https"


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN_ADDRESS


def _header_values(scope: Scope, name: bytes) -> list[str]:
    """Every comma-separated value of every ``name`` header, in order."""
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]
    return [part for value in values for part in value.split(",") if part.strip()]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, with or without a port (``1.2.3.4:5``, ``[::1]:5``)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class SecurityHeaders:
    """On every answer: ``Cache-Control: no-store`` (answers carry patients' identities
    and people's sessions: no browser or proxy cache keeps them), and
    ``Strict-Transport-Security`` when the request came over TLS. Paths under
    ``cacheable`` (the console's static files) keep whatever they say."""

    def __init__(self, app: ASGIApp, proxies: Proxies, cacheable: tuple[str, ...] = ()) -> None:
        self.app, self.proxies, self.cacheable = app, proxies, cacheable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = not str(scope.get("path", "")).startswith(self.cacheable)
        tls = self.proxies.over_tls(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if private:
                    headers["Cache-Control"] = "no-store"
                if tls:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuse (413) a request body over ``max_bytes`` before the app sees any of it, and
    (400 ``too_deep``) one that nests arrays or objects over ``max_depth`` levels.

    A declared Content-Length is judged before a byte is read; a chunked body (or one
    whose length lies) is counted as it streams in and refused as soon as it passes the
    bound, so nothing larger than ``max_bytes`` plus one chunk is ever held in memory.
    The whole body's depth is judged on its bytes (``shared.nesting``), whatever its
    content type (intake reads any body as JSON), before routing and authentication: a
    parser never sees it, and no quota counts it. What passes is handed to the app whole
    (at most ``max_bytes``, small by design)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int = MAX_DEPTH) -> None:
        self.app, self.max_bytes, self.max_depth = app, max_bytes, max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before its body ended: nothing to serve.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if too_deep(body, self.max_depth):
            await self._too_deep(send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then, as usual, the disconnect when it comes

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {
                "error_code": "body_too_large",
                "reasons": [
                    {
                        "code": "body_too_large",
                        "field": None,
                        "message": f"The request body exceeds {self.max_bytes} bytes.",
                    }
                ],
            },
            status_code=413,
            headers={"Connection": "close"},
        )
        await response({"type": "http"}, _nothing, send)

    async def _too_deep(self, send: Send) -> None:
        # The body was read whole: the connection may serve the client's next request.
        message = (
            "Le corps de la requête imbrique des tableaux ou des objets sur plus de "
            f"{self.max_depth} niveaux : il n'est pas lu."
        )
        response = JSONResponse(
            {
                "error_code": "too_deep",
                "reasons": [{"code": "too_deep", "field": None, "message": message}],
            },
            status_code=400,
        )
        await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the FastStream app owns the signals and
    stops the server as part of its graceful shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class PortReportingServer(uvicorn.Server):
    """uvicorn that, once it listens, writes its port to ``<folder>/<name>.port``
    (``write_port_file``): a process started on port 0 says where it ended up."""

    def __init__(self, config: uvicorn.Config, folder: Path | None, name: str) -> None:
        super().__init__(config)
        self.port_folder = folder
        self.port_name = name

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.port_folder is not None and self.started:
            port = int(self.servers[0].sockets[0].getsockname()[1])
            write_port_file(self.port_folder, self.port_name, port)


def allow_every_method(app: FastAPI) -> None:
    """A 405 names in ``Allow`` every method of the path, not only those of the first
    route that matched it (Starlette's): ``GET`` and ``POST /referrals`` are two routes,
    possibly of two routers, and a client must learn both (RFC 9110, 15.5.6). The
    methods are the documented ones (the OpenAPI document's paths), read once."""
    paths: list[tuple[re.Pattern[str], frozenset[str]]] = []

    def documented(path: str) -> frozenset[str]:
        if not paths:
            for template, operations in app.openapi().get("paths", {}).items():
                regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
                methods = frozenset(m.upper() for m in operations if m.upper() in _METHODS)
                paths.append((re.compile(f"^{regex}$"), methods))
        found: set[str] = set()
        for pattern, methods in paths:
            if pattern.match(path):
                found |= methods
        return frozenset(found)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        methods = documented(request.url.path) or frozenset(
            m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()
        )
        headers = {"Allow": ", ".join(sorted(methods))} if methods else None
        return JSONResponse({"detail": "Method Not Allowed"}, 405, headers=headers)

    app.add_exception_handler(StarletteHTTPException, not_allowed)


_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


def add_health_routes(
    app: FastAPI,
    checks: dict[str, Check],
    details: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    *,
    version: str | None = None,
) -> None:
    """``/health`` (the process is up) and ``/ready`` (every check passes: 503 if one
    fails); both name the release (``version``) when given."""
    release = {} if version is None else {"version": version}

    @app.get("/health", tags=["operations"], summary="The process is up, and its release")
    async def health() -> dict[str, str]:
        return {"status": "ok", **release}

    @app.get(
        "/ready",
        tags=["operations"],
        summary="Broker, database and consumers are ready",
        # The same body either way; 503 tells a load balancer to keep away for now.
        responses={503: {"description": "Not ready: the checks say which part is not."}},
    )
    async def ready() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), timeout=5)
            except Exception:
                results[name] = False
        status = 200 if all(results.values()) else 503
        body: dict[str, Any] = {"ready": status == 200, "checks": results, **release}
        if details is not None:
            try:
                body["details"] = await asyncio.wait_for(details(), timeout=5)
            except Exception:
                body["details"] = None
        return JSONResponse(body, status_code=status)


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.server = EmbeddedServer(
            # No proxy headers: uvicorn would believe X-Forwarded-For from 127.0.0.1 by
            # default; shared.http.Proxies decides whom to believe.
            uvicorn.Config(
                app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False
            )
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


def write_port_file(folder: Path, name: str, port: int) -> None:
    """Say which port ``name`` listens on, once it listens: written whole then renamed,
    so a reader never sees half a number."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{name}.port.partial"
    partial.write_text(str(port))
    partial.replace(folder / f"{name}.port")


def read_port_file(folder: Path, name: str) -> int | None:
    """The port ``name`` wrote, or None while it does not listen yet."""
    try:
        return int((folder / f"{name}.port").read_text())
    except (FileNotFoundError, ValueError):
        return None


def service_port(settings: Settings, service: str) -> int | None:
    """Where ``service``'s HTTP API listens: its setting, or, when that is 0 (the system
    picked one), the port the service wrote to ``settings.port_file_dir``."""
    port = settings.http_port(service)
    if port == 0 and settings.port_file_dir is not None:
        return read_port_file(settings.port_file_dir, service)
    return port


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for demos and tests that start services)."""
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
