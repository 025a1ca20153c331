"""Secure by default: deploy checks, headers, CSP, CSRF, sign-in throttling (the admin's too),
safe redirects, private caching, escaping of Allo's text and URLs, and an API key that never
leaves the server.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core import checks
from django.core.management import call_command
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from dashboard.allo.client import AlloClient, build_client, get_client, install_client
from dashboard.allo.errors import AlloError
from dashboard.allo.resilience import Timing
from dashboard.models import AuditEntry
from dashboard.permissions import team_roster, team_roster_forget
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.transport import sandbox_transport
from dashboard.signin import (
    SignInForm,
    client_address,
    signin_attempt,
    signin_failed,
    signin_locked_until,
)
from tests.helpers import HTMX, person, queue_url, shown_form

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parent.parent
CHLOE = "Chloé Dubois-Maréchal"
JEROME = "Jérôme d'Arbois"
PASSWORD = "correct horse battery"
THROTTLED = "Too many failed sign-ins for this account or from this address."
ADDRESS = "198.51.100.7"


def text(response: Any) -> str:
    body = response.content.decode()
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


# check --deploy ---------------------------------------------------------------------------------


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "ALLO_")) and key != "DATABASE_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="dash.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **overrides,
    )
    return env


@pytest.mark.parametrize(
    ("overrides", "clean"),
    [
        ({}, True),
        # Production behind its TLS proxy, as the README says to run it.
        ({"DJANGO_BEHIND_TLS_PROXY": "1", "DJANGO_CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR"}, True),
        (
            {
                "DJANGO_BEHIND_TLS_PROXY": "1",
                "DJANGO_CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR",
                "DJANGO_TRUSTED_PROXY_COUNT": "2",
                "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
                "DJANGO_SECURE_HSTS_PRELOAD": "1",
                "ALLO_AVATAR_HOSTS": "www.gravatar.com",
            },
            True,
        ),
        # The same check fails on what it should: the test can tell.
        ({"DJANGO_DEBUG": "1"}, False),
        ({"DJANGO_SECURE_SSL_REDIRECT": "0"}, False),
        # Behind a proxy without the visitor's address: dashboard.W001.
        ({"DJANGO_BEHIND_TLS_PROXY": "1"}, False),
    ],
)
def test_production_settings_pass_check_deploy_with_no_warning(
    tmp_path: Path, overrides: dict[str, str], clean: bool
) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=production_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert (result.returncode == 0) is clean, output
    assert ("System check identified no issues" in output) is clean, output
    if overrides == {"DJANGO_BEHIND_TLS_PROXY": "1"}:
        assert "dashboard.W001" in output and "DJANGO_CLIENT_IP_HEADER" in output


def production_settings(tmp_path: Path, names: list[str], **overrides: str) -> dict[str, Any]:
    """Some settings as production reads them from this environment (a fresh process)."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {names!r}}}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=production_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hsts_preload_and_subdomains_are_opt_in(tmp_path: Path) -> None:
    names = ["SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"]
    assert production_settings(tmp_path, names) == {
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
    }
    opted_in = production_settings(
        tmp_path,
        names,
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        DJANGO_SECURE_HSTS_PRELOAD="true",
    )
    assert opted_in["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert opted_in["SECURE_HSTS_PRELOAD"] is True


def test_avatar_hosts_narrow_the_csp_from_any_https_host(tmp_path: Path) -> None:
    default = production_settings(tmp_path, ["SECURE_CSP"])["SECURE_CSP"]["img-src"]
    assert default == ["'self'", "data:", "https:"]
    pinned = production_settings(
        tmp_path, ["SECURE_CSP"], ALLO_AVATAR_HOSTS="www.gravatar.com, CDN.example.com"
    )["SECURE_CSP"]["img-src"]
    assert pinned == ["'self'", "data:", "https://www.gravatar.com", "https://cdn.example.com"]


def test_behind_a_tls_proxy_without_the_address_header_a_check_warns(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SIGNIN_CLIENT_IP_HEADER = ""
    assert "dashboard.W001" in {message.id for message in checks.run_checks()}
    settings.SIGNIN_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    assert "dashboard.W001" not in {message.id for message in checks.run_checks()}


def test_check_deploy_is_clean_in_process_with_production_like_overrides(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The browser tests' harness sets it for Playwright; no deployment does.
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["dash.example.com"]
    settings.SECRET_KEY = secrets.token_urlsafe(64)
    call_command("check", deploy=True, fail_level="WARNING")


# Headers and cookies ----------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers_and_a_strict_csp(
    client: Client, manager: User
) -> None:
    response = client.get("/accounts/login/", secure=True)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    # includeSubDomains and preload are opt-in (test_hsts_preload_and_subdomains_are_opt_in).
    assert response["Strict-Transport-Security"] == "max-age=31536000"
    policy = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert re.search(r"script-src 'self' 'nonce-[\w+/=-]+'", policy)
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response.cookies["csrftoken"]["secure"]
    signed_in = client.post(
        "/accounts/login/", {"username": "manager", "password": PASSWORD}, secure=True
    )
    session = signed_in.cookies["sessionid"]
    assert session["secure"] and session["httponly"]


def test_plain_http_is_sent_to_https_and_a_tls_proxy_is_believed(
    client: Client, settings: Any
) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"
    behind_proxy = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert behind_proxy.status_code == 200


# Private pages ----------------------------------------------------------------------------------


def test_every_answer_to_a_signed_in_account_is_private_and_never_stored(
    manager_client: Client, manager: User, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    root = Client()
    root.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))
    answers = {
        "teammates": manager_client.get("/"),
        "queue": manager_client.get(queue_url(chloe)),
        "card": manager_client.get(queue_url(chloe), headers=HTMX),
        "history": manager_client.get("/audit/"),
        "csv": manager_client.get("/audit/", {"format": "csv"}),
        "connection": manager_client.get("/connection/"),
        "not found": manager_client.get("/no-such-page/"),
        "admin": root.get("/admin/dashboard/auditentry/"),
    }
    for where, response in answers.items():
        directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
        assert {"private", "no-store"} <= directives, (where, response.get("Cache-Control"))
    # Static files stay cacheable.
    static = Client().get("/static/dashboard/dashboard.css")
    assert static.status_code == 200
    assert "no-store" not in static.get("Cache-Control", "")
    static.close()


# URLs from Allo and from the address bar ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://www.gravatar.com/avatar/abc?s=128", True),
        ("HTTPS://www.gravatar.com/a.png", True),
        ("http://www.gravatar.com/a.png", False),
        ("javascript:alert(1)", False),
        ("data:image/svg+xml,<svg onload=alert(1)>", False),
        ("//evil.example/a.png", False),
        ("https://user:pass@evil.example/a.png", False),
        ("https:///no-host.png", False),
        ("https://evil.example/a b.png", False),
        ("", False),
        (None, False),
    ],
)
def test_only_an_https_avatar_url_is_ever_an_image_source(url: str | None, shown: bool) -> None:
    rendered = Template("{% load dashboard_security %}{{ url|avatar_src }}").render(
        Context({"url": url})
    )
    assert (rendered != "") is shown


