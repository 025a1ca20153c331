"""System checks of the dashboard's own settings (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security)
def check_client_address_behind_proxy(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    """Behind a TLS proxy every request comes from the proxy: without the header carrying the
    visitor's address, sign-in throttling counts every visitor as one address, and twenty
    wrong passwords from anyone pause signing in for everyone."""
    if not settings.SECURE_PROXY_SSL_HEADER or settings.SIGNIN_CLIENT_IP_HEADER:
        return []
    return [
        checks.Warning(
            "DJANGO_BEHIND_TLS_PROXY is on but DJANGO_CLIENT_IP_HEADER is not set: every "
            "visitor seems to come from the proxy, so sign-in throttling counts them all as "
            "one address.",
            hint=(
                "Set DJANGO_CLIENT_IP_HEADER to the header your proxy fills with the visitor's "
                "address, as Django names it (e.g. HTTP_X_FORWARDED_FOR), and "
                "DJANGO_TRUSTED_PROXY_COUNT to the number of proxies (default 1)."
            ),
            id="dashboard.W001",
        )
    ]
