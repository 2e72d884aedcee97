"""What a door remembers of each sender (shared/door_guard.py), on a clock of the
test's own."""

from __future__ import annotations

from shared.door_guard import Budget, DoorGuard
from shared.senders import SenderThrottled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_held_sender_is_refused_until_its_refusal_ends_then_released() -> None:
    clock = Clock()
    guard = DoorGuard(clock=clock)
    assert not guard.holds_anyone()
    guard.hold("referrer-a", SenderThrottled("rate_limited", "quota", 30, whole_sender=True))
    assert guard.holds_anyone()
    assert guard.held("referrer-b") is None  # another sender: not held
    clock.now += 10.2
    refusal = guard.held("referrer-a")
    assert refusal is not None
    assert (refusal.code, refusal.retry_after) == ("rate_limited", 20)  # counted from now
    clock.now += 20
    assert guard.held("referrer-a") is None
    assert not guard.holds_anyone()
    assert guard.refused_unread == 1


def test_holds_lapse_together_without_a_message() -> None:
    clock = Clock()
    guard = DoorGuard(clock=clock)
    guard.hold("referrer-a", SenderThrottled("rate_limited", "quota", 5))
    guard.hold("samu-35", SenderThrottled("rate_limited", "quota", 60))
    clock.now += 30
    assert guard.holds_anyone()  # samu-35 still
    assert guard.holding("samu-35") and not guard.holding("referrer-a")
    clock.now += 31
    assert not guard.holds_anyone()


def test_budgets_per_sender_refill_with_time() -> None:
    clock = Clock()
    guard = DoorGuard(recorded=Budget(3, 1.0), answered=Budget(5, 0.5), clock=clock)
    assert [guard.records("a") for _ in range(4)] == [True, True, True, False]
    assert guard.records("b")  # each sender its own budget
    clock.now += 1.0
    assert [guard.records("a") for _ in range(2)] == [True, False]
    assert [guard.answers("a") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 1.0
    assert [guard.answers("a") for _ in range(3)] == [True, True, False]
    clock.now += 3600
    assert [guard.records("a") for _ in range(4)] == [True, True, True, False]  # no more
