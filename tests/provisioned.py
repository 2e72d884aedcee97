"""A provisioned deployment for tests: `aiguillage broker provision` in a throwaway
virtual host with known passwords, and actors connecting with their own credentials.

Shared by tests/integration/test_broker_permissions.py (what the broker allows each
user) and tests/security (the attacks, against the services run under those users).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused
from typer.testing import CliRunner

from aiguillage.cli import app as cli
from shared.events import Envelope, EventPayload
from shared.provisioning import (
    AccountKind,
    Plan,
    Rabbitmqctl,
    broker_url,
    build_plan,
    remove,
)
from shared.settings import get_settings
from shared.topology import actor_queue, centre_queue, events_exchange, ingress_exchange

CENTRES = ("poterie", "cleunay")
REFERRER = "sos-rennes"
# Centre 15: one user per SAMU (issue 28).
SAMU = "samu-35"
# The ARS: one user per region (issue 28); Bretagne's, whose centres these are.
ARS_REGION = "53"
ARS = f"ars-{ARS_REGION}"

# The broker's node, when the tests use another one than rabbitmqctl's default.
NODE = os.environ.get("AIGUILLAGE_TEST_RABBITMQ_NODE")

# What an actor does on a channel of its own (a refusal closes the channel).
Operation = Callable[[AbstractChannel], Awaitable[Any]]


def invoke(args: list[str], env: dict[str, str]) -> Any:
    """Run an `aiguillage` command in this process (the result of typer's runner)."""
    # The commands read the environment through the cached settings: fresh each time.
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, args, env=env)
    finally:
        get_settings.cache_clear()


def provision(args: list[str], base_url: str) -> Any:
    return invoke(["broker", "provision", *args], {"AIGUILLAGE_BROKER_URL": base_url})


@dataclass
class Deployment:
    """A namespace in its own virtual host, with its users and their passwords."""

    base_url: str
    plan: Plan
    passwords: dict[str, str]
    suffix: str
    referrers: tuple[str, ...]
    administrator: str | None = None
    samus: tuple[str, ...] = (SAMU,)
    national_centre_15: bool = False
    ars_regions: tuple[str, ...] = (ARS_REGION,)

    @property
    def namespace(self) -> str:
        return self.plan.namespace

    @property
    def vhost(self) -> str:
        return self.plan.vhost

    def user(self, actor: str) -> str:
        return self.plan.account(actor).user

    def url(self, actor: str) -> str:
        user = self.user(actor)
        return broker_url(self.base_url, user, self.passwords[user], self.plan.vhost)

    def args(self, *extra: str, centres: Sequence[str] | None = None) -> list[str]:
        """The provisioning command's arguments for this deployment (``centres``: another
        list of centres than the plan's, to provision it again with)."""
        args = ["--vhost", self.plan.vhost, "--namespace", self.namespace]
        if NODE:
            args += ["--node", NODE]
        args += ["--user-suffix", self.suffix, *extra]
        for c in self.plan.centres if centres is None else centres:
            args += ["--centre", c]
        for r in self.referrers:
            args += ["--referrer", r]
        for samu in self.samus:
            args += ["--samu", samu]
        if self.national_centre_15:
            args += ["--national-centre-15"]
        for region in self.ars_regions:
            args += ["--ars-region", region]
        if self.administrator is not None:
            args += ["--administrator", self.administrator]
        return args


@contextlib.asynccontextmanager
async def deployment(
    broker_url_: str,
    tmp_path: Path,
    *,
    centres: Sequence[str] = CENTRES,
    referrers: Sequence[str] = (REFERRER,),
    administrator: bool = False,
    samus: Sequence[str] = (SAMU,),
    national_centre_15: bool = False,
    ars_regions: Sequence[str] = (ARS_REGION,),
) -> AsyncIterator[Deployment]:
    """Provisioned with the command (known passwords from a file); everything it
    created (users, virtual host and all in it) is deleted afterwards, whatever happened.

    ``administrator``: also a user with every right on the virtual host, for tests to
    watch the bus and read dead letters (no service trusts it: it is no operator)."""
    tag = uuid.uuid4().hex[:10]
    suffix = f"-{tag}"
    admin = f"admin{suffix}" if administrator else None
    plan = build_plan(
        f"t-{tag}",
        f"aig-test-{tag}",
        centres=centres,
        referrers=referrers,
        user_suffix=suffix,
        administrator=admin,
        samus=samus,
        national_centre_15=national_centre_15,
        ars_regions=ars_regions,
    )
    passwords = {user: f"pw-{uuid.uuid4().hex}" for user in plan.users}
    password_file = tmp_path / f"passwords-{tag}.json"
    password_file.write_text(json.dumps(passwords))
    d = Deployment(
        broker_url_,
        plan,
        passwords,
        suffix,
        tuple(referrers),
        admin,
        tuple(samus),
        national_centre_15,
        tuple(ars_regions),
    )
    try:
        result = await asyncio.to_thread(
            provision, d.args("--password-file", str(password_file)), broker_url_
        )
        assert result.exit_code == 0, result.output
        yield d
    finally:
        password_file.unlink(missing_ok=True)
        await asyncio.to_thread(remove, plan, Rabbitmqctl(node=NODE))


