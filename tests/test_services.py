"""The manager's use cases against the sandbox: what Allo is asked, and what comes back."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from dashboard import services
from dashboard.allo.client import AlloClient
from dashboard.allo.errors import AlloNotFoundError
from dashboard.allo.types import Queue, QueueNumber
from dashboard.audit import Author
from dashboard.sandbox.core import Sandbox
from dashboard.services import QueueSettings
from tests.helpers import person

CHLOE = "Chloé Dubois-Maréchal"


def requests_to_allo(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.stats()["log"]


def make_number(position: int = 0, **overrides: Any) -> QueueNumber:
    return QueueNumber(number_to=f"+3361234{position:04d}", position=position, **overrides)


def make_queue(*numbers: QueueNumber, **overrides: Any) -> Queue:
    fields: dict[str, Any] = {
        "id": "pdl_test",
        "name": "Test",
        "creator_id": "usr-a",
        "assignee_id": "usr-b",
        "voicemail_handling": "SKIP",
        "do_not_disturb": "DISABLED",
        "numbers": numbers,
    }
    return Queue(**{**fields, **overrides})


# Chloé's queue as the sandbox seeds it, and as the manager saw it.
SEEN = QueueSettings(
    name="Grands comptes Rhône-Alpes", voicemail_handling="NO_SKIP", do_not_disturb="ENABLED"
)


@pytest.fixture
def author(manager: User) -> Author:
    """Who the audit trail records for the writes of these tests."""
    return Author(user=manager, name="Camille Lefèvre")


# Saving -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "body"),
    [
        (
            QueueSettings("Grands comptes Rhône-Alpes", "SKIP", "ENABLED"),
            {"voicemail_handling": "SKIP"},
        ),
        (QueueSettings("Comptes clés", "NO_SKIP", "ENABLED"), {"name": "Comptes clés"}),
        (
            QueueSettings("Grands comptes Rhône-Alpes", "NO_SKIP", "DISABLED"),
            {"do_not_disturb": "DISABLED"},
        ),
        # An empty name is never sent: Allo cannot clear one.
        (QueueSettings("", "SKIP", "ENABLED"), {"voicemail_handling": "SKIP"}),
    ],
)
def test_only_the_settings_that_changed_are_sent(
    allo: AlloClient,
    sandbox: Sandbox,
    author: Author,
    wanted: QueueSettings,
    body: dict[str, str],
) -> None:
    chloe = person(sandbox, CHLOE)
    saved = services.queue_settings_update(user_id=chloe, wanted=wanted, seen=SEEN, author=author)
    # The settings read afresh (one number's worth), then one PATCH.
    (read, patch) = requests_to_allo(sandbox)
    assert (read["method"], read["query"]["size"]) == ("GET", "1")
    assert patch["method"] == "PATCH"
    assert patch["body"] == {**body, "user_id": chloe, "user_pid": chloe}
    assert saved.outcome == services.SAVED
    assert saved.sent == tuple(body)
    assert saved.queue is not None and saved.queue.assignee_id == chloe


def test_nothing_changed_sends_nothing(allo: AlloClient, sandbox: Sandbox, author: Author) -> None:
    saved = services.queue_settings_update(
        user_id=person(sandbox, CHLOE), wanted=SEEN, seen=SEEN, author=author
    )
    assert (saved.outcome, saved.sent, saved.current) == (services.UNCHANGED, (), SEEN)
    assert [row["method"] for row in requests_to_allo(sandbox)] == ["GET"]


def test_a_save_for_someone_off_the_team_is_not_sent_and_says_not_found(
    allo: AlloClient, sandbox: Sandbox, author: Author
) -> None:
    saved = services.queue_settings_update(
        user_id=sandbox.outsider_id,
        wanted=QueueSettings("Nope", "SKIP", "ENABLED"),
        seen=SEEN,
        author=author,
    )
    assert saved.outcome == services.NOT_SENT
    assert isinstance(saved.error, AlloNotFoundError)
    assert saved.error.code == "ASSIGNEE_NOT_FOUND"
    assert [row["method"] for row in requests_to_allo(sandbox)] == ["GET"]


# Teammates --------------------------------------------------------------------------------------


def test_the_team_is_sorted_by_name_ignoring_accents(allo: AlloClient) -> None:
    names = [t.name for t in services.teammate_list(status=services.ALL_STATUSES)]
    assert names == sorted(names, key=services._folded)
    # "Éloïse" sorts with the E's, not after the Z's as a plain string sort would put it.
    assert names.index("Zoé O'Connor") == len(names) - 1


def test_everyone_means_active_and_blocked_in_two_reads(allo: AlloClient, sandbox: Sandbox) -> None:
    people = services.teammate_list(status=services.ALL_STATUSES)
    assert {p.id for p in people} == {u["id"] for u in sandbox.users}
    assert [r["query"] for r in requests_to_allo(sandbox)] == [
        {"status": "ACTIVE"},
        {"status": "BLOCKED"},
    ]


@pytest.mark.parametrize("query", ["eloise", "ÉLOÏSE", "marchand@", "  eloise  "])
def test_search_ignores_case_accents_and_spaces(allo: AlloClient, query: str) -> None:
    people = services.teammate_list(status=services.ALL_STATUSES, query=query)
    assert [p.name for p in people] == ["Éloïse Marchand"]


# Queues -----------------------------------------------------------------------------------------


def test_a_thousand_numbers_are_read_in_ten_pages(allo: AlloClient, sandbox: Sandbox) -> None:
    overview = services.queue_overview(user_id=person(sandbox, "Jérôme d'Arbois"))
    assert overview.size == 1000
    assert sum(item.count for item in overview.summary) == 1000
    reads = requests_to_allo(sandbox)
    assert [r["query"]["page"] for r in reads] == [str(n) for n in range(1, 11)]


def test_one_page_of_numbers_is_one_read(allo: AlloClient, sandbox: Sandbox) -> None:
    page = services.queue_numbers_page(user_id=person(sandbox, "Jérôme d'Arbois"), page=3)
    assert page is not None
    assert (page.number, page.num_pages, page.count) == (3, 40, 1000)
    assert [n.position for n in page.numbers] == list(range(50, 75))
    assert len(requests_to_allo(sandbox)) == 1


def test_a_page_of_numbers_for_someone_without_a_queue_is_none(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    assert services.queue_numbers_page(user_id=person(sandbox, "Anaïs Fontaine"), page=1) is None


def test_the_summary_counts_numbers_by_outcome_in_a_fixed_order() -> None:
    queue = make_queue(
        make_number(0, routing_result="ANSWERED"),
        make_number(1, routing_result="FAILED", not_reached_destination_reason="BUSY"),
        make_number(2, routing_result="FAILED", not_reached_destination_reason="DECLINED"),
        make_number(3, routing_result="VOICEMAIL"),
        make_number(4, routing_result="ANSWERED"),
        make_number(5, routing_result="TELEPORTED"),
        make_number(6),
        make_number(7, routing_result="TRANSFERRED_BLAND"),
    )
    summary = services.queue_summary(queue=queue)
    assert [(s.key, s.label, s.count) for s in summary] == [
        ("answered", "Answered", 2),
        ("transferred", "Transferred", 1),
        ("voicemail", "Voicemail", 1),
        ("busy", "Line busy", 1),
        ("failed", "Not reached", 1),
        ("pending", "Not yet called", 1),
        ("other", "TELEPORTED", 1),
    ]
    assert summary[0].percent == 25.0 and summary[1].offset == 25.0
    assert sum(s.percent for s in summary) == pytest.approx(100)


def test_an_empty_queue_has_no_summary() -> None:
    assert services.queue_summary(queue=make_queue()) == ()
    assert services.queue_summary(queue=None) == ()


@pytest.mark.parametrize(("asked", "shown"), [(-3, 1), (1, 1), (2, 2), (3, 3), (50, 3)])
def test_a_page_out_of_range_gives_the_nearest(asked: int, shown: int) -> None:
    queue = make_queue(*(make_number(i) for i in range(60)))
    page = services.queue_numbers_page_of(queue=queue, page=asked)
    assert page.number == shown and page.num_pages == 3
    assert page.numbers[0].position == (shown - 1) * 25


def test_a_missing_setting_reads_as_allos_default() -> None:
    queue = make_queue(name=None, voicemail_handling=None, do_not_disturb=None)
    assert QueueSettings.of(queue) == QueueSettings("", "NO_SKIP", "DISABLED")
    assert QueueSettings.of(None) == QueueSettings("", "NO_SKIP", "DISABLED")


# The connection ---------------------------------------------------------------------------------


def test_the_connection_lists_the_scopes_the_dashboard_lacks(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    assert services.connection_describe().missing_scopes == ()
    sandbox.scopes = ["USERS_READ"]
    connection = services.connection_describe()
    assert [m.scope for m in connection.missing_scopes] == ["DIALING_QUEUE_READ_WRITE"]
    assert connection.base_url == "http://allo.test"
    assert connection.me.rate_limits is not None
