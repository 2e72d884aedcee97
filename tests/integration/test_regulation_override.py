"""A regulator's decision supersedes the one that stands, by event (regulation.decided)
or over HTTP, under the protocol that applies; the audit trail and the held queue.
Regulation runs in-process on the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from aiguillage.cli import app as cli
from services.regulation.app import build
from services.regulation.store.tables import cases, decisions
from shared.auth import Role, issue_token
from shared.events import (
    Clinical,
    Decision,
    Envelope,
    Priority,
    Purpose,
    ReferralReceived,
    ReferrerKind,
    ReferrerRef,
    RegulationDecided,
    RiskFactor,
    Sex,
    Vitals,
    utcnow,
)
from shared.events.vocabulary import AttachedDecision
from shared.http import read_port_file
from shared.publisher import EventPublisher
from shared.release import versioned_source
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings, get_settings
from shared.topology import declare_topology
from tests.helpers import Tap, dead_letters
from tests.helpers import running as started

pytestmark = pytest.mark.integration


def held_referral(referral_id: str) -> ReferralReceived:
    """At risk (72, heart failure) and no vitals measured: v1 holds it for a regulator."""
    return ReferralReceived(
        referral_id=referral_id,
        patient_ref=f"pat-{referral_id}",
        age=72,
        sex=Sex.MALE,
        commune_insee="35238",
        departement="35",
        clinical=Clinical(
            symptomatic=True,
            symptoms=("cough",),
            risk_factors=(RiskFactor.HEART_FAILURE_NYHA_3_4,),
        ),
        referrer=ReferrerRef(kind=ReferrerKind.GP, identifier="10001234567", reply_to="tests"),
        purpose=Purpose.CONSULTATION,
        submitted_at=utcnow(),
    )


def mild_referral(referral_id: str) -> ReferralReceived:
    """45, normal vitals: v1 orients it, routine."""
    return held_referral(referral_id).model_copy(
        update={
            "age": 45,
            "clinical": Clinical(
                symptomatic=True,
                symptoms=("cough",),
                vitals=Vitals(spo2=97.0, respiratory_rate=16, systolic_bp=120),
            ),
        }
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    async with started(build(settings)) as runtime:
        yield runtime


def regulated_of(tap: Tap, referral_id: str) -> list[Envelope]:
    return [e for e in tap.of_type("referral.regulated") if e.data["referral_id"] == referral_id]


async def refer(settings: Settings, tap: Tap, *referrals: ReferralReceived) -> None:
    """Publish the referrals and wait for regulation's automatic decisions."""
    async with EventPublisher(settings.broker_url, settings.namespace, "intake") as intake:
        for referral in referrals:
            await intake.publish(referral, correlation_id=referral.referral_id)
    await tap.wait_for(
        lambda es: all(len(regulated_of(tap, r.referral_id)) >= 1 for r in referrals),
        timeout=20,
    )


async def test_a_regulator_releases_a_held_referral_by_event(settings: Settings) -> None:
    s = settings
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
    ):
        await refer(s, tap, held_referral("held-1"))
        [held] = regulated_of(tap, "held-1")
        assert (held.data["decision"], held.data["decided_by"]) == ("hold", "protocol")
        async with EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15:
            decided = await centre_15.publish(
                RegulationDecided(
                    referral_id="held-1",
                    regulator_id="DR-house",
                    decision=Decision.ORIENT,
                    comment="SpO2 96 % on the phone",
                ),
                correlation_id="held-1",
            )
        at = utcnow()
        await tap.wait_for(lambda es: len(regulated_of(tap, "held-1")) == 2, timeout=20)
        released = regulated_of(tap, "held-1")[1]
        async with runtime.database.transaction() as session:
            trail = (
                await session.execute(
                    select(decisions)
                    .where(decisions.c.referral_id == "held-1")
                    .order_by(decisions.c.decided_at)
                )
            ).all()
            current = await session.scalar(
                select(cases.c.current_decision_id).where(cases.c.referral_id == "held-1")
            )

    data = released.data
    assert released.causation_id == decided.id and released.correlation_id == "held-1"
    assert data["decision"] == "orient"
    # No priority given: the protocol's for this case (at risk: asap, within 6 h).
    assert data["priority"] == "asap"
    deadline = datetime.fromisoformat(data["deadline"])
    assert abs(deadline - (at + timedelta(hours=6))) < timedelta(seconds=30)
    assert data["test_eligible"] is True  # symptomatic and at risk
    assert data["decided_by"] == "DR-house"
    assert data["supersedes"] == held.data["decision_id"]
    assert data["protocol_version"] == "1"
    codes = [r["code"] for r in data["reasons"]]
    assert codes[:2] == ["regulator.orient", "protocol.hold"]
    assert "risk.factor.heart_failure_nyha_3_4" in codes
    assert "SpO2 96 % on the phone" in data["reasons"][0]["message"]
    # Append-only: the held decision is still there, superseded.
    assert [(r.decision, r.decided_by, r.supersedes) for r in trail] == [
        ("hold", "protocol", None),
        ("orient", "DR-house", held.data["decision_id"]),
    ]
    assert trail[1].comment == "SpO2 96 % on the phone"
    assert current == data["decision_id"] == trail[1].id


