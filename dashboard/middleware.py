from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django_htmx.http import HttpResponseClientRedirect


class HtmxLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, but htmx requests get a whole-page redirect.

    A plain 302 to the login page would be followed by htmx and the login form swapped into
    whatever fragment asked (a queue card, say). Instead the browser is sent to the login page,
    and back afterwards to the page the manager was on, not to the fragment's URL.
    """

    def handle_no_permission(
        self, request: HttpRequest, view_func: Callable[..., Any]
    ) -> HttpResponseBase:
        # django-htmx's middleware sets request.htmx on the way in, before any view hook runs.
        if not request.htmx:
            return super().handle_no_permission(request, view_func)
        page = request.htmx.current_url_abs_path or reverse("dashboard:teammates")
        login = redirect_to_login(
            page,
            resolve_url(self.get_login_url(view_func)),
            self.get_redirect_field_name(view_func),
        )
        return HttpResponseClientRedirect(login["Location"])


class PrivatePagesMiddleware:
    """Every answer to a signed-in account says ``Cache-Control: private, no-store``.

    Pages, fragments and the history's CSV hold what Allo says about the team and who changed
    what: no shared cache (a proxy, a CDN) may keep them, nor the browser's disk once the tab
    is closed. Static files never get here (WhiteNoise answers them first) and stay cacheable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response
