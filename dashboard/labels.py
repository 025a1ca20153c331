"""Allo's enum values in words a sales lead understands, in English and in French.

Allo's enums grow: a value not listed here is shown exactly as it came, never an error. Every
label is lazily translated: locale/fr/LC_MESSAGES/django.po holds the French words.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from dashboard.allo.types import QueueNumber

ROLE_LABELS: dict[str, Promise] = {
    "ADMIN": _("Admin"),
    "MANAGER": _("Manager"),
    "MEMBER": _("Member"),
}

STATUS_LABELS: dict[str, Promise] = {
    "ACTIVE": _("Active"),
    "BLOCKED": _("Blocked"),
}

VOICEMAIL_HANDLING_LABELS: dict[str, Promise] = {
    "SKIP": _("Skip voicemails, go to the next number"),
    "NO_SKIP": _("Stay on the call when a voicemail answers"),
}

DO_NOT_DISTURB_LABELS: dict[str, Promise] = {
    "ENABLED": _("Silence incoming calls while dialing"),
    "DISABLED": _("Let incoming calls ring"),
}

ROUTING_RESULT_LABELS: dict[str, Promise] = {
    "ANSWERED": _("Answered"),
    "VOICEMAIL": _("Voicemail"),
    # The same words as the summary's groups (OUTCOME_LABELS), so that a row and the counts
    # above it never seem to disagree; "Call blocked" is not the teammate's status "Blocked".
    "FAILED": _("Not reached"),
    "FAILED_EXTERNAL": _("Not reached (external line)"),
    "RECEIVED": _("Inbound call received"),
    "BLOCKED": _("Call blocked"),
    "CLOSED": _("Closed"),
    "TRANSFERRED_BLAND": _("Transferred to an AI agent (Bland)"),
    "TRANSFERRED_ELEVEN_LABS": _("Transferred to an AI agent (ElevenLabs)"),
    "TRANSFERRED_EXTERNAL": _("Transferred to an outside number"),
}

NOT_REACHED_LABELS: dict[str, Promise] = {
    "BUSY": _("Line busy"),
    "CALLEE_TEMPORARILY_UNAVAILABLE": _("Temporarily unavailable"),
    "RING_TIMEOUT": _("No answer"),
    "NOT_IN_SERVICE": _("Number not in service"),
    "DECLINED": _("Declined the call"),
    "NETWORK_ERROR": _("Network error"),
}

# What each of Allo's API key permissions (scopes) lets the dashboard do.
SCOPE_LABELS: dict[str, Promise] = {
    "USERS_READ": _("See the teammates: their names, emails, roles and statuses"),
    "DIALING_QUEUE_READ_WRITE": _("See and change the teammates' Power Dialer queues"),
}

SYNC_STATUS_LABELS: dict[str, Promise] = {
    "NOT_SYNCED": _("Not synced"),
    "PROCESSING": _("Syncing"),
    "SYNCED": _("Synced"),
}

# The summary groups numbers by outcome, in this order. Each key doubles as a CSS modifier.
OUTCOME_LABELS: dict[str, Promise] = {
    "answered": _("Answered"),
    "transferred": _("Transferred"),
    "voicemail": _("Voicemail"),
    "busy": _("Line busy"),
    "failed": _("Not reached"),
    "blocked": _("Call blocked"),
    "received": _("Inbound call received"),
    "closed": _("Closed"),
    "dialed": _("Dialed, no result yet"),
    "pending": _("Not yet called"),
}

_OUTCOME_OF_RESULT = {
    "ANSWERED": "answered",
    "TRANSFERRED_BLAND": "transferred",
    "TRANSFERRED_ELEVEN_LABS": "transferred",
    "TRANSFERRED_EXTERNAL": "transferred",
    "VOICEMAIL": "voicemail",
    "FAILED": "failed",
    "FAILED_EXTERNAL": "failed",
    "BLOCKED": "blocked",
    "RECEIVED": "received",
    "CLOSED": "closed",
}
UNKNOWN_OUTCOME = "other"

# The compact bar of the teammates page groups those outcomes into what a manager reads at a
# glance, in this order. Each key doubles as a CSS modifier. Received is not counted as
# answered: Allo does not say what it means for a call the dialer placed.
GROUP_LABELS: dict[str, Promise] = {
    "answered": _("Answered"),
    "voicemail": _("Voicemail"),
    "unreached": _("Not reached"),
    "other": _("Other results"),
    "calling": _("Being called"),
    "pending": _("Not yet called"),
}

_GROUP_OF_OUTCOME = {
    "answered": "answered",
    "transferred": "answered",
    "voicemail": "voicemail",
    "busy": "unreached",
    "failed": "unreached",
    "blocked": "unreached",
    "closed": "unreached",
    "received": "other",
    "dialed": "calling",
    "pending": "pending",
}


def label(labels: dict[str, Promise], value: str | None) -> str:
    """The words for ``value``, or the value itself when Allo sent one we do not know."""
    if value is None:
        return ""
    return str(labels.get(value, value))


def number_outcome(number: QueueNumber) -> str:
    """The summary group of one queue number: an OUTCOME_LABELS key, or UNKNOWN_OUTCOME.

    A reached person wins over a not-reached reason; "busy" is split out of the failures
    because a manager handles it differently (call back soon) from a dead number.
    """
    result = number.routing_result
    outcome = _OUTCOME_OF_RESULT.get(result) if result else None
    if outcome in {"answered", "transferred", "voicemail"}:
        return outcome
    if number.not_reached_destination_reason == "BUSY":
        return "busy"
    if outcome:
        return outcome
    if result:
        return UNKNOWN_OUTCOME
    if number.not_reached_destination_reason:
        return "failed"
    return "dialed" if number.called else "pending"


def outcome_group(outcome: str) -> str:
    """The GROUP_LABELS key of an outcome key (an unknown outcome is one of the "other")."""
    return _GROUP_OF_OUTCOME.get(outcome, "other")


def outcome_label(outcome: str, number: QueueNumber | None = None) -> str:
    """Words for an outcome key; an unknown one falls back to the raw routing result."""
    if outcome in OUTCOME_LABELS:
        return str(OUTCOME_LABELS[outcome])
    if number is not None and number.routing_result:
        return number.routing_result
    return str(_("Other"))
