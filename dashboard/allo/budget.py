"""One rate budget for every process of the dashboard: Allo's per-key limits, shared.

Allo allows each key so many reads and so many writes per second, and every worker on every host
uses the same key. Each request first takes a slot in the current one-second window from a
counter in the shared store (``SharedStore.count``: Redis' INCR in production), reads and writes
apart; when the window is full it waits for the next one, for a short bounded time, then gives
up with ``AlloRateLimitedError(code="BUDGET_EXHAUSTED")``: nothing was sent.

Windows are whole Unix seconds, like Allo's (``X-RateLimit-Reset`` is a whole-second Unix time).
This assumes the hosts' clocks agree with each other and with Allo's to well under a second
(NTP); the safety margin absorbs small skew and requests still in flight when a window turns.
A 429 from Allo (its own count disagreeing with ours) pauses every process until its
``Retry-After``: that pause is kept in the shared store too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from dashboard.allo.errors import AlloError, AlloRateLimitedError
from dashboard.allo.resilience import Deadline, Policy, Timing
from dashboard.allo.store import SharedStore
from dashboard.allo.types import RateLimits

logger = logging.getLogger(__name__)

READ = "read"
WRITE = "write"
READ_METHODS = frozenset({"GET", "HEAD"})
# Allo's documented limits, used until /v2/api/me says otherwise.
DEFAULT_READS_PER_SECOND = 20
DEFAULT_WRITES_PER_SECOND = 5
# A window's counter outlives its second by this much (late requests on skewed clocks).
WINDOW_TTL = 5
# Limits learnt from /v2/api/me are kept this long; after a failed look-up, the defaults are
# used this long before asking again.
LIMITS_TTL = 3600
LIMITS_RETRY = 60
# Seconds a process trusts the limits it last read from the shared store.
LIMITS_MEMO = 30
# Waiting for the next window ends this long after it starts, so that a host whose clock runs
# a little early does not send at the very end of Allo's previous second.
WINDOW_GUARD = 0.01
# A slot is only used if at least this long is left of its window once it is granted: a request
# counted in second N but sent (or arriving) in N+1 is counted there by Allo, and enough of
# those make a real 429. A slot granted later than this is left unused and the request takes
# one in the next window instead (counters cannot give a slot back). 100 ms: 50 ms was not
# enough for 30 threads of one process over a local socket (the GIL delays the send).
SEND_GUARD = 0.1

# Set while the limits are being asked of Allo, so that that request does not ask again.
_looking_up_limits: ContextVar[bool] = ContextVar("allo_looking_up_limits", default=False)


def kind_of(method: str) -> str:
    return READ if method.upper() in READ_METHODS else WRITE


@dataclass(frozen=True)
class Limits:
    """Allo's limits for the key, and where they came from (settings, allo or default)."""

    reads_per_second: int
    writes_per_second: int
    source: str


def usable(limit: int, margin: float) -> int:
    """The part of ``limit`` the dashboard uses: ``margin`` of it (at least one) kept back."""
    if margin <= 0:
        return max(1, limit)
    return max(1, limit - max(1, math.ceil(limit * margin)))


