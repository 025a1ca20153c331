"""What a manager can do, as plain functions over the Allo client.

Views call these and turn the ``AlloError`` they raise into words (``dashboard.failures``).
Nothing here knows about requests, forms or templates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from dashboard.allo.client import UNSET, get_client, new_request_id
from dashboard.allo.errors import (
    AlloBadResponseError,
    AlloError,
    AlloRateLimitedError,
    AlloUnavailableError,
)
from dashboard.allo.reads import Snapshot, cached_expire, cached_put, cached_read
from dashboard.allo.resilience import current_deadline, deadline
from dashboard.allo.types import (
    SCOPE_DIALING_QUEUE,
    SCOPE_USERS_READ,
    Me,
    Queue,
    QueueNumber,
    Teammate,
)
from dashboard.audit import (
    Author,
    audit_applied,
    audit_begin,
    audit_checked,
    audit_failed,
    audit_interrupted,
)
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


# Shared reads -----------------------------------------------------------------------------------


def _wall_clock() -> Callable[[], float]:
    """The Allo client's Unix clock (the sandbox's fake clock in tests): snapshots age on it,
    as the circuit breaker's cool-down does."""
    return get_client().circuit.timing.wall


def _shared_read[T](key: str, fetch: Callable[[], T]) -> Snapshot[T]:
    """``fetch()``'s answer, shared by every process for ALLO_SNAPSHOT_SECONDS under ``key``
    and served stale for ALLO_SNAPSHOT_STALE_SECONDS more while Allo cannot answer (see
    ``dashboard.allo.reads.cached_read``)."""
    return cached_read(
        key,
        ttl=settings.ALLO_SNAPSHOT_SECONDS,
        stale_ttl=settings.ALLO_SNAPSHOT_STALE_SECONDS,
        fetch=fetch,
        clock=_wall_clock(),
    )


def _shared_expire(key: str) -> None:
    """The answer kept under ``key`` is not fresh any more (a write may have changed it); it is
    still shown, stale, while Allo cannot answer."""
    cached_expire(
        key,
        ttl=settings.ALLO_SNAPSHOT_SECONDS,
        stale_ttl=settings.ALLO_SNAPSHOT_STALE_SECONDS,
        clock=_wall_clock(),
    )


def _shared_put(key: str, value: object) -> None:
    """``value`` is Allo's newest answer for ``key`` (a write returned it): shared at once."""
    cached_put(
        key,
        value,
        ttl=settings.ALLO_SNAPSHOT_SECONDS,
        stale_ttl=settings.ALLO_SNAPSHOT_STALE_SECONDS,
        clock=_wall_clock(),
    )


@dataclass(frozen=True)
class Freshness:
    """How old what a page shows is: when Allo said it, and whether a newer answer was wanted
    but could not be had (``error`` says why)."""

    fetched_at: datetime
    age: float
    stale: bool = False
    error: AlloError | None = None

    @classmethod
    def of(cls, snapshot: Snapshot[object]) -> Freshness:
        return cls(
            fetched_at=snapshot.fetched_at,
            age=snapshot.age,
            stale=snapshot.stale,
            error=snapshot.error,
        )

    @property
    def allo_down(self) -> bool:
        """Stale because Allo does not answer (not merely busy): changes are paused."""
        return self.stale and isinstance(self.error, AlloUnavailableError | AlloBadResponseError)

    @property
    def shown_stale(self) -> bool:
        """Stale for a reason worth telling: Allo down or busy (not another process's refresh
        in progress, which is a matter of a second)."""
        return self.stale and self.error is not None


# Teammates --------------------------------------------------------------------------------------


