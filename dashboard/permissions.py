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
answers 404, before any other call to Allo, when the teammate in the URL is out of reach or not
on the team list at all: an id Allo's team list does not hold never reaches Allo.
"""

from __future__ import annotations

import hashlib
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
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables
from django_htmx.http import reswap

from dashboard.allo.client import get_client
from dashboard.allo.errors import (
    AlloBadResponseError,
    AlloError,
    AlloRateLimitedError,
    AlloUnavailableError,
)
from dashboard.allo.types import SCOPE_USERS_READ, Teammate
from dashboard.audit import Author
from dashboard.failures import failure_explain
from dashboard.models import AuditEntry, ManagerScope

logger = logging.getLogger(__name__)

TEAM_CACHE_KEY: Final = "dashboard:permissions:team"
URL_NAMESPACE: Final = "dashboard"
# The history page never calls Allo: there, a teammate since removed from Allo may still be
# named, if the history holds changes to their queue (and the account may see them).
HISTORY_VIEWS: Final = frozenset({"dashboard:audit"})
# What can never be an Allo id in a path (allo-api.md: ids are opaque): checked when the team
# list cannot be read, so that even then nothing but a plausible id reaches Allo.
IMPOSSIBLE_IDS: Final = frozenset({".", ".."})
IMPOSSIBLE_ID_CHARACTERS: Final = frozenset("/?#\\")

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


# The Allo key this process uses ------------------------------------------------------------------


@sensitive_variables("api_key")
def allo_key_digest() -> str:
    """A digest of the Allo base URL and key in settings, never the key itself.

    The same digest the client names its shared budget and circuit with (``_scope`` in
    ``dashboard/allo/client.py``, exposed as ``get_client().budget.scope``): cache keys holding
    what one key's team said carry it, so that another key (maybe another team) or another
    Allo never reads them.
    """
    base_url = str(settings.ALLO_API_BASE_URL).rstrip("/")
    api_key = str(settings.ALLO_API_KEY or "").strip()
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()[:16]


def team_cache_key() -> str:
    return f"{TEAM_CACHE_KEY}:{allo_key_digest()}"


def plausible_id(user_id: str) -> bool:
    """Whether ``user_id`` could be an Allo id at all (ids are opaque, so only what cannot be
    one in a path is refused: ``.``, ``..``, ``/``, ``?``, ``#``, a backslash, a control)."""
    return (
        bool(user_id)
        and user_id not in IMPOSSIBLE_IDS
        and not IMPOSSIBLE_ID_CHARACTERS.intersection(user_id)
        and user_id.isprintable()
    )


# The team, as access needs it -------------------------------------------------------------------


@dataclass(frozen=True)
class Roster:
    """Everyone on the key's team: the active teammates and the blocked ones, apart."""

    active: tuple[Teammate, ...]
    blocked: tuple[Teammate, ...]

    def by_id(self) -> dict[str, Teammate]:
        return {person.id: person for person in (*self.blocked, *self.active)}

    def match(self, email: str) -> tuple[Teammate | None, bool]:
        """The teammate with this email, ignoring case (only case: ``lower()``, never
        ``casefold()``, which also takes "ß" for "ss"), and whether they are active."""
        wanted = email.strip().lower()
        if not wanted:
            return None, False
        for people, active in ((self.active, True), (self.blocked, False)):
            for person in people:
                if (person.email or "").strip().lower() == wanted:
                    return person, active
        return None, False


def team_roster() -> Roster:
    """The team from GET /v2/api/users?status=ACTIVE and ?status=BLOCKED, cached briefly.

    Two reads when the cache is cold (Allo has no "every status" value), none when warm. Kept
    under a key naming the Allo key's digest (:func:`allo_key_digest`). While Allo is not
    answering (unreachable, circuit open, over budget, unreadable answer), the last team list
    read within ALLO_SNAPSHOT_STALE_SECONDS decides instead, so managers keep seeing the last
    known queues during an outage; no write can reach Allo meanwhile. Raises AlloError.
    """
    key = team_cache_key()
    cached = cache.get(key)
    if isinstance(cached, Roster):
        return cached
    client = get_client()
    try:
        active = client.list_users(status="ACTIVE")
        seen = {person.id for person in active}
        blocked = [p for p in client.list_users(status="BLOCKED") if p.id not in seen]
    except (AlloUnavailableError, AlloRateLimitedError, AlloBadResponseError):
        last_known = cache.get(f"{key}:last-known")
        if isinstance(last_known, Roster):
            logger.warning("Allo is not answering: access decided on the last known team list")
            return last_known
        raise
    roster = Roster(active=tuple(active), blocked=tuple(blocked))
    cache.set(key, roster, settings.DASHBOARD_TEAM_CACHE_SECONDS)
    cache.set(f"{key}:last-known", roster, settings.ALLO_SNAPSHOT_STALE_SECONDS)
    return roster


def team_roster_forget() -> None:
    """Drop the cached team list: the next access check reads it from Allo again."""
    cache.delete_many([team_cache_key(), f"{team_cache_key()}:last-known"])


# Access -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What one account may do. ``allowed_ids`` None means every teammate on the team.

    ``known_ids`` are the ids on the team list (every status); None only for an operator while
    the team list cannot be read.
    """

    level: str
    user: AbstractBaseUser | AnonymousUser | None = None
    teammate: Teammate | None = None
    allowed_ids: frozenset[str] | None = frozenset()
    names: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    known_ids: frozenset[str] | None = frozenset()

    def can_see(self, user_id: str) -> bool:
        """Whether the account may view and change this teammate's queue and history."""
        return self.allowed_ids is None or user_id in self.allowed_ids

    def on_team(self, user_id: str) -> bool:
        """Whether the team list holds this id (while it cannot be read: whether it is a
        plausible id at all)."""
        if self.known_ids is None:
            return plausible_id(user_id)
        return user_id in self.known_ids

    def may_ask_allo_about(self, user_id: str) -> bool:
        """Whether a request naming this teammate may reach Allo: on the team and in reach."""
        return self.on_team(user_id) and self.can_see(user_id)

    def visible_name(self, user_id: str | None) -> str:
        """A teammate's name from the cached team list if the account may see them, else
        "another teammate" (never their id): for messages about someone Allo named."""
        if user_id and self.can_see(user_id) and self.on_team(user_id):
            return self.name_of(user_id) or user_id
        return _("another teammate")

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
        known: frozenset[str] | None
        try:
            roster = team_roster()
            known = frozenset(roster.by_id())
        except AlloError as error:
            logger.warning(
                "Team list unavailable for an operator (request_id=%s)", error.request_id
            )
            roster = Roster(active=(), blocked=())
            known = None
        teammate, active = roster.match(email)
        return Access(
            level=OPERATOR,
            user=user,
            teammate=teammate if active else None,
            allowed_ids=None,
            names=_names(roster),
            known_ids=known,
        )
    roster = team_roster()
    teammate, active = roster.match(email)
    if teammate is None or not active:
        reason = BLOCKED if teammate is not None else (NO_MATCH if email.strip() else NO_EMAIL)
        return Access(level=NONE, user=user, reason=reason)
    names = _names(roster)
    known = frozenset(roster.by_id())
    if teammate.role in MANAGING_ROLES:
        scope = ManagerScope.objects.filter(user=user).first()
        if scope is None:
            return Access(
                level=MANAGER,
                user=user,
                teammate=teammate,
                allowed_ids=None,
                names=names,
                known_ids=known,
            )
        return Access(
            level=NARROWED_MANAGER,
            user=user,
            teammate=teammate,
            allowed_ids=scope.teammate_ids(),
            names=names,
            known_ids=known,
        )
    # MEMBER, and any role Allo adds tomorrow: the least there is.
    return Access(
        level=MEMBER,
        user=user,
        teammate=teammate,
        allowed_ids=frozenset({teammate.id}),
        names=names,
        known_ids=known,
    )


def _names(roster: Roster) -> dict[str, str]:
    return {person.id: person.name for person in roster.by_id().values() if person.name}


# Every request ----------------------------------------------------------------------------------


class AccessHttpRequest(HttpRequest):
    access: Access


class TeamAccessMiddleware:
    """Resolve ``request.access`` for every page of the dashboard, and guard the URL's teammate.

    Runs after the login check (anonymous visitors never get here). A teammate named in the URL
    (the ``user_id`` of its path, or a ``teammate`` in its query) that is not on the cached team
    list, or outside the account's reach, is a 404 that says nothing of whether the person
    exists, raised before the view can talk to Allo: every role, operators included. On the
    history page (which never calls Allo) a teammate since removed from Allo may still be named
    if the history holds changes to their queue. When the team list cannot be read, the
    request is refused with Allo's trouble in words (fail closed); an operator goes on, with
    only ids that could be Allo ids (no ``/``, ``?``, ``#``, ``.`` or ``..``).
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
        named = [view_kwargs.get("user_id"), *request.GET.getlist("teammate")]
        history = match.view_name in HISTORY_VIEWS
        refused = [
            teammate_id
            for teammate_id in named
            if teammate_id and not _may_name(access, teammate_id, history=history)
        ]
        if refused:
            logger.info(
                "Refused %s %s to account %s (%s): teammate unknown or out of reach",
                request.method,
                match.view_name,
                request.user.pk,
                access.level,
            )
            raise Http404
        return None


def _may_name(access: Access, teammate_id: str, *, history: bool) -> bool:
    if access.may_ask_allo_about(teammate_id):
        return True
    # The history costs Allo nothing: a teammate removed from Allo keeps their history.
    return (
        history
        and access.can_see(teammate_id)
        and plausible_id(teammate_id)
        and AuditEntry.objects.filter(teammate_id=teammate_id).exists()
    )


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
