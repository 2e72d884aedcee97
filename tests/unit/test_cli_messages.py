"""What the commands print for a person: `centre listen` in Paris time, labelled; known
errors in one line with what to do, and a non-zero exit, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiormq.exceptions import (
    AMQPConnectionError,
    ChannelAccessRefused,
    ProbableAuthenticationError,
)
from typer.testing import CliRunner

from aiguillage.cli import app as cli
from aiguillage.commands.centre import describe
from aiguillage.commands.regulate import describe_trail
from aiguillage.console.screenshots import ChromiumMissing
from aiguillage.errors import explain
from shared.events import AppointmentCancelled, CancelledBy, Envelope, Priority, SlotAssigned
from shared.settings import get_settings
from shared.topology import TopologyMissing


def _slot(start: datetime, test_eligible: bool = True) -> Envelope:
    slot = SlotAssigned(
        centre_id="rennes-poterie",
        appointment_id="appt-1",
        referral_id="ref-1",
        patient_ref="pat-1",
        centre_name="École de la Poterie",
        centre_commune_insee="35238",
        start=start,
        end=start,
        box=2,
        priority=Priority.ASAP,
        distance_km=1.2,
        test_eligible=test_eligible,
    )
    return Envelope.wrap(slot, source="scheduler", correlation_id="ref-1")


@pytest.mark.parametrize(
    ("instant", "shown"),
    [
        # 15:40 UTC is 16:40 in Paris in winter (UTC+1), 17:40 in summer (UTC+2).
        (datetime(2020, 3, 24, 15, 40, tzinfo=UTC), "24/03 16:40 Europe/Paris"),
        (datetime(2020, 7, 2, 15, 40, tzinfo=UTC), "02/07 17:40 Europe/Paris"),
    ],
)
def test_centre_listen_prints_paris_time_labelled(instant: datetime, shown: str) -> None:
    line = describe(_slot(instant))
    assert line.startswith(f"NEW        {shown}  box 2  pat-1  priority asap  test to prescribe")
    assert "15:40" not in line
    cancelled = AppointmentCancelled(
        centre_id="rennes-poterie",
        appointment_id="appt-1",
        referral_id="ref-1",
        patient_ref="pat-1",
        start=instant,
        cancelled_by=CancelledBy.SERVICE,
        reason="centre suspendu : fermeture",
    )
    envelope = Envelope.wrap(cancelled, source="scheduler", correlation_id="ref-1")
    assert describe(envelope) == f"CANCELLED  {shown}  pat-1  (centre suspendu : fermeture)"


def test_centre_listen_says_when_no_test_is_to_prescribe() -> None:
    assert "no test" in describe(_slot(datetime(2020, 3, 24, 15, 40, tzinfo=UTC), False))


def test_centre_listen_prints_a_refusal_of_its_own_report() -> None:
    # The centre's queue also holds the doors' answers to what it sent (no start time).
    refused = Envelope(
        type="request.refused",
        source="scheduler",
        correlation_id="ref-1",
        data={
            "reply_to": "centre-rennes-poterie",
            "source_message_id": "m-1",
            "refused_type": "consultation.completed",
            "error_code": "sender_inconsistent",
            "cause": "the appointment is not the reporting centre's",
        },
    )
    assert describe(refused) == (
        "REFUSED    consultation.completed m-1  sender_inconsistent: "
        "the appointment is not the reporting centre's"
    )


def test_the_audit_gives_paris_time_labelled() -> None:
    trail = {
        "referral_id": "ref-1",
        "decisions": [
            {
                "decision": "orient",
                "priority": "asap",
                "deadline": "2020-07-02T18:40:00+00:00",
                "decided_at": "2020-07-02T14:40:00+00:00",
                "decided_by": "protocol",
                "protocol_version": "1",
                "test_eligible": True,
                "decision_id": "d-1",
                "current": True,
                "supersedes": None,
                "comment": None,
                "reasons": [],
            }
        ],
    }
    line = describe_trail(trail)[1]
    assert "2020-07-02 16:40:00 Europe/Paris" in line
    assert "by 2020-07-02 20:40:00 Europe/Paris" in line


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            ChannelAccessRefused(
                "ACCESS_REFUSED - access to queue 'ns.centre.b' in vhost 'v' refused for user 'u'"
            ),
            "the broker refused: ACCESS_REFUSED - access to queue 'ns.centre.b'",
        ),
        (
            ProbableAuthenticationError("ACCESS_REFUSED - Login was refused."),
            "Check the user and password in AIGUILLAGE_BROKER_URL",
        ),
        (
            AMQPConnectionError(111, "Connect call failed ('127.0.0.1', 5999)"),
            "RabbitMQ ne répond pas sur ",
        ),
        (TopologyMissing("queue 'x' does not exist"), "queue 'x' does not exist"),
        (ChromiumMissing("no Chromium on the PATH"), "no Chromium on the PATH"),
    ],
)
def test_known_errors_are_one_line(error: Exception, says: str) -> None:
    line = explain(error)
    assert line is not None and says in line and "\n" not in line
    # Wrapped in another error (raise ... from it), it is still recognised.
    wrapper = RuntimeError("wrapper")
    wrapper.__cause__ = error
    assert explain(wrapper) == line


def test_a_bug_keeps_its_traceback() -> None:
    assert explain(KeyError("start")) is None


def test_screenshots_without_chromium_say_so_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-chromium"
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli,
            ["console", "screenshots", "--centre", "rennes-poterie", "--out", str(tmp_path / "o")],
            env={"AIGUILLAGE_CHROMIUM": str(missing)},
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: no Chromium at AIGUILLAGE_CHROMIUM={missing}: install it "
        "(`apt-get install -y chromium chromium-driver`) or set AIGUILLAGE_CHROMIUM to its path"
    ]
    assert not (tmp_path / "o").exists()  # nothing written before the browser is there
