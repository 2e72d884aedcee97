"""What a door remembers of each sender between its messages, so that one sender's flood
costs the door next to nothing and the other senders keep their usual latency.

Issue 28: a referrer published 3,000 submissions on intake's door; each one past its
quota was still parsed, put in a group-commit batch (which its refusal then failed and
replayed one by one), refused in a transaction of its own and answered through the
outbox. Another referrer's acknowledgement, queued behind them, went from 0.07 s to
76 s. Now:

- **held senders**: a refusal that holds for every message of its sender for a while
  (``SenderThrottled.whole_sender``: a quota of the sender's own, spent until its window
  ends) holds the sender until then. Its messages are refused before they are read: no
  parsing, no database, no batch, not recorded (the refusal that held it was).
- **budgets per sender**: recording a refusal costs a transaction (its ``refusals`` row,
  its answer in the outbox), answering one a publish. A sender has ``RECORDED`` recorded
  refusals at once (30), then two a second; past it a refusal is only answered, at once
  (not through the outbox): ``ANSWERED`` at once (100), then ten a second; past that it
  is acked unanswered (a sender that floods reads no answers). Each kind of overflow is
  logged at its 1st, 10th, 100th... time.

State per process: the truth (a quota's count) stays in the database, which replicas
share; each replica learns a hold from its own first refusal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from shared.senders import SenderThrottled

log = structlog.get_logger(__name__)

# Beyond this many senders remembered, those whose state has lapsed are forgotten.
_REMEMBERED = 1024


@dataclass(frozen=True)
class Budget:
    """``burst`` at once, then one every ``every`` seconds."""

    burst: int
    every: float


RECORDED = Budget(30, 0.5)
ANSWERED = Budget(100, 0.1)


@dataclass
class _Hold:
    until: float
    refusal: SenderThrottled
    refused: int = 0


@dataclass
class _Tokens:
    """A token bucket per sender, and how often it ran dry."""

    budget: Budget
    tokens: dict[str, tuple[float, float]] = field(default_factory=dict)  # left, when
    dry: dict[str, int] = field(default_factory=dict)

    def take(self, sender: str, now: float) -> bool:
        left, at = self.tokens.get(sender, (float(self.budget.burst), now))
        if sender not in self.tokens and len(self.tokens) >= _REMEMBERED:
            self._forget(now)
        left = min(self.budget.burst, left + (now - at) / self.budget.every)
        if left >= 1:
            self.tokens[sender] = (left - 1, now)
            return True
        self.tokens[sender] = (left, now)
        self.dry[sender] = self.dry.get(sender, 0) + 1
        return False

    def _forget(self, now: float) -> None:
        """The senders whose bucket has filled up again: as good as new."""
        full = self.budget.burst * self.budget.every
        self.tokens = {k: v for k, v in self.tokens.items() if now - v[1] < full}
        self.dry = {k: n for k, n in self.dry.items() if k in self.tokens}


class DoorGuard:
    def __init__(
        self,
        recorded: Budget = RECORDED,
        answered: Budget = ANSWERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self._holds: dict[str, _Hold] = {}
        self._last_release = 0.0  # when the last hold ends
        self._recorded = _Tokens(recorded)
        self._answered = _Tokens(answered)
        self.refused_unread = 0  # for tests and benches

    def hold(self, sender: str, refusal: SenderThrottled) -> None:
        """Refuse ``sender``'s messages unread for ``refusal.retry_after`` seconds."""
        now = self.clock()
        if len(self._holds) >= _REMEMBERED:
            self._holds = {k: h for k, h in self._holds.items() if h.until > now}
        self._holds[sender] = _Hold(now + refusal.retry_after, refusal)
        self._last_release = max(self._last_release, now + refusal.retry_after)
        log.warning(
            "sender held", sender=sender, error_code=refusal.code, retry_after=refusal.retry_after
        )

    def holds_anyone(self) -> bool:
        """Whether any sender is held: while none is, a door looks at nothing early."""
        if self._holds and self.clock() >= self._last_release:
            for sender, hold in self._holds.items():
                log.info("sender released", sender=sender, refused_unread=hold.refused)
            self._holds.clear()
        return bool(self._holds)

    def holding(self, sender: str) -> bool:
        found = self._holds.get(sender)
        return found is not None and found.until > self.clock()

    def held(self, sender: str) -> SenderThrottled | None:
        """The refusal of a held sender's message (its wait counted from now), or None."""
        found = self._holds.get(sender)
        if found is None:
            return None
        left = found.until - self.clock()
        if left <= 0:
            del self._holds[sender]
            log.info("sender released", sender=sender, refused_unread=found.refused)
            return None
        found.refused += 1
        self.refused_unread += 1
        return found.refusal.again(math.ceil(left))

    def records(self, sender: str) -> bool:
        """Whether this refusal of ``sender``'s is recorded (within its budget)."""
        return self._take(self._recorded, sender, "refusals answered, not recorded")

    def answers(self, sender: str) -> bool:
        """Whether this unrecorded refusal of ``sender``'s is answered (within its budget)."""
        return self._take(self._answered, sender, "refusals neither recorded nor answered")

    def _take(self, tokens: _Tokens, sender: str, overflow: str) -> bool:
        if tokens.take(sender, self.clock()):
            return True
        count = tokens.dry[sender]
        if count == int(10 ** (len(str(count)) - 1)):  # 1, 10, 100...
            log.warning(overflow, sender=sender, count=count)
        return False
