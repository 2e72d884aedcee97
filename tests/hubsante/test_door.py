"""The Hub Santé door on the real broker: the hub's test topology in a vhost of the
test's own, a small hub routing as the real one, and an LRM played by the test."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiguillage.hubsante.door import HubSanteDoor
from shared.settings import Settings
from shared.topology import declare_topology
from tests.hubsante_hub import DATA, DOOR, LRM, Lrm, answers, body, door_on_hub, oriented_case

pytestmark = pytest.mark.integration


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[tuple[Lrm, HubSanteDoor]]:
    await declare_topology(settings.broker_url, settings.namespace)
    async with door_on_hub(settings) as (lrm, door):
        yield lrm, door


def kind_of(message: dict[str, Any]) -> str:
    return str(message["distributionKind"])


def error_code(message: dict[str, Any]) -> int:
    return int(body(message)["error"]["errorCode"]["statusCode"])


async def test_every_case_example_is_answered(hub: tuple[Lrm, HubSanteDoor]) -> None:
    lrm, _ = hub
    for path in sorted((DATA / "examples/RS-EDA").glob("*.json")):
        message = lrm.case(DOOR, as_own_case(json.loads(path.read_text())))
        await lrm.publish(message)
        answer = await lrm.wait_for(answers(message["distributionID"]))
        assert kind_of(answer) in ("Ack", "Error"), path.name
        if kind_of(answer) == "Error":
            assert error_code(answer) == 704, (path.name, body(answer)["error"])


def as_own_case(content: dict[str, Any]) -> dict[str, Any]:
    """A hub example as the LRM's own case: its case id under the LRM's client id (the
    examples are other SAMUs', or a fire service's)."""
    case = content["createCaseHealth"]
    case["caseId"] = f"{LRM}.{case['caseId'].rsplit('.', 1)[-1]}"
    return content


def _addressed_to_door(message: dict[str, Any]) -> dict[str, Any]:
    """A failing message as the hub would deliver it to us: addressed to the door, with
    an id of its own (where it has one), its errors kept."""
    adapted = copy.deepcopy(message)
    address = (adapted.get("descriptor") or {}).get("explicitAddress")
    if isinstance(address, dict) and "explicitAddressValue" in address:
        address["explicitAddressValue"] = DOOR
    if isinstance(adapted.get("distributionID"), str):
        adapted["distributionID"] = f"{LRM}_{uuid.uuid4()}"
    return adapted


async def test_every_failing_message_gets_300_and_the_next_goes_on(
    hub: tuple[Lrm, HubSanteDoor],
) -> None:
    lrm, _ = hub
    for path in sorted((DATA / "failing").glob("*.json")):
        message = _addressed_to_door(json.loads(path.read_text()))
        await lrm.publish(message)
        named = message.get("distributionID")
        answer = await lrm.wait_for(answers(named if isinstance(named, str) else "unknown"))
        assert kind_of(answer) == "Error" and error_code(answer) == 300, path.name
        assert body(answer)["error"]["errorCause"].startswith("Could not validate")
        lrm.received.clear()
    example = json.loads(next((DATA / "examples/RS-EDA").glob("*.json")).read_text())
    after = lrm.case(DOOR, as_own_case(example))
    await lrm.publish(after)
    assert kind_of(await lrm.wait_for(answers(after["distributionID"]))) == "Ack"


async def test_sender_inconsistency_gets_200(hub: tuple[Lrm, HubSanteDoor]) -> None:
    lrm, _ = hub
    message = lrm.case(DOOR, oriented_case(f"{LRM}.DRFR15000000001"))
    message["senderID"] = "fr.health.samuB"  # published with samuA's key
    await lrm.publish(message)
    answer = await lrm.wait_for(answers(message["distributionID"]))
    assert kind_of(answer) == "Error" and error_code(answer) == 200
    # Answered to whoever published it, not to whom it claims to be.
    assert answer["descriptor"]["explicitAddress"]["explicitAddressValue"] == LRM


async def test_a_reused_case_id_gets_701(hub: tuple[Lrm, HubSanteDoor]) -> None:
    lrm, _ = hub
    case_id = f"{LRM}.DRFR15000000002"
    first = lrm.case(DOOR, oriented_case(case_id))
    await lrm.publish(first)
    other = lrm.case(DOOR, oriented_case(case_id, age="P40Y"))
    await lrm.publish(other)
    answer = await lrm.wait_for(answers(other["distributionID"]))
    assert kind_of(answer) == "Error" and error_code(answer) == 701


async def test_an_update_of_an_unknown_case_gets_702(hub: tuple[Lrm, HubSanteDoor]) -> None:
    lrm, _ = hub
    update = lrm.case(
        DOOR, {"createCaseHealthUpdate": {"caseId": f"{LRM}.DRFR15000000003"}}, kind="Update"
    )
    await lrm.publish(update)
    answer = await lrm.wait_for(answers(update["distributionID"]))
    assert kind_of(answer) == "Error" and error_code(answer) == 702


async def test_three_schema_errors_get_one_300_naming_all_three(
    hub: tuple[Lrm, HubSanteDoor],
) -> None:
    lrm, _ = hub
    message = lrm.case(DOOR, oriented_case(f"{LRM}.DRFR15000000004"))
    health = body(message)["createCaseHealth"]
    health["patient"][0]["identity"]["strictFeatures"]["sex"] = "X"
    health["qualification"]["details"]["priority"] = "P9"
    health["location"]["city"]["inseeCode"] = 12
    await lrm.publish(message)
    answer = await lrm.wait_for(answers(message["distributionID"]))
    assert kind_of(answer) == "Error" and error_code(answer) == 300
    cause = body(answer)["error"]["errorCause"].splitlines()
    assert cause[0].startswith("Could not validate") and len(cause) == 4, cause
    for path, value in (
        ("strictFeatures.sex", "'X'"),
        ("details.priority", "'P9'"),
        ("city.inseeCode", "12"),
    ):
        assert any(path in line and value in line for line in cause[1:]), (path, cause)
    await asyncio.sleep(0.5)  # room for a wrong second answer to show up
    assert [m for m in lrm.received if answers(message["distributionID"])(m)] == [answer]
