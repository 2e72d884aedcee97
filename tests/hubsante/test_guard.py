"""The door's bounds, pattern engine, ownership rules and lanes, without a broker."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from aiguillage.hubsante import guard, messages, schema
from aiguillage.hubsante.lanes import Lanes
from aiguillage.hubsante.messages import ErrorCode
from tests.hubsante_hub import LRM, oriented_case

CASE_ID_PATTERN = r"^([a-zA-Z0-9_-]+\.?){4,10}$"  # RS-EDA's caseId


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_depth_is_counted_on_the_raw_bytes_brackets_in_strings_aside() -> None:
    assert not guard.too_deep(nested(guard.MAX_DEPTH))
    assert guard.too_deep(nested(guard.MAX_DEPTH + 1))
    assert guard.too_deep(b"[" * 5000)  # not even closed: refused before parsing
    in_string = json.dumps({"note": "[" * 100 + '\\" {{{' + "\\\\"}).encode()
    assert not guard.too_deep(in_string, limit=1)
    # An escaped backslash ends before the quote: the bracket after the string counts.
    assert guard.too_deep(b'["a\\\\", [[]]]', limit=2)


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (b"[" * 5000, "imbriqué"),
        (b"x" * 70_000, "octets"),
        (b"{not json", "pas du JSON"),
        (b'"\xff\xfe\xfa"', "pas du JSON"),
    ],
)
def test_what_cannot_be_read_is_unreadable(body: bytes, cause: str) -> None:
    with pytest.raises(guard.Unreadable, match=cause):
        guard.read(body, max_bytes=64 * 1024)


def test_every_hub_pattern_runs_on_re2() -> None:
    assert CASE_ID_PATTERN in schema.patterns()
    assert schema.fallback_patterns() == []


def test_the_backtracking_case_id_is_refused_at_once() -> None:
    """7.3 s on Python's re for 34 characters, doubling every 2."""
    content = oriented_case(f"{LRM}.DRFR15000000001")["createCaseHealth"]
    for length in (34, 1000, 60_000):
        content["caseId"] = "a" * length + "!"
        message = messages.envelope(
            LRM, "fr.health.aiguillage", "Report", "createCaseHealth", content
        )
        started = time.monotonic()
        problems = schema.errors(message)
        assert time.monotonic() - started < 0.5
        assert any("caseId" in p for p in problems)
        assert all(len(p) < 400 for p in problems)  # the text quoted, cut


def test_a_pattern_re2_cannot_express_runs_bounded() -> None:
    backtracking = r"^(a|aa)+\1$"  # a backreference: not RE2's
    started = time.monotonic()
    assert schema.matcher(backtracking)("aa")
    assert not schema.matcher(backtracking)("a" * 60 + "!")
    assert time.monotonic() - started < 1.0


def test_a_case_is_its_sender_s() -> None:
    assert guard.case_refusal(f"{LRM}.DRFR1", LRM) is None
    refused = guard.case_refusal("fr.health.samuB.DRFR1", LRM)
    assert refused is not None and refused[0] is ErrorCode.SENDER_INCONSISTENCY
    # A prefix of the id is not enough: samuA is not samuAB.
    assert guard.case_refusal(f"{LRM}B.DRFR1", LRM) is not None
    too_long = guard.case_refusal(f"{LRM}." + "9" * 100, LRM)
    assert too_long is not None and too_long[0] is ErrorCode.INVALID_MESSAGE


def test_answers_go_to_the_publisher_not_the_claimed_sender() -> None:
    claimed = {"senderID": "fr.health.samuB"}
    assert guard.publisher(claimed, LRM) == LRM
    assert guard.publisher(claimed, None) == "fr.health.samuB"  # the real hub checked it
    assert guard.publisher(guard.Unreadable("x"), None) is None


async def test_lanes_keep_a_key_s_order_and_bound_the_rest() -> None:
    lanes = Lanes(limit=2)
    running, most, order = 0, 0, []

    async def work(name: str, seconds: float) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(seconds)
        order.append(name)
        running -= 1

    given = [
        lanes.run("a", lambda: work("a1", 0.2)),
        lanes.run("a", lambda: work("a2", 0.0)),
        lanes.run("b", lambda: work("b1", 0.05)),
        lanes.run(None, lambda: work("n1", 0.05)),
        lanes.run(None, lambda: work("n2", 0.05)),
    ]
    await asyncio.gather(*given)
    assert order.index("a1") < order.index("a2")
    assert order.index("b1") < order.index("a1")  # b did not wait for a
    assert most == 2 and lanes.keys == 0