async def test_unknown_referral_is_retried_then_dead_lettered(settings: Settings) -> None:
    s = settings
    async with running(s), EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15:
        await centre_15.publish(
            RegulationDecided(referral_id="nobody", regulator_id="DR-x", decision=Decision.REFUSE),
            correlation_id="nobody",
        )
        [letter] = await dead_letters(s.broker_url, s.namespace, "regulation", expected=1)
    assert letter.headers["x-error-code"] == "retries_exhausted"
    assert letter.headers["x-attempts"] == s.max_deliveries
    assert "nobody" in str(letter.headers["x-error"])


async def test_decisions_that_cannot_stand_are_dead_lettered_at_once(settings: Settings) -> None:
    s = settings
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
    ):
        await refer(s, tap, mild_referral("mild-1"))
        async with EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15:
            for decision, priority in [
                (Decision.REFUSE, Priority.ASAP),  # a priority means an orientation
                (Decision.ORIENT, Priority.STAT),  # stat is an escalation
            ]:
                await centre_15.publish(
                    RegulationDecided(
                        referral_id="mild-1",
                        regulator_id="DR-x",
                        decision=decision,
                        priority=priority,
                    ),
                    correlation_id="mild-1",
                )
        letters = await dead_letters(s.broker_url, s.namespace, "regulation", expected=2)
        await asyncio.sleep(0.3)
        async with runtime.database.transaction() as session:
            count = len((await session.execute(select(decisions.c.id))).all())
    assert [m.headers["x-error-code"] for m in letters] == ["invalid_decision"] * 2
    assert all(m.headers["x-attempts"] == 1 for m in letters)
    errors = " ".join(str(m.headers["x-error"]) for m in letters)
    assert "qu'à une orientation" in errors and "adresser au SAMU" in errors
    assert count == 1 and len(regulated_of(tap, "mild-1")) == 1


