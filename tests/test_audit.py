"""The audit trail: every write sent to Allo, recorded before it leaves and completed after; the
history page, its filters, its CSV, and each queue card's last change.
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard import services
from dashboard.allo.client import AlloClient, build_client, install_client
from dashboard.allo.resilience import Timing
from dashboard.audit import Author, csv_safe
from dashboard.models import AuditEntry, AuditEntryImmutableError, ManagerScope, ScopedTeammate
from dashboard.permissions import team_roster
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.transport import sandbox_transport
from dashboard.services import QueueSettings

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
CHLOE = "Chloé Dubois-Maréchal"  # "Grands comptes Rhône-Alpes", NO_SKIP, ENABLED
JEROME = "Jérôme d'Arbois"
LEA = "Léa Moreau"
ZOE = "Zoé O'Connor"  # MANAGER

Outcome = AuditEntry.Outcome


# Builders and helpers ---------------------------------------------------------------------------


def person(sandbox: Sandbox, name: str) -> str:
    return sandbox.user_named(name)["id"]


def queue_url(user_id: str) -> str:
    return reverse("dashboard:queue", args=[user_id])


def text(response: Any) -> str:
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def shown_form(client: Client, user_id: str) -> dict[str, str]:
    response = client.get(queue_url(user_id), headers=HTMX)
    assert response.status_code == 200
    form = response.context["form"]
    return {key: form.initial[key] for key in form.fields}


def save(client: Client, sandbox: Sandbox, user_id: str, **changes: str) -> Any:
    """Open the card, change some fields, press Save; Allo's log starts empty."""
    data = {**shown_form(client, user_id), **changes}
    sandbox.clear_stats()
    return client.post(queue_url(user_id), data, headers=HTMX)


def patches(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [row for row in sandbox.stats()["log"] if row["method"] == "PATCH"]


def make_entry(author: User, **overrides: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "author": author,
        "author_username": author.get_username(),
        "author_name": "Camille Lefèvre",
        "teammate_id": "usr-chloe",
        "teammate_name": CHLOE,
        "action": AuditEntry.Action.QUEUE_SETTINGS,
        "changes": {"voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"}},
        "outcome": Outcome.APPLIED,
        "allo_request_id": "req_dash_test",
    }
    return AuditEntry.objects.create(**{**fields, **overrides})


def browser_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def account_of(sandbox: Sandbox, name: str, username: str) -> User:
    email = sandbox.user_named(name)["email"]
    return User.objects.create_user(username=username, email=email, password="x" * 20)


