"""The ``/v2/api/`` endpoints, as allo-api.md describes them.

Each handler takes the sandbox and a parsed :class:`Call`, and returns ``(status, payload)`` or
raises :class:`ApiError`. Authentication, rate limits, scopes and the content type are checked
before a handler runs (see ``core.Sandbox``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dashboard.allo.types import (
    DO_NOT_DISTURB,
    MAX_QUEUE_NUMBERS,
    ROLES,
    SCOPE_DIALING_QUEUE,
    SCOPE_USERS_READ,
    STATUSES,
    VOICEMAIL_HANDLING,
)

from .errors import ApiError, FieldError, invalid, invalid_fields, not_found
from .phones import to_e164
from .state import Entry, User

if TYPE_CHECKING:
    from .core import Sandbox

Reply = tuple[int, Any]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
NAME_MAX_LENGTH = 255
CONTACT_TEXT_FIELDS = ("name", "last_name", "company", "website", "job_title")
CONTACT_LIST_FIELDS = ("emails", "addresses")

# Which body/query names each imitated API version reads as "the teammate's id". ``email`` is
# always understood. A name the version does not know is ignored, as an API ignores unknown fields
# (or refused with 400 UNKNOWN_FIELD, under the sandbox's ``strict_fields``).
TEAMMATE_ID_FIELDS: dict[str, tuple[str, ...]] = {
    "both": ("user_id", "user_pid"),
    "user_id": ("user_id",),
    "user_pid": ("user_pid",),
    "none": (),
}
ALL_TEAMMATE_ID_FIELDS = ("user_id", "user_pid")


@dataclass
class Call:
    """One API request, parsed: the query's first values, the JSON body, the path's parts."""

    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any]
    match: dict[str, str]
    # The body as parsed, whatever its JSON type (the control endpoints accept a bare null).
    data: Any = None


# --- shared rules ----------------------------------------------------------------------------


def _teammate_source(call: Call) -> Mapping[str, Any]:
    """Where a request names its teammate: the query for GET and DELETE, else the JSON body."""
    return call.params if call.method in {"GET", "DELETE"} else call.body


def target(sb: Sandbox, call: Call) -> User:
    """The teammate a request names, else the key's owner. An id beats ``email``. Unknown or
    other-team users give 404 ASSIGNEE_NOT_FOUND. Which id names are read depends on the
    request's method (``Sandbox.teammate_field_for``)."""
    world = sb.world
    source = _teammate_source(call)
    known = _known_id_fields(sb, call.method, source)
    for name in known:
        value = source.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise invalid(name, f"{name} must be a string.", code="INVALID_TYPE")
        user = world.member(value)
        if user is None:
            raise not_found("ASSIGNEE_NOT_FOUND", "No teammate with this id.", "user_id")
        return user
    email = source.get("email")
    if email is not None:
        if not isinstance(email, str):
            raise invalid("email", "email must be a string.", code="INVALID_TYPE")
        user = world.member_by_email(email)
        if user is None:
            raise not_found("ASSIGNEE_NOT_FOUND", "No teammate with this email.", "email")
        return user
    return world.owner


def _known_id_fields(sb: Sandbox, method: str, source: Mapping[str, Any]) -> tuple[str, ...]:
    """The teammate id names this method understands. Under ``strict_fields``, a name it does
    not understand is refused (400 UNKNOWN_FIELD, even when null) rather than ignored."""
    known = TEAMMATE_ID_FIELDS[sb.teammate_field_for(method)]
    if sb.strict_fields:
        for name in ALL_TEAMMATE_ID_FIELDS:
            if name in source and name not in known:
                raise ApiError(
                    400,
                    "UNKNOWN_FIELD",
                    f"Unknown field {name!r}.",
                    param=name,
                    errors=[FieldError(name, "UNKNOWN_FIELD", f"Unknown field {name!r}.")],
                )
    return known


def _names_a_teammate(sb: Sandbox, call: Call) -> bool:
    source = _teammate_source(call)
    names = (*_known_id_fields(sb, call.method, source), "email")
    return any(source.get(name) is not None for name in names)


def _name(body: Mapping[str, Any], errors: list[FieldError]) -> str | None:
    """The ``name`` sent, or None when absent or null (which leaves the name alone)."""
    value = body.get("name")
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError("name", "INVALID_TYPE", "name must be a string."))
        return None
    if not 1 <= len(value) <= NAME_MAX_LENGTH:
        errors.append(
            FieldError("name", "INVALID_LENGTH", "name must be 1 to 255 characters long.")
        )
        return None
    return value


