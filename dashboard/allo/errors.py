"""Every way a conversation with Allo can fail, as one family of exceptions.

Each carries what Allo said (its stable ``code``, its ``message``, the ``param`` it blames and the
``request_id`` to quote to Allo's support) so that views can put the failure into words and logs
can keep the trace. Messages never contain the API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One entry of Allo's ``errors[]`` (shape undocumented: field, code, message)."""

    field: str | None
    code: str | None
    message: str


@dataclass(eq=False)
class AlloError(Exception):
    """Base of every failure talking to Allo."""

    message: str = ""
    code: str | None = None
    param: str | None = None
    request_id: str | None = None
    status: int | None = None
    retry_after: float | None = None
    field_errors: tuple[FieldError, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message or type(self).__name__]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class AlloConfigurationError(AlloError):
    """The dashboard itself is not set up to reach Allo (no API key, bad base URL)."""


class AlloAuthenticationError(AlloError):
    """401: the key is missing, invalid or revoked."""


class AlloPermissionError(AlloError):
    """403: the key lacks a scope, belongs to a trial workspace, or may not do this."""


class AlloValidationError(AlloError):
    """400: Allo refused the input; ``param`` and ``field_errors`` say which."""


class AlloNotFoundError(AlloError):
    """404: an unknown teammate, queue or position (see ``code``)."""


class AlloConflictError(AlloError):
    """409: a concurrent change or an active dialing session."""


class AlloRateLimitedError(AlloError):
    """429: over the key's budget; ``retry_after`` says how many seconds to wait."""


@dataclass(eq=False)
class AlloUnavailableError(AlloError):
    """Allo could not be reached or failed on its side: timeout, connection error, 5xx.

    ``request_sent`` tells whether the request may have reached Allo (a write may have been
    applied) or surely did not (a refused connection).
    """

    request_sent: bool = True


class AlloBadResponseError(AlloError):
    """Allo answered with a body that is not what its contract says (not JSON, wrong shape)."""


@dataclass(eq=False)
class AlloWrongTeammateError(AlloError):
    """A queue asked for teammate T came back for someone else: the request was not understood.

    The loudest failure this product has: the write (if any) landed on another person's queue.
    """

    expected_user_id: str | None = None
    returned_user_id: str | None = None
