"""What a command says when the world is not as it needs: one line on stderr, what is
wrong and what to do, and exit code 1, instead of a traceback.

Only the errors a person can act on are turned into a line (the broker refusing or not
answering, a topology not provisioned, Chromium missing, production secrets that are
public or short); any other exception is a bug and keeps its traceback. The root
command's group catches them (``cli.py``), so every command, and every command added
later, says them the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import typer
from aiormq.exceptions import (
    AMQPConnectionError,
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    InvalidFrameError,
    ProbableAuthenticationError,
)
from typer.core import TyperGroup

from aiguillage.console.screenshots import ChromiumMissing
from shared.settings import UnsafeSecrets
from shared.topology import TopologyMissing

BROKER_URL = "AIGUILLAGE_BROKER_URL"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(exc: BaseException) -> str:
    # aiormq puts the broker's words (or the socket's) last: ACCESS_REFUSED - ...,
    # (111, "Connect call failed ...").
    args = [a for a in exc.args if isinstance(a, str)]
    return _one_line(args[-1] if args else str(exc)).rstrip(".")


def explain(exc: BaseException) -> str | None:
    """The line for an error a person can act on, or None (a bug: keep the traceback)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    # A known error may be wrapped (raise ... from it): the first known one says it.
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        line = _explain_one(current)
        if line is not None:
            return line
        current = current.__cause__
    return None


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
    if isinstance(exc, AMQPConnectionError):
        return (
            f"no RabbitMQ answers at the address of {BROKER_URL} ({_reason(exc)}): start "
            f"one (`rabbitmq-server -detached`) or point {BROKER_URL} at a running broker"
        )
    return None


class KnownErrors(TyperGroup):
    """The root group: a known error of any command becomes ``error: ...`` and exit 1."""

    # The context is the click Context typer vendors (typer._click, private): Any here.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:  # only the known ones are caught; the rest go on
            line = explain(exc)
            if line is None:
                raise
            typer.echo(f"error: {line}", err=True)
            raise typer.Exit(1) from None


def quiet_broker_client() -> None:
    """The AMQP client logs its own failures (``error when creating transport``...):
    where no logging is configured Python prints them on stderr, around the one line
    the command says. A command that configures logging still gets them."""
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).addHandler(logging.NullHandler())