async def test_http_decision_audit_trail_and_held_queue(settings: Settings) -> None:
    s = settings

    def client(runtime: ServiceRuntime, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=runtime.http_app),
            base_url="http://regulation",
            headers=headers,
        )

    # A regulator of SAMU 35 (the referrals are of Rennes): decided_by is the person.
    regulator = issue_token(s, Role.CENTRE_15, "samu-35:DR-ward", ServiceName.REGULATION)
    centre = issue_token(s, Role.CENTRE, "rennes-poterie", ServiceName.REGULATION)
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
    ):
        await refer(s, tap, held_referral("h-1"), held_referral("h-2"), mild_referral("m-1"))
        orient = {"decision": "orient", "priority": "urgent", "comment": "seen the file"}
        async with client(runtime, None) as anonymous:
            assert (await anonymous.post("/referrals/h-1/decision", json=orient)).status_code == 401
            assert (await anonymous.get("/referrals/h-1/decisions")).status_code == 401
            assert (await anonymous.get("/held")).status_code == 401
        async with client(runtime, centre) as other:
            assert (await other.post("/referrals/h-1/decision", json=orient)).status_code == 403
            assert (await other.get("/referrals/h-1/decisions")).status_code == 403
            assert (await other.get("/held")).status_code == 403
        async with client(runtime, regulator) as http:
            queue = (await http.get("/held")).json()["held"]
            assert [c["referral_id"] for c in queue] == ["h-1", "h-2"]
            assert queue[0]["reasons"][0]["code"] == "hold.no_vitals"

            missing = await http.post("/referrals/nobody/decision", json=orient)
            assert missing.status_code == 404
            assert (await http.get("/referrals/nobody/decisions")).status_code == 404
            wrong = await http.post(
                "/referrals/m-1/decision", json={"decision": "home_follow_up", "priority": "asap"}
            )
            assert wrong.status_code == 422 and "qu'à une orientation" in wrong.text
            unknown = await http.post("/referrals/m-1/decision", json={"decision": "maybe"})
            assert unknown.status_code == 422

            released = await http.post("/referrals/h-1/decision", json=orient)
            assert released.status_code == 201, released.text
            body = released.json()
            # Urgent is not a v1 orientation: the deadline of asap, the next more urgent.
            assert (body["decision"], body["priority"]) == ("orient", "urgent")
            assert body["decided_by"] == "DR-ward"
            escalated = await http.post(
                "/referrals/m-1/decision", json={"decision": "escalate", "comment": "dyspnoea"}
            )
            assert escalated.status_code == 201
            assert (escalated.json()["priority"], escalated.json()["deadline"] is not None) == (
                "stat",
                True,
            )
            queue_after = (await http.get("/held")).json()["held"]
            trail = (await http.get("/referrals/h-1/decisions")).json()
        await tap.wait_for(
            lambda es: len(regulated_of(tap, "h-1")) == 2 and len(regulated_of(tap, "m-1")) == 2,
            timeout=20,
        )

    assert [c["referral_id"] for c in queue_after] == ["h-2"]
    first, second = trail["decisions"]
    assert (first["decision"], first["decided_by"], first["current"]) == ("hold", "protocol", False)
    assert (second["decision"], second["decided_by"], second["current"]) == (
        "orient",
        "DR-ward",
        True,
    )
    assert second["supersedes"] == first["decision_id"]
    assert trail["current_decision_id"] == second["decision_id"] == body["decision_id"]
    assert second["comment"] == "seen the file" and second["protocol_version"] == "1"
    assert datetime.fromisoformat(second["deadline"]) - datetime.fromisoformat(
        second["decided_at"]
    ) == timedelta(hours=6)
    # The HTTP decision reaches the others as any decision does, through the outbox.
    event = regulated_of(tap, "h-1")[1]
    assert event.id == body["event_id"] and event.source == versioned_source("regulation")
    assert event.data["decision_id"] == body["decision_id"]
    assert event.data["supersedes"] == first["decision_id"]
    assert regulated_of(tap, "m-1")[1].data["decision"] == "escalate"


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    # The command reads the environment through the cached settings: fresh each time.
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, args, env=env)
    finally:
        get_settings.cache_clear()


