"""Thin views: read the request, call a service, render; Allo failures become words in place."""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling, reswap, retarget
from django_htmx.middleware import HtmxDetails

from dashboard import services
from dashboard.allo.errors import (
    AlloBadResponseError,
    AlloError,
    AlloRateLimitedError,
    AlloUnavailableError,
    AlloWrongTeammateError,
)
from dashboard.allo.resilience import deadline
from dashboard.allo.types import SCOPE_DIALING_QUEUE, SCOPE_USERS_READ, Queue, Teammate
from dashboard.audit import (
    FIELD_LABELS,
    VALUE_LABELS,
    audit_authors,
    audit_csv_lines,
    audit_filtered,
    audit_last_change,
    audit_rows,
    audit_teammates,
    audit_visible,
)
from dashboard.context_processors import as_of, note_freshness
from dashboard.failures import Failure, failure_explain
from dashboard.forms import AuditFilterForm, QueueSettingsForm, TeammateFilterForm
from dashboard.labels import label
from dashboard.permissions import Access
from dashboard.templatetags.dashboard_tags import queue_dom_id

QUEUE_TEMPLATE = "dashboard/queue.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    # Set by permissions.TeamAccessMiddleware on every page of the dashboard.
    access: Access


def _explain(error: AlloError, *, access: Access | None = None, **kwargs: Any) -> Failure:
    """failure_explain, naming the person whose queue Allo answered with when it was not ours:
    by their name on the cached team list if ``access`` may see them, else "another teammate"
    (never their id, and never a call to Allo about someone out of reach)."""
    if isinstance(error, AlloWrongTeammateError) and error.returned_user_id:
        kwargs["returned_name"] = (
            access.visible_name(error.returned_user_id)
            if access is not None
            else _("another teammate")
        )
    return failure_explain(error, **kwargs)


# Teammates --------------------------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request", "HX-Target", "HX-History-Restore-Request")
@deadline()
def teammates(request: HtmxHttpRequest) -> HttpResponse:
    if not request.access.has_team_access:
        return render(request, "dashboard/access.html")
    filters = TeammateFilterForm(request.GET)
    people: list[Teammate] = []
    failure = None
    try:
        team = services.teammate_list_snapshot(**filters.filters())
    except AlloError as error:
        failure = _explain(error, scope=SCOPE_USERS_READ)
    else:
        people = request.access.visible(team.value)
        note_freshness(request, services.Freshness.of(team))
    context = {
        "filters": filters,
        "teammates": people,
        "failure": failure,
        # Counts read in the last seconds are shown at once; the overview reads the others.
        **_team_context(request, people, budget=0, batch=0),
    }
    if (
        request.htmx
        and request.htmx.target == "teammate-list"
        and not request.htmx.history_restore_request
    ):
        return render(request, "dashboard/teammates.html#teammate-list", context)
    return render(request, "dashboard/teammates.html", context)


# A teammate's queue ------------------------------------------------------------------------------


def _settings_form(user_id: str, **kwargs: Any) -> QueueSettingsForm:
    # Ids prefixed per teammate: the teammates page holds one form per person.
    auto_id = f"{queue_dom_id(user_id)}-%s"
    if "data" in kwargs:
        return QueueSettingsForm(kwargs["data"], auto_id=auto_id)
    return QueueSettingsForm.from_settings(
        kwargs["settings"], seen=kwargs.get("seen"), auto_id=auto_id
    )


# What a queue that does not exist yet was seen as: nothing, so that saving creates it.
NOTHING_SEEN = services.QueueSettings(name="", voicemail_handling="", do_not_disturb="")


def _form_of(user_id: str, queue: Queue | None) -> QueueSettingsForm:
    """The settings form showing ``queue`` (None: Allo's defaults for a queue to create)."""
    return _settings_form(
        user_id,
        settings=services.QueueSettings.of(queue),
        seen=NOTHING_SEEN if queue is None else None,
    )


