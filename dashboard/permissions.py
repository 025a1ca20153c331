"""Who may do what: each account's reach over the team, resolved once per request.

A dashboard account is linked to an Allo teammate by email (ignoring case), looked up in the
team list (``GET /v2/api/users``, ACTIVE and BLOCKED), which is cached for a few seconds
(``DASHBOARD_TEAM_CACHE_SECONDS``) so that a role changed in Allo takes effect without anyone
touching the dashboard:

- Django superusers (operators): every teammate, whatever Allo says.
- Allo ADMIN or MANAGER: every teammate, unless a superuser narrowed the account to named
  teammates (a :class:`~dashboard.models.ManagerScope`).
- Allo MEMBER (or a role Allo adds tomorrow): their own queue only.
- No active teammate with the account's email (or a BLOCKED one): no team access.

:class:`TeamAccessMiddleware` resolves the access of every request to the dashboard's pages and
answers 404, before any other call to Allo, when the teammate in the URL is out of reach.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import reswap

from dashboard.allo.client import get_client
from dashboard.allo.errors import AlloError
from dashboard.allo.types import SCOPE_USERS_READ, Teammate
from dashboard.audit import Author
from dashboard.failures import failure_explain
from dashboard.models import ManagerScope

logger = logging.getLogger(__name__)

TEAM_CACHE_KEY: Final = "dashboard:permissions:team"
URL_NAMESPACE: Final = "dashboard"

OPERATOR: Final = "operator"
MANAGER: Final = "manager"
NARROWED_MANAGER: Final = "narrowed manager"
MEMBER: Final = "member"
NONE: Final = "none"
MANAGING_ROLES = frozenset({"ADMIN", "MANAGER"})

# Why an account has no team access.
NO_EMAIL: Final = "no-email"
NO_MATCH: Final = "no-match"
BLOCKED: Final = "blocked"


# The team, as access needs it -------------------------------------------------------------------


@dataclass(frozen=True)
class Roster:
    """Everyone on the key's team: the active teammates and the blocked ones, apart."""

    active: tuple[Teammate, ...]
    blocked: tuple[Teammate, ...]

    def by_id(self) -> dict[str, Teammate]:
        return {person.id: person for person in (*self.blocked, *self.active)}

    def match(self, email: str) -> tuple[Teammate | None, bool]:
        """The teammate with this email, ignoring case, and whether they are active."""
        wanted = email.strip().casefold()
        if not wanted:
            return None, False
        for people, active in ((self.active, True), (self.blocked, False)):
            for person in people:
                if (person.email or "").strip().casefold() == wanted:
                    return person, active
        return None, False


def team_roster() -> Roster:
    """The team from GET /v2/api/users?status=ACTIVE and ?status=BLOCKED, cached briefly.

    Two reads when the cache is cold (Allo has no "every status" value), none when warm.
    Raises AlloError.
    """
    cached = cache.get(TEAM_CACHE_KEY)
    if isinstance(cached, Roster):
        return cached
    client = get_client()
    active = client.list_users(status="ACTIVE")
    seen = {person.id for person in active}
    blocked = [p for p in client.list_users(status="BLOCKED") if p.id not in seen]
    roster = Roster(active=tuple(active), blocked=tuple(blocked))
    cache.set(TEAM_CACHE_KEY, roster, settings.DASHBOARD_TEAM_CACHE_SECONDS)
    return roster


def team_roster_forget() -> None:
    """Drop the cached team list: the next access check reads it from Allo again."""
    cache.delete(TEAM_CACHE_KEY)


# Access -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What one account may do. ``allowed_ids`` None means every teammate on the team."""

    level: str
    user: AbstractBaseUser | AnonymousUser | None = None
    teammate: Teammate | None = None
    allowed_ids: frozenset[str] | None = frozenset()
    names: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def can_see(self, user_id: str) -> bool:
        """Whether the account may view and change this teammate's queue and history."""
        return self.allowed_ids is None or user_id in self.allowed_ids

    def visible(self, teammates: Iterable[Teammate]) -> list[Teammate]:
        return [person for person in teammates if self.can_see(person.id)]

    @property
    def has_team_access(self) -> bool:
        return self.level != NONE

    @property
    def sees_everyone(self) -> bool:
        return self.allowed_ids is None

    @property
    def may_view_connection(self) -> bool:
        """The Connection page describes the team's API key: for operators and managers."""
        return self.level in {OPERATOR, MANAGER, NARROWED_MANAGER}

    def name_of(self, user_id: str) -> str:
        """A teammate's name from the team list, or "" when it is not known."""
        return self.names.get(user_id, "")

    @property
    def author(self) -> Author:
        """The account as the audit trail records it, with its Allo name when linked."""
        if self.user is None or not isinstance(self.user, AbstractBaseUser):
            raise PermissionError("An anonymous visitor cannot write to Allo.")
        name = ""
        if self.teammate is not None:
            name = self.teammate.name
        full_name = getattr(self.user, "get_full_name", lambda: "")()
        return Author(user=self.user, name=name or full_name or self.user.get_username())


