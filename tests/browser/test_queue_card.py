"""A teammate's queue in a real browser: saving in place, errors kept in place, live results,
the keyboard alone, a phone's screen, pages of numbers in the address."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.server import SandboxServer
from dashboard.templatetags.dashboard_tags import queue_dom_id
from tests.browser.conftest import sign_in
from tests.browser.helpers import (
    CHLOE,
    EDIT_QUEUE,
    INES,
    LEA,
    card_of,
    every_queue,
    mark_the_page,
    open_card,
    overview_done,
    still_the_same_page,
    teammate_id,
)

pytestmark = pytest.mark.browser

SKIP = "Skip voicemails, go to the next number"
STAY = "Stay on the call when a voicemail answers"


def test_a_save_updates_the_card_in_place_and_only_that_teammates_queue(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    chloe = teammate_id(live_allo, CHLOE)
    before = every_queue(live_allo)
    sign_in(page)
    mark_the_page(page)
    card = open_card(page, live_allo, CHLOE)
    expect(card.get_by_label(STAY)).to_be_checked()

    card.get_by_label(SKIP).check()
    card.get_by_role("button", name="Save").click()

    expect(card.get_by_role("status")).to_contain_text("Saved.")
    # The card shows what Allo returned; the page was never reloaded.
    expect(card_of(page, chloe).get_by_label(SKIP)).to_be_checked()
    assert still_the_same_page(page)
    after = every_queue(live_allo)
    assert after[chloe] == ("Grands comptes Rhône-Alpes", "SKIP", "ENABLED")
    assert {k: v for k, v in after.items() if k != chloe} == {
        k: v for k, v in before.items() if k != chloe
    }


def test_a_cleared_name_is_refused_in_place_with_the_typed_values_kept(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    chloe = teammate_id(live_allo, CHLOE)
    before = every_queue(live_allo)
    sign_in(page)
    mark_the_page(page)
    card = open_card(page, live_allo, CHLOE)
    card.get_by_label("Queue name").fill("")
    card.get_by_label(SKIP).check()
    card.get_by_role("button", name="Save").click()

    name = card.get_by_label("Queue name")
    expect(name).to_have_attribute("aria-invalid", "true")
    error = page.locator(f"#{queue_dom_id(chloe)}-name_error")
    expect(error).to_contain_text("A queue's name cannot be removed in Allo.")
    # The error is the field's description, and the focus went to the field.
    expect(name).to_have_attribute("aria-describedby", re.compile(r"-name_error\b"))
    expect(name).to_be_focused()
    expect(name).to_have_value("")
    expect(card.get_by_label(SKIP)).to_be_checked()
    assert still_the_same_page(page)
    assert every_queue(live_allo) == before


def test_allo_failing_on_save_is_said_in_place_and_nothing_typed_is_lost(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    chloe = teammate_id(live_allo, CHLOE)
    before = every_queue(live_allo)
    sign_in(page)
    mark_the_page(page)
    card = open_card(page, live_allo, CHLOE)
    card.get_by_label("Queue name").fill("Comptes clés 2027")
    card.get_by_label(SKIP).check()
    # Allo down for changes (reads still answer: the client retries those).
    live_allo.sandbox.set_faults(FaultSpec.from_json({"status": 503, "methods": ["PATCH"]}))
    card.get_by_role("button", name="Save").click()

    form = page.locator(f"#{queue_dom_id(chloe)}-form")
    expect(form.get_by_role("alert")).to_contain_text("Allo")
    expect(card.get_by_role("status")).not_to_contain_text("Saved")
    expect(form.get_by_label("Queue name")).to_have_value("Comptes clés 2027")
    expect(form.get_by_label(SKIP)).to_be_checked()
    assert still_the_same_page(page)
    live_allo.sandbox.set_faults(FaultSpec())
    assert every_queue(live_allo) == before


def test_a_number_the_rep_dials_shows_up_by_itself_without_a_reload(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    ines = teammate_id(live_allo, INES)
    numbers = live_allo.sandbox.queue_of(ines)["numbers"]
    ringing = next(n for n in numbers if n["call_start_date"] and not n["routing_result"])
    following = numbers[ringing["position"] + 1]
    sign_in(page)
    mark_the_page(page)
    card = open_card(page, live_allo, INES)
    card.scroll_into_view_if_needed()
    expect(page.locator(f"#{queue_dom_id(ines)}-live[data-live-poll]")).to_be_attached()
    ringing_row = card.get_by_role("row").filter(has_text=ringing["number_to"])
    following_row = card.get_by_role("row").filter(has_text=following["number_to"])
    expect(ringing_row).to_contain_text("Dialed, no result yet")
    expect(following_row).to_contain_text("Not yet called")

    live_allo.sandbox.dial_step()

    # The next refresh (every few seconds while a rep dials) brings the call's result and
    # the next number being called, in the page of numbers on screen.
    expect(ringing_row).not_to_contain_text("Dialed, no result yet", timeout=12_000)
    expect(following_row).to_contain_text("Dialed, no result yet")
    assert still_the_same_page(page)


def test_a_queue_is_changed_and_saved_with_the_keyboard_alone(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    chloe = teammate_id(live_allo, CHLOE)
    sign_in(page)
    overview_done(page)
    # The counts, once counted, were said by the page's own live region.
    expect(page.locator("#announcer")).to_contain_text("teammates shown")

    def tab_to(describes: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(describes):
                return
        raise AssertionError(f"Tab never reached {describes}")

    tab_to(
        "document.activeElement.matches('button[data-editor-toggle]')"
        f" && document.activeElement.textContent.includes({CHLOE!r})"
    )
    expect(page.get_by_role("button", name=EDIT_QUEUE + CHLOE)).to_be_focused()
    page.keyboard.press("Enter")
    card = card_of(page, chloe)
    expect(card.get_by_label(STAY)).to_be_checked()

    tab_to("document.activeElement.name === 'voicemail_handling'")
    expect(card.get_by_label(STAY)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(card.get_by_label(SKIP)).to_be_checked()

    tab_to("document.activeElement.type === 'submit'")
    expect(card.get_by_role("button", name="Save")).to_be_focused()
    page.keyboard.press("Enter")

    saved = card.get_by_role("status")
    expect(saved).to_contain_text("Saved.")
    # The focus went to the message (so a screen reader reads it).
    expect(saved.locator("[data-autofocus]")).to_be_focused()
    assert live_allo.sandbox.queue_of(chloe)["voicemail_handling"] == "SKIP"


def test_on_a_phone_each_number_shows_every_column_without_scrolling_sideways(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    lea = teammate_id(live_allo, LEA)
    sign_in(page)
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"/teammates/{lea}/queue/")
    first = card_of(page, lea).locator("tbody tr").first
    cells = first.get_by_role("cell")
    expect(cells).to_have_count(7)
    for index in range(7):
        cell = cells.nth(index)
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, index
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1]


def test_the_queue_page_keeps_its_page_of_numbers_in_the_address(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    lea = teammate_id(live_allo, LEA)
    sign_in(page)
    page.goto(f"/teammates/{lea}/queue/")
    pager = page.get_by_role("navigation", name="Pages of numbers")
    expect(pager).to_contain_text("Page 1 of 6")
    mark_the_page(page)

    pager.get_by_role("link", name="Last »").click()
    expect(page).to_have_url(re.compile(r"\?page=6$"))
    expect(pager).to_contain_text("Page 6 of 6")
    pager.get_by_role("link", name="« First").click()
    expect(page).to_have_url(re.compile(r"\?page=1$"))
    expect(pager).to_contain_text("Page 1 of 6")
    assert still_the_same_page(page)

    page.go_back()
    expect(page).to_have_url(re.compile(r"\?page=6$"))
    expect(pager).to_contain_text("Page 6 of 6")
    expect(card_of(page, lea).get_by_role("row").last).to_contain_text("137")


def test_a_refused_request_is_said_in_words_and_the_form_keeps_what_was_typed(
    page: Page, manager_account: User, live_allo: SandboxServer
) -> None:
    chloe = teammate_id(live_allo, CHLOE)
    sign_in(page)
    card = open_card(page, live_allo, CHLOE)
    card.get_by_label("Queue name").fill("Typed, then refused")
    trouble = page.locator("#request-trouble")
    expect(trouble).to_be_hidden()

    # The form's CSRF cookie gone (expired, cleared): the server refuses it in words.
    page.context.clear_cookies(name="csrftoken")
    card.get_by_role("button", name="Save").click()
    expect(trouble).to_be_visible()
    expect(trouble).to_contain_text("nothing was changed")
    expect(card.get_by_label("Queue name")).to_have_value("Typed, then refused")
    # Nothing is left looking busy: the card the request was for is usable again.
    expect(card).not_to_have_attribute("aria-busy", "true")

    # An error page from something between (a proxy, say) is never swapped into the card.
    page.route(
        re.compile(r".*/queue/$"),
        lambda route: route.fulfill(status=502, body="<h1>Bad Gateway</h1>"),
    )
    card.get_by_role("button", name="Save").click()
    expect(trouble).to_have_text("Something went wrong; nothing was lost. Try again.")
    expect(card.get_by_label("Queue name")).to_have_value("Typed, then refused")
    expect(page.get_by_text("Bad Gateway")).to_have_count(0)
    assert live_allo.sandbox.queue_of(chloe)["name"] == "Grands comptes Rhône-Alpes"