def _folded(text: str) -> str:
    """Lower case without accents, so "helene" finds "Hélène"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def teammate_list(
    *, role: str | None = None, status: str | None = "ACTIVE", query: str = ""
) -> list[Teammate]:
    """The team from GET /v2/api/users, filtered, sorted by name (see teammate_list_snapshot).

    Raises AlloError.
    """
    return teammate_list_snapshot(role=role, status=status, query=query).value


def teammate_list_snapshot(
    *, role: str | None = None, status: str | None = "ACTIVE", query: str = ""
) -> Snapshot[list[Teammate]]:
    """The team from GET /v2/api/users, filtered, sorted by name, and how old that answer is.

    ``role`` and ``status`` are filtered by Allo; ``status="all"`` reads ACTIVE and BLOCKED
    (two requests: Allo has no "every status" value). The answer is shared by every manager
    for ALLO_SNAPSHOT_SECONDS, and served stale (``stale``, with its ``age``) while Allo cannot
    answer. ``query`` matches name or email, ignoring case and accents (no request). Raises
    AlloError when nothing recent enough is kept.
    """

    def fetch() -> list[Teammate]:
        client = get_client()
        if status == ALL_STATUSES:
            people = client.list_users(role=role, status="ACTIVE")
            seen = {person.id for person in people}
            people += [
                person
                for person in client.list_users(role=role, status="BLOCKED")
                if person.id not in seen
            ]
            return people
        return client.list_users(role=role, status=status)

    snapshot = _shared_read(f"team:{role or ''}:{status or ''}", fetch)
    people = snapshot.value
    needle = _folded(query.strip())
    if needle:
        people = [
            person
            for person in people
            if needle in _folded(person.name) or needle in _folded(person.email or "")
        ]
    people = sorted(people, key=lambda person: (_folded(person.name), person.id))
    return dataclasses.replace(snapshot, value=people)


def teammate_get(*, user_id: str) -> Teammate:
    """One teammate from GET /v2/api/users/{id}, shared for a few seconds (stale while Allo
    cannot answer). Raises AlloNotFoundError if not on the team."""
    return _shared_read(f"user:{user_id}", lambda: get_client().get_user(user_id)).value


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
    # How old this answer of Allo's is (None: just returned by a write).
    freshness: Freshness | None = None

    @property
    def allo_down(self) -> bool:
        """Shown from Allo's last answer because Allo does not answer: changes are paused."""
        return self.freshness is not None and self.freshness.allo_down

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


SETTINGS_FIELDS = ("name", "voicemail_handling", "do_not_disturb")

# How a save ended (QueueSave.outcome).
SAVED = "saved"  # Allo has the new settings (it said so, or a read after a lost answer showed it)
UNCHANGED = "unchanged"  # Allo already had them: nothing was sent
CONFLICT = "conflict"  # someone changed a setting this save would overwrite: nothing was sent
NOT_SAVED = "not-saved"  # Allo failed the write (5xx, bad body), and a read after it lacks it
UNKNOWN = "unknown"  # Allo's answer was lost, and nothing could prove whether it applied
NOT_SENT = "not-sent"  # the queue could not be read before writing: nothing was sent
DUPLICATE = "duplicate"  # this form was already sent (a double click): not sent again
REFUSED = "refused"  # (a first submission's end, for its duplicates) Allo refused the change

# A resolve_<field> decision on a conflicting field.
OVERWRITE = "overwrite"
KEEP = "keep"

# Once a save has sent its PATCH, a second submission of the same form (same token) is not sent
# again for this long; it waits at most DUPLICATE_WAIT seconds for the first one's outcome.
SAVE_TOKEN_SECONDS = 60
DUPLICATE_WAIT = 5.0
DUPLICATE_POLL = 0.1
_PENDING = "pending"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")

# Of a save's deadline, the part kept back from the PATCH to read the queue again if Allo's
# answer is lost (a hang takes all the time it is given): a quarter, at most VERIFY_RESERVE_MAX.
VERIFY_SHARE = 0.25
VERIFY_RESERVE_MAX = 1.5


@dataclass(frozen=True)
class FieldConflict:
    """A setting someone else changed in Allo while the manager had the form open: what the
    manager saw, what Allo has now, what the manager wants (raw values, "" for none)."""

    field: str
    seen: str
    current: str
    wanted: str


