"""How long the dashboard may spend on Allo, and how it spends it: the policy and the deadline.

One user action (a page, a save) gets one deadline, set with :class:`deadline`; every request the
action makes to Allo, every retry and every wait for rate budget fits inside it. With no deadline
set, each call to Allo gets ``ALLO_ACTION_DEADLINE`` seconds of its own.

Time is injectable (:class:`Timing`) so that tests can run the client on the sandbox's fake clock:
then waiting for budget, backing off and cooling down move that clock instead of sleeping.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from django.conf import settings


class SimulatedClock(Protocol):
    """A clock that moves only when told to (``dashboard.sandbox.clock.FakeClock``)."""

    def __call__(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Timing:
    """Where the client reads the time and how it waits.

    ``wall`` is Unix time (rate-limit windows, Retry-After, the circuit's cool-down: shared with
    other processes, so it must be a real clock in production); ``monotonic`` measures deadlines.
    """

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    @classmethod
    def simulated(cls, clock: SimulatedClock) -> Timing:
        """Every clock is ``clock`` and every wait advances it: nothing really sleeps."""
        return cls(wall=clock, monotonic=clock, sleep=clock.advance)


@dataclass(frozen=True)
class Policy:
    """The client's limits and patience; :meth:`from_settings` reads the ``ALLO_*`` settings."""

    # Seconds one call (or one user action, with ``deadline``) may take, retries included.
    action_deadline: float = 6.0
    # Sends per call at most, the first included.
    attempts: int = 3
    # Full-jitter exponential backoff between retries: random in [0, min(cap, base * 2**n)).
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    # The longest one call waits for rate budget (or for a 429's Retry-After) before giving up
    # with "Allo is busy, try again in N s"; the deadline caps it too.
    budget_wait: float = 3.0
    # Allo's per-key limits; None: what GET /v2/api/me reports, else 20 and 5.
    reads_per_second: int | None = None
    writes_per_second: int | None = None
    # The share of each limit kept unused, for clock skew and for requests still in flight
    # when a window turns (at least one request: 20 -> 18, 5 -> 4).
    safety_margin: float = 0.1
    # The circuit opens after this many failures in a row (timeouts, connection errors, 5xx),
    # for ``cooldown`` seconds; then one trial request decides.
    failure_threshold: int = 5
    cooldown: float = 20.0

    @classmethod
    def from_settings(cls) -> Policy:
        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        base = cls()
        return cls(
            action_deadline=float(get("ALLO_ACTION_DEADLINE", base.action_deadline)),
            attempts=max(1, int(get("ALLO_ATTEMPTS", base.attempts))),
            budget_wait=float(get("ALLO_BUDGET_WAIT", base.budget_wait)),
            reads_per_second=get("ALLO_READS_PER_SECOND", None),
            writes_per_second=get("ALLO_WRITES_PER_SECOND", None),
            safety_margin=float(get("ALLO_RATE_SAFETY_MARGIN", base.safety_margin)),
            failure_threshold=max(1, int(get("ALLO_CIRCUIT_FAILURES", base.failure_threshold))),
            cooldown=float(get("ALLO_CIRCUIT_COOLDOWN", base.cooldown)),
        )

    def backoff(self, retry: int, timing: Timing) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, …): full jitter."""
        return timing.random() * min(self.backoff_cap, self.backoff_base * 2 ** (retry - 1))


# The deadline ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """A point in time (on ``clock``) by which a user action must be done with Allo."""

    expires_at: float
    clock: Callable[[], float] = time.monotonic

    def remaining(self) -> float:
        return self.expires_at - self.clock()


_current: ContextVar[Deadline | None] = ContextVar("allo_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline the caller's ``with deadline(…)`` set, if any."""
    return _current.get()


class deadline:  # lower case: used like a function, ``with deadline(5):``
    """One deadline for everything inside: ``with deadline(5): …`` or ``@deadline(5)``.

    Nested deadlines keep the earlier one. ``seconds`` None: ``ALLO_ACTION_DEADLINE``. Every
    request to Allo made inside, its retries and its waits for rate budget end by then; a
    request still unanswered at the deadline fails with ``AlloUnavailableError``.
    """

    def __init__(
        self, seconds: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self._token: Token[Deadline | None] | None = None

    def __enter__(self) -> Deadline:
        seconds = self.seconds
        if seconds is None:
            seconds = Policy.from_settings().action_deadline
        outer = _current.get()
        if outer is not None and outer.remaining() <= seconds:
            chosen = outer
        else:
            chosen = Deadline(self.clock() + seconds, self.clock)
        self._token = _current.set(chosen)
        return chosen

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def __call__[**P, R](self, func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def within_deadline(*args: P.args, **kwargs: P.kwargs) -> R:
            with deadline(self.seconds, clock=self.clock):
                return func(*args, **kwargs)

        return within_deadline
