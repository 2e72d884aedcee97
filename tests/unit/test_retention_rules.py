"""What each service's purge finds due (issue 34), with an injected clock: the domain
rules, pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from services.intake.domain import retention as intake
from services.intake.domain.status import State
from services.notifier.domain import retention as notifier
from services.regulation.domain import retention as regulation
from services.scheduler.domain import retention as scheduler
from shared.provisioning import build_plan, definitions
from shared.retention import Retention
from shared.settings import Settings
from shared.topology import DEAD_LETTER_OWNERS, dead_letter_queue

NOW = datetime(2026, 9, 1, 12, tzinfo=UTC)
KEEP = timedelta(days=92)


def test_the_defaults_are_the_issue_s() -> None:
    retention = Retention.of(Settings(_env_file=None))  # type: ignore[call-arg]
    assert retention.identity == retention.clinical == timedelta(days=92)
    assert retention.dead_letters == timedelta(days=30)
    assert retention.messaging == timedelta(days=7)


def test_intake_purges_a_final_referral_once_its_retention_is_over() -> None:
    final_at = NOW - KEEP
    assert intake.is_due(State.SEEN, final_at, NOW, KEEP)
    assert intake.is_due(State.WITHDRAWN, final_at, NOW, KEEP)
    # A second earlier it is still kept; an open referral is kept however old.
    assert not intake.is_due(State.SEEN, final_at + timedelta(seconds=1), NOW, KEEP)
    assert not intake.is_due(State.APPOINTMENT, NOW - 10 * KEEP, NOW, KEEP)
    assert not intake.is_due(State.CANCELLED, NOW - 10 * KEEP, NOW, KEEP)
    assert set(intake.FINAL_STATES) == {"rejected", "withdrawn", "seen", "no_show"}


def test_a_cancelled_referral_s_history_says_whether_it_is_final() -> None:
    # A withdrawal reads "cancelled" in the table, as an appointment's cancellation does.
    assert set(intake.CANDIDATE_STATUSES) == {"rejected", "cancelled", "seen", "no_show"}
    assert intake.needs_history("cancelled")
    assert not intake.needs_history("seen")


def test_intake_keeps_the_record_not_the_reasons() -> None:
    detail = {
        "decision": "orient",
        "priority": "urgent",
        "reasons": ["fièvre > 39 °C", "dyspnée"],
        "reason": "douleur thoracique",
        "test_prescribed": True,
        "centre_id": "c1",
        "start": "2026-05-01T08:00:00+00:00",
        "decided_by": "regulateur@samu-35",
    }
    kept = intake.pseudonymous_detail(detail)
    assert kept == {
        "decision": "orient",
        "priority": "urgent",
        "centre_id": "c1",
        "start": "2026-05-01T08:00:00+00:00",
    }


def test_regulation_purges_a_decided_case_not_a_held_one() -> None:
    old = NOW - KEEP - timedelta(days=1)
    assert regulation.is_due("orient", old, NOW, KEEP)
    assert regulation.is_due("refuse", old, NOW, KEEP)
    assert not regulation.is_due("hold", old, NOW, KEEP)
    assert not regulation.is_due("orient", NOW - timedelta(days=3), NOW, KEEP)
    assert not regulation.is_due(None, None, NOW, KEEP)


def test_the_scheduler_counts_from_the_last_appointment_and_never_a_waiting_one() -> None:
    old = NOW - 2 * KEEP
    assert scheduler.is_due(old, [old, old + timedelta(hours=1)], False, NOW, KEEP)
    # An appointment that ended recently keeps the reasons, as does waiting.
    assert not scheduler.is_due(old, [NOW - timedelta(days=5)], False, NOW, KEEP)
    assert not scheduler.is_due(old, [], True, NOW, KEEP)


def test_the_notifier_counts_from_the_last_thing_done_and_keeps_an_untouched_contact() -> None:
    old = NOW - 2 * KEEP
    assert notifier.is_due([old, NOW - KEEP], NOW, KEEP)
    assert not notifier.is_due([old, NOW - timedelta(days=1)], NOW, KEEP)
    assert not notifier.is_due([], NOW, KEEP)


def test_dead_letters_expire_by_a_policy_on_the_namespace_s_dead_letter_queues() -> None:
    plan = build_plan("aiguillage", "aiguillage", centres=["c1"])
    policy = definitions(plan, {})["policies"][0]
    assert policy["definition"] == {"message-ttl": 30 * 24 * 3600 * 1000}
    assert policy["apply-to"] == "queues"
    pattern = re.compile(policy["pattern"])
    assert all(pattern.match(dead_letter_queue("aiguillage", o)) for o in DEAD_LETTER_OWNERS)
    assert not pattern.match("aiguillage.intake.submissions")
    assert not pattern.match(dead_letter_queue("aiguillage-other", "intake"))
