"""The servers a command reaches (the broker, a database, a service's HTTP API), and the
one French line it says when one of them does not answer or refuses the connection.

A server that is down surfaces as whatever its client library raises: aiormq's
``AMQPConnectionError``, a bare ``TimeoutError`` (a port that accepts and never answers:
a broker still starting, a container's port with the container gone),
``ConnectionRefusedError`` or ``socket.gaierror`` from asyncpg, ``httpx.ConnectError``.
None of them says which of the command's servers it was, and a ``TimeoutError`` says
nothing at all: the error is placed by the client library it was raised in (its type's
module, else the innermost library frame of its traceback), and the address and the
setting to change come from the settings. ``errors.py`` prints the line, once, for
every command.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx
from aiormq.exceptions import (
    AuthenticationError,
    ConnectionNotAllowed,
    ProbableAuthenticationError,
)
from asyncpg.exceptions import (
    CannotConnectNowError,
    InvalidAuthorizationSpecificationError,
    InvalidCatalogNameError,
    PostgresConnectionError,
    TooManyConnectionsError,
)
from sqlalchemy.engine import make_url
from yarl import URL

from shared.settings import ServiceName, Settings, env_name


class Kind(StrEnum):
    BROKER = "broker"
    DATABASE = "database"
    HTTP = "http"


# Where an error was raised tells which server it is about.
_LIBRARIES = {
    "aiormq": Kind.BROKER,
    "aio_pika": Kind.BROKER,
    "pamqp": Kind.BROKER,
    "asyncpg": Kind.DATABASE,
    "aiosqlite": Kind.DATABASE,
    "sqlite3": Kind.DATABASE,
    "sqlalchemy": Kind.DATABASE,
    "httpx": Kind.HTTP,
    "httpcore": Kind.HTTP,
}
# What a server that answered says in refusing the connection: not a bug, the URL's (a
# database or a user that does not exist, a password, a virtual host the user may not
# open) or the server's state (starting, full).
_REFUSALS = (
    PostgresConnectionError,
    InvalidAuthorizationSpecificationError,
    InvalidCatalogNameError,
    CannotConnectNowError,
    TooManyConnectionsError,
    ConnectionNotAllowed,
)
# The broker's refusals of a log-in keep their own line (errors.py): not "down".
_BROKER_LOGIN_REFUSED = (ProbableAuthenticationError, AuthenticationError)
_PG_CLUSTERS = Path("/etc/postgresql")


@dataclass(frozen=True)
class Server:
    """A server a command reaches: what it is, where, how to start it, what sets it."""

    kind: Kind
    name: str  # "RabbitMQ", "PostgreSQL", "L'API HTTP de regulation"
    address: str  # "127.0.0.1:5672"
    start: str  # "démarrez-le (rabbitmq-server -detached)"
    setting: str  # "AIGUILLAGE_BROKER_URL"
    refuses: str = "refuse la connexion"

    def down(self) -> str:
        where = f"{self.name} ne répond pas sur {self.address}"
        return f"{where} : {self.start} ou réglez {self.setting}."

    def refusing(self, why: str) -> str:
        return f"{self.name} sur {self.address} {self.refuses} ({why}) : vérifiez {self.setting}."


class Unreachable(Exception):
    """A server the command needs does not answer, or refuses the connection."""


def _host_port(url: URL, default_port: int) -> str:
    return f"{url.host or '127.0.0.1'}:{url.port or default_port}"


def broker(settings: Settings) -> Server:
    nodes = [URL(u) for u in settings.broker_nodes]
    address = ", ".join(_host_port(u, 5671 if u.scheme == "amqps" else 5672) for u in nodes)
    setting = env_name("broker_urls") if settings.broker_urls else env_name("broker_url")
    start = "démarrez-le (rabbitmq-server -detached)"
    return Server(Kind.BROKER, "RabbitMQ", address, start, setting)


def _pg_ctlcluster() -> str:
    # This machine's cluster when it has exactly one (Debian's layout), else the form.
    clusters = sorted(_PG_CLUSTERS.glob("*/*")) if _PG_CLUSTERS.is_dir() else []
    if len(clusters) == 1:
        return f"pg_ctlcluster {clusters[0].parent.name} {clusters[0].name} start"
    return "pg_ctlcluster <version> main start"


def database_url(url: str, setting: str) -> Server:
    """The database at ``url``, which ``setting`` sets."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        where = parsed.database or ":memory:"
        start = "vérifiez que son dossier existe et vous est accessible en écriture,"
        return Server(Kind.DATABASE, "SQLite", where, start, setting, "ne s'ouvre pas")
    address = f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}"
    start = f"démarrez-le ({_pg_ctlcluster()})"
    return Server(Kind.DATABASE, "PostgreSQL", address, start, setting)