def csv_rows(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# Each write is recorded -------------------------------------------------------------------------


def test_an_applied_write_is_recorded_with_who_whom_before_after_and_allos_request_id(
    manager_client: Client, manager: User, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    response = save(manager_client, sandbox, chloe, voicemail_handling="SKIP", name="Top")
    assert "Saved." in text(response)
    (entry,) = AuditEntry.objects.all()
    assert entry.author == manager
    assert entry.author_username == "manager"
    assert entry.author_name == "Camille Lefèvre"  # her name in Allo, linked by email
    assert (entry.teammate_id, entry.teammate_name) == (chloe, CHLOE)
    assert entry.action == "queue.settings"
    assert entry.changes == {
        "name": {"before": "Grands comptes Rhône-Alpes", "after": "Top"},
        "voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"},
    }
    assert entry.outcome == Outcome.APPLIED
    assert entry.allo_code == "" and entry.allo_message == ""
    (patch,) = patches(sandbox)
    assert entry.allo_request_id == patch["headers"]["x-request-id"]
    assert entry.allo_request_id.startswith("req_dash_")
    assert entry.created_at <= entry.completed_at <= timezone.now()


def test_when_allo_keeps_another_value_than_asked_both_are_recorded(
    manager_client: Client, manager: User, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    """Allo answers the PATCH with the name in capitals: the entry says what Allo kept."""
    inner = sandbox_transport(sandbox)

    def shout_names(request: httpx.Request) -> httpx.Response:
        response = inner.handle_request(request)
        if request.method != "PATCH" or response.status_code != 200:
            return response
        body = json.loads(response.read())
        body["data"]["name"] = body["data"]["name"].upper()
        return httpx.Response(200, json=body, headers={"X-Request-Id": "req_x"})

    client = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=httpx.MockTransport(shout_names),
        timing=Timing.simulated(sandbox_clock),
    )
    previous = install_client(client)
    try:
        save(manager_client, sandbox, person(sandbox, CHLOE), name="Top comptes")
        history = manager_client.get("/audit/")
    finally:
        install_client(previous)
        client.close()
    entry = AuditEntry.objects.get()
    assert entry.outcome == Outcome.APPLIED
    assert entry.changes == {
        "name": {
            "before": "Grands comptes Rhône-Alpes",
            "after": "TOP COMPTES",
            "asked": "Top comptes",
        }
    }
    assert "Queue name: Grands comptes Rhône-Alpes → TOP COMPTES (asked: Top comptes)" in text(
        history
    )


def test_a_write_allo_refuses_is_recorded_as_refused_with_its_code(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "do_not_disturb": "DISABLED"}
    sandbox.set_faults(FaultSpec(status=400, code="DIALING_QUEUE_NAME_INVALID", methods=("PATCH",)))
    sandbox.clear_stats()
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert "Allo refused this" in text(response)
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.REFUSED
    assert entry.allo_code == "DIALING_QUEUE_NAME_INVALID"
    assert entry.allo_message == "The sandbox was told to answer 400."
    assert entry.changes == {"do_not_disturb": {"before": "ENABLED", "after": "DISABLED"}}
    (patch,) = patches(sandbox)
    assert entry.allo_request_id == patch["request_id"] == patch["headers"]["x-request-id"]
    assert entry.completed_at is not None
    assert sandbox.queue_of(chloe)["do_not_disturb"] == "ENABLED"


def test_a_write_for_someone_allo_does_not_know_is_refused_with_allos_code(
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
    manager_client.post(queue_url(sandbox.outsider_id), data, headers=HTMX)
    (entry,) = AuditEntry.objects.all()
    assert (entry.outcome, entry.allo_code) == (Outcome.REFUSED, "ASSIGNEE_NOT_FOUND")
    assert entry.teammate_id == sandbox.outsider_id and entry.teammate_name == ""
    assert entry.changes["name"] == {"before": "", "after": "Leur liste"}


def test_a_write_to_an_unreachable_allo_is_recorded_as_unknown_never_sent(
    manager_client: Client, sandbox: Sandbox, unreachable_allo: AlloClient
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {
        "name": "Comptes clés",
        "voicemail_handling": "NO_SKIP",
        "do_not_disturb": "ENABLED",
        "seen_name": "Grands comptes Rhône-Alpes",
        "seen_voicemail_handling": "NO_SKIP",
        "seen_do_not_disturb": "ENABLED",
    }
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert "Allo could not be reached, so nothing was changed." in text(response)
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.UNKNOWN
    assert "never reached Allo" in entry.allo_message
    assert entry.allo_request_id.startswith("req_dash_")
    assert entry.changes == {
        "name": {"before": "Grands comptes Rhône-Alpes", "after": "Comptes clés"}
    }


@pytest.mark.parametrize(
    ("fault", "applied"),
    [({"hang": True}, False), ({"status": 502}, False), ({"apply_then_fail": True}, True)],
)
def test_a_write_allo_did_not_confirm_is_recorded_as_unknown(
    manager_client: Client, sandbox: Sandbox, fault: dict[str, Any], applied: bool
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    sandbox.set_faults(FaultSpec.from_json({**fault, "methods": ["PATCH"]}))
    sandbox.clear_stats()
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert "it may or may not have been applied" in text(response)
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.UNKNOWN
    assert entry.allo_request_id == patches(sandbox)[0]["headers"]["x-request-id"]
    assert entry.changes == {"voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"}}
    assert (sandbox.queue_of(chloe)["voicemail_handling"] == "SKIP") is applied


def test_a_write_that_lands_on_someone_elses_queue_is_recorded_as_misdirected(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    sandbox.teammate_field = "none"
    manager_client.post(queue_url(chloe), data, headers=HTMX)
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.MISDIRECTED
    assert entry.allo_code == "WRONG_TEAMMATE"
    assert sandbox.owner_id in entry.allo_message


def test_saving_with_nothing_changed_records_nothing(
    manager_client: Client, sandbox: Sandbox
) -> None:
    save(manager_client, sandbox, person(sandbox, CHLOE))
    assert patches(sandbox) == []
    assert not AuditEntry.objects.exists()


def test_the_entry_is_written_pending_before_the_request_leaves(
    manager: User, sandbox: Sandbox
) -> None:
    """A transport in front of the sandbox looks at the audit table as the PATCH arrives."""
    inner = sandbox_transport(sandbox)
    seen_at_send: list[tuple[str, str, dict[str, Any]]] = []

    def look_then_answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            seen_at_send.extend(
                AuditEntry.objects.values_list("outcome", "allo_request_id", "changes")
            )
            seen_at_send.append(("header", request.headers["X-Request-Id"], {}))
        return inner.handle_request(request)

    client = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=httpx.MockTransport(look_then_answer),
    )
    previous = install_client(client)
    try:
        services.queue_settings_update(
            user_id=person(sandbox, CHLOE),
            wanted=QueueSettings("Grands comptes Rhône-Alpes", "SKIP", "ENABLED"),
            seen=QueueSettings("Grands comptes Rhône-Alpes", "NO_SKIP", "ENABLED"),
            author=Author(user=manager, name="Camille Lefèvre"),
        )
    finally:
        install_client(previous)
        client.close()
    (pending, header) = seen_at_send
    assert pending[0] == Outcome.PENDING
    assert pending[1] == header[1]
    assert pending[2] == {"voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"}}
    assert AuditEntry.objects.get().outcome == Outcome.APPLIED


def test_a_dashboard_failure_mid_write_leaves_an_unknown_entry_rather_than_nothing(
    manager: User, sandbox: Sandbox
) -> None:
    def break_on_patch(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("the dashboard broke while sending")

    client = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=httpx.MockTransport(break_on_patch),
    )
    previous = install_client(client)
    try:
        with pytest.raises(RuntimeError):
            services.queue_settings_update(
                user_id=person(sandbox, CHLOE),
                wanted=QueueSettings("Nouveau", "NO_SKIP", "ENABLED"),
                seen=QueueSettings("Ancien", "NO_SKIP", "ENABLED"),
                author=Author(user=manager, name="Camille Lefèvre"),
            )
    finally:
        install_client(previous)
        client.close()
    entry = AuditEntry.objects.get()
    assert entry.outcome == Outcome.UNKNOWN
    assert entry.allo_message == "The dashboard failed while sending this change."
    assert entry.changes == {"name": {"before": "Ancien", "after": "Nouveau"}}


# Append-only ------------------------------------------------------------------------------------


def test_an_entry_cannot_be_changed_or_deleted(manager: User) -> None:
    entry = make_entry(manager)
    entry.outcome = Outcome.REFUSED
    with pytest.raises(AuditEntryImmutableError):
        entry.save()
    with pytest.raises(AuditEntryImmutableError):
        entry.delete()
    with pytest.raises(AuditEntryImmutableError):
        AuditEntry.objects.filter(pk=entry.pk).update(outcome=Outcome.REFUSED)
    with pytest.raises(AuditEntryImmutableError):
        AuditEntry.objects.all().delete()
    # bulk_update runs in a transaction of its own: the refusal rolls it back.
    with pytest.raises(AuditEntryImmutableError), transaction.atomic():
        AuditEntry.objects.bulk_update([entry], ["outcome"])
    assert AuditEntry.objects.get().outcome == Outcome.APPLIED


def test_a_pending_entry_is_completed_once_only(manager: User) -> None:
    entry = make_entry(manager, outcome=Outcome.PENDING)
    assert AuditEntry.objects.complete(entry.pk, outcome=Outcome.APPLIED) == 1
    assert AuditEntry.objects.complete(entry.pk, outcome=Outcome.REFUSED) == 0
    assert AuditEntry.objects.get().outcome == Outcome.APPLIED


def test_an_author_with_entries_cannot_be_deleted(manager: User) -> None:
    make_entry(manager)
    with pytest.raises(ProtectedError):
        manager.delete()


def test_the_admin_shows_entries_read_only(manager: User) -> None:
    entry = make_entry(manager)
    root = User.objects.create_superuser("root", "root@example.com", "x" * 20)
    admin = browser_of(root)
    listing = admin.get("/admin/dashboard/auditentry/")
    assert listing.status_code == 200 and CHLOE in text(listing)
    assert "Add audit entry" not in text(listing)
    detail = admin.get(f"/admin/dashboard/auditentry/{entry.pk}/change/")
    assert detail.status_code == 200
    assert 'name="outcome"' not in detail.content.decode()  # shown, not editable
    assert admin.get("/admin/dashboard/auditentry/add/").status_code == 403
    assert admin.get(f"/admin/dashboard/auditentry/{entry.pk}/delete/").status_code == 403
    response = admin.post(f"/admin/dashboard/auditentry/{entry.pk}/change/", {"outcome": "refused"})
    assert response.status_code == 403
    assert AuditEntry.objects.get().outcome == Outcome.APPLIED


# The history page -------------------------------------------------------------------------------


def test_the_history_lists_changes_newest_first_in_words(
    manager_client: Client, manager: User, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    save(manager_client, sandbox, chloe, voicemail_handling="SKIP")
    save(manager_client, sandbox, chloe, name="Comptes clés")
    sandbox.clear_stats()
    response = manager_client.get("/audit/")
    assert response.status_code == 200
    page = text(response)
    assert "2 changes" in page
    assert page.index("Comptes clés") < page.index("Skip voicemails")  # newest first
    assert "Queue name: Grands comptes Rhône-Alpes → Comptes clés" in page
    assert (
        "When a voicemail answers: Stay on the call when a voicemail answers → "
        "Skip voicemails, go to the next number" in page
    )
    assert "Camille Lefèvre" in page and CHLOE in page and "Applied" in page
    first = AuditEntry.objects.first()
    assert first is not None and first.allo_request_id in page
    assert sandbox.stats()["log"] == []  # the history costs Allo nothing


def test_the_history_filters_by_teammate_author_outcome_and_day(
    manager_client: Client, manager: User, sandbox: Sandbox
) -> None:
    other = User.objects.create_user("zoe", email="zoe@example.com")
    now = timezone.now()
    make_entry(manager, teammate_id="usr-a", teammate_name="Alice", created_at=now)
    make_entry(other, teammate_id="usr-b", teammate_name="Bruno", author_name="Zoé",
               created_at=now - timedelta(days=3))  # fmt: skip
    make_entry(manager, teammate_id="usr-b", teammate_name="Bruno", outcome=Outcome.REFUSED,
               allo_code="RATE_LIMIT_EXCEEDED", created_at=now - timedelta(days=10))  # fmt: skip

    def teammates_shown(query: dict[str, str]) -> list[str]:
        response = manager_client.get("/audit/", query)
        assert response.status_code == 200
        return [row.entry.teammate_name for row in response.context["rows"]]

    assert teammates_shown({}) == ["Alice", "Bruno", "Bruno"]
    assert teammates_shown({"teammate": "usr-b"}) == ["Bruno", "Bruno"]
    assert teammates_shown({"author": str(other.pk)}) == ["Bruno"]
    assert teammates_shown({"outcome": "refused"}) == ["Bruno"]
    day = timezone.localdate(now - timedelta(days=3)).isoformat()
    assert teammates_shown({"since": day, "until": day}) == ["Bruno"]
    assert teammates_shown({"since": timezone.localdate(now).isoformat()}) == ["Alice"]
    # A value that is not a filter is ignored, not an error.
    assert teammates_shown({"outcome": "exploded", "since": "yesterday"}) == [
        "Alice",
        "Bruno",
        "Bruno",
    ]
    # The filter lists offer what the entries hold.
    form = manager_client.get("/audit/").context["form"]
    assert ("usr-a", "Alice") in form.fields["teammate"].widget.choices
    assert (str(other.pk), "Zoé") in form.fields["author"].choices


def test_the_history_is_paged(manager_client: Client, manager: User) -> None:
    start = timezone.now()
    for index in range(60):
        make_entry(manager, teammate_name=f"T{index:02d}",
                   created_at=start - timedelta(minutes=index))  # fmt: skip
    first = manager_client.get("/audit/")
    assert "60 changes" in text(first) and "Page 1 of 2" in text(first)
    assert [row.entry.teammate_name for row in first.context["rows"]][:2] == ["T00", "T01"]
    assert len(first.context["rows"]) == 50
    second = manager_client.get("/audit/", {"page": "2"})
    assert second.context["rows"][0].entry.teammate_name == "T50"
    assert len(second.context["rows"]) == 10
    assert 'href="?page=1"' in second.content.decode()


def test_the_history_downloads_as_csv_with_the_same_filters(
    manager_client: Client, manager: User
) -> None:
    make_entry(manager, teammate_id="usr-a", teammate_name="Alice")
    make_entry(
        manager,
        teammate_id="usr-b",
        teammate_name='=HYPERLINK("http://evil.example","Bruno")',
        changes={
            "name": {"before": "+33 old", "after": "@SUM(A1)"},
            "voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"},
        },
        outcome=Outcome.REFUSED,
        allo_code="DIALING_QUEUE_NAME_INVALID",
    )
    response = manager_client.get("/audit/", {"format": "csv", "teammate": "usr-b"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="dialer-audit-')
    header, *rows = csv_rows(response)
    assert header[:3] == ["When (UTC)", "Author", "Author's username"]
    assert len(rows) == 2  # one line per changed field, Alice filtered out
    by_field = {row[header.index("Field")]: row for row in rows}
    name_row = by_field["name"]
    # Cells a spreadsheet would run as formulas are quoted into text.
    assert name_row[header.index("Teammate")] == '\'=HYPERLINK("http://evil.example","Bruno")'
    assert name_row[header.index("Before")] == "'+33 old"
    assert name_row[header.index("After")] == "'@SUM(A1)"
    assert name_row[header.index("Outcome")] == "refused"
    assert name_row[header.index("Allo code")] == "DIALING_QUEUE_NAME_INVALID"
    assert name_row[header.index("Teammate id")] == "usr-b"
    assert name_row[header.index("Author")] == "Camille Lefèvre"
    vm_row = by_field["voicemail_handling"]
    assert (vm_row[header.index("Before")], vm_row[header.index("After")]) == ("NO_SKIP", "SKIP")
    assert datetime.fromisoformat(name_row[0]).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("Chloé", "Chloé"),
        (None, ""),
    ],
)
def test_a_csv_cell_never_starts_a_formula(value: str | None, cell: str) -> None:
    assert csv_safe(value) == cell


def test_a_member_reads_only_their_own_queues_history(
    allo: AlloClient, sandbox: Sandbox, manager: User
) -> None:
    chloe, jerome = person(sandbox, CHLOE), person(sandbox, JEROME)
    make_entry(manager, teammate_id=chloe, teammate_name=CHLOE)
    make_entry(manager, teammate_id=jerome, teammate_name=JEROME)
    browser = browser_of(account_of(sandbox, CHLOE, "chloe"))
    page = browser.get("/audit/")
    assert [row.entry.teammate_id for row in page.context["rows"]] == [chloe]
    assert JEROME not in text(page)
    rows = csv_rows(browser.get("/audit/", {"format": "csv"}))
    assert [row[4] for row in rows[1:]] == [chloe]
    team_roster()
    sandbox.clear_stats()
    assert browser.get("/audit/", {"teammate": jerome}).status_code == 404
    assert browser.get("/audit/", {"teammate": jerome, "format": "csv"}).status_code == 404
    assert sandbox.stats()["log"] == []


def test_a_narrowed_manager_reads_the_history_of_their_teammates_only(
    allo: AlloClient, sandbox: Sandbox, manager: User
) -> None:
    chloe, jerome, lea = (person(sandbox, name) for name in (CHLOE, JEROME, LEA))
    for user_id, name in ((chloe, CHLOE), (jerome, JEROME), (lea, LEA)):
        make_entry(manager, teammate_id=user_id, teammate_name=name)
    zoe = account_of(sandbox, ZOE, "zoe")
    scope = ManagerScope.objects.create(user=zoe)
    for user_id in (chloe, jerome):
        ScopedTeammate.objects.create(scope=scope, allo_user_id=user_id)
    page = browser_of(zoe).get("/audit/")
    assert {row.entry.teammate_id for row in page.context["rows"]} == {chloe, jerome}
    assert LEA not in text(page)


# Each card's last change ------------------------------------------------------------------------


def test_a_queue_card_shows_its_last_change_and_links_to_its_history(
    manager_client: Client, manager: User, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    untouched = manager_client.get(queue_url(chloe), headers=HTMX)
    assert "No change made from this dashboard yet." in text(untouched)
    make_entry(manager, teammate_id=chloe, created_at=timezone.now() - timedelta(minutes=10))
    # A refused attempt is not a change.
    make_entry(manager, teammate_id=chloe, author_name="Zoé", outcome=Outcome.REFUSED)
    sandbox.clear_stats()
    card = manager_client.get(queue_url(chloe), headers=HTMX)
    assert "Last change: changed by Camille Lefèvre, 10 minutes ago." in text(card)
    assert f'href="/audit/?teammate={chloe}"' in card.content.decode()
    # The card read its queue from Allo, and nothing else.
    assert [r["path"] for r in sandbox.stats()["log"]] == ["/v2/api/dialing-queues/current"]
    history = manager_client.get(f"/audit/?teammate={chloe}")
    assert "History of Chloé Dubois-Maréchal's queue" in text(history)


def test_a_save_shows_itself_as_the_last_change(manager_client: Client, sandbox: Sandbox) -> None:
    response = save(manager_client, sandbox, person(sandbox, CHLOE), voicemail_handling="SKIP")
    assert "Last change: changed by Camille Lefèvre, just now." in text(response)


# Fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def unreachable_allo(allo: AlloClient) -> Iterator[AlloClient]:
    """A client pointed at a loopback port nobody listens on: every request is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = build_client(base_url=f"http://127.0.0.1:{port}", api_key="ak_live_unused")
    previous = install_client(client)
    yield client
    install_client(previous)
    client.close()
