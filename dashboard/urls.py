from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.i18n import set_language

from dashboard import signin, signout, views

app_patterns = (
    [
        path("", views.teammates, name="teammates"),
        path("teammates/<str:user_id>/queue/", views.queue, name="queue"),
        path("teammates/<str:user_id>/queue/live/", views.queue_live, name="queue_live"),
        path("team/overview/", views.team_overview, name="team_overview"),
        path("connection/", views.connection, name="connection"),
        path("audit/", views.audit, name="audit"),
    ],
    "dashboard",
)

urlpatterns = [
    path("accounts/login/", signin.SignInView.as_view(), name="login"),
    path("accounts/logout/", signout.SignOutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The language switcher posts here; the sign-in page has it too, hence no login needed.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("", include(app_patterns)),
]

# Failures in words: a page, or a fragment for htmx (dashboard/errorpages.py).
handler400 = "dashboard.errorpages.bad_request"
handler403 = "dashboard.errorpages.permission_denied"
handler404 = "dashboard.errorpages.page_not_found"
handler500 = "dashboard.errorpages.server_error"