def test_avatar_hosts_when_listed_are_the_only_ones_shown(settings: Any) -> None:
    template = Template("{% load dashboard_security %}{{ url|avatar_src }}")
    settings.ALLO_AVATAR_HOSTS = ["www.gravatar.com"]
    assert template.render(Context({"url": "https://WWW.Gravatar.com/a.png"})) != ""
    assert template.render(Context({"url": "https://evil.example/a.png"})) == ""


def test_a_teammate_photo_that_is_not_https_is_not_shown(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = sandbox.world.member(person(sandbox, CHLOE))
    lea = sandbox.world.member(person(sandbox, "Léa Moreau"))
    assert chloe is not None and lea is not None
    chloe.image_url = "javascript:alert(1)"
    lea.image_url = "https://www.gravatar.com/avatar/lea"
    team_roster_forget()
    page = manager_client.get("/").content.decode()
    assert "javascript:alert(1)" not in page
    assert 'src="https://www.gravatar.com/avatar/lea"' in page
    card = manager_client.get(queue_url(chloe.id)).content.decode()
    assert "javascript:" not in card and "avatar__photo" not in card


def test_the_live_refresh_url_carries_the_seen_value_encoded(
    manager_client: Client, sandbox: Sandbox
) -> None:
    """``seen`` comes back from the address into the next refresh's URL: encoded, it stays one
    value and never adds parameters (``&teammate=…``) or ends the attribute."""
    chloe = person(sandbox, CHLOE)
    sandbox.set_faults(FaultSpec(status=503, methods=("GET",)))
    seen = 'x&teammate=usr-evil#"><b>'
    response = manager_client.get(
        reverse("dashboard:queue_live", args=[chloe]), {"seen": seen, "idle": "0"}, headers=HTMX
    )
    body = response.content.decode()
    assert "seen=x%26teammate%3Dusr-evil%23%22%3E%3Cb%3E&amp;idle=" in body
    assert "teammate=usr-evil" not in html.unescape(body)
    assert "<b>" not in body


# No inline script, style or handler: the CSP needs neither unsafe-inline nor unsafe-eval -------


def assert_csp_clean(response: Any, where: str) -> None:
    body = response.content.decode()
    assert "<style" not in body, where
    for tag in re.findall(r"<[a-zA-Z][^>]*>", body):
        assert not re.search(r"\sstyle\s*=", tag), (where, tag)
        assert not re.search(r"\son[a-z]+\s*=", tag), (where, tag)
        assert not re.search(r"\shx-on", tag), (where, tag)
        assert "javascript:" not in tag, (where, tag)
    for attrs, content in re.findall(r"<script([^>]*)>(.*?)</script>", body, re.S):
        assert content.strip() == "", (where, "an inline script")
        assert 'src="/static/' in attrs and "nonce=" in attrs, (where, attrs)
    for config in re.findall(r"<meta name=\"htmx-config\" content='([^']*)'>", body):
        parsed = json.loads(html.unescape(config))
        assert parsed["allowEval"] is False and parsed["includeIndicatorStyles"] is False


def test_no_page_needs_unsafe_inline_or_unsafe_eval(
    manager_client: Client, manager: User, sandbox: Sandbox, client_factory: Any
) -> None:
    chloe = person(sandbox, CHLOE)
    save = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    pages = {
        "teammates": manager_client.get("/"),
        "queue": manager_client.get(queue_url(chloe)),
        "card": manager_client.get(queue_url(chloe), headers=HTMX),
        "save": manager_client.post(queue_url(chloe), save, headers=HTMX),
        "connection": manager_client.get("/connection/"),
        "audit": manager_client.get("/audit/"),
        "not found": manager_client.get("/no-such-page/"),
        "login": client_factory().get("/accounts/login/"),
        "no access": client_factory(email="nobody@example.com").get("/"),
    }
    assert '<meta name="htmx-config"' in pages["teammates"].content.decode()
    for where, response in pages.items():
        assert response.status_code in {200, 404}, where
        assert_csp_clean(response, where)


# CSRF -------------------------------------------------------------------------------------------


def test_every_post_needs_the_csrf_token_htmx_included(
    manager: User, allo: AlloClient, sandbox: Sandbox
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(manager)
    chloe = person(sandbox, CHLOE)
    card = browser.get(queue_url(chloe), headers=HTMX)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', card.content.decode())
    assert token is not None
    data = {**shown_form(browser, chloe), "voicemail_handling": "SKIP"}
    sandbox.clear_stats()
    for headers in ({}, HTMX):
        assert browser.post(queue_url(chloe), data, headers=headers).status_code == 403
    assert browser.post("/accounts/logout/").status_code == 403
    assert sandbox.stats()["log"] == []
    assert not AuditEntry.objects.exists()
    saved = browser.post(
        queue_url(chloe), {**data, "csrfmiddlewaretoken": token.group(1)}, headers=HTMX
    )
    assert saved.status_code == 200 and "Saved." in text(saved)


# Signing in -------------------------------------------------------------------------------------


def sign_in(client: Client, username: str, password: str, address: str = "198.51.100.7") -> Any:
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


@pytest.fixture
def accounts(db: None) -> list[User]:
    return [User.objects.create_user(username=name, password=PASSWORD) for name in ("ana", "bob")]


def test_five_wrong_passwords_lock_the_account_with_a_clear_message(
    client: Client, accounts: list[User]
) -> None:
    for _attempt in range(4):
        response = sign_in(client, "ana", "wrong")
        assert "Please enter a correct username and password" in text(response)
    fifth = sign_in(client, "ana", "wrong")
    assert THROTTLED in text(fifth)
    assert "Signing in is paused for 15 minutes" in text(fifth)
    # Locked: even the right password is refused, and no session is opened.
    refused = sign_in(client, "ANA", PASSWORD)
    assert refused.status_code == 200 and THROTTLED in text(refused)
    assert "_auth_user_id" not in client.session
    # The lock is on that account: bob, from another address, signs in.
    other = Client()
    assert sign_in(other, "bob", PASSWORD, address="192.0.2.1").status_code == 302


def test_many_failures_from_one_address_lock_that_address(
    client: Client, accounts: list[User]
) -> None:
    for index in range(20):
        sign_in(client, f"guess{index}", "wrong", address="203.0.113.5")
    assert THROTTLED in text(sign_in(client, "bob", PASSWORD, address="203.0.113.5"))
    assert sign_in(Client(), "bob", PASSWORD, address="192.0.2.1").status_code == 302


def test_a_successful_sign_in_clears_the_accounts_failures(
    client: Client, accounts: list[User]
) -> None:
    for _attempt in range(4):
        sign_in(client, "ana", "wrong")
    assert sign_in(client, "ana", PASSWORD).status_code == 302
    client.logout()
    for _attempt in range(4):
        sign_in(client, "ana", "wrong")
    assert sign_in(client, "ana", PASSWORD).status_code == 302


def test_a_lock_opens_again_after_fifteen_minutes(db: None) -> None:
    for _attempt in range(5):
        assert signin_attempt(username="ana", address="", now=1000.0) is None
        signin_failed(username="ana", address="", now=1000.0)
    assert signin_locked_until(username="ana", address="", now=1001.0) == 1000.0 + 15 * 60
    assert signin_locked_until(username="ana", address="", now=1000.0 + 15 * 60 + 1) is None
    assert signin_locked_until(username="bob", address="", now=1001.0) is None


def test_behind_a_proxy_the_address_comes_from_the_header_named(settings: Any) -> None:
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.20"
    )
    assert client_address(request) == "10.0.0.2"
    settings.SIGNIN_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    # The last entry is the one the proxy appended; the first can be forged by anyone.
    assert client_address(request) == "198.51.100.20"


def test_behind_several_proxies_the_address_is_the_one_the_outermost_appended(
    settings: Any,
) -> None:
    """Client -> CDN -> load balancer -> dashboard: the CDN appends the client's address, the
    load balancer the CDN's. Entries further left are the client's own words."""
    settings.SIGNIN_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.SIGNIN_TRUSTED_PROXY_COUNT = 2
    forged = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.3", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.20, 10.0.0.9"
    )
    assert client_address(forged) == "198.51.100.20"
    # With one proxy counted, the CDN's address would be taken for every visitor's.
    settings.SIGNIN_TRUSTED_PROXY_COUNT = 1
    assert client_address(forged) == "10.0.0.9"
    # Fewer entries than proxies: the header did not come through them all; it is not believed.
    settings.SIGNIN_TRUSTED_PROXY_COUNT = 3
    short = RequestFactory().get("/", REMOTE_ADDR="10.0.0.3", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert client_address(short) == "10.0.0.3"


class NestedAttemptsBackend(ModelBackend):
    """Checks passwords like Django does, but while checking one, the next sign-in arrives (up
    to ``pile``): as when many attempts run at once, each starts before any has failed."""

    pile = 12
    checked: list[str] = []

    def authenticate(self, request: Any, username: str | None = None, **kwargs: Any) -> Any:
        type(self).checked.append(kwargs.get("password", ""))
        if len(type(self).checked) < type(self).pile:
            attempt(request, username or "", f"guess-{len(type(self).checked)}")
        return super().authenticate(request, username=username, **kwargs)


def attempt(request: Any, username: str, password: str) -> SignInForm:
    form = SignInForm(request, data={"username": username, "password": password})
    form.is_valid()
    return form


def test_simultaneous_attempts_check_no_more_passwords_than_the_limit(
    accounts: list[User], settings: Any
) -> None:
    settings.AUTHENTICATION_BACKENDS = [f"{__name__}.NestedAttemptsBackend"]
    NestedAttemptsBackend.checked = []
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="198.51.100.7")
    first = attempt(request, "ana", "wrong")
    # Twelve attempts were under way at once; only five passwords were ever checked.
    assert len(NestedAttemptsBackend.checked) == 5
    assert THROTTLED in " ".join(first.non_field_errors())
    # And the right password, now, is refused like any other.
    assert THROTTLED in " ".join(attempt(request, "ana", PASSWORD).non_field_errors())
    assert len(NestedAttemptsBackend.checked) == 5