def _enum(
    body: Mapping[str, Any], key: str, allowed: tuple[str, ...], errors: list[FieldError]
) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if value not in allowed:
        errors.append(
            FieldError(key, "INVALID_ENUM_VALUE", f"{key} must be one of {', '.join(allowed)}.")
        )
        return None
    return value


def _positive_int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d{1,9}", text.strip()) else None


# --- users -------------------------------------------------------------------------------------


def get_me(sb: Sandbox, call: Call) -> Reply:
    scopes = list(sb.scopes)
    endpoints = [
        {"method": r.method, "path": r.template, "description": r.description, "scope": r.scope}
        for r in ROUTES
        if r.scope is None or r.scope in scopes
    ]
    return 200, {
        "data": {
            "api_key_id": sb.world.api_key_id,
            "scopes": scopes,
            "endpoints": endpoints,
            "team": dict(sb.world.team),
            "rate_limits": {"read_per_second": sb.read_limit, "write_per_second": sb.write_limit},
        }
    }


def list_users(sb: Sandbox, call: Call) -> Reply:
    role = call.params.get("role")
    status = call.params.get("status", "ACTIVE")
    errors: list[FieldError] = []
    if role is not None and role not in ROLES:
        errors.append(FieldError("role", "INVALID_ENUM_VALUE", f"role must be one of {ROLES}."))
    if status not in STATUSES:
        errors.append(
            FieldError("status", "INVALID_ENUM_VALUE", f"status must be one of {STATUSES}.")
        )
    if errors:
        raise invalid_fields(errors)
    users = [u for u in sb.world.users if u.status == status and (role is None or u.role == role)]
    return 200, {"data": [u.to_json() for u in users]}


def get_user(sb: Sandbox, call: Call) -> Reply:
    user = sb.world.member(call.match["id"])
    if user is None:
        raise not_found("USER_NOT_FOUND", "No user with this id in your team.", "id")
    return 200, {"data": user.to_json()}


# --- dialing queues ----------------------------------------------------------------------------


def read_queue(sb: Sandbox, call: Call) -> Reply:
    style = sb.style
    if sb.get_shape == "legacy":
        # The older API knew no paging: the whole queue, numbers included, or null.
        user = target(sb, call)
        queue = sb.world.current_queue(user.id)
        return 200, {"data": style.queue(queue, numbers=True) if queue else None}

    page = _positive_int(call.params.get("page", "1"))
    if page is None or page < 1:
        raise invalid("page", "page must be a whole number from 1.")
    size = _positive_int(call.params.get("size", str(DEFAULT_PAGE_SIZE)))
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(
            400,
            "INVALID_PAGE_SIZE",
            f"size must be between 1 and {MAX_PAGE_SIZE}.",
            param="size",
            errors=[FieldError("size", "INVALID_PAGE_SIZE", "size must be between 1 and 100.")],
        )
    user = target(sb, call)
    queue = sb.world.current_queue(user.id)
    if queue is None:
        zeroed = {"page": 0, "size": 0, "total_count": 0, "total_pages": 0, "has_more": False}
        return 200, {"data": [], "pagination": zeroed}
    total = len(queue.numbers)
    total_pages = math.ceil(total / size)
    first = (page - 1) * size
    data = [style.entry(e, first + i) for i, e in enumerate(queue.numbers[first : first + size])]
    pagination = {
        "page": page,
        "size": size,
        "total_count": total,
        "total_pages": total_pages,
        "has_more": page < total_pages,
    }
    return 200, {"data": data, "pagination": pagination, "queue": style.queue(queue, numbers=False)}


def upsert_queue(sb: Sandbox, call: Call) -> Reply:
    body = call.body
    errors: list[FieldError] = []
    name = _name(body, errors)
    voicemail = _enum(body, "voicemail_handling", VOICEMAIL_HANDLING, errors)
    dnd = _enum(body, "do_not_disturb", DO_NOT_DISTURB, errors)
    if errors:
        raise invalid_fields(errors)
    user = target(sb, call)
    now = sb.clock()
    queue = sb.world.current_queue(user.id) or sb.world.create_queue(assignee_id=user.id, now=now)
    # Only the fields sent are touched; an explicit null leaves the field as it was.
    if name is not None:
        queue.name = name
    if voicemail is not None:
        queue.voicemail_handling = voicemail
    if dnd is not None:
        queue.do_not_disturb = dnd
    queue.updated_at = now
    return 200, {"data": sb.style.queue(queue, numbers=True)}


