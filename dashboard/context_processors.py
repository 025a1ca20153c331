"""What every page needs to know about Allo: whether it is answering (the outage banner).

Views note the age of the answers of Allo's they show (``note_freshness``); the context processor
adds ``allo_outage`` to every template: None while all is well, else what the banner says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.http import HttpRequest
from django.utils import timezone

from dashboard.allo.client import circuit_state
from dashboard.services import Freshness

# The request attribute holding the oldest stale answer a page shows.
_NOTED = "_allo_stale_freshness"


@dataclass(frozen=True)
class AlloOutage:
    """What the banner says: Allo does not answer (``paused``: the dashboard holds off Allo,
    or a page shows old answers because Allo failed; changes are paused) or is busy, and since
    when the page's oldest answer of Allo's dates (``as_of``, None: it shows none)."""

    paused: bool
    as_of: datetime | None = None


def note_freshness(request: HttpRequest, freshness: Freshness | None) -> None:
    """Remember that this page shows an answer of Allo's this old (only stale ones count)."""
    if freshness is None or not freshness.shown_stale:
        return
    noted: Freshness | None = getattr(request, _NOTED, None)
    if noted is None or freshness.age > noted.age or (freshness.allo_down and not noted.allo_down):
        setattr(request, _NOTED, freshness)


def noted_freshness(request: HttpRequest) -> Freshness | None:
    return getattr(request, _NOTED, None)


def as_of(freshness: Freshness) -> datetime:
    """When Allo gave an answer, on this server's clock (the page compares it with now)."""
    return timezone.now() - timedelta(seconds=freshness.age)


def allo_outage(request: HttpRequest) -> dict[str, AlloOutage | None]:
    """``allo_outage`` for every template: the shared circuit breaker's state (one read of the
    shared store, never a call to Allo), and the stale answers the view noted."""
    noted = noted_freshness(request)
    paused = circuit_state().open or (noted is not None and noted.allo_down)
    if not paused and noted is None:
        return {"allo_outage": None}
    return {
        "allo_outage": AlloOutage(paused=paused, as_of=as_of(noted) if noted else None),
    }
