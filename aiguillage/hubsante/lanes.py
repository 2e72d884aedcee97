"""Bounded concurrency, in order per key: the door handles several messages at once, and
one case's messages in the order they arrived (a Cancel never overtakes its case)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable


class Lanes:
    """At most ``limit`` pieces of work at once; the work of one key in call order."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        # The last piece of work given for each key, done when it has run.
        self._last: dict[Hashable, asyncio.Future[None]] = {}

    def run(self, key: Hashable | None, work: Callable[[], Awaitable[None]]) -> Awaitable[None]:
        """Takes its place in ``key``'s lane now (not when awaited), so the order is the
        order of the calls; ``None``: a lane of its own."""
        previous = self._last.get(key) if key is not None else None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if key is not None:
            self._last[key] = done
        return self._run(key, previous, done, work)

    async def _run(
        self,
        key: Hashable | None,
        previous: asyncio.Future[None] | None,
        done: asyncio.Future[None],
        work: Callable[[], Awaitable[None]],
    ) -> None:
        try:
            if previous is not None:
                # wait, not await: a cancelled waiter must not cancel its predecessor's mark.
                await asyncio.wait([previous])
            # Waiting for its turn holds no slot: a lane behind a slow message leaves
            # the others their places.
            async with self._slots:
                await work()
        finally:
            done.set_result(None)
            if key is not None and self._last.get(key) is done:
                del self._last[key]

    @property
    def keys(self) -> int:
        """Keys with work given and not yet run (for tests: 0 once all is done)."""
        return len(self._last)
