"""Signing out: a POST signs out (a link or a prefetch must never do it); a GET, say the
address typed by hand, gets a page with the button, or says one is already signed out."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _


@method_decorator(login_not_required, name="dispatch")
class SignOutView(auth_views.LogoutView):
    http_method_names = ["get", "post", "options"]
    template_name = "registration/sign_out.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_to_response(self.get_context_data())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        # Shown by the sign-in page the browser is sent to.
        messages.success(request, _("You are signed out."))
        return response