def test_an_offices_good_sign_ins_never_pause_its_address(
    client: Client, accounts: list[User]
) -> None:
    for _index in range(30):
        assert sign_in(Client(), "bob", PASSWORD, address="203.0.113.9").status_code == 302
    for _index in range(3):
        sign_in(client, "ana", "wrong", address="203.0.113.9")
    assert sign_in(Client(), "ana", PASSWORD, address="203.0.113.9").status_code == 302


def test_an_operator_lifts_a_pause_with_a_command(
    client: Client, accounts: list[User], capsys: pytest.CaptureFixture[str]
) -> None:
    for _attempt in range(5):
        sign_in(client, "ana", "wrong")
    assert THROTTLED in text(sign_in(client, "ana", PASSWORD))
    call_command("unlock_signin", "ANA")
    assert "Signing in is open again for username 'ANA'." in capsys.readouterr().out
    assert sign_in(client, "ana", PASSWORD).status_code == 302
    for index in range(20):
        sign_in(Client(), f"guess{index}", "wrong", address="203.0.113.5")
    assert THROTTLED in text(sign_in(Client(), "bob", PASSWORD, address="203.0.113.5"))
    call_command("unlock_signin", "--address", "203.0.113.5")
    assert sign_in(Client(), "bob", PASSWORD, address="203.0.113.5").status_code == 302


