"""The shared rate budget: the dashboard stays within Allo's limits, and Allo never says 429.

Fake-clock tests show the exact arithmetic (18 reads and 4 writes a second, the rest waiting or
refused); the threaded one runs over a real socket on the real clock, and asserts only what Allo
answered.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dashboard.allo.budget import READ, SEND_GUARD, WRITE, RateBudget, usable
from dashboard.allo.client import AlloClient, build_client
from dashboard.allo.errors import AlloError, AlloRateLimitedError
from dashboard.allo.resilience import Deadline, Policy, Timing, deadline
from dashboard.allo.store import SharedStore
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.server import SandboxServer
from dashboard.sandbox.transport import sandbox_transport
from tests.conftest import sandbox_api_key

USERS = "/v2/api/users"
QUEUE = "/v2/api/dialing-queues/current"


def statuses(sandbox: Sandbox, method: str, path: str) -> list[int | None]:
    log = sandbox.stats()["log"]
    return [r["status"] for r in log if r["method"] == method and r["path"] == path]


def every_status(sandbox: Sandbox) -> set[int | None]:
    return {r["status"] for r in sandbox.stats()["log"]}


def a_member(sandbox: Sandbox) -> str:
    return next(
        u["id"] for u in sandbox.users if u["status"] == "ACTIVE" and u["id"] != sandbox.owner_id
    )


def outcome(call: Any) -> str:
    """ "ok", or the code of the AlloError the call raised."""
    try:
        call()
    except AlloError as exc:
        return exc.code or type(exc).__name__
    return "ok"


@pytest.fixture
def make_client(sandbox: Sandbox, sandbox_clock: FakeClock) -> Iterator[Any]:
    """More clients of the same key over ``sandbox``, on its clock: as other processes would
    be, they share the budget only through the store."""
    built: list[AlloClient] = []

    def make(**kwargs: Any) -> AlloClient:
        options = {
            "base_url": "http://allo.test",
            "api_key": sandbox.api_key,
            "transport": sandbox_transport(sandbox),
            "timing": Timing.simulated(sandbox_clock),
            **kwargs,
        }
        built.append(build_client(**options))
        return built[-1]

    yield make
    for client in built:
        client.close()


@pytest.mark.parametrize(
    ("limit", "margin", "used"),
    [(20, 0.1, 18), (5, 0.1, 4), (1, 0.1, 1), (100, 0.1, 90), (5, 0, 5)],
)
def test_the_dashboard_keeps_a_margin_of_each_limit_unused(
    limit: int, margin: float, used: int
) -> None:
    assert usable(limit, margin) == used


def test_thirty_reads_at_once_never_meet_a_429_the_excess_waits_its_turn(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    for _ in range(30):
        assert allo.list_users()
    assert statuses(sandbox, "GET", USERS) == [200] * 30


def test_reads_past_the_budget_are_refused_when_no_slot_comes_in_time(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    # The clock stands a quarter into a second: the next window is 0.75 s away, past the deadline.
    with deadline(0.5, clock=sandbox_clock):
        outcomes = [outcome(allo.list_users) for _ in range(30)]
    assert outcomes == ["ok"] * 18 + ["BUDGET_EXHAUSTED"] * 12
    assert statuses(sandbox, "GET", USERS) == [200] * 18


def test_a_refusal_says_when_to_try_again_and_that_nothing_was_sent(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    member = a_member(sandbox)
    with deadline(0.5, clock=sandbox_clock):
        for index in range(4):
            allo.upsert_queue(user_id=member, name=f"Name {index}")
        with pytest.raises(AlloRateLimitedError) as caught:
            allo.upsert_queue(user_id=member, name="Too soon")
    assert caught.value.code == "BUDGET_EXHAUSTED"
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 1
    assert caught.value.request_id
    assert statuses(sandbox, "PATCH", QUEUE) == [200] * 4
    assert sandbox.queue_of(member)["name"] == "Name 3"


def test_writes_wait_for_the_next_second_rather_than_meet_a_429(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    member = a_member(sandbox)
    for index in range(10):
        allo.upsert_queue(user_id=member, name=f"Name {index}")
    assert statuses(sandbox, "PATCH", QUEUE) == [200] * 10


def test_reads_and_writes_have_budgets_of_their_own(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    member = a_member(sandbox)
    with deadline(0.5, clock=sandbox_clock):
        writes = [outcome(lambda: allo.upsert_queue(user_id=member, name="x")) for _ in range(5)]
        reads = [outcome(allo.list_users) for _ in range(5)]
    assert writes == ["ok"] * 4 + ["BUDGET_EXHAUSTED"]
    assert reads == ["ok"] * 5


def test_a_429_pauses_every_client_of_the_key_until_its_retry_after(
    sandbox: Sandbox, sandbox_clock: FakeClock, make_client: Any
) -> None:
    # Allo's own count disagrees with ours (another tool on the key, say): one 429.
    impatient = make_client(policy=Policy(attempts=1, reads_per_second=20, writes_per_second=5))
    other = make_client()
    sandbox.set_faults(FaultSpec(status=429, count=1))
    with pytest.raises(AlloRateLimitedError) as caught:
        impatient.list_users()
    assert caught.value.code == "RATE_LIMIT_EXCEEDED"
    assert other.budget.paused_for(READ) > 0
    assert other.budget.paused_for(WRITE) == 0
    with deadline(0.5, clock=sandbox_clock), pytest.raises(AlloRateLimitedError) as refused:
        other.list_users()
    assert refused.value.code == "BUDGET_EXHAUSTED"
    assert statuses(sandbox, "GET", USERS) == [429]
    # Given time, the other client waits the pause out and then asks.
    assert other.list_users()
    assert statuses(sandbox, "GET", USERS) == [429, 200]


def test_the_limits_are_learnt_from_allo_once_and_shared(
    settings: Any, sandbox: Sandbox, sandbox_clock: FakeClock, make_client: Any
) -> None:
    settings.ALLO_READS_PER_SECOND = None
    settings.ALLO_WRITES_PER_SECOND = None
    sandbox.read_limit, sandbox.write_limit = 10, 3
    first = make_client()
    with deadline(0.5, clock=sandbox_clock):
        outcomes = [outcome(first.list_users) for _ in range(12)]
    # Nine reads a second (10 less the margin), GET /v2/api/me among them.
    assert statuses(sandbox, "GET", "/v2/api/me") == [200]
    assert outcomes == ["ok"] * 8 + ["BUDGET_EXHAUSTED"] * 4
    assert first.budget.limits().source == "allo"
    assert first.budget.allowance(WRITE) == 2
    second = make_client()
    assert second.budget.allowance(READ) == 9
    assert statuses(sandbox, "GET", "/v2/api/me") == [200]
    assert 429 not in every_status(sandbox)


def test_when_allo_cannot_say_its_limits_the_documented_ones_apply(
    settings: Any, sandbox: Sandbox, make_client: Any
) -> None:
    settings.ALLO_READS_PER_SECOND = None
    settings.ALLO_WRITES_PER_SECOND = None
    sandbox.set_faults(FaultSpec(status=500, count=3))
    client = make_client()
    assert client.list_users()
    assert client.budget.limits().source == "default"
    assert (client.budget.allowance(READ), client.budget.allowance(WRITE)) == (18, 4)


def test_thirty_reads_from_threads_over_a_socket_never_meet_a_429(
    live_sandbox: SandboxServer,
) -> None:
    # Several rounds: one alone often starts far from a second's end and proves little.
    outcomes: list[str] = []
    with (
        build_client(base_url=live_sandbox.url, api_key=sandbox_api_key()) as client,
        ThreadPoolExecutor(max_workers=30) as pool,
    ):
        for _ in range(4):
            outcomes += pool.map(lambda _: outcome(client.list_users), range(30))
    served = statuses(live_sandbox.sandbox, "GET", USERS)
    assert set(outcomes) <= {"ok", "BUDGET_EXHAUSTED"}
    assert 429 not in served
    assert served.count(200) == outcomes.count("ok") >= 1


class _SlowStore(SharedStore):
    """The shared store, each count taking ``delay`` seconds of ``clock``'s time."""

    def __init__(self, clock: FakeClock, delay: float) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay

    def count(self, key: str, timeout: float) -> int:
        used = super().count(key, timeout)
        self.clock.advance(self.delay)
        return used


