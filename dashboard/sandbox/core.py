"""The sandbox's core: a plain ``request -> response`` object that answers like Allo.

No HTTP happens here. ``server.SandboxServer`` serves a :class:`Sandbox` on a socket, and
``transport.sandbox_transport`` hands it to ``httpx.MockTransport``; both turn their requests into
:class:`SandboxRequest` and perform what :class:`SandboxResponse` asks (a delay, a hang). The
core never sleeps: its clock is injected, so that rate-limit windows can be crossed in tests by
moving a fake clock.

Every ``/v2/api/`` request goes through, in order: the fault switch (a fault that replaces the
answer is served before anything else, and spends no rate budget); authentication (401, not
rate limited: there is no known key to charge); the key's rate budget (429); routing (404, 405);
scopes (403); the content type of writes (415); the JSON body (400); then the endpoint itself.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, overload

from dashboard.allo.types import SCOPE_DIALING_QUEUE, SCOPE_USERS_READ

from . import api, control
from .dialer import dial_step
from .errors import DEFAULT_CODE_BY_STATUS, ApiError, FieldError
from .faults import FaultSpec, FaultSwitch
from .ratelimit import READ, RateLimiter, Verdict, kind_of
from .seed import build_world
from .state import Queue, Style, World

logger = logging.getLogger("dashboard.sandbox")

DEFAULT_API_KEY = "ak_live_sandbox_0123456789abcdef"
ALL_SCOPES: tuple[str, ...] = (SCOPE_USERS_READ, SCOPE_DIALING_QUEUE)
TEAMMATE_FIELDS = ("both", "user_pid", "user_id", "none")
# The methods whose teammate field mode ``teammate_field_by_method`` may override.
TEAMMATE_METHODS = ("GET", "PATCH", "POST", "DELETE")
GET_SHAPES = ("paginated", "legacy")
# How a missing scope is answered: the v2 envelope, or the v1 ``{"code", "details"}`` shape
# (allo-api.md: "may come in either shape").
SCOPE_ERROR_SHAPES = ("v2", "v1")
# Allo's examples write dates with ``Z`` and without any offset.
DATE_STYLES = ("z", "naive")
API_PREFIX = "/v2/api/"
CONTROL_PREFIX = "/_sandbox/"
LOG_SIZE = 500
# A body that is not JSON, for the ``malformed`` fault: a reply cut short mid-stream.
MALFORMED_BODY = b'{"data": [{"number_to": "+3361234'


@dataclass
class SandboxRequest:
    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    # Lower-cased names.
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class SandboxResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    # Adapters hold the connection open without answering until ``release`` is set (or they
    # give up), and sleep ``delay`` seconds before answering.
    hang: bool = False
    delay: float = 0.0
    release: threading.Event | None = None

    def json(self) -> Any:
        return json.loads(self.body)


def _first_values(query: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in query.items() if v}


def _flat_query(query: dict[str, list[str]]) -> dict[str, str | list[str]]:
    return {k: v[0] if len(v) == 1 else list(v) for k, v in query.items()}


def _quiet_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


class Traffic:
    """What the API was asked and answered: counts per (method, path, status), and a log."""

    def __init__(self, size: int = LOG_SIZE) -> None:
        self.counts: dict[tuple[str, str, int | None], int] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=size)
        # Requests recorded since the last clear (the log keeps only the last ``size``), and
        # the condition a test waits on for a request served by another thread.
        self.seen = 0
        self._recorded = threading.Condition()

    def record(
        self, req: SandboxRequest, status: int | None, request_id: str, fault: str | None
    ) -> None:
        key = (req.method.upper(), req.path, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        headers = {k: v for k, v in req.headers.items() if k != "authorization"}
        self.log.append(
            {
                "method": req.method.upper(),
                "path": req.path,
                "query": _flat_query(req.query),
                "body": _quiet_json(req.body),
                "status": status,
                "request_id": request_id,
                "fault": fault,
                "headers": headers,
            }
        )
        with self._recorded:
            self.seen += 1
            self._recorded.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._recorded:
            return self._recorded.wait_for(lambda: self.seen >= count, timeout)

    def to_json(self) -> dict[str, Any]:
        rows = [
            {"method": m, "path": p, "status": s, "count": n}
            for (m, p, s), n in self.counts.items()
        ]
        return {"requests": rows, "log": list(self.log)}

    def clear(self) -> None:
        self.counts.clear()
        self.log.clear()
        with self._recorded:
            self.seen = 0


class _Choice:
    """A setting that must be one of ``allowed`` (ValueError otherwise), stored as ``_<name>``."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Choice: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> str: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> str | _Choice:
        if instance is None:
            return self
        return instance.__dict__[f"_{self.name}"]

    def __set__(self, instance: object, value: str) -> None:
        instance.__dict__[f"_{self.name}"] = _one_of(self.name, value, self.allowed)


