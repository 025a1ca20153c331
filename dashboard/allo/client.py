"""The one door to Allo: a configured httpx client, responses parsed into dataclasses.

Everything that leaves for Allo goes through :class:`AlloClient`; every failure comes back as an
:class:`~dashboard.allo.errors.AlloError`. The client never trusts that a teammate was targeted:
any queue read or written for teammate T must come back with ``assignee_id == T``.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

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
    FieldError,
)
from dashboard.allo.types import (
    AppendResult,
    Endpoint,
    Me,
    NewNumber,
    Queue,
    QueueNumber,
    QueuePage,
    RateLimits,
    SkippedNumber,
    Team,
    Teammate,
)

logger = logging.getLogger(__name__)

QUEUE_PATH: Final = "/v2/api/dialing-queues/current"
NUMBERS_PATH: Final = "/v2/api/dialing-queues/current/numbers"
MAX_PAGE_SIZE: Final = 100


class _Unset:
    """Marks a setting the caller did not pass, so it is not sent (``None`` is a value)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()


# Parsing ---------------------------------------------------------------------------------------


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 with or without an offset; a missing offset is read as UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AlloBadResponseError(message=f"Expected a date, got {type(value).__name__}.")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AlloBadResponseError(message=f"Unreadable date {value!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _opt_bool(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    return value if isinstance(value, bool) else None


def _required(data: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise AlloBadResponseError(message=f"Allo sent a {what} without a valid {key!r}.")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AlloBadResponseError(message=f"Allo sent a {what} that is not an object.")
    return value


def parse_teammate(raw: Any) -> Teammate:
    data = _mapping(raw, "user")
    return Teammate(
        id=_required(data, "id", str, "user"),
        name=_opt_str(data, "name") or "",
        email=_opt_str(data, "email"),
        role=_opt_str(data, "role"),
        status=_opt_str(data, "status"),
        image_url=_opt_str(data, "image_url"),
    )


def parse_queue_number(raw: Any) -> QueueNumber:
    data = _mapping(raw, "queue number")
    return QueueNumber(
        number_to=_required(data, "number_to", str, "queue number"),
        position=_required(data, "position", int, "queue number"),
        created_at=parse_datetime(data.get("created_at")),
        updated_at=parse_datetime(data.get("updated_at")),
        call_start_date=parse_datetime(data.get("call_start_date")),
        call_id=_opt_str(data, "call_id"),
        routing_result=_opt_str(data, "routing_result"),
        not_reached_destination_reason=_opt_str(data, "not_reached_destination_reason"),
        detected_outbound_voicemail=_opt_bool(data, "detected_outbound_voicemail"),
        voicemail_left=_opt_bool(data, "voicemail_left"),
        sync_status=_opt_str(data, "sync_status"),
        call_status=_opt_str(data, "call_status"),
    )


def parse_queue(raw: Any, numbers: Sequence[QueueNumber] | None = None) -> Queue:
    """A queue object; its ``numbers`` unless the caller gathered them from pages."""
    data = _mapping(raw, "queue")
    if numbers is None:
        raw_numbers = data.get("numbers") or []
        if not isinstance(raw_numbers, list):
            raise AlloBadResponseError(message="Allo sent a queue whose numbers are not a list.")
        numbers = [parse_queue_number(item) for item in raw_numbers]
    return Queue(
        id=_required(data, "id", str, "queue"),
        name=_opt_str(data, "name"),
        creator_id=_opt_str(data, "creator_id"),
        assignee_id=_opt_str(data, "assignee_id"),
        voicemail_handling=_opt_str(data, "voicemail_handling"),
        do_not_disturb=_opt_str(data, "do_not_disturb"),
        numbers=tuple(sorted(numbers, key=lambda n: n.position)),
        created_at=parse_datetime(data.get("created_at")),
        updated_at=parse_datetime(data.get("updated_at")),
    )


def parse_me(raw: Any) -> Me:
    data = _mapping(raw, "key description")
    team_raw = data.get("team")
    team = None
    if isinstance(team_raw, Mapping) and isinstance(team_raw.get("id"), str):
        team = Team(id=team_raw["id"], name=_opt_str(team_raw, "name"))
    limits_raw = data.get("rate_limits")
    limits = None
    if isinstance(limits_raw, Mapping):
        read = limits_raw.get("read_per_second")
        write = limits_raw.get("write_per_second")
        limits = RateLimits(
            read_per_second=read if isinstance(read, int) else None,
            write_per_second=write if isinstance(write, int) else None,
        )
    endpoints = tuple(
        Endpoint(
            method=_opt_str(item, "method") or "",
            path=_opt_str(item, "path") or "",
            description=_opt_str(item, "description"),
            scope=_opt_str(item, "scope"),
        )
        for item in data.get("endpoints") or []
        if isinstance(item, Mapping)
    )
    scopes = tuple(s for s in data.get("scopes") or [] if isinstance(s, str))
    return Me(
        api_key_id=_opt_str(data, "api_key_id"),
        scopes=scopes,
        endpoints=endpoints,
        team=team,
        rate_limits=limits,
    )


def _error_from_response(response: httpx.Response) -> AlloError:
    """Turn an error response, in either of Allo's envelopes or none, into an AlloError."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    code = message = param = request_id = None
    retry_after: float | None = None
    field_errors: list[FieldError] = []
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        envelope = body["error"]
        code = _opt_str(envelope, "code")
        message = _opt_str(envelope, "message")
        param = _opt_str(envelope, "param")
        request_id = _opt_str(envelope, "request_id")
        seconds = envelope.get("retry_after_seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            retry_after = float(seconds)
        for item in envelope.get("errors") or []:
            if isinstance(item, Mapping):
                field_errors.append(
                    FieldError(
                        field=_opt_str(item, "field"),
                        code=_opt_str(item, "code"),
                        message=_opt_str(item, "message") or "",
                    )
                )
    elif isinstance(body, Mapping) and isinstance(body.get("code"), str):
        # Allo's v1 envelope: {"code": ..., "details": [{"message", "field"}]}.
        code = body["code"]
        for item in body.get("details") or []:
            if isinstance(item, Mapping):
                field_errors.append(
                    FieldError(
                        field=_opt_str(item, "field"),
                        code=None,
                        message=_opt_str(item, "message") or "",
                    )
                )
        message = _opt_str(body, "message") or (field_errors[0].message if field_errors else None)
        param = field_errors[0].field if field_errors else None
    if not param and field_errors:
        param = field_errors[0].field
    if retry_after is None:
        header = response.headers.get("Retry-After")
        try:
            retry_after = float(header) if header is not None else None
        except ValueError:
            retry_after = None
    request_id = request_id or response.request.headers.get("X-Request-Id")
    fields: dict[str, Any] = {
        "message": message or f"Allo answered HTTP {status}.",
        "code": code,
        "param": param,
        "request_id": request_id,
        "status": status,
        "retry_after": retry_after,
        "field_errors": tuple(field_errors),
    }
    if status == 400 or status == 415:
        return AlloValidationError(**fields)
    if status == 401:
        return AlloAuthenticationError(**fields)
    if status == 403:
        return AlloPermissionError(**fields)
    if status == 404:
        return AlloNotFoundError(**fields)
    if status == 409:
        return AlloConflictError(**fields)
    if status == 429:
        return AlloRateLimitedError(**fields)
    if status >= 500:
        return AlloUnavailableError(**fields)
    if body is None:
        return AlloBadResponseError(**fields)
    return AlloError(**fields)


# The client -------------------------------------------------------------------------------------


class AlloClient:
    """Allo's REST API, v2, as the dashboard uses it. Thread-safe; build one and reuse it."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AlloClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Transport ---------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body of a 2xx answer.

        Raises AlloUnavailableError for network failures and 5xx (``request_sent`` False only
        when the request surely never reached Allo), AlloBadResponseError for a body that is not
        JSON, and the matching AlloError subclass for every other error status.
        """
        request_id = f"req_dash_{uuid.uuid4().hex[:20]}"
        headers = {"X-Request-Id": request_id}
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if body is not None:
            kwargs["content"] = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            logger.warning("Allo unreachable for %s %s (%s)", method, path, type(exc).__name__)
            raise AlloUnavailableError(
                message="Allo could not be reached.", request_id=request_id, request_sent=False
            ) from None
        except httpx.TimeoutException as exc:
            logger.warning("Allo timed out on %s %s (%s)", method, path, type(exc).__name__)
            raise AlloUnavailableError(
                message="Allo did not answer in time.", request_id=request_id
            ) from None
        except httpx.TransportError as exc:
            logger.warning("Allo connection failed on %s %s (%s)", method, path, type(exc).__name__)
            raise AlloUnavailableError(
                message="The connection to Allo failed.", request_id=request_id
            ) from None
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise AlloBadResponseError(
                    message="Allo answered with a body that is not JSON.",
                    status=response.status_code,
                    request_id=request_id,
                ) from None
        error = _error_from_response(response)
        logger.info(
            "Allo refused %s %s: HTTP %s %s (request_id=%s)",
            method,
            path,
            error.status,
            error.code,
            error.request_id,
        )
        raise error

    @staticmethod
    def _data(body: Any) -> Any:
        if not isinstance(body, Mapping) or "data" not in body:
            raise AlloBadResponseError(message="Allo answered without a 'data' member.")
        return body["data"]

    @staticmethod
    def _target(user_id: str | None, email: str | None = None) -> dict[str, str]:
        """Name the teammate under both field names Allo has documented (user_pid, user_id)."""
        target: dict[str, str] = {}
        if user_id is not None:
            target["user_id"] = user_id
            target["user_pid"] = user_id
        if email is not None:
            target["email"] = email
        return target

    @staticmethod
    def _check_assignee(queue: Queue, user_id: str | None) -> Queue:
        if user_id is not None and queue.assignee_id != user_id:
            raise AlloWrongTeammateError(
                message=(
                    "Allo returned a queue that belongs to someone else: the request did not "
                    "reach the intended teammate."
                ),
                code="WRONG_TEAMMATE",
                expected_user_id=user_id,
                returned_user_id=queue.assignee_id,
            )
        return queue

    # Key and team -------------------------------------------------------------------------------

    def me(self) -> Me:
        """GET /v2/api/me: who this key is, its scopes and live rate limits."""
        return parse_me(self._data(self._request("GET", "/v2/api/me")))

    def list_users(self, *, role: str | None = None, status: str | None = None) -> list[Teammate]:
        """GET /v2/api/users: the whole team (Allo's default hides BLOCKED users)."""
        params = {k: v for k, v in {"role": role, "status": status}.items() if v is not None}
        data = self._data(self._request("GET", "/v2/api/users", params=params or None))
        if not isinstance(data, list):
            raise AlloBadResponseError(message="Allo sent a user list that is not a list.")
        return [parse_teammate(item) for item in data]

    def get_user(self, user_id: str) -> Teammate:
        """GET /v2/api/users/{id}. Raises AlloNotFoundError for an unknown id."""
        path = f"/v2/api/users/{httpx.URL(user_id).raw_path.decode()}"
        teammate = parse_teammate(self._data(self._request("GET", path)))
        if teammate.id != user_id:
            raise AlloBadResponseError(message="Allo returned a different user than asked for.")
        return teammate

    # Queues --------------------------------------------------------------------------------------

    def get_queue_page(self, *, user_id: str | None, page: int = 1, size: int = 20) -> QueuePage:
        """GET /v2/api/dialing-queues/current, one page, in either of Allo's response shapes.

        The legacy shape returns every number at once; the page is cut from it here.
        Raises AlloWrongTeammateError if the queue belongs to someone other than ``user_id``.
        """
        size = max(1, min(size, MAX_PAGE_SIZE))
        page = max(1, page)
        params = {"page": page, "size": size, **self._target(user_id)}
        body = self._request("GET", QUEUE_PATH, params=params)
        data = self._data(body)
        if data is None or isinstance(data, Mapping):
            queue = self._check_assignee(parse_queue(data), user_id) if data else None
            numbers = queue.numbers if queue else ()
            total = len(numbers)
            start = (page - 1) * size
            return QueuePage(
                queue=queue,
                numbers=numbers[start : start + size],
                page=page,
                size=size,
                total_count=total,
                total_pages=-(-total // size),
            )
        if not isinstance(data, list):
            raise AlloBadResponseError(message="Allo sent a queue in a shape it does not document.")
        numbers = tuple(parse_queue_number(item) for item in data)
        raw_queue = body.get("queue")
        queue = None
        if raw_queue is not None:
            queue = self._check_assignee(parse_queue(raw_queue, numbers=()), user_id)
        elif numbers:
            raise AlloBadResponseError(message="Allo sent queue numbers without their queue.")
        pagination = body.get("pagination")
        pagination = pagination if isinstance(pagination, Mapping) else {}
        total = pagination.get("total_count")
        pages = pagination.get("total_pages")
        total = total if isinstance(total, int) else len(numbers)
        return QueuePage(
            queue=queue,
            numbers=tuple(sorted(numbers, key=lambda n: n.position)),
            page=page,
            size=size,
            total_count=total,
            total_pages=pages if isinstance(pages, int) else -(-total // size),
        )

    def get_queue(self, *, user_id: str | None) -> Queue | None:
        """The teammate's current queue with every number (reads all pages), or None.

        If the queue is replaced while its pages are read, the read starts over once.
        Raises AlloWrongTeammateError if the queue belongs to someone other than ``user_id``.
        """
        for _attempt in range(2):
            first = self.get_queue_page(user_id=user_id, page=1, size=MAX_PAGE_SIZE)
            if first.queue is None:
                return None
            numbers = list(first.numbers)
            replaced = False
            for page in range(2, first.total_pages + 1):
                next_page = self.get_queue_page(user_id=user_id, page=page, size=MAX_PAGE_SIZE)
                if next_page.queue is None or next_page.queue.id != first.queue.id:
                    replaced = True
                    break
                numbers.extend(next_page.numbers)
            if replaced:
                continue
            unique = {n.position: n for n in numbers}
            return Queue(
                **{
                    **first.queue.__dict__,
                    "numbers": tuple(unique[p] for p in sorted(unique)),
                }
            )
        raise AlloBadResponseError(message="The queue kept changing while it was being read.")

    def upsert_queue(
        self,
        *,
        user_id: str | None,
        name: str | _Unset = UNSET,
        voicemail_handling: str | _Unset = UNSET,
        do_not_disturb: str | _Unset = UNSET,
    ) -> Queue:
        """PATCH /v2/api/dialing-queues/current: change only the settings passed.

        Creates the queue if the teammate has none. A setting not passed is not sent (never as
        null). Raises AlloWrongTeammateError if Allo changed someone else's queue.
        """
        changes = {
            key: value
            for key, value in {
                "name": name,
                "voicemail_handling": voicemail_handling,
                "do_not_disturb": do_not_disturb,
            }.items()
            if value is not UNSET
        }
        body = {**changes, **self._target(user_id)}
        data = self._data(self._request("PATCH", QUEUE_PATH, body=body))
        return self._check_assignee(parse_queue(data), user_id)

    def reset_queue(self, *, user_id: str | None, name: str | None = None) -> Queue:
        """POST /v2/api/dialing-queues/current: start a fresh, empty queue (destructive)."""
        body: dict[str, Any] = self._target(user_id)
        if name is not None:
            body["name"] = name
        data = self._data(self._request("POST", QUEUE_PATH, body=body))
        return self._check_assignee(parse_queue(data), user_id)

    def append_numbers(
        self, *, user_id: str | None, numbers: Sequence[NewNumber | str]
    ) -> AppendResult:
        """POST /v2/api/dialing-queues/current/numbers: add numbers; invalid ones are skipped.

        The answer does not name the queue, so for a teammate the queue is read back (one
        small read) to prove the numbers landed on that teammate's queue.
        """
        entries = [_new_number_body(n) for n in numbers]
        body = {"numbers": entries, **self._target(user_id)}
        data = _mapping(self._data(self._request("POST", NUMBERS_PATH, body=body)), "result")
        added = tuple(parse_queue_number(item) for item in data.get("added") or [])
        skipped = tuple(
            SkippedNumber(number=_opt_str(item, "number") or "", reason=_opt_str(item, "reason"))
            for item in data.get("skipped") or []
            if isinstance(item, Mapping)
        )
        self._verify_target(user_id)
        return AppendResult(added=added, skipped=skipped)

    def clear_numbers(
        self,
        *,
        user_id: str | None,
        number: str | None = None,
        position: int | None = None,
        unassigned: bool = False,
    ) -> int:
        """DELETE /v2/api/dialing-queues/current/numbers; returns how many entries went.

        Filters: ``number``, ``position``, both, or ``unassigned`` alone. Allo refuses no filter
        and ``unassigned`` with another (400). Read back like append to prove the target.
        """
        params: dict[str, Any] = self._target(user_id)
        if number is not None:
            params["number"] = number
        if position is not None:
            params["position"] = position
        if unassigned:
            params["unassigned"] = "true"
        data = _mapping(self._data(self._request("DELETE", NUMBERS_PATH, params=params)), "result")
        removed = data.get("removed")
        if not isinstance(removed, int):
            raise AlloBadResponseError(message="Allo did not say how many numbers it removed.")
        self._verify_target(user_id)
        return removed

    def _verify_target(self, user_id: str | None) -> None:
        if user_id is not None:
            self.get_queue_page(user_id=user_id, page=1, size=1)

    def reassign_queue(
        self, *, queue_id: str, user_id: str | None = None, email: str | None = None
    ) -> Queue:
        """PATCH /v2/api/dialing-queues/{queue_id}/assignee: move a queue to another teammate."""
        if user_id is None and email is None:
            raise ValueError("Name the new assignee by user_id or email.")
        body: dict[str, str] = {}
        if user_id is not None:
            body["user_id"] = user_id
        if email is not None:
            body["email"] = email
        path = f"/v2/api/dialing-queues/{httpx.URL(queue_id).raw_path.decode()}/assignee"
        queue = parse_queue(self._data(self._request("PATCH", path, body=body)))
        if queue.id != queue_id:
            raise AlloBadResponseError(message="Allo returned a different queue than asked for.")
        return self._check_assignee(queue, user_id)


def _new_number_body(entry: NewNumber | str) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"number": entry}
    body: dict[str, Any] = {"number": entry.number}
    for key in ("name", "last_name", "company", "website", "job_title"):
        value = getattr(entry, key)
        if value is not None:
            body[key] = value
    if entry.emails:
        body["emails"] = list(entry.emails)
    if entry.addresses:
        body["addresses"] = list(entry.addresses)
    return body


# Construction -----------------------------------------------------------------------------------


def authorization_header(api_key: str) -> str:
    """``Api-Key <key>``, without doubling a prefix that older setups already wrote."""
    key = api_key.strip()
    return key if key.lower().startswith("api-key ") else f"Api-Key {key}"


@sensitive_variables("api_key")
def build_client(
    *,
    base_url: str,
    api_key: str,
    transport: httpx.BaseTransport | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 8.0,
) -> AlloClient:
    """Build a client; tests pass ``transport`` (the sandbox's) instead of the network."""
    if not api_key or not api_key.strip():
        raise AlloConfigurationError(
            message="No Allo API key is configured (set ALLO_API_KEY).", code="NO_API_KEY"
        )
    if not base_url.startswith(("http://", "https://")):
        raise AlloConfigurationError(
            message="ALLO_API_BASE_URL must start with http:// or https://.", code="BAD_BASE_URL"
        )
    http = httpx.Client(
        base_url=base_url.rstrip("/"),
        headers={
            "Authorization": authorization_header(api_key),
            "Accept": "application/json",
            "User-Agent": "allo-dialer-dashboard/0.1",
        },
        timeout=httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        ),
        transport=transport,
        follow_redirects=False,
    )
    return AlloClient(http)


_client: AlloClient | None = None
_client_lock = threading.Lock()


def get_client() -> AlloClient:
    """The process-wide client built from settings (ALLO_API_BASE_URL, ALLO_API_KEY)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = build_client(
                base_url=settings.ALLO_API_BASE_URL,
                api_key=settings.ALLO_API_KEY,
                connect_timeout=settings.ALLO_CONNECT_TIMEOUT,
                read_timeout=settings.ALLO_READ_TIMEOUT,
            )
        return _client


def install_client(client: AlloClient | None) -> AlloClient | None:
    """Replace the process-wide client (tests hand in one over the sandbox); returns the old."""
    global _client
    with _client_lock:
        previous, _client = _client, client
        return previous
