"""The audit trail: every write the dashboard sends to Allo, who asked for it, and how it ended.

The service layer opens an entry (``pending``) before the request leaves and completes it once
Allo has answered or failed to; pages read the entries through the selectors below, always
narrowed to what an account may see. Nothing here talks to Allo.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date
from typing import TYPE_CHECKING, Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Max, QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard.allo.errors import (
    AlloBadResponseError,
    AlloError,
    AlloUnavailableError,
    AlloWrongTeammateError,
)
from dashboard.labels import DO_NOT_DISTURB_LABELS, VOICEMAIL_HANDLING_LABELS, label
from dashboard.models import AuditEntry

if TYPE_CHECKING:
    from dashboard.permissions import Access

Outcome = AuditEntry.Outcome

FIELD_LABELS: dict[str, Promise] = {
    "name": gettext_lazy("Queue name"),
    "voicemail_handling": gettext_lazy("When a voicemail answers"),
    "do_not_disturb": gettext_lazy("Incoming calls while dialing"),
}
VALUE_LABELS: dict[str, dict[str, Promise]] = {
    "voicemail_handling": VOICEMAIL_HANDLING_LABELS,
    "do_not_disturb": DO_NOT_DISTURB_LABELS,
}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Author:
    """Who asks for a write: the dashboard account, and the name to show for it."""

    user: AbstractBaseUser
    name: str


# Writing ----------------------------------------------------------------------------------------


class AuditInTransactionError(RuntimeError):
    """``audit_begin`` was called inside a transaction: its pending row would not be committed
    before the request to Allo leaves, and a rollback would erase the trace of a write that
    may have been applied (ATOMIC_REQUESTS, or an ``atomic()`` around the service)."""


def _in_transaction(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether a write now would wait for a commit. The atomic blocks a test case opens around
    each test do not count: tests roll back, and there nothing needs to outlive a crash."""
    connection = connections[using]
    if not connection.in_atomic_block:
        return not connection.get_autocommit()
    return any(not block._from_testcase for block in connection.atomic_blocks)


def audit_begin(
    *,
    author: Author,
    teammate_id: str,
    teammate_name: str,
    action: str,
    changes: dict[str, dict[str, Any]],
    request_id: str,
) -> AuditEntry:
    """Record a write about to be sent, as ``pending``.

    ``changes`` is ``{field: {"before": value shown, "after": value asked}}``; ``request_id``
    is the X-Request-Id the request will carry. The row must be committed before the request
    leaves, so this refuses to run inside a transaction (raises AuditInTransactionError).
    """
    if _in_transaction():
        raise AuditInTransactionError(
            "audit_begin() needs autocommit: the pending entry must be committed before the "
            "request leaves for Allo. Do not wrap writes to Allo in a transaction "
            "(ATOMIC_REQUESTS, atomic()); mark the view with transaction.non_atomic_requests."
        )
    return AuditEntry.objects.create(
        author=author.user,
        author_username=author.user.get_username(),
        author_name=author.name,
        teammate_id=teammate_id,
        teammate_name=teammate_name,
        action=action,
        changes=changes,
        allo_request_id=request_id,
    )


def audit_applied(entry: AuditEntry, *, returned: dict[str, Any]) -> None:
    """Complete an entry whose write Allo applied; ``returned`` holds what Allo now has.

    Each field's ``after`` becomes Allo's value; when Allo kept something other than what was
    asked, the asked value stays beside it as ``asked``.
    """
    results: dict[str, dict[str, Any]] = {}
    for field, change in entry.changes.items():
        if field in returned:
            result = {"after": returned[field]}
            if returned[field] != change.get("after"):
                result["asked"] = change.get("after")
            results[field] = result
    AuditEntry.objects.complete(entry.pk, outcome=Outcome.APPLIED, results=results)


