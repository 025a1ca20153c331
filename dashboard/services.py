"""What a manager can do, as plain functions over the Allo client.

Views call these and turn the ``AlloError`` they raise into words (``dashboard.failures``).
Nothing here knows about requests, forms or templates.
"""

from __future__ import annotations

import hashlib
import math
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from dashboard.allo.client import UNSET, get_client, new_request_id
from dashboard.allo.errors import AlloError, AlloRateLimitedError
from dashboard.allo.types import (
    SCOPE_DIALING_QUEUE,
    SCOPE_USERS_READ,
    Me,
    Queue,
    QueueNumber,
    Teammate,
)
from dashboard.audit import Author, audit_applied, audit_begin, audit_failed, audit_interrupted
from dashboard.labels import (
    GROUP_LABELS,
    OUTCOME_LABELS,
    UNKNOWN_OUTCOME,
    number_outcome,
    outcome_group,
    outcome_label,
)
from dashboard.models import AuditEntry

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
    # The same queue counted for its row of the teammates page.
    tally: QueueTally | None = None

    @property
    def size(self) -> int:
        return len(self.queue.numbers) if self.queue else 0

    @property
    def left(self) -> int:
        return self.tally.left if self.tally else 0

    @property
    def last_call_at(self) -> datetime | None:
        """When the newest call of the queue started (None: no call yet)."""
        numbers = self.queue.numbers if self.queue else ()
        return max((n.call_start_date for n in numbers if n.call_start_date), default=None)


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
    return queue_overview_of(user_id=user_id, queue=get_client().get_queue(user_id=user_id))


def queue_overview_of(*, user_id: str, queue: Queue | None) -> QueueOverview:
    """The overview of a queue already read or returned by a save (no call to Allo); its
    count is kept for the teammates page."""
    return QueueOverview(
        queue=queue,
        summary=queue_summary(queue=queue),
        tally=queue_tally_remember(user_id=user_id, queue=queue),
    )


