"""Issue 28, the door's part: no sender can stall the door, and a SAMU's cases are its
own. Each test replays an attack on the real broker (the hub's test topology in a
vhost of the test's own, the door, the LRMs; intake played by the test)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aio_pika
import pytest

from aiguillage.hubsante.door import HubSanteDoor
from shared.events import Envelope
from shared.settings import Settings
from shared.topology import declare_topology
from tests.hubsante_hub import (
    DATA,
    DOOR,
    LRM,
    FakeIntake,
    Lrm,
    answers,
    body,
    door_on_hub,
    oriented_case,
)

pytestmark = pytest.mark.integration

SAMU_B = "fr.health.samuB"  # another SAMU of the hub's test topology
ANNEXE = f"{LRM}.annexe"  # a client id that samuA's own begins
HUB_TTL_SECONDS = 5.0  # the hub's message-ttl on <id>.message / .ack / .info


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[tuple[Lrm, HubSanteDoor, FakeIntake]]:
    await declare_topology(settings.broker_url, settings.namespace)
    async with (
        door_on_hub(settings, clients=(ANNEXE,)) as (lrm, door),
        FakeIntake(settings) as intake,
    ):
        yield lrm, door, intake


def code_of(message: dict[str, Any]) -> int | None:
    error = body(message).get("error")
    return int(error["errorCode"]["statusCode"]) if error else None


def cause_of(message: dict[str, Any]) -> str:
    error = body(message).get("error")
    return str(error["errorCause"]) if error else ""


def unknown_with(cause: str) -> Callable[[dict[str, Any]], bool]:
    """An answer to a message without an id, whose cause says ``cause``."""
    return lambda message: answers("unknown")(message) and cause in cause_of(message)


def not_oriented(case_id: str) -> dict[str, Any]:
    """A valid case the regulator advised on (CONSEIL): acknowledged at once."""
    content = oriented_case(case_id)
    content["createCaseHealth"]["decision"][0] |= {"decisionType": "CONSEIL"}
    del content["createCaseHealth"]["decision"][0]["orientationType"]
    return content


def submission_of(case_id: str) -> Callable[[Envelope], bool]:
    return lambda envelope: envelope.data.get("reference") == case_id


async def booked(lrm: Lrm, intake: FakeIntake, case_id: str) -> str:
    """The LRM's oriented case, acknowledged by intake (played): its referral id."""
    message = lrm.case(DOOR, oriented_case(case_id))
    await lrm.publish(message)
    submitted = await intake.wait_for("referral.submitted", submission_of(case_id))
    referral_id = await intake.acknowledge(submitted.id, case_id)
    answer = await lrm.wait_for(answers(message["distributionID"]))
    assert answer["distributionKind"] == "Ack", body(answer)
    return referral_id


async def cancelled_referral(lrm: Lrm, intake: FakeIntake, case_id: str) -> str:
    """The LRM cancels its case: the referral the door cancels."""
    intake.received.clear()
    cancel = lrm.case(DOOR, {"createCaseHealthUpdate": {"caseId": case_id}}, kind="Cancel")
    await lrm.publish(cancel)
    done = await lrm.wait_for(answers(cancel["distributionID"]))
    assert done["distributionKind"] == "Ack", body(done)
    return str((await intake.wait_for("referral.cancelled")).data["referral_id"])


