"""What a command says when the world is not as it needs: one line on stderr, what is
wrong and what to do, instead of a traceback.

Only the errors a person can act on are turned into a line; any other exception is a
bug and keeps its traceback. A server the command needs that does not answer or refuses
the connection (the broker, a database, a service's HTTP API: ``reach.py``) is said in
French, with how to start it, and exits 2, as do opening hours that cannot be read
(``hours.py``, in French too); the broker refusing a right, a topology not
provisioned, Chromium missing, production secrets that are public or short exit 1. The
root command's group catches them (``cli.py``), so every command, and every command
added later, says them the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import typer
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    InvalidFrameError,
    ProbableAuthenticationError,
)
from typer.core import TyperGroup

from aiguillage.console.screenshots import ChromiumMissing
from aiguillage.hours import HoursError
from aiguillage.reach import Unreachable, line_for, origin, untagged_servers
from shared.settings import UnsafeSecrets, get_settings
from shared.topology import TopologyMissing

BROKER_URL = "AIGUILLAGE_BROKER_URL"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(exc: BaseException) -> str:
    # aiormq puts the broker's words (or the socket's) last: ACCESS_REFUSED - ...,
    # (111, "Connect call failed ...").
    args = [a for a in exc.args if isinstance(a, str)]
    return _one_line(args[-1] if args else str(exc)).rstrip(".")


# Exit codes: a server the command needs is not there, or a value typed that cannot be
# read (as click's usage errors: the command was not run); anything else a person can
# act on.
UNREACHABLE_EXIT = 2
USAGE_EXIT = 2
KNOWN_EXIT = 1


@dataclass(frozen=True)
class Known:
    line: str
    exit_code: int


def _causes(exc: BaseException) -> Iterator[BaseException]:
    # A known error may be wrapped (raise ... from it): the first known one says it.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def diagnose(exc: BaseException) -> Known | None:
    """The line and exit code for an error a person can act on, or None (a bug)."""
    for current in _causes(exc):
        if isinstance(current, Unreachable):
            return Known(str(current), UNREACHABLE_EXIT)
        if isinstance(current, HoursError):
            # A value the person typed (--hours): a usage error, as click's are.
            return Known(f"horaires invalides : {current}", USAGE_EXIT)
        line = _explain_one(current)
        if line is not None:
            return Known(f"error: {line}", KNOWN_EXIT)
    for current in _causes(exc):
        # A server no command placed: the broker, or an HTTP API (reach.py).
        if origin(current) is not None:
            line = line_for(current, untagged_servers(current, get_settings()))
            if line is not None:
                return Known(line, UNREACHABLE_EXIT)
    return None


def explain(exc: BaseException) -> str | None:
    """The line for an error a person can act on, or None (a bug: keep the traceback)."""
    known = diagnose(exc)
    return known.line if known is not None else None


def _explain_one(exc: BaseException) -> str | None:
    if isinstance(exc, TopologyMissing | ChromiumMissing | UnsafeSecrets):
        return _one_line(str(exc))
    if isinstance(exc, ChannelAccessRefused):
        return (
            f"the broker refused: {_reason(exc)}. This broker user may not do that (a centre "
            f"reads its own queue only): use the user meant for it in {BROKER_URL}, or "
            "give it the right with `aiguillage broker provision`"
        )
    if isinstance(exc, ChannelNotFoundEntity):
        return (
            f"the broker has no such queue or exchange: {_reason(exc)}. Check the namespace "
            "(AIGUILLAGE_NAMESPACE) and the identifier, or declare it with "
            "`aiguillage broker provision`"
        )
    if isinstance(exc, ProbableAuthenticationError):
        return (
            f"the broker refused the log-in: {_reason(exc)}. Check the user and password "
            f"in {BROKER_URL}"
        )
    if isinstance(exc, InvalidFrameError) and "Connection.Close" in str(exc):
        # RabbitMQ closes the connection at open when the virtual host does not exist or
        # the user has no access to it; aiormq keeps only that it was closed.
        return (
            "the broker closed the connection as it opened: the virtual host in "
            f"{BROKER_URL} does not exist or its user may not use it (see "
            "`aiguillage broker provision`)"
        )
    return None


class KnownErrors(TyperGroup):
    """The root group: a known error of any command becomes one line and its exit code."""

    # The context is the click Context typer vendors (typer._click, private): Any here.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:  # only the known ones are caught; the rest go on
            known = diagnose(exc)
            if known is None:
                raise
            typer.echo(known.line, err=True)
            raise typer.Exit(known.exit_code) from None


def quiet_broker_client() -> None:
    """The AMQP client logs its own failures (``error when creating transport``...):
    where no logging is configured Python prints them on stderr, around the one line
    the command says. A command that configures logging still gets them."""
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).addHandler(logging.NullHandler())
