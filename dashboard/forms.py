from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from dashboard.allo.types import DO_NOT_DISTURB, ROLES, VOICEMAIL_HANDLING
from dashboard.labels import (
    DO_NOT_DISTURB_LABELS,
    ROLE_LABELS,
    VOICEMAIL_HANDLING_LABELS,
)
from dashboard.models import AuditEntry
from dashboard.services import ALL_STATUSES, KEEP, OVERWRITE, SETTINGS_FIELDS, QueueSettings

NAME_MAX_LENGTH = 255


class TeammateFilterForm(forms.Form):
    """The teammates page's filters, read from the query string; a bad value is no filter."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("Name or email"), "autocomplete": "off"}
        ),
    )
    role = forms.ChoiceField(
        label=_("Role"),
        required=False,
        choices=[("", _("Every role")), *((role, ROLE_LABELS[role]) for role in ROLES)],
    )
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            ("ACTIVE", _("Active")),
            ("BLOCKED", _("Blocked")),
            (ALL_STATUSES, _("Active and blocked")),
        ],
    )

    def filters(self) -> dict[str, str | None]:
        """role, status and query for the service; Allo's default (ACTIVE) when unset.

        A bad value drops only its own filter: cleaned_data keeps every valid field.
        """
        self.is_valid()
        data = self.cleaned_data
        return {
            "role": data.get("role") or None,
            "status": data.get("status") or "ACTIVE",
            "query": data.get("q") or "",
        }


class QueueSettingsForm(forms.Form):
    """A teammate's queue settings, with the values the manager saw as hidden fields.

    The seen values let the service tell what the manager changed from what someone else
    changed in Allo meanwhile (a conflict). A value Allo returns that we do not know (enums
    grow) stays selectable under its raw name, so an untouched form is still valid. ``token``
    is new each time the form is drawn: the same form sent twice (a double click) is saved
    once. After a conflict, each conflicting setting comes with a ``resolve_<field>`` choice
    (KEEP or OVERWRITE), read by :meth:`decisions`.
    """

    name = forms.CharField(
        label=_("Queue name"),
        required=False,
        max_length=NAME_MAX_LENGTH,
        help_text=_("1 to 255 characters. Allo cannot remove a name once set."),
    )
    voicemail_handling = forms.ChoiceField(
        label=_("When a voicemail answers"),
        choices=[(value, VOICEMAIL_HANDLING_LABELS[value]) for value in VOICEMAIL_HANDLING],
        widget=forms.RadioSelect,
    )
    do_not_disturb = forms.ChoiceField(
        label=_("Incoming calls while dialing"),
        choices=[(value, DO_NOT_DISTURB_LABELS[value]) for value in DO_NOT_DISTURB],
        widget=forms.RadioSelect,
    )
    seen_name = forms.CharField(required=False, widget=forms.HiddenInput)
    seen_voicemail_handling = forms.CharField(required=False, widget=forms.HiddenInput)
    seen_do_not_disturb = forms.CharField(required=False, widget=forms.HiddenInput)
    token = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field_name in ("voicemail_handling", "do_not_disturb"):
            source = self.data if self.is_bound else self.initial
            current = source.get(f"seen_{field_name}")
            field = self.fields[field_name]
            assert isinstance(field, forms.ChoiceField)
            if current and current not in dict(field.choices):
                field.choices = [*field.choices, (current, current)]

    @classmethod
    def from_settings(
        cls, settings: QueueSettings, *, seen: QueueSettings | None = None, **kwargs: Any
    ) -> QueueSettingsForm:
        """An unbound form showing ``settings`` and remembering ``seen`` (by default the same)
        as the values seen: a queue that does not exist yet was seen empty, so that saving its
        defaults creates it."""
        seen = settings if seen is None else seen
        initial = {
            **{key: getattr(settings, key) for key in SETTINGS_FIELDS},
            **{f"seen_{key}": getattr(seen, key) for key in SETTINGS_FIELDS},
            "token": new_token(),
        }
        return cls(initial=initial, **kwargs)

    def again(self, *, seen: dict[str, str] | None = None, **kwargs: Any) -> QueueSettingsForm:
        """This bound form drawn again, with the values typed, a new token, and ``seen``
        replacing the seen values it names (a conflict shows Allo's value: it is then seen)."""
        data = self.data.copy()
        for key, value in (seen or {}).items():
            data[f"seen_{key}"] = value
        data["token"] = new_token()
        return type(self)(data, auto_id=self.auto_id, **kwargs)

    def decisions(self, fields: Iterable[str] = SETTINGS_FIELDS) -> dict[str, str]:
        """The manager's choice for each conflicting setting: KEEP or OVERWRITE (others left
        out)."""
        choices = {}
        for key in fields:
            value = self.data.get(f"resolve_{key}")
            if value in (KEEP, OVERWRITE):
                choices[key] = value
        return choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("name") and cleaned.get("seen_name") and "name" not in self.errors:
            self.add_error(
                "name",
                _(
                    "A queue's name cannot be removed in Allo. Type a name of 1 to 255 "
                    "characters, or put back the current one."
                ),
            )
        return cleaned

    def wanted(self) -> QueueSettings:
        return QueueSettings(
            name=self.cleaned_data["name"],
            voicemail_handling=self.cleaned_data["voicemail_handling"],
            do_not_disturb=self.cleaned_data["do_not_disturb"],
        )

    def seen(self) -> QueueSettings:
        return QueueSettings(
            name=self.cleaned_data.get("seen_name") or "",
            voicemail_handling=self.cleaned_data.get("seen_voicemail_handling") or "",
            do_not_disturb=self.cleaned_data.get("seen_do_not_disturb") or "",
        )


def new_token() -> str:
    """A one-time token for a drawing of the settings form."""
    return uuid.uuid4().hex


class AuditFilterForm(forms.Form):
    """The history page's filters, read from the query string; a bad value is no filter.

    The lists offer the teammates and authors found in the entries the account may read; a
    teammate without entries yet (a card's "History" link) is still a valid filter.
    """

    teammate = forms.CharField(label=_("Teammate"), required=False, max_length=100)
    author = forms.TypedChoiceField(
        label=_("Changed by"), required=False, coerce=int, empty_value=None
    )
    outcome = forms.ChoiceField(
        label=_("Outcome"),
        required=False,
        choices=[("", _("Every outcome")), *AuditEntry.Outcome.choices],
    )
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(
        self,
        *args: Any,
        teammates: list[tuple[str, str]],
        authors: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        current = self.data.get("teammate") or ""
        choices = [("", _("Every teammate")), *teammates]
        if current and current not in dict(teammates):
            choices.append((current, current))
        self.fields["teammate"].widget = forms.Select(choices=choices)
        author = self.fields["author"]
        assert isinstance(author, forms.TypedChoiceField)
        author.choices = [("", _("Anyone")), *((str(pk), name) for pk, name in authors)]

    def filters(self) -> dict[str, Any]:
        """The valid filters, as keyword arguments of ``audit.audit_filtered``."""
        self.is_valid()
        data = self.cleaned_data
        return {
            "teammate_id": data.get("teammate") or "",
            "author_id": data.get("author"),
            "outcome": data.get("outcome") or "",
            "since": data.get("since"),
            "until": data.get("until"),
        }