class Actor:
    """One connection as one user; each operation on a channel of its own, since a
    refusal closes the channel. It publishes as ``EventPublisher`` does: ``user_id`` set
    to its own user, outside actors on the ingress, services on the events exchange."""

    def __init__(self, d: Deployment, actor: str) -> None:
        self.d = d
        self.actor = actor
        self.account = d.plan.account(actor)
        self.connection: AbstractConnection | None = None

    async def __aenter__(self) -> Self:
        self.connection = await aio_pika.connect(self.d.url(self.actor), timeout=10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.connection is not None
        await self.connection.close()

    @property
    def outsider(self) -> bool:
        return self.account.kind not in (AccountKind.SERVICE, AccountKind.ADMINISTRATOR)

    @property
    def replies(self) -> str:
        """The queue provisioned for an outside actor: a centre's own queue, or the
        others' reply queue (an outsider declares none itself)."""
        ns = self.d.namespace
        if self.account.kind is AccountKind.CENTRE:
            return centre_queue(ns, self.actor.removeprefix("centre-")).name(ns)
        return actor_queue(ns, self.actor, ()).name(ns)

    def exchange_name(self, exchange: str | None = None) -> str:
        """``ingress`` or ``events``; by default the one this actor publishes on."""
        if exchange is None:
            exchange = "ingress" if self.outsider else "events"
        if exchange == "ingress":
            return ingress_exchange(self.d.namespace)
        if exchange == "events":
            return events_exchange(self.d.namespace)
        return exchange  # another exchange by its full name (a dead-letter exchange)

    async def on_channel(self, operation: Operation) -> Any:
        assert self.connection is not None
        channel = await self.connection.channel(publisher_confirms=True)
        try:
            return await asyncio.wait_for(operation(channel), 10)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def refused(self, operation: Operation) -> str:
        """The broker's ACCESS_REFUSED for ``operation``; its text."""
        with pytest.raises(ChannelAccessRefused) as refusal:
            await self.on_channel(operation)
        return str(refusal.value)

    def envelope(self, payload: EventPayload, **fields: Any) -> Envelope:
        envelope = Envelope.wrap(payload, source=self.actor, correlation_id=uuid.uuid4().hex)
        return envelope.model_copy(update=fields) if fields else envelope

    def publishing_raw(
        self,
        body: bytes,
        routing_key: str,
        exchange: str | None = None,
        *,
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        user_id: str | None = None,
    ) -> Operation:
        async def publish(channel: AbstractChannel) -> None:
            target = await channel.get_exchange(self.exchange_name(exchange), ensure=False)
            await target.publish(
                aio_pika.Message(
                    body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/json",
                    message_id=message_id or uuid.uuid4().hex,
                    user_id=user_id or self.account.user,
                    headers=dict(headers) if headers else None,
                ),
                routing_key=routing_key,
            )

        return publish

    def publishing(
        self,
        payload: EventPayload | Envelope,
        routing_key: str | None = None,
        exchange: str | None = None,
        *,
        headers: Mapping[str, Any] | None = None,
    ) -> Operation:
        if isinstance(payload, Envelope):
            envelope, key = payload, routing_key or payload.payload().routing_key()
        else:
            envelope, key = self.envelope(payload), routing_key or payload.routing_key()
        raw = self.publishing_raw(
            envelope.model_dump_json().encode(),
            key,
            exchange,
            message_id=envelope.id,
            headers=headers,
        )

        async def publish(channel: AbstractChannel) -> Envelope:
            await raw(channel)
            return envelope

        return publish

    async def publish(
        self,
        payload: EventPayload | Envelope,
        routing_key: str | None = None,
        exchange: str | None = None,
        *,
        headers: Mapping[str, Any] | None = None,
    ) -> Envelope:
        operation = self.publishing(payload, routing_key, exchange, headers=headers)
        envelope: Envelope = await self.on_channel(operation)
        return envelope

    async def get(self, queue: str, timeout: float = 10.0) -> AbstractIncomingMessage:
        """One message from ``queue`` (consumed with this user's rights), acked."""

        async def get(channel: AbstractChannel) -> AbstractIncomingMessage:
            declared = await channel.declare_queue(queue, passive=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = await declared.get(fail=False, timeout=5)
                if message is not None:
                    await message.ack()
                    return message
                await asyncio.sleep(0.1)
            raise TimeoutError(f"nothing in {queue} after {timeout}s")

        assert self.connection is not None
        channel = await self.connection.channel()
        try:
            return await get(channel)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def drain(self, queue: str) -> list[AbstractIncomingMessage]:
        """Everything waiting in ``queue`` now (acked)."""

        async def drain(channel: AbstractChannel) -> list[AbstractIncomingMessage]:
            declared = await channel.declare_queue(queue, passive=True)
            got = []
            while (message := await declared.get(fail=False, timeout=5)) is not None:
                await message.ack()
                got.append(message)
            return got

        drained: list[AbstractIncomingMessage] = await self.on_channel(drain)
        return drained


async def _ignore(message: AbstractIncomingMessage) -> None:
    pass


def consuming(queue: str) -> Operation:
    async def consume(channel: AbstractChannel) -> Any:
        declared = await channel.declare_queue(queue, passive=True)
        return await declared.consume(_ignore)

    return consume


def declaring(queue: str, arguments: Mapping[str, Any] | None = None) -> Operation:
    async def declare(channel: AbstractChannel) -> Any:
        return await channel.declare_queue(
            queue, durable=True, arguments=dict(arguments) if arguments else None
        )

    return declare


def binding(queue: str, exchange: str, key: str) -> Operation:
    async def bind(channel: AbstractChannel) -> Any:
        declared = await channel.declare_queue(queue, passive=True)
        return await declared.bind(exchange, routing_key=key)

    return bind


async def message_count(d: Deployment, actor: str, queue: str) -> int:
    """Passive declaration: needs no permission, counts what waits in the queue."""
    async with Actor(d, actor) as a:

        async def count(channel: AbstractChannel) -> int:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result.message_count
            assert result is not None
            return result

        counted: int = await a.on_channel(count)
        return counted
