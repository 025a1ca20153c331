"""Template filters that put Allo's values into words, and the DOM ids fragments share."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from dashboard.allo.types import QueueNumber
from dashboard.labels import (
    DO_NOT_DISTURB_LABELS,
    NOT_REACHED_LABELS,
    OUTCOME_LABELS,
    ROLE_LABELS,
    ROUTING_RESULT_LABELS,
    SCOPE_LABELS,
    STATUS_LABELS,
    SYNC_STATUS_LABELS,
    VOICEMAIL_HANDLING_LABELS,
    label,
    number_outcome,
)
from dashboard.services import OutcomeCount

register = template.Library()


def queue_dom_id(user_id: str) -> str:
    """A stable HTML id for a teammate's queue card (Allo's ids are opaque: never trust them)."""
    return "queue-" + hashlib.sha256(user_id.encode()).hexdigest()[:12]


register.filter("queue_dom_id", queue_dom_id)


@register.filter
def initials(name: str | None) -> str:
    words = [word for word in (name or "").split() if word[:1].isalnum()]
    if not words:
        return "?"
    letters = words[0][0] + (words[-1][0] if len(words) > 1 else "")
    return letters.upper()


@register.filter
def role_label(value: str | None) -> str:
    return label(ROLE_LABELS, value)


@register.filter
def status_label(value: str | None) -> str:
    return label(STATUS_LABELS, value)


@register.filter
def voicemail_handling_label(value: str | None) -> str:
    return label(VOICEMAIL_HANDLING_LABELS, value)


@register.filter
def do_not_disturb_label(value: str | None) -> str:
    return label(DO_NOT_DISTURB_LABELS, value)


@register.filter
def reason_label(value: str | None) -> str:
    return label(NOT_REACHED_LABELS, value)


@register.filter
def sync_label(value: str | None) -> str:
    return label(SYNC_STATUS_LABELS, value)


@register.filter
def scope_label(value: str | None) -> str:
    """A permission of the API key in words; empty when we do not know it (show the code)."""
    return str(SCOPE_LABELS.get(value or "", ""))


@register.filter
def outcome(number: QueueNumber) -> str:
    """The CSS modifier of a number's result badge."""
    return number_outcome(number)


@register.filter
def result_label(number: QueueNumber) -> str:
    """A number's routing result in words; raw when unknown; its state when there is none."""
    if number_outcome(number) == "busy":
        # Counted as "Line busy" in the summary: the row says the same.
        return str(OUTCOME_LABELS["busy"])
    if number.routing_result:
        return label(ROUTING_RESULT_LABELS, number.routing_result)
    if number_outcome(number) == "failed":
        return _("Not reached")
    if number.called:
        return _("Dialed, no result yet")
    return _("Not yet called")


@register.filter
def voicemail_words(number: QueueNumber) -> str:
    detected, left = number.detected_outbound_voicemail, number.voicemail_left
    if detected and left:
        return _("Reached voicemail; message left")
    if detected and left is False:
        return _("Reached voicemail; no message left")
    if detected:
        return _("Reached voicemail")
    if left:
        return _("Message left")
    if detected is False:
        return _("No voicemail")
    return ""


# Dates -------------------------------------------------------------------------------------------

# One unambiguous style for every date shown: the day, the month in letters and a 24-hour time
# ("3 Dec, 11:07", "3 déc., 11:07"), the year only when it is not this year. The full date is
# the <time> element's title; its datetime attribute is ISO 8601.
SHORT_FORMATS = {"fr": ("j N, H:i", "j N Y, H:i")}
SHORT_FORMAT_DEFAULT = ("j M, H:i", "j M Y, H:i")
FULL_FORMAT = "l j F Y, H:i"
# Closer than this (in seconds) is "just now", not "0 minutes ago" or "12 seconds ago".
JUST_NOW = 60
# Older than this, a relative date gives way to the date itself.
RELATIVE_UP_TO = 24 * 3600


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


@register.filter
def date_short(value: datetime) -> str:
    """ "3 Dec, 11:07" in the current language and time zone ("3 Dec 2025, 11:07" another year)."""
    local = _local(value)
    this_year, other_year = SHORT_FORMATS.get(
        (get_language() or "en").split("-")[0], SHORT_FORMAT_DEFAULT
    )
    same_year = local.year == _local(timezone.now()).year
    return dateformat.format(local, this_year if same_year else other_year)


@register.filter
def date_ago(value: datetime) -> str:
    """ "just now", "3 minutes ago", then the short date after a day."""
    seconds = abs((timezone.now() - value).total_seconds())
    if seconds < JUST_NOW:
        return _("just now")
    if seconds < RELATIVE_UP_TO:
        return naturaltime(value)
    return date_short(value)


@register.simple_tag
def when(value: datetime | None, relative: bool = False) -> SafeString | str:
    """A <time> showing ``value`` short (or relative), with the full date as its title."""
    if value is None:
        return ""
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        dateformat.format(_local(value), FULL_FORMAT),
        date_ago(value) if relative else date_short(value),
    )


# The outcome bar ---------------------------------------------------------------------------------

# A segment narrower than this (in % of the bar) could not be seen; it is widened to it.
MIN_SEGMENT = 1.2


def bar_widths(items: Sequence[OutcomeCount]) -> list[tuple[str, float, float]]:
    """(key, x, width) of each segment of a 100-wide bar: true to the counts, except that a
    tiny count still gets a visible sliver (the others shrink to make room)."""
    total = sum(item.count for item in items)
    if not total:
        return []
    raw = [max(100 * item.count / total, MIN_SEGMENT) for item in items]
    scale = 100 / sum(raw)
    segments = []
    x = 0.0
    for item, width in zip(items, raw, strict=True):
        segments.append((item.key, round(x, 3), round(width * scale, 3)))
        x += width * scale
    return segments


@register.simple_tag
def outcome_bar(items: Sequence[OutcomeCount], size: str = "") -> SafeString:
    """A bar of outcome counts in SVG, one ``seg--<key>`` rect each, drawn on the server.

    The widths are SVG attributes, not inline styles (the CSP forbids those). The bar is
    hidden from screen readers: the legend beside it says the same in words and numbers.
    """
    rects = format_html_join(
        "",
        '<rect class="seg seg--{}" x="{}" y="0" width="{}" height="10"></rect>',
        ((key, f"{x:g}", f"{width:g}") for key, x, width in bar_widths(items)),
    )
    modifier = f" bar--{size}" if size else ""
    return format_html(
        '<svg class="bar{}" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true"'
        ' focusable="false"><rect class="bar__track" x="0" y="0" width="100" height="10">'
        "</rect>{}</svg>",
        modifier,
        rects,
    )