def _page_number(request: HtmxHttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


def _queue_context(user_id: str, **extra: Any) -> dict[str, Any]:
    dom_id = queue_dom_id(user_id)
    return {
        "user_id": user_id,
        "dom_id": dom_id,
        "form_dom_id": f"{dom_id}-form",
        "numbers_dom_id": f"{dom_id}-numbers",
        "teammate": None,
        "overview": None,
        "page": None,
        "form": None,
        "failure": None,
        # Called by the template only if it shows the card (one small query, no Allo call).
        "last_change": functools.partial(audit_last_change, teammate_id=user_id),
        **extra,
    }


def _with_overview(context: dict[str, Any], overview: services.QueueOverview, page: int) -> None:
    context["overview"] = overview
    freshness = overview.freshness
    if freshness is not None and freshness.shown_stale:
        # Shown from Allo's last answer: "as of 14:02 (3 minutes ago)".
        context["stale_as_of"] = as_of(freshness)
    context["live"] = services.queue_live_state(queue=overview.queue)
    if overview.queue is not None:
        context["page"] = services.queue_numbers_page_of(queue=overview.queue, page=page)


def _render_queue(request: HtmxHttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The card as a fragment for htmx, else the full page.

    "Not on the team" is a 404 page, but a 200 fragment: htmx (and django-htmx's debug helper)
    would not swap a 404 into the card.
    """
    failure = context.get("failure")
    if _wants_fragment(request):
        if failure is not None and failure.retry_after:
            context["retry_delay_ms"] = failure.retry_after * 1000 + random.randint(0, 1500)
        return render(request, f"{QUEUE_TEMPLATE}#queue-card", context)
    status = 404 if failure is not None and failure.not_on_team else 200
    return render(request, QUEUE_TEMPLATE, context, status=status)


def _wants_fragment(request: HtmxHttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _queue_numbers(request: HtmxHttpRequest, user_id: str) -> HttpResponse:
    """Another page of the numbers table: one read of that page, not of the whole queue.

    Allo failing is said in the table's place, with a way to try again: the settings form
    above keeps what is typed. A queue gone since the card was drawn (deleted in Allo) redraws
    the whole card in its no-queue state, as opening it now would, without another read.
    """
    wanted = _page_number(request)
    context = _queue_context(
        user_id, wanted_page=wanted, page_in_url=not _on_teammates_page(request)
    )
    try:
        context["page"] = services.queue_numbers_page(user_id=user_id, page=wanted)
    except AlloError as error:
        failure = _explain(error, access=request.access, scope=SCOPE_DIALING_QUEUE)
        if not (failure.not_on_team or failure.alarm):
            context["numbers_failure"] = failure
            return render(request, f"{QUEUE_TEMPLATE}#numbers", context)
        # Not on the team, or someone else's queue: the whole card says so.
        context["failure"] = failure
    else:
        if context["page"] is None:
            overview = services.queue_overview_of(user_id=user_id, queue=None)
            _with_overview(context, overview, 1)
            _with_row(request, context, overview)
            context["form"] = _form_of(user_id, None)
    if context["page"] is None:
        return retarget(
            render(request, f"{QUEUE_TEMPLATE}#queue-card", context), f"#{context['dom_id']}"
        )
    return render(request, f"{QUEUE_TEMPLATE}#numbers", context)


def _queue_show(request: HtmxHttpRequest, user_id: str) -> HttpResponse:
    context = _queue_context(user_id)
    if _wants_fragment(request) and request.htmx.target == context["numbers_dom_id"]:
        return _queue_numbers(request, user_id)
    name = ""
    # A card loaded into the teammates page sits under the teammate's name already: no need
    # to spend a read of the key's budget on it.
    if not _wants_fragment(request):
        try:
            context["teammate"] = services.teammate_get(user_id=user_id)
        except AlloError as error:
            context["failure"] = _explain(error, scope=SCOPE_USERS_READ)
            return _render_queue(request, context)
        name = context["teammate"].name
    try:
        overview = services.queue_overview(user_id=user_id)
    except AlloError as error:
        context["failure"] = _explain(
            error, access=request.access, scope=SCOPE_DIALING_QUEUE, teammate_name=name
        )
        return _render_queue(request, context)
    _with_overview(context, overview, _page_number(request))
    _with_row(request, context, overview)
    note_freshness(request, overview.freshness)
    context["form"] = _form_of(user_id, overview.queue)
    return _render_queue(request, context)


def _form_error(request: HtmxHttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The form again with its errors and the typed values.

    htmx: only the form is swapped (the numbers stay). Plain POST: the full page, with the
    teammate and the queue read again when Allo allows it (status 200 either way).
    """
    if request.htmx:
        response = render(request, f"{QUEUE_TEMPLATE}#settings-form", context)
        retarget(response, f"#{context['form_dom_id']}")
        reswap(response, "outerHTML")
        return response
    user_id = context["user_id"]
    try:
        context["teammate"] = services.teammate_get(user_id=user_id)
        overview = services.queue_overview(user_id=user_id)
    except AlloError:
        # The form already says what went wrong; the numbers are simply left out.
        pass
    else:
        _with_overview(context, overview, 1)
    return render(request, QUEUE_TEMPLATE, context)


@dataclass(frozen=True)
class ConflictRow:
    """A setting someone changed in Allo meanwhile, in words, and the manager's choice so far."""

    field: str
    label: str
    seen: str
    current: str
    wanted: str
    choice: str


def _value_words(field: str, value: str) -> str:
    if not value:
        return "—"
    labels = VALUE_LABELS.get(field)
    return label(labels, value) if labels else value


def _conflict_rows(
    conflicts: tuple[services.FieldConflict, ...], form: QueueSettingsForm
) -> list[ConflictRow]:
    decisions = form.decisions()
    return [
        ConflictRow(
            field=conflict.field,
            label=str(FIELD_LABELS.get(conflict.field, conflict.field)),
            seen=_value_words(conflict.field, conflict.seen),
            current=_value_words(conflict.field, conflict.current),
            wanted=_value_words(conflict.field, conflict.wanted),
            # Keeping Allo's value is the choice made for the manager until they make one.
            choice=decisions.get(conflict.field, services.KEEP),
        )
        for conflict in conflicts
    ]


def _form_again(
    request: HtmxHttpRequest,
    context: dict[str, Any],
    form: QueueSettingsForm,
    *,
    error: str | None = None,
    seen: dict[str, str] | None = None,
) -> HttpResponse:
    """The form drawn again as typed, with a new token (and ``error`` on top)."""
    again = form.again(seen=seen)
    again.is_valid()
    if error:
        again.add_error(None, error)
    context["form"] = again
    return _form_error(request, context)


def _save_failed(
    request: HtmxHttpRequest,
    context: dict[str, Any],
    form: QueueSettingsForm,
    error: AlloError,
    *,
    writing: bool = True,
) -> HttpResponse:
    """The form again as typed (new token), with Allo's failure in words where it belongs."""
    user_id = context["user_id"]
    name = ""
    if isinstance(error, AlloWrongTeammateError):
        name = request.access.name_of(user_id) or user_id
    failure = _explain(
        error,
        access=request.access,
        writing=writing,
        scope=SCOPE_DIALING_QUEUE,
        teammate_name=name,
        form_fields=tuple(form.fields),
    )
    again = form.again()
    again.is_valid()
    context["form"] = again
    if failure.alarm:
        context["alarm"] = failure
    else:
        for field, text in failure.messages:
            again.add_error(field, text)
        context["allo_said"] = failure.allo_said
    return _form_error(request, context)


def _show_saved(
    request: HtmxHttpRequest, context: dict[str, Any], saved: services.QueueSave, words: str
) -> HttpResponse:
    """After a save Allo has: Post/Redirect/Get with ``words``, or the card as Allo has it."""
    user_id = context["user_id"]
    if not request.htmx:
        messages.success(request, words)
        return redirect("dashboard:queue", user_id=user_id)
    if saved.queue is not None and not saved.verified:
        # What Allo returned for the PATCH: the queue with every number.
        overview = services.queue_overview_of(user_id=user_id, queue=saved.queue)
    else:
        try:
            overview = services.queue_overview(user_id=user_id)
        except AlloError:
            overview = services.queue_overview_of(user_id=user_id, queue=saved.queue)
    _with_overview(context, overview, 1)
    _with_row(request, context, overview)
    # A plain save keeps the card's own words ("…, shown below.").
    plain = saved.outcome == services.SAVED and not saved.verified
    context.update(
        form=_form_of(user_id, overview.queue), saved=True, saved_words=None if plain else words
    )
    return render(request, f"{QUEUE_TEMPLATE}#queue-card", context)


def _queue_save(request: HtmxHttpRequest, user_id: str) -> HttpResponse:
    form = _settings_form(user_id, data=request.POST)
    context = _queue_context(user_id, form=form)
    if not form.is_valid():
        return _form_error(request, context)
    try:
        saved = services.queue_settings_update(
            user_id=user_id,
            wanted=form.wanted(),
            seen=form.seen(),
            author=request.access.author,
            teammate_name=request.access.name_of(user_id),
            decisions=form.decisions(),
            token=form.cleaned_data.get("token") or None,
        )
    except AlloError as error:
        return _save_failed(request, context, form, error)

    outcome = saved.outcome
    if outcome == services.CONFLICT:
        # Allo's values are shown: they become the ones seen, so that a choice made now
        # concerns them (and a further change in Allo is a new conflict).
        context["conflicts"] = _conflict_rows(saved.conflicts, form)
        return _form_again(
            request, context, form, seen={c.field: c.current for c in saved.conflicts}
        )
    if outcome == services.UNCHANGED:
        notice = _("Nothing to save: these are already the queue's settings.")
        if request.htmx:
            context.update(notice=notice, form=_form_of(user_id, saved.queue))
            return _form_error(request, context)
        messages.info(request, notice)
        return redirect("dashboard:queue", user_id=user_id)
    if outcome == services.NOT_SAVED:
        return _form_again(
            request,
            context,
            form,
            error=_(
                "Not saved: Allo failed before applying this change (the dashboard read the "
                "queue again to check). Your values are kept: press Save to try again."
            ),
        )
    if outcome == services.UNKNOWN:
        assert saved.error is not None
        return _save_failed(request, context, form, saved.error)
    if outcome == services.NOT_SENT:
        assert saved.error is not None
        # Reading the queue before writing failed. Someone else's queue came back: an alarm,
        # but about a read (nothing was written anywhere).
        misread = isinstance(saved.error, AlloWrongTeammateError)
        return _save_failed(request, context, form, saved.error, writing=not misread)
    if outcome == services.DUPLICATE:
        return _save_duplicate(request, context, form, saved)
    if saved.verified:
        words = _(
            "Saved. Allo's answer was lost, so the dashboard read the queue again: it has your "
            "new settings."
        )
    else:
        words = _("Saved. Allo confirmed the queue's new settings.")
    return _show_saved(request, context, saved, words)


def _save_duplicate(
    request: HtmxHttpRequest,
    context: dict[str, Any],
    form: QueueSettingsForm,
    saved: services.QueueSave,
) -> HttpResponse:
    """The same form sent a second time (a double click): nothing is sent again; the manager
    learns how the first one ended."""
    if saved.first in (services.SAVED, services.UNCHANGED):
        words = _("Already saved: this form was sent twice, and Allo has it once.")
        return _show_saved(request, context, saved, words)
    if saved.first is None:
        error = _(
            "This change is already on its way to Allo (the form was sent twice). Reload the "
            "queue in a moment to see whether Allo applied it."
        )
    elif saved.first == services.UNKNOWN:
        error = _(
            "This form was already sent once, and Allo did not confirm that change. Reload "
            "the queue to check before trying again."
        )
    else:
        error = _(
            "This form was already sent once, and that change was not saved. Your values are "
            "kept: press Save to try again."
        )
    return _form_again(request, context, form, error=error)


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
# One deadline (ALLO_ACTION_DEADLINE) for everything a page or a save asks of Allo.
@deadline()
def queue(request: HtmxHttpRequest, user_id: str) -> HttpResponse:
    if request.method == "POST":
        return _queue_save(request, user_id)
    return _queue_show(request, user_id)


# Live routing results ----------------------------------------------------------------------------

# Failures worth trying again at the next refresh; any other stops the refreshing.
PASSING_TROUBLE = (AlloRateLimitedError, AlloUnavailableError, AlloBadResponseError)


def _count(request: HtmxHttpRequest, name: str) -> int:
    try:
        return min(max(0, int(request.GET.get(name, "0"))), 10_000)
    except ValueError:
        return 0


@require_GET
@deadline()
def queue_live(request: HtmxHttpRequest, user_id: str) -> HttpResponse:
    """A queue on screen refreshing itself: its summary and numbers, never its form.

    ``seen`` is the fingerprint the page shows and ``idle`` how many refreshes in a row found
    nothing new. Unchanged: only the small live status is swapped. Changed: the summary, the
    numbers (the page being looked at) and the header come along out of band. Fully dialed,
    idle for a while, or refused by Allo for good: 286, and the refreshing stops.
    One full read of the queue each time (1 read per 100 numbers).
    """
    if not _wants_fragment(request):
        return redirect("dashboard:queue", user_id=user_id)
    context = _queue_context(user_id)
    seen = request.GET.get("seen") or None
    idle = _count(request, "idle")
    try:
        overview = services.queue_overview(user_id=user_id)
        if overview.allo_down and overview.freshness and overview.freshness.error:
            # Only Allo's last answer, already on screen: say why nothing new comes.
            raise overview.freshness.error
    except AlloError as error:
        passing = isinstance(error, PASSING_TROUBLE) and idle + 1 < services.LIVE_IDLE_POLLS
        context["live"] = services.LiveState(
            state=services.LIVE if passing else services.LIVE_GONE,
            fingerprint=seen or "",
            idle=idle + 1,
            # Allo is struggling: ask it half as often.
            interval=2 * services.LIVE_POLL_SECONDS,
            changed=False,
        )
        context["live_failure"] = _explain(error, access=request.access, scope=SCOPE_DIALING_QUEUE)
    else:
        _with_overview(context, overview, _page_number(request))
        _with_row(request, context, overview)
        context["live"] = services.queue_live_state(
            queue=overview.queue,
            seen=seen,
            idle=idle,
            watching=True,
            stale=bool(overview.freshness and overview.freshness.stale),
        )
    html = render_to_string(f"{QUEUE_TEMPLATE}#live-update", context, request)
    if context["live"].polling:
        return HttpResponse(html)
    return HttpResponseStopPolling(html)


def _on_teammates_page(request: HtmxHttpRequest) -> bool:
    """Whether an htmx request comes from the teammates page (whose rows it may update)."""
    if not _wants_fragment(request) or not request.htmx.current_url_abs_path:
        return False
    try:
        match = resolve(urlsplit(request.htmx.current_url_abs_path).path)
    except Resolver404:
        return False
    return match.view_name == "dashboard:teammates"


def _with_row(
    request: HtmxHttpRequest, context: dict[str, Any], overview: services.QueueOverview
) -> None:
    """On the teammates page, a card just read also refreshes its row's counts; on the
    queue's own page, its page of numbers goes in the address (page_in_url)."""
    on_teammates_page = _on_teammates_page(request)
    context["page_in_url"] = not on_teammates_page
    if on_teammates_page and overview.tally is not None:
        context["row"] = TeammateRow(dom_id=context["dom_id"], tally=overview.tally)


# The teammates page's counts and overview ---------------------------------------------------------

# An overview still counting asks again, this many times at most.
TEAM_MAX_BATCHES = 30


@dataclass(frozen=True)
class TeammateRow:
    """One row of the teammates page: the person, and their queue counted (or why not, or
    neither yet: still to be read)."""

    dom_id: str
    teammate: Teammate | None = None
    tally: services.QueueTally | None = None
    failure: Failure | None = None


def _team_context(
    request: HtmxHttpRequest,
    people: list[Teammate],
    *,
    budget: int = services.TEAM_READS_PER_BATCH,
    since: float | None = None,
    batch: int = 0,
) -> dict[str, Any]:
    """Rows and overview of the teammates page, reading at most ``budget`` queue pages.

    ``batch`` 0 is the page itself (no reads: the counts kept from the last seconds); the
    overview's requests are batches 1, 2… each asking for the next while some remain.
    """
    now = time.time()
    since = now - services.TALLY_MAX_AGE if since is None else since
    team = services.team_tally(
        user_ids=[person.id for person in people], fresh_since=since, read_budget=budget
    )
    failures = {
        user_id: _explain(error, access=request.access, scope=SCOPE_DIALING_QUEUE)
        for user_id, error in team.failures.items()
    }
    rows = [
        TeammateRow(
            dom_id=queue_dom_id(person.id),
            teammate=person,
            tally=team.tallies.get(person.id),
            failure=failures.get(person.id),
        )
        for person in people
    ]
    oldest = team.oldest_read_at
    context: dict[str, Any] = {
        "team": team,
        "rows": rows,
        "team_failures": sorted({failure.text for failure in failures.values()}),
        "counted_at": datetime.fromtimestamp(oldest, UTC) if oldest else None,
        "overview_query": _filter_query(request),
    }
    if not team.complete and batch < TEAM_MAX_BATCHES:
        query = QueryDict(_filter_query(request), mutable=True)
        query["since"] = f"{since:.3f}"
        query["batch"] = str(batch + 1)
        context["overview_next"] = f"{reverse('dashboard:team_overview')}?{query.urlencode()}"
        if batch:
            # Allo's budget is per second: ask again in a second, or when Allo said to, spread
            # out a little so that two managers' pages do not ask in the same instant.
            delay = max(1.0, team.retry_after or 0)
            context["overview_delay_ms"] = int(delay * 1000) + random.randint(0, 400)
        else:
            context["overview_delay_ms"] = 0
    return context


def _filter_query(request: HtmxHttpRequest) -> str:
    """The teammates filters of this request, as a query string (nothing else)."""
    query = request.GET.copy()
    for name in list(query):
        if name not in TeammateFilterForm.base_fields:
            query.pop(name)
    return query.urlencode()


def _since(request: HtmxHttpRequest) -> float | None:
    """Counts read since when are good enough: "fresh" means from now on, else the time the
    overview started counting (so a later batch does not read again what an earlier read)."""
    now = time.time()
    if request.GET.get("fresh"):
        return now
    try:
        since = float(request.GET.get("since", ""))
    except ValueError:
        return None
    return min(max(since, now - services.TALLY_KEEP_SECONDS), now)


@require_GET
@deadline()
def team_overview(request: HtmxHttpRequest) -> HttpResponse:
    """The teammates page's overview, and every row's counts out of band, for its filters.

    One read of the team list, then the queues not counted in the last seconds, about
    TEAM_READS_PER_BATCH reads at most; while some remain, the answer asks again a second
    later (or when Allo said to), so the page fills in without exceeding Allo's budget.
    """
    if not request.access.has_team_access:
        raise Http404
    if not _wants_fragment(request):
        query = _filter_query(request)
        return redirect(reverse("dashboard:teammates") + (f"?{query}" if query else ""))
    filters = TeammateFilterForm(request.GET)
    context: dict[str, Any] = {"filters": filters, "failure": None, "oob": True}
    try:
        people = request.access.visible(services.teammate_list(**filters.filters()))
    except AlloError as error:
        context["failure"] = _explain(error, scope=SCOPE_USERS_READ)
        context["overview_query"] = _filter_query(request)
        return render(request, "dashboard/teammates.html#team-overview", context)
    batch = max(1, _count(request, "batch"))
    context.update(_team_context(request, people, since=_since(request), batch=batch))
    return render(request, "dashboard/teammates.html#team-overview", context)


# The connection ---------------------------------------------------------------------------------


@require_GET
def connection(request: HtmxHttpRequest) -> HttpResponse:
    if not request.access.may_view_connection:
        raise Http404
    context: dict[str, Any] = {
        "connection": None,
        "failure": None,
        "base_url": settings.ALLO_API_BASE_URL,
    }
    try:
        context["connection"] = services.connection_describe()
    except AlloError as error:
        context["failure"] = _explain(error)
    return render(request, "dashboard/connection.html", context)


# The audit trail --------------------------------------------------------------------------------

AUDIT_PER_PAGE = 50


@require_GET
def audit(request: HtmxHttpRequest) -> HttpResponse:
    """Every write sent to Allo about the teammates the account may see, newest first.

    Filters come from the query string; ``?format=csv`` downloads every matching entry.
    """
    access = request.access
    if not access.has_team_access:
        raise Http404
    teammate = request.GET.get("teammate", "")
    if teammate and not access.can_see(teammate):
        raise Http404
    visible = audit_visible(access)
    teammates = audit_teammates(visible)
    if teammate and teammate not in dict(teammates):
        teammates.append((teammate, access.name_of(teammate) or teammate))
    form = AuditFilterForm(request.GET, teammates=teammates, authors=audit_authors(visible))
    entries = audit_filtered(visible, **form.filters())
    if request.GET.get("format") == "csv":
        response = StreamingHttpResponse(
            audit_csv_lines(entries), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="dialer-audit-{stamp}.csv"'
        return response
    page = Paginator(entries, AUDIT_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("format", None)
    context = {
        "form": form,
        "page": page,
        "rows": audit_rows(page),
        "query": query.urlencode(),
        "teammate_name": dict(teammates).get(teammate, "") if teammate else "",
    }
    return render(request, "dashboard/audit.html", context)
