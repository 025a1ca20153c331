"""Allo's error envelope, and the exception the sandbox's handlers raise to produce it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TYPE_BY_STATUS: dict[int, str] = {
    400: "validation_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}
# The code a fault answers with when the test does not name one.
DEFAULT_CODE_BY_STATUS: dict[int, str] = {
    400: "VALIDATION_ERROR",
    401: "API_KEY_INVALID",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return TYPE_BY_STATUS.get(status, "invalid_request_error")


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass
class ApiError(Exception):
    """An error answer: status, Allo's stable ``code``, and the optional envelope keys."""

    status: int
    code: str
    message: str
    param: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    suggestion: str | None = None
    retryable: bool | None = None
    retry_after_seconds: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def envelope(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": error_type(self.status),
            "code": self.code,
            "message": self.message,
            "retryable": (
                self.retryable
                if self.retryable is not None
                else self.status == 429 or self.status >= 500
            ),
            "request_id": request_id,
        }
        if self.param is not None:
            body["param"] = self.param
        if self.suggestion is not None:
            body["suggestion"] = self.suggestion
        if self.errors:
            body["errors"] = [e.to_json() for e in self.errors]
        if self.retry_after_seconds is not None:
            body["retry_after_seconds"] = self.retry_after_seconds
        return {"error": body}

    def legacy_envelope(self) -> dict[str, Any]:
        """The v1 shape, ``{"code", "details": [{"message", "field"}]}``."""
        return {"code": self.code, "details": [{"message": self.message, "field": self.param}]}


def invalid(field_name: str, message: str, *, code: str = "INVALID_VALUE") -> ApiError:
    """A 400 that blames one input."""
    return ApiError(
        400,
        "VALIDATION_ERROR",
        message,
        param=field_name,
        errors=[FieldError(field_name, code, message)],
    )


def invalid_fields(errors: list[FieldError]) -> ApiError:
    """A 400 listing every bad input; ``param`` names the first."""
    first = errors[0]
    return ApiError(400, "VALIDATION_ERROR", first.message, param=first.field, errors=errors)


def not_found(code: str, message: str, param: str | None = None) -> ApiError:
    return ApiError(404, code, message, param=param)
