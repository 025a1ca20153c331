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
from dashboard.allo.types import SCOPE_DIALING_QUEUE, SCOPE_USERS_READ, Teammate
from dashboard.audit import (
    audit_authors,
    audit_csv_lines,
    audit_filtered,
    audit_last_change,
    audit_rows,
    audit_teammates,
    audit_visible,
)
from dashboard.failures import Failure, failure_explain
from dashboard.forms import AuditFilterForm, QueueSettingsForm, TeammateFilterForm
from dashboard.permissions import Access
from dashboard.templatetags.dashboard_tags import queue_dom_id

QUEUE_TEMPLATE = "dashboard/queue.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    # Set by permissions.TeamAccessMiddleware on every page of the dashboard.
    access: Access


def _explain(error: AlloError, **kwargs: Any) -> Failure:
    """failure_explain, naming the person whose queue Allo answered with when it was not ours."""
    if isinstance(error, AlloWrongTeammateError):
        kwargs["returned_name"] = services.teammate_name(user_id=error.returned_user_id)
    return failure_explain(error, **kwargs)


# Teammates --------------------------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request", "HX-Target", "HX-History-Restore-Request")
def teammates(request: HtmxHttpRequest) -> HttpResponse:
    if not request.access.has_team_access:
        return render(request, "dashboard/access.html")
    filters = TeammateFilterForm(request.GET)
    people: list[Teammate] = []
    failure = None
    try:
        people = request.access.visible(services.teammate_list(**filters.filters()))
    except AlloError as error:
        failure = _explain(error, scope=SCOPE_USERS_READ)
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
    return QueueSettingsForm.from_settings(kwargs["settings"], auto_id=auto_id)


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
    """Another page of the numbers table: one read of that page, not of the whole queue."""
    context = _queue_context(user_id)
    try:
        context["page"] = services.queue_numbers_page(user_id=user_id, page=_page_number(request))
    except AlloError as error:
        context["failure"] = _explain(error, scope=SCOPE_DIALING_QUEUE)
    if context["page"] is None:
        # The queue is gone, or Allo failed: the whole card says why.
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
        context["failure"] = _explain(error, scope=SCOPE_DIALING_QUEUE, teammate_name=name)
        return _render_queue(request, context)
    _with_overview(context, overview, _page_number(request))
    _with_row(request, context, overview)
    context["form"] = _settings_form(user_id, settings=services.QueueSettings.of(overview.queue))
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
        )
    except AlloError as error:
        name = ""
        if isinstance(error, AlloWrongTeammateError):
            name = services.teammate_name(user_id=user_id) or user_id
        failure = _explain(
            error,
            writing=True,
            scope=SCOPE_DIALING_QUEUE,
            teammate_name=name,
            form_fields=tuple(form.fields),
        )
        if failure.alarm:
            context["alarm"] = failure
        else:
            for field, text in failure.messages:
                form.add_error(field, text)
        return _form_error(request, context)

    if saved.queue is None:
        notice = _("Nothing to save: these are already the queue's settings.")
        if request.htmx:
            context["notice"] = notice
            return _form_error(request, context)
        messages.info(request, notice)
        return redirect("dashboard:queue", user_id=user_id)

    if not request.htmx:
        messages.success(request, _("Saved. Allo confirmed the queue's new settings."))
        return redirect("dashboard:queue", user_id=user_id)
    overview = services.queue_overview_of(user_id=user_id, queue=saved.queue)
    _with_overview(context, overview, 1)
    _with_row(request, context, overview)
    context.update(
        form=_settings_form(user_id, settings=services.QueueSettings.of(saved.queue)),
        saved=True,
    )
    return render(request, f"{QUEUE_TEMPLATE}#queue-card", context)


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request", "HX-Target")
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
        context["live_failure"] = _explain(error, scope=SCOPE_DIALING_QUEUE)
    else:
        _with_overview(context, overview, _page_number(request))
        _with_row(request, context, overview)
        context["live"] = services.queue_live_state(
            queue=overview.queue, seen=seen, idle=idle, watching=True
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
    """On the teammates page, a card just read also refreshes its row's counts."""
    if _on_teammates_page(request) and overview.tally is not None:
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
        user_id: _explain(error, scope=SCOPE_DIALING_QUEUE)
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
