"""Protocol versions as data: a new version published while referrals flow applies
from then on, each decision records the version that made it, replicas agree, a
restart keeps it, an invalid document is dead-lettered. Regulation runs in-process on
the real broker, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from aiguillage.cli import app as cli
from services.regulation.app import build
from services.regulation.domain.protocol import default_protocol
from services.regulation.store.tables import decisions, protocol_activations
from shared.auth import Role, issue_token
from shared.events import (
    Clinical,
    Envelope,
    ProtocolPublished,
    Purpose,
    ReferralReceived,
    ReferrerKind,
    ReferrerRef,
    Sex,
    Vitals,
    utcnow,
)
from shared.publisher import EventPublisher
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings, get_settings
from shared.topology import declare_topology
from tests.helpers import Tap, dead_letters
from tests.helpers import running as started

pytestmark = pytest.mark.integration

V1 = default_protocol().model_dump(mode="json")


def v2_document() -> dict[str, Any]:
    """Version 1 with the SpO2 threshold raised to 92 %."""
    document = copy.deepcopy(V1)
    document["version"] = "2"
    document["effective_from"] = "2020-04-01"
    document["severity"]["spo2_below"] = 92.0
    return document


def received(referral_id: str, spo2: float = 97.0, age: int = 45) -> ReferralReceived:
    return ReferralReceived(
        referral_id=referral_id,
        patient_ref=f"pat-{referral_id}",
        age=age,
        sex=Sex.FEMALE,
        commune_insee="35238",
        departement="35",
        clinical=Clinical(
            symptomatic=True,
            symptoms=("cough", "fever"),
            vitals=Vitals(spo2=spo2, respiratory_rate=16, systolic_bp=120, temperature_c=38.0),
        ),
        referrer=ReferrerRef(kind=ReferrerKind.GP, identifier="10001234567", reply_to="tests"),
        purpose=Purpose.CONSULTATION,
        submitted_at=utcnow(),
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[ServiceRuntime]:
    async with started(build(settings)) as runtime:
        yield runtime


async def active_version(runtime: ServiceRuntime) -> str | None:
    async with runtime.database.transaction() as session:
        return await session.scalar(
            select(protocol_activations.c.version)
            .order_by(protocol_activations.c.seq.desc())
            .limit(1)
        )


async def wait_active(runtime: ServiceRuntime, version: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (current := await active_version(runtime)) != version:
        if time.monotonic() > deadline:
            raise TimeoutError(f"protocol {version} not active after {timeout}s ({current})")
        await asyncio.sleep(0.05)


async def until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s")
        await asyncio.sleep(0.05)


def regulated(tap: Tap) -> dict[str, Envelope]:
    return {e.data["referral_id"]: e for e in tap.of_type("referral.regulated")}


@pytest.fixture(params=["sqlite", "postgres"])
async def any_db(request: Any, settings: Settings, postgres: Any) -> Settings:
    if request.param == "postgres":
        url = await postgres.create("regulation")
        return settings.model_copy(update={"regulation_database_url": url})
    return settings


async def test_a_new_version_applies_from_its_publication_while_referrals_flow(
    any_db: Settings,
) -> None:
    s = any_db
    published: list[tuple[str, float]] = []  # (referral id, SpO2) in publication order
    stop = asyncio.Event()
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
        EventPublisher(s.broker_url, s.namespace, "intake") as intake,
        EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15,
    ):

        async def stream() -> None:
            # Half of the patients at SpO2 91 %: oriented under v1 (< 90 escalates),
            # escalated under v2 (< 92 escalates).
            n = 0
            while not stop.is_set():
                spo2 = 91.0 if n % 2 == 0 else 97.0
                referral_id = f"flow-{n:03d}"
                await intake.publish(received(referral_id, spo2), correlation_id=referral_id)
                published.append((referral_id, spo2))
                n += 1
                await asyncio.sleep(0.03)

        streamer = asyncio.create_task(stream())
        try:
            await tap.wait_for(lambda es: len(es) >= 10, timeout=30)
            before = set(regulated(tap))  # regulated before v2 was even published
            await centre_15.publish(
                ProtocolPublished(protocol_version="2", document=v2_document()),
                correlation_id="protocol:2",
            )
            await wait_active(runtime, "2")
            switched = len(published)  # from here on, every referral is published after v2
            await until(lambda: len(published) >= switched + 10, timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(streamer, 10)
        total = len(published)
        await tap.wait_for(lambda es: len(regulated(tap)) >= total, timeout=30)
        await asyncio.sleep(0.3)  # room for a wrong second decision to show up
        events = regulated(tap)
        async with runtime.database.transaction() as session:
            rows = {
                r.id: r
                for r in (
                    await session.execute(
                        select(decisions.c.id, decisions.c.decision, decisions.c.protocol_version)
                    )
                ).all()
            }

    assert len(tap.of_type("referral.regulated")) == total == len(events) == len(rows)
    spo2_of = dict(published)
    for referral_id, event in events.items():
        data = event.data
        version = data["protocol_version"]
        assert version in {"1", "2"}, referral_id
        if spo2_of[referral_id] == 91.0:
            assert data["decision"] == ("orient" if version == "1" else "escalate"), data
        else:
            assert data["decision"] == "orient", data
        # The audit row says what the event says.
        row = rows[data["decision_id"]]
        assert (row.decision, row.protocol_version) == (data["decision"], version)
    assert before and all(events[r].data["protocol_version"] == "1" for r in before)
    after = [r for r, _ in published[switched:]]
    assert len(after) >= 10
    assert all(events[r].data["protocol_version"] == "2" for r in after)
    # The same clinical picture, two protocols, two decisions.
    assert any(spo2_of[r] == 91.0 and events[r].data["decision"] == "orient" for r in before), (
        "a SpO2 91 % patient oriented under v1"
    )
    assert any(spo2_of[r] == 91.0 and events[r].data["decision"] == "escalate" for r in after), (
        "a SpO2 91 % patient escalated under v2"
    )
    escalated = next(events[r].data for r in after if spo2_of[r] == 91.0)
    assert "severity.spo2" in [reason["code"] for reason in escalated["reasons"]]
    assert "en dessous de 92 %" in json.dumps(escalated["reasons"])


async def test_replicas_agree_and_a_restart_keeps_the_version(
    settings: Settings, postgres: Any
) -> None:
    # One delivery at a time per replica: the broker hands the referrals out in turn,
    # so the replica that did not store v2 decides some of them.
    s = settings.model_copy(
        update={"regulation_database_url": await postgres.create("regulation"), "prefetch": 1}
    )
    await declare_topology(s.broker_url, s.namespace)
    async with Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap:
        async with (
            running(s) as first,
            running(s) as second,
            EventPublisher(s.broker_url, s.namespace, "intake") as intake,
            EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15,
        ):
            assert await active_version(first) == "1"  # stored at the first start
            await centre_15.publish(
                ProtocolPublished(protocol_version="2", document=v2_document()),
                correlation_id="protocol:2",
            )
            await wait_active(first, "2")
            for i in range(12):
                await intake.publish(received(f"rep-{i}", 91.0), correlation_id=f"rep-{i}")
            await tap.wait_for(lambda es: len(es) == 12, timeout=30)
            for replica in (first, second):
                # The one book of the replica, its handlers' and its HTTP API's (app.py).
                book = replica.http_app.state.regulation.book
                async with replica.database.transaction() as session:
                    assert (await book.active(session)).version == "2"
        assert {(e.data["decision"], e.data["protocol_version"]) for e in tap.envelopes} == {
            ("escalate", "2")
        }

        # Every replica stopped; a new one starts on the same database.
        async with (
            running(s) as restarted,
            EventPublisher(s.broker_url, s.namespace, "intake") as intake,
        ):
            await intake.publish(received("after-restart", 91.0), correlation_id="after-restart")
            await tap.wait_for(lambda es: len(es) == 13, timeout=30)
            token = issue_token(s, Role.CENTRE_15, "samu-35", ServiceName.REGULATION)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=restarted.http_app),
                base_url="http://regulation",
                headers={"Authorization": f"Bearer {token}"},
            ) as http:
                response = await http.get("/protocols")
                assert response.status_code == 200, response.text
                versions = response.json()
    last = regulated(tap)["after-restart"].data
    assert (last["decision"], last["protocol_version"]) == ("escalate", "2")
    assert versions["active"] == "2"
    assert [a["version"] for a in versions["activations"]] == ["1", "2"]
    assert versions["activations"][1]["source"] == "centre_15"


async def test_invalid_documents_are_dead_lettered_and_change_nothing(
    settings: Settings,
) -> None:
    s = settings
    invalid = v2_document()
    invalid["severity"]["spo2_below"] = 150  # not a percentage
    invalid["priorities"]["default"]["deadline_hours"] = 1  # sooner than the raised one
    conflicting = copy.deepcopy(V1)
    conflicting["severity"]["spo2_below"] = 92.0  # version "1" with other content
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
        EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15,
    ):
        await centre_15.publish(
            ProtocolPublished(protocol_version="2", document=invalid), correlation_id="p"
        )
        await centre_15.publish(
            ProtocolPublished(protocol_version="1", document=conflicting), correlation_id="p"
        )
        await centre_15.publish(
            ProtocolPublished(protocol_version="3", document=v2_document()), correlation_id="p"
        )
        letters = await dead_letters(s.broker_url, s.namespace, "regulation", expected=3)
        by_code = {m.headers["x-error-code"]: str(m.headers["x-error"]) for m in letters}
        assert set(by_code) == {
            "invalid_protocol",
            "protocol_version_conflict",
            "protocol_version_mismatch",
        }
        assert "severity.spo2_below" in by_code["invalid_protocol"]
        assert "priorities" in by_code["invalid_protocol"]
        assert await active_version(runtime) == "1"
        async with EventPublisher(s.broker_url, s.namespace, "intake") as intake:
            await intake.publish(received("still-v1", 91.0), correlation_id="still-v1")
        await tap.wait_for(lambda es: len(es) == 1, timeout=20)
    [event] = tap.envelopes
    assert (event.data["decision"], event.data["protocol_version"]) == ("orient", "1")


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    # The command reads the environment through the cached settings: fresh each time.
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, args, env=env)
    finally:
        get_settings.cache_clear()


async def test_the_command_refuses_an_invalid_file_and_publishes_a_valid_one(
    settings: Settings, tmp_path: Path
) -> None:
    s = settings
    env = {"AIGUILLAGE_BROKER_URL": s.broker_url, "AIGUILLAGE_NAMESPACE": s.namespace}
    invalid = v2_document()
    invalid["severity"]["spo2_below"] = "low"
    invalid["surprise"] = True
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(invalid))
    good_file = tmp_path / "v2.json"
    good_file.write_text(json.dumps(v2_document(), indent=2))
    async with (
        running(s) as runtime,
        # The command speaks as Centre 15: on the ingress, to regulation's door.
        Tap(s.broker_url, s.namespace, "protocol.published", exchange="ingress") as tap,
    ):
        refused = await asyncio.to_thread(
            _invoke, ["regulate", "protocol", "load", str(bad_file)], env
        )
        assert refused.exit_code == 1, refused.output
        assert "severity.spo2_below" in refused.output and "surprise" in refused.output
        assert "nothing published" in refused.output
        loaded = await asyncio.to_thread(
            _invoke, ["regulate", "protocol", "load", str(good_file)], env
        )
        assert loaded.exit_code == 0, loaded.output
        await wait_active(runtime, "2")
        await tap.wait_for(lambda es: len(es) == 1, timeout=10)
    [event] = tap.envelopes
    assert event.source == "centre_15"
    assert event.data["protocol_version"] == "2"
    assert event.data["document"]["severity"]["spo2_below"] == 92.0


async def test_the_command_words_a_document_without_messages_as_v1_and_refuses_half_of_them(
    settings: Settings, tmp_path: Path
) -> None:
    s = settings
    env = {"AIGUILLAGE_BROKER_URL": s.broker_url, "AIGUILLAGE_NAMESPACE": s.namespace}
    half = v2_document()
    del half["messages"]["reasons"]["orient"]
    half_file = tmp_path / "half.json"
    half_file.write_text(json.dumps(half))
    older = v2_document()  # written before the wording was data
    del older["messages"]
    older_file = tmp_path / "older.json"
    older_file.write_text(json.dumps(older))
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "protocol.published", exchange="ingress") as tap,
    ):
        refused = await asyncio.to_thread(
            _invoke, ["regulate", "protocol", "load", str(half_file)], env
        )
        assert refused.exit_code == 1, refused.output
        assert "no reason message for ['orient']" in refused.output
        loaded = await asyncio.to_thread(
            _invoke, ["regulate", "protocol", "load", str(older_file)], env
        )
        assert loaded.exit_code == 0, loaded.output
        await wait_active(runtime, "2")
        await tap.wait_for(lambda es: len(es) == 1, timeout=10)
    [event] = tap.envelopes
    # Published (and stored) with version 1's French wording filled in.
    assert event.data["document"]["messages"] == V1["messages"]


async def test_publishing_a_stored_version_again_goes_back_to_it(settings: Settings) -> None:
    s = settings
    async with (
        running(s) as runtime,
        Tap(s.broker_url, s.namespace, "referral.regulated.*") as tap,
        EventPublisher(s.broker_url, s.namespace, "centre_15") as centre_15,
        EventPublisher(s.broker_url, s.namespace, "intake") as intake,
    ):
        await centre_15.publish(
            ProtocolPublished(protocol_version="2", document=v2_document()), correlation_id="p"
        )
        await wait_active(runtime, "2")
        await intake.publish(received("under-v2", 91.0), correlation_id="under-v2")
        await tap.wait_for(lambda es: len(es) == 1, timeout=20)
        await centre_15.publish(
            ProtocolPublished(protocol_version="1", document=V1), correlation_id="p"
        )
        await wait_active(runtime, "1")
        await intake.publish(received("back-to-v1", 91.0), correlation_id="back-to-v1")
        await tap.wait_for(lambda es: len(es) == 2, timeout=20)
        async with runtime.database.transaction() as session:
            history = (
                await session.execute(
                    select(protocol_activations.c.version, protocol_activations.c.source).order_by(
                        protocol_activations.c.seq
                    )
                )
            ).all()
    events = regulated(tap)
    assert (events["under-v2"].data["decision"], events["under-v2"].data["protocol_version"]) == (
        "escalate",
        "2",
    )
    back = events["back-to-v1"].data
    assert (back["decision"], back["protocol_version"]) == ("orient", "1")
    assert [tuple(r) for r in history] == [
        ("1", "regulation"),
        ("2", "centre_15"),
        ("1", "centre_15"),
    ]
