"""Faults a test switches on through ``POST /_sandbox/faults``: latency, error statuses, bodies
that are not JSON, requests left hanging, and writes that are applied and then reported failed.

An error status may carry the envelope's ``code``, ``param`` and ``message``, e.g. Allo's 400
blaming one input: ``{"status": 400, "code": "VALIDATION_ERROR", "param": "name", "message":
"Name is not allowed", "count": 1, "methods": ["PATCH"]}``. With ``param``, the envelope also
lists ``errors: [{"field": param, "code": code, "message": message}]``, as the sandbox's own
400s do."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .errors import FieldError, invalid_fields

FAULT_KEYS = (
    "latency_ms",
    "status",
    "code",
    "param",
    "message",
    "malformed",
    "hang",
    "count",
    "apply_then_fail",
    "methods",
)
# What ``apply_then_fail`` answers when the test names no status, body or hang.
DEFAULT_APPLY_THEN_FAIL_STATUS = 500


@dataclass(frozen=True)
class FaultSpec:
    latency_ms: float = 0.0
    status: int | None = None
    code: str | None = None
    # The error envelope's ``param`` (with a matching ``errors`` entry) and ``message``.
    param: str | None = None
    message: str | None = None
    malformed: bool = False
    hang: bool = False
    count: int | None = None
    apply_then_fail: bool = False
    methods: tuple[str, ...] | None = None

    @property
    def replaces_answer(self) -> bool:
        return self.status is not None or self.malformed or self.hang

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.replaces_answer

    def matches(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "status": self.status,
            "code": self.code,
            "param": self.param,
            "message": self.message,
            "malformed": self.malformed,
            "hang": self.hang,
            "count": self.count,
            "apply_then_fail": self.apply_then_fail,
            "methods": list(self.methods) if self.methods is not None else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> FaultSpec:
        """Read a fault switch; ``{}`` (or null) is no fault. Raises ApiError 400."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise invalid_fields([FieldError("faults", "INVALID_TYPE", "Send a JSON object.")])
        errors: list[FieldError] = [
            FieldError(k, "UNKNOWN_FIELD", f"Unknown fault setting {k!r}.")
            for k in data
            if k not in FAULT_KEYS
        ]

        def flag(name: str) -> bool:
            value = data.get(name)
            if value is None:
                return False
            if not isinstance(value, bool):
                errors.append(FieldError(name, "INVALID_TYPE", f"{name} must be true or false."))
                return False
            return value

        def text(name: str) -> str | None:
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                errors.append(FieldError(name, "INVALID_TYPE", f"{name}: a non-empty string."))
                return None
            return value

        latency = data.get("latency_ms") or 0
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            errors.append(FieldError("latency_ms", "INVALID_VALUE", "latency_ms must be >= 0."))
            latency = 0
        status = data.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599
        ):
            errors.append(FieldError("status", "INVALID_VALUE", "status must be 200-599."))
            status = None
        code, param, message = (text(name) for name in ("code", "param", "message"))
        count = data.get("count")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            errors.append(FieldError("count", "INVALID_VALUE", "count must be a positive integer."))
            count = None
        methods = data.get("methods")
        if methods is not None:
            if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
                errors.append(FieldError("methods", "INVALID_TYPE", "methods must be strings."))
                methods = None
            else:
                methods = tuple(m.upper() for m in methods)
        malformed, hang, apply_then_fail = flag("malformed"), flag("hang"), flag("apply_then_fail")
        if status is not None and status < 400 and not malformed:
            errors.append(
                FieldError("status", "INVALID_VALUE", "Only a malformed body may have a 2xx/3xx.")
            )
        answers_an_error = not malformed and not hang and (status is not None or apply_then_fail)
        for name, value in (("code", code), ("param", param), ("message", message)):
            if value is not None and not answers_an_error:
                errors.append(
                    FieldError(name, "INVALID_VALUE", f"{name} needs an error status to go with.")
                )
        if errors:
            raise invalid_fields(errors)
        if apply_then_fail and status is None and not malformed and not hang:
            status = DEFAULT_APPLY_THEN_FAIL_STATUS
        return cls(
            latency_ms=float(latency),
            status=status,
            code=code,
            param=param,
            message=message,
            malformed=malformed,
            hang=hang,
            count=count,
            apply_then_fail=apply_then_fail,
            methods=methods,
        )


class FaultSwitch:
    """The fault in force, how many requests it has left, and the event that frees hung ones."""

    def __init__(self) -> None:
        self.spec = FaultSpec()
        self.remaining: int | None = None
        self.release = threading.Event()

    def set(self, spec: FaultSpec) -> None:
        # Requests left hanging by the previous fault are let go: the test has moved on.
        self.release.set()
        self.release = threading.Event()
        self.spec = spec
        self.remaining = spec.count

    def clear(self) -> None:
        self.set(FaultSpec())

    def take(self, method: str) -> FaultSpec | None:
        """The fault that applies to this request, spending one of its ``count``."""
        spec = self.spec
        if not spec.active or not spec.matches(method):
            return None
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.spec, self.remaining = FaultSpec(), None
        return spec

    def to_json(self) -> dict[str, Any]:
        data = self.spec.to_json()
        data["remaining"] = self.remaining
        return data
