"""Issue 35: the alert rules and the Grafana dashboard name only figures that exist (the
services' /metrics, RabbitMQ's own), each alert has its runbook section, and promtool
accepts the rules and an exposition when it is installed (Debian's ``prometheus``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.events import Envelope, ReferralReceived
from shared.metrics import SUBMISSION_TO_BOOKING, ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "aiguillage.json"
RUNBOOK = ROOT / "docs" / "operations" / "runbook.md"

# RabbitMQ's own exposition (rabbitmq_prometheus, /metrics/detailed): the consumers and
# messages per queue.
RABBITMQ = {"rabbitmq_detailed_queue_consumers", "rabbitmq_detailed_queue_messages"}
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan"}  # fmt: skip


def exported() -> set[str]:
    """Every sample name a service's /metrics can carry (``_total``, ``_bucket``...)."""
    names: set[str] = set()
    for family in ServiceMetrics("test").registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum", "created")}
        else:
            names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, label names and
    values, durations and numbers left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        word = match.group()
        if following.startswith("(") or word.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def _rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def test_every_rule_reads_exported_figures_only() -> None:
    rules = _rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    known = exported() | RABBITMQ | recorded
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule
        assert names <= known, (rule.get("alert") or rule.get("record"), names - known)


def test_the_alerts_the_issue_asks_for_each_with_its_runbook_section() -> None:
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    reads = {name: metric_names(rule["expr"]) for name, rule in alerts.items()}
    # A dead letter, the outbox behind, a queue without consumers, the booking objective,
    # a waiting list growing, notifications failing.
    assert "aiguillage_dead_lettered_total" in reads["AiguillageDeadLetter"]
    assert "aiguillage_outbox_oldest_age_seconds" in reads["AiguillageOutboxBehind"]
    assert "> 60" in alerts["AiguillageOutboxBehind"]["expr"]
    assert "rabbitmq_detailed_queue_consumers" in reads["AiguillageSubscriptionWithoutConsumer"]
    assert (
        "aiguillage_submission_to_booking_seconds_bucket"
        in reads["AiguillageBookingP99AboveObjective"]
    )
    assert "aiguillage_waiting_patients" in reads["AiguillageWaitingListGrowing"]
    assert "aiguillage_notifications_total" in reads["AiguillageNotificationsFailing"]
    headings = {
        line.lstrip("#").strip().lower()
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for name, rule in alerts.items():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in headings, (name, anchor)
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_the_dashboard_loads_and_each_panel_reads_exported_figures() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    known = exported() | RABBITMQ | recorded
    assert dashboard["uid"] == "aiguillage" and dashboard["panels"]
    seen: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= known, (panel["title"], names - known)
            seen |= names
    # Every business figure of the issue is on it.
    for figure in (
        "aiguillage_referrals_total",
        "aiguillage_submission_to_booking_seconds_bucket",
        "aiguillage_waiting_patients",
        "aiguillage_free_places_today",
        "aiguillage_notifications_total",
        "aiguillage_webhooks_failed_total",
        "aiguillage_outbox_oldest_age_seconds",
        "aiguillage_dead_lettered_total",
    ):
        assert figure in seen, figure


def _exposition() -> str:
    metrics = ServiceMetrics("regulation")
    received = Envelope(
        type=ReferralReceived.event_type,
        source="intake",
        correlation_id="r-1",
        data={"referrer": {"kind": "gp", "identifier": "1"}},
    )
    regulated = Envelope(
        type="referral.regulated", source="regulation", correlation_id="r-1",
        data={"decision": "orient"},
    )  # fmt: skip
    metrics.observe_emitted(received, [regulated])
    metrics.measure(SUBMISSION_TO_BOOKING, 42.0)
    metrics.notification("webhook", sent=False, final=True)
    return generate_latest(metrics.registry).decode()


def test_a_registry_per_service_and_an_exposition_prometheus_reads() -> None:
    text = _exposition()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [regulated] = [s for s in families["aiguillage_referrals"].samples if s.name.endswith("_total")]
    assert regulated.labels == {
        "stage": "regulation",
        "outcome": "orient",
        "referrer_kind": "gp",
    }
    assert regulated.value == 1
    # Another service's registry (tests run several in one process) counts nothing of it.
    other = ServiceMetrics("intake")
    assert "aiguillage_referrals_total{" not in generate_latest(other.registry).decode()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules_and_the_exposition(tmp_path: Path) -> None:
    rules = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    exposition = subprocess.run(
        ["promtool", "check", "metrics"],
        input=_exposition(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    # promtool lints too (a counter without _total...): only errors fail it.
    assert exposition.returncode in (0, 3), exposition.stdout + exposition.stderr
    assert "error" not in exposition.stderr.lower(), exposition.stderr