def audit_failed(entry: AuditEntry, error: AlloError) -> None:
    """Complete an entry whose write failed: refused by Allo, misdirected, or unconfirmed.

    A misdirected write's message names no one (everyone who may see this teammate reads it,
    not necessarily the other one); the other teammate's id is kept apart, for operators.
    """
    other_teammate_id = ""
    if isinstance(error, AlloWrongTeammateError):
        outcome = Outcome.MISDIRECTED
        other_teammate_id = error.returned_user_id or ""
        message = _("Allo changed another teammate's queue instead.")
    elif isinstance(error, AlloUnavailableError | AlloBadResponseError):
        outcome = Outcome.UNKNOWN
        message = error.message
        if isinstance(error, AlloUnavailableError) and not error.request_sent:
            message = _("%(message)s The request never reached Allo.") % {"message": message}
    else:
        outcome = Outcome.REFUSED
        message = error.message
    AuditEntry.objects.complete(
        entry.pk,
        outcome=outcome,
        allo_code=error.code or (str(error.status) if error.status else ""),
        allo_message=message[:2000],
        allo_request_id=error.request_id or entry.allo_request_id,
        other_teammate_id=other_teammate_id[:100],
    )


def audit_interrupted(entry: AuditEntry) -> None:
    """Complete an entry whose write stopped on something other than Allo (a bug): unknown."""
    AuditEntry.objects.complete(
        entry.pk,
        outcome=Outcome.UNKNOWN,
        allo_message=_("The dashboard failed while sending this change."),
    )


def audit_checked(
    entry: AuditEntry, error: AlloError, *, applied: bool, found: dict[str, Any]
) -> None:
    """Complete an entry whose write Allo did not confirm (its answer was lost: a timeout
    after sending, a 5xx, a body that is not JSON), once the queue was read again.

    ``found`` holds the settings Allo has now. ``applied`` (it has every value asked): the
    entry is applied, each ``after`` being Allo's value. Otherwise the change was not applied:
    the entry is refused (Allo failed it), with Allo's failure as code. Either way the message
    says the outcome was checked by reading the queue again.
    """
    detail = error.message or error.code or str(error.status or "")
    if applied:
        outcome = Outcome.APPLIED
        message = _(
            "Allo did not confirm this change (%(detail)s); the queue, read again right after, "
            "has it."
        ) % {"detail": detail}
        results = {field: {"after": found[field]} for field in entry.changes if field in found}
    else:
        outcome = Outcome.REFUSED
        message = _(
            "Allo did not confirm this change (%(detail)s); the queue, read again right after, "
            "does not have it: it was not applied."
        ) % {"detail": detail}
        results = {}
    AuditEntry.objects.complete(
        entry.pk,
        outcome=outcome,
        allo_code=error.code or (str(error.status) if error.status else ""),
        allo_message=message[:2000],
        allo_request_id=error.request_id or entry.allo_request_id,
        results=results or None,
    )


# Reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One field of an entry in words: its label, and its value before and after."""

    field: str
    label: str
    before: str
    after: str
    asked: str | None


