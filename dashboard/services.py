"""What a manager can do, as plain functions over the Allo client.

Views call these and turn the ``AlloError`` they raise into words (``dashboard.failures``).
Nothing here knows about requests, forms or templates.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from dashboard.allo.client import UNSET, get_client
from dashboard.allo.errors import AlloError
from dashboard.allo.types import (
    SCOPE_DIALING_QUEUE,
    SCOPE_USERS_READ,
    Me,
    Queue,
    QueueNumber,
    Teammate,
)
from dashboard.labels import OUTCOME_LABELS, UNKNOWN_OUTCOME, number_outcome, outcome_label

# Allo's apparent defaults for a queue that does not exist yet (allo-api.md: "New queues seem
# to start NO_SKIP / DISABLED").
DEFAULT_VOICEMAIL_HANDLING = "NO_SKIP"
DEFAULT_DO_NOT_DISTURB = "DISABLED"

ALL_STATUSES = "all"
NUMBERS_PER_PAGE = 25

REQUIRED_SCOPES: dict[str, Promise] = {
    SCOPE_USERS_READ: _("Without it the teammates list and names cannot be read."),
    SCOPE_DIALING_QUEUE: _("Without it no queue can be read or changed."),
}


# Teammates --------------------------------------------------------------------------------------


def _folded(text: str) -> str:
    """Lower case without accents, so "helene" finds "Hélène"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def teammate_list(
    *, role: str | None = None, status: str | None = "ACTIVE", query: str = ""
) -> list[Teammate]:
    """The team from GET /v2/api/users, filtered, sorted by name.

    ``role`` and ``status`` are filtered by Allo; ``status="all"`` reads ACTIVE and BLOCKED
    (two requests: Allo has no "every status" value). ``query`` matches name or email,
    ignoring case and accents. Raises AlloError.
    """
    client = get_client()
    if status == ALL_STATUSES:
        people = client.list_users(role=role, status="ACTIVE")
        seen = {person.id for person in people}
        people += [
            person
            for person in client.list_users(role=role, status="BLOCKED")
            if person.id not in seen
        ]
    else:
        people = client.list_users(role=role, status=status)
    needle = _folded(query.strip())
    if needle:
        people = [
            person
            for person in people
            if needle in _folded(person.name) or needle in _folded(person.email or "")
        ]
    return sorted(people, key=lambda person: (_folded(person.name), person.id))


def teammate_get(*, user_id: str) -> Teammate:
    """One teammate from GET /v2/api/users/{id}. Raises AlloNotFoundError if not on the team."""
    return get_client().get_user(user_id)


def teammate_name(*, user_id: str | None) -> str | None:
    """Best effort: a teammate's name for a message, or None when it cannot be read."""
    if user_id is None:
        return None
    try:
        return teammate_get(user_id=user_id).name or user_id
    except AlloError:
        return user_id


# Queues -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSettings:
    """The three settings a manager edits; ``name`` is "" for a queue without one."""

    name: str
    voicemail_handling: str
    do_not_disturb: str

    @classmethod
    def of(cls, queue: Queue | None) -> QueueSettings:
        """A queue's settings, or Allo's apparent defaults when there is no queue yet."""
        if queue is None:
            return cls(
                name="",
                voicemail_handling=DEFAULT_VOICEMAIL_HANDLING,
                do_not_disturb=DEFAULT_DO_NOT_DISTURB,
            )
        return cls(
            name=queue.name or "",
            voicemail_handling=queue.voicemail_handling or DEFAULT_VOICEMAIL_HANDLING,
            do_not_disturb=queue.do_not_disturb or DEFAULT_DO_NOT_DISTURB,
        )


@dataclass(frozen=True)
class OutcomeCount:
    """How many numbers of a queue ended one way; ``key`` is a label key and a CSS modifier."""

    key: str
    label: str
    count: int
    percent: float
    offset: float


@dataclass(frozen=True)
class QueueOverview:
    """A teammate's queue (None: none yet) and its numbers counted by outcome."""

    queue: Queue | None
    summary: tuple[OutcomeCount, ...]

    @property
    def size(self) -> int:
        return len(self.queue.numbers) if self.queue else 0


@dataclass(frozen=True)
class QueueSave:
    """The outcome of a save: the queue Allo returned, and which fields were sent.

    ``sent`` empty means nothing changed and nothing was sent (``queue`` is then None).
    """

    queue: Queue | None
    sent: tuple[str, ...]


