"""What Allo returns, as frozen dataclasses parsed at the boundary.

Enums are kept as plain strings so that a value Allo adds tomorrow survives and is shown as it
came; the known values are listed here for the pages that put them into words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ROLES = ("ADMIN", "MANAGER", "MEMBER")
STATUSES = ("ACTIVE", "BLOCKED")
VOICEMAIL_HANDLING = ("SKIP", "NO_SKIP")
DO_NOT_DISTURB = ("ENABLED", "DISABLED")
ROUTING_RESULTS = (
    "FAILED",
    "RECEIVED",
    "BLOCKED",
    "ANSWERED",
    "TRANSFERRED_BLAND",
    "TRANSFERRED_ELEVEN_LABS",
    "TRANSFERRED_EXTERNAL",
    "FAILED_EXTERNAL",
    "VOICEMAIL",
    "CLOSED",
)
NOT_REACHED_REASONS = (
    "BUSY",
    "CALLEE_TEMPORARILY_UNAVAILABLE",
    "RING_TIMEOUT",
    "NOT_IN_SERVICE",
    "DECLINED",
    "NETWORK_ERROR",
)
SYNC_STATUSES = ("NOT_SYNCED", "PROCESSING", "SYNCED")
SCOPE_USERS_READ = "USERS_READ"
SCOPE_DIALING_QUEUE = "DIALING_QUEUE_READ_WRITE"
MAX_QUEUE_NUMBERS = 1000


@dataclass(frozen=True)
class Teammate:
    id: str
    name: str
    email: str | None
    role: str | None
    status: str | None
    image_url: str | None = None


@dataclass(frozen=True)
class Team:
    id: str
    name: str | None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    description: str | None
    scope: str | None


@dataclass(frozen=True)
class RateLimits:
    read_per_second: int | None
    write_per_second: int | None


@dataclass(frozen=True)
class Me:
    api_key_id: str | None
    scopes: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    team: Team | None
    rate_limits: RateLimits | None


@dataclass(frozen=True)
class QueueNumber:
    number_to: str
    position: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    call_start_date: datetime | None = None
    call_id: str | None = None
    routing_result: str | None = None
    not_reached_destination_reason: str | None = None
    detected_outbound_voicemail: bool | None = None
    voicemail_left: bool | None = None
    sync_status: str | None = None
    call_status: str | None = None

    @property
    def called(self) -> bool:
        return self.call_start_date is not None


@dataclass(frozen=True)
class Queue:
    """A teammate's current Power Dialer queue, with every number Allo returned."""

    id: str
    name: str | None
    creator_id: str | None
    assignee_id: str | None
    voicemail_handling: str | None
    do_not_disturb: str | None
    numbers: tuple[QueueNumber, ...] = field(default_factory=tuple)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class SkippedNumber:
    number: str
    reason: str | None


@dataclass(frozen=True)
class AppendResult:
    added: tuple[QueueNumber, ...]
    skipped: tuple[SkippedNumber, ...]


@dataclass(frozen=True)
class NewNumber:
    """A number to append, with the contact details Allo accepts beside it."""

    number: str
    name: str | None = None
    last_name: str | None = None
    company: str | None = None
    website: str | None = None
    job_title: str | None = None
    emails: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueuePage:
    """One page of a teammate's queue: the queue's settings and the numbers on that page."""

    queue: Queue | None
    numbers: tuple[QueueNumber, ...]
    page: int
    size: int
    total_count: int
    total_pages: int
    # Whether Allo says a later page holds more numbers (its ``has_more``; else worked out from
    # ``total_pages``).
    has_more: bool = False