def queue_settings_update(
    *,
    user_id: str,
    wanted: QueueSettings,
    seen: QueueSettings,
    author: Author,
    teammate_name: str = "",
) -> QueueSave:
    """Send Allo only the settings the manager changed (PATCH dialing-queues/current).

    A setting is sent when its wanted value differs from the value the manager saw; an empty
    name is never sent (Allo cannot clear a name). Nothing changed: no request at all. The
    PATCH creates the queue when the teammate has none. Raises AlloError; on a timeout or 5xx
    the change may or may not have been applied (``AlloUnavailableError.request_sent``).

    Every PATCH is in the audit trail: an entry (``author``, the teammate, each field's seen
    and wanted value, the request id) is written before it leaves, and completed with the
    outcome after.
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
    client = get_client()
    request_id = new_request_id()
    entry = audit_begin(
        author=author,
        teammate_id=user_id,
        teammate_name=teammate_name,
        action=AuditEntry.Action.QUEUE_SETTINGS,
        changes={
            field: {"before": getattr(seen, field), "after": value}
            for field, value in changes.items()
        },
        request_id=request_id,
    )
    try:
        queue = client.upsert_queue(
            user_id=user_id,
            name=changes.get("name", UNSET),
            voicemail_handling=changes.get("voicemail_handling", UNSET),
            do_not_disturb=changes.get("do_not_disturb", UNSET),
            request_id=request_id,
        )
    except AlloError as error:
        audit_failed(entry, error)
        raise
    except Exception:
        audit_interrupted(entry)
        raise
    audit_applied(
        entry,
        returned={
            "name": queue.name,
            "voicemail_handling": queue.voicemail_handling,
            "do_not_disturb": queue.do_not_disturb,
        },
    )
    return QueueSave(queue=queue, sent=tuple(changes))


# Live routing results ---------------------------------------------------------------------------

# A queue on screen is read again every LIVE_POLL_SECONDS while a rep dials it. A read returns
# 100 numbers, so a bigger queue costs more reads per refresh; it is refreshed less often, so
# that one queue on screen never costs more than LIVE_READS_PER_SECOND of Allo's 20.
LIVE_POLL_SECONDS = 4
LIVE_READS_PER_SECOND = 0.5
# Refreshes in a row that found nothing new before the refreshing stops (a minute at 4 s).
LIVE_IDLE_POLLS = 15
# A queue counts as being dialed when a call is in progress or one started this recently.
LIVE_RECENT_CALL = timedelta(minutes=15)

LIVE = "live"  # refreshing by itself
LIVE_DONE = "done"  # every number has been called: nothing more will come
LIVE_IDLE = "idle"  # nothing changed for LIVE_IDLE_POLLS refreshes in a row
LIVE_QUIET = "quiet"  # nobody seems to be dialing it: not refreshing unless asked
LIVE_NONE = "none"  # no queue, or no numbers: nothing to watch
LIVE_GONE = "gone"  # Allo refused for good (not on the team, permissions…): stopped


@dataclass(frozen=True)
class LiveState:
    """Whether a queue on screen refreshes itself, how often, and what it last looked like."""

    state: str
    fingerprint: str
    idle: int = 0
    interval: int = LIVE_POLL_SECONDS
    changed: bool = True

    @property
    def polling(self) -> bool:
        return self.state == LIVE

    @property
    def interval_ms(self) -> int:
        return self.interval * 1000


def queue_reads(size: int) -> int:
    """How many reads of 100 numbers it takes to read a queue of ``size`` numbers in full."""
    return max(1, math.ceil(size / 100))


def queue_fingerprint(queue: Queue | None) -> str:
    """A short digest of everything a manager sees of a queue: equal digests, nothing new."""
    if queue is None:
        return "none"
    digest = hashlib.sha256()
    digest.update(
        repr(
            (queue.id, queue.name, queue.voicemail_handling, queue.do_not_disturb, queue.updated_at)
        ).encode()
    )
    for number in queue.numbers:
        digest.update(
            repr(
                (
                    number.position,
                    number.number_to,
                    number.call_start_date,
                    number.routing_result,
                    number.not_reached_destination_reason,
                    number.detected_outbound_voicemail,
                    number.voicemail_left,
                    number.sync_status,
                )
            ).encode()
        )
    return digest.hexdigest()[:16]


def _in_progress(number: QueueNumber) -> bool:
    return number_outcome(number) == "dialed"


def queue_being_dialed(queue: Queue | None, *, now: datetime | None = None) -> bool:
    """Whether a rep seems to be dialing the queue: a call in progress, or one started lately."""
    if queue is None:
        return False
    if any(_in_progress(number) for number in queue.numbers):
        return True
    starts = [n.call_start_date for n in queue.numbers if n.call_start_date is not None]
    now = now or timezone.now()
    return bool(starts) and now - max(starts) <= LIVE_RECENT_CALL


def queue_live_state(
    *, queue: Queue | None, seen: str | None = None, idle: int = 0, watching: bool = False
) -> LiveState:
    """Decide whether a queue on screen keeps refreshing itself (no call to Allo).

    ``seen`` is the fingerprint the page shows (None: the first time it is shown), ``idle``
    how many refreshes in a row found nothing new, ``watching`` whether the page asked to
    refresh (a refresh in progress, or the manager pressed "Watch for changes").
    """
    fingerprint = queue_fingerprint(queue)
    changed = seen != fingerprint
    idle = 0 if changed else idle + 1
    interval = max(LIVE_POLL_SECONDS, math.ceil(queue_reads(_size(queue)) / LIVE_READS_PER_SECOND))
    if queue is None or not queue.numbers:
        state = LIVE_NONE
    elif all(n.called and not _in_progress(n) for n in queue.numbers):
        state = LIVE_DONE
    elif idle >= LIVE_IDLE_POLLS:
        state = LIVE_IDLE
    elif watching or queue_being_dialed(queue):
        state = LIVE
    else:
        state = LIVE_QUIET
    return LiveState(
        state=state, fingerprint=fingerprint, idle=idle, interval=interval, changed=changed
    )


def _size(queue: Queue | None) -> int:
    return len(queue.numbers) if queue else 0


# The teammates page: each queue counted, and the team overview -----------------------------------

# Counts shown on the teammates page may be this old (seconds); the card of an open queue is
# always read afresh. Counts are kept a little longer, for the overview's later batches.
TALLY_MAX_AGE = 30
TALLY_KEEP_SECONDS = 120
# The overview reads at most about this many times per request (one request a second), which
# keeps it under half of Allo's 20 reads a second; the rest is read by the next request.
TEAM_READS_PER_BATCH = 8


@dataclass(frozen=True)
class QueueTally:
    """A teammate's queue counted for one row of the teammates page (small, so it is cached).

    ``counts`` pairs each GROUP_LABELS key with its count (no words: a count kept in the cache
    is shown to managers in either language); ``left`` the numbers not called yet; ``calling``
    whether a call is in progress; ``reads`` what reading it cost; ``read_at`` when
    (time.time()).
    """

    user_id: str
    has_queue: bool
    name: str | None
    size: int
    counts: tuple[tuple[str, int], ...]
    left: int
    calling: bool
    reads: int
    read_at: float

    @property
    def called(self) -> int:
        return self.size - self.left

    @property
    def groups(self) -> tuple[OutcomeCount, ...]:
        """The compact bar, in words of the language now active; empty groups left out."""
        return _groups_of(dict(self.counts), self.size)


def _with_percent(counts: Sequence[tuple[str, str, int]], total: int) -> tuple[OutcomeCount, ...]:
    """(key, label, count) triples as OutcomeCounts with their share of ``total`` and offset."""
    items = []
    offset = 0.0
    for key, label, count in counts:
        if not count:
            continue
        percent = round(100 * count / total, 2) if total else 0.0
        items.append(
            OutcomeCount(
                key=key, label=label, count=count, percent=percent, offset=round(offset, 2)
            )
        )
        offset += percent
    return tuple(items)


def _groups_of(counts: Mapping[str, int], total: int) -> tuple[OutcomeCount, ...]:
    return _with_percent(
        [(key, str(label), counts.get(key, 0)) for key, label in GROUP_LABELS.items()], total
    )


# Bumped whenever QueueTally changes shape, so that a deploy never reads another's counts.
TALLY_VERSION = 2


def _tally_key(user_id: str) -> str:
    digest = hashlib.sha256(user_id.encode()).hexdigest()[:32]
    return f"dashboard:tally:v{TALLY_VERSION}:{digest}"


def queue_tally_remember(*, user_id: str, queue: Queue | None) -> QueueTally:
    """Count a queue just read (no call to Allo) and keep the count for the teammates page."""
    numbers = queue.numbers if queue else ()
    counts = Counter(outcome_group(number_outcome(n)) for n in numbers)
    tally = QueueTally(
        user_id=user_id,
        has_queue=queue is not None,
        name=queue.name if queue else None,
        size=len(numbers),
        counts=tuple((key, counts[key]) for key in GROUP_LABELS if counts[key]),
        left=counts["pending"],
        calling=counts["calling"] > 0,
        reads=queue_reads(_size(queue)),
        read_at=time.time(),
    )
    cache.set(_tally_key(user_id), tally, TALLY_KEEP_SECONDS)
    return tally


@dataclass(frozen=True)
class TeamTally:
    """The listed teammates' queues, counted as far as Allo's read budget allowed.

    ``tallies`` and ``failures`` are keyed by teammate id; ``waiting`` are the teammates not
    counted yet (the next request reads them, after ``retry_after`` seconds when Allo said to
    wait); ``reads`` is what this request spent.
    """

    user_ids: tuple[str, ...]
    tallies: dict[str, QueueTally] = field(default_factory=dict)
    failures: dict[str, AlloError] = field(default_factory=dict)
    waiting: tuple[str, ...] = ()
    reads: int = 0
    retry_after: float | None = None

    @property
    def complete(self) -> bool:
        return not self.waiting

    @property
    def counted(self) -> int:
        return len(self.tallies)

    @property
    def queues(self) -> int:
        return sum(1 for tally in self.tallies.values() if tally.has_queue)

    @property
    def dialing(self) -> int:
        return sum(1 for tally in self.tallies.values() if tally.calling)

    @property
    def numbers(self) -> int:
        return sum(tally.size for tally in self.tallies.values())

    @property
    def left(self) -> int:
        return sum(tally.left for tally in self.tallies.values())

    @property
    def called(self) -> int:
        return self.numbers - self.left

    @property
    def groups(self) -> tuple[OutcomeCount, ...]:
        counts: Counter[str] = Counter()
        for tally in self.tallies.values():
            counts.update(dict(tally.counts))
        return _groups_of(counts, self.numbers)

    def count_of(self, key: str) -> int:
        return sum(item.count for item in self.groups if item.key == key)

    @property
    def answered(self) -> int:
        return self.count_of("answered")

    @property
    def answered_share(self) -> int:
        """Answered calls, in percent of the numbers called (rounded)."""
        return round(100 * self.answered / self.called) if self.called else 0

    @property
    def oldest_read_at(self) -> float | None:
        return min((tally.read_at for tally in self.tallies.values()), default=None)


def team_tally(
    *, user_ids: Sequence[str], fresh_since: float, read_budget: int = TEAM_READS_PER_BATCH
) -> TeamTally:
    """Count each teammate's queue for the teammates page and its overview.

    A count kept since ``fresh_since`` (time.time()) costs nothing; any other is read in full
    (GET /v2/api/dialing-queues/current, 100 numbers a read: 1 to 10 reads a queue) while this
    call has spent less than ``read_budget`` reads (0: no reads at all). Allo's 429 stops the
    reading; the teammates not counted are ``waiting``. Other AlloErrors are kept per teammate.
    """
    client = get_client()
    tallies: dict[str, QueueTally] = {}
    failures: dict[str, AlloError] = {}
    waiting: list[str] = []
    spent = 0
    retry_after: float | None = None
    busy = False
    for user_id in user_ids:
        kept = cache.get(_tally_key(user_id))
        if isinstance(kept, QueueTally) and kept.read_at >= fresh_since:
            tallies[user_id] = kept
            continue
        if busy or spent >= read_budget:
            waiting.append(user_id)
            continue
        try:
            queue = client.get_queue(user_id=user_id)
        except AlloRateLimitedError as error:
            busy = True
            retry_after = error.retry_after
            spent += 1
            waiting.append(user_id)
            continue
        except AlloError as error:
            failures[user_id] = error
            spent += 1
            continue
        tally = queue_tally_remember(user_id=user_id, queue=queue)
        tallies[user_id] = tally
        spent += tally.reads
    return TeamTally(
        user_ids=tuple(user_ids),
        tallies=tallies,
        failures=failures,
        waiting=tuple(waiting),
        reads=spent,
        retry_after=retry_after,
    )


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