def _value_words(field: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    labels = VALUE_LABELS.get(field)
    return label(labels, str(value)) if labels else str(value)


def field_changes(entry: AuditEntry) -> list[FieldChange]:
    """An entry's changes in words, in the form's field order; unknown fields come last."""
    order = {field: index for index, field in enumerate(FIELD_LABELS)}
    result = []
    for field in sorted(entry.changes, key=lambda f: (order.get(f, len(order)), f)):
        change = entry.changes[field]
        if not isinstance(change, dict):
            continue
        result.append(
            FieldChange(
                field=field,
                label=str(FIELD_LABELS.get(field, field)),
                before=_value_words(field, change.get("before")),
                after=_value_words(field, change.get("after")),
                asked=_value_words(field, change["asked"]) if "asked" in change else None,
            )
        )
    return result


# The badge style of each outcome (existing badge colours: green, red, amber, grey).
OUTCOME_BADGES = {
    Outcome.APPLIED: "answered",
    Outcome.REFUSED: "failed",
    Outcome.MISDIRECTED: "failed",
    Outcome.UNKNOWN: "busy",
    Outcome.PENDING: "pending",
}


@dataclass(frozen=True)
class AuditRow:
    """An entry as the history page shows it."""

    entry: AuditEntry
    changes: list[FieldChange]
    badge: str


def audit_rows(entries: Iterable[AuditEntry]) -> list[AuditRow]:
    return [
        AuditRow(
            entry=entry,
            changes=field_changes(entry),
            badge=OUTCOME_BADGES.get(entry.outcome, "pending"),
        )
        for entry in entries
    ]


def audit_visible(access: Access) -> QuerySet[AuditEntry]:
    """The entries an account may read: those about the teammates it may see."""
    entries = AuditEntry.objects.all()
    allowed = access.allowed_ids
    if allowed is None:
        return entries
    return entries.filter(teammate_id__in=sorted(allowed))


def audit_filtered(
    entries: QuerySet[AuditEntry],
    *,
    teammate_id: str = "",
    author_id: int | None = None,
    outcome: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEntry]:
    """Narrow entries by teammate, author, outcome and days (``since``/``until`` included)."""
    if teammate_id:
        entries = entries.filter(teammate_id=teammate_id)
    if author_id is not None:
        entries = entries.filter(author_id=author_id)
    if outcome:
        entries = entries.filter(outcome=outcome)
    if since is not None:
        entries = entries.filter(created_at__date__gte=since)
    if until is not None:
        entries = entries.filter(created_at__date__lte=until)
    return entries


def audit_teammates(entries: QuerySet[AuditEntry]) -> list[tuple[str, str]]:
    """(id, name) of every teammate in ``entries``, sorted by name; one grouped query."""
    rows = entries.order_by().values("teammate_id").annotate(name=Max("teammate_name"))
    pairs = [(row["teammate_id"], row["name"] or row["teammate_id"]) for row in rows]
    return sorted(pairs, key=lambda pair: (pair[1].casefold(), pair[0]))


def audit_authors(entries: QuerySet[AuditEntry]) -> list[tuple[int, str]]:
    """(account id, name) of every author in ``entries``, sorted by name; one grouped query."""
    rows = (
        entries.order_by()
        .values("author_id")
        .annotate(name=Max("author_name"), username=Max("author_username"))
    )
    pairs = [(row["author_id"], row["name"] or row["username"]) for row in rows]
    return sorted(pairs, key=lambda pair: (pair[1].casefold(), pair[0]))


def audit_last_change(*, teammate_id: str) -> AuditEntry | None:
    """The newest applied change to a teammate's queue (one small query), or None."""
    return (
        AuditEntry.objects.filter(teammate_id=teammate_id, outcome=Outcome.APPLIED)
        .order_by("-created_at", "-id")
        .first()
    )


# CSV --------------------------------------------------------------------------------------------


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet shows as text: a leading formula character is quoted away."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer's output."""

    def write(self, value: str) -> str:
        return value


def audit_csv_lines(entries: QuerySet[AuditEntry]) -> Iterator[str]:
    """The entries as CSV, one line per changed field, header first; streamed from the DB."""
    writer = csv.writer(_Echo())
    yield writer.writerow(
        [
            _("When (UTC)"),
            _("Author"),
            _("Author's username"),
            _("Teammate"),
            _("Teammate id"),
            _("Action"),
            _("Field"),
            _("Before"),
            _("After"),
            _("Asked"),
            _("Outcome"),
            _("Allo code"),
            _("Allo request id"),
        ]
    )
    for entry in entries.iterator(chunk_size=500):
        for field, change in (entry.changes or {"": {}}).items():
            change = change if isinstance(change, dict) else {}
            yield writer.writerow(
                [
                    csv_safe(value)
                    for value in (
                        entry.created_at.astimezone(UTC).isoformat(),
                        entry.author_name,
                        entry.author_username,
                        entry.teammate_name,
                        entry.teammate_id,
                        entry.action,
                        field,
                        change.get("before"),
                        change.get("after"),
                        change.get("asked"),
                        entry.outcome,
                        entry.allo_code,
                        entry.allo_request_id,
                    )
                ]
            )
