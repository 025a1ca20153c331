"""Signing in: Django's LoginView and the admin's login, with attempts throttled per account and
per address.

Every attempt is counted before the password is checked, atomically in Django's cache (shared by
every worker once the cache is Redis), so that simultaneous attempts cannot all slip past the
limit. Within ``SIGNIN_WINDOW_SECONDS``, at most ``SIGNIN_MAX_FAILURES_PER_ACCOUNT`` passwords
are checked for one username and ``SIGNIN_MAX_FAILURES_PER_ADDRESS`` from one client address;
reaching a limit with a wrong password (or going past it at all) pauses signing in for that
username or address for ``SIGNIN_LOCKOUT_SECONDS``, even with the right password. A good
password takes its attempt back: it clears the account's count and uncounts itself from the
address's. ``manage.py unlock_signin`` lifts a pause.

The client address is ``REMOTE_ADDR``, or, behind proxies, the entry of the header named by
``SIGNIN_CLIENT_IP_HEADER`` that the outermost trusted proxy appended
(``SIGNIN_TRUSTED_PROXY_COUNT`` from the right).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from typing import Any, Final

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
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

    Behind proxies every request comes from the last proxy: name the header they fill in
    ``SIGNIN_CLIENT_IP_HEADER`` (e.g. ``HTTP_X_FORWARDED_FOR``) and how many proxies there are
    in ``SIGNIN_TRUSTED_PROXY_COUNT``. Each proxy appends the address it got the request from,
    so with N proxies the client is the Nth entry from the right; entries left of it are
    whatever the client sent, and never believed. A header with fewer entries than proxies did
    not come through them all: ``REMOTE_ADDR`` is used instead.
    """
    header = settings.SIGNIN_CLIENT_IP_HEADER
    if header:
        proxies = max(1, int(settings.SIGNIN_TRUSTED_PROXY_COUNT))
        entries = [entry.strip() for entry in request.META.get(header, "").split(",")]
        if len(entries) >= proxies and entries[-proxies]:
            return entries[-proxies]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(kind: str, what: str, value: str) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"dashboard:signin:{what}:{kind}:{digest}"


def _account(username: str) -> str:
    # Usernames are compared as Django's ModelBackend finds them, near enough: case aside.
    return username.strip().lower()


def _subjects(username: str, address: str) -> list[tuple[str, str, int]]:
    subjects = []
    account = _account(username)
    if account:
        subjects.append((ACCOUNT, account, settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT))
    if address:
        subjects.append((ADDRESS, address, settings.SIGNIN_MAX_FAILURES_PER_ADDRESS))
    return subjects


def _count(counter: str, window: int) -> int:
    """Add one to ``counter`` atomically (``add`` then ``incr``: one round trip each on Redis)."""
    cache.add(counter, 0, window)
    try:
        return cache.incr(counter)
    except ValueError:
        # The window ended between add and incr: this attempt starts a new one.
        cache.add(counter, 0, window)
        return cache.incr(counter)


def _lock(kind: str, value: str, attempts: int, now: float) -> None:
    lockout = int(settings.SIGNIN_LOCKOUT_SECONDS)
    # add, not set: attempts while locked never push the end of the pause further away.
    if cache.add(_key(kind, "lock", value), now + lockout, lockout):
        logger.warning(
            "Sign-in locked for %s seconds: %s attempts for one %s (%s)",
            lockout,
            attempts,
            kind,
            value if kind == ADDRESS else _key(kind, "id", value)[-12:],
        )


def signin_locked_until(*, username: str, address: str, now: float | None = None) -> float | None:
    """When signing in opens again for this username or address (a Unix time), or None."""
    now = time.time() if now is None else now
    untils = [
        until
        for kind, value, _limit in _subjects(username, address)
        if isinstance(until := cache.get(_key(kind, "lock", value)), int | float) and until > now
    ]
    return max(untils, default=None)


def signin_attempt(*, username: str, address: str, now: float | None = None) -> float | None:
    """Count an attempt before its password is checked; the time the pause ends if refused.

    Refused (no password check at all) while the username or address is paused, or when this
    attempt goes past a limit, which starts the pause. Concurrent attempts each get their own
    count, so no more than the limit are ever checked within a window.
    """
    now = time.time() if now is None else now
    until = signin_locked_until(username=username, address=address, now=now)
    if until is not None:
        return until
    window = int(settings.SIGNIN_WINDOW_SECONDS)
    for kind, value, limit in _subjects(username, address):
        attempts = _count(_key(kind, "attempts", value), window)
        if attempts > limit:
            _lock(kind, value, attempts, now)
    return signin_locked_until(username=username, address=address, now=now)


def signin_failed(*, username: str, address: str, now: float | None = None) -> None:
    """A wrong password, already counted by :func:`signin_attempt`: pause at the limit."""
    now = time.time() if now is None else now
    for kind, value, limit in _subjects(username, address):
        attempts = cache.get(_key(kind, "attempts", value))
        if isinstance(attempts, int) and attempts >= limit:
            _lock(kind, value, attempts, now)


def signin_succeeded(*, username: str, address: str = "") -> None:
    """A good password takes its attempt back: the account's count is cleared, and this
    attempt no longer counts against the address (an office's successes never pause it)."""
    account = _account(username)
    if account:
        cache.delete(_key(ACCOUNT, "attempts", account))
    if address:
        # ValueError: the window ended meanwhile, nothing is left to take back.
        with contextlib.suppress(ValueError):
            cache.decr(_key(ADDRESS, "attempts", address))


def signin_unlock(*, username: str = "", address: str = "") -> bool:
    """Lift the pause and forget the attempts of a username and/or an address (for operators,
    ``manage.py unlock_signin``). Returns whether a pause was lifted."""
    lifted = False
    for kind, value, _limit in _subjects(username, address):
        lifted = cache.delete(_key(kind, "lock", value)) or lifted
        cache.delete(_key(kind, "attempts", value))
    return lifted


class ThrottledSignInMixin:
    """Throttling for Django's authentication forms (the sign-in page's and the admin's)."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request) if self.request is not None else ""
        until = signin_attempt(username=username, address=address)
        if until is not None:
            raise self._throttled(until)
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except ValidationError as error:
            # A wrong password (or, at the admin, an account that is not staff): it stays
            # counted; reaching the limit pauses signing in now.
            if error.code == "invalid_login":
                signin_failed(username=username, address=address)
                until = signin_locked_until(username=username, address=address)
                if until is not None:
                    raise self._throttled(until) from None
            raise
        signin_succeeded(username=username, address=address)
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


class SignInForm(ThrottledSignInMixin, AuthenticationForm):
    """Django's sign-in form, throttled."""


class AdminSignInForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """The admin's sign-in form (staff only), throttled with the same counters: the admin's
    login page is no way around the sign-in page's limits."""


class SignInView(LoginView):
    form_class = SignInForm
