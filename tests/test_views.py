"""The pages a manager uses, through Django's test client, with Allo played by the sandbox.

Each test asserts what the manager sees (status, fragment, words) and what Allo received (the
sandbox's request log, bodies included) or now holds (its queues).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from dashboard import services
from dashboard.allo.client import AlloClient, build_client, install_client
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.transport import sandbox_transport
from dashboard.templatetags.dashboard_tags import queue_dom_id
from tests.conftest import teammate_removed_from_allo
from tests.helpers import HTMX, person, queue_url, shown_form, text, text_of

CHLOE = "Chloé Dubois-Maréchal"  # 12 numbers, "Grands comptes Rhône-Alpes", NO_SKIP, ENABLED
JEROME = "Jérôme d'Arbois"  # 1,000 numbers, SKIP, ENABLED
ZOE = "Zoé O'Connor"  # a queue with no name and no numbers
ANAIS = "Anaïs Fontaine"  # no queue at all


# Helpers ----------------------------------------------------------------------------------------


def fault(sandbox: Sandbox, **spec: Any) -> None:
    """Switch on one of the sandbox's faults, as POST /_sandbox/faults would."""
    sandbox.set_faults(FaultSpec.from_json(spec))


def requests_to_allo(sandbox: Sandbox, method: str | None = None) -> list[dict[str, Any]]:
    log = sandbox.stats()["log"]
    return [row for row in log if method is None or row["method"] == method]


def forget_requests(sandbox: Sandbox) -> None:
    sandbox.traffic.clear()


def settings_of(sandbox: Sandbox, user_id: str) -> tuple[Any, Any, Any] | None:
    queue = sandbox.queue_of(user_id)
    if queue is None:
        return None
    return (queue["name"], queue["voicemail_handling"], queue["do_not_disturb"])


def every_queue(sandbox: Sandbox) -> dict[str, Any]:
    return {user["id"]: settings_of(sandbox, user["id"]) for user in sandbox.users}


def save(client: Client, sandbox: Sandbox, user_id: str, *, htmx: bool = True, **changes: str):
    """Open the teammate's card, change some fields, press Save; Allo's log starts empty."""
    data = {**shown_form(client, user_id), **changes}
    forget_requests(sandbox)
    return client.post(queue_url(user_id), data, headers=HTMX if htmx else {})


