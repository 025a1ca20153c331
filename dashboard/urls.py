from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dashboard import views

app_patterns = (
    [
        path("", views.teammates, name="teammates"),
        path("teammates/<str:user_id>/queue/", views.queue, name="queue"),
        path("connection/", views.connection, name="connection"),
    ],
    "dashboard",
)

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include(app_patterns)),
]
