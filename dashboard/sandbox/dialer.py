"""The simulated reps: how a call turns out, and one tick of everyone's dialer session.

Allo's API places no calls; reps do, in Allo's app, and the queue shows the results. The sandbox
imitates that so that a page watching a queue sees routing results arrive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dashboard.allo.types import NOT_REACHED_REASONS, ROUTING_RESULTS

from .state import Entry, IdMaker, Queue, World

# How often each routing result comes up, roughly, in an outbound B2B calling session.
ROUTING_WEIGHTS: dict[str, int] = {
    "ANSWERED": 30,
    "VOICEMAIL": 24,
    "FAILED": 16,
    "CLOSED": 8,
    "RECEIVED": 4,
    "BLOCKED": 3,
    "FAILED_EXTERNAL": 3,
    "TRANSFERRED_EXTERNAL": 3,
    "TRANSFERRED_BLAND": 2,
    "TRANSFERRED_ELEVEN_LABS": 2,
}
REASON_WEIGHTS: dict[str, int] = {
    "BUSY": 30,
    "RING_TIMEOUT": 25,
    "CALLEE_TEMPORARILY_UNAVAILABLE": 20,
    "NOT_IN_SERVICE": 10,
    "DECLINED": 10,
    "NETWORK_ERROR": 5,
}
assert set(ROUTING_WEIGHTS) == set(ROUTING_RESULTS)
assert set(REASON_WEIGHTS) == set(NOT_REACHED_REASONS)

# The share of voicemails a rep on a NO_SKIP queue leaves a message on.
VOICEMAIL_LEFT_SHARE = 0.6


@dataclass(frozen=True)
class Outcome:
    routing_result: str
    not_reached_destination_reason: str | None
    detected_outbound_voicemail: bool | None
    voicemail_left: bool | None
    duration: float


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def draw_outcome(
    rng: random.Random,
    voicemail_handling: str,
    *,
    result: str | None = None,
    reason: str | None = None,
    voicemail_left: bool | None = None,
) -> Outcome:
    """How one call ends; ``result``, ``reason`` and ``voicemail_left`` force a value.

    A SKIP queue hangs up on voicemail boxes, so it never leaves a voicemail.
    """
    result = result or _weighted(rng, ROUTING_WEIGHTS)
    detected: bool | None = False
    left: bool | None = False
    why: str | None = None
    duration = rng.uniform(8, 35)
    if result == "VOICEMAIL":
        detected = True
        if voicemail_handling == "SKIP":
            left = False
        elif voicemail_left is not None:
            left = voicemail_left
        else:
            left = rng.random() < VOICEMAIL_LEFT_SHARE
        duration = rng.uniform(25, 70) if left else rng.uniform(6, 20)
    elif result == "FAILED":
        # The call never connected, so nobody can tell whether a voicemail box was there.
        why = reason or _weighted(rng, REASON_WEIGHTS)
        detected = left = None
        duration = rng.uniform(2, 30)
    elif result == "FAILED_EXTERNAL":
        why = reason or rng.choice(("NETWORK_ERROR", "NOT_IN_SERVICE"))
        detected = left = None
    elif result == "CLOSED":
        why = reason or (rng.choice(("RING_TIMEOUT", None)))
    elif result == "BLOCKED":
        why = reason or (rng.choice(("DECLINED", None)))
        duration = rng.uniform(1, 5)
    elif result == "ANSWERED" or result.startswith("TRANSFERRED"):
        why = reason
        duration = rng.uniform(45, 420)
    else:
        why = reason
    return Outcome(result, why, detected, left, duration)


def start_call(entry: Entry, ids: IdMaker, now: float) -> None:
    entry.call_start_date = now
    entry.call_id = ids.call()
    entry.updated_at = now


def finish_call(entry: Entry, outcome: Outcome, now: float) -> None:
    entry.routing_result = outcome.routing_result
    entry.not_reached_destination_reason = outcome.not_reached_destination_reason
    entry.detected_outbound_voicemail = outcome.detected_outbound_voicemail
    entry.voicemail_left = outcome.voicemail_left
    # The call is logged in the CRM a moment after it ends.
    entry.sync_status = "PROCESSING"
    entry.updated_at = now


def sync_queue(queue: Queue, rng: random.Random, now: float) -> None:
    """Calls logged last tick reach the CRM (or fail to)."""
    for entry in queue.numbers:
        if entry.sync_status == "PROCESSING" and entry.routing_result is not None:
            entry.sync_status = "SYNCED" if rng.random() < 0.95 else "NOT_SYNCED"
            entry.updated_at = now


def dial_queue(queue: Queue, world: World, rng: random.Random, now: float) -> None:
    """One tick of a rep's session: the call in progress ends and the next uncalled number is
    dialed; with nothing left to dial the session ends."""
    for entry in queue.numbers:
        if entry.in_progress:
            finish_call(entry, draw_outcome(rng, queue.voicemail_handling), now)
    upcoming = next((e for e in queue.numbers if not e.called), None)
    if upcoming is None:
        queue.dialing = False
    else:
        start_call(upcoming, world.ids, now)


def dial_step(world: World, rng: random.Random, now: float) -> None:
    """Advance every current queue that a rep is dialing by one number."""
    for queue in world.current_queues():
        sync_queue(queue, rng, now)
        if queue.dialing:
            dial_queue(queue, world, rng, now)
