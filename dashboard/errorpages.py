"""What the dashboard answers when a request fails before or outside Allo: a refused form
(CSRF), a page that does not exist, a server error.

A page gets a whole page in words. An htmx request gets a small fragment put in the page's
permanent trouble region (``#request-trouble`` in base.html) instead of the part it was
updating, so a half-typed form keeps its values; base.html's htmx-config lets htmx swap these
4xx and 5xx answers, and dashboard.js swaps no other error answer.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _
from django_htmx.http import push_url, reswap, retarget

logger = logging.getLogger(__name__)

TROUBLE_FRAGMENT = "dashboard/_request_trouble.html"
TROUBLE_TARGET = "#request-trouble"


def _is_htmx(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    if htmx is None:
        # Failures raised before django-htmx's middleware ran.
        return request.headers.get("HX-Request") == "true"
    return bool(htmx) and not htmx.history_restore_request


def _answer(
    request: HttpRequest, *, status: int, title: str, message: str, advice: str = ""
) -> HttpResponse:
    if _is_htmx(request):
        response = render(
            request, TROUBLE_FRAGMENT, {"message": message, "advice": advice}, status=status
        )
        retarget(response, TROUBLE_TARGET)
        reswap(response, "outerHTML")
        # A failed filter must not put its address in the history.
        return push_url(response, False)
    context = {"title": title, "message": message, "advice": advice, "status": status}
    return render(request, "dashboard/error.html", context, status=status)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the form was refused before it reached the dashboard."""
    logger.warning("CSRF check failed on %s %s: %s", request.method, request.path, reason)
    return _answer(
        request,
        status=403,
        title=_("This form has expired"),
        message=_(
            "The form was sent from a page that is too old, or you signed in or out in "
            "another tab, so nothing was changed."
        ),
        advice=_("Reload the page, then try again."),
    )


def _names_a_teammate(request: HttpRequest) -> bool:
    try:
        return "user_id" in resolve(request.path_info).kwargs
    except Resolver404:
        return False


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404. A teammate's address out of reach says so, in the same words whether the
    person exists or not."""
    if _names_a_teammate(request):
        return _answer(
            request,
            status=404,
            title=_("Teammate not found"),
            message=_("No teammate with this id is on your team."),
            advice=_("Check the address, or pick the teammate from the team's page."),
        )
    return _answer(
        request,
        status=404,
        title=_("Page not found"),
        message=_("There is no page at this address."),
        advice=_("Check the address, or start again from the team's page."),
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403."""
    return _answer(
        request,
        status=403,
        title=_("Not allowed"),
        message=_("Your account may not do this."),
        advice=_("An administrator can tell you why."),
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400."""
    return _answer(
        request,
        status=400,
        title=_("Something went wrong"),
        message=_("The dashboard could not understand this request, so nothing was changed."),
        advice=_("Reload the page, then try again."),
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. Rendered without context processors: whatever failed (the database, say)
    must not fail again here."""
    message = _("Something went wrong on the dashboard's side. Nothing was lost.")
    advice = _("Try again in a moment.")
    if _is_htmx(request):
        html = render_to_string(TROUBLE_FRAGMENT, {"message": message, "advice": advice})
        response = HttpResponse(html, status=500)
        retarget(response, TROUBLE_TARGET)
        reswap(response, "outerHTML")
        return push_url(response, False)
    html = render_to_string("500.html", {"message": message, "advice": advice})
    return HttpResponse(html, status=500)
