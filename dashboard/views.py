"""Thin views: read the request, call a service, render; Allo failures become words in place."""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget
from django_htmx.middleware import HtmxDetails

from dashboard import services
from dashboard.allo.errors import AlloError, AlloWrongTeammateError
from dashboard.allo.types import SCOPE_DIALING_QUEUE, SCOPE_USERS_READ, Teammate
from dashboard.failures import Failure, failure_explain
from dashboard.forms import QueueSettingsForm, TeammateFilterForm
from dashboard.templatetags.dashboard_tags import queue_dom_id

QUEUE_TEMPLATE = "dashboard/queue.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _explain(error: AlloError, **kwargs: Any) -> Failure:
    """failure_explain, naming the person whose queue Allo answered with when it was not ours."""
    if isinstance(error, AlloWrongTeammateError):
        kwargs["returned_name"] = services.teammate_name(user_id=error.returned_user_id)
    return failure_explain(error, **kwargs)


# Teammates --------------------------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def teammates(request: HtmxHttpRequest) -> HttpResponse:
    filters = TeammateFilterForm(request.GET)
    people: list[Teammate] = []
    failure = None
    try:
        people = services.teammate_list(**filters.filters())
    except AlloError as error:
        failure = _explain(error, scope=SCOPE_USERS_READ)
    context = {"filters": filters, "teammates": people, "failure": failure}
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
        **extra,
    }


def _with_overview(context: dict[str, Any], overview: services.QueueOverview, page: int) -> None:
    context["overview"] = overview
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
            user_id=user_id, wanted=form.wanted(), seen=form.seen()
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
    overview = services.QueueOverview(
        queue=saved.queue, summary=services.queue_summary(queue=saved.queue)
    )
    _with_overview(context, overview, 1)
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


# The connection ---------------------------------------------------------------------------------


@require_GET
def connection(request: HtmxHttpRequest) -> HttpResponse:
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