class Sandbox:
    """A stand-in for Allo's API: one key, one seeded team, switchable between API versions."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        scopes: Iterable[str] = ALL_SCOPES,
        teammate_field: str = "both",
        get_shape: str = "paginated",
        seed: int = 7,
        clock: Callable[[], float] = time.time,
        read_limit: int = 20,
        write_limit: int = 5,
        scope_error_shape: str = "v2",
        date_style: str = "z",
        teammate_field_by_method: Mapping[str, str] | None = None,
        strict_fields: bool = False,
    ) -> None:
        self.api_key = api_key
        self.seed = seed
        self.clock = clock
        self.read_limit = read_limit
        self.write_limit = write_limit
        self.scopes = scopes
        self.teammate_field = teammate_field
        self.get_shape = get_shape
        self.scope_error_shape = scope_error_shape
        self.date_style = date_style
        self.teammate_field_by_method = teammate_field_by_method
        # Refuse (400 UNKNOWN_FIELD) a teammate field name the mode in force does not know,
        # instead of ignoring it: an Allo whose request parser forbids unknown fields.
        self.strict_fields = strict_fields
        self.lock = threading.RLock()
        # Signalled after every dial step, so that a test can wait for the dialing thread.
        self._dialed = threading.Condition()
        self._dial_count = 0
        self.limiter = RateLimiter(clock)
        self.faults = FaultSwitch()
        self.traffic = Traffic()
        self.world: World
        self.reset()

    # --- settings a test may flip at runtime -------------------------------------------------

    teammate_field = _Choice(TEAMMATE_FIELDS)
    get_shape = _Choice(GET_SHAPES)
    scope_error_shape = _Choice(SCOPE_ERROR_SHAPES)
    date_style = _Choice(DATE_STYLES)

    @property
    def teammate_field_by_method(self) -> dict[str, str]:
        """Per-method overrides of ``teammate_field``, e.g. ``{"POST": "none"}``: an Allo that
        honours the teammate on reads but silently writes to the key owner's queue."""
        return dict(self._teammate_field_by_method)

    @teammate_field_by_method.setter
    def teammate_field_by_method(self, value: Mapping[str, str] | None) -> None:
        overrides: dict[str, str] = {}
        for method, mode in (value or {}).items():
            name = str(method).upper()
            if name not in TEAMMATE_METHODS:
                raise ValueError(
                    f"teammate_field_by_method keys must be among {', '.join(TEAMMATE_METHODS)}, "
                    f"not {method!r}."
                )
            overrides[name] = _one_of(f"teammate_field_by_method[{name}]", mode, TEAMMATE_FIELDS)
        self._teammate_field_by_method = overrides

    def teammate_field_for(self, method: str) -> str:
        """The teammate field mode a request with this method is read with."""
        return self._teammate_field_by_method.get(method.upper(), self.teammate_field)

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._scopes

    @scopes.setter
    def scopes(self, value: Iterable[str] | str) -> None:
        if isinstance(value, str):
            value = value.split(",")
        self._scopes = tuple(s.strip() for s in value if s.strip())

    @property
    def style(self) -> Style:
        return Style(naive_dates=self.date_style == "naive", call_status=self.get_shape != "legacy")

    # --- the seeded world, for tests and the command -----------------------------------------

    @property
    def users(self) -> list[dict[str, Any]]:
        """Every member of the key's team, blocked ones included, in seed order, as the API
        writes them (``{"id", "name", "email", "role", "status", "image_url"}``)."""
        with self.lock:
            return [u.to_json() for u in self.world.users]

    @property
    def owner_id(self) -> str:
        """The key owner's id: requests that name no teammate act on this user's queue."""
        return self.world.owner_id

    @property
    def owner(self) -> dict[str, Any]:
        return self.world.owner.to_json()

    @property
    def outsider_id(self) -> str:
        """A user of another team: real, but not to be found through this key."""
        return self.world.outsiders[0].id

    def user_named(self, name: str) -> dict[str, Any]:
        """A teammate by full name, e.g. ``sandbox.user_named("Zoé O'Connor")["id"]``."""
        for user in self.world.users:
            if user.name == name:
                return user.to_json()
        raise KeyError(name)

    def current_queue(self, user_id: str) -> Queue | None:
        """The live queue object (not a copy): tests may change it to set up a case."""
        return self.world.current_queue(user_id)

    def queue_of(self, user_id: str) -> dict[str, Any] | None:
        """The user's current queue as ``GET /_sandbox/queues/<id>`` shows it (or None)."""
        with self.lock:
            queue = self.world.current_queue(user_id)
            return control.snapshot(queue) if queue else None

    # --- life cycle -------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded world; stats, faults and rate windows cleared. Settings stay."""
        with self.lock:
            self.world = build_world(self.seed, self.clock(), self.clock)
            self._dial_rng = random.Random(f"allo-sandbox-dial-{self.seed}")
            self.limiter.clear()
            self.faults.clear()
            self.traffic.clear()

    def dial_step(self) -> None:
        """Every rep who is dialing ends the call in progress and dials their next number."""
        with self.lock:
            dial_step(self.world, self._dial_rng, self.clock())
        with self._dialed:
            self._dial_count += 1
            self._dialed.notify_all()

    @property
    def dials(self) -> int:
        """How many dial steps have run since the sandbox was made."""
        with self._dialed:
            return self._dial_count

    def wait_for_dials(self, count: int, timeout: float) -> bool:
        """Block until ``dials`` reaches ``count`` (True) or ``timeout`` seconds pass (False)."""
        with self._dialed:
            return self._dialed.wait_for(lambda: self._dial_count >= count, timeout)

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Block until the API has recorded ``count`` requests since the stats were last
        cleared (True) or ``timeout`` seconds pass (False). A hanging request is recorded when
        it starts to hang."""
        return self.traffic.wait_for(count, timeout)

    def set_faults(self, spec: FaultSpec) -> None:
        with self.lock:
            self.faults.set(spec)

    def stats(self) -> dict[str, Any]:
        """What ``GET /_sandbox/stats`` answers: ``{"requests": [...], "log": [...]}``."""
        with self.lock:
            return self.traffic.to_json()

    def clear_stats(self) -> None:
        with self.lock:
            self.traffic.clear()

    # --- requests ----------------------------------------------------------------------------

    def handle(self, req: SandboxRequest) -> SandboxResponse:
        with self.lock:
            request_id = req.headers.get("x-request-id") or f"req_{uuid.uuid4().hex[:12]}"
            is_control = req.path.startswith(CONTROL_PREFIX) or req.path == CONTROL_PREFIX[:-1]
            try:
                if is_control:
                    return self._control(req, request_id)
                return self._api(req, request_id)
            except Exception:
                # A last resort: endpoint failures are answered by ``_serve``, which knows the
                # request's budget. Control answers are neither rate limited nor recorded.
                logger.exception("The Allo sandbox failed on %s %s", req.method, req.path)
                if is_control:
                    return self._error(_internal_error(), request_id)
                method = req.method.upper()
                response = self._error(_internal_error(), request_id, self._budget(method))
                self.traffic.record(req, response.status, request_id, None)
                return response

    def _api(self, req: SandboxRequest, request_id: str) -> SandboxResponse:
        method = req.method.upper()
        fault = self.faults.take(method) if req.path.startswith(API_PREFIX) else None
        label: str | None = None
        if fault is not None and fault.replaces_answer and not fault.apply_then_fail:
            response = self._fault_answer(fault, method, request_id)
            label = _fault_label(fault)
        else:
            response = self._serve(req, method, request_id)
            if fault is not None and fault.apply_then_fail and 200 <= response.status < 300:
                response = self._fault_answer(fault, method, request_id)
                label = "apply_then_fail"
            elif fault is not None and fault.latency_ms:
                label = "latency"
        if fault is not None and fault.latency_ms:
            response.delay = fault.latency_ms / 1000
        self.traffic.record(req, None if response.hang else response.status, request_id, label)
        return response

    def _serve(self, req: SandboxRequest, method: str, request_id: str) -> SandboxResponse:
        kind = kind_of(method)
        limit = self.read_limit if kind == READ else self.write_limit
        refusal = self._authenticate(req.headers)
        if refusal is not None:
            # Nobody to charge: a 401 spends no budget and shows the budget of a fresh window.
            return self._error(refusal, request_id, self.limiter.peek("", kind, limit))
        verdict = self.limiter.hit(self.api_key, kind, limit)
        if not verdict.allowed:
            return self._error(_rate_limited(verdict, kind), request_id, verdict)
        try:
            route, match, allowed = api.resolve(api.ROUTES, method, req.path)
            if route is None:
                raise _no_route(req.path, allowed)
            if route.scope is not None and route.scope not in self.scopes:
                err = ApiError(
                    403,
                    "API_KEY_INSUFFICIENT_SCOPE",
                    f"This API key lacks the {route.scope} scope.",
                    suggestion=f"Create a key with the {route.scope} scope.",
                )
                if self.scope_error_shape == "v1":
                    return self._respond(403, err.legacy_envelope(), request_id, verdict)
                raise err
            data = self._read_body(req, method)
            body = data if isinstance(data, dict) else {}
            if data is not None and not isinstance(data, dict):
                raise ApiError(400, "VALIDATION_ERROR", "The body must be a JSON object.")
            call = api.Call(method, req.path, _first_values(req.query), body, match, data)
            status, payload = route.handler(self, call)
        except ApiError as err:
            return self._error(err, request_id, verdict)
        except Exception:
            # A bug, or a world a test left inconsistent: Allo's 500, which like every answer
            # carries the budget and is counted and logged.
            logger.exception("The Allo sandbox failed on %s %s", method, req.path)
            return self._error(_internal_error(), request_id, verdict)
        return self._respond(status, payload, request_id, verdict)

    def _control(self, req: SandboxRequest, request_id: str) -> SandboxResponse:
        refusal = self._authenticate(req.headers)
        if refusal is not None:
            return self._error(refusal, request_id)
        method = req.method.upper()
        try:
            route, match, allowed = api.resolve(control.ROUTES, method, req.path)
            if route is None:
                raise _no_route(req.path, allowed)
            data = _quiet_json(req.body)
            if req.body and data is None and req.body.strip() != b"null":
                raise ApiError(400, "VALIDATION_ERROR", "The body is not valid JSON.")
            body = data if isinstance(data, dict) else {}
            call = api.Call(method, req.path, _first_values(req.query), body, match, data)
            status, payload = route.handler(self, call)
        except ApiError as err:
            return self._error(err, request_id)
        return self._respond(status, payload, request_id)

    def _authenticate(self, headers: dict[str, str]) -> ApiError | None:
        raw = headers.get("authorization", "").strip()
        if not raw:
            return ApiError(
                401,
                "UNAUTHORIZED",
                "No API key: send the header Authorization: Api-Key <key>.",
            )
        scheme, _, rest = raw.partition(" ")
        # Older pages show the raw key without "Api-Key ": both are accepted.
        key = rest.strip() if scheme.lower() == "api-key" and rest.strip() else raw
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return ApiError(401, "API_KEY_INVALID", "This API key is not valid.")
        return None

    def _read_body(self, req: SandboxRequest, method: str) -> Any:
        """The parsed JSON body of a write (None if there is none); GET bodies are ignored."""
        if kind_of(method) == READ or not req.body.strip():
            return None
        media = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Send the body as JSON, with Content-Type: application/json.",
            )
        try:
            return json.loads(req.body)
        except ValueError:
            raise ApiError(400, "VALIDATION_ERROR", "The body is not valid JSON.") from None

    def _budget(self, method: str) -> Verdict:
        """The key's budget for this method as it stands, spending nothing."""
        kind = kind_of(method)
        return self.limiter.peek(
            self.api_key, kind, self.read_limit if kind == READ else self.write_limit
        )

    def _fault_answer(self, fault: FaultSpec, method: str, request_id: str) -> SandboxResponse:
        kind = kind_of(method)
        verdict = self._budget(method)
        if fault.hang:
            return SandboxResponse(
                504, verdict.headers(), b"", hang=True, release=self.faults.release
            )
        if fault.malformed:
            headers = {"Content-Type": "application/json", **verdict.headers()}
            return SandboxResponse(fault.status or 200, headers, MALFORMED_BODY)
        status = fault.status or 500
        code = fault.code or DEFAULT_CODE_BY_STATUS.get(status, "ERROR")
        if status == 429:
            verdict = Verdict(False, verdict.limit, 0, verdict.reset, verdict.retry_after)
            err = _rate_limited(verdict, kind, code=code)
        else:
            err = ApiError(status, code, f"The sandbox was told to answer {status}.")
        message = fault.message or err.message
        if fault.param is not None:
            # Like the sandbox's own 400s: ``param`` names the input, ``errors`` lists it.
            err = replace(
                err,
                message=message,
                param=fault.param,
                errors=[FieldError(fault.param, code, message)],
            )
        elif fault.message is not None:
            err = replace(err, message=message)
        return self._error(err, request_id, verdict)

    def _error(
        self, err: ApiError, request_id: str, verdict: Verdict | None = None
    ) -> SandboxResponse:
        response = self._respond(err.status, err.envelope(request_id), request_id, verdict)
        response.headers.update(err.headers)
        return response

    def _respond(
        self, status: int, payload: Any, request_id: str, verdict: Verdict | None = None
    ) -> SandboxResponse:
        headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
        if verdict is not None:
            headers.update(verdict.headers())
        return SandboxResponse(status, headers, _encode(payload))


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def _internal_error() -> ApiError:
    return ApiError(500, "INTERNAL_SERVER_ERROR", "The sandbox failed; see its log.")


def _fault_label(fault: FaultSpec) -> str:
    if fault.hang:
        return "hang"
    if fault.malformed:
        return "malformed"
    return "status"


def _rate_limited(verdict: Verdict, kind: str, code: str = "RATE_LIMIT_EXCEEDED") -> ApiError:
    return ApiError(
        429,
        code,
        f"Too many {kind} requests: at most {verdict.limit} per second for this key.",
        retryable=True,
        retry_after_seconds=verdict.retry_after,
        suggestion="Wait retry_after_seconds, then retry.",
        headers={"Retry-After": str(verdict.retry_after)},
    )


def _no_route(path: str, allowed: list[str]) -> ApiError:
    if allowed:
        return ApiError(
            405,
            "METHOD_NOT_ALLOWED",
            f"{path} answers {', '.join(allowed)} only.",
            headers={"Allow": ", ".join(allowed)},
        )
    return ApiError(404, "NOT_FOUND", f"No endpoint at {path}.")