def _budget(clock: FakeClock, delay: float = 0.0) -> tuple[RateBudget, SharedStore]:
    store = _SlowStore(clock, delay)
    budget = RateBudget(
        store=store,
        scope="edge-test",
        policy=Policy(reads_per_second=20, writes_per_second=5),
        timing=Timing.simulated(clock),
    )
    return budget, store


def _used(store: SharedStore, window: int) -> int:
    return store.get(f"allo:edge-test:window:{READ}:{window}") or 0


def test_a_slot_granted_too_late_in_its_second_is_not_used_the_request_takes_the_next() -> None:
    # The store answers late: the slot it grants in second N would be sent in N+1, where Allo
    # counts it. The request must go out in N+1 with a slot of N+1.
    second = 1_777_887_000
    clock = FakeClock(second + 1 - SEND_GUARD - 0.02)
    budget, store = _budget(clock, delay=0.03)
    budget.acquire(READ, Deadline(clock() + 2.0, clock))
    assert second + 1 <= clock() < second + 1 + SEND_GUARD + 0.1
    assert clock() < second + 2 - SEND_GUARD
    assert (_used(store, second), _used(store, second + 1)) == (1, 1)


def test_no_slot_is_taken_in_the_last_moments_of_a_second() -> None:
    second = 1_777_887_000
    clock = FakeClock(second + 1 - SEND_GUARD / 2)
    budget, store = _budget(clock)
    budget.acquire(READ, Deadline(clock() + 2.0, clock))
    assert clock() >= second + 1
    assert (_used(store, second), _used(store, second + 1)) == (0, 1)


def test_every_granted_slot_leaves_time_to_send_within_its_second() -> None:
    # Many requests over a slow store: each returns with its window's end at least the guard away,
    # and no window counts more requests sent in it than the allowance.
    clock = FakeClock(1_777_887_000.7)
    budget, _ = _budget(clock, delay=0.03)
    sent: dict[int, int] = {}
    for _ in range(60):
        budget.acquire(READ, Deadline(clock() + 5.0, clock))
        now = clock()
        assert math.floor(now) + 1 - now >= SEND_GUARD
        sent[math.floor(now)] = sent.get(math.floor(now), 0) + 1
    assert max(sent.values()) <= budget.allowance(READ)
