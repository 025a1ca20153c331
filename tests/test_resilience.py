"""Deadlines, retries and the circuit breaker, through the sandbox's fault switch.

Most tests run the client on the sandbox's fake clock (the ``allo`` fixture): its waits move that
clock, so nothing sleeps. The hangs run over a real socket, where only a real deadline can end
them. Every test asserts what Allo received, never how long anything took.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashboard.allo.client import AlloClient, build_client, circuit_state
from dashboard.allo.errors import (
    AlloBadResponseError,
    AlloNotFoundError,
    AlloRateLimitedError,
    AlloUnavailableError,
)
from dashboard.allo.resilience import Policy, Timing, current_deadline, deadline
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.server import SandboxServer
from dashboard.sandbox.transport import sandbox_transport
from tests.conftest import sandbox_api_key

USERS = "/v2/api/users"
QUEUE = "/v2/api/dialing-queues/current"


def fault(sandbox: Sandbox, **spec: Any) -> None:
    """Switch on one of the sandbox's faults (none: switch it off)."""
    sandbox.set_faults(FaultSpec.from_json(spec))


def received(sandbox: Sandbox, method: str, path: str) -> list[dict[str, Any]]:
    """What Allo received for method+path, oldest first."""
    return [r for r in sandbox.stats()["log"] if r["method"] == method and r["path"] == path]


def statuses(sandbox: Sandbox, method: str, path: str) -> list[int | None]:
    """The status Allo answered each of them (None: left hanging)."""
    return [r["status"] for r in received(sandbox, method, path)]


def a_member(sandbox: Sandbox) -> str:
    return next(
        u["id"] for u in sandbox.users if u["status"] == "ACTIVE" and u["id"] != sandbox.owner_id
    )


class RefusedFirst(httpx.BaseTransport):
    """The first ``refusals`` connections are refused, as by a host with nothing listening; then
    every request goes to ``inner``."""

    def __init__(self, inner: httpx.BaseTransport, refusals: int = 1) -> None:
        self.inner = inner
        self.refusals = refusals

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.refusals > 0:
            self.refusals -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return self.inner.handle_request(request)


@pytest.fixture
def live_client(live_sandbox: SandboxServer) -> Iterator[AlloClient]:
    """A client over a real socket to ``live_sandbox``, with generous socket timeouts: only a
    deadline can end a hang sooner."""
    client = build_client(base_url=live_sandbox.url, api_key=sandbox_api_key(), read_timeout=30)
    yield client
    client.close()


# Retries ---------------------------------------------------------------------------------------


