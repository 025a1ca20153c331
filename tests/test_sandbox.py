"""The Allo sandbox, driven in process through httpx: what a client of Allo's API would see."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dashboard.allo.types import (
    NOT_REACHED_REASONS,
    ROLES,
    ROUTING_RESULTS,
    SYNC_STATUSES,
)
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import DEFAULT_API_KEY, Sandbox
from dashboard.sandbox.transport import sandbox_transport

QUEUE = "/v2/api/dialing-queues/current"
NUMBERS = f"{QUEUE}/numbers"

# People of the seeded team (seed 7), as the seed module describes them.
OWNER = "Camille Lefèvre"  # ADMIN, owns the key; 8 numbers, one of them twice
ZOE = "Zoé O'Connor"  # MANAGER; a queue with no numbers
JEROME = "Jérôme d'Arbois"  # 1,000 numbers, SKIP, being dialed
LEA = "Léa Moreau"  # 137 numbers, NO_SKIP, being dialed
THEO = "Théo Garnier"  # 45 numbers, all called, not dialed
INES = "Inès Benali"  # 60 numbers, SKIP, being dialed
MATHEO = "Mathéo Rousseau"  # 25 numbers, none called
ANAIS = "Anaïs Fontaine"  # MANAGER, no queue at all
FRANCOIS = "François N'Diaye"  # a queue he made himself in Allo's app
ELOISE = "Éloïse Marchand"  # BLOCKED, with a queue


def uid(sandbox: Sandbox, name: str) -> str:
    return sandbox.user_named(name)["id"]


def control(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = (
        http.request(method, path, json=body) if body is not None else http.request(method, path)
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert list(body) == ["error"]
    return body["error"]


def queue_numbers(sandbox: Sandbox, name: str) -> list[str]:
    state = sandbox.queue_of(uid(sandbox, name))
    assert state is not None
    return [n["number_to"] for n in state["numbers"]]


# Authentication -----------------------------------------------------------------------------------


def test_it_answers_401_unauthorized_in_the_envelope_without_a_key(sandbox: Sandbox) -> None:
    with httpx.Client(transport=sandbox_transport(sandbox), base_url="http://allo.test") as bare:
        response = bare.get("/v2/api/users")
    assert response.status_code == 401
    error = error_of(response)
    assert error["type"] == "authentication_error"
    assert error["code"] == "UNAUTHORIZED"
    assert error["retryable"] is False
    assert error["request_id"].startswith("req_")
    assert response.headers["X-RateLimit-Limit"] == "20"


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key ak_live_wrong",
        "ak_live_wrong",
        f"Api-Key Api-Key {DEFAULT_API_KEY}",
        f"Bearer {DEFAULT_API_KEY}",
    ],
)
def test_it_answers_401_api_key_invalid_for_a_wrong_key(header: str) -> None:
    sandbox = Sandbox(clock=FakeClock())
    with httpx.Client(transport=sandbox_transport(sandbox), base_url="http://allo.test") as http:
        response = http.get("/v2/api/users", headers={"Authorization": header})
    assert response.status_code == 401
    assert error_of(response)["code"] == "API_KEY_INVALID"
    assert DEFAULT_API_KEY not in response.text


def test_it_accepts_the_raw_key_that_older_pages_show(sandbox: Sandbox) -> None:
    with httpx.Client(transport=sandbox_transport(sandbox), base_url="http://allo.test") as http:
        response = http.get("/v2/api/users", headers={"Authorization": sandbox.api_key})
    assert response.status_code == 200


def test_a_401_spends_none_of_the_keys_budget(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    for _ in range(30):
        allo_http.get("/v2/api/me", headers={"Authorization": "Api-Key nope"})
    response = allo_http.get("/v2/api/me")
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "19"


def test_errors_echo_the_clients_request_id(allo_http: httpx.Client) -> None:
    response = allo_http.get("/v2/api/users/usr-nobody", headers={"X-Request-Id": "dash-42"})
    assert error_of(response)["request_id"] == "dash-42"
    assert response.headers["X-Request-Id"] == "dash-42"


def test_errors_carry_a_fresh_request_id_when_the_client_sends_none(
    allo_http: httpx.Client,
) -> None:
    first = error_of(allo_http.get("/v2/api/users/usr-nobody"))["request_id"]
    second = error_of(allo_http.get("/v2/api/users/usr-nobody"))["request_id"]
    assert first.startswith("req_") and second.startswith("req_") and first != second


# Scopes -------------------------------------------------------------------------------------------


def test_users_need_the_users_read_scope(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    sandbox.scopes = ["DIALING_QUEUE_READ_WRITE"]
    response = allo_http.get("/v2/api/users")
    assert response.status_code == 403
    error = error_of(response)
    assert (error["type"], error["code"]) == ("permission_error", "API_KEY_INSUFFICIENT_SCOPE")
    assert allo_http.get(QUEUE).status_code == 200


def test_queues_need_the_dialing_queue_scope_for_reads_and_writes(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.scopes = ["USERS_READ"]
    assert allo_http.get(QUEUE).status_code == 403
    assert allo_http.patch(QUEUE, json={"name": "x"}).status_code == 403
    assert allo_http.delete(NUMBERS, params={"unassigned": "true"}).status_code == 403
    assert allo_http.get("/v2/api/users").status_code == 200


def test_me_needs_no_scope_and_lists_only_what_the_key_may_call(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.scopes = []
    response = allo_http.get("/v2/api/me")
    assert response.status_code == 200
    me = response.json()["data"]
    assert me["scopes"] == []
    assert [e["path"] for e in me["endpoints"]] == ["/v2/api/me"]


def test_a_missing_scope_can_be_answered_in_the_v1_shape(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.scopes = ["DIALING_QUEUE_READ_WRITE"]
    sandbox.scope_error_shape = "v1"
    response = allo_http.get("/v2/api/users")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "API_KEY_INSUFFICIENT_SCOPE"
    assert body["details"][0]["message"]


def test_me_describes_the_key_its_team_and_its_configured_limits() -> None:
    sandbox = Sandbox(clock=FakeClock(), read_limit=7, write_limit=2)
    with httpx.Client(
        transport=sandbox_transport(sandbox),
        base_url="http://allo.test",
        headers={"Authorization": f"Api-Key {DEFAULT_API_KEY}"},
    ) as http:
        me = http.get("/v2/api/me").json()["data"]
    assert me["api_key_id"].startswith("api-")
    assert me["scopes"] == ["USERS_READ", "DIALING_QUEUE_READ_WRITE"]
    assert me["team"]["name"] == "Lumen Énergie, équipe Ventes"
    assert me["rate_limits"] == {"read_per_second": 7, "write_per_second": 2}
    methods = {(e["method"], e["path"]) for e in me["endpoints"]}
    assert ("PATCH", QUEUE) in methods
    assert ("PATCH", "/v2/api/dialing-queues/{queue_id}/assignee") in methods
    assert all(set(e) == {"method", "path", "description", "scope"} for e in me["endpoints"])


# Requests Allo refuses before looking at them -----------------------------------------------------


def test_an_unknown_path_is_404_not_found_in_the_envelope(allo_http: httpx.Client) -> None:
    response = allo_http.get("/v2/api/teams")
    assert response.status_code == 404
    error = error_of(response)
    assert (error["type"], error["code"]) == ("not_found_error", "NOT_FOUND")
    assert "X-RateLimit-Remaining" in response.headers


def test_a_wrong_method_is_405_naming_the_allowed_ones(allo_http: httpx.Client) -> None:
    response = allo_http.put(QUEUE, json={})
    assert response.status_code == 405
    assert error_of(response)["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "PATCH", "POST"}


def test_a_write_without_a_json_content_type_is_415(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    before = sandbox.queue_of(sandbox.owner_id)
    response = allo_http.patch(QUEUE, data={"name": "Form-encoded"})
    assert response.status_code == 415
    assert error_of(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    response = allo_http.patch(
        QUEUE, content=b'{"name": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert sandbox.queue_of(sandbox.owner_id) == before


def test_a_json_content_type_with_a_charset_is_accepted(allo_http: httpx.Client) -> None:
    response = allo_http.patch(
        QUEUE,
        content='{"name": "Relances été"}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Relances été"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"name"'])
def test_a_body_that_is_not_a_json_object_is_a_validation_error(
    body: bytes, allo_http: httpx.Client
) -> None:
    response = allo_http.patch(QUEUE, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["type"] == "validation_error"


# Rate limits --------------------------------------------------------------------------------------


def test_every_api_answer_carries_the_rate_limit_headers(
    sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    window_end = str(int(sandbox_clock()) + 1)
    ok = allo_http.get("/v2/api/users")
    failed = allo_http.get("/v2/api/users/usr-nobody")
    write = allo_http.patch(QUEUE, json={"name": "Header check"})
    assert (ok.status_code, failed.status_code, write.status_code) == (200, 404, 200)
    assert [r.headers["X-RateLimit-Limit"] for r in (ok, failed, write)] == ["20", "20", "5"]
    assert [r.headers["X-RateLimit-Remaining"] for r in (ok, failed, write)] == ["19", "18", "4"]
    assert {r.headers["X-RateLimit-Reset"] for r in (ok, failed, write)} == {window_end}


def test_an_unexpected_failure_is_a_500_that_is_counted_and_carries_the_budget(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    # A world a test left inconsistent (a queue slot holding no number) breaks the endpoint.
    queue = sandbox.current_queue(sandbox.owner_id)
    assert queue is not None
    queue.numbers.append(None)  # type: ignore[arg-type]
    response = allo_http.get(QUEUE, headers={"X-Request-Id": "dash-500"})
    assert response.status_code == 500
    error = error_of(response)
    assert (error["type"], error["code"]) == ("server_error", "INTERNAL_SERVER_ERROR")
    assert error["request_id"] == "dash-500" and error["retryable"] is True
    assert response.headers["X-RateLimit-Limit"] == "20"
    assert response.headers["X-RateLimit-Remaining"] == "19"
    assert response.headers["X-RateLimit-Reset"] == str(int(sandbox_clock()) + 1)
    stats = control(allo_http, "GET", "/_sandbox/stats")
    assert stats["requests"] == [{"method": "GET", "path": QUEUE, "status": 500, "count": 1}]
    assert stats["log"][-1]["request_id"] == "dash-500"


def test_it_answers_429_past_five_writes_in_one_second(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    for index in range(5):
        assert allo_http.patch(QUEUE, json={"name": f"Write {index}"}).status_code == 200
    response = allo_http.patch(QUEUE, json={"name": "One too many"})
    assert response.status_code == 429
    error = error_of(response)
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["retryable"] is True
    assert error["retry_after_seconds"] == 1
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    queue = sandbox.queue_of(sandbox.owner_id)
    assert queue is not None and queue["name"] == "Write 4"
    # Reads have a budget of their own.
    assert allo_http.get(QUEUE).status_code == 200
    sandbox_clock.advance(1)
    assert allo_http.patch(QUEUE, json={"name": "Next second"}).status_code == 200


def test_it_answers_429_past_twenty_reads_in_one_second(
    sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    statuses = [allo_http.get("/v2/api/me").status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]
    assert allo_http.delete(NUMBERS, params={"unassigned": "true"}).status_code == 200
    sandbox_clock.advance(0.75)
    assert allo_http.get("/v2/api/me").status_code == 200


def test_the_limits_follow_the_sandboxs_settings() -> None:
    sandbox = Sandbox(clock=FakeClock(), write_limit=1)
    with httpx.Client(
        transport=sandbox_transport(sandbox),
        base_url="http://allo.test",
        headers={"Authorization": f"Api-Key {DEFAULT_API_KEY}"},
    ) as http:
        assert http.patch(QUEUE, json={"name": "a"}).status_code == 200
        assert http.patch(QUEUE, json={"name": "b"}).status_code == 429


def test_control_requests_are_neither_rate_limited_nor_counted(
    allo_http: httpx.Client,
) -> None:
    for _ in range(30):
        control(allo_http, "GET", "/_sandbox/faults")
    response = allo_http.get("/v2/api/me")
    assert response.headers["X-RateLimit-Remaining"] == "19"
    stats = control(allo_http, "GET", "/_sandbox/stats")
    assert [(r["path"], r["count"]) for r in stats["requests"]] == [("/v2/api/me", 1)]


# Users --------------------------------------------------------------------------------------------


def test_users_lists_the_active_team_by_default(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    users = allo_http.get("/v2/api/users").json()["data"]
    assert {u["status"] for u in users} == {"ACTIVE"}
    assert [u["name"] for u in users][:3] == [OWNER, ZOE, JEROME]
    assert ELOISE not in [u["name"] for u in users]
    assert all(set(u) == {"id", "name", "email", "role", "status", "image_url"} for u in users)
    zoe = next(u for u in users if u["name"] == ZOE)
    assert zoe["email"] == "zoe.oconnor@lumen-energie.fr"


def test_users_filters_by_status_and_role(allo_http: httpx.Client) -> None:
    blocked = allo_http.get("/v2/api/users", params={"status": "BLOCKED"}).json()["data"]
    assert {u["name"] for u in blocked} == {ELOISE, "Bastien Leroy"}
    managers = allo_http.get("/v2/api/users", params={"role": "MANAGER"}).json()["data"]
    assert {u["name"] for u in managers} == {ZOE, ANAIS}
    blocked_admins = allo_http.get(
        "/v2/api/users", params={"role": "ADMIN", "status": "BLOCKED"}
    ).json()["data"]
    assert [u["name"] for u in blocked_admins] == ["Bastien Leroy"]


@pytest.mark.parametrize(
    ("params", "param"),
    [({"role": "OWNER"}, "role"), ({"status": "active"}, "status"), ({"status": ""}, "status")],
)
def test_users_refuses_an_unknown_role_or_status(
    params: dict[str, str], param: str, allo_http: httpx.Client
) -> None:
    response = allo_http.get("/v2/api/users", params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["param"]) == ("validation_error", param)
    assert error["errors"][0]["field"] == param


def test_one_user_is_read_by_id_blocked_ones_included(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    eloise = sandbox.user_named(ELOISE)
    response = allo_http.get(f"/v2/api/users/{eloise['id']}")
    assert response.status_code == 200
    assert response.json() == {"data": eloise}


@pytest.mark.parametrize("who", ["unknown", "outsider"])
def test_an_unknown_or_other_team_user_is_user_not_found(
    who: str, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    user_id = sandbox.outsider_id if who == "outsider" else "usr-" + "0" * 40
    response = allo_http.get(f"/v2/api/users/{user_id}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "USER_NOT_FOUND"


# Reading a queue ----------------------------------------------------------------------------------


def test_a_request_naming_no_teammate_reads_the_key_owners_queue(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    body = allo_http.get(QUEUE).json()
    assert body["queue"]["assignee_id"] == sandbox.owner_id
    assert body["queue"]["name"] == "Relances salon Batimat"
    assert body["pagination"]["total_count"] == 8


def test_a_queue_is_read_a_page_at_a_time_with_its_totals(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    lea = uid(sandbox, LEA)
    body = allo_http.get(QUEUE, params={"user_id": lea}).json()
    assert set(body) == {"data", "pagination", "queue"}
    assert body["pagination"] == {
        "page": 1,
        "size": 20,
        "total_count": 137,
        "total_pages": 7,
        "has_more": True,
    }
    assert [n["position"] for n in body["data"]] == list(range(20))
    assert "numbers" not in body["queue"]
    assert body["queue"]["assignee_id"] == lea
    last = allo_http.get(QUEUE, params={"user_id": lea, "page": 7, "size": 20}).json()
    assert [n["position"] for n in last["data"]] == list(range(120, 137))
    assert last["pagination"]["has_more"] is False
    beyond = allo_http.get(QUEUE, params={"user_id": lea, "page": 9}).json()
    assert beyond["data"] == [] and beyond["pagination"]["total_count"] == 137


def test_a_queue_number_has_every_documented_field(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    body = allo_http.get(QUEUE, params={"user_id": uid(sandbox, THEO), "size": 1}).json()
    (number,) = body["data"]
    assert set(number) == {
        "number_to",
        "position",
        "created_at",
        "updated_at",
        "call_start_date",
        "call_id",
        "routing_result",
        "not_reached_destination_reason",
        "detected_outbound_voicemail",
        "voicemail_left",
        "sync_status",
        "call_status",
    }
    assert number["call_id"].startswith("cll-")
    assert number["call_start_date"].endswith("Z")
    queue = body["queue"]
    assert queue["id"].startswith("pdl_") and queue["creator_id"] == sandbox.owner_id


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"size": "101"}, "INVALID_PAGE_SIZE", "size"),
        ({"size": "0"}, "INVALID_PAGE_SIZE", "size"),
        ({"size": "ten"}, "INVALID_PAGE_SIZE", "size"),
        ({"page": "0"}, "VALIDATION_ERROR", "page"),
        ({"page": "-1"}, "VALIDATION_ERROR", "page"),
    ],
)
def test_a_page_or_size_out_of_range_is_refused(
    params: dict[str, str], code: str, param: str, allo_http: httpx.Client
) -> None:
    response = allo_http.get(QUEUE, params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["code"], error["param"]) == ("validation_error", code, param)


def test_a_size_of_100_is_the_largest_page(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    body = allo_http.get(QUEUE, params={"user_id": uid(sandbox, JEROME), "size": 100}).json()
    assert len(body["data"]) == 100 and body["pagination"]["total_pages"] == 10


def test_a_teammate_without_a_queue_reads_as_empty_with_zeroed_pagination(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    response = allo_http.get(QUEUE, params={"user_id": uid(sandbox, ANAIS)})
    assert response.status_code == 200
    assert response.json() == {
        "data": [],
        "pagination": {"page": 0, "size": 0, "total_count": 0, "total_pages": 0, "has_more": False},
    }


def test_a_queue_with_no_numbers_still_comes_with_its_queue(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    body = allo_http.get(QUEUE, params={"user_id": uid(sandbox, ZOE)}).json()
    assert body["data"] == [] and body["queue"]["assignee_id"] == uid(sandbox, ZOE)
    assert body["pagination"]["total_count"] == 0 and body["pagination"]["total_pages"] == 0


def test_the_legacy_shape_is_the_whole_queue_with_its_numbers(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.get_shape = "legacy"
    lea = uid(sandbox, LEA)
    body = allo_http.get(QUEUE, params={"user_id": lea, "page": 2, "size": 5}).json()
    assert list(body) == ["data"]
    queue = body["data"]
    assert queue["assignee_id"] == lea
    assert [n["position"] for n in queue["numbers"]] == list(range(137))
    # The older pages did not know call_status.
    assert "call_status" not in queue["numbers"][0]
    assert allo_http.get(QUEUE, params={"user_id": uid(sandbox, ANAIS)}).json() == {"data": None}


def test_dates_can_be_written_without_an_offset_as_some_examples_do(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.date_style = "naive"
    queue = allo_http.get(QUEUE).json()["queue"]
    assert queue["created_at"][10] == "T" and not queue["created_at"].endswith("Z")
    assert "+" not in queue["created_at"]


# Targeting a teammate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "field", "understood"),
    [
        ("both", "user_id", True),
        ("both", "user_pid", True),
        ("user_id", "user_id", True),
        ("user_id", "user_pid", False),
        ("user_pid", "user_pid", True),
        ("user_pid", "user_id", False),
        ("none", "user_id", False),
        ("none", "user_pid", False),
        ("none", "email", True),
        ("user_id", "email", True),
    ],
)
def test_each_api_version_understands_only_its_teammate_field(
    mode: str, field: str, understood: bool, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.teammate_field = mode
    matheo = sandbox.user_named(MATHEO)
    value = matheo["email"] if field == "email" else matheo["id"]
    expected = matheo["id"] if understood else sandbox.owner_id

    read = allo_http.get(QUEUE, params={field: value}).json()
    assert read["queue"]["assignee_id"] == expected
    written = allo_http.patch(QUEUE, json={field: value, "name": f"Via {field}"}).json()["data"]
    assert written["assignee_id"] == expected
    other = sandbox.owner_id if understood else matheo["id"]
    other_queue = sandbox.queue_of(other)
    assert other_queue is not None and other_queue["name"] != f"Via {field}"


def test_when_allo_ignores_the_teammate_field_every_write_lands_on_the_owners_queue(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    sandbox.teammate_field = "none"
    anais = uid(sandbox, ANAIS)
    target = {"user_id": anais, "user_pid": anais}
    owner_numbers = len(queue_numbers(sandbox, OWNER))

    upsert = allo_http.patch(QUEUE, json={**target, "name": "Pour Anaïs"}).json()["data"]
    appended = allo_http.post(NUMBERS, json={**target, "numbers": [{"number": "0612345678"}]})
    cleared = allo_http.delete(NUMBERS, params={**target, "number": "0612345678"})
    reset = allo_http.post(QUEUE, json={**target, "name": "Remise à zéro"}).json()["data"]

    assert upsert["assignee_id"] == sandbox.owner_id and upsert["name"] == "Pour Anaïs"
    assert appended.json()["data"]["added"][0]["position"] == owner_numbers
    assert cleared.json() == {"data": {"removed": 1}}
    assert reset["assignee_id"] == sandbox.owner_id
    assert sandbox.queue_of(anais) is None


def test_an_id_the_api_does_not_know_to_read_is_ignored_not_refused(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.teammate_field = "user_id"
    response = allo_http.get(QUEUE, params={"user_pid": "usr-NOT-A-REAL-ONE"})
    assert response.status_code == 200
    assert response.json()["queue"]["assignee_id"] == sandbox.owner_id


def test_a_teammate_field_sent_as_null_counts_as_not_sent(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    response = allo_http.patch(QUEUE, json={"user_id": None, "name": "Null target"})
    assert response.json()["data"]["assignee_id"] == sandbox.owner_id


def test_allo_can_honour_the_teammate_on_some_methods_and_ignore_it_on_others(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.teammate_field_by_method = {"POST": "none", "delete": "none"}
    matheo = uid(sandbox, MATHEO)
    owner_numbers = queue_numbers(sandbox, OWNER)

    read = allo_http.get(QUEUE, params={"user_id": matheo}).json()
    upsert = allo_http.patch(QUEUE, json={"user_id": matheo, "name": "Pour Mathéo"}).json()
    appended = allo_http.post(
        NUMBERS, json={"user_id": matheo, "numbers": [{"number": "0612345678"}]}
    )
    cleared = allo_http.delete(NUMBERS, params={"user_id": matheo, "position": "0"})

    assert read["queue"]["assignee_id"] == matheo
    assert upsert["data"]["assignee_id"] == matheo
    # POST and DELETE silently act on the key owner's queue.
    assert appended.json()["data"]["added"][0]["position"] == len(owner_numbers)
    assert cleared.json() == {"data": {"removed": 1}}
    assert queue_numbers(sandbox, OWNER) == [*owner_numbers[1:], "+33612345678"]
    assert len(queue_numbers(sandbox, MATHEO)) == 25
    assert sandbox.teammate_field_by_method == {"POST": "none", "DELETE": "none"}


def test_a_per_method_override_can_also_name_the_field_a_method_knows() -> None:
    sandbox = Sandbox(
        clock=FakeClock(), teammate_field="user_id", teammate_field_by_method={"GET": "user_pid"}
    )
    assert sandbox.teammate_field_for("get") == "user_pid"
    assert sandbox.teammate_field_for("PATCH") == "user_id"
    with pytest.raises(ValueError):
        sandbox.teammate_field_by_method = {"GET": "userid"}
    with pytest.raises(ValueError):
        sandbox.teammate_field_by_method = {"PUT": "none"}
    assert sandbox.teammate_field_by_method == {"GET": "user_pid"}


@pytest.mark.parametrize(
    ("mode", "field"),
    [("user_id", "user_pid"), ("user_pid", "user_id"), ("none", "user_id")],
)
def test_a_strict_allo_refuses_a_teammate_field_it_does_not_know(
    mode: str, field: str, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.teammate_field = mode
    sandbox.strict_fields = True
    matheo = uid(sandbox, MATHEO)

    read = allo_http.get(QUEUE, params={field: matheo})
    written = allo_http.patch(QUEUE, json={field: matheo, "name": "Refused"})
    cleared = allo_http.delete(NUMBERS, params={field: matheo, "unassigned": "true"})

    for response in (read, written, cleared):
        assert response.status_code == 400
        error = error_of(response)
        assert (error["type"], error["code"], error["param"]) == (
            "validation_error",
            "UNKNOWN_FIELD",
            field,
        )
        assert error["errors"] == [
            {"field": field, "code": "UNKNOWN_FIELD", "message": error["message"]}
        ]
    owner_queue = sandbox.queue_of(sandbox.owner_id)
    assert owner_queue is not None and owner_queue["name"] != "Refused"


def test_a_strict_allo_still_reads_the_fields_it_knows_and_refuses_even_a_null(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.teammate_field = "user_id"
    sandbox.strict_fields = True
    matheo = uid(sandbox, MATHEO)
    read = allo_http.get(QUEUE, params={"user_id": matheo})
    assert read.json()["queue"]["assignee_id"] == matheo
    by_email = allo_http.patch(QUEUE, json={"email": sandbox.user_named(MATHEO)["email"]})
    assert by_email.json()["data"]["assignee_id"] == matheo
    nulled = allo_http.patch(QUEUE, json={"user_id": matheo, "user_pid": None})
    assert nulled.status_code == 400 and error_of(nulled)["param"] == "user_pid"


def test_strict_fields_follow_the_per_method_mode(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    sandbox.strict_fields = True
    sandbox.teammate_field_by_method = {"POST": "user_pid"}
    lea = uid(sandbox, LEA)
    reset = allo_http.post(QUEUE, json={"user_id": lea})
    assert reset.status_code == 400 and error_of(reset)["param"] == "user_id"
    assert allo_http.post(QUEUE, json={"user_pid": lea}).json()["data"]["assignee_id"] == lea
    assert allo_http.get(QUEUE, params={"user_id": lea}).status_code == 200


def test_an_id_beats_an_email(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    params = {"user_id": uid(sandbox, LEA), "email": sandbox.user_named(THEO)["email"]}
    assert allo_http.get(QUEUE, params=params).json()["queue"]["assignee_id"] == uid(sandbox, LEA)


def test_an_email_is_matched_whatever_its_case(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    email = sandbox.user_named(THEO)["email"].upper()
    body = allo_http.get(QUEUE, params={"email": email}).json()
    assert body["queue"]["assignee_id"] == uid(sandbox, THEO)


@pytest.mark.parametrize(
    ("field", "who", "param"),
    [
        ("user_id", "unknown", "user_id"),
        ("user_pid", "unknown", "user_id"),
        ("user_id", "outsider", "user_id"),
        ("user_id", "empty", "user_id"),
        ("email", "unknown", "email"),
        ("email", "outsider", "email"),
    ],
)
def test_a_teammate_who_is_not_on_the_team_is_assignee_not_found_everywhere(
    field: str, who: str, param: str, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    outsider_email = "pierre.martin@concurrent-solaire.fr"
    values = {
        ("unknown", False): "usr-" + "F" * 40,
        ("outsider", False): sandbox.outsider_id,
        ("empty", False): "",
        ("unknown", True): "nobody@lumen-energie.fr",
        ("outsider", True): outsider_email,
    }
    value = values[(who, field == "email")]
    before = sandbox.queue_of(sandbox.owner_id)
    responses = [
        allo_http.get(QUEUE, params={field: value}),
        allo_http.delete(NUMBERS, params={field: value, "unassigned": "true"}),
        allo_http.patch(QUEUE, json={field: value, "name": "x"}),
        allo_http.post(QUEUE, json={field: value}),
        allo_http.post(NUMBERS, json={field: value, "numbers": [{"number": "0612345678"}]}),
    ]
    for response in responses:
        assert response.status_code == 404, response.text
        error = error_of(response)
        assert (error["type"], error["code"]) == ("not_found_error", "ASSIGNEE_NOT_FOUND")
        assert error["param"] == param
    assert sandbox.queue_of(sandbox.owner_id) == before


def test_a_blocked_teammates_queue_can_still_be_read_and_written(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    eloise = uid(sandbox, ELOISE)
    assert allo_http.get(QUEUE, params={"user_id": eloise}).json()["queue"]["assignee_id"] == eloise
    response = allo_http.patch(QUEUE, json={"user_id": eloise, "do_not_disturb": "ENABLED"})
    assert response.json()["data"]["do_not_disturb"] == "ENABLED"


# Upserting settings -------------------------------------------------------------------------------


def test_an_upsert_touches_only_the_fields_sent_and_null_leaves_a_field_alone(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    lea = uid(sandbox, LEA)
    before = sandbox.queue_of(lea)
    assert before is not None
    response = allo_http.patch(
        QUEUE, json={"user_id": lea, "do_not_disturb": "DISABLED", "name": None}
    )
    assert response.status_code == 200
    queue = response.json()["data"]
    assert queue["do_not_disturb"] == "DISABLED"
    assert queue["name"] == before["name"]
    assert queue["voicemail_handling"] == before["voicemail_handling"]
    assert queue["id"] == before["id"]
    assert len(queue["numbers"]) == 137


def test_an_upsert_creates_a_queue_with_the_default_settings(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    anais = uid(sandbox, ANAIS)
    response = allo_http.patch(QUEUE, json={"user_id": anais})
    assert response.status_code == 200
    queue = response.json()["data"]
    assert queue["assignee_id"] == anais and queue["creator_id"] == sandbox.owner_id
    assert queue["id"].startswith("pdl_")
    assert (queue["name"], queue["voicemail_handling"], queue["do_not_disturb"]) == (
        None,
        "NO_SKIP",
        "DISABLED",
    )
    assert queue["numbers"] == []
    assert queue["created_at"] == queue["updated_at"] == "2026-05-04T09:30:00.250Z"


def test_an_upsert_moves_updated_at(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    before = allo_http.get(QUEUE).json()["queue"]
    sandbox_clock.advance(90)
    after = allo_http.patch(QUEUE, json={"voicemail_handling": "SKIP"}).json()["data"]
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] == "2026-05-04T09:31:30.250Z"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": 42}, "name"),
        ({"voicemail_handling": "SOMETIMES"}, "voicemail_handling"),
        ({"voicemail_handling": "skip"}, "voicemail_handling"),
        ({"do_not_disturb": True}, "do_not_disturb"),
        ({"user_id": 12}, "user_id"),
    ],
)
def test_an_upsert_refuses_a_bad_value_naming_the_field(
    body: dict[str, Any], param: str, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    before = sandbox.queue_of(sandbox.owner_id)
    response = allo_http.patch(QUEUE, json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["param"]) == ("validation_error", param)
    assert sandbox.queue_of(sandbox.owner_id) == before


def test_a_name_of_255_characters_is_accepted(allo_http: httpx.Client) -> None:
    response = allo_http.patch(QUEUE, json={"name": "é" * 255})
    assert response.status_code == 200


def test_every_bad_field_is_listed(allo_http: httpx.Client) -> None:
    response = allo_http.patch(
        QUEUE, json={"name": "", "voicemail_handling": "NO", "do_not_disturb": "NO"}
    )
    errors = error_of(response)["errors"]
    assert [e["field"] for e in errors] == ["name", "voicemail_handling", "do_not_disturb"]
    assert all(e["code"] and e["message"] for e in errors)


# Resetting ----------------------------------------------------------------------------------------


def test_a_reset_starts_a_new_empty_queue_with_the_default_settings(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    jerome = uid(sandbox, JEROME)
    old = sandbox.queue_of(jerome)
    assert old is not None
    response = allo_http.post(QUEUE, json={"user_id": jerome, "name": "Nouvelle liste"})
    assert response.status_code == 200
    queue = response.json()["data"]
    assert queue["id"] != old["id"] and queue["numbers"] == []
    assert (queue["name"], queue["voicemail_handling"], queue["do_not_disturb"]) == (
        "Nouvelle liste",
        "NO_SKIP",
        "DISABLED",
    )
    assert allo_http.get(QUEUE, params={"user_id": jerome}).json()["queue"]["id"] == queue["id"]


def test_a_reset_needs_no_body(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    response = allo_http.post(QUEUE)
    assert response.status_code == 200
    assert response.json()["data"]["assignee_id"] == sandbox.owner_id
    assert response.json()["data"]["name"] is None


def test_a_reset_refuses_a_name_over_255_characters(allo_http: httpx.Client) -> None:
    response = allo_http.post(QUEUE, json={"name": "x" * 256})
    assert response.status_code == 400 and error_of(response)["param"] == "name"


# Appending ----------------------------------------------------------------------------------------


def test_numbers_are_appended_in_e164_reading_national_numbers_as_french(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    raw = ["06 12 34 56 78", "+33 (0)1 45 67 89 01", "0033 7 32 34 56 78", "+1 212-555-0142"]
    response = allo_http.post(NUMBERS, json={"numbers": [{"number": n} for n in raw]})
    assert response.status_code == 200
    data = response.json()["data"]
    assert [n["number_to"] for n in data["added"]] == [
        "+33612345678",
        "+33145678901",
        "+33732345678",
        "+12125550142",
    ]
    assert [n["position"] for n in data["added"]] == [8, 9, 10, 11]
    assert data["skipped"] == []
    added = data["added"][0]
    assert added["call_start_date"] is None and added["routing_result"] is None
    assert queue_numbers(sandbox, OWNER)[8:] == [n["number_to"] for n in data["added"]]


def test_invalid_numbers_are_skipped_not_fatal(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    numbers = ["not a number", "+33 6 12", "0612345678", "+3361234567891"]
    response = allo_http.post(NUMBERS, json={"numbers": [{"number": n} for n in numbers]})
    data = response.json()["data"]
    assert [n["number_to"] for n in data["added"]] == ["+33612345678"]
    assert data["skipped"] == [
        {"number": "not a number", "reason": "INVALID_PHONE_NUMBER"},
        {"number": "+33 6 12", "reason": "INVALID_PHONE_NUMBER"},
        {"number": "+3361234567891", "reason": "INVALID_PHONE_NUMBER"},
    ]


def test_an_append_keeps_the_contact_sent_with_a_number(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    anais = uid(sandbox, ANAIS)
    contact = {
        "name": "Hélène",
        "last_name": "d'Astier",
        "company": "Boulangerie Saint-Honoré",
        "job_title": "Gérante",
        "website": "https://example.fr",
        "emails": ["helene@example.fr"],
        "addresses": ["12 rue de la Paix, Paris"],
    }
    response = allo_http.post(
        NUMBERS, json={"user_id": anais, "numbers": [{"number": "0612345678", **contact}]}
    )
    assert response.status_code == 200
    state = sandbox.queue_of(anais)
    assert state is not None and state["numbers"][0]["contact"] == contact


def test_an_append_creates_the_queue_when_there_is_none(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    anais = uid(sandbox, ANAIS)
    allo_http.post(NUMBERS, json={"user_id": anais, "numbers": [{"number": "0612345678"}]})
    state = sandbox.queue_of(anais)
    assert state is not None
    assert (state["assignee_id"], state["creator_id"]) == (anais, sandbox.owner_id)
    assert [n["number_to"] for n in state["numbers"]] == ["+33612345678"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"numbers": []},
        {"numbers": None},
        {"numbers": "0612345678"},
        {"numbers": ["0612345678"]},
        {"numbers": [{"name": "No number"}]},
        {"numbers": [{"number": 612345678}]},
        {"numbers": [{"number": "0612345678", "emails": "a@b.fr"}]},
    ],
)
def test_an_append_without_a_proper_numbers_list_is_refused(
    body: dict[str, Any], sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    before = sandbox.queue_of(sandbox.owner_id)
    response = allo_http.post(NUMBERS, json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["param"]) == ("validation_error", "numbers")
    assert sandbox.queue_of(sandbox.owner_id) == before


def test_a_full_queue_refuses_one_more_number(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    jerome = uid(sandbox, JEROME)
    response = allo_http.post(
        NUMBERS, json={"user_id": jerome, "numbers": [{"number": "0612345678"}]}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["code"]) == ("validation_error", "DIALING_QUEUE_LIMIT_REACHED")
    assert len(queue_numbers(sandbox, JEROME)) == 1000


def test_an_append_that_would_pass_1000_is_refused_whole(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    jerome = uid(sandbox, JEROME)
    for position in range(5):
        allo_http.delete(NUMBERS, params={"user_id": jerome, "position": position})
    sandbox_clock.advance(1)
    six = [{"number": f"06123456{n:02d}"} for n in range(6)]
    response = allo_http.post(NUMBERS, json={"user_id": jerome, "numbers": six})
    assert error_of(response)["code"] == "DIALING_QUEUE_LIMIT_REACHED"
    assert len(queue_numbers(sandbox, JEROME)) == 995
    # Invalid numbers do not count against the cap: they are skipped.
    response = allo_http.post(
        NUMBERS, json={"user_id": jerome, "numbers": [*six[:5], {"number": "nope"}]}
    )
    assert response.status_code == 200
    assert len(response.json()["data"]["added"]) == 5
    assert len(queue_numbers(sandbox, JEROME)) == 1000


def test_the_same_number_may_sit_at_several_positions(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    numbers = queue_numbers(sandbox, OWNER)
    assert numbers[2] == numbers[6]
    response = allo_http.post(NUMBERS, json={"numbers": [{"number": numbers[2]}]})
    assert response.json()["data"]["added"][0]["number_to"] == numbers[2]
    assert queue_numbers(sandbox, OWNER).count(numbers[2]) == 3


# Clearing -----------------------------------------------------------------------------------------


CONFLICT = "DIALING_QUEUE_DELETE_FILTER_CONFLICT"


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({}, "DIALING_QUEUE_DELETE_FILTER_REQUIRED", None),
        ({"unassigned": "false"}, "DIALING_QUEUE_DELETE_FILTER_REQUIRED", None),
        ({"unassigned": "true", "position": "1"}, CONFLICT, None),
        ({"unassigned": "true", "number": "0612345678"}, CONFLICT, None),
        ({"number": "hello"}, "INVALID_PHONE_NUMBER", "number"),
        ({"position": "first"}, "VALIDATION_ERROR", "position"),
        ({"unassigned": "maybe"}, "VALIDATION_ERROR", "unassigned"),
    ],
)
def test_a_clear_with_a_missing_or_conflicting_filter_is_refused(
    params: dict[str, str],
    code: str,
    param: str | None,
    sandbox: Sandbox,
    allo_http: httpx.Client,
) -> None:
    before = sandbox.queue_of(sandbox.owner_id)
    response = allo_http.delete(NUMBERS, params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["code"]) == ("validation_error", code)
    if param is not None:
        assert error["param"] == param
    assert sandbox.queue_of(sandbox.owner_id) == before


def test_a_clear_by_number_removes_every_occurrence_and_closes_the_gaps(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    numbers = queue_numbers(sandbox, OWNER)
    twice = numbers[2]
    national = "0" + twice[3:] if twice.startswith("+33") else twice
    response = allo_http.delete(NUMBERS, params={"number": national})
    assert response.json() == {"data": {"removed": 2}}
    assert queue_numbers(sandbox, OWNER) == [n for n in numbers if n != twice]
    positions = [n["position"] for n in allo_http.get(QUEUE).json()["data"]]
    assert positions == list(range(6))


def test_a_clear_by_position_removes_one_and_later_numbers_move_up(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    numbers = queue_numbers(sandbox, OWNER)
    response = allo_http.delete(NUMBERS, params={"position": "3"})
    assert response.json() == {"data": {"removed": 1}}
    assert queue_numbers(sandbox, OWNER) == numbers[:3] + numbers[4:]


def test_a_clear_by_number_and_position_removes_that_occurrence_only(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    numbers = queue_numbers(sandbox, OWNER)
    response = allo_http.delete(NUMBERS, params={"number": numbers[6], "position": "6"})
    assert response.json() == {"data": {"removed": 1}}
    assert queue_numbers(sandbox, OWNER) == numbers[:6] + numbers[7:]


@pytest.mark.parametrize("params", [{"position": "8"}, {"position": "0", "number": "0699999999"}])
def test_a_clear_of_a_position_that_does_not_hold_it_is_position_not_found(
    params: dict[str, str], sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    response = allo_http.delete(NUMBERS, params=params)
    assert response.status_code == 404
    error = error_of(response)
    assert (error["code"], error["param"]) == ("QUEUE_NUMBER_POSITION_NOT_FOUND", "position")
    assert len(queue_numbers(sandbox, OWNER)) == 8


def test_a_clear_of_unassigned_removes_every_number_not_yet_called(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    lea = uid(sandbox, LEA)
    response = allo_http.delete(NUMBERS, params={"user_id": lea, "unassigned": "true"})
    # 52 calls done and one ringing are kept.
    assert response.json() == {"data": {"removed": 137 - 53}}
    state = sandbox.queue_of(lea)
    assert state is not None and all(n["call_start_date"] for n in state["numbers"])


def test_a_clear_without_a_queue_is_dialing_queue_not_found(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    response = allo_http.delete(NUMBERS, params={"user_id": uid(sandbox, ANAIS), "position": "0"})
    assert response.status_code == 404
    assert error_of(response)["code"] == "DIALING_QUEUE_NOT_FOUND"


# Reassigning --------------------------------------------------------------------------------------


def assignee_path(queue_id: str) -> str:
    return f"/v2/api/dialing-queues/{queue_id}/assignee"


def test_a_queue_is_moved_to_another_teammate(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    matheo, anais = uid(sandbox, MATHEO), uid(sandbox, ANAIS)
    queue = sandbox.queue_of(matheo)
    assert queue is not None
    response = allo_http.patch(assignee_path(queue["id"]), json={"user_id": anais})
    assert response.status_code == 200
    moved = response.json()["data"]
    assert (moved["id"], moved["assignee_id"]) == (queue["id"], anais)
    assert len(moved["numbers"]) == 25
    assert sandbox.queue_of(matheo) is None
    assert allo_http.get(QUEUE, params={"user_id": anais}).json()["queue"]["id"] == queue["id"]


def test_a_queue_is_moved_by_email(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    queue = sandbox.queue_of(uid(sandbox, MATHEO))
    assert queue is not None
    anais = sandbox.user_named(ANAIS)
    response = allo_http.patch(assignee_path(queue["id"]), json={"email": anais["email"]})
    assert response.json()["data"]["assignee_id"] == anais["id"]


def test_a_queue_being_dialed_cannot_be_moved(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    queue = sandbox.queue_of(uid(sandbox, LEA))
    assert queue is not None and queue["dialing"] is True
    response = allo_http.patch(assignee_path(queue["id"]), json={"user_id": uid(sandbox, ANAIS)})
    assert response.status_code == 409
    error = error_of(response)
    assert (error["type"], error["code"]) == ("conflict_error", "DIALING_QUEUE_SESSION_ACTIVE")


def test_moving_a_queue_needs_an_assignee(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    queue = sandbox.queue_of(uid(sandbox, MATHEO))
    assert queue is not None
    response = allo_http.patch(assignee_path(queue["id"]), json={})
    assert response.status_code == 400
    assert error_of(response)["code"] == "DIALING_QUEUE_ASSIGNEE_REQUIRED"


def test_moving_a_queue_to_a_stranger_is_assignee_not_found(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    queue = sandbox.queue_of(uid(sandbox, MATHEO))
    assert queue is not None
    response = allo_http.patch(assignee_path(queue["id"]), json={"user_id": sandbox.outsider_id})
    assert response.status_code == 404
    assert error_of(response)["code"] == "ASSIGNEE_NOT_FOUND"


@pytest.mark.parametrize("which", ["unknown", "made_by_the_rep"])
def test_a_queue_the_key_owner_neither_made_nor_holds_is_not_found(
    which: str, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    queue = sandbox.queue_of(uid(sandbox, FRANCOIS))
    assert queue is not None and queue["creator_id"] == uid(sandbox, FRANCOIS)
    queue_id = queue["id"] if which == "made_by_the_rep" else "pdl_doesNotExist"
    response = allo_http.patch(assignee_path(queue_id), json={"user_id": uid(sandbox, ANAIS)})
    assert response.status_code == 404
    assert error_of(response)["code"] == "DIALING_QUEUE_NOT_FOUND"


def test_a_members_key_may_not_move_queues(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    sandbox.world.owner.role = "MEMBER"
    queue = sandbox.queue_of(uid(sandbox, MATHEO))
    assert queue is not None
    response = allo_http.patch(assignee_path(queue["id"]), json={"user_id": uid(sandbox, ANAIS)})
    assert response.status_code == 403
    error = error_of(response)
    assert (error["type"], error["code"]) == ("permission_error", "DIALING_QUEUE_ASSIGN_FORBIDDEN")


# Faults -------------------------------------------------------------------------------------------


def test_a_status_fault_answers_that_status_in_the_envelope_for_count_requests(
    allo_http: httpx.Client,
) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"status": 503, "count": 2})
    first = allo_http.get("/v2/api/users", headers={"X-Request-Id": "dash-1"})
    second = allo_http.get("/v2/api/me")
    third = allo_http.get("/v2/api/me")
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    error = error_of(first)
    assert error["type"] == "server_error" and error["retryable"] is True
    assert error["request_id"] == "dash-1"
    assert "X-RateLimit-Limit" in first.headers


def test_a_fault_can_name_the_code_allo_answers_with(allo_http: httpx.Client) -> None:
    fault = {"status": 409, "code": "DIALING_QUEUE_APPEND_CONFLICT", "count": 1}
    control(allo_http, "POST", "/_sandbox/faults", fault)
    response = allo_http.post(NUMBERS, json={"numbers": [{"number": "0612345678"}]})
    assert response.status_code == 409
    assert error_of(response)["type"] == "conflict_error"
    assert error_of(response)["code"] == "DIALING_QUEUE_APPEND_CONFLICT"


def test_a_validation_fault_names_the_field_and_the_message(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    fault = {
        "status": 400,
        "code": "VALIDATION_ERROR",
        "param": "name",
        "message": "Name is not allowed",
        "count": 1,
        "methods": ["PATCH"],
    }
    switched = control(allo_http, "POST", "/_sandbox/faults", fault)
    assert (switched["param"], switched["message"]) == ("name", "Name is not allowed")
    assert allo_http.get(QUEUE).status_code == 200
    response = allo_http.patch(QUEUE, json={"name": "Interdit"})
    assert response.status_code == 400
    assert error_of(response) == {
        "type": "validation_error",
        "code": "VALIDATION_ERROR",
        "message": "Name is not allowed",
        "param": "name",
        "errors": [{"field": "name", "code": "VALIDATION_ERROR", "message": "Name is not allowed"}],
        "retryable": False,
        "request_id": error_of(response)["request_id"],
    }
    assert "X-RateLimit-Remaining" in response.headers
    queue = sandbox.queue_of(sandbox.owner_id)
    assert queue is not None and queue["name"] != "Interdit"
    assert allo_http.patch(QUEUE, json={"name": "Permis"}).status_code == 200


def test_a_fault_can_carry_a_message_without_a_param(allo_http: httpx.Client) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"status": 503, "message": "Maintenance"})
    error = error_of(allo_http.get("/v2/api/me"))
    assert error["message"] == "Maintenance" and "param" not in error and "errors" not in error


def test_a_latency_within_the_clients_read_timeout_is_waited_out(
    allo_http: httpx.Client,
) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"latency_ms": 5, "count": 1})
    assert allo_http.get("/v2/api/me", timeout=5).status_code == 200
    log = control(allo_http, "GET", "/_sandbox/stats")["log"]
    assert [(row["status"], row["fault"]) for row in log] == [(200, "latency")]


@pytest.mark.parametrize(
    ("fault", "applied"),
    [
        ({"latency_ms": 2000}, True),
        ({"latency_ms": 2000, "apply_then_fail": True, "status": 502}, True),
        ({"latency_ms": 2000, "status": 500}, False),
    ],
)
def test_a_latency_past_the_clients_read_timeout_is_a_read_timeout_without_waiting(
    fault: dict[str, Any], applied: bool, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {**fault, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        allo_http.patch(QUEUE, json={"name": "Slow"}, timeout=0.05)
    # As over the socket: the request was handled before its answer was held back.
    queue = sandbox.queue_of(sandbox.owner_id)
    assert queue is not None and (queue["name"] == "Slow") is applied
    assert len(control(allo_http, "GET", "/_sandbox/stats")["log"]) == 1


def test_a_faulted_write_is_not_applied(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"status": 500})
    response = allo_http.patch(QUEUE, json={"name": "Lost"})
    assert response.status_code == 500
    queue = sandbox.queue_of(sandbox.owner_id)
    assert queue is not None and queue["name"] != "Lost"


def test_apply_then_fail_applies_the_write_and_then_answers_the_error(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"apply_then_fail": True, "status": 502})
    response = allo_http.post(NUMBERS, json={"numbers": [{"number": "0612345678"}]})
    assert response.status_code == 502
    assert error_of(response)["type"] == "server_error"
    assert queue_numbers(sandbox, OWNER)[-1] == "+33612345678"
    # A request Allo refuses is not applied, and answers its own error.
    refused = allo_http.patch(QUEUE, json={"name": ""})
    assert refused.status_code == 400


def test_apply_then_fail_can_also_leave_the_client_hanging(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"apply_then_fail": True, "hang": True})
    with pytest.raises(httpx.ReadTimeout):
        allo_http.patch(QUEUE, json={"name": "Applied, then silence"})
    queue = sandbox.queue_of(sandbox.owner_id)
    assert queue is not None and queue["name"] == "Applied, then silence"


def test_a_429_fault_looks_like_a_real_rate_limit(allo_http: httpx.Client) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"status": 429, "count": 1})
    response = allo_http.get("/v2/api/users")
    assert response.status_code == 429
    error = error_of(response)
    assert (error["type"], error["code"]) == ("rate_limit_error", "RATE_LIMIT_EXCEEDED")
    assert error["retryable"] is True and error["retry_after_seconds"] >= 1
    assert int(response.headers["Retry-After"]) >= 1


def test_a_malformed_fault_answers_a_body_that_is_not_json(allo_http: httpx.Client) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"malformed": True, "count": 1})
    response = allo_http.get("/v2/api/users")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert allo_http.get("/v2/api/users").json()["data"]


def test_a_hang_fault_ends_in_a_read_timeout_through_the_mock_transport(
    allo_http: httpx.Client,
) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"hang": True, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        allo_http.get("/v2/api/users")
    assert allo_http.get("/v2/api/users").status_code == 200


def test_a_fault_can_be_kept_to_some_methods(allo_http: httpx.Client) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"status": 500, "count": 1, "methods": ["POST"]})
    assert allo_http.get(QUEUE).status_code == 200
    assert allo_http.patch(QUEUE, json={"name": "Fine"}).status_code == 200
    assert allo_http.post(QUEUE).status_code == 500
    assert allo_http.post(QUEUE).status_code == 200


def test_an_empty_fault_switches_faults_off(allo_http: httpx.Client) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"status": 500})
    assert allo_http.get("/v2/api/me").status_code == 500
    faults = control(allo_http, "POST", "/_sandbox/faults", {})
    assert faults["status"] is None and faults["hang"] is False
    assert allo_http.get("/v2/api/me").status_code == 200


def test_control_requests_are_never_faulted(allo_http: httpx.Client) -> None:
    control(allo_http, "POST", "/_sandbox/faults", {"status": 500})
    assert control(allo_http, "GET", "/_sandbox/stats") == {"requests": [], "log": []}


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 200},
        {"status": 700},
        {"latency_ms": -1},
        {"count": 0},
        {"hang": "yes"},
        {"explode": True},
        {"param": "name"},
        {"status": 400, "param": 5},
        {"status": 400, "message": ""},
        {"malformed": True, "code": "VALIDATION_ERROR"},
        {"hang": True, "message": "Never seen"},
    ],
)
def test_a_fault_that_makes_no_sense_is_refused(
    fault: dict[str, Any], allo_http: httpx.Client
) -> None:
    response = allo_http.post("/_sandbox/faults", json=fault)
    assert response.status_code == 400
    assert control(allo_http, "GET", "/_sandbox/faults")["status"] is None


# Stats and the request log ------------------------------------------------------------------------


def test_stats_count_each_method_path_and_status_429s_and_faults_included(
    sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    for index in range(6):
        allo_http.patch(QUEUE, json={"name": f"n{index}"})
    allo_http.get(QUEUE, params={"page": 2})
    control(allo_http, "POST", "/_sandbox/faults", {"status": 503, "count": 1})
    allo_http.get(QUEUE)
    control(allo_http, "POST", "/_sandbox/faults", {"hang": True, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        allo_http.get("/v2/api/users")
    rows = control(allo_http, "GET", "/_sandbox/stats")["requests"]
    assert rows == [
        {"method": "PATCH", "path": QUEUE, "status": 200, "count": 5},
        {"method": "PATCH", "path": QUEUE, "status": 429, "count": 1},
        {"method": "GET", "path": QUEUE, "status": 200, "count": 1},
        {"method": "GET", "path": QUEUE, "status": 503, "count": 1},
        {"method": "GET", "path": "/v2/api/users", "status": None, "count": 1},
    ]


def test_the_log_keeps_each_requests_query_and_json_body_but_not_the_key(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    lea = uid(sandbox, LEA)
    allo_http.post(NUMBERS, json={"user_id": lea, "numbers": [{"number": "0612345678"}]})
    allo_http.delete(NUMBERS, params={"user_id": lea, "position": ["1", "2"]})
    allo_http.patch(QUEUE, content=b"{oops", headers={"Content-Type": "application/json"})
    log = control(allo_http, "GET", "/_sandbox/stats")["log"]
    post, delete, broken = log
    assert post["method"] == "POST" and post["path"] == NUMBERS and post["status"] == 200
    assert post["body"] == {"user_id": lea, "numbers": [{"number": "0612345678"}]}
    assert post["query"] == {}
    assert delete["query"] == {"user_id": lea, "position": ["1", "2"]}
    assert delete["body"] is None
    assert broken["status"] == 400 and broken["body"] is None
    assert post["headers"]["content-type"] == "application/json"
    assert all("authorization" not in row["headers"] for row in log)
    assert sandbox.api_key not in str(log)


def test_the_log_keeps_the_last_500_requests(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    for index in range(505):
        if index % 20 == 0:
            sandbox_clock.advance(1)
        allo_http.get("/v2/api/me", params={"n": index})
    log = control(allo_http, "GET", "/_sandbox/stats")["log"]
    assert len(log) == 500 and log[0]["query"] == {"n": "5"}


def test_stats_can_be_cleared(allo_http: httpx.Client) -> None:
    allo_http.get("/v2/api/me")
    assert control(allo_http, "DELETE", "/_sandbox/stats") == {"requests": [], "log": []}


# Control endpoints --------------------------------------------------------------------------------


def test_control_endpoints_need_the_api_key(sandbox: Sandbox) -> None:
    with httpx.Client(transport=sandbox_transport(sandbox), base_url="http://allo.test") as bare:
        missing = bare.get("/_sandbox/stats")
        wrong = bare.post("/_sandbox/reset", headers={"Authorization": "Api-Key nope"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert error_of(wrong)["code"] == "API_KEY_INVALID"


def test_an_unknown_control_path_is_404(allo_http: httpx.Client) -> None:
    response = allo_http.get("/_sandbox/nothing")
    assert response.status_code == 404 and error_of(response)["code"] == "NOT_FOUND"


def test_a_reset_brings_back_the_seeded_world_and_clears_stats_and_faults(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    seeded = sandbox.queue_of(uid(sandbox, JEROME))
    allo_http.post(QUEUE, json={"user_id": uid(sandbox, JEROME)})
    control(allo_http, "POST", "/_sandbox/users", {"name": "Nouvelle", "email": "n@x.fr"})
    control(allo_http, "POST", "/_sandbox/faults", {"status": 500})
    data = control(allo_http, "POST", "/_sandbox/reset")
    assert data == {"owner_id": sandbox.owner_id, "users": 14}
    assert sandbox.queue_of(uid(sandbox, JEROME)) == seeded
    assert control(allo_http, "GET", "/_sandbox/stats") == {"requests": [], "log": []}
    assert allo_http.get("/v2/api/me").status_code == 200


def test_a_teammate_can_be_added(allo_http: httpx.Client) -> None:
    user = control(
        allo_http,
        "POST",
        "/_sandbox/users",
        {"name": "Gaëlle L'Hôte", "email": "gaelle.lhote@lumen-energie.fr", "role": "MANAGER"},
    )
    assert user["id"].startswith("usr-") and len(user["id"]) == 44
    assert (user["role"], user["status"], user["image_url"]) == ("MANAGER", "ACTIVE", None)
    listed = allo_http.get("/v2/api/users", params={"role": "MANAGER"}).json()["data"]
    assert user in listed
    assert allo_http.get(QUEUE, params={"user_id": user["id"]}).json()["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"email": "x@y.fr"},
        {"name": "X"},
        {"name": "X", "email": "camille.lefevre@lumen-energie.fr"},
        {"name": "X", "email": "x@y.fr", "role": 3},
    ],
)
def test_a_teammate_without_a_name_or_a_fresh_email_is_refused(
    body: dict[str, Any], allo_http: httpx.Client
) -> None:
    assert allo_http.post("/_sandbox/users", json=body).status_code in {400, 409}


def test_a_teammates_queue_is_set_from_strings_and_number_objects(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    anais = uid(sandbox, ANAIS)
    queue = control(
        allo_http,
        "PUT",
        f"/_sandbox/queues/{anais}",
        {
            "name": "Posée par un autre outil",
            "voicemail_handling": "SKIP",
            "numbers": [
                "06 12 34 56 78",
                {
                    "number_to": "+33698765432",
                    "call_start_date": "2026-05-04T08:00:00Z",
                    "routing_result": "ANSWERED",
                    "sync_status": "SYNCED",
                },
            ],
            "dialing": True,
        },
    )
    assert queue["assignee_id"] == anais and queue["dialing"] is True
    first, second = queue["numbers"]
    assert first["number_to"] == "+33612345678" and first["call_start_date"] is None
    assert second["call_start_date"] == "2026-05-04T08:00:00.000Z"
    assert second["call_id"].startswith("cll-") and second["routing_result"] == "ANSWERED"
    assert control(allo_http, "GET", f"/_sandbox/queues/{anais}") == queue
    read = allo_http.get(QUEUE, params={"user_id": anais}).json()
    assert read["queue"]["name"] == "Posée par un autre outil"


def test_a_partial_put_keeps_the_numbers_and_only_changes_what_is_sent(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    matheo = uid(sandbox, MATHEO)
    before = sandbox.queue_of(matheo)
    assert before is not None
    after = control(allo_http, "PUT", f"/_sandbox/queues/{matheo}", {"dialing": True})
    assert after["dialing"] is True and after["numbers"] == before["numbers"]
    assert after["id"] == before["id"]


def test_a_teammates_queue_can_be_taken_away(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    matheo = uid(sandbox, MATHEO)
    assert control(allo_http, "PUT", f"/_sandbox/queues/{matheo}", None) is None
    assert sandbox.queue_of(matheo) is None
    theo = uid(sandbox, THEO)
    assert control(allo_http, "DELETE", f"/_sandbox/queues/{theo}") is None
    assert allo_http.get(QUEUE, params={"user_id": theo}).json()["data"] == []


def test_a_queue_put_with_a_bad_number_is_refused(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    response = allo_http.put(f"/_sandbox/queues/{uid(sandbox, ANAIS)}", json={"numbers": ["hello"]})
    assert response.status_code == 400
    assert sandbox.queue_of(uid(sandbox, ANAIS)) is None


def test_the_queue_of_someone_off_the_team_is_not_found(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    response = allo_http.get(f"/_sandbox/queues/{sandbox.outsider_id}")
    assert response.status_code == 404


def test_the_config_switches_the_api_version_being_imitated(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    config = control(
        allo_http, "PATCH", "/_sandbox/config", {"teammate_field": "none", "get_shape": "legacy"}
    )
    assert config["teammate_field"] == "none" and config["get_shape"] == "legacy"
    assert (sandbox.teammate_field, sandbox.get_shape) == ("none", "legacy")
    body = allo_http.get(QUEUE, params={"user_id": uid(sandbox, LEA)}).json()
    assert body["data"]["assignee_id"] == sandbox.owner_id
    response = allo_http.patch(
        "/_sandbox/config", json={"get_shape": "paginated", "teammate_field": "user_uid"}
    )
    assert response.status_code == 400 and error_of(response)["param"] == "teammate_field"
    assert sandbox.get_shape == "legacy"


def test_the_config_sets_per_method_teammate_fields_and_strict_fields(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    config = control(
        allo_http,
        "PATCH",
        "/_sandbox/config",
        {"teammate_field_by_method": {"post": "none", "DELETE": "none"}, "strict_fields": True},
    )
    assert config["teammate_field_by_method"] == {"POST": "none", "DELETE": "none"}
    assert config["strict_fields"] is True
    assert sandbox.teammate_field_for("POST") == "none" and sandbox.strict_fields
    for bad in (
        {"teammate_field_by_method": {"POST": "userid"}},
        {"teammate_field_by_method": {"PUT": "none"}},
        {"teammate_field_by_method": ["POST"]},
        {"strict_fields": "yes"},
    ):
        response = allo_http.patch("/_sandbox/config", json={**bad, "get_shape": "legacy"})
        assert response.status_code == 400
        assert error_of(response)["param"] in bad
    assert sandbox.get_shape == "paginated"
    assert sandbox.teammate_field_by_method == {"POST": "none", "DELETE": "none"}
    cleared = control(allo_http, "PATCH", "/_sandbox/config", {"teammate_field_by_method": {}})
    assert cleared["teammate_field_by_method"] == {} and cleared["strict_fields"] is True


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("teammate_field", "userid"),
        ("get_shape", "pages"),
        ("scope_error_shape", "v3"),
        ("date_style", "unix"),
    ],
)
def test_the_sandbox_refuses_a_setting_it_does_not_know(setting: str, value: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Sandbox(**{setting: value})
    sandbox = Sandbox(clock=FakeClock())
    before = getattr(sandbox, setting)
    with pytest.raises(ValueError, match=setting):
        setattr(sandbox, setting, value)
    assert getattr(sandbox, setting) == before


# The seed -----------------------------------------------------------------------------------------


def every_queue(sandbox: Sandbox) -> list[dict[str, Any] | None]:
    return [sandbox.queue_of(u["id"]) for u in sandbox.users]


def test_the_same_seed_gives_the_same_team_and_queues() -> None:
    one, two = Sandbox(seed=11, clock=FakeClock()), Sandbox(seed=11, clock=FakeClock())
    assert one.users == two.users and one.owner_id == two.owner_id
    assert every_queue(one) == every_queue(two)
    other = Sandbox(seed=12, clock=FakeClock())
    assert [u["name"] for u in other.users] == [u["name"] for u in one.users]
    assert [u["id"] for u in other.users] != [u["id"] for u in one.users]
    assert every_queue(other) != every_queue(one)


def test_the_seeded_team_is_a_realistic_french_sales_team(sandbox: Sandbox) -> None:
    users = sandbox.users
    assert len(users) >= 12
    assert {u["role"] for u in users} == set(ROLES)
    assert any(u["status"] == "BLOCKED" for u in users)
    names = [u["name"] for u in users]
    assert {OWNER, ZOE, JEROME} <= set(names)
    assert all(u["id"].startswith("usr-") and len(u["id"]) == 44 for u in users)
    assert all(u["id"][4:] == u["id"][4:].upper() for u in users)
    assert sandbox.owner["name"] == OWNER and sandbox.owner["role"] == "ADMIN"
    assert any(u["image_url"] for u in users) and any(u["image_url"] is None for u in users)
    assert sandbox.outsider_id not in {u["id"] for u in users}


def test_the_seeded_queues_range_from_none_and_empty_to_exactly_1000(sandbox: Sandbox) -> None:
    sizes = [len(q["numbers"]) if q else None for q in every_queue(sandbox)]
    assert None in sizes and 0 in sizes and 1000 in sizes
    assert max(s for s in sizes if s is not None) == 1000
    dialing = [q for q in every_queue(sandbox) if q and q["dialing"]]
    assert 3 <= len(dialing) <= 4
    assert all(any(n["call_start_date"] is None for n in q["numbers"]) for q in dialing)


def test_the_seed_shows_every_result_reason_sync_status_and_voicemail_flag(
    sandbox: Sandbox,
) -> None:
    numbers = [n for q in every_queue(sandbox) if q for n in q["numbers"]]
    assert {n["routing_result"] for n in numbers} == {*ROUTING_RESULTS, None}
    assert {n["not_reached_destination_reason"] for n in numbers} == {*NOT_REACHED_REASONS, None}
    assert {n["sync_status"] for n in numbers} == set(SYNC_STATUSES)
    assert {n["voicemail_left"] for n in numbers} == {True, False, None}
    assert {n["detected_outbound_voicemail"] for n in numbers} == {True, False, None}


def test_every_seeded_number_is_a_valid_e164_number(sandbox: Sandbox) -> None:
    import phonenumbers

    numbers = {n["number_to"] for q in every_queue(sandbox) if q for n in q["numbers"]}
    for number in numbers:
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number


def test_a_seeded_skip_queue_never_left_a_voicemail(sandbox: Sandbox) -> None:
    skip = [q for q in every_queue(sandbox) if q and q["voicemail_handling"] == "SKIP"]
    assert skip
    assert not any(n["voicemail_left"] for q in skip for n in q["numbers"])
    assert any(n["detected_outbound_voicemail"] for q in skip for n in q["numbers"])


# The simulated reps -------------------------------------------------------------------------------


def test_a_dialed_number_gets_a_call_start_date_then_a_routing_result(
    sandbox: Sandbox, sandbox_clock: FakeClock, allo_http: httpx.Client
) -> None:
    lea = uid(sandbox, LEA)
    state = sandbox.queue_of(lea)
    assert state is not None
    upcoming = next(n["position"] for n in state["numbers"] if n["call_start_date"] is None)

    sandbox_clock.advance(4)
    sandbox.dial_step()
    page = allo_http.get(QUEUE, params={"user_id": lea, "size": 100, "page": 1}).json()["data"]
    ringing = page[upcoming]
    assert ringing["call_start_date"] == "2026-05-04T09:30:04.250Z"
    assert ringing["call_id"].startswith("cll-")
    assert ringing["routing_result"] is None

    sandbox_clock.advance(4)
    sandbox.dial_step()
    page = allo_http.get(QUEUE, params={"user_id": lea, "size": 100, "page": 1}).json()["data"]
    done, next_one = page[upcoming], page[upcoming + 1]
    assert done["routing_result"] in ROUTING_RESULTS
    assert done["sync_status"] == "PROCESSING"
    assert done["updated_at"] == "2026-05-04T09:30:08.250Z"
    assert next_one["call_start_date"] == "2026-05-04T09:30:08.250Z"


def test_a_skip_queue_never_leaves_a_voicemail_while_dialing(sandbox: Sandbox) -> None:
    ines = uid(sandbox, INES)
    for _ in range(60):
        sandbox.dial_step()
    state = sandbox.queue_of(ines)
    assert state is not None and state["voicemail_handling"] == "SKIP"
    assert all(n["routing_result"] for n in state["numbers"])
    assert not any(n["voicemail_left"] for n in state["numbers"])
    assert any(n["detected_outbound_voicemail"] for n in state["numbers"])


def test_a_rep_stops_dialing_at_the_end_of_the_queue(sandbox: Sandbox) -> None:
    ines = uid(sandbox, INES)
    for _ in range(60):
        sandbox.dial_step()
    state = sandbox.queue_of(ines)
    assert state is not None and state["dialing"] is False
    assert {n["sync_status"] for n in state["numbers"]} <= {"SYNCED", "NOT_SYNCED"}


def test_queues_nobody_is_dialing_do_not_change(sandbox: Sandbox) -> None:
    still = [uid(sandbox, name) for name in (OWNER, THEO, MATHEO, FRANCOIS, ELOISE)]
    before = [sandbox.queue_of(u) for u in still]
    for _ in range(5):
        sandbox.dial_step()
    assert [sandbox.queue_of(u) for u in still] == before


def test_a_queue_starts_being_dialed_when_the_control_put_says_so(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    matheo = uid(sandbox, MATHEO)
    control(allo_http, "PUT", f"/_sandbox/queues/{matheo}", {"dialing": True})
    control(allo_http, "POST", "/_sandbox/dial")
    state = sandbox.queue_of(matheo)
    assert state is not None and state["numbers"][0]["call_start_date"] is not None
    control(allo_http, "PUT", f"/_sandbox/queues/{matheo}", {"dialing": False})
    sandbox.dial_step()
    state = sandbox.queue_of(matheo)
    assert state is not None and state["numbers"][0]["routing_result"] is None


def test_the_simulated_dialing_is_deterministic() -> None:
    one, two = Sandbox(clock=FakeClock()), Sandbox(clock=FakeClock())
    for _ in range(10):
        one.dial_step()
        two.dial_step()
    assert every_queue(one) == every_queue(two)


def test_a_test_can_wait_for_dial_steps_and_requests_without_polling(
    sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    assert sandbox.dials == 0
    assert sandbox.wait_for_dials(1, timeout=0) is False
    sandbox.dial_step()
    control(allo_http, "POST", "/_sandbox/dial")
    assert sandbox.dials == 2 and sandbox.wait_for_dials(2, timeout=0) is True
    assert sandbox.wait_for_requests(1, timeout=0) is False
    allo_http.get("/v2/api/me")
    assert sandbox.wait_for_requests(1, timeout=0) is True
    sandbox.clear_stats()
    assert sandbox.wait_for_requests(1, timeout=0) is False


def test_a_reset_queue_keeps_its_rep_dialing(sandbox: Sandbox, allo_http: httpx.Client) -> None:
    lea = uid(sandbox, LEA)
    allo_http.post(QUEUE, json={"user_id": lea})
    allo_http.post(NUMBERS, json={"user_id": lea, "numbers": [{"number": "0612345678"}]})
    sandbox.dial_step()
    state = sandbox.queue_of(lea)
    assert state is not None and state["numbers"][0]["call_start_date"] is not None
