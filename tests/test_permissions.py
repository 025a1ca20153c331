"""Who may see and change which teammate's queue, enforced on the server for every request.

Accounts are linked to the sandbox team by email: Camille Lefèvre (ADMIN, the key's owner),
Zoé O'Connor and Anaïs Fontaine (MANAGER), Chloé, Jérôme, Léa… (MEMBER), Éloïse Marchand
(MEMBER, BLOCKED). "Zero requests reached Allo" is proved with the team list already cached
(``warm(sandbox)`` or the ``manager_client`` fixture, each test says which); with a cold cache,
"nothing but the team list" means exactly two requests, GET /v2/api/users?status=ACTIVE then
?status=BLOCKED, and nothing after them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from dashboard.admin import AccountChangeForm
from dashboard.allo.client import AlloClient, get_client
from dashboard.allo.types import Teammate
from dashboard.management.commands.demo import manager_account_reset
from dashboard.models import AuditEntry, ManagerScope, ScopedTeammate
from dashboard.permissions import (
    MANAGER,
    MEMBER,
    NARROWED_MANAGER,
    NONE,
    OPERATOR,
    Roster,
    access_for,
    allo_key_digest,
    team_cache_key,
    team_roster,
    team_roster_forget,
)
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from tests.helpers import HTMX, person, shown_form, text

pytestmark = pytest.mark.django_db

CAMILLE = "Camille Lefèvre"  # ADMIN
ZOE = "Zoé O'Connor"  # MANAGER
CHLOE = "Chloé Dubois-Maréchal"  # MEMBER
JEROME = "Jérôme d'Arbois"  # MEMBER
LEA = "Léa Moreau"  # MEMBER
ELOISE = "Éloïse Marchand"  # MEMBER, BLOCKED


# Builders and helpers ---------------------------------------------------------------------------


def make_account(username: str, *, email: str = "", superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(username=username, email=email, password="x" * 20)
    return User.objects.create_user(username=username, email=email, password="x" * 20)


def account_of(sandbox: Sandbox, name: str, **overrides: Any) -> User:
    """A dashboard account linked to the sandbox teammate called ``name``."""
    email = sandbox.user_named(name)["email"]
    username = re.sub(r"\W", "", name.split()[0].lower()) or "someone"
    return make_account(overrides.pop("username", username), email=email, **overrides)


def narrow(user: User, *user_ids: str) -> ManagerScope:
    scope = ManagerScope.objects.create(user=user)
    for user_id in user_ids:
        ScopedTeammate.objects.create(scope=scope, allo_user_id=user_id)
    return scope


def browser_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def warm(sandbox: Sandbox) -> None:
    """Read the team list into the cache, then forget the sandbox's log and budget."""
    team_roster()
    sandbox.clear_stats()
    sandbox.limiter.clear()


