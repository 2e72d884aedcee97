"""What a centre does: listen to its own patients, report outcomes, ask for staff."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

import aio_pika
import typer

from aiguillage.commands.common import publish
from shared.events import (
    CentreCancelReason,
    ConsultationCancelled,
    ConsultationCompleted,
    ConsultationCorrected,
    ConsultationNoShow,
    ConsultationOutcome,
    Envelope,
    EventPayload,
    PatientEscalated,
    ReinforcementRequested,
)
from shared.paris import paris_zone
from shared.settings import Settings, get_settings
from shared.topology import centre_queue, declare_topology

app = typer.Typer(
    help="What a centre does: its patients, their outcomes, reinforcements.", no_args_is_help=True
)

Centre = Annotated[str, typer.Argument(help="The centre's identifier.")]
Appointment = Annotated[str, typer.Option("--appointment", help="The appointment's id.")]
Referral = Annotated[str, typer.Option("--referral", help="The referral's id.")]


def describe(envelope: Envelope) -> str:
    """One line per message of the centre's queue. Times are Paris time, labelled: the
    events carry UTC, the machine running this may be on any zone, the centre reads
    the clock on its wall."""
    data = envelope.data
    if envelope.type == "request.refused":
        # The answer to a report of this centre's that a door did not apply.
        return (
            f"REFUSED    {data.get('refused_type') or 'message'} "
            f"{data.get('source_message_id') or ''}  {data['error_code']}: {data['cause']}"
        )
    if "start" not in data:
        return f"{envelope.type}  {envelope.correlation_id}"
    start = paris_zone(datetime.fromisoformat(data["start"]))
    test = "test to prescribe" if data.get("test_eligible") else "no test"
    if envelope.type == "slot.assigned":
        return (
            f"NEW        {start}  box {data['box']}  {data['patient_ref']}  "
            f"priority {data['priority']}  {test}  appointment {data['appointment_id']}"
        )
    if envelope.type == "appointment.rescheduled":
        return (
            f"MOVED IN   {start}  box {data['box']}  {data['patient_ref']}  "
            f"from {data['previous_centre_id']}  {test}  appointment {data['appointment_id']}"
        )
    return f"CANCELLED  {start}  {data['patient_ref']}  ({data['reason']})"


async def listen_async(
    settings: Settings, centre_id: str, count: int | None, timeout: float | None
) -> int:
    """Print the centre's patients as they arrive (its own queue, nothing of others)."""
    spec = centre_queue(settings.namespace, centre_id)
    # A centre's own user may not declare anything: its queue then must exist already.
    await declare_topology(settings.broker_url, settings.namespace, [spec])
    seen = 0
    done = asyncio.Event()
    connection = await aio_pika.connect_robust(settings.broker_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(spec.name(settings.namespace), passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            async with message.process():
                typer.echo(describe(Envelope.model_validate_json(message.body)))
            seen += 1
            if count is not None and seen >= count:
                done.set()

        await queue.consume(on_message)
        typer.echo(f"listening to {spec.name(settings.namespace)} (Ctrl-C to stop)", err=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
    return seen


@app.command()
def listen(
    centre_id: Centre,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Print the centre's patients as they are assigned, moved in or cancelled."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(listen_async(get_settings(), centre_id, count, timeout))


def _report(centre_id: str, payload: EventPayload, referral_id: str) -> None:
    event_id = publish(get_settings(), f"centre:{centre_id}", payload, referral_id)
    typer.echo(f"{payload.event_type} published (event {event_id})")


@app.command()
def seen(
    centre_id: Centre, appointment: Appointment, referral: Referral, test_prescribed: bool = False
) -> None:
    """The patient was seen (consultation.completed)."""
    _report(
        centre_id,
        ConsultationCompleted(
            appointment_id=appointment,
            referral_id=referral,
            centre_id=centre_id,
            test_prescribed=test_prescribed,
        ),
        referral,
    )


@app.command("no-show")
def no_show(centre_id: Centre, appointment: Appointment, referral: Referral) -> None:
    """The patient did not come (consultation.no_show): the slot is freed."""
    _report(
        centre_id,
        ConsultationNoShow(appointment_id=appointment, referral_id=referral, centre_id=centre_id),
        referral,
    )


@app.command()
def cancel(
    centre_id: Centre,
    appointment: Appointment,
    referral: Referral,
    reason: Annotated[
        CentreCancelReason | None, typer.Option(help="Why the centre could not hold it.")
    ] = None,
) -> None:
    """The centre could not hold the consultation (consultation.cancelled), from the
    slot's start: the patient is booked again at once, or waitlisted. Never corrected."""
    _report(
        centre_id,
        ConsultationCancelled(
            appointment_id=appointment,
            referral_id=referral,
            centre_id=centre_id,
            reason_code=reason,
        ),
        referral,
    )


# "annulé" is not a correction (a cancelled consultation is never corrected, nor
# corrected into: shared/outcomes.py): the option offers seen and no-show only.
class Corrected(StrEnum):
    SEEN = ConsultationOutcome.SEEN.value
    NO_SHOW = ConsultationOutcome.NO_SHOW.value


@app.command()
def correct(
    centre_id: Centre,
    appointment: Appointment,
    referral: Referral,
    outcome: Annotated[Corrected, typer.Option(help="The outcome that stands from now on.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit).")] = "",
    test_prescribed: bool = False,
) -> None:
    """Correct the outcome recorded (seen <-> no-show) within 24 hours of recording it
    (consultation.corrected); a refusal comes back on the centre's own queue."""
    _report(
        centre_id,
        ConsultationCorrected(
            appointment_id=appointment,
            referral_id=referral,
            centre_id=centre_id,
            outcome=ConsultationOutcome(outcome.value),
            reason=reason,
            test_prescribed=test_prescribed,
        ),
        referral,
    )


@app.command()
def escalate(
    centre_id: Centre,
    referral: Referral,
    reason: str,
    appointment: Annotated[str | None, typer.Option("--appointment")] = None,
) -> None:
    """Hand a deteriorating patient back to Centre 15 (patient.escalated)."""
    _report(
        centre_id,
        PatientEscalated(
            referral_id=referral, centre_id=centre_id, appointment_id=appointment, reason=reason
        ),
        referral,
    )


@app.command()
def reinforce(
    centre_id: Centre,
    count: int,
    profession: str,
    from_date: Annotated[str, typer.Option("--from")] = "",
    note: str = "",
) -> None:
    """Ask the ARS for health professionals (reinforcement.requested)."""
    payload = ReinforcementRequested(
        centre_id=centre_id,
        count=count,
        profession=profession,
        note=note,
        from_date=date.fromisoformat(from_date) if from_date else date.today(),
    )
    _report(centre_id, payload, centre_id)
