"""The Allo client against the sandbox: every endpoint, every failure, both dialects of Allo.

Most tests use conftest's ``allo`` client over the in-process ``sandbox``, both on the fake
``sandbox_clock`` (waits move that clock; nothing sleeps, no rate-limit window turns by
accident). A few run over a real socket (``live_sandbox``): a hang, a refused connection. A
hand-built transport appears only where the sandbox cannot say the thing (a lying
``total_pages``, a redirect, a broken gzip body, unknown keys).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.views.debug import ExceptionReporter

from dashboard.allo.client import (
    MAX_QUEUE_PAGES,
    AlloClient,
    build_client,
    circuit_state,
    get_client,
    install_client,
)
from dashboard.allo.errors import (
    AlloAuthenticationError,
    AlloBadResponseError,
    AlloConfigurationError,
    AlloConflictError,
    AlloError,
    AlloNotFoundError,
    AlloPermissionError,
    AlloRateLimitedError,
    AlloUnavailableError,
    AlloValidationError,
    AlloWrongTeammateError,
)
from dashboard.allo.resilience import Policy, Timing
from dashboard.allo.types import NewNumber
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.server import SandboxServer
from dashboard.sandbox.transport import sandbox_transport
from tests.conftest import sandbox_api_key

USERS = "/v2/api/users"
ME = "/v2/api/me"
QUEUE = "/v2/api/dialing-queues/current"
NUMBERS = "/v2/api/dialing-queues/current/numbers"
OUR_REQUEST_ID = re.compile(r"req_dash_[0-9a-f]{20}")


@pytest.fixture
def make_client(sandbox_clock: FakeClock) -> Iterator[Callable[..., AlloClient]]:
    """Build clients (on the sandbox's fake clock unless told otherwise) that are all closed
    after the test, so no socket outlives it."""
    built: list[AlloClient] = []

    def make(**kwargs: Any) -> AlloClient:
        kwargs.setdefault("base_url", "http://allo.test")
        kwargs.setdefault("api_key", sandbox_api_key())
        kwargs.setdefault("timing", Timing.simulated(sandbox_clock))
        built.append(build_client(**kwargs))
        return built[-1]

    yield make
    for client in built:
        client.close()


# Helpers ----------------------------------------------------------------------------------------


def fault(sandbox: Sandbox, **spec: Any) -> None:
    """Switch on one of the sandbox's faults (none: switch it off)."""
    sandbox.set_faults(FaultSpec.from_json(spec))


def received(sandbox: Sandbox, method: str | None = None, path: str | None = None) -> list[Any]:
    """What the sandbox received (for method+path), oldest first: its request log."""
    return [
        row
        for row in sandbox.stats()["log"]
        if (method is None or row["method"] == method) and (path is None or row["path"] == path)
    ]


def member_ids(sandbox: Sandbox) -> list[str]:
    return [
        u["id"] for u in sandbox.users if u["status"] == "ACTIVE" and u["id"] != sandbox.owner_id
    ]


def someone_with_a_queue(sandbox: Sandbox, *, min_numbers: int = 1) -> str:
    for user_id in member_ids(sandbox):
        state = sandbox.queue_of(user_id)
        if state and len(state["numbers"]) >= min_numbers:
            return user_id
    raise AssertionError("the seeded team has no such queue")


def someone_without_a_queue(sandbox: Sandbox) -> str:
    for user_id in member_ids(sandbox):
        if sandbox.queue_of(user_id) is None:
            return user_id
    raise AssertionError("the seeded team has no one without a queue")


def numbers_of(sandbox: Sandbox, user_id: str) -> list[str]:
    state = sandbox.queue_of(user_id)
    return [n["number_to"] for n in state["numbers"]] if state else []


def queue_json(**overrides: Any) -> dict[str, Any]:
    return {"id": "pdl_1", "name": "Q", "assignee_id": "usr-1", **overrides}


# Happy paths ------------------------------------------------------------------------------------


def test_me_describes_the_key_its_scopes_limits_and_endpoints(allo: AlloClient) -> None:
    me = allo.me()
    assert set(me.scopes) == {"USERS_READ", "DIALING_QUEUE_READ_WRITE"}
    assert me.rate_limits is not None
    assert (me.rate_limits.read_per_second, me.rate_limits.write_per_second) == (20, 5)
    assert me.team is not None and me.team.name
    assert any(e.path == USERS for e in me.endpoints)
    # PATCH is missing from the documented enum, yet Allo lists PATCH endpoints: kept as sent.
    assert ("PATCH", QUEUE) in {(e.method, e.path) for e in me.endpoints}


def test_users_lists_active_teammates_by_default_and_filters(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    active = allo.list_users()
    assert active and {t.status for t in active} == {"ACTIVE"}
    blocked = allo.list_users(status="BLOCKED")
    assert blocked and {t.status for t in blocked} == {"BLOCKED"}
    members = allo.list_users(role="MEMBER")
    assert members and {t.role for t in members} == {"MEMBER"}
    assert {t.id for t in active} | {t.id for t in blocked} == {u["id"] for u in sandbox.users}


def test_one_user_is_read_by_id(allo: AlloClient) -> None:
    someone = allo.list_users()[3]
    assert allo.get_user(someone.id) == someone


def test_an_unknown_user_is_not_found(allo: AlloClient) -> None:
    with pytest.raises(AlloNotFoundError) as caught:
        allo.get_user("usr-0000000000000000000000000000000000000000")
    assert caught.value.code == "USER_NOT_FOUND"


def test_a_queue_of_a_thousand_numbers_is_read_across_every_page(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = someone_with_a_queue(sandbox, min_numbers=1000)
    queue = allo.get_queue(user_id=user_id)
    assert queue is not None and queue.assignee_id == user_id
    assert [n.position for n in queue.numbers] == list(range(1000))
    reads = received(sandbox, "GET", QUEUE)
    assert [(r["query"]["page"], r["query"]["size"]) for r in reads] == [
        (str(page), "100") for page in range(1, 11)
    ]


def test_one_page_of_a_queue_carries_its_totals(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = someone_with_a_queue(sandbox, min_numbers=45)
    expected = len(numbers_of(sandbox, user_id))
    page = allo.get_queue_page(user_id=user_id, page=2, size=20)
    assert page.queue is not None and page.queue.assignee_id == user_id
    assert page.total_count == expected
    assert page.total_pages == -(-expected // 20)
    assert page.has_more is (expected > 40)
    assert [n.position for n in page.numbers] == list(range(20, 40))


def test_a_teammate_without_a_queue_reads_as_none(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = someone_without_a_queue(sandbox)
    assert allo.get_queue(user_id=user_id) is None
    page = allo.get_queue_page(user_id=user_id)
    assert page.queue is None and page.numbers == () and page.total_count == 0


def test_an_upsert_sends_only_the_fields_passed_and_never_null(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = someone_with_a_queue(sandbox)
    before = sandbox.queue_of(user_id)
    target = "NO_SKIP" if before["voicemail_handling"] == "SKIP" else "SKIP"
    queue = allo.upsert_queue(user_id=user_id, voicemail_handling=target)
    assert queue.voicemail_handling == target
    assert queue.name == before["name"]
    assert queue.do_not_disturb == before["do_not_disturb"]
    (patch,) = received(sandbox, "PATCH", QUEUE)
    assert patch["body"] == {"voicemail_handling": target, "user_id": user_id, "user_pid": user_id}


def test_an_upsert_passed_none_sends_no_null(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = someone_with_a_queue(sandbox)
    before = sandbox.queue_of(user_id)
    queue = allo.upsert_queue(
        user_id=user_id, name=None, voicemail_handling=None, do_not_disturb="ENABLED"
    )
    (patch,) = received(sandbox, "PATCH", QUEUE)
    assert patch["body"] == {"do_not_disturb": "ENABLED", "user_id": user_id, "user_pid": user_id}
    assert queue.name == before["name"] and queue.voicemail_handling == before["voicemail_handling"]


def test_an_upsert_creates_a_queue_for_a_teammate_without_one(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = someone_without_a_queue(sandbox)
    queue = allo.upsert_queue(user_id=user_id, name="Relances Q4")
    assert queue.assignee_id == user_id and queue.name == "Relances Q4" and queue.numbers == ()
    assert sandbox.queue_of(user_id)["name"] == "Relances Q4"


def test_a_reset_starts_an_empty_queue(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = someone_with_a_queue(sandbox)
    old = allo.get_queue(user_id=user_id)
    queue = allo.reset_queue(user_id=user_id, name="Fresh start")
    assert queue.numbers == () and queue.name == "Fresh start" and queue.id != old.id
    assert sandbox.queue_of(user_id)["numbers"] == []


def test_numbers_are_appended_normalised_and_invalid_ones_skipped(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = someone_without_a_queue(sandbox)
    result = allo.append_numbers(
        user_id=user_id,
        numbers=[NewNumber(number="06 12 34 56 78", name="Léa", company="Café Noir"), "nope"],
    )
    assert [n.number_to for n in result.added] == ["+33612345678"]
    assert [(s.number, s.reason) for s in result.skipped] == [("nope", "INVALID_PHONE_NUMBER")]
    (post,) = received(sandbox, "POST", NUMBERS)
    assert post["headers"]["content-type"] == "application/json"
    assert post["body"]["numbers"][0] == {
        "number": "06 12 34 56 78",
        "name": "Léa",
        "company": "Café Noir",
    }
    assert numbers_of(sandbox, user_id) == ["+33612345678"]


@pytest.mark.parametrize("count", [2, 64], ids=["one-page", "two-pages"])
def test_an_append_is_read_back_on_the_pages_holding_the_numbers_added(
    count: int, allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = next(u for u in member_ids(sandbox) if len(numbers_of(sandbox, u)) == 137)
    sandbox.clear_stats()
    wanted = [f"+3361200{index:04d}" for index in range(count)]
    result = allo.append_numbers(user_id=user_id, numbers=wanted)
    assert [n.position for n in result.added] == list(range(137, 137 + count))
    reads = received(sandbox, "GET", QUEUE)
    # Positions 137.. are on page 2 of 100; 137 + 63 = 200 is on page 3.
    expected_pages = ["2"] if count == 2 else ["2", "3"]
    assert [(r["query"]["page"], r["query"]["size"]) for r in reads] == [
        (page, "100") for page in expected_pages
    ]


def test_a_legacy_allo_proves_an_append_with_one_read(allo: AlloClient, sandbox: Sandbox) -> None:
    sandbox.get_shape = "legacy"
    user_id = next(u for u in member_ids(sandbox) if len(numbers_of(sandbox, u)) == 137)
    sandbox.clear_stats()
    allo.append_numbers(user_id=user_id, numbers=[f"+3361200{index:04d}" for index in range(64)])
    assert len(received(sandbox, "GET", QUEUE)) == 1


def test_numbers_are_cleared_by_filter(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = someone_without_a_queue(sandbox)
    allo.append_numbers(user_id=user_id, numbers=["+33612345678", "+33698765432", "+33612345678"])
    assert allo.clear_numbers(user_id=user_id, number="+33612345678") == 2
    assert numbers_of(sandbox, user_id) == ["+33698765432"]
    assert allo.clear_numbers(user_id=user_id, unassigned=True) == 1


def test_clearing_without_a_filter_is_refused(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = someone_with_a_queue(sandbox)
    with pytest.raises(AlloValidationError) as caught:
        allo.clear_numbers(user_id=user_id)
    assert caught.value.code == "DIALING_QUEUE_DELETE_FILTER_REQUIRED"


def test_a_queue_is_reassigned_to_another_teammate(allo: AlloClient, sandbox: Sandbox) -> None:
    giver = someone_without_a_queue(sandbox)
    taker = next(u for u in member_ids(sandbox) if u != giver)
    created = allo.upsert_queue(user_id=giver, name="Hand-over")
    moved = allo.reassign_queue(queue_id=created.id, user_id=taker)
    assert moved.id == created.id and moved.assignee_id == taker


def test_over_a_real_socket_the_client_reads_the_team_and_a_queue(
    live_sandbox: SandboxServer, make_client: Callable[..., AlloClient]
) -> None:
    allo = make_client(base_url=live_sandbox.url, timing=Timing())
    user_id = someone_with_a_queue(live_sandbox.sandbox, min_numbers=45)
    assert allo.list_users()
    page = allo.get_queue_page(user_id=user_id, page=2, size=20)
    assert page.queue is not None and [n.position for n in page.numbers] == list(range(20, 40))


# What Allo may add or leave out -----------------------------------------------------------------


def test_unknown_keys_are_ignored_and_null_optional_fields_read_as_none(
    make_client: Callable[..., AlloClient],
) -> None:
    number = {
        "number_to": "+33612345678",
        "position": 0,
        "created_at": None,
        "call_start_date": None,
        "call_id": None,
        "routing_result": None,
        "detected_outbound_voicemail": None,
        "recording_url": "https://…",
        "sentiment": {"score": 0.4},
    }
    queue = queue_json(name=None, creator_id=None, voicemail_handling=None, labels=["x"])

    def allo_of_tomorrow(request: httpx.Request) -> httpx.Response:
        if request.url.path == USERS:
            user = {"id": "usr-1", "name": None, "email": None, "role": None, "status": None}
            return httpx.Response(200, json={"data": [{**user, "image_url": None, "tz": "CET"}]})
        pagination = {"page": 1, "size": 100, "total_count": 1, "total_pages": 1, "cursor": "c"}
        body = {"data": [number], "pagination": pagination, "queue": queue, "meta": {}}
        return httpx.Response(200, json=body)

    allo = make_client(transport=httpx.MockTransport(allo_of_tomorrow))
    (teammate,) = allo.list_users()
    assert (teammate.id, teammate.name, teammate.email, teammate.role) == ("usr-1", "", None, None)
    assert teammate.status is None and teammate.image_url is None
    read = allo.get_queue(user_id="usr-1")
    assert read is not None and read.name is None and read.voicemail_handling is None
    (entry,) = read.numbers
    assert entry.number_to == "+33612345678" and entry.call_start_date is None
    assert entry.routing_result is None and entry.detected_outbound_voicemail is None
    assert entry.sync_status is None and entry.call_status is None


def test_a_key_without_a_team_is_described_with_team_none(
    make_client: Callable[..., AlloClient],
) -> None:
    def me(request: httpx.Request) -> httpx.Response:
        endpoint = {"method": "PATCH", "path": QUEUE, "description": None, "scope": None}
        return httpx.Response(
            200, json={"data": {"api_key_id": "api-1", "team": None, "endpoints": [endpoint]}}
        )

    described = make_client(transport=httpx.MockTransport(me)).me()
    assert described.team is None and described.scopes == () and described.rate_limits is None
    assert [(e.method, e.path) for e in described.endpoints] == [("PATCH", QUEUE)]


def test_unknown_enum_values_are_kept_as_they_came(
    allo: AlloClient, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    user_id = member_ids(sandbox)[0]
    number = {
        "number_to": "+33612345678",
        "call_start_date": "2026-04-30T10:00:00",
        "routing_result": "SOMETHING_NEW",
        "not_reached_destination_reason": "ALIENS",
        "sync_status": "TELEPORTING",
    }
    queue = {"name": "Futur", "voicemail_handling": "SKIP_TWICE", "numbers": [number]}
    allo_http.put(f"/_sandbox/queues/{user_id}", json=queue).raise_for_status()
    read = allo.get_queue(user_id=user_id)
    assert read is not None
    (entry,) = read.numbers
    assert entry.routing_result == "SOMETHING_NEW"
    assert entry.not_reached_destination_reason == "ALIENS"
    assert entry.sync_status == "TELEPORTING"
    assert (
        entry.call_start_date is not None and entry.call_start_date.utcoffset().total_seconds() == 0
    )
    assert read.voicemail_handling == "SKIP_TWICE"


# Errors, each produced by the sandbox's rules or its fault switch -------------------------------


def test_a_wrong_key_is_an_authentication_error(
    sandbox: Sandbox, make_client: Callable[..., AlloClient]
) -> None:
    allo = make_client(api_key="ak_live_wrong", transport=sandbox_transport(sandbox))
    with pytest.raises(AlloAuthenticationError) as caught:
        allo.list_users()
    assert caught.value.code == "API_KEY_INVALID" and caught.value.status == 401


def test_a_missing_scope_is_a_permission_error_naming_the_code(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    sandbox.scopes = ["DIALING_QUEUE_READ_WRITE"]
    with pytest.raises(AlloPermissionError) as caught:
        allo.list_users()
    assert caught.value.code == "API_KEY_INSUFFICIENT_SCOPE"
    assert allo.me().scopes == ("DIALING_QUEUE_READ_WRITE",)


def test_the_legacy_error_envelope_is_understood(allo: AlloClient, sandbox: Sandbox) -> None:
    sandbox.scopes = ["DIALING_QUEUE_READ_WRITE"]
    sandbox.scope_error_shape = "v1"
    with pytest.raises(AlloPermissionError) as caught:
        allo.list_users()
    assert caught.value.code == "API_KEY_INSUFFICIENT_SCOPE" and caught.value.status == 403
    assert "USERS_READ" in caught.value.message
    (row,) = received(sandbox, "GET", USERS)
    assert caught.value.request_id == row["request_id"]


def test_a_bad_value_is_a_validation_error_naming_the_field(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = someone_with_a_queue(sandbox)
    before = sandbox.queue_of(user_id)
    with pytest.raises(AlloValidationError) as caught:
        allo.upsert_queue(user_id=user_id, name="x" * 256)
    assert caught.value.param == "name" and caught.value.status == 400
    with pytest.raises(AlloValidationError) as caught:
        allo.upsert_queue(user_id=user_id, voicemail_handling="SOMETIMES")
    assert caught.value.param == "voicemail_handling"
    assert sandbox.queue_of(user_id) == before


def test_an_unknown_teammate_is_not_found(allo: AlloClient) -> None:
    with pytest.raises(AlloNotFoundError) as caught:
        allo.upsert_queue(user_id="usr-NOT-ON-THIS-TEAM", name="x")
    assert caught.value.code == "ASSIGNEE_NOT_FOUND"


def test_reassigning_a_queue_being_dialed_is_a_conflict(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = someone_with_a_queue(sandbox)
    sandbox.current_queue(user_id).dialing = True
    queue = allo.get_queue(user_id=user_id)
    taker = next(u for u in member_ids(sandbox) if u != user_id)
    with pytest.raises(AlloConflictError) as caught:
        allo.reassign_queue(queue_id=queue.id, user_id=taker)
    assert caught.value.code == "DIALING_QUEUE_SESSION_ACTIVE"


def test_two_appends_that_clash_are_a_conflict_and_the_append_is_not_repeated(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = someone_with_a_queue(sandbox)
    before = numbers_of(sandbox, user_id)
    fault(sandbox, status=409, code="DIALING_QUEUE_APPEND_CONFLICT", methods=["POST"], count=1)
    with pytest.raises(AlloConflictError) as caught:
        allo.append_numbers(user_id=user_id, numbers=["+33612345678"])
    assert caught.value.code == "DIALING_QUEUE_APPEND_CONFLICT" and caught.value.status == 409
    assert len(received(sandbox, "POST", NUMBERS)) == 1
    assert numbers_of(sandbox, user_id) == before


def test_past_five_writes_in_a_second_allo_says_when_to_retry(
    sandbox: Sandbox, sandbox_clock: FakeClock, make_client: Callable[..., AlloClient]
) -> None:
    # A client that believes in 10 writes a second and never retries, so that Allo's own 429
    # reaches the caller (tests/test_budget.py: the real budget never lets it happen).
    allo = make_client(
        transport=sandbox_transport(sandbox),
        policy=Policy(reads_per_second=20, writes_per_second=10, safety_margin=0, attempts=1),
    )
    user_id = member_ids(sandbox)[0]
    for index in range(5):
        allo.upsert_queue(user_id=user_id, name=f"Name {index}")
    with pytest.raises(AlloRateLimitedError) as caught:
        allo.upsert_queue(user_id=user_id, name="One too many")
    assert caught.value.code == "RATE_LIMIT_EXCEEDED"
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    sandbox_clock.advance(1.0)
    assert allo.upsert_queue(user_id=user_id, name="Next second").name == "Next second"


def test_a_server_error_is_unavailable(allo: AlloClient, sandbox: Sandbox) -> None:
    # Every attempt fails (a read is retried: tests/test_resilience.py).
    fault(sandbox, status=503)
    with pytest.raises(AlloUnavailableError) as caught:
        allo.list_users()
    assert caught.value.status == 503
    fault(sandbox)
    assert allo.list_users()


def test_a_hang_ends_in_a_timeout_within_the_read_timeout(
    live_sandbox: SandboxServer, make_client: Callable[..., AlloClient]
) -> None:
    allo = make_client(base_url=live_sandbox.url, timing=Timing(), read_timeout=0.2)
    user_id = member_ids(live_sandbox.sandbox)[0]
    fault(live_sandbox.sandbox, hang=True, count=1)
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id=user_id, name="x")
    assert caught.value.request_sent is True
    # One PATCH, left hanging (no status); a write that may have been applied is not repeated.
    assert [r["status"] for r in received(live_sandbox.sandbox, "PATCH", QUEUE)] == [None]


def test_a_refused_connection_is_unavailable_and_surely_not_sent(
    make_client: Callable[..., AlloClient],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    allo = make_client(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id="usr-any", name="x")
    assert caught.value.request_sent is False


@pytest.mark.parametrize(
    "refusal",
    [
        httpx.LocalProtocolError("Illegal header value b'ak\\n'"),
        httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
    ],
    ids=["local-protocol-error", "unsupported-protocol"],
)
def test_a_request_httpx_would_not_send_is_unavailable_and_surely_not_sent(
    refusal: httpx.TransportError, make_client: Callable[..., AlloClient]
) -> None:
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise refusal

    allo = make_client(transport=httpx.MockTransport(refuse))
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id="usr-1", name="x")
    assert caught.value.request_sent is False
    # Not sent, so a write may be tried again.
    assert len(attempts) == Policy.from_settings().attempts


def test_a_body_that_is_not_json_is_a_bad_response(allo: AlloClient, sandbox: Sandbox) -> None:
    fault(sandbox, malformed=True)
    with pytest.raises(AlloBadResponseError):
        allo.list_users()


def test_a_body_that_cannot_be_decoded_is_unavailable_not_a_raw_httpx_error(
    make_client: Callable[..., AlloClient],
) -> None:
    def broken_gzip(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"not gzip"))

    allo = make_client(transport=httpx.MockTransport(broken_gzip))
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id="usr-1", name="x")
    # The request left; its answer was lost: it may have been applied.
    assert caught.value.request_sent is True
    assert OUR_REQUEST_ID.fullmatch(caught.value.request_id)


@pytest.mark.parametrize("status", [405, 422])
def test_a_status_allo_does_not_document_is_a_bad_response_and_not_retried(
    status: int, allo: AlloClient, sandbox: Sandbox
) -> None:
    fault(sandbox, status=status, code="SOMETHING_ELSE")
    with pytest.raises(AlloBadResponseError) as caught:
        allo.list_users()
    assert (caught.value.status, caught.value.code) == (status, "SOMETHING_ELSE")
    assert type(caught.value) is AlloBadResponseError
    # Allo answered: asking again would get the same answer.
    assert len(received(sandbox, "GET", USERS)) == 1


def test_a_408_is_unavailable_and_a_read_is_retried(allo: AlloClient, sandbox: Sandbox) -> None:
    fault(sandbox, status=408, count=1)
    assert allo.list_users()
    assert [r["status"] for r in received(sandbox, "GET", USERS)] == [408, 200]
    fault(sandbox, status=408, methods=["PATCH"])
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id=member_ids(sandbox)[0], name="x")
    assert caught.value.status == 408


def test_a_redirect_is_a_bad_response_and_not_followed(
    make_client: Callable[..., AlloClient],
) -> None:
    seen: list[httpx.URL] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(302, headers={"Location": "https://login.example/"})

    allo = make_client(transport=httpx.MockTransport(redirect))
    with pytest.raises(AlloBadResponseError) as caught:
        allo.list_users()
    assert caught.value.status == 302
    assert [url.host for url in seen] == ["allo.test"]


def test_errors_carry_allos_request_id_which_echoes_ours(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    with pytest.raises(AlloNotFoundError) as caught:
        allo.get_user("usr-unknown")
    (row,) = received(sandbox, "GET")
    assert OUR_REQUEST_ID.fullmatch(row["request_id"])
    assert caught.value.request_id == row["request_id"]


# Ids in paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_id", ["../me", "usr:1", "a?b=1", "a#b", "a/b", "a%2Fb", "usr-é"], ids=repr
)
def test_a_user_id_is_one_escaped_path_segment(
    user_id: str, allo: AlloClient, sandbox: Sandbox
) -> None:
    with pytest.raises(AlloNotFoundError):
        allo.get_user(user_id)
    (row,) = received(sandbox)
    # The sandbox logs the path decoded: the id came back whole, in the path, and nothing else.
    assert row["method"] == "GET" and row["path"] == f"{USERS}/{user_id}"
    assert row["query"] == {}


@pytest.mark.parametrize("user_id", ["", ".", ".."])
def test_an_id_no_path_can_carry_is_not_found_without_asking_allo(
    user_id: str, allo: AlloClient, sandbox: Sandbox
) -> None:
    with pytest.raises(AlloNotFoundError) as caught:
        allo.get_user(user_id)
    assert caught.value.code == "USER_NOT_FOUND"
    with pytest.raises(AlloNotFoundError) as caught:
        allo.reassign_queue(queue_id=user_id, user_id=member_ids(sandbox)[0])
    assert caught.value.code == "DIALING_QUEUE_NOT_FOUND"
    assert received(sandbox) == []


def test_a_queue_id_is_one_escaped_path_segment(allo: AlloClient, sandbox: Sandbox) -> None:
    with pytest.raises(AlloNotFoundError):
        allo.reassign_queue(queue_id="pdl_1/../../users", user_id=member_ids(sandbox)[0])
    (row,) = received(sandbox)
    assert row["method"] == "PATCH"
    assert row["path"] == "/v2/api/dialing-queues/pdl_1/../../users/assignee"


# Reading a queue --------------------------------------------------------------------------------


def a_lying_allo(
    seen: list[int], *, empty_from: int | None = None, last_has_more: int | None = None
) -> httpx.MockTransport:
    """An Allo whose every page claims a million pages (``has_more`` true unless told)."""

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        seen.append(page)
        empty = empty_from is not None and page >= empty_from
        number = {"number_to": f"+3361234{page:04d}", "position": page - 1}
        pagination = {
            "page": page,
            "size": 100,
            "total_count": 10**8,
            "total_pages": 10**6,
            "has_more": last_has_more is None or page < last_has_more,
        }
        body = {"data": [] if empty else [number], "pagination": pagination, "queue": queue_json()}
        return httpx.Response(200, json=body)

    return httpx.MockTransport(answer)


def test_a_queue_read_stops_at_the_most_pages_a_queue_can_fill(
    make_client: Callable[..., AlloClient], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []
    allo = make_client(transport=a_lying_allo(seen))
    queue = allo.get_queue(user_id="usr-1")
    assert MAX_QUEUE_PAGES == 11
    assert seen == list(range(1, 12))
    assert queue is not None and len(queue.numbers) == 11
    assert "still claimed more" in caplog.text


def test_a_queue_read_stops_at_an_empty_page(make_client: Callable[..., AlloClient]) -> None:
    seen: list[int] = []
    allo = make_client(transport=a_lying_allo(seen, empty_from=4))
    queue = allo.get_queue(user_id="usr-1")
    assert seen == [1, 2, 3, 4]
    assert queue is not None and [n.position for n in queue.numbers] == [0, 1, 2]


def test_a_queue_read_stops_when_allo_says_there_is_no_more(
    make_client: Callable[..., AlloClient],
) -> None:
    seen: list[int] = []
    allo = make_client(transport=a_lying_allo(seen, last_has_more=2))
    queue = allo.get_queue(user_id="usr-1")
    assert seen == [1, 2]
    assert queue is not None and len(queue.numbers) == 2


def test_a_legacy_allo_answers_a_whole_queue_read_with_one_request(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    sandbox.get_shape = "legacy"
    user_id = someone_with_a_queue(sandbox, min_numbers=1000)
    queue = allo.get_queue(user_id=user_id)
    assert queue is not None and [n.position for n in queue.numbers] == list(range(1000))
    assert len(received(sandbox, "GET", QUEUE)) == 1


# Allo's two dialects ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["user_pid", "user_id", "both"])
def test_every_call_reaches_the_teammate_whichever_field_name_allo_knows(
    field: str, allo: AlloClient, sandbox: Sandbox
) -> None:
    sandbox.teammate_field = field
    user_id = someone_without_a_queue(sandbox)
    owner_before = sandbox.queue_of(sandbox.owner_id)
    assert allo.get_queue(user_id=user_id) is None
    assert allo.upsert_queue(user_id=user_id, name="Mine").assignee_id == user_id
    allo.append_numbers(user_id=user_id, numbers=["+33612345678", "+33698765432"])
    assert allo.clear_numbers(user_id=user_id, position=0) == 1
    queue = allo.get_queue(user_id=user_id)
    assert queue is not None and [n.number_to for n in queue.numbers] == ["+33698765432"]
    assert allo.reset_queue(user_id=user_id).numbers == ()
    assert sandbox.queue_of(sandbox.owner_id) == owner_before


@pytest.mark.parametrize("field", ["user_pid", "user_id"])
def test_an_allo_that_refuses_unknown_fields_is_answered_with_the_name_it_knows(
    field: str, allo: AlloClient, sandbox: Sandbox, make_client: Callable[..., AlloClient]
) -> None:
    sandbox.strict_fields = True
    sandbox.teammate_field = field
    other = "user_id" if field == "user_pid" else "user_pid"
    user_id = someone_without_a_queue(sandbox)
    taker = next(u for u in member_ids(sandbox) if u != user_id)
    owner_before = sandbox.queue_of(sandbox.owner_id)

    assert allo.get_queue_page(user_id=user_id).queue is None
    assert allo.upsert_queue(user_id=user_id, name="Strict").assignee_id == user_id
    added = allo.append_numbers(user_id=user_id, numbers=["+33612345678", "+33698765432"])
    assert [n.position for n in added.added] == [0, 1]
    assert allo.clear_numbers(user_id=user_id, position=0) == 1
    queue = allo.get_queue(user_id=user_id)
    assert queue is not None and [n.number_to for n in queue.numbers] == ["+33698765432"]
    assert allo.reassign_queue(queue_id=queue.id, user_id=taker).assignee_id == taker
    assert allo.reset_queue(user_id=user_id, name="Again").assignee_id == user_id

    log = received(sandbox)
    refused = [r for r in log if r["status"] == 400]
    assert len(refused) == 1, "the fallback happens once"
    (first, retried, *later) = log
    assert first is refused[0] and set(first["query"]) >= {"user_id", "user_pid"}
    assert retried["status"] == 200 and retried["request_id"] == first["request_id"]
    for row in [retried, *later]:
        named = row["query"] if row["method"] in ("GET", "DELETE") else row["body"]
        assert field in named and other not in named, row
    assert sandbox.queue_of(sandbox.owner_id) == owner_before

    # Remembered in the shared store: another client (another process) sends only that name.
    sandbox.clear_stats()
    another = make_client(transport=sandbox_transport(sandbox))
    assert another.get_queue_page(user_id=user_id).queue is not None
    (row,) = received(sandbox)
    assert row["status"] == 200 and field in row["query"] and other not in row["query"]


def test_an_allo_that_knows_neither_name_strictly_refuses_after_one_fallback(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    sandbox.strict_fields = True
    sandbox.teammate_field = "none"
    with pytest.raises(AlloValidationError) as caught:
        allo.get_queue_page(user_id=member_ids(sandbox)[0])
    assert caught.value.code == "UNKNOWN_FIELD"
    assert [r["status"] for r in received(sandbox)] == [400, 400]


def test_a_400_naming_the_teammate_field_for_another_reason_is_not_resent_under_one_name(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    # Resending under one name alone would, on an Allo that ignores that name, write to the
    # key owner's own queue: only Allo's UNKNOWN_FIELD code may trigger the fallback.
    user_id = member_ids(sandbox)[0]
    fault(sandbox, status=400, code="VALIDATION_ERROR", param="user_id", methods=["PATCH"])
    with pytest.raises(AlloValidationError) as caught:
        allo.upsert_queue(user_id=user_id, name="Once only")
    assert caught.value.param == "user_id"
    (patch,) = received(sandbox, "PATCH")
    assert {"user_id", "user_pid"} <= set(patch["body"])


def test_an_allo_that_ignores_both_names_is_caught_on_every_call(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    sandbox.teammate_field = "none"
    user_id = member_ids(sandbox)[0]
    with pytest.raises(AlloWrongTeammateError) as caught:
        allo.upsert_queue(user_id=user_id, name="Meant for a teammate")
    assert caught.value.expected_user_id == user_id
    assert caught.value.returned_user_id == sandbox.owner_id
    with pytest.raises(AlloWrongTeammateError):
        allo.get_queue(user_id=user_id)
    with pytest.raises(AlloWrongTeammateError):
        allo.append_numbers(user_id=user_id, numbers=["+33612345678"])
    with pytest.raises(AlloWrongTeammateError):
        allo.clear_numbers(user_id=user_id, unassigned=True)
    with pytest.raises(AlloWrongTeammateError):
        allo.reset_queue(user_id=user_id)


def test_a_wrong_teammate_error_carries_the_request_id_sent_and_is_logged_as_an_error(
    allo: AlloClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.teammate_field = "none"
    user_id = member_ids(sandbox)[0]
    with pytest.raises(AlloWrongTeammateError) as caught:
        allo.upsert_queue(user_id=user_id, name="Meant for a teammate")
    (patch,) = received(sandbox, "PATCH", QUEUE)
    assert OUR_REQUEST_ID.fullmatch(caught.value.request_id)
    assert caught.value.request_id == patch["request_id"]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name == "dashboard.allo.client" and caught.value.request_id in record.getMessage()
    # A request id the caller chose (the audit trail's) is the one on the error.
    with pytest.raises(AlloWrongTeammateError) as caught:
        allo.upsert_queue(user_id=user_id, name="Again", request_id="req_dash_audit0000000000001")
    assert caught.value.request_id == "req_dash_audit0000000000001"


@pytest.fixture
def writes_ignore_the_teammate(sandbox: Sandbox) -> Sandbox:
    """An Allo that honours the teammate on reads, but appends and clears the key owner's
    queue whatever the request names."""
    sandbox.teammate_field_by_method = {"POST": "none", "DELETE": "none"}
    return sandbox


@pytest.mark.parametrize("shape", ["paginated", "legacy"])
@pytest.mark.parametrize("has_a_queue", [False, True], ids=["no-queue", "own-queue"])
def test_an_append_that_landed_on_the_owners_queue_is_caught(
    has_a_queue: bool,
    shape: str,
    allo: AlloClient,
    writes_ignore_the_teammate: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = writes_ignore_the_teammate
    sandbox.get_shape = shape
    if has_a_queue:
        user_id = someone_with_a_queue(sandbox, min_numbers=137)
    else:
        user_id = someone_without_a_queue(sandbox)
    before = numbers_of(sandbox, user_id)
    with pytest.raises(AlloWrongTeammateError) as caught:
        allo.append_numbers(user_id=user_id, numbers=["+33655500001"])
    # It did land on the owner's queue; the teammate's is as it was.
    assert numbers_of(sandbox, sandbox.owner_id)[-1] == "+33655500001"
    assert numbers_of(sandbox, user_id) == before
    (post,) = received(sandbox, "POST", NUMBERS)
    assert caught.value.expected_user_id == user_id
    assert caught.value.request_id == post["request_id"]
    assert OUR_REQUEST_ID.fullmatch(caught.value.request_id)
    assert any(
        r.levelno == logging.ERROR and post["request_id"] in r.getMessage() for r in caplog.records
    )


def test_a_clear_that_emptied_the_owners_queue_is_caught(
    allo: AlloClient, writes_ignore_the_teammate: Sandbox
) -> None:
    sandbox = writes_ignore_the_teammate
    user_id = someone_without_a_queue(sandbox)
    owners = numbers_of(sandbox, sandbox.owner_id)
    with pytest.raises(AlloWrongTeammateError) as caught:
        allo.clear_numbers(user_id=user_id, number=owners[0])
    assert owners[0] not in numbers_of(sandbox, sandbox.owner_id)
    (delete,) = received(sandbox, "DELETE", NUMBERS)
    assert caught.value.expected_user_id == user_id
    assert caught.value.request_id == delete["request_id"]


@pytest.mark.parametrize("shape", ["paginated", "legacy"])
def test_both_queue_shapes_read_the_same_queue(
    shape: str, allo: AlloClient, sandbox: Sandbox
) -> None:
    user_id = someone_with_a_queue(sandbox, min_numbers=30)
    sandbox.get_shape = shape
    queue = allo.get_queue(user_id=user_id)
    state = sandbox.queue_of(user_id)
    assert queue is not None and queue.id == state["id"]
    assert [n.number_to for n in queue.numbers] == [n["number_to"] for n in state["numbers"]]
    page = allo.get_queue_page(user_id=user_id, page=2, size=10)
    assert [n.position for n in page.numbers] == list(range(10, 20))
    assert page.total_count == len(state["numbers"])


# Construction and the key -----------------------------------------------------------------------


def test_a_missing_key_is_a_configuration_error(settings: Any) -> None:
    settings.ALLO_API_KEY = ""
    previous = install_client(None)
    try:
        with pytest.raises(AlloConfigurationError) as caught:
            get_client()
        assert "ALLO_API_KEY" in caught.value.message
        assert isinstance(caught.value, AlloError)
    finally:
        install_client(previous)


@pytest.mark.parametrize(
    "key",
    ["ak_live_\u201cSECRET42\u201d", "ak_live_SECRET42\nak_live_other", "ak_live_SÉCRET42"],
    ids=["curly-quotes", "newline", "accent"],
)
def test_a_key_no_header_can_carry_is_a_configuration_error_that_does_not_quote_it(
    key: str, settings: Any
) -> None:
    with pytest.raises(AlloConfigurationError) as caught:
        build_client(base_url="http://allo.test", api_key=key)
    assert caught.value.code == "BAD_API_KEY"
    shown = [str(caught.value), repr(caught.value), *map(str, caught.value.args)]
    assert not any("SECRET42" in text or "CRET42" in text for text in shown)
    settings.ALLO_API_KEY = key
    previous = install_client(None)
    try:
        with pytest.raises(AlloConfigurationError):
            get_client()
        assert circuit_state().open is False
    finally:
        install_client(previous)


def test_the_key_never_appears_in_logs_errors_or_tracebacks(
    sandbox_clock: FakeClock,
    make_client: Callable[..., AlloClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "ak_live_LEAKCHECK_9f8e7d6c5b4a"
    sandbox = Sandbox(api_key=key, clock=sandbox_clock)
    # A circuit that never opens, so that every failure below is the one asked for.
    policy = Policy(reads_per_second=20, writes_per_second=5, failure_threshold=1000)
    allo = make_client(api_key=key, transport=sandbox_transport(sandbox), policy=policy)
    wrong = make_client(api_key=f"Api-Key {key}_x", transport=sandbox_transport(sandbox))
    caplog.set_level(logging.DEBUG)
    user_id = member_ids(sandbox)[0]
    failures: list[AlloError] = []

    def expect_failure(call: Callable[[], object], kind: type[AlloError]) -> None:
        with pytest.raises(kind) as caught:
            call()
        failures.append(caught.value)

    assert allo.list_users()
    expect_failure(wrong.list_users, AlloAuthenticationError)
    expect_failure(lambda: allo.get_user("usr-unknown"), AlloNotFoundError)
    sandbox.teammate_field = "none"
    expect_failure(
        lambda: allo.append_numbers(user_id=user_id, numbers=["+33612345678"]),
        AlloWrongTeammateError,
    )
    sandbox.teammate_field = "both"
    fault(sandbox, status=503)
    expect_failure(allo.list_users, AlloUnavailableError)
    fault(sandbox, hang=True)
    expect_failure(lambda: allo.upsert_queue(user_id=user_id, name="x"), AlloUnavailableError)
    fault(sandbox, malformed=True)
    expect_failure(allo.me, AlloBadResponseError)
    fault(sandbox)

    assert caplog.records and key not in caplog.text
    assert not any(key in repr(r.args) for r in caplog.records)
    assert key not in repr(allo) and key not in repr(allo._http)
    for error in failures:
        assert key not in str(error) and key not in repr(error)
        assert not any(key in repr(arg) for arg in error.args)
        # From the client's first frame down: the test's own frames are not the client's.
        tb = error.__traceback__
        while tb is not None and "dashboard/allo/" not in tb.tb_frame.f_code.co_filename:
            tb = tb.tb_next
        assert tb is not None
        # The client's frames hold no key in their locals...
        frames = []
        walk = tb
        while walk is not None:
            frames.append(walk.tb_frame)
            walk = walk.tb_next
        for frame in frames:
            for name, value in frame.f_locals.items():
                assert key not in repr(value), (frame.f_code.co_name, name)
        # ...and Django's error report (a crash's page and e-mail) shows none.
        reporter = ExceptionReporter(None, type(error), error, tb)
        shown = [
            value for frame in reporter.get_traceback_data()["frames"] for _, value in frame["vars"]
        ]
        assert shown, "the report shows the frames' locals"
        assert not any(key in str(value) for value in shown)
        assert key not in reporter.get_traceback_text()


def test_the_key_is_sent_once_prefixed_and_every_request_has_its_own_id(
    make_client: Callable[..., AlloClient],
) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": []})

    for key in ("ak_live_abc", "Api-Key ak_live_abc"):
        allo = make_client(api_key=key, transport=httpx.MockTransport(record))
        allo.list_users()
        allo.list_users()
    assert {r.headers["Authorization"] for r in seen} == {"Api-Key ak_live_abc"}
    assert len({r.headers["X-Request-Id"] for r in seen}) == 4


def test_a_write_body_is_json_with_its_content_type(allo: AlloClient, sandbox: Sandbox) -> None:
    user_id = member_ids(sandbox)[0]
    allo.upsert_queue(user_id=user_id, do_not_disturb="ENABLED")
    (patch,) = received(sandbox, "PATCH", QUEUE)
    assert patch["headers"]["content-type"] == "application/json"
    assert patch["body"] == {"do_not_disturb": "ENABLED", "user_id": user_id, "user_pid": user_id}