async def queue_is_empty(door: HubSanteDoor) -> bool:
    connection = await aio_pika.connect(door.settings.hubsante_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{DOOR}.message", passive=True)
        return queue.declaration_result.message_count == 0


def slowed(
    door: HubSanteDoor, slow_case: str, seconds: float, calls: list[tuple[str, str]]
) -> None:
    """The door's create and cancel, recording when each starts and ends; ``slow_case``'s
    create takes ``seconds`` more."""

    def wrap(
        name: str, real: Callable[..., Awaitable[None]]
    ) -> Callable[..., Coroutine[Any, Any, None]]:
        async def recorded(case: dict[str, Any], *args: Any) -> None:
            calls.append((f"{name} start", case["caseId"]))
            if name == "create" and case["caseId"] == slow_case:
                await asyncio.sleep(seconds)
            await real(case, *args)
            calls.append((f"{name} end", case["caseId"]))

        return recorded

    door.create = wrap("create", door.create)  # type: ignore[method-assign]
    door.cancel = wrap("cancel", door.cancel)  # type: ignore[method-assign]


# -- no sender can stall the door ------------------------------------------------------


async def test_a_message_crafted_to_backtrack_is_answered_within_1s_and_the_next_case_in_the_ttl(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """The caseId pattern ``^([a-zA-Z0-9_-]+\\.?){4,10}$`` on 33 letters and a ``!``: 7 s
    on Python's re, with the door stalled behind it; RE2 (schema.matcher) answers at
    once. The valid case sent right after it is answered within the hub's TTL."""
    lrm, _, intake = hub
    content = oriented_case(f"{LRM}.DRFR15000000100")
    content["createCaseHealth"]["caseId"] = "a" * 33 + "!"
    crafted = lrm.case(DOOR, content)
    valid_id = f"{LRM}.DRFR15000000101"
    valid = lrm.case(DOOR, oriented_case(valid_id))
    sent = time.monotonic()
    await lrm.publish(crafted)
    await lrm.publish(valid)
    refused = await lrm.wait_for(answers(crafted["distributionID"]), timeout=HUB_TTL_SECONDS)
    assert time.monotonic() - sent < 1.0
    assert code_of(refused) == 300 and "caseId" in body(refused)["error"]["errorCause"]
    submitted = await intake.wait_for("referral.submitted", submission_of(valid_id))
    await intake.acknowledge(submitted.id, valid_id)
    answer = await lrm.wait_for(answers(valid["distributionID"]), timeout=HUB_TTL_SECONDS)
    assert answer["distributionKind"] == "Ack"
    assert time.monotonic() - sent < HUB_TTL_SECONDS


async def test_nested_json_is_answered_300_once_and_not_requeued(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """``[`` × 5,000 made json.loads raise RecursionError, which requeued the message
    1,294 times in 5 s. guard.too_deep refuses it before parsing; so a body over the size
    bound; each is answered once (to the key it came with), acked, and the next goes on."""
    lrm, door, _ = hub
    handled: list[object] = []
    real = door.handle

    async def counted(message: Any, published_with: str | None) -> None:
        handled.append(message)
        await real(message, published_with)

    door.handle = counted  # type: ignore[method-assign]
    too_big = json.dumps({"padding": "x" * door.settings.max_message_bytes}).encode()
    for raw, cause in ((b"[" * 5000, "imbriqué"), (too_big, "octets")):
        await lrm.publish_raw(raw)
        answer = await lrm.wait_for(unknown_with(cause))
        assert code_of(answer) == 300
    after = lrm.case(DOOR, not_oriented(f"{LRM}.DRFR15000000102"))
    await lrm.publish(after)
    assert (await lrm.wait_for(answers(after["distributionID"])))["distributionKind"] == "Ack"
    await asyncio.sleep(1.0)  # a requeue would have come back by now, many times
    assert len(handled) == 3
    assert sum(1 for m in lrm.received if answers("unknown")(m)) == 2
    assert await queue_is_empty(door)


async def test_an_invalid_message_claiming_another_samu_is_answered_to_its_publisher(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """The RS-ERROR, with the message it answers, goes to the key the message was
    published with (guard.publisher), never to the senderID it claims."""
    lrm, door, _ = hub
    async with Lrm(door.settings.hubsante_url, SAMU_B) as samu_b:
        message = lrm.case(DOOR, oriented_case(f"{SAMU_B}.DRFR15000000103"))
        message["senderID"] = SAMU_B
        message["distributionID"] = f"{SAMU_B}_{uuid.uuid4()}"
        del message["dateTimeSent"]  # invalid: answered 300 with the message itself
        await lrm.publish(message)
        answer = await lrm.wait_for(answers(message["distributionID"]))
        assert code_of(answer) == 300
        assert body(answer)["error"]["sourceMessage"]["senderID"] == SAMU_B
        assert answer["descriptor"]["explicitAddress"]["explicitAddressValue"] == LRM
        await asyncio.sleep(1.0)
        assert samu_b.received == []


async def test_messages_are_handled_at_once_and_one_case_s_in_order(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """Lanes: a slow case holds neither the door nor another case; its own Cancel waits
    for it (arrival order per case)."""
    lrm, door, _ = hub
    slow, quick = f"{LRM}.DRFR15000000104", f"{LRM}.DRFR15000000105"
    calls: list[tuple[str, str]] = []
    slowed(door, slow, 1.5, calls)
    first = lrm.case(DOOR, not_oriented(slow))
    cancel = lrm.case(DOOR, {"createCaseHealthUpdate": {"caseId": slow}}, kind="Cancel")
    second = lrm.case(DOOR, not_oriented(quick))
    for message in (first, cancel, second):
        await lrm.publish(message)
    assert (await lrm.wait_for(answers(second["distributionID"])))["distributionKind"] == "Ack"
    assert ("create end", slow) not in calls  # the quick case did not wait for the slow one
    assert (await lrm.wait_for(answers(first["distributionID"])))["distributionKind"] == "Ack"
    # Not held (not oriented): its Cancel is answered 702, after the create, never before.
    assert code_of(await lrm.wait_for(answers(cancel["distributionID"]))) == 702
    assert calls.index(("create end", slow)) < calls.index(("cancel start", slow))


async def test_a_message_over_its_budget_is_answered_700_and_acked(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    lrm, door, _ = hub
    door.budget_seconds = 0.5
    slow = f"{LRM}.DRFR15000000106"
    slowed(door, slow, 5.0, [])
    message = lrm.case(DOOR, not_oriented(slow))
    sent = time.monotonic()
    await lrm.publish(message)
    answer = await lrm.wait_for(answers(message["distributionID"]))
    assert code_of(answer) == 700 and time.monotonic() - sent < 1.5
    after = lrm.case(DOOR, not_oriented(f"{LRM}.DRFR15000000107"))
    await lrm.publish(after)
    assert (await lrm.wait_for(answers(after["distributionID"])))["distributionKind"] == "Ack"
    assert await queue_is_empty(door)


# -- a SAMU's cases are its own --------------------------------------------------------


async def test_a_case_id_not_beginning_with_its_sender_s_id_is_refused_200(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """guard.case_refusal: another SAMU's case id, or a case a fire service created
    (the hub's own example), from samuA: 200 SENDER_INCONSISTENCY, nothing submitted,
    the other SAMU told nothing."""
    lrm, door, intake = hub
    fire = json.loads(
        (DATA / "examples/RS-EDA/RS-EDA-SMUR_FemmeEnceinte_DelphineVigneau.01.json").read_text()
    )
    assert fire["createCaseHealth"]["caseId"].startswith("fr.fire.")
    async with Lrm(door.settings.hubsante_url, SAMU_B) as samu_b:
        for content in (oriented_case(f"{SAMU_B}.DRFR15000000108"), fire):
            message = lrm.case(DOOR, content)
            await lrm.publish(message)
            answer = await lrm.wait_for(answers(message["distributionID"]))
            assert code_of(answer) == 200, body(answer)
        await asyncio.sleep(0.5)
        assert samu_b.received == []
        assert intake.received == []


async def test_another_samu_cannot_take_or_cancel_a_samu_s_case(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """samuB sends samuA's case id, other content, then cancels it: refused 200 (not
    701, which would tell it the case exists); samuA's case stays its referral's."""
    lrm, door, intake = hub
    case_id = f"{LRM}.DRFR15000000109"
    referral_id = await booked(lrm, intake, case_id)
    async with Lrm(door.settings.hubsante_url, SAMU_B) as samu_b:
        taken = samu_b.case(DOOR, oriented_case(case_id, age="P40Y"))
        cancel = samu_b.case(DOOR, {"createCaseHealthUpdate": {"caseId": case_id}}, kind="Cancel")
        for message in (taken, cancel):
            await samu_b.publish(message)
            assert code_of(await samu_b.wait_for(answers(message["distributionID"]))) == 200
    assert [e for e in intake.received if e.type == "referral.cancelled"] == []
    assert await cancelled_referral(lrm, intake, case_id) == referral_id


async def test_two_senders_with_the_same_case_id_hold_two_cases(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """``fr.health.samuA.annexe.X`` begins both samuA's id and samuA.annexe's: the door
    keys cases by (sender, case id), so each holds its own (no 701), bound to its own
    referral."""
    lrm, door, intake = hub
    case_id = f"{ANNEXE}.DRFR15000000110"
    async with Lrm(door.settings.hubsante_url, ANNEXE) as annexe:
        mine = await booked(lrm, intake, case_id)
        intake.received.clear()
        other = copy.deepcopy(oriented_case(case_id, age="P40Y"))
        message = annexe.case(DOOR, other)
        await annexe.publish(message)
        submitted = await intake.wait_for("referral.submitted", submission_of(case_id))
        theirs = await intake.acknowledge(submitted.id, case_id)
        assert (await annexe.wait_for(answers(message["distributionID"])))[
            "distributionKind"
        ] == "Ack"
        assert await cancelled_referral(annexe, intake, case_id) == theirs
    assert await cancelled_referral(lrm, intake, case_id) == mine


async def test_an_answer_to_another_submission_naming_the_case_cannot_re_point_it(
    hub: tuple[Lrm, HubSanteDoor, FakeIntake],
) -> None:
    """Another Centre 15 client's HTTP submission with the case id as its reference:
    intake's answer to it names the case id, on Centre 15's reply key, which the door
    reads. The door follows the answer to its own submission only (its message id):
    the LRM's Cancel cancels the LRM's referral, not the other one."""
    lrm, _, intake = hub
    case_id = f"{LRM}.DRFR15000000111"
    message = lrm.case(DOOR, oriented_case(case_id))
    await lrm.publish(message)
    submitted = await intake.wait_for("referral.submitted", submission_of(case_id))
    await intake.acknowledge(str(uuid.uuid4()), case_id)  # before the case's own answer
    await asyncio.sleep(0.5)
    assert not [m for m in lrm.received if answers(message["distributionID"])(m)]
    genuine = await intake.acknowledge(submitted.id, case_id)
    assert (await lrm.wait_for(answers(message["distributionID"])))["distributionKind"] == "Ack"
    await intake.acknowledge(str(uuid.uuid4()), case_id)  # and after
    await asyncio.sleep(0.5)
    assert await cancelled_referral(lrm, intake, case_id) == genuine
