"""Every Allo failure in words, in one place, so each feature explains failures the same way.

Views call :func:`failure_explain` with the exception a service raised and get back what to
show (and where: a form field, the whole form, or a loud alert). It also logs the failure with
Allo's ``request_id`` so that a manager's "it said Allo was busy" can be traced.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard.allo.errors import (
    AlloAuthenticationError,
    AlloBadResponseError,
    AlloConfigurationError,
    AlloConflictError,
    AlloError,
    AlloNotFoundError,
    AlloPermissionError,
    AlloRateLimitedError,
    AlloUnavailableError,
    AlloValidationError,
    AlloWrongTeammateError,
)
from dashboard.allo.types import SCOPE_DIALING_QUEUE, SCOPE_USERS_READ

logger = logging.getLogger(__name__)

KNOWN_SCOPES = (SCOPE_USERS_READ, SCOPE_DIALING_QUEUE)


@dataclass(frozen=True)
class Failure:
    """What to tell the manager about one failed conversation with Allo.

    ``messages`` pairs each sentence with the form field it belongs to (None: the whole form or
    card). ``alarm`` marks the failures that must never look like routine trouble.
    """

    messages: tuple[tuple[str | None, str], ...]
    alarm: bool = False
    not_on_team: bool = False
    retry_after: int | None = None
    request_id: str | None = None
    # Allo's own words (English, written for developers), shown folded away under ours only
    # when we do not know the failure's code well enough to say it better.
    allo_said: str | None = None

    @property
    def text(self) -> str:
        return " ".join(message for _field, message in self.messages)


def _missing_scope(error: AlloError, scope: str | None) -> str | None:
    """The scope a 403 is about: named in Allo's words if it says, else the one the call needs."""
    said = " ".join(filter(None, [error.message, error.param or ""]))
    for known in KNOWN_SCOPES:
        if known in said:
            return known
    return scope


# Allo's validation codes (``errors[].code``) that our own words explain fully, by field.
NAME_CODES = frozenset({"INVALID_LENGTH", "REQUIRED", "INVALID_TYPE", "INVALID_VALUE"})
CHOICE_FIELDS = frozenset({"voicemail_handling", "do_not_disturb"})
CHOICE_CODES = frozenset({"INVALID_ENUM_VALUE", "INVALID_TYPE", "INVALID_VALUE", "REQUIRED"})


def _refusal_words(field_name: str | None, code: str | None) -> tuple[str, bool]:
    """Our words for Allo refusing one input, and whether they say all Allo said."""
    if field_name == "name":
        if code in NAME_CODES:
            return _("Allo does not accept this name: type 1 to 255 characters."), True
        return _("Allo does not accept this name."), False
    if field_name in CHOICE_FIELDS:
        return (
            _("Allo does not accept this choice: pick one of the options shown."),
            code in CHOICE_CODES,
        )
    if code == "UNKNOWN_FIELD":
        text = _("Allo did not recognise a setting the dashboard sent. Tell an administrator.")
        return text, True
    return _("Allo refused this change."), False


def _configuration_words(code: str | None) -> str | None:
    """The dashboard's own set-up problems (raised before anything is sent), in words."""
    return {
        "NO_API_KEY": _("No Allo API key is configured (ALLO_API_KEY)."),
        "BAD_API_KEY": _(
            "The Allo API key (ALLO_API_KEY) holds a character that cannot be sent (a curly "
            "quote, an accent, a line break…): copy it again from Allo."
        ),
        "BAD_BASE_URL": _(
            "Allo's address (ALLO_API_BASE_URL) must start with http:// or https://."
        ),
    }.get(code or "")