@dataclass(frozen=True)
class QueueSave:
    """How a save ended (``outcome``, one of SAVED, UNCHANGED, CONFLICT, NOT_SAVED, UNKNOWN,
    NOT_SENT, DUPLICATE) and what Allo has.

    ``queue`` is Allo's queue after the save (SAVED: as the PATCH returned it, with every
    number, or as read again, see ``verified``) or as read before it (UNCHANGED, CONFLICT);
    ``current`` the settings Allo had before (all "" when there was no queue, None when the
    queue could not be read or this is a DUPLICATE); ``sent`` the fields the PATCH
    carried; ``conflicts`` what the manager must decide; ``error`` the failure whose answer was
    lost (NOT_SAVED, UNKNOWN), or why the queue could not be read before writing (NOT_SENT:
    an AlloUnavailableError then says ``request_sent`` False); ``verified`` whether the
    outcome was established by reading the queue again after that failure; ``first`` how the
    first submission of a DUPLICATE ended (SAVED, UNCHANGED, NOT_SAVED, UNKNOWN, REFUSED, or
    None: still running).
    """

    outcome: str
    queue: Queue | None = None
    sent: tuple[str, ...] = ()
    current: QueueSettings | None = None
    conflicts: tuple[FieldConflict, ...] = ()
    error: AlloError | None = None
    verified: bool = False
    first: str | None = None

    @property
    def saved(self) -> bool:
        return self.outcome == SAVED


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


def _queue_key(user_id: str) -> str:
    return f"queue:{user_id}"


def queue_overview(*, user_id: str) -> QueueOverview:
    """A teammate's current queue with every number, and its summary.

    Reads every page (GET /v2/api/dialing-queues/current, 100 numbers a page), so the summary
    and the table come from one snapshot: a full 1,000-number queue costs 10 reads of the
    key's 20 per second. The answer is shared by every manager for ALLO_SNAPSHOT_SECONDS, and
    shown stale (``freshness``) while Allo cannot answer. Raises AlloError when nothing recent
    enough is kept (AlloNotFoundError: not on the team; AlloWrongTeammateError: Allo answered
    with someone else's queue).
    """
    snapshot = _shared_read(_queue_key(user_id), lambda: get_client().get_queue(user_id=user_id))
    freshness = Freshness.of(snapshot)
    queue = snapshot.value
    return QueueOverview(
        queue=queue,
        summary=queue_summary(queue=queue),
        # Only an answer of the last seconds counts for the teammates page's row.
        tally=(
            queue_tally_remember(user_id=user_id, queue=queue, age=snapshot.age)
            if not snapshot.stale
            else None
        ),
        freshness=freshness,
    )


def queue_overview_of(*, user_id: str, queue: Queue | None) -> QueueOverview:
    """The overview of a queue already read or returned by a save (no call to Allo); its
    count is kept for the teammates page."""
    return QueueOverview(
        queue=queue,
        summary=queue_summary(queue=queue),
        tally=queue_tally_remember(user_id=user_id, queue=queue),
    )


def _settings_now(queue: Queue | None) -> QueueSettings:
    """A queue's settings as Allo has them, all empty when there is no queue (so that every
    setting the manager chose counts as a change: the PATCH creates the queue)."""
    if queue is None:
        return QueueSettings(name="", voicemail_handling="", do_not_disturb="")
    return QueueSettings.of(queue)


