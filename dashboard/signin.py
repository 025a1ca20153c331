"""Signing in: Django's LoginView, with repeated failures throttled per account and per address.

After ``SIGNIN_MAX_FAILURES_PER_ACCOUNT`` wrong passwords for one username, or
``SIGNIN_MAX_FAILURES_PER_ADDRESS`` from one client address, within ``SIGNIN_WINDOW_SECONDS``,
signing in is refused for ``SIGNIN_LOCKOUT_SECONDS``, even with the right password. Counters live
in Django's cache (shared by every worker once the cache is Redis). The client address is
``REMOTE_ADDR``, or the header named by ``SIGNIN_CLIENT_IP_HEADER`` behind a proxy.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import ngettext

logger = logging.getLogger(__name__)

ACCOUNT: Final = "account"
ADDRESS: Final = "address"


def client_address(request: HttpRequest) -> str:
    """The address a sign-in comes from.

    Behind a proxy every request comes from the proxy: name the header it sets in
    ``SIGNIN_CLIENT_IP_HEADER`` (e.g. ``HTTP_X_FORWARDED_FOR``). Of a list, the last entry is
    used: the one the proxy itself appended, which a client cannot forge.
    """
    header = settings.SIGNIN_CLIENT_IP_HEADER
    if header:
        value = request.META.get(header, "").split(",")[-1].strip()
        if value:
            return value
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(kind: str, what: str, value: str) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"dashboard:signin:{what}:{kind}:{digest}"


def _subjects(username: str, address: str) -> list[tuple[str, str, int]]:
    subjects = []
    account = username.strip().casefold()
    if account:
        subjects.append((ACCOUNT, account, settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT))
    if address:
        subjects.append((ADDRESS, address, settings.SIGNIN_MAX_FAILURES_PER_ADDRESS))
    return subjects


def signin_locked_until(*, username: str, address: str, now: float | None = None) -> float | None:
    """When signing in opens again for this username or address (a Unix time), or None."""
    now = time.time() if now is None else now
    untils = [
        until
        for kind, value, _limit in _subjects(username, address)
        if isinstance(until := cache.get(_key(kind, "lock", value)), int | float) and until > now
    ]
    return max(untils, default=None)


def signin_failed(*, username: str, address: str, now: float | None = None) -> None:
    """Count a wrong password against the username and the address; lock either at its limit."""
    now = time.time() if now is None else now
    window = int(settings.SIGNIN_WINDOW_SECONDS)
    lockout = int(settings.SIGNIN_LOCKOUT_SECONDS)
    for kind, value, limit in _subjects(username, address):
        counter = _key(kind, "failures", value)
        cache.add(counter, 0, window)
        try:
            failures = cache.incr(counter)
        except ValueError:
            # The window ended between add and incr: this failure starts a new one.
            cache.set(counter, 1, window)
            failures = 1
        if failures >= limit:
            cache.set(_key(kind, "lock", value), now + lockout, lockout)
            cache.delete(counter)
            logger.warning(
                "Sign-in locked for %s seconds: %s failures for one %s (%s)",
                lockout,
                failures,
                kind,
                value if kind == ADDRESS else _key(kind, "id", value)[-12:],
            )


def signin_succeeded(*, username: str) -> None:
    """A good password clears the account's failures (not the address's: see the README)."""
    account = username.strip().casefold()
    if account:
        cache.delete(_key(ACCOUNT, "failures", account))


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refusing while the username or the address is locked."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request) if self.request is not None else ""
        until = signin_locked_until(username=username, address=address)
        if until is not None:
            raise self._throttled(until)
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if error.code == "invalid_login":
                signin_failed(username=username, address=address)
                until = signin_locked_until(username=username, address=address)
                if until is not None:
                    raise self._throttled(until) from None
            raise
        signin_succeeded(username=username)
        return cleaned

    def _throttled(self, until: float) -> ValidationError:
        minutes = max(1, math.ceil((until - time.time()) / 60))
        message = ngettext(
            "Too many failed sign-ins for this account or from this address. Signing in is "
            "paused for %(minutes)s minute; try again then, or ask an administrator.",
            "Too many failed sign-ins for this account or from this address. Signing in is "
            "paused for %(minutes)s minutes; try again then, or ask an administrator.",
            minutes,
        )
        return ValidationError(message, code="throttled", params={"minutes": minutes})


class SignInView(LoginView):
    form_class = SignInForm
