"""The ARS's on-call hears of a département's alerts (issue 30): a saturation alert is
e-mailed and texted to the contacts the settings declare for its département, once;
another within the hour is not; its end is told once. Through the real broker, a real
SMTP server (aiosmtpd) and an SMS gateway over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.policy import default

import pytest

from services.notifier.app import build
from shared.events import AlertKind, CapacityAlert, Envelope
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.helpers import running
from tests.integration.test_notifier import Gateway, Mailbox, gateway, mailbox

__all__ = ["gateway", "mailbox"]  # the fixtures, shared with test_notifier

ON_CALL = {"35": [{"email": "astreinte-35@ars.example", "phone": "+33611223344"}]}


@pytest.fixture
async def notifier(
    settings: Settings, mailbox: tuple[Mailbox, int], gateway: tuple[Gateway, int]
) -> AsyncIterator[ServiceRuntime]:
    configured = settings.model_copy(
        update={
            "smtp_port": mailbox[1],
            "sms_gateway_url": f"http://127.0.0.1:{gateway[1]}/sms",
            "oncall_contacts": json.dumps(ON_CALL),
        }
    )
    runtime = build(configured)
    async with running(runtime):
        yield runtime


def _alert(departement: str, kind: AlertKind, *, cleared: bool = False) -> CapacityAlert:
    return CapacityAlert(
        departement=departement,
        kind=kind,
        occupancy_next_24h=0.0 if cleared else 0.97,
        booked_next_24h=0 if cleared else 97,
        capacity_next_24h=100,
        waiting=0 if cleared else 12,
        threshold=0.9,
        cleared=cleared,
    )


async def _on_the_bus(pub: EventPublisher, alert: CapacityAlert) -> None:
    """As the scheduler raises it."""
    envelope = Envelope.wrap(alert, source="scheduler", correlation_id="departement")
    await pub.publish_envelope(envelope, alert.routing_key(), exchange="events")


async def _until(check: object, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not in time")


async def test_a_saturation_is_told_to_the_on_call_once_an_hour_and_its_end_once(
    settings: Settings,
    notifier: ServiceRuntime,
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> None:
    box, sms = mailbox[0], gateway[0].sms
    async with EventPublisher(settings.broker_url, settings.namespace, "t") as pub:
        await _on_the_bus(pub, _alert("35", AlertKind.SATURATION))
        await _until(lambda: len(box.delivered) == 1 and len(sms) == 1)
        # Within the hour: the same département's other cause, and a département with
        # nobody on call declared, tell nobody.
        await _on_the_bus(pub, _alert("35", AlertKind.WAITING_LIST))
        await _on_the_bus(pub, _alert("29", AlertKind.SATURATION))
        await asyncio.sleep(1.5)
        assert len(box.delivered) == 1 and len(sms) == 1
        # It ends: told once, however often the end is heard.
        await _on_the_bus(pub, _alert("35", AlertKind.SATURATION, cleared=True))
        await _on_the_bus(pub, _alert("35", AlertKind.SATURATION, cleared=True))
        await _until(lambda: len(box.delivered) == 2 and len(sms) == 2)
        await asyncio.sleep(1.0)  # room for a wrong third
    assert len(box.delivered) == 2 and len(sms) == 2
    began, ended = (message_from_bytes(m.content, policy=default) for m in box.delivered)
    assert box.delivered[0].rcpt_tos == ["astreinte-35@ars.example"]
    assert began["Subject"] == "Alerte saturation : Ille-et-Vilaine (35)"
    assert "occupation sur 24 h : 97 % (97/100), 12 patient(s) en attente" in (
        began.get_content().lower()
    )
    assert ended["Subject"] == "Fin d'alerte saturation : Ille-et-Vilaine (35)"
    assert [m["to"] for m in sms] == ["+33611223344", "+33611223344"]
    assert sms[1]["text"] == "Aiguillage : fin de l'alerte saturation en Ille-et-Vilaine (35)."


@pytest.mark.parametrize("mailbox", [1], indirect=True)  # the first mail refused (451)
async def test_an_alert_redelivered_or_refused_once_reaches_the_on_call_once(
    settings: Settings,
    notifier: ServiceRuntime,
    mailbox: tuple[Mailbox, int],
    gateway: tuple[Gateway, int],
) -> None:
    """Through the dispatcher like any notice: the same alert delivered twice (one
    envelope id) stages its messages once, and a mail server's temporary refusal is
    tried again, not lost."""
    box, sms = mailbox[0], gateway[0].sms
    envelope = Envelope.wrap(
        _alert("35", AlertKind.SATURATION), source="scheduler", correlation_id="departement"
    )
    async with EventPublisher(settings.broker_url, settings.namespace, "t") as pub:
        for _ in range(2):
            await pub.publish_envelope(envelope, "capacity.alert.35", exchange="events")
        await _until(lambda: len(box.delivered) == 1 and len(sms) == 1)
        await asyncio.sleep(1.5)  # room for a wrong second
    assert box.refused == 1 and len(box.delivered) == 1 and len(sms) == 1
    # The notification's own Message-ID: a resend after a crash repeats it.
    [mail] = box.delivered
    assert message_from_bytes(mail.content, policy=default)["Message-ID"].endswith("@aiguillage>")