def test_a_read_that_failed_once_is_retried_and_the_caller_gets_the_data(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    fault(sandbox, status=503, count=1)
    assert allo.list_users()
    assert statuses(sandbox, "GET", USERS) == [503, 200]
    first, second = received(sandbox, "GET", USERS)
    # One call, one request id for Allo's support, whatever the attempts.
    assert first["request_id"] == second["request_id"]


def test_a_read_that_keeps_failing_stops_after_the_attempts_allowed(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    fault(sandbox, status=502)
    with pytest.raises(AlloUnavailableError) as caught:
        allo.list_users()
    assert caught.value.status == 502
    assert statuses(sandbox, "GET", USERS) == [502, 502, 502]


def test_a_write_answered_503_is_not_repeated_and_may_have_been_applied(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    fault(sandbox, status=503, count=1)
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id=a_member(sandbox), name="Once")
    assert caught.value.request_sent is True
    assert statuses(sandbox, "PATCH", QUEUE) == [503]


def test_a_write_applied_and_then_reported_failed_is_not_repeated(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    member = a_member(sandbox)
    fault(sandbox, apply_then_fail=True, count=1)
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id=member, name="Applied once")
    assert caught.value.request_sent is True
    assert statuses(sandbox, "PATCH", QUEUE) == [500]
    assert sandbox.queue_of(member)["name"] == "Applied once"


def test_a_write_that_timed_out_after_leaving_is_not_repeated(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    fault(sandbox, hang=True, count=1)
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id=a_member(sandbox), name="Maybe")
    assert caught.value.request_sent is True
    assert statuses(sandbox, "PATCH", QUEUE) == [None]


def test_a_write_refused_at_the_door_is_sent_again_and_applied_once(sandbox: Sandbox) -> None:
    member = a_member(sandbox)
    transport = RefusedFirst(sandbox_transport(sandbox))
    with build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=transport,
        timing=Timing.simulated(FakeClock()),
    ) as client:
        queue = client.upsert_queue(user_id=member, name="Second try")
    assert queue.name == "Second try"
    assert transport.refusals == 0
    assert statuses(sandbox, "PATCH", QUEUE) == [200]


def test_a_write_refused_every_time_says_it_surely_was_not_sent(sandbox: Sandbox) -> None:
    transport = RefusedFirst(sandbox_transport(sandbox), refusals=99)
    with (
        build_client(
            base_url="http://allo.test",
            api_key=sandbox.api_key,
            transport=transport,
            timing=Timing.simulated(FakeClock()),
        ) as client,
        pytest.raises(AlloUnavailableError) as caught,
    ):
        client.upsert_queue(user_id=a_member(sandbox), name="Never")
    assert caught.value.request_sent is False
    assert transport.refusals == 99 - Policy.from_settings().attempts
    assert received(sandbox, "PATCH", QUEUE) == []


def test_a_write_allo_refused_with_429_is_sent_again_after_its_retry_after(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    member = a_member(sandbox)
    fault(sandbox, status=429, count=1, methods=["PATCH"])
    assert allo.upsert_queue(user_id=member, name="After the wait").name == "After the wait"
    assert statuses(sandbox, "PATCH", QUEUE) == [429, 200]
    assert sandbox.queue_of(member)["name"] == "After the wait"


def test_a_body_that_is_not_json_is_read_again_for_a_read(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    fault(sandbox, malformed=True, count=1)
    assert allo.list_users()
    assert statuses(sandbox, "GET", USERS) == [200, 200]


def test_a_body_that_is_not_json_is_never_sent_again_for_a_write(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    fault(sandbox, malformed=True, count=1, methods=["PATCH"])
    with pytest.raises(AlloBadResponseError):
        allo.upsert_queue(user_id=a_member(sandbox), name="Unconfirmed")
    assert statuses(sandbox, "PATCH", QUEUE) == [200]


# Deadlines -------------------------------------------------------------------------------------


def test_a_hang_longer_than_the_deadline_ends_within_it_after_one_request(
    live_client: AlloClient, live_sandbox: SandboxServer
) -> None:
    live_sandbox.sandbox.set_faults(FaultSpec(hang=True))
    with deadline(0.5), pytest.raises(AlloUnavailableError) as caught:
        live_client.list_users()
    assert caught.value.request_sent is True
    assert live_sandbox.sandbox.wait_for_requests(1, timeout=5)
    # No time was left for a retry.
    assert statuses(live_sandbox.sandbox, "GET", USERS) == [None]


def test_a_write_left_hanging_past_the_deadline_may_have_been_applied(
    live_client: AlloClient, live_sandbox: SandboxServer
) -> None:
    live_sandbox.sandbox.set_faults(FaultSpec(hang=True))
    with deadline(0.5), pytest.raises(AlloUnavailableError) as caught:
        live_client.upsert_queue(user_id=a_member(live_sandbox.sandbox), name="Who knows")
    assert caught.value.request_sent is True
    assert live_sandbox.sandbox.wait_for_requests(1, timeout=5)
    assert statuses(live_sandbox.sandbox, "PATCH", QUEUE) == [None]


def test_without_a_deadline_each_call_gets_the_default_one(live_sandbox: SandboxServer) -> None:
    live_sandbox.sandbox.set_faults(FaultSpec(hang=True))
    with build_client(
        base_url=live_sandbox.url,
        api_key=sandbox_api_key(),
        read_timeout=30,
        policy=Policy(action_deadline=0.5, reads_per_second=20, writes_per_second=5),
    ) as client:
        assert current_deadline() is None
        with pytest.raises(AlloUnavailableError):
            client.list_users()
    assert live_sandbox.sandbox.wait_for_requests(1, timeout=5)
    assert statuses(live_sandbox.sandbox, "GET", USERS) == [None]


def test_one_deadline_covers_every_call_of_an_action(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    with deadline(1.5, clock=sandbox_clock):
        fault(sandbox, status=429, count=1)
        allo.list_users()  # waits out Allo's Retry-After: a second of the action's 1.5
        fault(sandbox, status=429, count=1)
        with pytest.raises(AlloRateLimitedError) as caught:
            allo.list_users()  # another second to wait, half a second left: no retry
    assert caught.value.code == "RATE_LIMIT_EXCEEDED"
    assert statuses(sandbox, "GET", USERS) == [429, 200, 429]


def test_nested_deadlines_keep_the_earlier() -> None:
    assert current_deadline() is None
    with deadline(5):
        with deadline(60) as inner:
            assert inner.remaining() <= 5
        with deadline(1) as inner:
            assert inner.remaining() <= 1
        outer = current_deadline()
        assert outer is not None and 1 < outer.remaining() <= 5
    assert current_deadline() is None


def test_a_service_may_take_its_deadline_as_a_decorator() -> None:
    @deadline(2)
    def action() -> float | None:
        inside = current_deadline()
        return inside.remaining() if inside else None

    remaining = action()
    assert remaining is not None and remaining <= 2
    assert current_deadline() is None


# The circuit breaker ---------------------------------------------------------------------------


def open_the_circuit(allo: AlloClient, sandbox: Sandbox) -> None:
    """Five failures in a row: three attempts of one read, two of the next."""
    fault(sandbox, status=503)
    for _ in range(2):
        with pytest.raises(AlloUnavailableError):
            allo.list_users()
    assert statuses(sandbox, "GET", USERS) == [503] * 5
    sandbox.clear_stats()


def test_the_circuit_opens_after_five_failures_and_then_allo_hears_nothing(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    assert not circuit_state().open
    open_the_circuit(allo, sandbox)
    state = circuit_state()
    assert state.open and state.since is not None and state.retry_at is not None
    assert state.retry_at > state.since
    member = a_member(sandbox)
    for call in (allo.list_users, lambda: allo.upsert_queue(user_id=member, name="Paused")):
        with pytest.raises(AlloUnavailableError) as caught:
            call()
        assert caught.value.code == "CIRCUIT_OPEN"
        assert caught.value.request_sent is False
        assert caught.value.retry_after and caught.value.retry_after > 0
    assert sandbox.stats()["log"] == []


def test_after_the_cooldown_one_trial_closes_the_circuit_when_allo_answers(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    open_the_circuit(allo, sandbox)
    fault(sandbox)  # Allo is back, but the dashboard does not know yet.
    with pytest.raises(AlloUnavailableError):
        allo.list_users()
    assert sandbox.stats()["log"] == []
    sandbox_clock.advance(Policy.from_settings().cooldown)
    assert allo.list_users()
    assert not circuit_state().open
    assert allo.get_queue_page(user_id=a_member(sandbox)).page == 1
    assert statuses(sandbox, "GET", USERS) == [200]


def test_a_failed_trial_opens_the_circuit_for_another_cooldown(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    open_the_circuit(allo, sandbox)
    first_since = circuit_state().since
    sandbox_clock.advance(Policy.from_settings().cooldown)
    with pytest.raises(AlloUnavailableError):
        allo.list_users()
    # The trial alone reached Allo; its retries met the circuit open again.
    assert statuses(sandbox, "GET", USERS) == [503]
    state = circuit_state()
    assert state.open and state.since is not None and first_since is not None
    assert state.since > first_since
    with pytest.raises(AlloUnavailableError) as caught:
        allo.list_users()
    assert caught.value.code == "CIRCUIT_OPEN"
    assert statuses(sandbox, "GET", USERS) == [503]


def test_a_half_open_circuit_lets_one_trial_through_at_a_time(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    open_the_circuit(allo, sandbox)
    sandbox_clock.advance(Policy.from_settings().cooldown)
    trial = allo.circuit.before_call()
    assert trial.trial
    with pytest.raises(AlloUnavailableError) as caught:
        allo.circuit.before_call()
    assert caught.value.code == "CIRCUIT_OPEN"
    allo.circuit.succeeded(trial)
    assert not circuit_state().open


def test_refusals_from_allo_never_open_the_circuit(allo: AlloClient, sandbox: Sandbox) -> None:
    for _ in range(Policy.from_settings().failure_threshold + 2):
        with pytest.raises(AlloNotFoundError):
            allo.get_user("usr-nobody")
    assert not circuit_state().open
    assert allo.list_users()


class Broken(Exception):
    """Not an AlloError: a bug, or an interrupt, in the middle of a call."""


def test_a_trial_ended_by_an_error_not_from_allo_lets_the_next_request_be_the_trial(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock, monkeypatch: Any
) -> None:
    open_the_circuit(allo, sandbox)
    fault(sandbox)  # Allo is back.
    sandbox_clock.advance(Policy.from_settings().cooldown)

    def broken_send(*args: Any, **kwargs: Any) -> Any:
        raise Broken

    with monkeypatch.context() as patched:
        patched.setattr(allo, "_send", broken_send)
        with pytest.raises(Broken):
            allo.list_users()
    # The trial's permit was given back: the next request is the trial, and closes the circuit.
    assert allo.list_users()
    assert not circuit_state().open
    assert statuses(sandbox, "GET", USERS) == [200]


def test_a_trial_that_could_not_get_budget_for_a_reason_not_from_allo_is_given_back(
    allo: AlloClient, sandbox: Sandbox, sandbox_clock: FakeClock, monkeypatch: Any
) -> None:
    open_the_circuit(allo, sandbox)
    fault(sandbox)
    sandbox_clock.advance(Policy.from_settings().cooldown)

    def broken_acquire(*args: Any, **kwargs: Any) -> None:
        raise Broken

    with monkeypatch.context() as patched:
        patched.setattr(allo.budget, "acquire", broken_acquire)
        with pytest.raises(Broken):
            allo.list_users()
    assert allo.list_users()
    assert not circuit_state().open


def test_any_answer_restarts_the_count_of_failures_in_a_row(allo: AlloClient) -> None:
    circuit = allo.circuit
    threshold = Policy.from_settings().failure_threshold
    # A call let through while nothing had failed yet ...
    early = circuit.before_call()
    assert not early.dirty
    # ... answers after others failed, one short of the threshold.
    for _ in range(threshold - 1):
        circuit.failed(circuit.before_call())
    circuit.succeeded(early)
    # The failures were not in a row: one more does not open the circuit.
    circuit.failed(circuit.before_call())
    assert not circuit_state().open
    for _ in range(threshold - 1):
        circuit.failed(circuit.before_call())
    assert circuit_state().open
