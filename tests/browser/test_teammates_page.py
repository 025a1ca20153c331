"""The teammates page in a real browser: filters in the address, French, long names, signing out."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.utils import translation
from playwright.sync_api import Page, expect

from dashboard.sandbox.server import SandboxServer
from dashboard.templatetags.dashboard_tags import queue_dom_id
from tests.browser.conftest import sign_in
from tests.browser.helpers import (
    EDIT_QUEUE,
    INES,
    overview_done,
    raw_allo_values,
    teammate_id,
)
from tests.conftest import sandbox_api_key

pytestmark = pytest.mark.browser


def shown_count(page: Page) -> Any:
    return page.locator("#teammate-list .count")


def test_filters_go_in_the_address_and_back_brings_the_list_and_the_controls_back(
    page: Page, manager_account: User
) -> None:
    sign_in(page)
    search, status = page.get_by_label("Search"), page.get_by_label("Status")
    expect(shown_count(page)).to_have_text("12 teammates")

    status.select_option(label="Blocked")
    expect(page).to_have_url(re.compile(r"status=BLOCKED"))
    expect(shown_count(page)).to_have_text("2 teammates")

    search.press_sequentially("eloise")
    expect(page).to_have_url(re.compile(r"q=eloise.*status=BLOCKED"))
    expect(shown_count(page)).to_have_text("1 teammate")
    expect(page.get_by_role("link", name="Éloïse Marchand")).to_be_visible()

    # Back: the blocked teammates again, and the controls as they were then.
    page.go_back()
    expect(page).to_have_url(re.compile(r"status=BLOCKED"))
    expect(page).not_to_have_url(re.compile(r"q=eloise"))
    expect(shown_count(page)).to_have_text("2 teammates")
    expect(search).to_have_value("")
    expect(status).to_have_value("BLOCKED")

    # Back to where it started: the active team, no search.
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"status="))
    expect(shown_count(page)).to_have_text("12 teammates")
    expect(status).to_have_value("ACTIVE")

    # And forward again.
    page.go_forward()
    expect(shown_count(page)).to_have_text("2 teammates")
    expect(status).to_have_value("BLOCKED")
    expect(search).to_have_value("")


def test_french_puts_the_whole_page_and_every_allo_value_into_french_words(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    with translation.override("fr"):
        heading = translation.gettext("Your team's dialer queues")
        save = translation.gettext("Save")
    assert heading != "Your team's dialer queues", "the French catalogue is not compiled"
    sign_in(page)
    page.get_by_role("button", name="Français").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    # A queue being dialed: results, numbers, settings, all in words.
    page.locator(f"#{queue_dom_id(teammate_id(live_allo, INES))}-edit").click()
    expect(page.get_by_role("button", name=save)).to_be_visible()
    overview_done(page)
    assert raw_allo_values(page.locator("main").inner_text()) == []
    expect(page.get_by_role("button", name="English")).to_be_visible()


def test_a_name_of_255_letters_without_a_space_never_widens_the_page(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    long_name = "X" * 255
    headers = {"Authorization": f"Api-Key {sandbox_api_key()}"}
    added = httpx.post(
        f"{live_allo.url}/_sandbox/users",
        json={"name": long_name, "email": "x" * 60 + "@example.com"},
        headers=headers,
    ).json()["data"]
    httpx.put(
        f"{live_allo.url}/_sandbox/queues/{added['id']}",
        json={"name": "Q" * 255, "numbers": ["+33612345678"]},
        headers=headers,
    ).raise_for_status()
    sign_in(page)
    page.get_by_role("button", name=EDIT_QUEUE + long_name).click()
    expect(page.get_by_role("heading", name="Q" * 255)).to_be_visible()
    overview_done(page)
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 900})
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], (width, widths)


def test_signing_out_says_so_and_the_address_typed_by_hand_offers_the_button(
    page: Page, manager_account: User
) -> None:
    sign_in(page)
    page.get_by_role("button", name="Sign out (camille)").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_visible()

    sign_in(page)
    page.goto("/accounts/logout/")
    expect(page.get_by_text("You are signed in as camille.")).to_be_visible()
    page.get_by_role("main").get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
