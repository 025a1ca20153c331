from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import resolve_url
from django.urls import reverse
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
        if request.headers.get("HX-Request") != "true":
            return super().handle_no_permission(request, view_func)
        htmx = getattr(request, "htmx", None)
        page = getattr(htmx, "current_url_abs_path", None) or reverse("dashboard:teammates")
        login = redirect_to_login(
            page,
            resolve_url(self.get_login_url(view_func)),
            self.get_redirect_field_name(view_func),
        )
        return HttpResponseClientRedirect(login["Location"])
