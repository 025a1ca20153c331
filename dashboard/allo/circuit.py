"""The circuit breaker: after repeated failures, stop calling Allo for a while, everywhere.

Failures are what says Allo is not answering: timeouts, connection errors, 5xx and bodies that
are not JSON (never a 4xx: that is Allo answering). ``failure_threshold`` of them in a row,
counted across every process in the shared store, open the circuit: for ``cooldown`` seconds no
process calls Allo, and each call fails at once with ``AlloUnavailableError(code="CIRCUIT_OPEN",
request_sent=False)``. Then one request (one in the whole deployment: a lock in the shared store)
is let through as a trial: an answer closes the circuit, a failure opens it for another
cool-down. Any answer from Allo resets the count.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboard.allo.errors import AlloUnavailableError
from dashboard.allo.resilience import Policy, Timing
from dashboard.allo.store import SharedStore

logger = logging.getLogger(__name__)

# How long the failure count is remembered without a new failure.
FAILURE_MEMORY = 300
# How long an open circuit is remembered if no trial ever runs (no traffic).
OPEN_MEMORY = 24 * 3600


@dataclass(frozen=True)
class CircuitState:
    """What the banner needs: is the dashboard holding off Allo, since when, until when.

    ``retry_at`` may be past: the next request will be the trial.
    """

    open: bool
    since: datetime | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Permit:
    """Leave to call Allo; ``trial`` marks the one request a half-open circuit lets through."""

    trial: bool = False
    # The failure count was not zero when the call was let through: an answer also clears any
    # open state and trial lock (every answer resets the count).
    dirty: bool = False


class CircuitBreaker:
    def __init__(self, *, store: SharedStore, scope: str, policy: Policy, timing: Timing) -> None:
        self.store = store
        self.policy = policy
        self.timing = timing
        prefix = f"allo:{scope}:circuit"
        self._failures = f"{prefix}:failures"
        self._opened = f"{prefix}:opened"
        self._trial = f"{prefix}:trial"

    def _trial_timeout(self) -> int:
        # A trial that never reports (its process died) frees the lock after this long.
        return math.ceil(self.policy.action_deadline) + 1

    def before_call(self) -> Permit:
        """Leave to call Allo, or AlloUnavailableError(code="CIRCUIT_OPEN") without calling."""
        found = self.store.get_many([self._failures, self._opened])
        opened = found.get(self._opened)
        if not isinstance(opened, int | float):
            return Permit(dirty=bool(found.get(self._failures)))
        now = self.timing.wall()
        retry_at = opened + self.policy.cooldown
        if now < retry_at:
            raise self._refusal(retry_at - now)
        if self.store.add(self._trial, now, self._trial_timeout()):
            logger.info("Allo's circuit is half-open: one trial request goes through.")
            return Permit(trial=True, dirty=True)
        # Another request is the trial: wait for its verdict.
        raise self._refusal(1.0)

    def _refusal(self, seconds: float) -> AlloUnavailableError:
        return AlloUnavailableError(
            message="Allo is not answering; changes are paused.",
            code="CIRCUIT_OPEN",
            retry_after=max(seconds, 0.001),
            request_sent=False,
        )

    def succeeded(self, permit: Permit) -> None:
        """Allo answered (any status but a failure): the count restarts, the circuit closes.

        The count is of failures in a row, so every answer resets it, even one let through
        while the count was zero (other calls may have failed since).
        """
        if permit.dirty or permit.trial:
            self.store.delete_many([self._failures, self._opened, self._trial])
            if permit.trial:
                logger.warning("Allo answers again: its circuit is closed.")
        else:
            self.store.delete_many([self._failures])

    def failed(self, permit: Permit) -> None:
        """Allo did not answer properly: count it, and open the circuit past the threshold."""
        failures = self.store.count(self._failures, FAILURE_MEMORY)
        now = self.timing.wall()
        if permit.trial:
            # The trial failed: another full cool-down from now.
            self.store.set(self._opened, now, OPEN_MEMORY)
            self.store.delete_many([self._trial])
            logger.warning("Allo's trial request failed: its circuit stays open.")
        elif failures >= self.policy.failure_threshold and self.store.add(
            self._opened, now, OPEN_MEMORY
        ):
            logger.warning(
                "Allo failed %s times in a row: no request goes to Allo for %s s.",
                failures,
                self.policy.cooldown,
            )

    def abandoned(self, permit: Permit) -> None:
        """The permitted call never went out (no budget): let someone else be the trial."""
        if permit.trial:
            self.store.delete_many([self._trial])

    def state(self) -> CircuitState:
        opened = self.store.get(self._opened)
        if not isinstance(opened, int | float):
            return CircuitState(open=False)
        return CircuitState(
            open=True,
            since=datetime.fromtimestamp(opened, UTC),
            retry_at=datetime.fromtimestamp(opened + self.policy.cooldown, UTC),
        )
