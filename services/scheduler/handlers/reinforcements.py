"""The life of a centre's request for reinforcement after it is kept
(``consultations.on_reinforcement``): the ARS's answers at its door (acknowledged,
granted with boxes, staff and hours, declined with a reason), each judged on the
request as stored here and on the ARS's region, then on the bus keyed by the centre,
whose own queue receives it; and a request left without any word from the ARS for
``UNANSWERED_AFTER``, raised again to the ARS, once (``raise_unanswered``, run every
``CHECK_SECONDS`` by ``ReinforcementWatch``, its clock given by the caller)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from services.scheduler import store
from services.scheduler.domain.reinforcements import told_to_centre
from services.scheduler.handlers.messages import payload_of
from shared.consumer import Delivery
from shared.db import Database, as_utc
from shared.events import (
    ReinforcementAcknowledged,
    ReinforcementAnswer,
    ReinforcementDeclined,
    ReinforcementGranted,
    ReinforcementRaisedAgain,
    ReinforcementState,
)
from shared.outbox import add_to_outbox
from shared.regions import CentreDecisionRefused, Region, judge_reinforcement_answer
from shared.senders import ActorKind, SenderRefused
from shared.settings import ServiceName

log = structlog.get_logger(__name__)

UNANSWERED_AFTER = timedelta(hours=2)
CHECK_SECONDS = 60.0


async def _judge(delivery: Delivery, answer: ReinforcementAnswer) -> Any:
    """The request as stored. Refused (answered to the ARS, never applied) unless the
    request is the named centre's and that centre is of the sender's region."""
    row = await store.reinforcement(delivery.session, answer.request_id)
    sender = delivery.sender
    region = None
    if sender is not None and sender.kind is ActorKind.ARS:
        region = Region(sender.actor)
    stored = row.departement if row is not None and row.centre_id == answer.centre_id else None
    try:
        judge_reinforcement_answer(region, stored)
    except CentreDecisionRefused as refused:
        raise SenderRefused(refused.code, str(refused), refused.field) from None
    return row


async def _tell(delivery: Delivery, answer: ReinforcementAnswer, row: Any) -> None:
    """Applied: on the bus, to the centre's own queue, with the words it reads."""
    told = answer.model_copy(update={"message": told_to_centre(answer, row.count, row.profession)})
    await delivery.emit(told, correlation_id=answer.request_id)


class ReinforcementHandlers:
    # The scheduler's clock (SchedulerHandlers' constructor; tests set it).
    clock: Callable[[], datetime]

    async def on_reinforcement_acknowledged(self, delivery: Delivery) -> None:
        answer = payload_of(delivery, ReinforcementAcknowledged)
        row = await _judge(delivery, answer)
        now = self.clock()
        if await store.acknowledge_reinforcement(
            delivery.session, answer.request_id, now, answer.note
        ):
            await _tell(delivery, answer, row)

    async def on_reinforcement_granted(self, delivery: Delivery) -> None:
        answer = payload_of(delivery, ReinforcementGranted)
        row = await _judge(delivery, answer)
        applied = await store.answer_reinforcement(
            delivery.session,
            answer.request_id,
            state=ReinforcementState.GRANTED.value,
            at=self.clock(),
            answer=answer.note,
            boxes=answer.boxes,
            staff=answer.staff,
            hours=answer.hours,
        )
        if applied:  # an answer given already stands: nothing more is told
            await _tell(delivery, answer, row)

    async def on_reinforcement_declined(self, delivery: Delivery) -> None:
        answer = payload_of(delivery, ReinforcementDeclined)
        row = await _judge(delivery, answer)
        applied = await store.answer_reinforcement(
            delivery.session,
            answer.request_id,
            state=ReinforcementState.DECLINED.value,
            at=self.clock(),
            answer=answer.reason,
        )
        if applied:  # an answer given already stands: nothing more is told
            await _tell(delivery, answer, row)


async def raise_unanswered(database: Database, now: datetime) -> int:
    """Raise again to the ARS each request that has had no word from it for
    ``UNANSWERED_AFTER`` (acknowledged is a word): once per request, whichever replica
    marks it first. Returns how many were raised."""
    raised = 0
    async with database.transaction() as session:
        for row in await store.unanswered_reinforcements(session, now - UNANSWERED_AFTER):
            if not await store.mark_raised_again(session, row.id, now):
                continue
            await add_to_outbox(
                session,
                ReinforcementRaisedAgain(
                    request_id=row.id,
                    centre_id=row.centre_id,
                    departement=row.departement,
                    count=row.count,
                    profession=row.profession,
                    requested_at=as_utc(row.requested_at),
                ),
                source=ServiceName.SCHEDULER.value,
                correlation_id=row.id,
            )
            raised += 1
    if raised:
        log.info("reinforcement requests raised again", count=raised)
    return raised


class ReinforcementWatch:
    """Runs ``raise_unanswered`` every ``CHECK_SECONDS`` on the given clock."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime],
        notify: Callable[[], None],
        every: float = CHECK_SECONDS,
    ) -> None:
        self.database, self.clock, self.notify, self.every = database, clock, notify, every
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                if await raise_unanswered(self.database, self.clock()):
                    self.notify()  # the relay publishes them now, not at its next poll
            except Exception:  # a database away for a while: the next check tries again
                log.exception("reinforcement check failed")
            await asyncio.sleep(self.every)