class RateBudget:
    """The shared budget of one Allo key (``scope``), in ``store``."""

    def __init__(
        self,
        *,
        store: SharedStore,
        scope: str,
        policy: Policy,
        timing: Timing,
        look_up: Callable[[], RateLimits | None] | None = None,
    ) -> None:
        self.store = store
        self.scope = scope
        self.policy = policy
        self.timing = timing
        # Asks Allo for the key's limits (GET /v2/api/me); the client passes its own.
        self.look_up = look_up
        # The limits, as last read from the store, and until when (monotonic) to trust them.
        self._memo: tuple[float, Limits] | None = None

    def _key(self, *parts: object) -> str:
        return ":".join(["allo", self.scope, *map(str, parts)])

    # Limits ---------------------------------------------------------------------------------------

    def limits(self) -> Limits:
        """Allo's limits for the key: settings, else what /v2/api/me said, else 20 and 5.

        The first call in the whole deployment (or after an hour) asks Allo, once, through the
        budget itself; meanwhile, and if Allo cannot say, the documented defaults apply.
        """
        reads, writes = self.policy.reads_per_second, self.policy.writes_per_second
        if reads is not None and writes is not None:
            return Limits(reads, writes, "settings")
        memo = self._memo
        if memo is not None and self.timing.monotonic() < memo[0]:
            return memo[1]
        learnt = self.store.get(self._key("limits"))
        if learnt is None and self.look_up is not None and not _looking_up_limits.get():
            learnt = self._learn()
        source = "default"
        if isinstance(learnt, tuple) and len(learnt) == 2:
            allo_reads, allo_writes = learnt
            if allo_reads is not None or allo_writes is not None:
                source = "allo"
            reads = reads if reads is not None else allo_reads
            writes = writes if writes is not None else allo_writes
        limits = Limits(
            reads if reads is not None else DEFAULT_READS_PER_SECOND,
            writes if writes is not None else DEFAULT_WRITES_PER_SECOND,
            source,
        )
        if learnt is not None:
            self._memo = (self.timing.monotonic() + LIMITS_MEMO, limits)
        return limits

    def _learn(self) -> tuple[int | None, int | None] | None:
        # One process asks; the others use the defaults for the few milliseconds it takes.
        if self.look_up is None or not self.store.add(self._key("limits-lookup"), 1, 10):
            return None
        token = _looking_up_limits.set(True)
        try:
            reported = self.look_up()
        except AlloError as exc:
            logger.info("Allo's rate limits could not be read (%s); using 20 and 5.", exc)
            reported = None
        finally:
            _looking_up_limits.reset(token)
        learnt = (reported.read_per_second, reported.write_per_second) if reported else (None, None)
        ttl = LIMITS_TTL if reported else LIMITS_RETRY
        self.store.set(self._key("limits"), learnt, ttl)
        return learnt

    def allowance(self, kind: str) -> int:
        """Requests of ``kind`` per second the dashboard allows itself (limit less the margin)."""
        limits = self.limits()
        limit = limits.reads_per_second if kind == READ else limits.writes_per_second
        return usable(limit, self.policy.safety_margin)

    # Spending -------------------------------------------------------------------------------------

    def acquire(self, kind: str, until: Deadline) -> None:
        """Take one slot of ``kind``; wait for one within the deadline and ``budget_wait``.

        Raises AlloRateLimitedError(code="BUDGET_EXHAUSTED") when no slot can be had in time:
        the request was not sent. ``retry_after`` says when a slot is expected.
        """
        allowance = self.allowance(kind)
        waited = 0.0
        while True:
            now = self.timing.wall()
            paused_until = self.store.get(self._key("pause", kind))
            if isinstance(paused_until, int | float) and paused_until > now:
                waited += self._wait(paused_until - now, until, waited, kind)
                continue
            window = math.floor(now)
            if window + 1 - now < SEND_GUARD:
                # Too late in this window to send in it: start with the next one.
                waited += self._wait(window + 1 + WINDOW_GUARD - now, until, waited, kind)
                continue
            used = self.store.count(self._key("window", kind, window), WINDOW_TTL)
            if used <= allowance:
                # The store may have been slow: the slot is only good if the request can still
                # go out (and reach Allo) within its window.
                granted = self.timing.wall()
                if granted < window + 1 - SEND_GUARD:
                    return
                logger.debug("An Allo %s slot came too late in its second; taking another.", kind)
                waited += self._wait(window + 1 + WINDOW_GUARD - granted, until, waited, kind)
                continue
            waited += self._wait(window + 1 + WINDOW_GUARD - now, until, waited, kind)

    def _wait(self, seconds: float, until: Deadline, waited: float, kind: str) -> float:
        seconds = max(seconds, 0.0)
        patience = min(until.remaining(), self.policy.budget_wait - waited)
        if seconds > patience:
            logger.info("No Allo %s budget left within the deadline (%.2f s short).", kind, seconds)
            raise AlloRateLimitedError(
                message="Allo is busy: the dashboard's share of its rate limit is used up.",
                code="BUDGET_EXHAUSTED",
                retry_after=max(seconds, 0.001),
            )
        self.timing.sleep(seconds)
        return seconds

    def pause(self, kind: str, seconds: float) -> None:
        """Allo said 429: no process sends a request of ``kind`` for ``seconds``."""
        until = self.timing.wall() + max(seconds, 0.0)
        key = self._key("pause", kind)
        current = self.store.get(key)
        if not isinstance(current, int | float) or current < until:
            self.store.set(key, until, math.ceil(seconds) + 1)

    def paused_for(self, kind: str) -> float:
        """Seconds left of a pause that a 429 started (0: none)."""
        until = self.store.get(self._key("pause", kind))
        if not isinstance(until, int | float):
            return 0.0
        return max(0.0, until - self.timing.wall())
