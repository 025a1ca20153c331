"""What the dashboard keeps in its own database: who may see which teammates, and who changed what.

Everything else (teammates, queues, numbers) lives in Allo and is read at request time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ManagerScope(models.Model):
    """Narrows an Allo ADMIN or MANAGER to the teammates listed under it.

    Without a scope, an Allo ADMIN or MANAGER sees and edits every teammate's queue. With one,
    only the teammates listed (none listed: no one). Edited by superusers in Django's admin.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="manager_scope",
        verbose_name=_("dashboard account"),
    )
    note = models.CharField(
        _("note"),
        max_length=200,
        blank=True,
        help_text=_("For administrators, e.g. “Team lead, Lyon office”."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("manager scope")
        verbose_name_plural = _("manager scopes")
        ordering: ClassVar = ["user__username"]

    def __str__(self) -> str:
        return str(self.user)

    def teammate_ids(self) -> frozenset[str]:
        return frozenset(self.teammates.values_list("allo_user_id", flat=True))


class ScopedTeammate(models.Model):
    """One teammate a narrowed manager looks after, by Allo user id; the name is for display."""

    scope = models.ForeignKey(ManagerScope, on_delete=models.CASCADE, related_name="teammates")
    allo_user_id = models.CharField(_("Allo teammate"), max_length=100)
    name = models.CharField(_("name when added"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("teammate looked after")
        verbose_name_plural = _("teammates looked after")
        ordering: ClassVar = ["name", "allo_user_id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["scope", "allo_user_id"], name="scoped_teammate_once_per_scope"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.allo_user_id


class AuditEntryImmutableError(Exception):
    """Audit entries are append-only: no update (but the one completion), no delete."""


# What completing an entry may set in each field's change: what Allo kept, and what was asked
# when Allo kept something else. "before" was recorded when the entry was opened, for good.
COMPLETION_CHANGE_KEYS = frozenset({"after", "asked"})


class AuditQuerySet(models.QuerySet["AuditEntry"]):
    """Entries are written once (``create``) and completed once (``complete``); every other way
    Django has to change or remove rows is refused here, and, on the database, by triggers
    (migration 0002) for whatever goes around Django."""

    def update(self, **kwargs: Any) -> int:
        raise AuditEntryImmutableError("Audit entries cannot be changed.")

    def _update(self, *args: Any, **kwargs: Any) -> Any:
        # Model.save() of an instance whose pk is set updates through here.
        raise AuditEntryImmutableError("Audit entries cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditEntryImmutableError("Audit entries cannot be deleted.")

    def _raw_delete(self, using: Any) -> int:
        raise AuditEntryImmutableError("Audit entries cannot be deleted.")

    def bulk_create(
        self,
        objs: Any,
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Any = None,
        unique_fields: Any = None,
    ) -> list[AuditEntry]:
        if update_conflicts or update_fields:
            raise AuditEntryImmutableError("Audit entries cannot be overwritten.")
        return super().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            unique_fields=unique_fields,
        )

    def complete(
        self,
        pk: int,
        *,
        outcome: str,
        allo_code: str | None = None,
        allo_message: str | None = None,
        allo_request_id: str | None = None,
        other_teammate_id: str | None = None,
        completed_at: datetime | None = None,
        results: dict[str, dict[str, Any]] | None = None,
    ) -> int:
        """Complete a pending entry, once: the only change an entry ever gets.

        Sets the outcome (never back to pending), Allo's code, message and request id, the
        teammate whose queue Allo changed instead (misdirected), the completion time, and, in
        ``results`` (``{field: {"after": …, "asked": …}}``), what Allo kept of each field the
        entry already holds. Nothing else: not who, not whom, not the "before" values.
        Returns 1, or 0 when the entry was already completed (it is then left as it was).
        """
        if outcome not in AuditEntry.Outcome.values or outcome == AuditEntry.Outcome.PENDING:
            raise AuditEntryImmutableError(f"An entry cannot be completed as {outcome!r}.")
        fields: dict[str, Any] = {
            "outcome": outcome,
            "completed_at": completed_at or timezone.now(),
        }
        for name, value in (
            ("allo_code", allo_code),
            ("allo_message", allo_message),
            ("allo_request_id", allo_request_id),
            ("other_teammate_id", other_teammate_id),
        ):
            if value is not None:
                fields[name] = value
        pending = self.filter(pk=pk, outcome=AuditEntry.Outcome.PENDING)
        if results:
            # A pending entry's changes never change (completing it is the only way, and that
            # ends "pending" in the same UPDATE), so merging into what is read here is safe.
            changes = pending.values_list("changes", flat=True).first()
            if changes is None:
                return 0
            fields["changes"] = _completed_changes(changes, results)
        return super(AuditQuerySet, pending).update(**fields)


def _completed_changes(
    changes: dict[str, Any], results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    merged = {field: dict(change) for field, change in changes.items()}
    for field, result in results.items():
        if field not in merged:
            raise AuditEntryImmutableError(f"The entry holds no change to {field!r}.")
        if not set(result) <= COMPLETION_CHANGE_KEYS:
            raise AuditEntryImmutableError(
                f"Completing an entry sets only {sorted(COMPLETION_CHANGE_KEYS)}."
            )
        merged[field].update(result)
    return merged


class AuditEntry(models.Model):
    """One write the dashboard sent (or was about to send) to Allo.

    Written ``pending`` before the request leaves, completed once the answer (or its absence)
    is known, so a crash in between leaves a pending row instead of nothing.
    """

    class Action(models.TextChoices):
        QUEUE_SETTINGS = "queue.settings", _("Queue settings")

    class Outcome(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPLIED = "applied", _("Applied")
        REFUSED = "refused", _("Refused by Allo")
        UNKNOWN = "unknown", _("Unknown: Allo did not confirm")
        MISDIRECTED = "misdirected", _("Applied to another teammate's queue")

    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="audit_entries",
        verbose_name=_("author"),
    )
    author_username = models.CharField(_("author's username"), max_length=150)
    author_name = models.CharField(_("author's name"), max_length=255, blank=True)
    teammate_id = models.CharField(_("teammate id"), max_length=100, db_index=True)
    teammate_name = models.CharField(_("teammate's name"), max_length=255, blank=True)
    action = models.CharField(_("action"), max_length=50, choices=Action.choices)
    changes = models.JSONField(_("changes"), default=dict)
    outcome = models.CharField(
        _("outcome"), max_length=20, choices=Outcome.choices, default=Outcome.PENDING
    )
    allo_code = models.CharField(_("Allo's code"), max_length=100, blank=True)
    allo_message = models.TextField(_("Allo's message"), blank=True)
    allo_request_id = models.CharField(_("Allo request id"), max_length=100, blank=True)
    # Misdirected writes: whose queue Allo changed instead. Kept apart from the message, which
    # everyone who may see the teammate reads; this only operators see (in the admin).
    other_teammate_id = models.CharField(
        _("teammate whose queue Allo changed instead"), max_length=100, blank=True
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering: ClassVar = ["-created_at", "-id"]
        # Django's own saves and deletes go through the refusing queryset too.
        base_manager_name = "objects"
        indexes: ClassVar = [
            models.Index(fields=["teammate_id", "-created_at"], name="audit_teammate_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.author_username} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditEntryImmutableError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditEntryImmutableError("Audit entries cannot be deleted.")

    @property
    def age_seconds(self) -> float:
        return (timezone.now() - self.created_at).total_seconds()