def queue_settings_merge(
    *,
    wanted: QueueSettings,
    seen: QueueSettings,
    current: QueueSettings,
    decisions: Mapping[str, str] | None = None,
) -> tuple[QueueSettings, tuple[FieldConflict, ...]]:
    """What to ask Allo for, given what the manager wants, what they saw, and what Allo has.

    Per setting: one the manager left as they saw it, or chose to ``keep`` after a conflict
    (``decisions``), takes Allo's current value (a change made meanwhile by someone else stays:
    different settings merge); one they changed takes their value, unless someone else changed
    it meanwhile to something else: a conflict. An ``overwrite`` decision needs no exception
    here: the conflict form shows Allo's value as the one seen, so the manager's value is sent
    unless that value changed yet again (a new conflict). An empty name is never asked for
    (Allo cannot remove one). No call to Allo.
    """
    decisions = decisions or {}
    target: dict[str, str] = {}
    conflicts: list[FieldConflict] = []
    for name in SETTINGS_FIELDS:
        want, saw, now = getattr(wanted, name), getattr(seen, name), getattr(current, name)
        if (name == "name" and not want) or want == saw or decisions.get(name) == KEEP:
            target[name] = now
        elif now in (saw, want):
            target[name] = want
        else:
            target[name] = now
            conflicts.append(FieldConflict(field=name, seen=saw, current=now, wanted=want))
    return QueueSettings(**target), tuple(conflicts)


def _not_sent(error: AlloError) -> AlloError:
    """A failure before any PATCH left, told as one: an AlloUnavailableError saying so."""
    if isinstance(error, AlloUnavailableError):
        return dataclasses.replace(error, request_sent=False)
    if isinstance(error, AlloBadResponseError):
        return AlloUnavailableError(
            message=error.message,
            code=error.code,
            request_id=error.request_id,
            status=error.status,
            request_sent=False,
        )
    return error


def _save_key(token: str) -> str:
    return f"dashboard:save:{token}"


def _valid_token(token: str | None) -> str | None:
    return token if token and _TOKEN_SHAPE.fullmatch(token) else None


def _first_outcome(key: str) -> str | None:
    """Wait (a little) for the first submission of a form to end; its outcome, or None.

    The first submission deletes its claim when it sent nothing (a conflict, nothing to save,
    Allo unreachable): then this one may go ahead, and takes the claim itself.
    """
    wait = get_client().circuit.timing.sleep
    for _poll in range(int(DUPLICATE_WAIT / DUPLICATE_POLL)):
        if cache.add(key, _PENDING, SAVE_TOKEN_SECONDS):
            return ""
        found = cache.get(key)
        if found is not None and found != _PENDING:
            return str(found)
        until = current_deadline()
        if until is not None and until.remaining() < DUPLICATE_POLL:
            break
        wait(DUPLICATE_POLL)
    return None


def queue_settings_update(
    *,
    user_id: str,
    wanted: QueueSettings,
    seen: QueueSettings,
    author: Author,
    teammate_name: str = "",
    decisions: Mapping[str, str] | None = None,
    token: str | None = None,
) -> QueueSave:
    """Save a teammate's queue settings without losing anyone's change, and say truly how it
    ended (see QueueSave). One deadline (ALLO_ACTION_DEADLINE) covers it all.

    1. Claims ``token`` (the form's one-time token): the same form sent again while or after
       its PATCH left is not sent twice (DUPLICATE, with the first one's outcome).
    2. Reads the queue's settings afresh (GET dialing-queues/current, one number a page);
       failing that, NOT_SENT with the read's error (nothing was sent).
    3. Merges (``queue_settings_merge``): a setting someone else changed meanwhile, that this
       save would overwrite, is a CONFLICT (nothing sent) unless ``decisions`` settles it.
    4. Sends only the settings that differ from Allo's (PATCH dialing-queues/current; it
       creates the queue when there is none); none: UNCHANGED, nothing sent.
    5. The audit trail records the PATCH before it leaves, with Allo's values as "before".
    6. When Allo's answer is lost (a timeout after sending, a 5xx, a body that is not JSON),
       the PATCH is never repeated: the queue is read again, within a share of the deadline
       kept for it, and the save is SAVED if Allo has the new values; NOT_SAVED if not and
       Allo answered (a 5xx, a malformed body: it is done with the PATCH); UNKNOWN if not and
       Allo never answered (a timeout: the PATCH may still be running), or when it could not
       be read.

    Raises AlloError when Allo refused the PATCH (4xx), the PATCH surely never left
    (``AlloUnavailableError.request_sent`` False: the circuit opened, no rate budget…), or Allo
    changed someone else's queue (AlloWrongTeammateError).
    """
    client = get_client()
    with deadline(clock=client.circuit.timing.monotonic):
        token = _valid_token(token)
        key = _save_key(token) if token else None
        if key is not None and not cache.add(key, _PENDING, SAVE_TOKEN_SECONDS):
            first = _first_outcome(key)
            if first != "":
                return QueueSave(outcome=DUPLICATE, first=first)
        sent = False
        ended = REFUSED
        progress = _SaveProgress()
        try:
            result = _settings_update(
                user_id=user_id,
                wanted=wanted,
                seen=seen,
                author=author,
                teammate_name=teammate_name,
                decisions=decisions,
                progress=progress,
            )
            sent, ended = bool(result.sent), result.outcome
            return result
        except AlloError as error:
            sent = not (isinstance(error, AlloUnavailableError) and not error.request_sent)
            raise
        except BaseException:
            # The dashboard itself failed. Mid-send (the PATCH may have left): never send this
            # form again. Before it (a database error, say): nothing left, the token is freed.
            if progress.sending:
                sent, ended = True, UNKNOWN
            raise
        finally:
            if key is not None:
                if sent:
                    cache.set(key, ended, SAVE_TOKEN_SECONDS)
                else:
                    cache.delete(key)