# The admin's login ------------------------------------------------------------------------------


def admin_sign_in(
    client: Client, username: str, password: str, address: str = "198.51.100.7"
) -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def test_the_admin_login_is_throttled_like_the_sign_in_page(db: None) -> None:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    for _attempt in range(30):
        admin_sign_in(client, "root", "wrong")
    refused = admin_sign_in(client, "root", PASSWORD)
    assert refused.status_code == 200 and THROTTLED in text(refused)
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302
    # The counters are shared: the sign-in page refuses that account too, from anywhere.
    assert THROTTLED in text(sign_in(Client(), "root", PASSWORD, address="192.0.2.44"))


def test_the_admin_login_counts_towards_the_sign_in_pages_limit(db: None) -> None:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    for _attempt in range(3):
        admin_sign_in(Client(), "root", "wrong", address="192.0.2.1")
    for _attempt in range(2):
        sign_in(Client(), "root", "wrong", address="192.0.2.2")
    assert THROTTLED in text(admin_sign_in(Client(), "root", PASSWORD, address="192.0.2.3"))


def test_the_admin_login_still_signs_staff_in(db: None) -> None:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    assert admin_sign_in(client, "root", PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "///evil.example/",
        "/\\evil.example/",
        "https:evil.example",
        "http://testserver.evil.example/",
        "javascript:alert(1)",
    ],
)
def test_the_login_page_never_sends_anyone_to_another_site(
    client: Client, manager: User, target: str
) -> None:
    page = client.get("/accounts/login/", {"next": target})
    form = re.search(r'<form[^>]*action="/accounts/login/".*?</form>', page.content.decode(), re.S)
    assert form is not None
    assert 'name="next" value=""' in form.group(0)  # the target is not carried on
    response = client.post(
        f"/accounts/login/?next={target}",
        {"username": "manager", "password": PASSWORD, "next": target},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_the_login_page_does_follow_a_next_on_this_site(client: Client, manager: User) -> None:
    response = client.post(
        "/accounts/login/", {"username": "manager", "password": PASSWORD, "next": "/audit/"}
    )
    assert response["Location"] == "/audit/"


# Escaping Allo's text ---------------------------------------------------------------------------

EVIL_NAME = "<img src=x onerror=alert(1)>"
EVIL_EMAIL = "<svg/onload=alert(2)>@evil.example"
EVIL_QUEUE = "<script>alert(3)</script>"


def test_text_from_allo_is_shown_as_text_everywhere(
    client: Client, allo: AlloClient, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    added = allo_http.post(
        "/_sandbox/users", json={"name": EVIL_NAME, "email": EVIL_EMAIL, "role": "ADMIN"}
    )
    added.raise_for_status()
    evil = added.json()["data"]["id"]
    allo_http.put(
        f"/_sandbox/queues/{evil}",
        json={"name": EVIL_QUEUE, "numbers": [{"number": "+33612345678"}]},
    ).raise_for_status()
    # The account of the teammate with the evil name: an ADMIN, author of the changes below.
    account = User.objects.create_user(username="evil", email=EVIL_EMAIL, password=PASSWORD)
    client.force_login(account)
    data = {**shown_form(client, evil), "voicemail_handling": "SKIP"}
    pages = {
        "teammates": client.get("/"),
        "queue": client.get(queue_url(evil)),
        "card": client.get(queue_url(evil), headers=HTMX),
        "save": client.post(queue_url(evil), data, headers=HTMX),
        "audit": client.get("/audit/"),
        "history": client.get("/audit/", {"teammate": evil}),
        "last change": client.get(queue_url(evil), headers=HTMX),
    }
    for where, response in pages.items():
        body = response.content.decode()
        for raw in (EVIL_NAME, EVIL_EMAIL, EVIL_QUEUE, "<img src=x", "<svg/", "<script>alert"):
            assert raw not in body, (where, raw)
        assert_csp_clean(response, where)
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["teammates"].content.decode()
    assert EVIL_NAME in text(pages["teammates"]) and EVIL_EMAIL in text(pages["teammates"])
    assert EVIL_QUEUE in text(pages["queue"])
    assert f"{EVIL_NAME}'s dialer queue" in text(pages["queue"])
    assert f"changed by {EVIL_NAME}" in text(pages["last change"])
    assert EVIL_NAME in text(pages["history"]) and EVIL_QUEUE not in text(pages["history"])


def test_an_allo_error_message_is_shown_as_text(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    inner = sandbox_transport(sandbox)

    def refuse_patches(request: httpx.Request) -> httpx.Response:
        if request.method != "PATCH":
            return inner.handle_request(request)
        return httpx.Response(
            400,
            json={
                "error": {
                    "type": "validation_error",
                    "code": "VALIDATION_ERROR",
                    "message": "<b onmouseover=alert(4)>bad</b>",
                    "param": "name",
                }
            },
        )

    client = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=httpx.MockTransport(refuse_patches),
        timing=Timing.simulated(sandbox_clock),
    )
    previous = install_client(client)
    try:
        chloe = person(sandbox, CHLOE)
        data = {**shown_form(manager_client, chloe), "name": "Comptes"}
        response = manager_client.post(queue_url(chloe), data, headers=HTMX)
        history = manager_client.get("/audit/")
    finally:
        install_client(previous)
        client.close()
    for page in (response, history):
        assert "<b onmouseover" not in page.content.decode()
        assert "<b onmouseover=alert(4)>bad</b>" in text(page)


# The API key never leaves the server ------------------------------------------------------------

CANARY = f"ak_live_CANARY_{secrets.token_hex(12)}"


@pytest.fixture
def canary_sandbox(settings: Any, sandbox_clock: FakeClock) -> Iterator[Sandbox]:
    """A sandbox and the dashboard's client, both on a recognisable key, also in settings."""
    settings.ALLO_API_KEY = CANARY
    sandbox = Sandbox(api_key=CANARY, clock=sandbox_clock)
    client = build_client(
        base_url="http://allo.test",
        api_key=CANARY,
        transport=sandbox_transport(sandbox),
        timing=Timing.simulated(sandbox_clock),
    )
    previous = install_client(client)
    yield sandbox
    install_client(previous)
    client.close()


def canary_in(content: str) -> bool:
    secret = CANARY.removeprefix("ak_live_")
    return CANARY in content or secret in content or CANARY[-24:] in content


def test_the_api_key_appears_in_no_page_fragment_error_log_audit_row_or_exception(
    canary_sandbox: Sandbox, manager: User, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "dashboard", "django"):
        caplog.set_level(logging.DEBUG, logger=name)
    sandbox = canary_sandbox
    browser = Client()
    browser.force_login(manager)
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    admin = Client()
    admin.force_login(root)
    member = User.objects.create_user("chloe", email=sandbox.user_named(CHLOE)["email"])
    member_browser = Client()
    member_browser.force_login(member)
    chloe, jerome = person(sandbox, CHLOE), person(sandbox, JEROME)
    seen: list[str] = []

    def keep(response: Any) -> None:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        seen.append(body.decode(errors="replace"))
        seen.append(repr(sorted(response.items())))
        seen.append(str(response.cookies))

    # Pages and fragments.
    for url, headers in [
        ("/", {}),
        ("/?status=all", {}),
        (queue_url(chloe), {}),
        (queue_url(chloe), HTMX),
        (queue_url(jerome) + "?page=2", {**HTMX, "HX-Target": "anything-numbers"}),
        (reverse("dashboard:queue_live", args=[chloe]), HTMX),
        (reverse("dashboard:team_overview"), HTMX),
        ("/connection/", {}),
        ("/no-such-page/", {}),
        ("/accounts/login/", {}),
    ]:
        keep(browser.get(url, headers=headers))
    keep(member_browser.get(queue_url(jerome)))  # out of reach: 404
    for url in ("/admin/", "/admin/dashboard/managerscope/add/"):
        keep(admin.get(url))
    # A save that Allo applies, then one for each way Allo can fail.
    data = {**shown_form(browser, chloe), "voicemail_handling": "SKIP"}
    keep(browser.post(queue_url(chloe), data, headers=HTMX))
    # No one-time token: each post below is a new save, not a second click on the first.
    data = {**data, "seen_voicemail_handling": "SKIP", "token": ""}
    faults = [
        {"status": 400},
        {"status": 401},
        {"status": 403},
        {"status": 404},
        {"status": 409},
        {"status": 429},
        {"status": 500},
        {"hang": True},
        {"malformed": True},
    ]
    for index, fault in enumerate(faults):
        sandbox.set_faults(FaultSpec.from_json({**fault, "methods": ["PATCH"]}))
        changed = {**data, "name": f"Essai {index}"}
        keep(browser.post(queue_url(chloe), changed, headers=HTMX))
        keep(browser.post(queue_url(chloe), changed))
        sandbox.set_faults(FaultSpec())
    sandbox.teammate_field_by_method = {"PATCH": "none"}  # the PATCH lands on another queue
    keep(browser.post(queue_url(chloe), {**data, "name": "Ailleurs"}, headers=HTMX))
    sandbox.teammate_field_by_method = {}
    sandbox.teammate_field = "none"  # and so does a read
    keep(browser.get(queue_url(chloe)))
    sandbox.teammate_field = "both"
    # Access that cannot be checked: the team list fails while the cache is cold.
    team_roster_forget()
    sandbox.set_faults(FaultSpec(status=401))
    keep(browser.get("/"))
    keep(browser.get(queue_url(chloe), headers=HTMX))
    sandbox.set_faults(FaultSpec())
    team_roster()
    # The history, and its CSV.
    keep(browser.get("/audit/"))
    keep(browser.get("/audit/", {"format": "csv"}))
    keep(admin.get("/admin/dashboard/auditentry/"))

    # Exceptions the client raises, as text and as a technical error report with locals.
    sandbox.set_faults(FaultSpec(status=401))
    errors: list[AlloError] = []
    for call in (
        lambda: get_client().me(),
        lambda: get_client().list_users(),
        lambda: get_client().get_queue(user_id=chloe),
    ):
        try:
            call()
        except AlloError as error:
            errors.append(error)
    sandbox.set_faults(FaultSpec())
    previous = install_client(None)
    try:
        settings.ALLO_API_BASE_URL = "ftp://allo.test"
        try:
            get_client()
        except AlloError as error:
            errors.append(error)
    finally:
        install_client(previous)
    assert len(errors) == 4
    request = RequestFactory().get("/")
    for error in errors:
        seen += [str(error), repr(error), repr(vars(error))]
        report = ExceptionReporter(request, type(error), error, error.__traceback__)
        seen.append(report.get_traceback_text())

    # Logs and audit rows.
    seen.append(caplog.text)
    seen += [repr(record.__dict__) for record in caplog.records]
    rows = list(AuditEntry.objects.values())
    # A change whose answer was lost is read again, so it ends applied or refused; "unknown"
    # needs that read to fail too (tests/test_consistency.py).
    assert {row["outcome"] for row in rows} >= {"applied", "refused", "misdirected"}
    seen += [repr(row) for row in rows]

    assert len(seen) > 100
    leaks = [content[:200] for content in seen if canary_in(content)]
    assert leaks == []
    # The canary is recognisable: where it is, it is found (the search itself works).
    assert canary_in(f"Authorization: Api-Key {CANARY}")
    assert sandbox.api_key == CANARY and settings.ALLO_API_KEY == CANARY


# Fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def client_factory(allo: AlloClient, sandbox: Sandbox) -> Any:
    """A signed-in browser for a new account (signed out when ``email`` is None)."""
    count = 0

    def make(email: str | None = None) -> Client:
        nonlocal count
        browser = Client()
        if email is not None:
            count += 1
            user = User.objects.create_user(f"user{count}", email=email, password=PASSWORD)
            browser.force_login(user)
        return browser

    return make