def failure_explain(
    error: AlloError,
    *,
    writing: bool = False,
    scope: str | None = None,
    teammate_name: str = "",
    form_fields: tuple[str, ...] = (),
    returned_name: str | None = None,
) -> Failure:
    """Put ``error`` into words, and log it with its request_id.

    ``writing`` says the failed request was a change (so a timeout may have applied it);
    ``scope`` is the permission the call needs (named when Allo's 403 does not say);
    ``form_fields`` are the fields a 400's ``param`` may be mapped onto.
    """
    who = teammate_name or _("this teammate")
    request_id = error.request_id

    if isinstance(error, AlloWrongTeammateError):
        other = returned_name or error.returned_user_id or _("no one")
        if writing:
            text = _(
                "Allo applied this to a different person's queue (%(other)s)! Nothing was "
                "saved for %(who)s. Tell an administrator."
            ) % {"other": other, "who": who}
        else:
            text = _(
                "Allo answered with a different person's queue (%(other)s) instead of the "
                "queue of %(who)s, so it is not shown. Tell an administrator."
            ) % {"other": other, "who": who}
        logger.error(
            "Allo targeted the wrong teammate on a %s: expected %s, got %s (request_id=%s)",
            "write" if writing else "read",
            error.expected_user_id,
            error.returned_user_id,
            request_id,
        )
        return Failure(messages=((None, text),), alarm=True, request_id=request_id)

    logger.warning(
        "Allo failure on a %s: %s %s (status=%s, request_id=%s)",
        "write" if writing else "read",
        type(error).__name__,
        error.code,
        error.status,
        request_id,
    )

    if isinstance(error, AlloValidationError):
        pairs: list[tuple[str | None, str]] = []
        said: list[str] = []
        details = [(fe.field, fe.code, fe.message) for fe in error.field_errors] or [
            (error.param, error.code, error.message)
        ]
        for field_name, code, message in details:
            target = field_name if field_name in form_fields else None
            words, complete = _refusal_words(field_name, code)
            if (target, words) not in pairs:
                pairs.append((target, words))
            if not complete and message and message not in said:
                said.append(message)
        return Failure(
            messages=tuple(pairs), request_id=request_id, allo_said=" ".join(said) or None
        )

    if isinstance(error, AlloNotFoundError):
        # Allo cannot tell someone who left from an id that never existed.
        return Failure(
            messages=((None, _("No teammate with this id is on your team.")),),
            not_on_team=True,
            request_id=request_id,
        )

    if isinstance(error, AlloAuthenticationError):
        text = _("The dashboard's Allo API key was refused. An administrator needs to check it.")
        return Failure(messages=((None, text),), request_id=request_id)

    if isinstance(error, AlloPermissionError):
        missing = _missing_scope(error, scope)
        if error.code in {None, "API_KEY_INSUFFICIENT_SCOPE", "FORBIDDEN"} and missing:
            text = _(
                "The dashboard's Allo API key lacks the %(scope)s permission, so this cannot "
                "be done. An administrator needs to add it to the key in Allo (Settings, API)."
            ) % {"scope": missing}
        else:
            text = _(
                "Allo does not allow the dashboard's API key to do this (%(code)s). An "
                "administrator needs to check the key in Allo."
            ) % {"code": error.code or error.status}
        return Failure(messages=((None, text),), request_id=request_id)

    if isinstance(error, AlloRateLimitedError):
        seconds = max(1, math.ceil(error.retry_after)) if error.retry_after else 1
        text = ngettext(
            "Allo is busy right now; try again in %(seconds)s second.",
            "Allo is busy right now; try again in %(seconds)s seconds.",
            seconds,
        ) % {"seconds": seconds}
        return Failure(messages=((None, text),), retry_after=seconds, request_id=request_id)

    if isinstance(error, AlloConfigurationError):
        detail = _configuration_words(error.code)
        text = _("The dashboard is not connected to Allo. An administrator needs to configure it.")
        return Failure(
            messages=((None, f"{text} {detail}" if detail else text),),
            request_id=request_id,
            allo_said=None if detail else error.message or None,
        )

    if isinstance(error, AlloConflictError):
        text = _(
            "Allo refused this change because the queue is busy (%(code)s). Try again in a moment."
        ) % {"code": error.code or error.status}
        return Failure(messages=((None, text),), request_id=request_id)

    if isinstance(error, AlloUnavailableError) and error.code == "CIRCUIT_OPEN":
        # The dashboard holds off Allo after repeated failures: nothing was sent.
        if writing:
            text = _(
                "Allo is not answering; changes are paused, so nothing was changed. The "
                "dashboard checks on Allo by itself: try again in a moment."
            )
        else:
            text = _(
                "Allo could not be reached. It is not answering, so the dashboard waits a "
                "moment before asking again."
            )
        return Failure(messages=((None, text),), request_id=request_id)

    ambiguous = writing and (
        isinstance(error, AlloBadResponseError)
        or (isinstance(error, AlloUnavailableError) and error.request_sent)
    )
    if ambiguous:
        # The request reached Allo (or may have): it may have been applied. Never claim it
        # was not.
        text = _(
            "Allo did not confirm the change; it may or may not have been applied. Reload the "
            "queue to check."
        )
        return Failure(messages=((None, text),), request_id=request_id)

    if isinstance(error, AlloUnavailableError | AlloBadResponseError):
        if writing:
            text = _("Allo could not be reached, so nothing was changed. Try again in a moment.")
        else:
            text = _("Allo could not be reached. Try again in a moment.")
        return Failure(messages=((None, text),), request_id=request_id)

    text = _("Allo refused this (%(code)s). Try again, or tell an administrator.") % {
        "code": error.code or error.status or type(error).__name__
    }
    return Failure(messages=((None, text),), request_id=request_id)