@dataclass
class _SaveProgress:
    """How far a save went: ``sending`` once the PATCH is about to leave (it may have)."""

    sending: bool = False


def _settings_update(
    *,
    user_id: str,
    wanted: QueueSettings,
    seen: QueueSettings,
    author: Author,
    teammate_name: str,
    decisions: Mapping[str, str] | None,
    progress: _SaveProgress | None = None,
) -> QueueSave:
    client = get_client()
    try:
        before = client.get_queue_page(user_id=user_id, page=1, size=1).queue
    except AlloError as error:
        return QueueSave(outcome=NOT_SENT, error=_not_sent(error))
    current = _settings_now(before)
    target, conflicts = queue_settings_merge(
        wanted=wanted, seen=seen, current=current, decisions=decisions
    )
    if conflicts:
        return QueueSave(outcome=CONFLICT, queue=before, current=current, conflicts=conflicts)
    changes = {
        name: getattr(target, name)
        for name in SETTINGS_FIELDS
        if getattr(target, name) != getattr(current, name)
    }
    if not changes:
        return QueueSave(outcome=UNCHANGED, queue=before, current=current)
    request_id = new_request_id()
    entry = audit_begin(
        author=author,
        teammate_id=user_id,
        teammate_name=teammate_name,
        action=AuditEntry.Action.QUEUE_SETTINGS,
        changes={
            name: {"before": getattr(current, name), "after": value}
            for name, value in changes.items()
        },
        request_id=request_id,
    )
    sent = tuple(changes)
    until = current_deadline()
    reserve = min(VERIFY_RESERVE_MAX, until.remaining() * VERIFY_SHARE) if until else 0.0
    try:
        with deadline(
            max(until.remaining() - reserve, 0.0) if until else None,
            clock=until.clock if until else client.circuit.timing.monotonic,
        ):
            if progress is not None:
                progress.sending = True
            queue = client.upsert_queue(
                user_id=user_id,
                name=changes.get("name", UNSET),
                voicemail_handling=changes.get("voicemail_handling", UNSET),
                do_not_disturb=changes.get("do_not_disturb", UNSET),
                request_id=request_id,
            )
    except (AlloUnavailableError, AlloBadResponseError) as error:
        if isinstance(error, AlloUnavailableError) and not error.request_sent:
            audit_failed(entry, error)
            raise
        return _check_lost_answer(
            user_id=user_id, entry=entry, error=error, changes=changes, current=current
        )
    except AlloError as error:
        audit_failed(entry, error)
        raise
    except Exception:
        audit_interrupted(entry)
        raise
    finally:
        # Whatever happened, the queue shared with other managers may be out of date.
        _shared_expire(_queue_key(user_id))
    audit_applied(entry, returned=_settings_dict(queue))
    # What Allo returned, every number included, is its newest answer: shared at once.
    _shared_put(_queue_key(user_id), queue)
    return QueueSave(outcome=SAVED, queue=queue, sent=sent, current=current)


