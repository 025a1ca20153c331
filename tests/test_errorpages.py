"""Failures outside Allo (a refused form, a page that does not exist, a server error) in words:
a page for a browser, a fragment for htmx's permanent trouble region."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse

from dashboard.errorpages import server_error
from dashboard.sandbox.core import Sandbox
from tests.helpers import HTMX


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


@pytest.fixture
def csrf_client(manager: User, manager_client: Client) -> Client:
    """The signed-in manager's browser, checking CSRF tokens as a real one is checked."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    return client


def a_save(sandbox: Sandbox) -> tuple[str, dict[str, str]]:
    chloe = sandbox.user_named("Chloé Dubois-Maréchal")["id"]
    data = {
        "name": "Typed by hand",
        "voicemail_handling": "SKIP",
        "do_not_disturb": "ENABLED",
        "seen_name": "Grands comptes Rhône-Alpes",
        "seen_voicemail_handling": "NO_SKIP",
        "seen_do_not_disturb": "ENABLED",
    }
    return reverse("dashboard:queue", args=[chloe]), data


def test_an_htmx_form_refused_for_its_csrf_token_says_so_where_it_cannot_erase_the_form(
    csrf_client: Client, sandbox: Sandbox
) -> None:
    url, data = a_save(sandbox)
    response = csrf_client.post(url, data, headers=HTMX)
    assert response.status_code == 403
    # Put in the page's trouble region, not in the card: the typed values stay on screen.
    assert response["HX-Retarget"] == "#request-trouble"
    assert response["HX-Reswap"] == "outerHTML"
    assert response["HX-Push-Url"] == "false"
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="request-trouble"')
    assert "<html" not in html
    assert "nothing was changed" in text_of(html) and "Reload the page" in text_of(html)
    assert [row for row in sandbox.stats()["log"] if row["method"] == "PATCH"] == []


def test_a_plain_form_refused_for_its_csrf_token_gets_a_page_in_words(
    csrf_client: Client, sandbox: Sandbox
) -> None:
    url, data = a_save(sandbox)
    response = csrf_client.post(url, data)
    assert response.status_code == 403
    page = text_of(response.content.decode())
    assert "This form has expired" in page and "nothing was changed" in page
    assert "CSRF" not in page and "Back to the team" in page


def test_a_teammate_address_out_of_reach_says_no_such_teammate(manager_client: Client) -> None:
    response = manager_client.get(reverse("dashboard:queue", args=["usr-nope"]))
    assert response.status_code == 404
    page = text_of(response.content.decode())
    assert "No teammate with this id is on your team." in page
    assert "no longer on the team" not in page


def test_an_htmx_request_for_a_teammate_out_of_reach_gets_the_words_as_a_fragment(
    manager_client: Client,
) -> None:
    response = manager_client.get(reverse("dashboard:queue", args=["usr-nope"]), headers=HTMX)
    assert response.status_code == 404
    assert response["HX-Retarget"] == "#request-trouble"
    assert "No teammate with this id is on your team." in text_of(response.content.decode())


def test_another_missing_page_says_so_in_words(manager_client: Client) -> None:
    response = manager_client.get("/no/such/page/")
    assert response.status_code == 404
    page = text_of(response.content.decode())
    assert "Page not found" in page and "There is no page at this address." in page


@pytest.mark.parametrize("htmx", [False, True])
def test_a_server_error_says_nothing_was_lost(htmx: bool, rf: RequestFactory) -> None:
    headers: dict[str, Any] = HTMX if htmx else {}
    response = server_error(rf.get("/", headers=headers))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on the dashboard's side. Nothing was lost." in text_of(html)
    assert ("<html" in html) is not htmx
    if htmx:
        assert response["HX-Retarget"] == "#request-trouble"


def test_the_page_lets_htmx_swap_the_servers_error_fragments(manager_client: Client) -> None:
    html = manager_client.get("/").content.decode()
    assert '{"code": "[45]..", "swap": true, "error": true}' in html
    # The region they go to is on every page, empty and hidden, with the generic words
    # dashboard.js shows for an error answer that is not one of ours.
    region = re.search(r'<div id="request-trouble"[^>]*>', html)
    assert region and " hidden" in region.group(0)
    assert 'data-generic="Something went wrong; nothing was lost. Try again."' in region.group(0)