NO_ACCESS: Final = Access(level=NONE)


def access_for(user: AbstractBaseUser | AnonymousUser) -> Access:
    """Resolve an account's access from the (cached) team list and its manager scope.

    Raises AlloError when the team list cannot be read, except for operators, whose access
    does not depend on Allo: the caller must then refuse (fail closed), never guess.
    """
    if not user.is_authenticated or not user.is_active:
        return NO_ACCESS
    assert isinstance(user, AbstractBaseUser)
    email = getattr(user, "email", "") or ""
    if getattr(user, "is_superuser", False):
        try:
            roster = team_roster()
        except AlloError as error:
            logger.warning(
                "Team list unavailable for an operator (request_id=%s)", error.request_id
            )
            roster = Roster(active=(), blocked=())
        teammate, active = roster.match(email)
        return Access(
            level=OPERATOR,
            user=user,
            teammate=teammate if active else None,
            allowed_ids=None,
            names=_names(roster),
        )
    roster = team_roster()
    teammate, active = roster.match(email)
    if teammate is None or not active:
        reason = BLOCKED if teammate is not None else (NO_MATCH if email.strip() else NO_EMAIL)
        return Access(level=NONE, user=user, reason=reason)
    names = _names(roster)
    if teammate.role in MANAGING_ROLES:
        scope = ManagerScope.objects.filter(user=user).first()
        if scope is None:
            return Access(
                level=MANAGER, user=user, teammate=teammate, allowed_ids=None, names=names
            )
        return Access(
            level=NARROWED_MANAGER,
            user=user,
            teammate=teammate,
            allowed_ids=scope.teammate_ids(),
            names=names,
        )
    # MEMBER, and any role Allo adds tomorrow: the least there is.
    return Access(
        level=MEMBER,
        user=user,
        teammate=teammate,
        allowed_ids=frozenset({teammate.id}),
        names=names,
    )


def _names(roster: Roster) -> dict[str, str]:
    return {person.id: person.name for person in roster.by_id().values() if person.name}


# Every request ----------------------------------------------------------------------------------


class AccessHttpRequest(HttpRequest):
    access: Access


class TeamAccessMiddleware:
    """Resolve ``request.access`` for every page of the dashboard, and guard the URL's teammate.

    Runs after the login check (anonymous visitors never get here). A teammate named in the URL
    (the ``user_id`` of its path, or a ``teammate`` in its query) outside the account's reach is
    a 404 that says nothing of whether the person exists, raised before the view can talk to
    Allo. When the team list cannot be read, the
    request is refused with Allo's trouble in words (fail closed).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or URL_NAMESPACE not in match.namespaces:
            return None
        if not request.user.is_authenticated:
            return None
        try:
            access = access_for(request.user)
        except AlloError as error:
            return access_failure(request, error)
        request.access = access  # type: ignore[attr-defined]
        named = [view_kwargs.get("user_id"), request.GET.get("teammate")]
        if any(teammate_id and not access.can_see(teammate_id) for teammate_id in named):
            logger.info(
                "Refused %s %s to account %s (%s): teammate out of reach",
                request.method,
                match.view_name,
                request.user.pk,
                access.level,
            )
            raise Http404
        return None


def access_failure(request: HttpRequest, error: AlloError) -> HttpResponse:
    """The team list could not be read, so access could not be checked: nothing is shown.

    A page gets a 503; an htmx request gets the alert put on top of what it was updating (so
    a half-typed form keeps its values).
    """
    context = {"failure": failure_explain(error, scope=SCOPE_USERS_READ)}
    htmx = getattr(request, "htmx", None)
    if htmx and not htmx.history_restore_request:
        response = render(request, "dashboard/_access_failure.html", context)
        return reswap(response, "afterbegin")
    return render(request, "dashboard/access.html", context, status=503)


def access_context(request: HttpRequest) -> dict[str, Access | None]:
    """Templates get ``access`` when the request resolved one (pages of the dashboard)."""
    return {"access": getattr(request, "access", None)}