def database(settings: Settings, owner: ServiceName | str) -> Server:
    """The database of ``owner``: a service, or "console"."""
    owner = str(owner)
    url = settings.console_database() if owner == "console" else settings.database_url(owner)
    return database_url(url, env_name(f"{owner}_database_url"))


def http_api(service: ServiceName, port: int) -> Server:
    return Server(
        Kind.HTTP,
        f"L'API HTTP de {service.value}",
        f"127.0.0.1:{port}",
        f"démarrez le service (aiguillage run {service.value})",
        env_name(f"{service.value}_http_port"),
    )


def origin(exc: BaseException) -> Kind | None:
    """The kind of server an error is about, by the client library that raised it."""
    modules = [type(exc).__module__]
    # Innermost first: the library that raised, not the command that called it.
    frames = reversed(list(traceback.walk_tb(exc.__traceback__)))
    modules += [str(frame.f_globals.get("__name__", "")) for frame, _ in frames]
    for module in modules:
        kind = _LIBRARIES.get(module.partition(".")[0])
        if kind is not None:
            return kind
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        # The causes only: an error raised while handling another is not about it.
        current = current.__cause__


def _refusal(exc: BaseException) -> str | None:
    """What a server that answered said in refusing the connection, in one line."""
    for error in _chain(exc):
        if isinstance(error, _REFUSALS):
            return " ".join(str(error).split()) or type(error).__name__
        if type(error).__module__ == "sqlite3" and "unable to open" in str(error):
            return str(error)
    return None


def _down(exc: BaseException) -> bool:
    if isinstance(exc, _BROKER_LOGIN_REFUSED):
        return False
    # OSError: refused, reset, no such host, and TimeoutError (a port that never answers);
    # aiormq's AMQPConnectionError is one too.
    return any(isinstance(e, OSError | httpx.TransportError) for e in _chain(exc))


def line_for(exc: BaseException, servers: Iterable[Server]) -> str | None:
    """The line for ``exc`` if it says one of ``servers`` cannot be reached, else None."""
    kind = origin(exc)
    server = next((s for s in servers if s.kind is kind), None)
    if server is None or isinstance(exc, Unreachable):
        return None
    why = _refusal(exc)
    if why is not None:
        return server.refusing(why)
    return server.down() if _down(exc) else None


@contextmanager
def reaching(*servers: Server) -> Iterator[None]:
    """Within: an error that says one of ``servers`` cannot be reached becomes
    ``Unreachable`` with its line (an error about another server goes on as it is)."""
    try:
        yield
    except Exception as exc:
        line = line_for(exc, servers)
        if line is None:
            raise
        raise Unreachable(line) from exc


def untagged_servers(exc: BaseException, settings: Settings) -> Sequence[Server]:
    """The servers an error no command placed may be about: the broker (every command
    uses the settings' one), a service's HTTP API (its URL is in the error)."""
    servers = [broker(settings)]
    for error in _chain(exc):
        if isinstance(error, httpx.RequestError) and error.request.url.port is not None:
            port = error.request.url.port
            servers += [http_api(s, port) for s in ServiceName if settings.http_port(s) == port]
    return servers
