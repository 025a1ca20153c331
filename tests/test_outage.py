"""Allo down, and back: the circuit breaker, the banner, the last answers shown with their age,
and shared reads that make many managers cost Allo what one does.

Everything runs on the sandbox's fake clock (``sandbox_clock``): cool-downs and the age of
answers pass with ``advance``, never by sleeping. Tests assert what managers see and what Allo
received, never how long anything took.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from dashboard.allo.client import AlloClient
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.seed import OWNER_NAME, email_for
from tests.helpers import HTMX, person, queue_url, text

pytestmark = pytest.mark.django_db

CHLOE = "Chloé Dubois-Maréchal"
USERS = "/v2/api/users"
QUEUE = "/v2/api/dialing-queues/current"
BANNER = "Allo is not answering; changes are paused."


def reads(sandbox: Sandbox, path: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.stats()["log"] if r["method"] == "GET" and r["path"] == path]


def save_button(response: Any) -> str:
    match = re.search(
        r'<button type="submit" class="button button--primary"[^>]*>', response.content.decode()
    )
    assert match, "no Save button"
    return match.group(0)


@pytest.fixture
def allo_down(manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock) -> Client:
    """The teammates page and Chloé's card were seen while Allo answered; three minutes later
    Allo answers nothing but 503, and the pages were opened again until the circuit opened."""
    chloe = person(sandbox, CHLOE)
    assert BANNER not in text(manager_client.get("/"))
    assert manager_client.get(queue_url(chloe), headers=HTMX).status_code == 200
    sandbox.set_faults(FaultSpec(status=503))
    sandbox_clock.advance(180)
    manager_client.get("/")  # the team list: three attempts, three failures
    manager_client.get(queue_url(chloe), headers=HTMX)  # two more: the circuit opens
    sandbox.clear_stats()
    return manager_client


def test_while_allo_is_down_the_last_team_list_is_shown_with_its_age_under_a_banner(
    allo_down: Client, sandbox: Sandbox
) -> None:
    response = allo_down.get("/")
    assert response.status_code == 200
    page = text(response)
    assert f"{BANNER} Showing what Allo said 3 minutes ago." in page
    assert re.search(
        r'<div class="alert alert--warning outage" role="status">', response.content.decode()
    )
    # The team, as Allo last listed it.
    assert CHLOE in page and "Jérôme d'Arbois" in page
    # The circuit is open: Allo was not asked.
    assert sandbox.stats()["log"] == []


def test_while_allo_is_down_a_queue_card_shows_its_last_settings_with_their_age_and_save_off(
    allo_down: Client, sandbox: Sandbox
) -> None:
    response = allo_down.get(queue_url(person(sandbox, CHLOE)), headers=HTMX)
    page = text(response)
    assert re.search(r"As of \S+ \S+ \(3 minutes ago\): Allo could not be asked again", page)
    assert "Grands comptes Rhône-Alpes" in page and "12 numbers" in page
    assert "Allo is not answering: changes are paused." in page
    assert " disabled " in save_button(response) + " "
    assert sandbox.stats()["log"] == []


def test_a_save_while_changes_are_paused_sends_nothing_and_says_so(
    allo_down: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {
        "name": "Pendant la panne",
        "voicemail_handling": "NO_SKIP",
        "do_not_disturb": "ENABLED",
        "seen_name": "Grands comptes Rhône-Alpes",
        "seen_voicemail_handling": "NO_SKIP",
        "seen_do_not_disturb": "ENABLED",
        "token": "0123456789abcdef0123456789abcdef",
    }
    response = allo_down.post(queue_url(chloe), data, headers=HTMX)
    page = text(response)
    assert "Allo is not answering; changes are paused, so nothing was changed." in page
    assert response.context["form"]["name"].value() == "Pendant la panne"
    assert sandbox.stats()["log"] == []
    assert sandbox.queue_of(chloe)["name"] == "Grands comptes Rhône-Alpes"


def test_every_page_carries_the_banner_during_the_cool_down(allo_down: Client) -> None:
    history = text(allo_down.get("/audit/"))
    assert BANNER in history
    # No answer of Allo's on this page: no age to tell.
    assert "Showing what Allo said" not in history


def test_the_dashboard_recovers_by_itself_when_allo_answers_again(
    allo_down: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    sandbox.set_faults(FaultSpec())
    # Still cooling down: nothing is asked, the banner stays.
    assert BANNER in text(allo_down.get("/"))
    assert sandbox.stats()["log"] == []
    sandbox_clock.advance(settings.ALLO_CIRCUIT_COOLDOWN)
    # The next page lets one request through, Allo answers: fresh answers, no banner.
    response = allo_down.get("/")
    assert BANNER not in text(response) and "Showing what Allo said" not in text(response)
    assert len(reads(sandbox, USERS)) == 1
    card = allo_down.get(queue_url(person(sandbox, CHLOE)), headers=HTMX)
    assert "As of" not in text(card)
    assert "disabled" not in save_button(card)


def test_a_body_that_is_not_json_on_a_read_shows_the_last_answer_instead_of_an_error(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    manager_client.get("/")
    sandbox.set_faults(FaultSpec(malformed=True, methods=["GET"]))
    sandbox_clock.advance(120)
    response = manager_client.get("/")
    assert response.status_code == 200
    page = text(response)
    assert f"{BANNER} Showing what Allo said 2 minutes ago." in page
    assert CHLOE in page


# Shared reads ---------------------------------------------------------------------------------


@pytest.fixture
def ten_managers(manager_client: Client) -> list[Client]:
    """Ten managers signed in at once (nine more accounts linked to the team's admin)."""
    browsers = [manager_client]
    for index in range(9):
        user = User.objects.create_user(
            username=f"manager{index}", password="x" * 20, email=email_for(OWNER_NAME)
        )
        browser = Client()
        browser.force_login(user)
        browsers.append(browser)
    return browsers


def test_ten_managers_watching_the_same_team_cost_allo_one_read(
    ten_managers: list[Client], sandbox: Sandbox, allo: AlloClient
) -> None:
    chloe = person(sandbox, CHLOE)
    for browser in ten_managers:
        assert CHLOE in text(browser.get("/"))
    for browser in ten_managers:
        assert "Grands comptes Rhône-Alpes" in text(browser.get(queue_url(chloe), headers=HTMX))
    assert len(reads(sandbox, USERS)) == 1
    assert len(reads(sandbox, QUEUE)) == 1


def test_a_shared_answer_is_asked_again_once_it_is_a_few_seconds_old(
    ten_managers: list[Client], sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    for browser in ten_managers[:5]:
        browser.get("/")
    sandbox_clock.advance(settings.ALLO_SNAPSHOT_SECONDS)
    for browser in ten_managers[5:]:
        response = browser.get("/")
        assert "Showing what Allo said" not in text(response)
    assert len(reads(sandbox, USERS)) == 2


def test_a_save_is_seen_at_once_by_the_next_manager_who_opens_the_queue(
    ten_managers: list[Client], sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    first, second = ten_managers[:2]
    opened = first.get(queue_url(chloe), headers=HTMX)
    second.get(queue_url(chloe), headers=HTMX)  # the answer is now shared
    form = opened.context["form"]
    data = {**{name: form.initial[name] for name in form.fields}, "voicemail_handling": "SKIP"}
    assert "Saved." in text(first.post(queue_url(chloe), data, headers=HTMX))
    # The shared answer was dropped by the save: the second manager sees Allo's new settings.
    again = second.get(queue_url(chloe), headers=HTMX)
    assert again.context["form"].initial["voicemail_handling"] == "SKIP"


def test_a_queue_saved_just_before_allo_went_down_is_shown_as_saved(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    chloe = person(sandbox, CHLOE)
    opened = manager_client.get(queue_url(chloe), headers=HTMX)
    form = opened.context["form"]
    data = {**{name: form.initial[name] for name in form.fields}, "voicemail_handling": "SKIP"}
    assert "Saved." in text(manager_client.post(queue_url(chloe), data, headers=HTMX))
    sandbox.set_faults(FaultSpec(status=503))
    sandbox_clock.advance(120)
    card = manager_client.get(queue_url(chloe), headers=HTMX)
    # What Allo returned for the save is what is shown while Allo is away.
    assert "(2 minutes ago): Allo could not be asked again" in text(card)
    assert card.context["form"].initial["voicemail_handling"] == "SKIP"
    assert "disabled" in save_button(card)
