"""``/_sandbox/`` endpoints: how tests and demos look inside the sandbox and steer it.

Same API key as the API (401 otherwise), JSON in and out, never rate limited, never counted in
the stats, never faulted.

- ``GET /_sandbox/stats`` (``DELETE`` clears): requests served per method, path and status, and
  a log of the last 500 with their query and JSON body.
- ``GET|POST|DELETE /_sandbox/faults``: the fault switch (see ``faults.FaultSpec``).
- ``POST /_sandbox/reset``: back to the seeded world.
- ``POST /_sandbox/users``: add a teammate.
- ``GET|PUT|DELETE /_sandbox/queues/<user id>``: read or set a teammate's current queue.
- ``GET|PATCH /_sandbox/config``: the API version being imitated (teammate field, per-method
  overrides, strict fields, GET shape…); a PATCH changes only the keys sent, all or nothing.
- ``POST /_sandbox/dial``: one tick of the simulated reps (``Sandbox.dial_step``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import CONTACT_LIST_FIELDS, CONTACT_TEXT_FIELDS, Call, Reply, Route
from .errors import ApiError, FieldError, invalid, invalid_fields, not_found
from .faults import FaultSpec
from .phones import to_e164
from .state import Entry, Queue, Style, User, parse_iso

if TYPE_CHECKING:
    from .core import Sandbox

MAX_CONTROL_NUMBERS = 1000
_SNAPSHOT_STYLE = Style()
_ENTRY_TEXT_FIELDS = (
    "call_id",
    "routing_result",
    "not_reached_destination_reason",
    "sync_status",
    "call_status",
)
_ENTRY_FLAG_FIELDS = ("detected_outbound_voicemail", "voicemail_left")
_ENTRY_DATE_FIELDS = ("created_at", "updated_at", "call_start_date")


def snapshot(queue: Queue) -> dict[str, Any]:
    """A queue with every number, whether a rep is dialing it, and the contacts sent with the
    numbers: what the control endpoints show."""
    data = _SNAPSHOT_STYLE.queue(queue, numbers=True)
    for entry_json, entry in zip(data["numbers"], queue.numbers, strict=True):
        if entry.contact:
            entry_json["contact"] = dict(entry.contact)
    data["dialing"] = queue.dialing
    return data


def _member(sb: Sandbox, user_id: str) -> User:
    user = sb.world.member(user_id)
    if user is None:
        raise not_found("USER_NOT_FOUND", "No teammate with this id.", "user_id")
    return user


def _object(call: Call) -> dict[str, Any]:
    if not isinstance(call.data, dict):
        raise invalid("body", "Send a JSON object.", code="INVALID_TYPE")
    return call.data


# --- stats and faults --------------------------------------------------------------------------


def get_stats(sb: Sandbox, call: Call) -> Reply:
    return 200, {"data": sb.traffic.to_json()}


def clear_stats(sb: Sandbox, call: Call) -> Reply:
    sb.clear_stats()
    return 200, {"data": sb.stats()}


def get_faults(sb: Sandbox, call: Call) -> Reply:
    return 200, {"data": sb.faults.to_json()}


def set_faults(sb: Sandbox, call: Call) -> Reply:
    sb.set_faults(FaultSpec.from_json(call.data))
    return 200, {"data": sb.faults.to_json()}


def clear_faults(sb: Sandbox, call: Call) -> Reply:
    sb.set_faults(FaultSpec())
    return 200, {"data": sb.faults.to_json()}


def reset(sb: Sandbox, call: Call) -> Reply:
    sb.reset()
    return 200, {"data": {"owner_id": sb.owner_id, "users": len(sb.users)}}


def dial(sb: Sandbox, call: Call) -> Reply:
    sb.dial_step()
    dialing = [
        {
            "queue_id": q.id,
            "assignee_id": q.assignee_id,
            "called": sum(1 for e in q.numbers if e.called),
            "total": len(q.numbers),
        }
        for q in sb.world.current_queues()
        if q.dialing
    ]
    return 200, {"data": {"dialing": dialing}}


# --- config ------------------------------------------------------------------------------------

_CONFIG_KEYS = (
    "teammate_field",
    "teammate_field_by_method",
    "strict_fields",
    "get_shape",
    "scopes",
    "scope_error_shape",
    "date_style",
    "read_limit",
    "write_limit",
)
_CHOICE_KEYS = ("teammate_field", "get_shape", "scope_error_shape", "date_style")


def _config(sb: Sandbox) -> dict[str, Any]:
    return {key: getattr(sb, key) for key in _CONFIG_KEYS} | {"scopes": list(sb.scopes)}


def get_config(sb: Sandbox, call: Call) -> Reply:
    return 200, {"data": _config(sb)}


def set_config(sb: Sandbox, call: Call) -> Reply:
    data = _object(call)
    errors: list[FieldError] = []
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _CONFIG_KEYS:
            errors.append(FieldError(key, "UNKNOWN_FIELD", f"Unknown setting {key!r}."))
        elif key == "scopes" and not (
            isinstance(value, list) and all(isinstance(s, str) for s in value)
        ):
            errors.append(FieldError(key, "INVALID_TYPE", "scopes must be a list of strings."))
        elif key == "teammate_field_by_method" and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            errors.append(
                FieldError(key, "INVALID_TYPE", f"{key}: an object of method to field mode.")
            )
        elif key == "strict_fields" and not isinstance(value, bool):
            errors.append(FieldError(key, "INVALID_TYPE", f"{key} must be true or false."))
        elif key.endswith("_limit") and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            errors.append(FieldError(key, "INVALID_VALUE", f"{key} must be a positive integer."))
        elif key in _CHOICE_KEYS and not isinstance(value, str):
            errors.append(FieldError(key, "INVALID_TYPE", f"{key} must be a string."))
        else:
            changes[key] = value
    if errors:
        raise invalid_fields(errors)
    previous = _config(sb)
    for key, value in changes.items():
        try:
            setattr(sb, key, value)
        except ValueError as exc:
            # All or nothing: undo what this request already changed.
            for done, before in previous.items():
                setattr(sb, done, before)
            raise invalid(key, str(exc), code="INVALID_ENUM_VALUE") from None
    return 200, {"data": _config(sb)}


# --- users -------------------------------------------------------------------------------------


def add_user(sb: Sandbox, call: Call) -> Reply:
    """Add a teammate. Roles and statuses are not checked against the known values, so that a
    test can show how a page copes with a value Allo adds tomorrow."""
    data = _object(call)
    errors: list[FieldError] = []
    name, email = data.get("name"), data.get("email")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        errors.append(FieldError("name", "REQUIRED", "name: 1 to 255 characters."))
    if not isinstance(email, str) or "@" not in email:
        errors.append(FieldError("email", "REQUIRED", "email: an email address."))
    for key in ("role", "status", "image_url"):
        if data.get(key) is not None and not isinstance(data[key], str):
            errors.append(FieldError(key, "INVALID_TYPE", f"{key} must be a string."))
    if errors:
        raise invalid_fields(errors)
    assert isinstance(name, str) and isinstance(email, str)
    everyone = [*sb.world.users, *sb.world.outsiders]
    if any(u.email.casefold() == email.strip().casefold() for u in everyone):
        raise ApiError(409, "EMAIL_TAKEN", "Someone already has this email.", param="email")
    user = User(
        id=sb.world.ids.user(),
        name=name,
        email=email.strip(),
        role=data.get("role") or "MEMBER",
        status=data.get("status") or "ACTIVE",
        image_url=data.get("image_url"),
    )
    sb.world.users.append(user)
    # 200 like every other control endpoint, so that helpers can expect one status.
    return 200, {"data": user.to_json()}


# --- queues ------------------------------------------------------------------------------------


def get_queue(sb: Sandbox, call: Call) -> Reply:
    user = _member(sb, call.match["user_id"])
    queue = sb.world.current_queue(user.id)
    return 200, {"data": snapshot(queue) if queue else None}


def delete_queue(sb: Sandbox, call: Call) -> Reply:
    user = _member(sb, call.match["user_id"])
    queue = sb.world.current_queue(user.id)
    if queue is not None:
        queue.dialing = False
    sb.world.current.pop(user.id, None)
    return 200, {"data": None}


def _date(value: Any, where: str, errors: list[FieldError]) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            pass
    errors.append(FieldError(where, "INVALID_VALUE", f"{where}: an ISO 8601 date or null."))
    return None


def _entry(sb: Sandbox, item: Any, where: str, now: float, errors: list[FieldError]) -> Entry:
    """A queue number from a plain string or a QueueNumber-like object. Enum values are kept as
    given, known or not."""
    fields: dict[str, Any] = item if isinstance(item, dict) else {}
    raw = item if isinstance(item, str) else fields.get("number_to", fields.get("number"))
    number = to_e164(raw) if isinstance(raw, str) else None
    if number is None:
        errors.append(FieldError(where, "INVALID_PHONE_NUMBER", f"{where}: not a phone number."))
        number = str(raw)
    entry = Entry(number_to=number, created_at=now, updated_at=now)
    for key in _ENTRY_DATE_FIELDS:
        if key in fields:
            setattr(entry, key, _date(fields[key], f"{where}.{key}", errors))
    if "created_at" in fields and "updated_at" not in fields:
        entry.updated_at = entry.created_at
    for key in _ENTRY_TEXT_FIELDS:
        if key in fields:
            if fields[key] is not None and not isinstance(fields[key], str):
                errors.append(FieldError(f"{where}.{key}", "INVALID_TYPE", f"{key}: a string."))
            setattr(entry, key, fields[key])
    for key in _ENTRY_FLAG_FIELDS:
        if key in fields:
            if fields[key] is not None and not isinstance(fields[key], bool):
                errors.append(FieldError(f"{where}.{key}", "INVALID_TYPE", f"{key}: a boolean."))
            setattr(entry, key, fields[key])
    if entry.call_start_date is not None and "call_id" not in fields:
        entry.call_id = sb.world.ids.call()
    entry.contact = {
        k: fields[k] for k in (*CONTACT_TEXT_FIELDS, *CONTACT_LIST_FIELDS) if fields.get(k)
    }
    return entry


def put_queue(sb: Sandbox, call: Call) -> Reply:
    """Set a teammate's current queue, as a rep or another tool would. Fields left out keep their
    value (so ``{"dialing": true}`` only starts a session); ``numbers`` replaces every number;
    a bare ``null`` leaves the teammate with no queue."""
    user = _member(sb, call.match["user_id"])
    if call.data is None:
        return delete_queue(sb, call)
    data = _object(call)
    world = sb.world
    now = sb.clock()
    errors: list[FieldError] = []
    for key in ("name", "voicemail_handling", "do_not_disturb", "creator_id", "id"):
        if data.get(key) is not None and not isinstance(data[key], str):
            errors.append(FieldError(key, "INVALID_TYPE", f"{key} must be a string."))
    if "dialing" in data and not isinstance(data["dialing"], bool):
        errors.append(FieldError("dialing", "INVALID_TYPE", "dialing must be true or false."))
    entries: list[Entry] | None = None
    if "numbers" in data:
        items = data["numbers"]
        if not isinstance(items, list) or len(items) > MAX_CONTROL_NUMBERS:
            errors.append(FieldError("numbers", "INVALID_VALUE", "numbers: a list of <= 1000."))
        else:
            entries = [
                _entry(sb, item, f"numbers[{i}]", now, errors) for i, item in enumerate(items)
            ]
    queue = world.current_queue(user.id)
    wanted_id = data.get("id")
    if wanted_id and (queue is None or queue.id != wanted_id) and wanted_id in world.queues:
        errors.append(FieldError("id", "INVALID_VALUE", "Another queue has this id."))
    if errors:
        raise invalid_fields(errors)

    if queue is None or (wanted_id and queue.id != wanted_id):
        creator = data.get("creator_id", world.owner_id)
        queue = world.create_queue(
            assignee_id=user.id, creator_id=creator, queue_id=wanted_id, now=now
        )
    elif "creator_id" in data:
        queue.creator_id = data["creator_id"]
    if "name" in data:
        queue.name = data["name"]
    for key in ("voicemail_handling", "do_not_disturb"):
        if data.get(key) is not None:
            setattr(queue, key, data[key])
    if entries is not None:
        queue.numbers = entries
    if "dialing" in data:
        queue.dialing = data["dialing"]
    queue.updated_at = now
    return 200, {"data": snapshot(queue)}


ROUTES: tuple[Route, ...] = (
    Route("GET", "/_sandbox/stats", get_stats),
    Route("DELETE", "/_sandbox/stats", clear_stats),
    Route("GET", "/_sandbox/faults", get_faults),
    Route("POST", "/_sandbox/faults", set_faults),
    Route("DELETE", "/_sandbox/faults", clear_faults),
    Route("POST", "/_sandbox/reset", reset),
    Route("POST", "/_sandbox/dial", dial),
    Route("GET", "/_sandbox/config", get_config),
    Route("PATCH", "/_sandbox/config", set_config),
    Route("POST", "/_sandbox/users", add_user),
    Route("GET", "/_sandbox/queues/{user_id}", get_queue),
    Route("PUT", "/_sandbox/queues/{user_id}", put_queue),
    Route("DELETE", "/_sandbox/queues/{user_id}", delete_queue),
)
