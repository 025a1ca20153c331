"""Django's admin: superusers narrow managers to named teammates and read the audit trail.

Its login page is throttled like the dashboard's (dashboard.signin), and an account's email,
which links it to an Allo teammate, belongs to one account only.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from dashboard.allo.errors import AlloError
from dashboard.labels import ROLE_LABELS, STATUS_LABELS, label
from dashboard.models import AuditEntry, ManagerScope, ScopedTeammate
from dashboard.permissions import Roster, plausible_id, team_roster
from dashboard.signin import AdminSignInForm

# The admin's login counts against the same per-account and per-address limits as /accounts/login/.
admin.site.login_form = AdminSignInForm

# Allo's ids are opaque (allo-api.md): only what cannot be an id is refused.
ALLO_ID = re.compile(r"^[^\s/?#]{1,100}$")


def _roster_or_none() -> Roster | None:
    try:
        return team_roster()
    except AlloError:
        return None


class ScopedTeammateForm(forms.ModelForm):
    """A teammate to look after, chosen from Allo's team (cached); typed as an id if Allo is
    unreachable."""

    class Meta:
        model = ScopedTeammate
        fields = ("allo_user_id",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.roster = _roster_or_none()
        if self.roster is None:
            self.fields["allo_user_id"].help_text = _(
                "Allo cannot be reached right now, so type the teammate's Allo id (usr-…)."
            )
            return
        people = sorted(self.roster.by_id().values(), key=lambda p: (p.name.casefold(), p.id))
        choices: list[tuple[str, str]] = [("", "---------")]
        for person in people:
            role = label(ROLE_LABELS, person.role)
            status = label(STATUS_LABELS, person.status)
            choices.append((person.id, f"{person.name} <{person.email or '—'}> · {role}, {status}"))
        current = self.instance.allo_user_id if self.instance.pk else ""
        if current and current not in self.roster.by_id():
            choices.append((current, _("%(name)s (no longer in Allo)") % {"name": self.instance}))
        self.fields["allo_user_id"] = forms.ChoiceField(
            label=self.fields["allo_user_id"].label, choices=choices
        )

    def clean_allo_user_id(self) -> str:
        value = (self.cleaned_data.get("allo_user_id") or "").strip()
        if not ALLO_ID.match(value) or not plausible_id(value):
            raise forms.ValidationError(_("This is not an Allo teammate id."))
        return value

    def save(self, commit: bool = True) -> ScopedTeammate:
        teammate = super().save(commit=False)
        if self.roster is not None:
            person = self.roster.by_id().get(teammate.allo_user_id)
            if person is not None:
                teammate.name = person.name
        if commit:
            teammate.save()
        return teammate


class SuperuserOnly:
    """Only superusers may narrow (or widen) an account: a manager with staff rights must
    never edit their own reach."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser


class ScopedTeammateInline(SuperuserOnly, admin.TabularInline):
    model = ScopedTeammate
    form = ScopedTeammateForm
    fields = ("allo_user_id", "name")
    readonly_fields = ("name",)
    extra = 3


@admin.register(ManagerScope)
class ManagerScopeAdmin(SuperuserOnly, admin.ModelAdmin):
    list_display = ("user", "teammate_names", "note", "updated_at")
    search_fields = ("user__username", "user__email", "teammates__name")
    inlines = (ScopedTeammateInline,)
    fields = ("user", "note")

    @admin.display(description=_("teammates looked after"))
    def teammate_names(self, scope: ManagerScope) -> str:
        return ", ".join(str(teammate) for teammate in scope.teammates.all()) or "—"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("user").prefetch_related("teammates")


@admin.register(AuditEntry)
class AuditEntryAdmin(SuperuserOnly, admin.ModelAdmin):
    """Read only: entries are append-only, so the admin can neither add, change nor delete.

    For superusers only: the admin shows every entry, whatever teammates an account may see,
    so a staff account holding the "view audit entry" permission still sees nothing here.
    """

    list_display = (
        "created_at",
        "author_username",
        "teammate_name",
        "action",
        "outcome",
        "allo_code",
        "allo_request_id",
    )
    list_filter = ("outcome", "action", "created_at")
    search_fields = ("author_username", "author_name", "teammate_id", "teammate_name")
    date_hierarchy = "created_at"
    readonly_fields = tuple(field.name for field in AuditEntry._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Accounts: one email, one account ----------------------------------------------------------------

User = get_user_model()


def email_taken(email: str, *, by_other_than: int | None = None) -> bool:
    """Whether another account has this email, ignoring case as access does (``lower()``)."""
    wanted = email.strip().lower()
    if not wanted:
        return False
    others = User.objects.exclude(email="")
    if by_other_than is not None:
        others = others.exclude(pk=by_other_than)
    return any(
        (other or "").strip().lower() == wanted
        for other in others.values_list("email", flat=True).iterator()
    )


class AccountChangeForm(UserChangeForm):
    """Django's user form, refusing an email another account has: the email decides which
    Allo teammate (and so which role) an account gets, so two accounts must never share one."""

    def clean_email(self) -> str:
        email = (self.cleaned_data.get("email") or "").strip()
        if email_taken(email, by_other_than=self.instance.pk):
            raise forms.ValidationError(
                _("Another account already has this email address (upper and lower case alike)."),
                code="email_taken",
            )
        return email


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    form = AccountChangeForm
