"""The Allo client against the sandbox: every endpoint, every failure, both dialects of Allo."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dashboard.allo.client import AlloClient, build_client, get_client, install_client
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
from dashboard.sandbox.core import DEFAULT_API_KEY, Sandbox
from dashboard.sandbox.server import SandboxServer
from dashboard.sandbox.transport import sandbox_transport


@pytest.fixture
def make_client() -> Iterator[Callable[..., AlloClient]]:
    """Build clients that are all closed after the test, so no socket outlives it."""
    built: list[AlloClient] = []

    def make(**kwargs: Any) -> AlloClient:
        built.append(build_client(**kwargs))
        return built[-1]

    yield make
    for client in built:
        client.close()


# Helpers ----------------------------------------------------------------------------------------


def control(client: AlloClient, method: str, path: str, body: Any = None) -> Any:
    """Drive the sandbox's /_sandbox/ control endpoints through the client's own connection."""
    http: httpx.Client = client._http
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["json"] = body
    response = http.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def sent(client: AlloClient, method: str, path: str) -> list[dict[str, Any]]:
    """What the sandbox received for method+path, oldest first (its request log)."""
    log = control(client, "GET", "/_sandbox/stats")["log"]
    return [row for row in log if row["method"] == method and row["path"] == path]


def queue_state(client: AlloClient, user_id: str) -> dict[str, Any] | None:
    return control(client, "GET", f"/_sandbox/queues/{user_id}")


def member_ids(sandbox: Sandbox) -> list[str]:
    return [
        u["id"] for u in sandbox.users if u["status"] == "ACTIVE" and u["id"] != sandbox.owner_id
    ]


def someone_with_a_queue(client: AlloClient, sandbox: Sandbox, *, min_numbers: int = 1) -> str:
    for user_id in member_ids(sandbox):
        state = queue_state(client, user_id)
        if state and len(state["numbers"]) >= min_numbers:
            return user_id
    raise AssertionError("the seeded team has no such queue")


def someone_without_a_queue(client: AlloClient, sandbox: Sandbox) -> str:
    for user_id in member_ids(sandbox):
        if queue_state(client, user_id) is None:
            return user_id
    raise AssertionError("the seeded team has no one without a queue")


@pytest.fixture
def live() -> Iterator[SandboxServer]:
    with SandboxServer(Sandbox(seed=7), port=0) as server:
        yield server


@pytest.fixture
def client(live: SandboxServer) -> Iterator[AlloClient]:
    """A client talking to the sandbox over a real loopback socket."""
    allo = build_client(base_url=live.url, api_key=DEFAULT_API_KEY, read_timeout=2.0)
    yield allo
    allo.close()


@pytest.fixture
def sandbox_core() -> Sandbox:
    return Sandbox(seed=7)


@pytest.fixture
def mock_client(sandbox_core: Sandbox) -> Iterator[AlloClient]:
    """A client talking to the same sandbox core in process, through httpx.MockTransport."""
    allo = build_client(
        base_url="http://allo.test",
        api_key=DEFAULT_API_KEY,
        transport=sandbox_transport(sandbox_core),
    )
    yield allo
    allo.close()


# Happy paths over a real socket -----------------------------------------------------------------


def test_me_describes_the_key_its_scopes_and_limits(client: AlloClient) -> None:
    me = client.me()
    assert set(me.scopes) == {"USERS_READ", "DIALING_QUEUE_READ_WRITE"}
    assert me.rate_limits is not None
    assert (me.rate_limits.read_per_second, me.rate_limits.write_per_second) == (20, 5)
    assert me.team is not None and me.team.name
    assert any(e.path == "/v2/api/users" for e in me.endpoints)


def test_users_lists_active_teammates_by_default_and_filters(
    client: AlloClient, live: SandboxServer
) -> None:
    active = client.list_users()
    assert active and {t.status for t in active} == {"ACTIVE"}
    blocked = client.list_users(status="BLOCKED")
    assert blocked and {t.status for t in blocked} == {"BLOCKED"}
    members = client.list_users(role="MEMBER")
    assert members and {t.role for t in members} == {"MEMBER"}
    assert {t.id for t in active} | {t.id for t in blocked} == {u["id"] for u in live.sandbox.users}


def test_one_user_is_read_by_id(client: AlloClient) -> None:
    someone = client.list_users()[3]
    assert client.get_user(someone.id) == someone


def test_an_unknown_user_is_not_found(client: AlloClient) -> None:
    with pytest.raises(AlloNotFoundError) as caught:
        client.get_user("usr-0000000000000000000000000000000000000000")
    assert caught.value.code == "USER_NOT_FOUND"


def test_a_queue_of_a_thousand_numbers_is_read_across_every_page(
    client: AlloClient, live: SandboxServer
) -> None:
    user_id = someone_with_a_queue(client, live.sandbox, min_numbers=1000)
    queue = client.get_queue(user_id=user_id)
    assert queue is not None and queue.assignee_id == user_id
    assert [n.position for n in queue.numbers] == list(range(1000))
    reads = sent(client, "GET", "/v2/api/dialing-queues/current")
    assert [(r["query"]["page"], r["query"]["size"]) for r in reads] == [
        (str(page), "100") for page in range(1, 11)
    ]


def test_one_page_of_a_queue_carries_its_totals(client: AlloClient, live: SandboxServer) -> None:
    user_id = someone_with_a_queue(client, live.sandbox, min_numbers=45)
    expected = len(queue_state(client, user_id)["numbers"])
    page = client.get_queue_page(user_id=user_id, page=2, size=20)
    assert page.queue is not None and page.queue.assignee_id == user_id
    assert page.total_count == expected
    assert page.total_pages == -(-expected // 20)
    assert [n.position for n in page.numbers] == list(range(20, 40))


def test_a_teammate_without_a_queue_reads_as_none(client: AlloClient, live: SandboxServer) -> None:
    user_id = someone_without_a_queue(client, live.sandbox)
    assert client.get_queue(user_id=user_id) is None
    page = client.get_queue_page(user_id=user_id)
    assert page.queue is None and page.numbers == () and page.total_count == 0


def test_an_upsert_sends_only_the_fields_passed_and_never_null(
    client: AlloClient, live: SandboxServer
) -> None:
    user_id = someone_with_a_queue(client, live.sandbox)
    before = queue_state(client, user_id)
    target = "NO_SKIP" if before["voicemail_handling"] == "SKIP" else "SKIP"
    queue = client.upsert_queue(user_id=user_id, voicemail_handling=target)
    assert queue.voicemail_handling == target
    assert queue.name == before["name"]
    assert queue.do_not_disturb == before["do_not_disturb"]
    (patch,) = sent(client, "PATCH", "/v2/api/dialing-queues/current")
    assert patch["body"] == {"voicemail_handling": target, "user_id": user_id, "user_pid": user_id}


def test_an_upsert_creates_a_queue_for_a_teammate_without_one(
    client: AlloClient, live: SandboxServer
) -> None:
    user_id = someone_without_a_queue(client, live.sandbox)
    queue = client.upsert_queue(user_id=user_id, name="Relances Q4")
    assert queue.assignee_id == user_id and queue.name == "Relances Q4" and queue.numbers == ()
    assert queue_state(client, user_id)["name"] == "Relances Q4"


def test_a_reset_starts_an_empty_queue(client: AlloClient, live: SandboxServer) -> None:
    user_id = someone_with_a_queue(client, live.sandbox)
    old = client.get_queue(user_id=user_id)
    queue = client.reset_queue(user_id=user_id, name="Fresh start")
    assert queue.numbers == () and queue.name == "Fresh start" and queue.id != old.id
    assert queue_state(client, user_id)["numbers"] == []


def test_numbers_are_appended_normalised_and_invalid_ones_skipped(
    client: AlloClient, live: SandboxServer
) -> None:
    user_id = someone_without_a_queue(client, live.sandbox)
    result = client.append_numbers(
        user_id=user_id,
        numbers=[NewNumber(number="06 12 34 56 78", name="Léa", company="Café Noir"), "nope"],
    )
    assert [n.number_to for n in result.added] == ["+33612345678"]
    assert [(s.number, s.reason) for s in result.skipped] == [("nope", "INVALID_PHONE_NUMBER")]
    (post,) = sent(client, "POST", "/v2/api/dialing-queues/current/numbers")
    assert post["body"]["numbers"][0] == {
        "number": "06 12 34 56 78",
        "name": "Léa",
        "company": "Café Noir",
    }
    assert [n["number_to"] for n in queue_state(client, user_id)["numbers"]] == ["+33612345678"]


def test_numbers_are_cleared_by_filter(client: AlloClient, live: SandboxServer) -> None:
    user_id = someone_without_a_queue(client, live.sandbox)
    client.append_numbers(user_id=user_id, numbers=["+33612345678", "+33698765432", "+33612345678"])
    assert client.clear_numbers(user_id=user_id, number="+33612345678") == 2
    assert [n["number_to"] for n in queue_state(client, user_id)["numbers"]] == ["+33698765432"]
    assert client.clear_numbers(user_id=user_id, unassigned=True) == 1


def test_clearing_without_a_filter_is_refused(client: AlloClient, live: SandboxServer) -> None:
    user_id = someone_with_a_queue(client, live.sandbox)
    with pytest.raises(AlloValidationError) as caught:
        client.clear_numbers(user_id=user_id)
    assert caught.value.code == "DIALING_QUEUE_DELETE_FILTER_REQUIRED"


def test_a_queue_is_reassigned_to_another_teammate(client: AlloClient, live: SandboxServer) -> None:
    giver = someone_without_a_queue(client, live.sandbox)
    taker = next(u for u in member_ids(live.sandbox) if u != giver)
    created = client.upsert_queue(user_id=giver, name="Hand-over")
    moved = client.reassign_queue(queue_id=created.id, user_id=taker)
    assert moved.id == created.id and moved.assignee_id == taker


# Errors, each produced by the sandbox's rules or its fault switch -------------------------------


def test_a_wrong_key_is_an_authentication_error(
    live: SandboxServer, make_client: Callable[..., AlloClient]
) -> None:
    allo = make_client(base_url=live.url, api_key="ak_live_wrong")
    with pytest.raises(AlloAuthenticationError) as caught:
        allo.list_users()
    assert caught.value.code == "API_KEY_INVALID" and caught.value.status == 401
    assert "ak_live_wrong" not in str(caught.value)


def test_a_missing_scope_is_a_permission_error_naming_the_code(
    make_client: Callable[..., AlloClient],
) -> None:
    core = Sandbox(seed=7, scopes=["DIALING_QUEUE_READ_WRITE"])
    allo = make_client(
        base_url="http://allo.test", api_key=DEFAULT_API_KEY, transport=sandbox_transport(core)
    )
    with pytest.raises(AlloPermissionError) as caught:
        allo.list_users()
    assert caught.value.code == "API_KEY_INSUFFICIENT_SCOPE"
    assert allo.me().scopes == ("DIALING_QUEUE_READ_WRITE",)


def test_a_bad_value_is_a_validation_error_naming_the_field(
    client: AlloClient, live: SandboxServer
) -> None:
    user_id = someone_with_a_queue(client, live.sandbox)
    before = queue_state(client, user_id)
    with pytest.raises(AlloValidationError) as caught:
        client.upsert_queue(user_id=user_id, name="x" * 256)
    assert caught.value.param == "name" and caught.value.status == 400
    with pytest.raises(AlloValidationError) as caught:
        client.upsert_queue(user_id=user_id, voicemail_handling="SOMETIMES")
    assert caught.value.param == "voicemail_handling"
    assert queue_state(client, user_id) == before


def test_an_unknown_teammate_is_not_found(client: AlloClient) -> None:
    with pytest.raises(AlloNotFoundError) as caught:
        client.upsert_queue(user_id="usr-NOT-ON-THIS-TEAM", name="x")
    assert caught.value.code == "ASSIGNEE_NOT_FOUND"


def test_reassigning_a_queue_being_dialed_is_a_conflict(
    client: AlloClient, live: SandboxServer
) -> None:
    user_id = someone_with_a_queue(client, live.sandbox)
    control(client, "PUT", f"/_sandbox/queues/{user_id}", {"name": "Busy", "dialing": True})
    queue = client.get_queue(user_id=user_id)
    taker = next(u for u in member_ids(live.sandbox) if u != user_id)
    with pytest.raises(AlloConflictError) as caught:
        client.reassign_queue(queue_id=queue.id, user_id=taker)
    assert caught.value.code == "DIALING_QUEUE_SESSION_ACTIVE"


def test_past_five_writes_in_a_second_allo_says_when_to_retry(
    make_client: Callable[..., AlloClient],
) -> None:
    clock = FakeClock(1_800_000_000.0)
    core = Sandbox(seed=7, clock=clock)
    # A client that believes in 10 writes a second and never retries, so that Allo's own 429
    # reaches the caller (tests/test_budget.py: the real budget never lets it happen).
    allo = make_client(
        base_url="http://allo.test",
        api_key=DEFAULT_API_KEY,
        transport=sandbox_transport(core),
        policy=Policy(reads_per_second=20, writes_per_second=10, safety_margin=0, attempts=1),
        timing=Timing.simulated(clock),
    )
    user_id = member_ids(core)[0]
    for index in range(5):
        allo.upsert_queue(user_id=user_id, name=f"Name {index}")
    with pytest.raises(AlloRateLimitedError) as caught:
        allo.upsert_queue(user_id=user_id, name="One too many")
    assert caught.value.code == "RATE_LIMIT_EXCEEDED"
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    clock.advance(1.0)
    assert allo.upsert_queue(user_id=user_id, name="Next second").name == "Next second"


def test_a_server_error_is_unavailable(client: AlloClient) -> None:
    # Every attempt fails (a read is retried: tests/test_resilience.py).
    control(client, "POST", "/_sandbox/faults", {"status": 503})
    with pytest.raises(AlloUnavailableError) as caught:
        client.list_users()
    assert caught.value.status == 503
    control(client, "DELETE", "/_sandbox/faults")
    assert client.list_users()


def test_a_hang_ends_in_a_timeout_within_the_read_timeout(client: AlloClient) -> None:
    control(client, "POST", "/_sandbox/faults", {"hang": True, "count": 1})
    with pytest.raises(AlloUnavailableError) as caught:
        client.upsert_queue(user_id="usr-any", name="x")
    assert caught.value.request_sent is True


def test_a_refused_connection_is_unavailable_and_surely_not_sent(
    make_client: Callable[..., AlloClient],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    allo = make_client(base_url=f"http://127.0.0.1:{port}", api_key=DEFAULT_API_KEY)
    with pytest.raises(AlloUnavailableError) as caught:
        allo.upsert_queue(user_id="usr-any", name="x")
    assert caught.value.request_sent is False


def test_a_body_that_is_not_json_is_a_bad_response(client: AlloClient) -> None:
    control(client, "POST", "/_sandbox/faults", {"malformed": True})
    with pytest.raises(AlloBadResponseError):
        client.list_users()


def test_errors_carry_allos_request_id_which_echoes_ours(
    sandbox_core: Sandbox, make_client: Callable[..., AlloClient]
) -> None:
    inner = sandbox_transport(sandbox_core)
    exchanges: list[tuple[str, dict[str, Any]]] = []

    def spy(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        response.read()
        exchanges.append((request.headers["X-Request-Id"], response.json()))
        return response

    allo = make_client(
        base_url="http://allo.test", api_key=DEFAULT_API_KEY, transport=httpx.MockTransport(spy)
    )
    with pytest.raises(AlloNotFoundError) as caught:
        allo.get_user("usr-unknown")
    ((sent_id, body),) = exchanges
    assert body["error"]["request_id"] == sent_id
    assert caught.value.request_id == sent_id


def test_the_legacy_error_envelope_is_understood(make_client: Callable[..., AlloClient]) -> None:
    def legacy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403,
            json={
                "code": "API_KEY_INSUFFICIENT_SCOPE",
                "details": [{"message": "Missing scope USERS_READ", "field": "scope"}],
            },
        )

    allo = make_client(
        base_url="http://allo.test", api_key=DEFAULT_API_KEY, transport=httpx.MockTransport(legacy)
    )
    with pytest.raises(AlloPermissionError) as caught:
        allo.list_users()
    assert caught.value.code == "API_KEY_INSUFFICIENT_SCOPE"
    assert caught.value.message == "Missing scope USERS_READ"
    assert caught.value.param == "scope"


# Allo's two dialects ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["user_pid", "user_id", "both"])
def test_every_call_reaches_the_teammate_whichever_field_name_allo_knows(
    field: str, sandbox_core: Sandbox, mock_client: AlloClient
) -> None:
    sandbox_core.teammate_field = field
    user_id = someone_without_a_queue(mock_client, sandbox_core)
    owner_before = queue_state(mock_client, sandbox_core.owner_id)
    assert mock_client.get_queue(user_id=user_id) is None
    assert mock_client.upsert_queue(user_id=user_id, name="Mine").assignee_id == user_id
    mock_client.append_numbers(user_id=user_id, numbers=["+33612345678", "+33698765432"])
    assert mock_client.clear_numbers(user_id=user_id, position=0) == 1
    queue = mock_client.get_queue(user_id=user_id)
    assert queue is not None and [n.number_to for n in queue.numbers] == ["+33698765432"]
    assert mock_client.reset_queue(user_id=user_id).numbers == ()
    assert queue_state(mock_client, sandbox_core.owner_id) == owner_before


def test_an_allo_that_ignores_both_names_is_caught_on_every_call(
    sandbox_core: Sandbox, mock_client: AlloClient
) -> None:
    sandbox_core.teammate_field = "none"
    user_id = member_ids(sandbox_core)[0]
    with pytest.raises(AlloWrongTeammateError) as caught:
        mock_client.upsert_queue(user_id=user_id, name="Meant for a teammate")
    assert caught.value.expected_user_id == user_id
    assert caught.value.returned_user_id == sandbox_core.owner_id
    with pytest.raises(AlloWrongTeammateError):
        mock_client.get_queue(user_id=user_id)
    with pytest.raises(AlloWrongTeammateError):
        mock_client.append_numbers(user_id=user_id, numbers=["+33612345678"])
    with pytest.raises(AlloWrongTeammateError):
        mock_client.clear_numbers(user_id=user_id, unassigned=True)
    with pytest.raises(AlloWrongTeammateError):
        mock_client.reset_queue(user_id=user_id)


@pytest.mark.parametrize("shape", ["paginated", "legacy"])
def test_both_queue_shapes_read_the_same_queue(
    shape: str, sandbox_core: Sandbox, mock_client: AlloClient
) -> None:
    user_id = someone_with_a_queue(mock_client, sandbox_core, min_numbers=30)
    sandbox_core.get_shape = shape
    queue = mock_client.get_queue(user_id=user_id)
    state = queue_state(mock_client, user_id)
    assert queue is not None and queue.id == state["id"]
    assert [n.number_to for n in queue.numbers] == [n["number_to"] for n in state["numbers"]]
    page = mock_client.get_queue_page(user_id=user_id, page=2, size=10)
    assert [n.position for n in page.numbers] == list(range(10, 20))
    assert page.total_count == len(state["numbers"])


def test_unknown_enum_values_are_kept_as_they_came(
    sandbox_core: Sandbox, mock_client: AlloClient
) -> None:
    user_id = member_ids(sandbox_core)[0]
    control(
        mock_client,
        "PUT",
        f"/_sandbox/queues/{user_id}",
        {
            "name": "Futur",
            "voicemail_handling": "SKIP_TWICE",
            "do_not_disturb": "ENABLED",
            "numbers": [
                {
                    "number_to": "+33612345678",
                    "call_start_date": "2026-04-30T10:00:00",
                    "routing_result": "SOMETHING_NEW",
                    "not_reached_destination_reason": "ALIENS",
                    "sync_status": "TELEPORTING",
                }
            ],
        },
    )
    queue = mock_client.get_queue(user_id=user_id)
    assert queue is not None
    (number,) = queue.numbers
    assert number.routing_result == "SOMETHING_NEW"
    assert number.not_reached_destination_reason == "ALIENS"
    assert number.sync_status == "TELEPORTING"
    assert (
        number.call_start_date is not None
        and number.call_start_date.utcoffset().total_seconds() == 0
    )
    assert queue.voicemail_handling == "SKIP_TWICE"


# Construction -----------------------------------------------------------------------------------


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


def test_the_key_is_sent_once_prefixed_and_every_request_has_its_own_id(
    make_client: Callable[..., AlloClient],
) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": []})

    for key in ("ak_live_abc", "Api-Key ak_live_abc"):
        allo = make_client(
            base_url="http://allo.test", api_key=key, transport=httpx.MockTransport(record)
        )
        allo.list_users()
        allo.list_users()
    assert {r.headers["Authorization"] for r in seen} == {"Api-Key ak_live_abc"}
    assert len({r.headers["X-Request-Id"] for r in seen}) == 4


def test_a_write_body_is_json_with_its_content_type(make_client: Callable[..., AlloClient]) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"data": {"id": "pdl_1", "assignee_id": "usr-1", "name": "N", "numbers": []}}
        )

    allo = make_client(
        base_url="http://allo.test", api_key="ak_live_abc", transport=httpx.MockTransport(record)
    )
    allo.upsert_queue(user_id="usr-1", do_not_disturb="ENABLED")
    (request,) = seen
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "do_not_disturb": "ENABLED",
        "user_id": "usr-1",
        "user_pid": "usr-1",
    }