def _settings_dict(queue: Queue) -> dict[str, str | None]:
    return {
        "name": queue.name,
        "voicemail_handling": queue.voicemail_handling,
        "do_not_disturb": queue.do_not_disturb,
    }


def _check_lost_answer(
    *,
    user_id: str,
    entry: AuditEntry,
    error: AlloError,
    changes: Mapping[str, str],
    current: QueueSettings,
) -> QueueSave:
    """After a PATCH whose answer was lost: read the queue again, and tell what Allo has."""
    try:
        after = get_client().get_queue_page(user_id=user_id, page=1, size=1).queue
    except AlloError:
        audit_failed(entry, error)
        return QueueSave(
            outcome=UNKNOWN, sent=tuple(changes), current=current, error=error, verified=False
        )
    applied = after is not None and all(
        getattr(QueueSettings.of(after), name) == value for name, value in changes.items()
    )
    if not applied and not _allo_finished(error):
        # No answer at all (a timeout): the PATCH may still be running at Allo, so a read
        # right after that lacks the change proves nothing. Unknown, not "not saved".
        audit_failed(entry, error)
        return QueueSave(
            outcome=UNKNOWN,
            queue=after,
            sent=tuple(changes),
            current=current,
            error=error,
            verified=False,
        )
    audit_checked(
        entry, error, applied=applied, found=_settings_dict(after) if after is not None else {}
    )
    return QueueSave(
        outcome=SAVED if applied else NOT_SAVED,
        queue=after,
        sent=tuple(changes),
        current=current,
        error=error,
        verified=True,
    )


def _allo_finished(error: AlloError) -> bool:
    """Whether Allo answered the lost request (a 5xx, a body that is not JSON), so that it
    is done with it. A timeout or a broken connection has no answer, nor has a gateway's 504
    (Allo may still be working on it behind the gateway)."""
    if isinstance(error, AlloBadResponseError):
        return True
    return error.status is not None and error.status != 504


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
    *,
    queue: Queue | None,
    seen: str | None = None,
    idle: int = 0,
    watching: bool = False,
    stale: bool = False,
) -> LiveState:
    """Decide whether a queue on screen keeps refreshing itself (no call to Allo).

    ``seen`` is the fingerprint the page shows (None: the first time it is shown), ``idle``
    how many refreshes in a row found nothing new, ``watching`` whether the page asked to
    refresh (a refresh in progress, or the manager pressed "Watch for changes"), ``stale``
    whether ``queue`` is an old snapshot shown because Allo could not be read afresh (such a
    refresh does not count as one that found nothing new).
    """
    fingerprint = queue_fingerprint(queue)
    changed = seen != fingerprint
    # A stale snapshot (Allo busy) says nothing about whether the queue changed: not counted.
    idle = 0 if changed else idle + (0 if stale else 1)
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


def queue_tally_remember(*, user_id: str, queue: Queue | None, age: float = 0.0) -> QueueTally:
    """Count a queue read ``age`` seconds ago (no call to Allo) and keep the count for the
    teammates page."""
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
        read_at=time.time() - age,
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
    reading; the teammates not counted are ``waiting``. While Allo does not answer (down, or
    its circuit open), a count kept from the last TALLY_KEEP_SECONDS is shown, with its age,
    rather than the failure. Other AlloErrors are kept per teammate.
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
            spent += 1
            if isinstance(kept, QueueTally) and isinstance(
                error, AlloUnavailableError | AlloBadResponseError
            ):
                tallies[user_id] = kept
            else:
                failures[user_id] = error
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
