"""Allo's per-key budgets: fixed one-second windows of the injected clock, reads and writes
apart."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

READ = "read"
WRITE = "write"
READ_METHODS = frozenset({"GET", "HEAD"})


def kind_of(method: str) -> str:
    return READ if method.upper() in READ_METHODS else WRITE


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        # (key, kind) -> (window start, requests counted in it)
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}

    def _verdict(self, key: str, kind: str, limit: int, *, spend: bool) -> Verdict:
        now = self.clock()
        window = math.floor(now)
        start, used = self._windows.get((key, kind), (window, 0))
        if start != window:
            used = 0
        allowed = used < limit
        if spend and allowed:
            used += 1
        if spend:
            self._windows[(key, kind)] = (window, used)
        reset = window + 1
        return Verdict(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - used),
            reset=reset,
            retry_after=max(1, math.ceil(reset - now)),
        )

    def hit(self, key: str, kind: str, limit: int) -> Verdict:
        """Spend one request of ``key``'s ``kind`` budget, if any is left."""
        return self._verdict(key, kind, limit, spend=True)

    def peek(self, key: str, kind: str, limit: int) -> Verdict:
        """The budget as it stands, spending nothing."""
        return self._verdict(key, kind, limit, spend=False)

    def clear(self) -> None:
        self._windows.clear()