def reset_queue(sb: Sandbox, call: Call) -> Reply:
    errors: list[FieldError] = []
    name = _name(call.body, errors)
    if errors:
        raise invalid_fields(errors)
    user = target(sb, call)
    old = sb.world.current_queue(user.id)
    # A fresh queue starts with the defaults (voicemail and do-not-disturb are not carried
    # over). A rep who was dialing stays in their session and dials the new queue.
    queue = sb.world.create_queue(assignee_id=user.id, name=name, now=sb.clock())
    if old is not None:
        queue.dialing, old.dialing = old.dialing, False
    return 200, {"data": sb.style.queue(queue, numbers=True)}


def append_numbers(sb: Sandbox, call: Call) -> Reply:
    body = call.body
    items = body.get("numbers")
    if not isinstance(items, list) or not items:
        raise invalid("numbers", "numbers must be a list of at least one number.", code="REQUIRED")
    errors: list[FieldError] = []
    wanted: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(items):
        where = f"numbers[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "INVALID_TYPE", "Each entry must be an object."))
            continue
        raw = item.get("number")
        if not isinstance(raw, str):
            errors.append(FieldError(f"{where}.number", "REQUIRED", "number must be a string."))
            continue
        contact: dict[str, Any] = {}
        for key in CONTACT_TEXT_FIELDS:
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                errors.append(FieldError(f"{where}.{key}", "INVALID_TYPE", f"{key}: a string."))
            elif value is not None:
                contact[key] = value
        for key in CONTACT_LIST_FIELDS:
            value = item.get(key)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                errors.append(FieldError(f"{where}.{key}", "INVALID_TYPE", f"{key}: strings."))
            elif value:
                contact[key] = list(value)
        wanted.append((raw, contact))
    if errors:
        raise ApiError(400, "VALIDATION_ERROR", errors[0].message, param="numbers", errors=errors)

    user = target(sb, call)
    now = sb.clock()
    valid: list[Entry] = []
    skipped: list[dict[str, str]] = []
    for raw, contact in wanted:
        e164 = to_e164(raw)
        if e164 is None:
            skipped.append({"number": raw, "reason": "INVALID_PHONE_NUMBER"})
        else:
            valid.append(Entry(number_to=e164, created_at=now, updated_at=now, contact=contact))
    queue = sb.world.current_queue(user.id)
    held = len(queue.numbers) if queue else 0
    if held + len(valid) > MAX_QUEUE_NUMBERS:
        # The whole request is refused: nothing is added, not even what would have fitted.
        raise ApiError(
            400,
            "DIALING_QUEUE_LIMIT_REACHED",
            f"A queue holds at most {MAX_QUEUE_NUMBERS} numbers: it has {held}, "
            f"and this request adds {len(valid)}.",
            param="numbers",
            suggestion="Remove numbers from the queue, or send fewer.",
        )
    if queue is None:
        queue = sb.world.create_queue(assignee_id=user.id, now=now)
    first = len(queue.numbers)
    queue.numbers.extend(valid)
    if valid:
        queue.updated_at = now
    added = [sb.style.entry(e, first + i) for i, e in enumerate(valid)]
    return 200, {"data": {"added": added, "skipped": skipped}}


