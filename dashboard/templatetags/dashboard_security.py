"""Template filters that keep what Allo sends from reaching the page as anything but data."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import template
from django.conf import settings

register = template.Library()


@register.filter
def avatar_src(url: str | None) -> str:
    """Allo's ``image_url`` if it may be an <img> src, else "" (show the initials instead).

    Only an ``https:`` URL with a host, no credentials and nothing but printable characters;
    and when ``ALLO_AVATAR_HOSTS`` names hosts, only one of those (the CSP allows them alone).
    """
    if not url or not isinstance(url, str) or not url.isprintable() or " " in url:
        return ""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return ""
    if parts.scheme.lower() != "https" or not host or "@" in parts.netloc:
        return ""
    allowed = settings.ALLO_AVATAR_HOSTS
    if allowed and host not in allowed:
        return ""
    return url
