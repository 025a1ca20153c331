from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Allo Power Dialer dashboard"

    def ready(self) -> None:
        from dashboard import checks  # noqa: F401  (registers the system checks)