def queue_summary(*, queue: Queue | None) -> tuple[OutcomeCount, ...]:
    """Count a queue's numbers by outcome, in a fixed order; unknown results come last, raw."""
    if queue is None or not queue.numbers:
        return ()
    counts: Counter[str] = Counter()
    unknown_labels: dict[str, str] = {}
    for number in queue.numbers:
        outcome = number_outcome(number)
        if outcome == UNKNOWN_OUTCOME:
            # Keep each unknown value apart, under its own raw name.
            raw = number.routing_result or UNKNOWN_OUTCOME
            key = f"{UNKNOWN_OUTCOME}:{raw}"
            unknown_labels[key] = outcome_label(outcome, number)
            counts[key] += 1
        else:
            counts[outcome] += 1
    total = len(queue.numbers)
    order = [key for key in OUTCOME_LABELS if counts[key]] + sorted(unknown_labels)
    summary = []
    offset = 0.0
    for key in order:
        percent = round(100 * counts[key] / total, 2)
        summary.append(
            OutcomeCount(
                key=key if key in OUTCOME_LABELS else UNKNOWN_OUTCOME,
                label=unknown_labels.get(key) or str(OUTCOME_LABELS[key]),
                count=counts[key],
                percent=percent,
                offset=round(offset, 2),
            )
        )
        offset += percent
    return tuple(summary)


@dataclass(frozen=True)
class NumbersPage:
    """One page of a queue's numbers, in order; ``number`` counts from 1."""

    numbers: tuple[QueueNumber, ...]
    number: int
    num_pages: int
    count: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1


def queue_numbers_page_of(*, queue: Queue, page: int) -> NumbersPage:
    """A page of a queue already read in full; a page out of range gives the nearest one."""
    count = len(queue.numbers)
    num_pages = max(1, -(-count // NUMBERS_PER_PAGE))
    number = min(max(1, page), num_pages)
    start = (number - 1) * NUMBERS_PER_PAGE
    return NumbersPage(
        numbers=queue.numbers[start : start + NUMBERS_PER_PAGE],
        number=number,
        num_pages=num_pages,
        count=count,
    )


def queue_numbers_page(*, user_id: str, page: int) -> NumbersPage | None:
    """One page of a teammate's numbers in one read (GET dialing-queues/current?page&size).

    For paging through the table without reading the whole queue again. None when the
    teammate has no queue. Raises AlloError.
    """
    client = get_client()
    answer = client.get_queue_page(user_id=user_id, page=max(1, page), size=NUMBERS_PER_PAGE)
    if answer.queue is None:
        return None
    if not answer.numbers and answer.total_pages and page > answer.total_pages:
        answer = client.get_queue_page(
            user_id=user_id, page=answer.total_pages, size=NUMBERS_PER_PAGE
        )
    return NumbersPage(
        numbers=answer.numbers,
        number=answer.page,
        num_pages=max(1, answer.total_pages),
        count=answer.total_count,
    )


def queue_overview(*, user_id: str) -> QueueOverview:
    """A teammate's current queue with every number, and its summary.

    Reads every page (GET /v2/api/dialing-queues/current, 100 numbers a page), so the summary
    and the table come from one snapshot: a full 1,000-number queue costs 10 reads of the
    key's 20 per second. Raises AlloError (AlloNotFoundError: not on the team;
    AlloWrongTeammateError: Allo answered with someone else's queue).
    """
    queue = get_client().get_queue(user_id=user_id)
    return QueueOverview(queue=queue, summary=queue_summary(queue=queue))


def queue_settings_update(*, user_id: str, wanted: QueueSettings, seen: QueueSettings) -> QueueSave:
    """Send Allo only the settings the manager changed (PATCH dialing-queues/current).

    A setting is sent when its wanted value differs from the value the manager saw; an empty
    name is never sent (Allo cannot clear a name). Nothing changed: no request at all. The
    PATCH creates the queue when the teammate has none. Raises AlloError; on a timeout or 5xx
    the change may or may not have been applied (``AlloUnavailableError.request_sent``).
    """
    changes: dict[str, str] = {}
    if wanted.name and wanted.name != seen.name:
        changes["name"] = wanted.name
    if wanted.voicemail_handling != seen.voicemail_handling:
        changes["voicemail_handling"] = wanted.voicemail_handling
    if wanted.do_not_disturb != seen.do_not_disturb:
        changes["do_not_disturb"] = wanted.do_not_disturb
    if not changes:
        return QueueSave(queue=None, sent=())
    queue = get_client().upsert_queue(
        user_id=user_id,
        name=changes.get("name", UNSET),
        voicemail_handling=changes.get("voicemail_handling", UNSET),
        do_not_disturb=changes.get("do_not_disturb", UNSET),
    )
    return QueueSave(queue=queue, sent=tuple(changes))


# The connection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingScope:
    scope: str
    consequence: str


@dataclass(frozen=True)
class Connection:
    """What Allo says about the dashboard's key, and where the dashboard talks to Allo."""

    base_url: str
    me: Me
    missing_scopes: tuple[MissingScope, ...]


def connection_describe() -> Connection:
    """GET /v2/api/me (any valid key may call it) and the scopes this dashboard lacks.

    Raises AlloError. The key itself is never part of the answer.
    """
    me = get_client().me()
    missing = tuple(
        MissingScope(scope=scope, consequence=str(consequence))
        for scope, consequence in REQUIRED_SCOPES.items()
        if scope not in me.scopes
    )
    return Connection(base_url=settings.ALLO_API_BASE_URL, me=me, missing_scopes=missing)