def requests_to_allo(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.stats()["log"]


def page_as_served(response: Any) -> str:
    """The page, but for what changes with every response (CSP nonces, CSRF tokens) and the
    address asked for (which the page may repeat, e.g. to come back after a language change)."""
    html = response.content.decode().replace(response.request["PATH_INFO"], "/the/path/")
    html = re.sub(r'nonce="[^"]*"', 'nonce=""', html)
    return re.sub(r'(name="csrfmiddlewaretoken" value=)"[^"]*"', r'\1""', html)


def dashboard_urls(teammate: str) -> list[tuple[str, str]]:
    """Every URL of the dashboard, from the URLconf, a teammate in it wherever one fits.

    A URL with a ``user_id`` names the teammate in its path; the history names one in its query
    (page and CSV). A new URL is covered as soon as it is added; one with another parameter
    fails here until this function learns how to fill it.
    """
    urls: list[tuple[str, str]] = []
    for pattern in get_resolver().url_patterns:
        if not (isinstance(pattern, URLResolver) and pattern.namespace == "dashboard"):
            continue
        for inner in pattern.url_patterns:
            assert isinstance(inner, URLPattern)
            converters = set(inner.pattern.converters)
            assert converters <= {"user_id"}, f"teach dashboard_urls about {converters}"
            name = f"dashboard:{inner.name}"
            kwargs = {"user_id": teammate} if converters else {}
            urls.append((name, reverse(name, kwargs=kwargs)))
    audit = reverse("dashboard:audit")
    urls += [
        ("dashboard:audit?teammate", f"{audit}?teammate={teammate}"),
        ("dashboard:audit?teammate&format=csv", f"{audit}?teammate={teammate}&format=csv"),
    ]
    return urls


def naming_a_teammate(teammate: str) -> list[tuple[str, str]]:
    return [(name, url) for name, url in dashboard_urls(teammate) if teammate in url]


def test_the_url_list_is_built_from_the_urlconf_and_covers_the_known_pages() -> None:
    names = {name for name, _url in dashboard_urls("usr-x")}
    assert {"dashboard:teammates", "dashboard:queue", "dashboard:connection"} <= names
    assert {"dashboard:audit", "dashboard:audit?teammate&format=csv"} <= names
    naming = {name for name, _url in naming_a_teammate("usr-x")}
    assert "dashboard:queue" in naming and "dashboard:audit?teammate" in naming


# Every URL, for every kind of visitor -----------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("htmx", [False, True])
def test_an_anonymous_visitor_gets_the_login_page_from_every_url_and_allo_hears_nothing(
    client: Client, allo: AlloClient, sandbox: Sandbox, method: str, htmx: bool
) -> None:
    # The cache is cold: not even the team list is read for an anonymous visitor.
    chloe = person(sandbox, CHLOE)
    for name, url in dashboard_urls(chloe):
        response = getattr(client, method)(url, headers=HTMX if htmx else {})
        if htmx:
            assert response.status_code == 200, name
            assert response["HX-Redirect"].startswith("/accounts/login/?next="), name
        else:
            assert response.status_code == 302, name
            assert response["Location"].startswith("/accounts/login/?next="), name
    assert requests_to_allo(sandbox) == []
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("who", "narrowed_to", "reaching_for"),
    [
        (CHLOE, None, JEROME),  # a member, for another member
        (CHLOE, None, CAMILLE),  # a member, for the admin
        (ZOE, (CHLOE, JEROME), LEA),  # a narrowed manager, outside their set
        (ZOE, (CHLOE, JEROME), ZOE),  # … their own queue is not in it either
        (ZOE, (CHLOE, JEROME), CAMILLE),
        (ELOISE, None, CHLOE),  # blocked in Allo: no team access
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("htmx", [False, True])
def test_a_teammate_out_of_reach_is_a_404_on_every_url_and_allo_hears_nothing(
    allo: AlloClient,
    sandbox: Sandbox,
    who: str,
    narrowed_to: tuple[str, ...] | None,
    reaching_for: str,
    method: str,
    htmx: bool,
) -> None:
    user = account_of(sandbox, who)
    if narrowed_to is not None:
        narrow(user, *(person(sandbox, name) for name in narrowed_to))
    browser = browser_of(user)
    target = person(sandbox, reaching_for)
    data = {"name": "Hijacked", "voicemail_handling": "SKIP", "do_not_disturb": "ENABLED"}
    warm(sandbox)  # the team list is cached: the access check itself costs nothing
    urls = naming_a_teammate(target)
    assert urls
    for name, url in urls:
        # A GET carries no data: it would replace the URL's own query string.
        response = getattr(browser, method)(
            url, *([data] if method == "post" else []), headers=HTMX if htmx else {}
        )
        assert response.status_code == 404, name
        assert reaching_for not in text(response), name
    assert requests_to_allo(sandbox) == []
    assert not AuditEntry.objects.exists()
    assert sandbox.queue_of(target) is None or sandbox.queue_of(target)["name"] != "Hijacked"


@pytest.mark.parametrize("htmx", [False, True])
def test_an_account_without_team_access_gets_nothing_from_any_url_and_allo_hears_nothing(
    allo: AlloClient, sandbox: Sandbox, htmx: bool
) -> None:
    browser = browser_of(make_account("visitor", email="someone.else@example.com"))
    warm(sandbox)
    for name, url in dashboard_urls(person(sandbox, CHLOE)):
        response = browser.get(url, headers=HTMX if htmx else {})
        if name == "dashboard:teammates":
            assert response.status_code == 200
            assert "Your account has no access to the team's queues." in text(response)
        else:
            assert response.status_code == 404, name
    assert requests_to_allo(sandbox) == []


def test_with_a_cold_cache_the_team_list_is_the_only_request_before_the_404(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    browser = browser_of(account_of(sandbox, CHLOE))
    response = browser.get(reverse("dashboard:queue", args=[person(sandbox, JEROME)]))
    assert response.status_code == 404
    assert [(r["method"], r["path"], r["query"]) for r in requests_to_allo(sandbox)] == [
        ("GET", "/v2/api/users", {"status": "ACTIVE"}),
        ("GET", "/v2/api/users", {"status": "BLOCKED"}),
    ]


def test_a_404_says_nothing_of_whether_the_person_exists(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    browser = browser_of(account_of(sandbox, CHLOE))
    warm(sandbox)
    teammate = browser.get(reverse("dashboard:queue", args=[person(sandbox, JEROME)]))
    outsider = browser.get(reverse("dashboard:queue", args=[sandbox.outsider_id]))
    nobody = browser.get(reverse("dashboard:queue", args=["usr-NOBODY"]))
    assert teammate.status_code == outsider.status_code == nobody.status_code == 404
    assert page_as_served(teammate) == page_as_served(outsider) == page_as_served(nobody)
    assert requests_to_allo(sandbox) == []


# Ids the team does not have never reach Allo -----------------------------------------------------

# Paths as a browser sends them: percent-encoded, decoded by the server before routing.
UNKNOWN_ID_PATHS = [
    "/teammates/usr-NOBODY/queue/",
    "/teammates/%2E%2E/queue/",  # ".."
    "/teammates/%2e/queue/",  # "."
    "/teammates/x%3Fstatus=BLOCKED/queue/",  # "x?status=BLOCKED"
    "/teammates/x%23frag/queue/",  # "x#frag"
    "/teammates/%2E%2E/queue/live/",
    "/teammates/x%3Fstatus=BLOCKED/queue/live/",
    "/audit/?teammate=%2E%2E",
    "/audit/?teammate=x%3Fstatus%3DBLOCKED",
    "/audit/?teammate=usr-NOBODY&format=csv",
    "/?teammate=%2E%2E",
    "/connection/?teammate=usr-NOBODY",
]


def full_access_accounts(sandbox: Sandbox) -> dict[str, User]:
    return {
        "operator": make_account("operator", superuser=True),
        "allo admin": account_of(sandbox, CAMILLE),
        "allo manager": account_of(sandbox, ZOE),
    }


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_id_not_on_the_team_list_is_a_404_for_every_role_and_allo_hears_nothing(
    allo: AlloClient, sandbox: Sandbox, method: str, htmx: bool
) -> None:
    accounts = full_access_accounts(sandbox)
    data = {"name": "Hijacked", "voicemail_handling": "SKIP", "do_not_disturb": "ENABLED"}
    warm(sandbox)  # the team list is cached: a 404 costs Allo nothing
    paths = [*UNKNOWN_ID_PATHS, reverse("dashboard:queue", args=[sandbox.outsider_id])]
    for who, user in accounts.items():
        browser = browser_of(user)
        for path in paths:
            response = getattr(browser, method)(
                path, *([data] if method == "post" else []), headers=HTMX if htmx else {}
            )
            assert response.status_code == 404, (who, path)
    assert requests_to_allo(sandbox) == []
    assert not AuditEntry.objects.exists()


def test_percent_encoded_ids_are_decoded_before_the_check_not_after(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    """A teammate on the team, named with percent-encoding, is that teammate (not an unknown
    id that would slip past), and an unknown one stays unknown however it is spelled."""
    browser = browser_of(account_of(sandbox, CHLOE))
    chloe = person(sandbox, CHLOE)
    jerome = person(sandbox, JEROME)
    spelled = "".join(f"%{byte:02X}" for byte in chloe.encode())
    warm(sandbox)
    assert browser.get(f"/teammates/{spelled}/queue/").status_code == 200
    outsider = "".join(f"%{byte:02x}" for byte in jerome.encode())
    sandbox.clear_stats()
    assert browser.get(f"/teammates/{outsider}/queue/").status_code == 404
    assert browser.get(f"/audit/?teammate={outsider}").status_code == 404
    assert requests_to_allo(sandbox) == []


def test_with_allo_down_an_operator_goes_on_but_only_with_ids_that_could_be_allo_ids(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    browser = browser_of(make_account("operator", superuser=True))
    # Refused (a 401: no retries, no circuit breaker opening): the team list cannot be read.
    sandbox.set_faults(FaultSpec(status=401))
    for path in UNKNOWN_ID_PATHS[1:7]:
        assert browser.get(path, headers=HTMX).status_code == 404, path
    # The team list was tried (it is down); no queue was asked for.
    assert {r["path"] for r in requests_to_allo(sandbox)} == {"/v2/api/users"}
    # A plausible id goes on to Allo: the operator sees Allo's own trouble, in words.
    response = browser.get(reverse("dashboard:queue", args=["usr-ABC123"]), headers=HTMX)
    assert response.status_code == 200
    assert "/v2/api/dialing-queues/current" in {r["path"] for r in requests_to_allo(sandbox)}


@pytest.mark.parametrize("who", [ZOE, CHLOE])
def test_without_the_team_list_anyone_but_an_operator_is_refused_every_id(
    allo: AlloClient, sandbox: Sandbox, who: str
) -> None:
    browser = browser_of(account_of(sandbox, who))
    sandbox.set_faults(FaultSpec(status=503))
    for path in (reverse("dashboard:queue", args=[person(sandbox, CHLOE)]), *UNKNOWN_ID_PATHS):
        assert browser.get(path).status_code == 503, path
    assert {r["path"] for r in requests_to_allo(sandbox)} == {"/v2/api/users"}


# Each role --------------------------------------------------------------------------------------


def test_an_allo_admin_sees_and_changes_every_teammate(allo: AlloClient, sandbox: Sandbox) -> None:
    browser = browser_of(account_of(sandbox, CAMILLE))
    page = text(browser.get("/"))
    for user in sandbox.users:
        assert (user["name"] in page) == (user["status"] == "ACTIVE")
    lea = person(sandbox, LEA)
    data = {**shown_form(browser, lea), "voicemail_handling": "SKIP"}
    response = browser.post(reverse("dashboard:queue", args=[lea]), data, headers=HTMX)
    assert "Saved." in text(response)
    assert sandbox.queue_of(lea)["voicemail_handling"] == "SKIP"
    assert browser.get("/connection/").status_code == 200


def test_an_allo_manager_is_linked_by_email_whatever_its_case(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    email = sandbox.user_named(ZOE)["email"]
    user = make_account("zoe", email=f"  {email.upper()} ")
    access = access_for(user)
    assert access.level == MANAGER
    assert access.teammate is not None and access.teammate.name == ZOE
    assert access.sees_everyone
    page = text(browser_of(user).get("/"))
    assert CHLOE in page and JEROME in page and CAMILLE in page


def test_an_email_matches_ignoring_case_only_not_other_unicode_foldings() -> None:
    strasse = Teammate(
        id="usr-1", name="Jürgen", email="J.Strasse@example.com", role="ADMIN", status="ACTIVE"
    )
    roster = Roster(active=(strasse,), blocked=())
    assert roster.match("  j.STRASSE@EXAMPLE.COM ") == (strasse, True)
    # casefold() would take "ß" for "ss" and link this account to Jürgen, an ADMIN.
    assert roster.match("j.straße@example.com") == (None, False)


def test_a_member_sees_and_changes_their_own_queue_only(allo: AlloClient, sandbox: Sandbox) -> None:
    user = account_of(sandbox, CHLOE)
    assert access_for(user).level == MEMBER
    browser = browser_of(user)
    page = text(browser.get("/"))
    assert CHLOE in page
    assert JEROME not in page and CAMILLE not in page and LEA not in page
    assert "1 teammate" in page
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(browser, chloe), "do_not_disturb": "DISABLED"}
    response = browser.post(reverse("dashboard:queue", args=[chloe]), data, headers=HTMX)
    assert "Saved." in text(response)
    assert sandbox.queue_of(chloe)["do_not_disturb"] == "DISABLED"


def test_a_member_does_not_see_the_connection_page_nor_its_link(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    browser = browser_of(account_of(sandbox, CHLOE))
    warm(sandbox)
    assert browser.get("/connection/").status_code == 404
    assert requests_to_allo(sandbox) == []
    assert 'href="/connection/"' not in browser.get("/").content.decode()


def test_a_narrowed_manager_sees_and_changes_only_the_teammates_named(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user = account_of(sandbox, ZOE)
    chloe, jerome = person(sandbox, CHLOE), person(sandbox, JEROME)
    narrow(user, chloe, jerome)
    access = access_for(user)
    assert access.level == NARROWED_MANAGER
    assert access.can_see(chloe) and access.can_see(jerome)
    assert not access.can_see(person(sandbox, ZOE))
    browser = browser_of(user)
    page = text(browser.get("/?status=all"))
    assert CHLOE in page and JEROME in page
    assert "2 teammates" in page
    assert CAMILLE not in page and ELOISE not in page
    data = {**shown_form(browser, chloe), "name": "Top comptes"}
    response = browser.post(reverse("dashboard:queue", args=[chloe]), data, headers=HTMX)
    assert "Saved." in text(response)
    assert sandbox.queue_of(chloe)["name"] == "Top comptes"
    assert browser.get("/connection/").status_code == 200


def test_a_narrowed_manager_with_no_one_listed_sees_no_one(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user = account_of(sandbox, ZOE)
    narrow(user)
    page = text(browser_of(user).get("/"))
    assert "0 teammates" in page
    assert CHLOE not in page


@pytest.mark.parametrize(
    ("email", "words"),
    [
        ("", "has no email address, so it cannot be linked"),
        ("someone.else@example.com", "No active teammate in Allo has the email"),
        (None, "Your teammate account in Allo is blocked."),
    ],
)
def test_an_account_without_an_active_teammate_signs_in_but_is_told_it_has_no_team_access(
    client: Client, allo: AlloClient, sandbox: Sandbox, email: str | None, words: str
) -> None:
    email = sandbox.user_named(ELOISE)["email"] if email is None else email
    user = make_account("visitor", email=email)
    user.set_password("correct horse battery")
    user.save()
    response = client.post(
        "/accounts/login/", {"username": "visitor", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert access_for(user).level == NONE
    assert "Your account has no access to the team's queues." in text(page)
    assert words in text(page)
    assert CHLOE not in text(page)
    warm(sandbox)
    for url in ("/connection/", "/audit/", reverse("dashboard:queue", args=["usr-any"])):
        assert client.get(url).status_code == 404, url
    assert requests_to_allo(sandbox) == []


def test_a_superuser_operator_has_full_access_without_being_a_teammate(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user = make_account("operator", superuser=True)
    access = access_for(user)
    assert access.level == OPERATOR and access.sees_everyone and access.teammate is None
    browser = browser_of(user)
    lea = person(sandbox, LEA)
    data = {**shown_form(browser, lea), "voicemail_handling": "SKIP"}
    assert "Saved." in text(
        browser.post(reverse("dashboard:queue", args=[lea]), data, headers=HTMX)
    )
    (entry,) = AuditEntry.objects.all()
    assert entry.author == user and entry.author_name == "operator"


def test_an_operator_keeps_access_when_allo_cannot_be_reached(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    user = make_account("operator", superuser=True)
    sandbox.set_faults(FaultSpec(status=503))
    response = browser_of(user).get("/")
    assert response.status_code == 200
    assert "The team could not be loaded. Allo could not be reached." in text(response)


def test_the_demo_account_is_linked_to_the_sandbox_teams_admin(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    manager_account_reset()
    access = access_for(User.objects.get(username="manager"))
    assert access.level == MANAGER
    assert access.teammate is not None and access.teammate.name == CAMILLE


# Roles come from Allo ---------------------------------------------------------------------------


def test_roles_are_read_from_allo_once_then_cached(allo: AlloClient, sandbox: Sandbox) -> None:
    browser = browser_of(account_of(sandbox, CHLOE))
    browser.get(reverse("dashboard:audit"))
    browser.get(reverse("dashboard:audit"))
    team_reads = [r for r in requests_to_allo(sandbox) if r["path"] == "/v2/api/users"]
    assert [r["query"] for r in team_reads] == [{"status": "ACTIVE"}, {"status": "BLOCKED"}]


def test_a_manager_demoted_in_allo_loses_access_when_the_cached_team_list_expires(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    browser = browser_of(account_of(sandbox, ZOE))
    jerome_queue = reverse("dashboard:queue", args=[person(sandbox, JEROME)])
    assert browser.get(jerome_queue).status_code == 200
    sandbox.world.member(person(sandbox, ZOE)).role = "MEMBER"
    team_roster_forget()  # what DASHBOARD_TEAM_CACHE_SECONDS (30 s) passing does
    assert browser.get(jerome_queue).status_code == 404
    assert browser.get(reverse("dashboard:queue", args=[person(sandbox, ZOE)])).status_code == 200


def test_with_no_cache_a_demotion_applies_on_the_very_next_request(
    allo: AlloClient, sandbox: Sandbox, settings: Any
) -> None:
    settings.DASHBOARD_TEAM_CACHE_SECONDS = 0
    browser = browser_of(account_of(sandbox, ZOE))
    jerome_queue = reverse("dashboard:queue", args=[person(sandbox, JEROME)])
    assert browser.get(jerome_queue).status_code == 200
    sandbox.world.member(person(sandbox, ZOE)).role = "MEMBER"
    assert browser.get(jerome_queue).status_code == 404


def test_a_role_allo_adds_tomorrow_gets_the_least_access(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    sandbox.world.member(person(sandbox, ZOE)).role = "SUPERVISOR"
    access = access_for(account_of(sandbox, ZOE))
    assert access.level == MEMBER
    assert access.allowed_ids == frozenset({person(sandbox, ZOE)})


def test_the_cached_team_list_belongs_to_one_allo_key_and_url(
    allo: AlloClient, sandbox: Sandbox, settings: Any
) -> None:
    # The same digest the client names its shared budget and circuit with.
    assert allo_key_digest() == get_client().budget.scope
    assert team_cache_key().endswith(allo_key_digest())
    team_roster()
    sandbox.clear_stats()
    team_roster()
    assert requests_to_allo(sandbox) == []
    # Another key (maybe another team) never reads this key's team list.
    settings.ALLO_API_KEY = "ak_live_ANOTHER_KEY"
    assert allo_key_digest() != get_client().budget.scope
    team_roster()
    assert [r["query"] for r in requests_to_allo(sandbox)] == [
        {"status": "ACTIVE"},
        {"status": "BLOCKED"},
    ]
    settings.ALLO_API_BASE_URL = "https://elsewhere.example"
    assert team_cache_key() not in {
        f"dashboard:permissions:team:{get_client().budget.scope}",
        "dashboard:permissions:team",
    }


# Allo unreachable while checking ----------------------------------------------------------------


def test_while_allo_is_down_a_manager_is_judged_on_the_last_known_team_list(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    browser = browser_of(account_of(sandbox, ZOE))
    assert CHLOE in text(browser.get(reverse("dashboard:teammates")))
    cache.delete(team_cache_key())  # the short-lived copy has expired
    sandbox.set_faults(FaultSpec.from_json({"status": 503}))
    page = browser.get(reverse("dashboard:teammates"))
    assert page.status_code == 200
    assert "Your access to the team could not be checked" not in text(page)
    assert CHLOE in text(page)
    # A member's reach is still their own queue only, on the same last known list.
    member = browser_of(account_of(sandbox, CHLOE))
    jerome = person(sandbox, JEROME)
    sandbox.clear_stats()
    assert member.get(reverse("dashboard:queue", args=[jerome])).status_code == 404
    # Only the team list was asked for (and failed); nothing about Jérôme reached Allo.
    assert {row["path"] for row in sandbox.stats()["log"]} <= {"/v2/api/users"}


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"status": 503}, "Allo could not be reached."),
        ({"status": 429}, "Allo is busy right now; try again in 1 second."),
        ({"status": 401}, "The dashboard's Allo API key was refused."),
    ],
)
def test_access_that_cannot_be_checked_is_refused_in_words_never_granted(
    allo: AlloClient, sandbox: Sandbox, fault: dict[str, Any], words: str
) -> None:
    browser = browser_of(account_of(sandbox, CAMILLE))
    chloe = person(sandbox, CHLOE)
    sandbox.set_faults(FaultSpec.from_json(fault))
    page = browser.get(reverse("dashboard:queue", args=[chloe]))
    assert page.status_code == 503
    assert "Your access to the team could not be checked, so nothing is shown." in text(page)
    assert words in text(page)
    assert "Grands comptes" not in text(page)
    data = {
        "name": "Comptes clés",
        "voicemail_handling": "SKIP",
        "do_not_disturb": "ENABLED",
        "seen_name": "Grands comptes Rhône-Alpes",
        "seen_voicemail_handling": "NO_SKIP",
        "seen_do_not_disturb": "ENABLED",
    }
    fragment = browser.post(reverse("dashboard:queue", args=[chloe]), data, headers=HTMX)
    # Put on top of the card being saved, so the typed values stay in the browser.
    assert fragment.status_code == 200
    assert fragment["HX-Reswap"] == "afterbegin"
    assert words in text(fragment)
    # Only the team list was asked for (retries included): no queue read, no PATCH.
    assert {(r["method"], r["path"]) for r in requests_to_allo(sandbox)} == {
        ("GET", "/v2/api/users")
    }
    assert sandbox.queue_of(chloe)["name"] == "Grands comptes Rhône-Alpes"
    assert not AuditEntry.objects.exists()


# Narrowing in Django's admin --------------------------------------------------------------------


def test_a_superuser_narrows_a_manager_in_the_admin_choosing_teammates_from_allo(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    zoe_account = account_of(sandbox, ZOE)
    admin = browser_of(make_account("root", superuser=True))
    form = admin.get("/admin/dashboard/managerscope/add/")
    assert form.status_code == 200
    html = form.content.decode()
    chloe, jerome = person(sandbox, CHLOE), person(sandbox, JEROME)
    assert f'<option value="{chloe}">' in html
    assert "Chloé Dubois-Maréchal &lt;chloe.dubois-marechal@lumen-energie.fr&gt;" in html
    response = admin.post(
        "/admin/dashboard/managerscope/add/",
        {
            "user": zoe_account.pk,
            "note": "Team lead, Lyon",
            "teammates-TOTAL_FORMS": "3",
            "teammates-INITIAL_FORMS": "0",
            "teammates-MIN_NUM_FORMS": "0",
            "teammates-MAX_NUM_FORMS": "1000",
            "teammates-0-allo_user_id": chloe,
            "teammates-1-allo_user_id": jerome,
            "teammates-2-allo_user_id": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    scope = ManagerScope.objects.get(user=zoe_account)
    assert {(t.allo_user_id, t.name) for t in scope.teammates.all()} == {
        (chloe, CHLOE),
        (jerome, JEROME),
    }
    assert access_for(zoe_account).allowed_ids == frozenset({chloe, jerome})


def test_when_allo_is_down_the_admin_takes_a_checked_teammate_id(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    zoe_account = account_of(sandbox, ZOE)
    admin = browser_of(make_account("root", superuser=True))
    sandbox.set_faults(FaultSpec(status=503))
    form = admin.get("/admin/dashboard/managerscope/add/")
    assert "Allo cannot be reached right now" in form.content.decode()
    data = {
        "user": zoe_account.pk,
        "teammates-TOTAL_FORMS": "1",
        "teammates-INITIAL_FORMS": "0",
        "teammates-MIN_NUM_FORMS": "0",
        "teammates-MAX_NUM_FORMS": "1000",
        "teammates-0-allo_user_id": "usr 1/2",
    }
    refused = admin.post("/admin/dashboard/managerscope/add/", data)
    assert refused.status_code == 200
    assert "This is not an Allo teammate id." in refused.content.decode()
    data["teammates-0-allo_user_id"] = "usr-ABC123"
    assert admin.post("/admin/dashboard/managerscope/add/", data).status_code == 302
    assert ManagerScope.objects.get(user=zoe_account).teammate_ids() == {"usr-ABC123"}


def test_only_superusers_may_narrow_or_widen_an_account(allo: AlloClient, sandbox: Sandbox) -> None:
    staff = account_of(sandbox, ZOE)
    staff.is_staff = True
    staff.save()
    narrow(staff, person(sandbox, CHLOE))
    browser = browser_of(staff)
    assert browser.get("/admin/dashboard/managerscope/").status_code == 403
    assert browser.get("/admin/dashboard/managerscope/add/").status_code == 403


# One email, one account -------------------------------------------------------------------------


def test_the_admin_refuses_a_second_account_with_the_same_email_whatever_its_case(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    camille = account_of(sandbox, CAMILLE)
    other = make_account("other", email="other@example.com")
    admin = browser_of(make_account("root", superuser=True))
    page = admin.get(f"/admin/auth/user/{other.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        key: value
        for key, value in form.initial.items()
        if value is not None and key not in {"groups", "user_permissions", "password"}
    }
    data.update(
        email=f" {camille.email.upper()} ",
        date_joined_0=other.date_joined.strftime("%Y-%m-%d"),
        date_joined_1=other.date_joined.strftime("%H:%M:%S"),
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    refused = admin.post(f"/admin/auth/user/{other.pk}/change/", data)
    assert refused.status_code == 200
    assert "Another account already has this email address" in text(refused)
    other.refresh_from_db()
    assert other.email == "other@example.com"
    # Its own email, in another case, is not "another account's".
    data["email"] = "OTHER@example.com"
    assert admin.post(f"/admin/auth/user/{other.pk}/change/", data).status_code == 302
    other.refresh_from_db()
    assert other.email == "OTHER@example.com"
    # Empty emails are many accounts' (no team access), never a clash.
    empty = AccountChangeForm(instance=make_account("blank"), data={})
    assert "email" not in empty.errors
