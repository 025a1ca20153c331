"""The one door to Allo: a configured httpx client, responses parsed into dataclasses.

Everything that leaves for Allo goes through :class:`AlloClient`; every failure comes back as an
:class:`~dashboard.allo.errors.AlloError`. The client never trusts that a teammate was targeted:
any queue read or written for teammate T must come back with ``assignee_id == T``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import math
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from dashboard.allo.budget import READ, RateBudget, kind_of
from dashboard.allo.circuit import CircuitBreaker, CircuitState
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
from dashboard.allo.resilience import Deadline, Policy, Timing, current_deadline, deadline
from dashboard.allo.store import SharedStore, shared_store
from dashboard.allo.types import (
    MAX_QUEUE_NUMBERS,
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
# An attempt is not started with less time than this left before the deadline.
MIN_ATTEMPT_SECONDS: Final = 0.05


# Reading a queue stops after this many pages whatever Allo's ``total_pages`` says: a queue
# holds at most MAX_QUEUE_NUMBERS numbers, plus one page for numbers added during the read.
MAX_QUEUE_PAGES: Final = math.ceil(MAX_QUEUE_NUMBERS / MAX_PAGE_SIZE) + 1
# The names Allo has documented for "the teammate's id" (allo-api.md, "Targeting a teammate").
TEAMMATE_ID_FIELDS: Final = ("user_id", "user_pid")
# How long the one name that a strict Allo accepted is remembered before both are tried again.
TEAMMATE_FIELD_MEMORY: Final = 3600


class _Unset(enum.Enum):
    """A setting the caller did not pass: it is not sent."""

    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET


def new_request_id() -> str:
    """A fresh ``X-Request-Id``, as the client sends with every request.

    A caller that must know the id before the request leaves (the audit trail) makes one and
    passes it in; Allo echoes it in its errors.
    """
    return f"req_dash_{uuid.uuid4().hex[:20]}"


def _within(configured: float | None, remaining: float) -> float:
    return remaining if configured is None else min(configured, remaining)


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
    if status == 408 or status >= 500:
        # 408: Allo gave up waiting for the request; like a 5xx, Allo may try again later.
        return AlloUnavailableError(**fields)
    # Any other status (a redirect, 405, 422…) is outside Allo's contract.
    return AlloBadResponseError(**fields)


def _path_segment(value: str) -> str | None:
    """``value`` escaped as one path segment (``/``, ``?``, ``#``, ``:`` and ``%`` included),
    or None for an id no path can carry: empty, ``.`` or ``..`` (URLs resolve those)."""
    if value in ("", ".", ".."):
        return None
    return quote(value, safe="")


def _refused_teammate_field(error: AlloValidationError, sent: Sequence[str]) -> str | None:
    """The teammate id field name (of those ``sent``) that Allo refused as unknown, if this 400
    says so with the code UNKNOWN_FIELD (on the error or on a field error naming it). An
    UNKNOWN_FIELD that names no field blames ``user_pid``, the older name, when both were sent.

    Only that code counts: a 400 that merely names ``user_id`` for another reason must not make
    the client resend under the other name alone, which an Allo that ignores that name would
    apply to the key owner's own queue.
    """
    if error.status != 400 or not sent:
        return None
    for field_error in error.field_errors:
        if field_error.code == "UNKNOWN_FIELD" and field_error.field in sent:
            return field_error.field
    if error.code != "UNKNOWN_FIELD":
        return None
    if error.param in sent:
        return error.param
    return "user_pid" if "user_pid" in sent else sent[0]


# The client -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Reply:
    """A 2xx answer's decoded JSON body, and the X-Request-Id it was asked with."""

    body: Any
    request_id: str


class AlloClient:
    """Allo's REST API, v2, as the dashboard uses it. Thread-safe; build one and reuse it.

    Every request goes through one place (``_request``) that keeps the whole dashboard within
    Allo's limits and its patience: the circuit breaker, the rate budget shared by every process,
    one deadline per user action, and retries only where they are safe.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        policy: Policy | None = None,
        timing: Timing | None = None,
        store: SharedStore | None = None,
        scope: str = "default",
    ) -> None:
        self._http = http
        self.policy = policy if policy is not None else Policy()
        self._timing = timing if timing is not None else Timing()
        store = store if store is not None else shared_store
        self._store = store
        self._teammate_field_key = f"allo:{scope}:teammate-field"
        self.budget = RateBudget(
            store=store,
            scope=scope,
            policy=self.policy,
            timing=self._timing,
            look_up=self._reported_limits,
        )
        self.circuit = CircuitBreaker(
            store=store, scope=scope, policy=self.policy, timing=self._timing
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AlloClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the headers: they hold the API key.
        return f"<AlloClient {self._http.base_url}>"

    def circuit_state(self) -> CircuitState:
        """Whether calls to Allo are paused after repeated failures (for the banner)."""
        return self.circuit.state()

    def _reported_limits(self) -> RateLimits | None:
        return self.me().rate_limits

    # Transport ---------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> _Reply:
        """Send one request, within the deadline and the budget, and return the decoded JSON
        body of a 2xx answer with the ``X-Request-Id`` sent. Every attempt carries that id.

        In order: the circuit (open: AlloUnavailableError code CIRCUIT_OPEN, nothing sent), a
        slot of the shared rate budget (none in time: AlloRateLimitedError code
        BUDGET_EXHAUSTED, nothing sent), then the request, its socket timeouts cut to the time
        left. A GET is retried after a failure or a 429 (backing off, with jitter) while
        attempts and time remain; a write only when it surely was not applied: a connection
        that never opened, a request never written, or Allo's 429 (which also pauses every
        process until its Retry-After).

        Raises AlloUnavailableError for network failures, 408 and 5xx (``request_sent`` False
        only when the request surely never reached Allo), AlloBadResponseError for a body that
        is not JSON or a status Allo's contract does not have (3xx, 405, 422…), and the matching
        AlloError subclass for every other error status.
        """
        request_id = request_id or new_request_id()
        kind = kind_of(method)
        until = current_deadline() or Deadline(
            self._timing.monotonic() + self.policy.action_deadline, self._timing.monotonic
        )
        # Settle the limits first: learning them (once an hour, in one process) is a request of
        # its own, given at most half the time left.
        with deadline(max(until.remaining(), 0.0) / 2, clock=until.clock):
            self.budget.limits()
        attempt = 0
        while True:
            attempt += 1
            try:
                permit = self.circuit.before_call()
            except AlloError as exc:
                exc.request_id = request_id
                raise
            try:
                self.budget.acquire(kind, until)
            except AlloError as exc:
                self.circuit.abandoned(permit)
                exc.request_id = request_id
                raise
            except BaseException:
                # Anything else (the store, an interrupt): the permit must not be kept.
                self.circuit.abandoned(permit)
                raise
            try:
                answer = self._send(method, path, params, body, request_id, until)
            except AlloRateLimitedError as error:
                # Allo answered and applied nothing; everyone waits out its Retry-After.
                self.circuit.succeeded(permit)
                wait = error.retry_after if error.retry_after is not None else 1.0
                self.budget.pause(kind, wait)
                patience = min(until.remaining(), self.policy.budget_wait)
                if attempt < self.policy.attempts and wait < patience:
                    continue
                raise
            except (AlloUnavailableError, AlloBadResponseError) as error:
                if error.code == "DEADLINE_EXCEEDED":
                    self.circuit.abandoned(permit)
                    raise
                if _answered_out_of_contract(error):
                    # Allo (or something in front of it) did answer: asking again would get the
                    # same answer, and the circuit is for an Allo that does not answer.
                    self.circuit.succeeded(permit)
                    raise
                self.circuit.failed(permit)
                unsent = isinstance(error, AlloUnavailableError) and not error.request_sent
                if (kind == READ or unsent) and attempt < self.policy.attempts:
                    pause = self.policy.backoff(attempt, self._timing)
                    if pause < until.remaining() - MIN_ATTEMPT_SECONDS:
                        logger.info("Retrying %s %s (attempt %s)", method, path, attempt + 1)
                        self._timing.sleep(pause)
                        continue
                raise
            except AlloError:
                self.circuit.succeeded(permit)
                raise
            except BaseException:
                # Not Allo's doing (a bug, an interrupt): no verdict on Allo, but a trial permit
                # must be given back, or recovery waits for its lock to time out.
                self.circuit.abandoned(permit)
                raise
            self.circuit.succeeded(permit)
            return _Reply(answer, request_id)

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        request_id: str,
        until: Deadline,
    ) -> Any:
        """One attempt: send, then turn the answer into JSON or an AlloError."""
        remaining = until.remaining()
        if remaining < MIN_ATTEMPT_SECONDS:
            raise AlloUnavailableError(
                message="No time was left to ask Allo.",
                code="DEADLINE_EXCEEDED",
                request_id=request_id,
                request_sent=False,
            )
        configured = self._http.timeout
        headers = {"X-Request-Id": request_id}
        kwargs: dict[str, Any] = {
            "params": params,
            "headers": headers,
            # The socket timeouts, cut to the time left before the deadline.
            "timeout": httpx.Timeout(
                connect=_within(configured.connect, remaining),
                read=_within(configured.read, remaining),
                write=_within(configured.write, remaining),
                pool=_within(configured.pool, remaining),
            ),
        }
        if body is not None:
            kwargs["content"] = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, path, **kwargs)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            # Refused before a byte was written: a request h11 will not write, a URL scheme
            # no transport serves.
            httpx.LocalProtocolError,
            httpx.UnsupportedProtocol,
        ) as exc:
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
        except httpx.RequestError as exc:
            # What is neither (a body that cannot be decoded, too many redirects…) came after
            # the request left: it may have been applied.
            logger.warning("Allo's answer to %s %s failed (%s)", method, path, type(exc).__name__)
            raise AlloUnavailableError(
                message="Allo's answer could not be read.", request_id=request_id
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

    # Naming the teammate ------------------------------------------------------------------------

    def _teammate_fields(self) -> tuple[str, ...]:
        """The teammate id field names to send: both, until a strict Allo refused one."""
        known = self._store.get(self._teammate_field_key)
        return (known,) if known in TEAMMATE_ID_FIELDS else TEAMMATE_ID_FIELDS

    def _for_teammate(
        self,
        method: str,
        path: str,
        *,
        user_id: str | None,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> _Reply:
        """``_request``, naming the teammate ``user_id`` (None: the key owner) in the query
        (GET, DELETE) or the JSON body (PATCH, POST).

        The id goes under both documented names, ``user_id`` and ``user_pid``. An Allo that
        refuses an unknown field answers 400 to that; then the request is sent once more (same
        X-Request-Id: nothing was applied) under the other name alone, and, if that works, every
        process sends only that name for the next TEAMMATE_FIELD_MEMORY seconds.
        """
        request_id = request_id or new_request_id()
        names = self._teammate_fields() if user_id is not None else ()

        def send(names: Sequence[str]) -> _Reply:
            target = {name: user_id for name in names}
            if method in ("GET", "DELETE"):
                query = {**(params or {}), **target}
                return self._request(method, path, params=query, body=body, request_id=request_id)
            payload = {**(body or {}), **target}
            return self._request(method, path, params=params, body=payload, request_id=request_id)

        try:
            return send(names)
        except AlloValidationError as error:
            refused = _refused_teammate_field(error, names)
            if refused is None:
                raise
            code = error.code
        other = next(name for name in TEAMMATE_ID_FIELDS if name != refused)
        logger.warning(
            "Allo refused the teammate field %s (%s, request_id=%s); trying %s alone.",
            refused,
            code,
            request_id,
            other,
        )
        try:
            reply = send((other,))
        except AlloValidationError as error:
            if len(names) == 1 and _refused_teammate_field(error, (other,)) is not None:
                # Neither name works any more: send both again next time.
                self._store.delete_many([self._teammate_field_key])
            raise
        self._store.set(self._teammate_field_key, other, TEAMMATE_FIELD_MEMORY)
        logger.warning("Allo takes the teammate field %s: only it is sent from now on.", other)
        return reply

    def _misdirected(
        self,
        user_id: str,
        returned_user_id: str | None,
        request_id: str,
        message: str,
    ) -> AlloWrongTeammateError:
        """The error (logged at ERROR, with the request id) for a request that did not act on
        teammate ``user_id``'s queue."""
        logger.error(
            "Allo acted on the wrong queue: meant for %s, it reached %s (request_id=%s). %s",
            user_id,
            returned_user_id or "an unknown queue",
            request_id,
            message,
        )
        return AlloWrongTeammateError(
            message=message,
            code="WRONG_TEAMMATE",
            request_id=request_id,
            expected_user_id=user_id,
            returned_user_id=returned_user_id,
        )

    def _check_assignee(self, queue: Queue, user_id: str | None, request_id: str) -> Queue:
        """``queue`` if it belongs to ``user_id`` (or no teammate was named), else raise
        AlloWrongTeammateError carrying ``request_id``, the request that reached the wrong one."""
        if user_id is not None and queue.assignee_id != user_id:
            raise self._misdirected(
                user_id,
                queue.assignee_id,
                request_id,
                "Allo returned a queue that belongs to someone else: the request did not reach "
                "the intended teammate.",
            )
        return queue

    @staticmethod
    def _data(body: Any) -> Any:
        if not isinstance(body, Mapping) or "data" not in body:
            raise AlloBadResponseError(message="Allo answered without a 'data' member.")
        return body["data"]

    # Key and team -------------------------------------------------------------------------------

    def me(self) -> Me:
        """GET /v2/api/me: who this key is, its scopes and live rate limits."""
        return parse_me(self._data(self._request("GET", "/v2/api/me").body))

    def list_users(self, *, role: str | None = None, status: str | None = None) -> list[Teammate]:
        """GET /v2/api/users: the whole team (Allo's default hides BLOCKED users)."""
        params = {k: v for k, v in {"role": role, "status": status}.items() if v is not None}
        data = self._data(self._request("GET", "/v2/api/users", params=params or None).body)
        if not isinstance(data, list):
            raise AlloBadResponseError(message="Allo sent a user list that is not a list.")
        return [parse_teammate(item) for item in data]

    def get_user(self, user_id: str) -> Teammate:
        """GET /v2/api/users/{id}. Raises AlloNotFoundError (code USER_NOT_FOUND) for an unknown
        id, and without asking Allo for an id no URL path can carry (empty, ``.``, ``..``)."""
        segment = _path_segment(user_id)
        if segment is None:
            raise AlloNotFoundError(message="No user has this id.", code="USER_NOT_FOUND")
        data = self._data(self._request("GET", f"/v2/api/users/{segment}").body)
        teammate = parse_teammate(data)
        if teammate.id != user_id:
            raise AlloBadResponseError(message="Allo returned a different user than asked for.")
        return teammate

    # Queues --------------------------------------------------------------------------------------

    def get_queue_page(self, *, user_id: str | None, page: int = 1, size: int = 20) -> QueuePage:
        """GET /v2/api/dialing-queues/current, one page, in either of Allo's response shapes.

        The legacy shape returns every number at once; the page is cut from it here.
        Raises AlloWrongTeammateError if the queue belongs to someone other than ``user_id``.
        """
        return self._queue_page(user_id, page, size)[0]

    def _queue_page(
        self, user_id: str | None, page: int, size: int, *, blame: str | None = None
    ) -> tuple[QueuePage, Queue | None]:
        """One page, and the whole queue when Allo answered in the legacy shape (which holds
        every number), else None. A wrong teammate's queue raises AlloWrongTeammateError with
        ``blame`` as its request id (a write being verified), else this read's."""
        size = max(1, min(size, MAX_PAGE_SIZE))
        page = max(1, page)
        reply = self._for_teammate(
            "GET", QUEUE_PATH, user_id=user_id, params={"page": page, "size": size}
        )
        blame = blame or reply.request_id
        body = reply.body
        data = self._data(body)
        if data is None or isinstance(data, Mapping):
            queue = self._check_assignee(parse_queue(data), user_id, blame) if data else None
            numbers = queue.numbers if queue else ()
            total = len(numbers)
            start = (page - 1) * size
            pages = -(-total // size)
            cut = QueuePage(
                queue=queue,
                numbers=numbers[start : start + size],
                page=page,
                size=size,
                total_count=total,
                total_pages=pages,
                has_more=page < pages,
            )
            return cut, queue
        if not isinstance(data, list):
            raise AlloBadResponseError(message="Allo sent a queue in a shape it does not document.")
        numbers = tuple(parse_queue_number(item) for item in data)
        raw_queue = body.get("queue")
        queue = None
        if raw_queue is not None:
            queue = self._check_assignee(parse_queue(raw_queue, numbers=()), user_id, blame)
        elif numbers:
            raise AlloBadResponseError(message="Allo sent queue numbers without their queue.")
        pagination = body.get("pagination")
        pagination = pagination if isinstance(pagination, Mapping) else {}
        total = pagination.get("total_count")
        total = total if isinstance(total, int) else len(numbers)
        pages = pagination.get("total_pages")
        pages = pages if isinstance(pages, int) else -(-total // size)
        more = pagination.get("has_more")
        answer = QueuePage(
            queue=queue,
            numbers=tuple(sorted(numbers, key=lambda n: n.position)),
            page=page,
            size=size,
            total_count=total,
            total_pages=pages,
            has_more=more if isinstance(more, bool) else page < pages,
        )
        return answer, None

    def get_queue(self, *, user_id: str | None) -> Queue | None:
        """The teammate's current queue with every number, or None.

        Reads page after page (100 numbers each) until Allo says there is no more, a page comes
        back empty, or MAX_QUEUE_PAGES were read, whatever ``total_pages`` claims. An Allo that
        answers in the legacy shape sends the whole queue at once: that one answer is used. If
        the queue is replaced while its pages are read, the read starts over once.
        Raises AlloWrongTeammateError if the queue belongs to someone other than ``user_id``.
        """
        for _attempt in range(2):
            first, whole = self._queue_page(user_id, 1, MAX_PAGE_SIZE)
            if first.queue is None or whole is not None:
                return whole
            numbers = list(first.numbers)
            replaced = False
            current = first
            while current.has_more and current.page < min(current.total_pages, MAX_QUEUE_PAGES):
                current, whole = self._queue_page(user_id, current.page + 1, MAX_PAGE_SIZE)
                if current.queue is None or current.queue.id != first.queue.id:
                    replaced = True
                    break
                if whole is not None:
                    return whole
                if not current.numbers:
                    break
                numbers.extend(current.numbers)
            if replaced:
                continue
            if current.has_more and current.page >= MAX_QUEUE_PAGES:
                logger.warning(
                    "Allo still claimed more of queue %s after %s pages; read stopped there.",
                    first.queue.id,
                    MAX_QUEUE_PAGES,
                )
            unique = {n.position: n for n in numbers}
            return dataclasses.replace(
                first.queue, numbers=tuple(unique[p] for p in sorted(unique))
            )
        raise AlloBadResponseError(message="The queue kept changing while it was being read.")

    def upsert_queue(
        self,
        *,
        user_id: str | None,
        name: str | _Unset | None = UNSET,
        voicemail_handling: str | _Unset | None = UNSET,
        do_not_disturb: str | _Unset | None = UNSET,
        request_id: str | None = None,
    ) -> Queue:
        """PATCH /v2/api/dialing-queues/current: change only the settings passed.

        Creates the queue if the teammate has none. A setting not passed, or passed as None,
        is not sent: Allo's contract does not say what a null does, so a null is never sent
        (None cannot clear a setting). ``request_id`` is the X-Request-Id to send (a new one
        when None). Raises AlloWrongTeammateError if Allo changed someone else's queue.
        """
        changes = {
            key: value
            for key, value in {
                "name": name,
                "voicemail_handling": voicemail_handling,
                "do_not_disturb": do_not_disturb,
            }.items()
            if value is not UNSET and value is not None
        }
        reply = self._for_teammate(
            "PATCH", QUEUE_PATH, user_id=user_id, body=changes, request_id=request_id
        )
        return self._check_assignee(parse_queue(self._data(reply.body)), user_id, reply.request_id)

    def reset_queue(
        self, *, user_id: str | None, name: str | None = None, request_id: str | None = None
    ) -> Queue:
        """POST /v2/api/dialing-queues/current: start a fresh, empty queue (destructive).

        Raises AlloWrongTeammateError if Allo reset someone else's queue.
        """
        body: dict[str, Any] = {} if name is None else {"name": name}
        reply = self._for_teammate(
            "POST", QUEUE_PATH, user_id=user_id, body=body, request_id=request_id
        )
        return self._check_assignee(parse_queue(self._data(reply.body)), user_id, reply.request_id)

    def append_numbers(
        self,
        *,
        user_id: str | None,
        numbers: Sequence[NewNumber | str],
        request_id: str | None = None,
    ) -> AppendResult:
        """POST /v2/api/dialing-queues/current/numbers: add numbers; invalid ones are skipped.

        The answer does not name the queue, so for a teammate the queue is read back (one
        read, two when the numbers added span two pages of 100) to prove the numbers landed on
        that teammate's queue, at the positions Allo reported. Raises AlloWrongTeammateError
        (with the POST's request id) when they did not: the numbers went to another queue.
        """
        entries = [_new_number_body(n) for n in numbers]
        reply = self._for_teammate(
            "POST", NUMBERS_PATH, user_id=user_id, body={"numbers": entries}, request_id=request_id
        )
        data = _mapping(self._data(reply.body), "result")
        added = tuple(parse_queue_number(item) for item in data.get("added") or [])
        skipped = tuple(
            SkippedNumber(number=_opt_str(item, "number") or "", reason=_opt_str(item, "reason"))
            for item in data.get("skipped") or []
            if isinstance(item, Mapping)
        )
        if user_id is not None:
            self._verify_append(user_id, added, reply.request_id)
        return AppendResult(added=added, skipped=skipped)

    def _verify_append(self, user_id: str, added: Sequence[QueueNumber], request_id: str) -> None:
        """Read back the pages holding the first and last numbers added: each number must be
        on ``user_id``'s queue at the position Allo reported."""
        if not added:
            self._queue_page(user_id, 1, 1, blame=request_id)
            return
        expected = {n.position: n.number_to for n in added}
        pages = sorted({min(expected) // MAX_PAGE_SIZE + 1, max(expected) // MAX_PAGE_SIZE + 1})
        for page in pages:
            answer, whole = self._queue_page(user_id, page, MAX_PAGE_SIZE, blame=request_id)
            if answer.queue is None:
                raise self._misdirected(
                    user_id,
                    None,
                    request_id,
                    "Allo said it added the numbers, but the teammate has no queue: they went "
                    "to another queue (probably the key owner's).",
                )
            # The legacy shape sent every number: one read checks them all.
            held = whole.numbers if whole is not None else answer.numbers
            lowest = 0 if whole is not None else (page - 1) * MAX_PAGE_SIZE
            highest = math.inf if whole is not None else page * MAX_PAGE_SIZE
            found = {n.position: n.number_to for n in held}
            for position, number_to in sorted(expected.items()):
                if lowest <= position < highest and found.get(position) != number_to:
                    raise self._misdirected(
                        user_id,
                        None,
                        request_id,
                        f"Allo said it added {number_to} at position {position}, but the "
                        "teammate's queue does not hold it there: the numbers went to another "
                        "queue (probably the key owner's).",
                    )
            if whole is not None:
                return

    def clear_numbers(
        self,
        *,
        user_id: str | None,
        number: str | None = None,
        position: int | None = None,
        unassigned: bool = False,
        request_id: str | None = None,
    ) -> int:
        """DELETE /v2/api/dialing-queues/current/numbers; returns how many entries went.

        Filters: ``number``, ``position``, both, or ``unassigned`` alone. Allo refuses no filter
        and ``unassigned`` with another (400). For a teammate the queue is read back: a queue of
        someone else's, or no queue at all after entries were removed, raises
        AlloWrongTeammateError (with the DELETE's request id).
        """
        params: dict[str, Any] = {}
        if number is not None:
            params["number"] = number
        if position is not None:
            params["position"] = position
        if unassigned:
            params["unassigned"] = "true"
        reply = self._for_teammate(
            "DELETE", NUMBERS_PATH, user_id=user_id, params=params, request_id=request_id
        )
        data = _mapping(self._data(reply.body), "result")
        removed = data.get("removed")
        if not isinstance(removed, int) or isinstance(removed, bool):
            raise AlloBadResponseError(message="Allo did not say how many numbers it removed.")
        if user_id is not None:
            answer, _whole = self._queue_page(user_id, 1, 1, blame=reply.request_id)
            if answer.queue is None and removed:
                raise self._misdirected(
                    user_id,
                    None,
                    reply.request_id,
                    f"Allo said it removed {removed} numbers, but the teammate has no queue: "
                    "they were removed from another queue (probably the key owner's).",
                )
        return removed

    def reassign_queue(
        self,
        *,
        queue_id: str,
        user_id: str | None = None,
        email: str | None = None,
        request_id: str | None = None,
    ) -> Queue:
        """PATCH /v2/api/dialing-queues/{queue_id}/assignee: move a queue to another teammate.

        Raises AlloNotFoundError (code DIALING_QUEUE_NOT_FOUND) without asking Allo for an id
        no URL path can carry (empty, ``.``, ``..``), and AlloWrongTeammateError if the queue
        did not go to ``user_id``.
        """
        if user_id is None and email is None:
            raise ValueError("Name the new assignee by user_id or email.")
        segment = _path_segment(queue_id)
        if segment is None:
            raise AlloNotFoundError(message="No queue has this id.", code="DIALING_QUEUE_NOT_FOUND")
        body = {} if email is None else {"email": email}
        reply = self._for_teammate(
            "PATCH",
            f"/v2/api/dialing-queues/{segment}/assignee",
            user_id=user_id,
            body=body,
            request_id=request_id,
        )
        queue = parse_queue(self._data(reply.body))
        if queue.id != queue_id:
            raise AlloBadResponseError(message="Allo returned a different queue than asked for.")
        return self._check_assignee(queue, user_id, reply.request_id)


def _answered_out_of_contract(error: AlloError) -> bool:
    """A 3xx or 4xx that Allo's contract does not have: an answer, just not one we know."""
    return (
        isinstance(error, AlloBadResponseError)
        and error.status is not None
        and 300 <= error.status < 500
    )


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
    policy: Policy | None = None,
    timing: Timing | None = None,
    store: SharedStore | None = None,
) -> AlloClient:
    """Build a client; tests pass ``transport`` (the sandbox's) instead of the network.

    ``policy`` defaults to the ``ALLO_*`` settings, ``timing`` to the real clock (tests pass
    ``Timing.simulated(fake_clock)``), ``store`` to the default cache. Clients of the same key
    and base URL share one budget and one circuit through the store, in every process.
    """
    if not api_key or not api_key.strip():
        raise AlloConfigurationError(
            message="No Allo API key is configured (set ALLO_API_KEY).", code="NO_API_KEY"
        )
    if not api_key.strip().isascii() or not api_key.strip().isprintable():
        # httpx would refuse the header with an error that quotes it, key included.
        raise AlloConfigurationError(
            message=(
                "The Allo API key (ALLO_API_KEY) holds a character an HTTP header cannot carry "
                "(a curly quote, an accent, a line break…): copy it again from Allo."
            ),
            code="BAD_API_KEY",
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
    return AlloClient(
        http,
        policy=policy if policy is not None else Policy.from_settings(),
        timing=timing,
        store=store,
        scope=_scope(base_url, api_key),
    )


@sensitive_variables("api_key")
def _scope(base_url: str, api_key: str) -> str:
    """A name for this key at this URL in the shared store: a digest, never the key itself."""
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\n{api_key.strip()}".encode())
    return digest.hexdigest()[:16]


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


def circuit_state() -> CircuitState:
    """Whether the dashboard is holding off Allo after repeated failures (for the banner).

    Reads the shared store only; never calls Allo. A dashboard without an API key reports a
    closed circuit (its configuration error is shown elsewhere).
    """
    try:
        client = get_client()
    except AlloConfigurationError:
        return CircuitState(open=False)
    return client.circuit_state()
