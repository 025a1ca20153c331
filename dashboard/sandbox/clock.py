"""A clock for tests: it stands still until told to move, so rate-limit windows and call dates
are crossed without sleeping."""

from __future__ import annotations

# Monday 4 May 2026, 09:30:00.25 UTC: a quarter of a second into a rate-limit window.
DEFAULT_START = 1_777_887_000.25


class FakeClock:
    def __init__(self, start: float = DEFAULT_START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