def clear_numbers(sb: Sandbox, call: Call) -> Reply:
    params = call.params
    number_raw = params.get("number")
    position_raw = params.get("position")
    unassigned = False
    if "unassigned" in params:
        flag = params["unassigned"].strip().lower()
        if flag not in {"true", "1", "false", "0"}:
            raise invalid("unassigned", "unassigned must be true or false.")
        unassigned = flag in {"true", "1"}
    if unassigned and (number_raw is not None or position_raw is not None):
        raise ApiError(
            400,
            "DIALING_QUEUE_DELETE_FILTER_CONFLICT",
            "unassigned cannot be combined with number or position.",
            param="unassigned",
        )
    if not unassigned and number_raw is None and position_raw is None:
        raise ApiError(
            400,
            "DIALING_QUEUE_DELETE_FILTER_REQUIRED",
            "Say what to remove: number, position, both, or unassigned=true.",
        )
    number = None
    if number_raw is not None:
        number = to_e164(number_raw)
        if number is None:
            raise ApiError(
                400, "INVALID_PHONE_NUMBER", "number is not a valid phone number.", param="number"
            )
    position = None
    if position_raw is not None:
        position = _positive_int(position_raw)
        if position is None:
            raise invalid("position", "position must be a whole number from 0.")

    user = target(sb, call)
    queue = sb.world.current_queue(user.id)
    if queue is None:
        raise not_found("DIALING_QUEUE_NOT_FOUND", "This teammate has no queue.")
    before = len(queue.numbers)
    if position is not None:
        if position >= before or (number and queue.numbers[position].number_to != number):
            raise not_found(
                "QUEUE_NUMBER_POSITION_NOT_FOUND",
                "No such number at this position.",
                "position",
            )
        del queue.numbers[position]
    elif number is not None:
        queue.numbers[:] = [e for e in queue.numbers if e.number_to != number]
    else:
        queue.numbers[:] = [e for e in queue.numbers if e.called]
    # Later numbers move up: positions are always 0..n-1, in order.
    removed = before - len(queue.numbers)
    if removed:
        queue.updated_at = sb.clock()
    return 200, {"data": {"removed": removed}}


def reassign_queue(sb: Sandbox, call: Call) -> Reply:
    world = sb.world
    owner = world.owner
    if owner.role not in {"ADMIN", "MANAGER"}:
        raise ApiError(
            403,
            "DIALING_QUEUE_ASSIGN_FORBIDDEN",
            "Only an Admin's or a Manager's key may reassign a queue.",
        )
    if not _names_a_teammate(sb, call):
        raise ApiError(
            400,
            "DIALING_QUEUE_ASSIGNEE_REQUIRED",
            "Name the new assignee with user_id or email.",
            param="user_id",
        )
    queue = world.queues.get(call.match["queue_id"])
    if queue is None or owner.id not in {queue.creator_id, queue.assignee_id}:
        raise not_found("DIALING_QUEUE_NOT_FOUND", "No such queue.", "queue_id")
    user = target(sb, call)
    if queue.dialing:
        raise ApiError(
            409,
            "DIALING_QUEUE_SESSION_ACTIVE",
            "The rep is dialing this queue; try again when the session ends.",
            retryable=True,
        )
    world.assign(queue, user.id)
    queue.updated_at = sb.clock()
    return 200, {"data": sb.style.queue(queue, numbers=True)}


# --- routing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Callable[[Sandbox, Call], Reply]
    scope: str | None = None
    description: str = ""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # "/v2/api/users/{id}" -> r"/v2/api/users/(?P<id>[^/]+)\Z"
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(regex + r"\Z"))


QUEUE = "/v2/api/dialing-queues/current"
ROUTES: tuple[Route, ...] = (
    Route("GET", "/v2/api/me", get_me, None, "Describe this API key."),
    Route("GET", "/v2/api/users", list_users, SCOPE_USERS_READ, "List the team's users."),
    Route("GET", "/v2/api/users/{id}", get_user, SCOPE_USERS_READ, "Get one user."),
    Route("GET", QUEUE, read_queue, SCOPE_DIALING_QUEUE, "Read a Power Dialer queue."),
    Route("PATCH", QUEUE, upsert_queue, SCOPE_DIALING_QUEUE, "Create or update a queue."),
    Route("POST", QUEUE, reset_queue, SCOPE_DIALING_QUEUE, "Start a fresh, empty queue."),
    Route(
        "POST", f"{QUEUE}/numbers", append_numbers, SCOPE_DIALING_QUEUE, "Add numbers to a queue."
    ),
    Route(
        "DELETE",
        f"{QUEUE}/numbers",
        clear_numbers,
        SCOPE_DIALING_QUEUE,
        "Remove numbers from a queue.",
    ),
    Route(
        "PATCH",
        "/v2/api/dialing-queues/{queue_id}/assignee",
        reassign_queue,
        SCOPE_DIALING_QUEUE,
        "Move a queue to another teammate.",
    ),
)


def resolve(
    routes: tuple[Route, ...], method: str, path: str
) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route for this method and path, its path parameters, and the methods the path allows
    (empty when the path is unknown)."""
    allowed: list[str] = []
    for route in routes:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method.upper():
            return route, found.groupdict(), [route.method]
        allowed.append(route.method)
    return None, {}, allowed