# Signing in -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/?role=MEMBER",
        "/teammates/usr-1/queue/",
        "/connection/",
        "/teammates/usr-1/queue/?page=2",
    ],
)
@pytest.mark.django_db
def test_every_page_sends_a_signed_out_visitor_to_the_login_page(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
def test_a_signed_out_save_is_sent_to_the_login_page_and_reaches_no_one(
    client: Client, allo: AlloClient, sandbox: Sandbox
) -> None:
    response = client.post(queue_url(person(sandbox, CHLOE)), {"name": "Sneaky"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert requests_to_allo(sandbox) == []


@pytest.mark.django_db
def test_a_signed_out_htmx_request_sends_the_whole_page_to_login_and_back_to_the_page(
    client: Client,
) -> None:
    response = client.get(
        "/teammates/usr-1/queue/",
        headers={**HTMX, "HX-Current-URL": "http://testserver/?role=MEMBER"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/%3Frole%3DMEMBER"
    assert b"password" not in response.content  # no login form inside the fragment


@pytest.mark.django_db
def test_a_signed_out_htmx_request_from_elsewhere_returns_to_the_teammates_page(
    client: Client,
) -> None:
    response = client.post(
        "/teammates/usr-1/queue/",
        headers={**HTMX, "HX-Current-URL": "https://evil.example/phish"},
    )
    assert response["HX-Redirect"] == "/accounts/login/?next=/"


@pytest.mark.django_db
def test_a_manager_signs_in_and_lands_on_the_page_asked_for(
    client: Client, manager: User, allo: AlloClient
) -> None:
    page = client.get("/accounts/login/?next=/connection/")
    assert page.status_code == 200
    assert b'name="password"' in page.content
    response = client.post(
        "/accounts/login/",
        {"username": "manager", "password": "correct horse battery", "next": "/connection/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/connection/"
    assert client.get("/connection/").status_code == 200


@pytest.mark.django_db
def test_a_wrong_password_is_refused_in_words(client: Client, manager: User) -> None:
    response = client.post("/accounts/login/", {"username": "manager", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in text(response)


# The teammates page -----------------------------------------------------------------------------


def test_the_teammates_page_lists_the_active_team_with_a_queue_loading_for_each(
    manager_client: Client, sandbox: Sandbox
) -> None:
    response = manager_client.get("/")
    assert response.status_code == 200
    page = text(response)
    for user in sandbox.users:
        assert (user["name"] in page) == (user["status"] == "ACTIVE")
    chloe = sandbox.user_named(CHLOE)
    assert chloe["email"] in page
    html = response.content.decode()
    assert f'id="{queue_dom_id(chloe["id"])}-row"' in html
    assert f'hx-get="{queue_url(chloe["id"])}"' in html  # "Edit queue" opens the card in place
    assert f'href="{queue_url(chloe["id"])}"' in html  # the same queue without JavaScript
    # The counts and the overview load by themselves afterwards, in batches.
    assert re.search(r'hx-get="/team/overview/\?since=[\d.]+&amp;batch=1"', html)
    # One read: the queues load by themselves afterwards.
    assert [(r["method"], r["path"]) for r in requests_to_allo(sandbox)] == [
        ("GET", "/v2/api/users")
    ]


def test_a_teammate_is_shown_with_their_photo_or_their_initials_role_and_status(
    manager_client: Client, sandbox: Sandbox
) -> None:
    html = manager_client.get("/").content.decode()
    with_photo = next(u for u in sandbox.users if u["image_url"] and u["status"] == "ACTIVE")
    assert f'src="{with_photo["image_url"].replace("&", "&amp;")}"' in html
    # Maël Le Goff has no photo: his initials stand in.
    assert re.search(r"avatar--initials[^>]*>MG</span>", html)
    assert "Manager" in html and "Member" in html and "Active" in html


def test_blocked_teammates_are_hidden_until_asked_for(
    manager_client: Client, sandbox: Sandbox
) -> None:
    blocked = [u["name"] for u in sandbox.users if u["status"] == "BLOCKED"]
    assert blocked
    only_blocked = text(manager_client.get("/?status=BLOCKED"))
    everyone = text(manager_client.get("/?status=all"))
    for user in sandbox.users:
        assert (user["name"] in only_blocked) == (user["name"] in blocked)
        assert user["name"] in everyone
    queries = [r["query"] for r in requests_to_allo(sandbox)]
    assert {"status": "BLOCKED"} in queries and {"status": "ACTIVE"} in queries


def test_a_bad_filter_value_drops_only_that_filter(manager_client: Client) -> None:
    page = text(manager_client.get("/?q=chloe&status=bogus"))
    assert CHLOE in page and "1 teammate" in page
    assert JEROME not in page


def test_the_role_filter_is_asked_of_allo(manager_client: Client, sandbox: Sandbox) -> None:
    page = text(manager_client.get("/?role=MANAGER"))
    assert ZOE in page and ANAIS in page
    assert CHLOE not in page
    assert requests_to_allo(sandbox)[-1]["query"] == {"role": "MANAGER", "status": "ACTIVE"}


@pytest.mark.parametrize("query", ["chloe", "CHLOÉ", "dubois-mar", "chloe.dubois"])
def test_search_finds_a_teammate_by_name_or_email_ignoring_case_and_accents(
    manager_client: Client, query: str
) -> None:
    page = text(manager_client.get("/", {"q": query}))
    assert CHLOE in page
    assert JEROME not in page
    assert "1 teammate" in page


def test_a_search_matching_no_one_says_so(manager_client: Client) -> None:
    assert "No teammate matches these filters." in text(manager_client.get("/?q=zzzz"))


def test_filtering_with_htmx_returns_only_the_list(manager_client: Client) -> None:
    response = manager_client.get("/?role=MANAGER", headers={**HTMX, "HX-Target": "teammate-list"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="teammate-list"')
    assert "<html" not in html and ZOE in text(response)
    assert "HX-Request" in response["Vary"]


def test_an_unknown_filter_value_falls_back_to_allos_default(
    manager_client: Client, sandbox: Sandbox
) -> None:
    assert manager_client.get("/?status=DELETED&role=CEO").status_code == 200
    assert requests_to_allo(sandbox)[-1]["query"] == {"status": "ACTIVE"}


def test_the_teammates_page_says_when_allo_cannot_be_reached(
    manager_client: Client, sandbox: Sandbox
) -> None:
    fault(sandbox, status=503)
    response = manager_client.get("/")
    assert response.status_code == 200
    assert "The team could not be loaded. Allo could not be reached." in text(response)


# A teammate's queue -----------------------------------------------------------------------------


def test_the_queue_page_shows_the_teammate_settings_summary_and_numbers(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    response = manager_client.get(queue_url(chloe))
    assert response.status_code == 200
    page = text(response)
    assert "Chloé Dubois-Maréchal's dialer queue" in page
    assert "Grands comptes Rhône-Alpes" in page
    assert "12 numbers" in page and "last call" in page
    # Settings in words, the current ones chosen.
    form = response.context["form"]
    assert form.initial["voicemail_handling"] == "NO_SKIP"
    assert form.initial["do_not_disturb"] == "ENABLED"
    assert "Stay on the call when a voicemail answers" in page
    assert "Silence incoming calls while dialing" in page
    assert "DO_NOT_DISTURB" not in page
    # The summary and the numbers, in order, numbered from 1.
    queue = sandbox.queue_of(chloe)
    assert "Not yet called 8" in page  # 4 of 12 called
    first = queue["numbers"][0]
    assert first["number_to"] in page
    assert 'title="Position 0 in Allo">1<' in response.content.decode()


def test_the_queue_fragment_is_the_card_alone(manager_client: Client, sandbox: Sandbox) -> None:
    chloe = person(sandbox, CHLOE)
    response = manager_client.get(queue_url(chloe), headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<section id="{queue_dom_id(chloe)}"')
    assert "<html" not in html
    assert "Grands comptes Rhône-Alpes" in html
    # A card on the teammates page does not spend a read on the name shown above it.
    assert [r["path"] for r in requests_to_allo(sandbox)] == ["/v2/api/dialing-queues/current"]


def test_every_routing_result_is_shown_in_words(manager_client: Client, sandbox: Sandbox) -> None:
    page = text(manager_client.get(queue_url(person(sandbox, "Théo Garnier")), {"page": 1}))
    for words in ("Answered", "Voicemail", "Line busy", "Not reached", "Call blocked", "Synced"):
        assert words in page
    assert "TRANSFERRED_BLAND" not in page and "RING_TIMEOUT" not in page


def test_a_routing_result_allo_added_tomorrow_is_shown_as_it_came(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    allo_http.put(
        f"/_sandbox/queues/{chloe}",
        json={
            "voicemail_handling": "SMART_SKIP",
            "numbers": [
                {
                    "number": "+33612345678",
                    "routing_result": "TRANSFERRED_TO_ROBOT",
                    "call_start_date": "2026-05-04T09:00:00Z",
                    "sync_status": "ARCHIVED",
                }
            ],
        },
    ).raise_for_status()
    response = manager_client.get(queue_url(chloe))
    assert response.status_code == 200
    page = text(response)
    assert "TRANSFERRED_TO_ROBOT" in page and "ARCHIVED" in page
    # The unknown setting stays chosen, so saving something else leaves it alone.
    assert 'value="SMART_SKIP"' in response.content.decode()
    assert response.context["form"].initial["voicemail_handling"] == "SMART_SKIP"


def test_a_large_queue_is_paged_and_the_next_page_costs_one_read(
    manager_client: Client, sandbox: Sandbox
) -> None:
    jerome = person(sandbox, JEROME)
    page = text(manager_client.get(queue_url(jerome)))
    assert "1,000 numbers" in page and "Page 1 of 40" in page
    forget_requests(sandbox)
    response = manager_client.get(
        queue_url(jerome),
        {"page": 2},
        headers={**HTMX, "HX-Target": f"{queue_dom_id(jerome)}-numbers"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div id="{queue_dom_id(jerome)}-numbers"')
    assert 'title="Position 25 in Allo">26<' in html
    assert "Page 2 of 40" in text(response)
    reads = requests_to_allo(sandbox)
    assert len(reads) == 1
    assert reads[0]["query"]["page"] == "2" and reads[0]["query"]["size"] == "25"


def test_a_page_past_the_end_shows_the_last_page(manager_client: Client, sandbox: Sandbox) -> None:
    response = manager_client.get(queue_url(person(sandbox, "Léa Moreau")), {"page": 99})
    assert "137 numbers" in text(response) and "Page 6 of 6" in text(response)
    assert 'title="Position 136 in Allo">137<' in response.content.decode()


def numbers_request(client: Client, user_id: str, page: int, *, on: str) -> Any:
    """The pager's htmx request for another page of numbers, from the page at ``on``."""
    return client.get(
        queue_url(user_id),
        {"page": page},
        headers={
            **HTMX,
            "HX-Target": f"{queue_dom_id(user_id)}-numbers",
            "HX-Current-URL": f"http://testserver{on}",
        },
    )


def test_the_queue_page_keeps_its_page_of_numbers_in_the_address(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, "Léa Moreau")
    response = manager_client.get(queue_url(lea), {"page": 3})
    html = response.content.decode()
    assert "Page 3 of 6" in text(response)
    # First and last, besides previous and next; each puts its page in the address.
    for label, number in (("« First", 1), ("← Previous", 2), ("Next →", 4), ("Last »", 6)):
        link = re.search(rf'<a id="[^"]+"[^>]*page={number}"[^>]*>{re.escape(label)}<', html, re.S)
        assert link, label
        assert 'hx-push-url="true"' in link.group(0)
    paged = numbers_request(manager_client, lea, 6, on=queue_url(lea))
    assert "Page 6 of 6" in text(paged) and 'hx-push-url="true"' in paged.content.decode()


def test_paging_on_the_teammates_page_leaves_the_address_alone(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, "Léa Moreau")
    card = manager_client.get(
        queue_url(lea), headers={**HTMX, "HX-Current-URL": "http://testserver/"}
    )
    assert "Next →" in text(card) and "hx-push-url" not in card.content.decode()
    paged = numbers_request(manager_client, lea, 2, on="/")
    assert "Page 2 of 6" in text(paged) and "hx-push-url" not in paged.content.decode()


def test_paging_a_queue_deleted_in_allo_shows_the_card_without_a_queue(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, "Léa Moreau")
    sandbox.world.current.pop(lea)
    response = numbers_request(manager_client, lea, 2, on="/")
    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#{queue_dom_id(lea)}"
    page = text(response)
    assert "No queue yet. Saving these settings creates one." in page
    # A usable form (Allo's defaults), not an empty one.
    assert response.context["form"].initial["voicemail_handling"] == "NO_SKIP"
    assert "Queue name" in page and "Save" in page


def test_allo_failing_while_paging_is_said_in_the_table_only(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, "Léa Moreau")
    fault(sandbox, status=503, methods=["GET"])
    response = numbers_request(manager_client, lea, 2, on="/")
    fault(sandbox)
    assert response.status_code == 200
    # Swapped where the table was: the form above, with what is typed in it, stays.
    assert "HX-Retarget" not in response
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div id="{queue_dom_id(lea)}-numbers"')
    assert "This page of numbers could not be read. Allo could not be reached." in text(response)
    retry = re.search(r'<a id="[^"]+-retry"[^>]*>', html)
    assert retry and "page=2" in retry.group(0) and "hx-get=" in retry.group(0)
    assert "<form" not in html
    # Trying again brings the page.
    assert "Page 2 of 6" in text(numbers_request(manager_client, lea, 2, on="/"))


def test_a_queue_without_a_name_says_untitled_and_leaves_the_name_empty(
    manager_client: Client, sandbox: Sandbox
) -> None:
    response = manager_client.get(queue_url(person(sandbox, ZOE)))
    page = text(response)
    assert "Untitled queue" in page and "0 numbers" in page
    assert response.context["form"].initial["name"] == ""


def test_a_teammate_without_a_queue_is_told_saving_creates_one(
    manager_client: Client, sandbox: Sandbox
) -> None:
    anais = person(sandbox, ANAIS)
    response = manager_client.get(queue_url(anais))
    assert "No queue yet for Anaïs Fontaine. Saving these settings creates one." in text(response)
    initial = response.context["form"].initial
    assert (initial["name"], initial["voicemail_handling"], initial["do_not_disturb"]) == (
        "",
        "NO_SKIP",
        "DISABLED",
    )
    response = save(manager_client, sandbox, anais, name="Premiers appels")
    assert "Saved." in text(response)
    assert settings_of(sandbox, anais) == ("Premiers appels", "NO_SKIP", "DISABLED")


def test_a_teammate_not_on_the_team_gets_a_friendly_not_found_page(
    manager_client: Client, sandbox: Sandbox
) -> None:
    # Removed from Allo since the team list was cached: Allo itself answers that it is not found.
    response = manager_client.get(queue_url(teammate_removed_from_allo(sandbox, ANAIS)))
    assert response.status_code == 404
    assert "No teammate with this id is on your team." in text(response)


def test_a_teammate_not_on_the_team_gets_a_friendly_card(
    manager_client: Client, sandbox: Sandbox
) -> None:
    gone = teammate_removed_from_allo(sandbox, ANAIS)
    response = manager_client.get(queue_url(gone), headers=HTMX)
    # 200 so that htmx swaps it into the card.
    assert response.status_code == 200
    assert "No teammate with this id is on your team." in text(response)


def test_a_queue_that_fails_to_load_says_so_in_its_own_card(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    # Failing every attempt: the client retries a read that failed.
    fault(sandbox, status=500)
    response = manager_client.get(queue_url(chloe), headers=HTMX)
    fault(sandbox)
    assert response.status_code == 200
    assert f'id="{queue_dom_id(chloe)}"' in response.content.decode()
    assert "Allo could not be reached. Try again in a moment." in text(response)
    assert "Try again" in text(response)
    # The next teammate's card is not affected.
    assert "Grands comptes" not in text(response)
    assert "Base prospects" in text(
        manager_client.get(queue_url(person(sandbox, JEROME)), headers=HTMX)
    )


def test_a_card_allo_is_too_busy_for_tries_again_by_itself(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    # Allo answers 429 to every attempt (a single 429 is waited out: tests/test_resilience.py).
    fault(sandbox, status=429)
    response = manager_client.get(queue_url(person(sandbox, CHLOE)), headers=HTMX)
    assert "Allo is busy right now; try again in 1 second." in text(response)
    assert re.search(r'hx-trigger="load delay:\d+ms"', response.content.decode())
    fault(sandbox)
    sandbox_clock.advance(1)
    assert "Grands comptes" in text(
        manager_client.get(queue_url(person(sandbox, CHLOE)), headers=HTMX)
    )


def test_a_queue_read_that_comes_back_for_someone_else_is_not_shown(
    manager_client: Client, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    # An Allo that ignores the teammate fields answers with the key owner's own queue.
    sandbox.teammate_field = "none"
    with caplog.at_level(logging.ERROR, logger="dashboard.failures"):
        response = manager_client.get(queue_url(person(sandbox, CHLOE)))
    assert response.status_code == 200
    page = text(response)
    assert "Allo answered with a different person's queue (Camille Lefèvre)" in page
    assert "Relances salon Batimat" not in page
    assert "Grands comptes" not in page
    assert any(r.levelno == logging.ERROR for r in caplog.records)


# Saving -----------------------------------------------------------------------------------------


def test_an_htmx_save_sends_only_the_changed_setting_and_shows_what_allo_returned(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    before = every_queue(sandbox)
    response = save(manager_client, sandbox, chloe, voicemail_handling="SKIP")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<section id="{queue_dom_id(chloe)}"')
    assert "Saved. Allo confirmed the queue's new settings" in text(response)
    assert 'role="status"' in html
    assert response.context["form"].initial["voicemail_handling"] == "SKIP"
    assert "12 numbers" in text(response)  # the numbers Allo returned, re-rendered
    # Allo was asked for the queue's settings afresh (one number's worth), then received one
    # PATCH naming the teammate, with only the changed field.
    (read, patch) = requests_to_allo(sandbox)
    assert (read["method"], read["query"]["size"]) == ("GET", "1")
    assert patch["method"] == "PATCH"
    assert patch["body"] == {"voicemail_handling": "SKIP", "user_id": chloe, "user_pid": chloe}
    # Her queue changed, and nobody else's.
    after = every_queue(sandbox)
    assert after[chloe] == ("Grands comptes Rhône-Alpes", "SKIP", "ENABLED")
    assert {k: v for k, v in after.items() if k != chloe} == {
        k: v for k, v in before.items() if k != chloe
    }


def test_a_save_of_every_setting_sends_each(manager_client: Client, sandbox: Sandbox) -> None:
    chloe = person(sandbox, CHLOE)
    save(
        manager_client,
        sandbox,
        chloe,
        name="Comptes clés",
        voicemail_handling="SKIP",
        do_not_disturb="DISABLED",
    )
    (patch,) = requests_to_allo(sandbox, "PATCH")
    assert patch["body"] == {
        "name": "Comptes clés",
        "voicemail_handling": "SKIP",
        "do_not_disturb": "DISABLED",
        "user_id": chloe,
        "user_pid": chloe,
    }


def test_a_plain_post_saves_then_redirects_to_the_queue_page_with_a_message(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    response = save(manager_client, sandbox, chloe, htmx=False, do_not_disturb="DISABLED")
    assert response.status_code == 302
    assert response["Location"] == queue_url(chloe)
    assert settings_of(sandbox, chloe) == ("Grands comptes Rhône-Alpes", "NO_SKIP", "DISABLED")
    page = manager_client.get(response["Location"])
    assert "Saved. Allo confirmed the queue's new settings." in text(page)
    assert page.context["form"].initial["do_not_disturb"] == "DISABLED"


def test_saving_with_nothing_changed_sends_nothing_to_allo(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    response = save(manager_client, sandbox, chloe)
    assert response.status_code == 200
    assert "Nothing to save" in text(response)
    assert response["HX-Retarget"] == f"#{queue_dom_id(chloe)}-form"
    assert response["HX-Reswap"] == "outerHTML"
    # Judged against Allo, read afresh: one read of its settings, no change sent.
    assert [row["method"] for row in requests_to_allo(sandbox)] == ["GET"]


def test_a_plain_post_with_nothing_changed_sends_no_change(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    response = save(manager_client, sandbox, chloe, htmx=False)
    assert response.status_code == 302
    assert requests_to_allo(sandbox, "PATCH") == []
    assert "Nothing to save" in text(manager_client.get(response["Location"]))


def test_an_untouched_unknown_setting_is_not_sent_back(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    allo_http.put(f"/_sandbox/queues/{chloe}", json={"voicemail_handling": "SMART_SKIP"})
    save(manager_client, sandbox, chloe, name="Renamed")
    (patch,) = requests_to_allo(sandbox, "PATCH")
    assert patch["body"] == {"name": "Renamed", "user_id": chloe, "user_pid": chloe}


# Errors while saving ------------------------------------------------------------------------------


def assert_kept(response: Any, **typed: str) -> None:
    """The form came back with what the manager typed."""
    form = response.context["form"]
    for key, value in typed.items():
        assert form[key].value() == value, key


def assert_form_swapped(response: Any, user_id: str) -> None:
    """htmx swaps only the form, so the numbers table stays."""
    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#{queue_dom_id(user_id)}-form"
    assert response.content.decode().lstrip().startswith(f'<form id="{queue_dom_id(user_id)}-form"')


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": "x" * 256}, "name", "at most 255 characters"),
        ({"name": ""}, "name", "A queue's name cannot be removed in Allo."),
        ({"name": "   "}, "name", "A queue's name cannot be removed in Allo."),
        ({"voicemail_handling": "SOMETIMES"}, "voicemail_handling", "Select a valid choice."),
        ({"do_not_disturb": ""}, "do_not_disturb", "This field is required."),
    ],
)
def test_a_value_allo_would_refuse_is_caught_here_and_nothing_is_sent(
    manager_client: Client,
    sandbox: Sandbox,
    changes: dict[str, str],
    field: str,
    words: str,
) -> None:
    chloe = person(sandbox, CHLOE)
    response = save(manager_client, sandbox, chloe, **{"voicemail_handling": "SKIP", **changes})
    assert_form_swapped(response, chloe)
    assert words in " ".join(response.context["form"].errors[field])
    assert words in text(response)
    assert requests_to_allo(sandbox) == []
    if field != "voicemail_handling":
        assert_kept(response, voicemail_handling="SKIP")


def test_a_plain_post_with_a_bad_value_shows_the_whole_page_with_the_typed_values(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    response = save(
        manager_client, sandbox, chloe, htmx=False, name="y" * 300, do_not_disturb="DISABLED"
    )
    assert response.status_code == 200
    assert "<html" in response.content.decode()
    assert "at most 255 characters" in text(response)
    assert_kept(response, name="y" * 300, do_not_disturb="DISABLED")
    assert "12 numbers" in text(response)
    assert requests_to_allo(sandbox, "PATCH") == []


def test_allos_refusal_is_shown_on_the_field_it_names(
    manager_client: Client, sandbox: Sandbox
) -> None:
    """Allo's 400 naming ``name``; the sandbox has no fault that names a field, so a transport
    in front of it answers the PATCH with Allo's documented envelope."""

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
                    "message": "name contains characters Allo does not allow.",
                    "param": "name",
                    "request_id": "req_refused_1",
                }
            },
        )

    client = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=httpx.MockTransport(refuse_patches),
    )
    previous = install_client(client)
    try:
        chloe = person(sandbox, CHLOE)
        response = save(manager_client, sandbox, chloe, name="Comptes 🔑")
    finally:
        install_client(previous)
    assert_form_swapped(response, chloe)
    # Our words on the field; Allo's own English only folded away beneath.
    assert response.context["form"].errors["name"] == ["Allo does not accept this name."]
    assert "What Allo said name contains characters Allo does not allow." in text(response)
    assert "<details" in response.content.decode()
    assert_kept(response, name="Comptes 🔑")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"status": 401}, "The dashboard's Allo API key was refused. An administrator needs"),
        ({"status": 429}, "Allo is busy right now; try again in 1 second."),
        # Allo answered a failure: the queue is read again, which shows it was not applied.
        ({"status": 503}, "Not saved: Allo failed before applying this change"),
        ({"malformed": True}, "Not saved: Allo failed before applying this change"),
        # No answer at all: the change may still be applied; a read proves nothing.
        ({"hang": True}, "Allo did not confirm the change; it may or may not have been applied"),
    ],
)
def test_an_allo_failure_on_save_is_explained_and_the_typed_values_kept(
    manager_client: Client, sandbox: Sandbox, spec: dict[str, Any], words: str
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {
        **shown_form(manager_client, chloe),
        "name": "Comptes clés",
        "voicemail_handling": "SKIP",
    }
    fault(sandbox, methods=["PATCH"], **spec)
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert_form_swapped(response, chloe)
    assert words in text(response)
    assert "Saved" not in text(response)
    assert_kept(response, name="Comptes clés", voicemail_handling="SKIP")
    # The fault stood in for Allo's answer: her queue is as it was.
    assert settings_of(sandbox, chloe) == ("Grands comptes Rhône-Alpes", "NO_SKIP", "ENABLED")


def test_a_change_allo_applied_but_did_not_confirm_is_read_again_and_called_saved(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    fault(sandbox, methods=["PATCH"], apply_then_fail=True)
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    page = text(response)
    assert "Saved. Allo's answer was lost, so the dashboard read the queue again" in page
    assert "nothing was changed" not in page
    assert settings_of(sandbox, chloe)[1] == "SKIP"  # it was, in fact, applied
    assert [row["status"] for row in requests_to_allo(sandbox, "PATCH")] == [500]


def test_a_refused_connection_says_nothing_was_changed(
    manager_client: Client, sandbox: Sandbox, unreachable_allo: AlloClient
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {
        "name": "Comptes clés",
        "voicemail_handling": "SKIP",
        "do_not_disturb": "ENABLED",
        "seen_name": "Grands comptes Rhône-Alpes",
        "seen_voicemail_handling": "NO_SKIP",
        "seen_do_not_disturb": "ENABLED",
    }
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert_form_swapped(response, chloe)
    assert "Allo could not be reached, so nothing was changed. Try again in a moment." in text(
        response
    )
    assert_kept(response, name="Comptes clés", voicemail_handling="SKIP")


def test_a_key_without_the_queue_permission_names_it(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    sandbox.scopes = ["USERS_READ"]
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert "lacks the DIALING_QUEUE_READ_WRITE permission" in text(response)
    assert "An administrator needs to add it" in text(response)


def test_a_missing_permission_in_allos_older_error_shape_is_named_too(
    manager_client: Client, sandbox: Sandbox
) -> None:
    sandbox.scope_error_shape = "v1"
    sandbox.scopes = ["USERS_READ"]
    response = manager_client.get(queue_url(person(sandbox, CHLOE)), headers=HTMX)
    assert "lacks the DIALING_QUEUE_READ_WRITE permission" in text(response)


def test_saving_for_someone_no_longer_on_the_team_says_so_and_keeps_the_values(
    manager_client: Client, sandbox: Sandbox
) -> None:
    data = {
        "name": "Leur liste",
        "voicemail_handling": "SKIP",
        "do_not_disturb": "ENABLED",
        "seen_name": "",
        "seen_voicemail_handling": "NO_SKIP",
        "seen_do_not_disturb": "DISABLED",
    }
    gone = teammate_removed_from_allo(sandbox, ANAIS)
    response = manager_client.post(queue_url(gone), data, headers=HTMX)
    assert "No teammate with this id is on your team." in text(response)
    assert_kept(response, name="Leur liste")
    # Allo's 404 came back to the read before writing: no PATCH left.
    assert [(r["method"], r["status"]) for r in requests_to_allo(sandbox)] == [("GET", 404)]


def test_saves_past_allos_five_a_second_wait_their_turn_and_allo_never_says_429(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = shown_form(manager_client, chloe)
    for index in range(7):
        name = f"Essai {index}"
        response = manager_client.post(queue_url(chloe), {**data, "name": name}, headers=HTMX)
        assert "Saved." in text(response)
        # The form drawn again after the save: what Allo has, and a new one-time token.
        data = {key: response.context["form"].initial[key] for key in data}
    assert settings_of(sandbox, chloe)[0] == "Essai 6"
    assert 429 not in {row["status"] for row in requests_to_allo(sandbox)}


def test_a_save_allo_keeps_refusing_with_429_says_when_to_retry(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = shown_form(manager_client, chloe)
    fault(sandbox, status=429, methods=["PATCH"])  # every attempt, after every wait
    response = manager_client.post(queue_url(chloe), {**data, "name": "Encore"}, headers=HTMX)
    assert "Allo is busy right now; try again in 1 second." in text(response)
    assert_kept(response, name="Encore")
    assert settings_of(sandbox, chloe)[0] == "Grands comptes Rhône-Alpes"


def test_a_save_that_lands_on_someone_elses_queue_is_loud_and_never_saved(
    manager_client: Client, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    # Allo ignores the teammate fields of a PATCH (reads honour them): the owner's queue moves.
    sandbox.teammate_field_by_method = {"PATCH": "none"}
    with caplog.at_level(logging.ERROR, logger="dashboard.failures"):
        response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert_form_swapped(response, chloe)
    page = text(response)
    assert (
        "Allo applied this to a different person's queue (Camille Lefèvre)! Nothing was saved "
        "for Chloé Dubois-Maréchal. Tell an administrator." in page
    )
    assert "Saved." not in page
    assert 'class="alert alert--alarm" role="alert"' in response.content.decode()
    assert settings_of(sandbox, chloe)[1] == "NO_SKIP"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "request_id" in errors[0].getMessage()


@pytest.mark.parametrize(
    "spec",
    [{"status": 500}, {"status": 502}, {"hang": True}, {"malformed": True}, {"status": 429}],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_no_allo_failure_ever_makes_a_server_error_page(
    manager_client: Client, sandbox: Sandbox, spec: dict[str, Any], htmx: bool
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    fault(sandbox, **spec)
    headers = HTMX if htmx else {}
    for response in (
        manager_client.get("/", headers=headers),
        manager_client.get(queue_url(chloe), headers=headers),
        manager_client.post(queue_url(chloe), data, headers=headers),
        manager_client.get("/connection/", headers=headers),
    ):
        assert response.status_code == 200
        assert "Allo" in text(response)


# The connection page ----------------------------------------------------------------------------


def test_the_connection_page_says_what_allo_knows_of_the_key_but_never_the_key(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    me = allo_http.get("/v2/api/me").json()["data"]
    response = manager_client.get("/connection/")
    page = text(response)
    assert "http://allo.test" in page
    assert me["team"]["name"] in page and me["api_key_id"] in page
    assert "USERS_READ" in page and "DIALING_QUEUE_READ_WRITE" in page
    assert "20 reads and 5 writes per second" in page
    assert "/v2/api/dialing-queues/current" in page
    assert "lacks the" not in page
    assert sandbox.api_key not in response.content.decode()


def test_the_connection_page_warns_of_each_missing_permission(
    manager_client: Client, sandbox: Sandbox
) -> None:
    sandbox.scopes = []
    response = manager_client.get("/connection/")
    page = text(response)
    # Each permission in words, its code beside them for administrators.
    assert "The API key lacks the permission “See the teammates:" in page
    assert "The API key lacks the permission “See and change the teammates' Power" in page
    html = response.content.decode()
    assert "(<code>USERS_READ</code>)" in html
    assert "(<code>DIALING_QUEUE_READ_WRITE</code>)" in html
    assert "no queue can be read or changed" in page


def test_the_connection_page_explains_a_refused_key(
    manager_client: Client, sandbox: Sandbox
) -> None:
    fault(sandbox, status=401)
    response = manager_client.get("/connection/")
    assert response.status_code == 200
    assert "The dashboard's Allo API key was refused." in text(response)


# Fixtures ---------------------------------------------------------------------------------------


def test_allos_older_unpaged_queue_shape_shows_the_same_card(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, "Léa Moreau")
    paged = text(manager_client.get(queue_url(lea), {"page": 2}))
    sandbox.get_shape = "legacy"
    legacy = text(manager_client.get(queue_url(lea), {"page": 2}))
    assert legacy == paged
    assert "137 numbers" in legacy and "Page 2 of 6" in legacy


def test_pages_carry_no_inline_script_or_style_for_the_csp(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    for response in (
        manager_client.get("/"),
        manager_client.get(queue_url(chloe)),
        manager_client.get(queue_url(chloe), headers=HTMX),
        manager_client.get("/connection/"),
    ):
        html = response.content.decode()
        assert " style=" not in html and "<style" not in html
        assert " hx-on" not in html
        for script in re.findall(r"<script[^>]*>", html):
            assert 'src="/static/' in script and "nonce=" in script
    assert "script-src 'self' 'nonce-" in response["Content-Security-Policy"]


# Live routing results ----------------------------------------------------------------------------

LEA = "Léa Moreau"  # 137 numbers, a rep dialing them
THEO = "Théo Garnier"  # 45 numbers, every one called a day ago


def live_url(html: str) -> str:
    """The URL a queue on screen refreshes itself from (its live status's hx-get)."""
    match = re.search(r'<div id="[^"]+-live"[^>]*\shx-get="([^"]+)"', html)
    assert match, "the queue does not refresh itself"
    return match.group(1).replace("&amp;", "&")


def card_html(client: Client, user_id: str) -> str:
    response = client.get(queue_url(user_id), headers=HTMX)
    assert response.status_code == 200
    return response.content.decode()


def queue_reads(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in requests_to_allo(sandbox) if r["path"] == "/v2/api/dialing-queues/current"]


def left_to_call(sandbox: Sandbox, user_id: str) -> int:
    queue = sandbox.queue_of(user_id)
    return sum(1 for n in queue["numbers"] if n["call_start_date"] is None) if queue else 0


def test_a_queue_being_dialed_refreshes_itself_every_few_seconds(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, LEA)
    html = card_html(manager_client, lea)
    assert 'hx-trigger="every 4s, live:resume"' in html and "data-live-poll" in html
    url = live_url(html)
    assert url.startswith(reverse("dashboard:queue_live", args=[lea]) + "?seen=")
    assert "idle=0" in url
    assert "Live: refreshes every 4 seconds while this queue is on screen." in text_of(html)


def test_a_refresh_that_finds_nothing_new_swaps_only_its_own_status(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    lea = person(sandbox, LEA)
    url = live_url(card_html(manager_client, lea))
    forget_requests(sandbox)
    sandbox_clock.advance(services.LIVE_POLL_SECONDS)
    response = manager_client.get(url, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div id="{queue_dom_id(lea)}-live"')
    assert "hx-swap-oob" not in html and "<form" not in html
    assert "idle=1" in live_url(html)
    # One full read of her 137 numbers: two reads of 100.
    assert len(queue_reads(sandbox)) == 2


def test_a_refresh_after_a_call_brings_the_new_results_but_never_touches_the_form(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    lea = person(sandbox, LEA)
    dom = queue_dom_id(lea)
    url = live_url(card_html(manager_client, lea))
    sandbox.dial_step()  # the call in progress ends, the next number rings
    sandbox_clock.advance(services.LIVE_POLL_SECONDS)
    response = manager_client.get(url, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    for part in ("summary", "numbers", "meta"):
        assert re.search(rf'id="{dom}-{part}"[^>]*hx-swap-oob="true"', html), part
    assert f"{left_to_call(sandbox, lea)} left to call" in text(response)
    # What the manager may be typing is never replaced.
    assert "<form" not in html and 'name="name"' not in html
    again = live_url(html)
    assert "idle=0" in again and again != url


def test_refreshing_stops_once_nothing_changed_for_a_while(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, LEA)
    url = live_url(card_html(manager_client, lea)).replace(
        "idle=0", f"idle={services.LIVE_IDLE_POLLS - 1}"
    )
    response = manager_client.get(url, headers=HTMX)
    assert response.status_code == 286  # htmx stops polling
    html = response.content.decode()
    assert "Live updates paused: nothing changed for a while." in text(response)
    assert "data-live-poll" not in html
    # A button starts it again, from zero.
    assert re.search(r'<button[^>]*hx-get="[^"]*idle=0"[^>]*>Resume live updates', html)


def test_a_queue_whose_every_number_was_called_does_not_refresh(
    manager_client: Client, sandbox: Sandbox
) -> None:
    theo = person(sandbox, THEO)
    html = card_html(manager_client, theo)
    assert "Every number has been called: the results are final." in text_of(html)
    assert "data-live-poll" not in html
    response = manager_client.get(
        reverse("dashboard:queue_live", args=[theo]), {"seen": "old", "idle": "0"}, headers=HTMX
    )
    assert response.status_code == 286


def test_a_queue_nobody_is_dialing_refreshes_only_when_asked(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    html = card_html(manager_client, chloe)
    assert "Nobody is dialing this queue right now." in text_of(html)
    assert "data-live-poll" not in html
    button = re.search(r'<button[^>]*hx-get="([^"]+)"[^>]*>Watch for changes', html)
    assert button
    response = manager_client.get(button.group(1).replace("&amp;", "&"), headers=HTMX)
    assert response.status_code == 200
    assert "data-live-poll" in response.content.decode()


def test_a_big_queue_refreshes_less_often_so_it_never_costs_more_than_half_a_read_a_second(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    jerome = person(sandbox, JEROME)
    html = card_html(manager_client, jerome)
    # 1,000 numbers: 10 reads a refresh, so one refresh every 20 seconds.
    assert 'hx-trigger="every 20s, live:resume"' in html
    forget_requests(sandbox)
    sandbox_clock.advance(20)
    manager_client.get(live_url(html), headers=HTMX)
    assert len(queue_reads(sandbox)) == 10


def test_a_refresh_redraws_the_page_of_numbers_being_looked_at(
    manager_client: Client, sandbox: Sandbox
) -> None:
    jerome = person(sandbox, JEROME)
    url = live_url(card_html(manager_client, jerome))
    sandbox.dial_step()
    # The numbers carry their page as a hidden input that the refresh includes.
    response = manager_client.get(url, {"page": "3"}, headers=HTMX)
    assert "Page 3 of 40" in text(response)
    assert 'title="Position 50 in Allo">51<' in response.content.decode()


def test_a_refresh_allo_is_too_busy_for_keeps_going_and_says_so(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    lea = person(sandbox, LEA)
    url = live_url(card_html(manager_client, lea))
    fault(sandbox, status=503, methods=["GET"])
    sandbox_clock.advance(services.LIVE_POLL_SECONDS)
    response = manager_client.get(url, headers=HTMX)
    assert response.status_code == 200
    assert "The last refresh failed: Allo could not be reached." in text(response)
    html = response.content.decode()
    assert "data-live-poll" in html and 'hx-trigger="every 8s, live:resume"' in html


def test_a_refresh_allo_is_too_busy_for_does_not_count_as_one_that_found_nothing_new(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    lea = person(sandbox, LEA)
    # The last refresh before the pause: one more that finds nothing new, and it pauses.
    url = live_url(card_html(manager_client, lea)).replace(
        "idle=0", f"idle={services.LIVE_IDLE_POLLS - 1}"
    )
    fault(sandbox, status=429, methods=["GET"])  # busy, not down: the last snapshot is shown
    sandbox_clock.advance(services.LIVE_POLL_SECONDS)
    response = manager_client.get(url, headers=HTMX)
    assert response.status_code == 200
    assert "nothing changed for a while" not in text(response)
    html = response.content.decode()
    assert "data-live-poll" in html
    # The stale refresh is not counted: the same count is sent again.
    assert f"idle={services.LIVE_IDLE_POLLS - 1}" in live_url(html)


def test_a_save_aborts_a_refresh_in_flight_and_a_refresh_never_overtakes_a_save(
    manager_client: Client, sandbox: Sandbox
) -> None:
    """Both sync on the card: a save aborts a refresh in flight (its answer would put back
    what the card showed before the save), and a refresh is dropped while a save is in flight."""
    html = card_html(manager_client, person(sandbox, LEA))
    form = re.search(r"<form[^>]*>", html)
    poll = re.search(r"<div[^>]*data-live-poll[^>]*>", html)
    assert form and poll
    assert 'hx-sync="closest .queue-card:drop"' in form.group(0)
    assert 'hx-sync="closest .queue-card:abort"' in poll.group(0)
    assert 'class="queue-card' in html


def test_a_refresh_for_someone_no_longer_on_the_team_stops_and_says_why(
    manager_client: Client, sandbox: Sandbox
) -> None:
    url = reverse("dashboard:queue_live", args=[teammate_removed_from_allo(sandbox, ANAIS)])
    response = manager_client.get(url, {"seen": "x", "idle": "0"}, headers=HTMX)
    assert response.status_code == 286
    assert "Live updates stopped: No teammate with this id is on your team." in text(response)


def test_a_refresh_url_opened_without_htmx_shows_the_queue_page(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, LEA)
    response = manager_client.get(reverse("dashboard:queue_live", args=[lea]))
    assert response.status_code == 302
    assert response["Location"] == queue_url(lea)


# The teammates page's counts and overview ------------------------------------------------------


def overview_url(html: str) -> str | None:
    match = re.search(r'id="team-overview"[^>]*hx-get="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def count_the_team(client: Client, sandbox: Sandbox, clock: Any, page: str = "/") -> Any:
    """Open the teammates page and let its overview ask until it has counted every queue,
    a second apart, as the browser would; returns the last answer."""
    url = overview_url(client.get(page).content.decode())
    assert url, "the overview does not count by itself"
    for _batch in range(10):
        response = client.get(url, headers=HTMX)
        assert response.status_code == 200
        url = overview_url(response.content.decode())
        if url is None:
            return response
        clock.advance(1)
    raise AssertionError("the overview never finished counting")


def test_the_overview_counts_the_team_in_batches_that_stay_within_allos_budget(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    url = overview_url(manager_client.get("/").content.decode())
    forget_requests(sandbox)
    first = manager_client.get(url, headers=HTMX)
    # At most a batch's budget, plus the last queue read (up to 10 reads for 1,000 numbers).
    assert len(queue_reads(sandbox)) <= services.TEAM_READS_PER_BATCH + 9
    html = first.content.decode()
    assert re.search(r'hx-trigger="load delay:\d{4}ms"', html)  # asks again a second later
    assert "Counting the queues:" in text(first)

    last = count_the_team(manager_client, sandbox, sandbox_clock)
    active = [u for u in sandbox.users if u["status"] == "ACTIVE"]
    left = sum(left_to_call(sandbox, u["id"]) for u in active)
    queues = sum(1 for u in active if sandbox.queue_of(u["id"]))
    page = text(last)
    assert f"Numbers left to call {left:,}" in page
    assert f"Queues {queues}" in page
    assert f"The {len(active)} teammates shown · counted at" in page


def test_the_overview_fills_in_every_row(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    last = count_the_team(manager_client, sandbox, sandbox_clock).content.decode()
    for user in sandbox.users:
        row = f'id="{queue_dom_id(user["id"])}-tally" class="tally" hx-swap-oob="true"'
        assert (row in last) == (user["status"] == "ACTIVE"), user["name"]
    chloe = re.search(
        rf'id="{queue_dom_id(person(sandbox, CHLOE))}-tally".*?</div>', last, re.DOTALL
    )
    assert chloe and "Grands comptes Rhône-Alpes" in chloe.group(0)
    assert "Answered <strong>1</strong>" in chloe.group(0)


def test_counts_read_in_the_last_seconds_show_at_once_and_cost_nothing(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    count_the_team(manager_client, sandbox, sandbox_clock)
    forget_requests(sandbox)
    response = manager_client.get("/")
    assert queue_reads(sandbox) == []
    html = response.content.decode()
    assert overview_url(html) is None  # nothing left to count
    assert "Grands comptes Rhône-Alpes" in text(response)
    assert "Refresh counts" in text(response)


def test_refresh_counts_reads_every_queue_again(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    count_the_team(manager_client, sandbox, sandbox_clock)
    forget_requests(sandbox)
    manager_client.get(reverse("dashboard:team_overview"), {"fresh": "1"}, headers=HTMX)
    assert queue_reads(sandbox)


def test_a_queue_that_cannot_be_counted_says_why_in_its_own_row(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    chloe = person(sandbox, CHLOE)
    inner = sandbox_transport(sandbox)

    def fail_chloes_queue(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/current") and request.url.params.get("user_id") == chloe:
            return httpx.Response(500, json={"error": {"type": "server_error", "code": None}})
        return inner.handle_request(request)

    client = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=httpx.MockTransport(fail_chloes_queue),
    )
    previous = install_client(client)
    try:
        last = count_the_team(manager_client, sandbox, sandbox_clock)
    finally:
        install_client(previous)
    html = last.content.decode()
    row = re.search(rf'id="{queue_dom_id(chloe)}-tally".*?</div>', html, re.DOTALL)
    assert row and "Allo could not be reached" in row.group(0)
    assert "1 queue could not be counted: Allo could not be reached." in text(last)


def test_the_overview_counts_only_the_teammates_the_filters_show(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    last = count_the_team(manager_client, sandbox, sandbox_clock, page="/?role=MANAGER")
    page = text(last)
    assert "The 2 teammates shown" in page
    html = last.content.decode()
    assert f'id="{queue_dom_id(person(sandbox, ZOE))}-tally"' in html
    assert f'id="{queue_dom_id(person(sandbox, CHLOE))}-tally"' not in html


def test_an_open_card_on_the_teammates_page_also_refreshes_its_row(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    row = f'id="{queue_dom_id(chloe)}-tally" class="tally" hx-swap-oob="true"'
    on_teammates = manager_client.get(
        queue_url(chloe), headers={**HTMX, "HX-Current-URL": "http://testserver/?role=MEMBER"}
    )
    assert row in on_teammates.content.decode()
    assert "Open the full queue page" in text(on_teammates)
    on_its_page = manager_client.get(
        queue_url(chloe), headers={**HTMX, "HX-Current-URL": f"http://testserver{queue_url(chloe)}"}
    )
    assert row not in on_its_page.content.decode()
    assert "Open the full queue page" not in text(on_its_page)


def test_the_overview_url_opened_without_htmx_shows_the_teammates_page(
    manager_client: Client,
) -> None:
    overview = reverse("dashboard:team_overview")
    response = manager_client.get(overview, {"role": "MEMBER", "batch": 2})
    assert response.status_code == 302
    assert response["Location"] == "/?role=MEMBER"


# Progress, history and the CSP, for every control -------------------------------------------------


def htmx_controls(html: str) -> list[str]:
    """Every opening tag that sends an htmx request when a person acts on it (not the ones
    that load or refresh by themselves)."""
    tags = re.findall(r"<[a-z]+\s[^>]*hx-(?:get|post)=[^>]*>", html)
    automatic = re.compile(r'hx-trigger="(load|every)')
    return [tag for tag in tags if not automatic.search(tag)]


def test_every_htmx_control_shows_progress_and_cannot_be_sent_twice(
    manager_client: Client, sandbox: Sandbox, sandbox_clock: Any
) -> None:
    chloe = person(sandbox, CHLOE)
    pages = [
        manager_client.get("/").content.decode(),
        count_the_team(manager_client, sandbox, sandbox_clock).content.decode(),
        card_html(manager_client, person(sandbox, JEROME)),
        card_html(manager_client, chloe),
        manager_client.get(queue_url(chloe)).content.decode(),
    ]
    controls = [tag for html in pages for tag in htmx_controls(html)]
    assert len(controls) > 10
    for tag in controls:
        # Disabled while in flight (a busy sign shows on it), or a repeat dropped or replaced.
        assert "hx-disabled-elt=" in tag or "hx-sync=" in tag, tag


def test_a_history_restore_gets_the_whole_teammates_page(manager_client: Client) -> None:
    response = manager_client.get(
        "/?role=MEMBER",
        headers={**HTMX, "HX-Target": "teammate-list", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in response.content.decode()
    assert "HX-History-Restore-Request" in response["Vary"]


def test_htmx_keeps_no_page_snapshots_so_back_reloads_from_the_server(
    manager_client: Client,
) -> None:
    html = manager_client.get("/").content.decode()
    assert '"historyCacheSize": 0' in html and '"refreshOnHistoryMiss": true' in html
    assert '"allowEval": false' in html


def test_the_live_fragments_carry_no_inline_script_or_style_either(
    manager_client: Client, sandbox: Sandbox
) -> None:
    lea = person(sandbox, LEA)
    url = live_url(card_html(manager_client, lea))
    sandbox.dial_step()
    for response in (
        manager_client.get(url, headers=HTMX),
        manager_client.get(reverse("dashboard:team_overview"), headers=HTMX),
    ):
        html = response.content.decode()
        assert " style=" not in html and "<style" not in html and "<script" not in html
        assert " hx-on" not in html and " on" + "click" not in html