async def test_the_commands_decide_and_read_the_trail(settings: Settings) -> None:
    # Port 0 and a port file: regulation binds a free port and says which.
    ports = settings.data_dir / "ports"
    s = settings.model_copy(update={"regulation_http_port": 0, "port_file_dir": ports})
    await declare_topology(s.broker_url, s.namespace)
    async with (
        running(s),
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
    ):
        env = {
            "AIGUILLAGE_BROKER_URL": s.broker_url,
            "AIGUILLAGE_NAMESPACE": s.namespace,
            "AIGUILLAGE_REGULATION_HTTP_PORT": str(read_port_file(ports, "regulation")),
            "AIGUILLAGE_AUTH_SECRET": s.auth_secret,
        }
        await refer(s, tap, held_referral("cli-1"))
        refused = await asyncio.to_thread(
            _invoke,
            [
                *("regulate", "decide", "cli-1", "--decision", "refuse"),
                *("--regulator", "DR-x", "--priority", "asap"),
            ],
            env,
        )
        assert refused.exit_code == 2 and "orientation only" in refused.output
        decided = await asyncio.to_thread(
            _invoke,
            [
                *("regulate", "decide", "cli-1", "--decision", "orient", "--priority", "routine"),
                *("--regulator", "DR-cli", "--comment", "called back, better"),
            ],
            env,
        )
        assert decided.exit_code == 0, decided.output
        await tap.wait_for(lambda es: len(regulated_of(tap, "cli-1")) == 2, timeout=20)
        samu = ["--samu", "samu-35"]
        audit = await asyncio.to_thread(_invoke, ["regulate", "audit", "cli-1", *samu], env)
        held = await asyncio.to_thread(_invoke, ["regulate", "held", *samu], env)
        unknown = await asyncio.to_thread(_invoke, ["regulate", "audit", "nobody", *samu], env)
        # Without a SAMU, as the national Centre 15: refused unless the deployment enables it.
        national = await asyncio.to_thread(_invoke, ["regulate", "held"], env)
    assert audit.exit_code == 0, audit.output
    # The services of this very process may log meanwhile: look for the command's lines.
    lines = audit.stdout.splitlines()
    assert [line for line in lines if line.startswith("referral ")] == [
        "referral cli-1: 2 decision(s)"
    ]
    held_line, orient_line = [line for line in lines if re.match(r"[ *] \d{4}-", line)]
    assert held_line.startswith("  ") and " protocol " in held_line and " hold " in held_line
    assert orient_line.startswith("* ") and " DR-cli " in orient_line
    assert "orient routine" in orient_line and "protocol v1" in orient_line
    assert "comment: called back, better" in audit.stdout
    assert "regulator.orient" in audit.stdout and "hold.no_vitals" in audit.stdout
    assert held.exit_code == 0 and "0 held" in held.stdout.splitlines()
    assert unknown.exit_code == 1 and "404" in unknown.stderr
    assert national.exit_code == 1 and "403" in national.stderr


def centre_15_referral(referral_id: str, samu: str) -> ReferralReceived:
    """32, no risk factor, no vitals, from a SAMU in Rennes (35), with its regulator's
    orientation attached (the Hub Santé door's): v1 alone would send them home."""
    return held_referral(referral_id).model_copy(
        update={
            "age": 32,
            "clinical": Clinical(symptomatic=True, symptoms=("cough",)),
            "referrer": ReferrerRef(kind=ReferrerKind.CENTRE_15, identifier=samu),
            "regulator_decision": AttachedDecision(
                regulator_id="Dr Sophie Bernard",
                decision=Decision.ORIENT,
                priority=Priority.URGENT,
                comment="Hub Santé, dossier x",
            ),
        }
    )


async def test_a_decision_attached_by_centre_15_is_the_first_decision(
    settings: Settings,
) -> None:
    s = settings
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
    ):
        await refer(
            s,
            tap,
            centre_15_referral("c15-own", "samu-35"),
            # Another SAMU's decision for a patient of 35: not applied, the protocol decides.
            centre_15_referral("c15-other", "samu-75"),
        )
        await asyncio.sleep(0.3)  # room for a wrong second decision to show up
        async with runtime.database.transaction() as session:
            trail = (
                await session.execute(
                    select(decisions.c.referral_id, decisions.c.decided_by, decisions.c.comment)
                    .where(decisions.c.referral_id.in_(["c15-own", "c15-other"]))
                    .order_by(decisions.c.referral_id)
                )
            ).all()
    [own] = regulated_of(tap, "c15-own")
    assert (own.data["decision"], own.data["priority"]) == ("orient", "urgent")
    assert own.data["decided_by"] == "Dr Sophie Bernard"
    assert [r["code"] for r in own.data["reasons"]][:2] == [
        "regulator.orient",
        "protocol.home_follow_up",
    ]
    [other] = regulated_of(tap, "c15-other")
    assert (other.data["decision"], other.data["decided_by"]) == ("home_follow_up", "protocol")
    assert [tuple(r) for r in trail] == [
        ("c15-other", "protocol", None),
        ("c15-own", "Dr Sophie Bernard", "Hub Santé, dossier x"),
    ]
