"""The audit trail: every write sent to Allo, recorded before it leaves and completed after; the
history page, its filters, its CSV, and each queue card's last change.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.test import Client
from django.utils import timezone

from dashboard import services
from dashboard.allo.client import AlloClient, build_client, install_client
from dashboard.allo.errors import AlloNotFoundError, AlloWrongTeammateError
from dashboard.allo.resilience import Timing
from dashboard.audit import (
    AuditInTransactionError,
    Author,
    audit_applied,
    audit_begin,
    audit_failed,
    csv_safe,
)
from dashboard.failures import failure_explain
from dashboard.models import AuditEntry, AuditEntryImmutableError, ManagerScope, ScopedTeammate
from dashboard.permissions import team_roster
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.transport import sandbox_transport
from dashboard.services import QueueSettings
from tests.conftest import teammate_removed_from_allo
from tests.helpers import HTMX, person, queue_url, shown_form, text

pytestmark = pytest.mark.django_db

CHLOE = "Chloé Dubois-Maréchal"  # "Grands comptes Rhône-Alpes", NO_SKIP, ENABLED
JEROME = "Jérôme d'Arbois"
LEA = "Léa Moreau"
ZOE = "Zoé O'Connor"  # MANAGER

Outcome = AuditEntry.Outcome


# Builders and helpers ---------------------------------------------------------------------------


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


NEW_QUEUE = {
    "name": "Leur liste",
    "voicemail_handling": "SKIP",
    "do_not_disturb": "ENABLED",
    "seen_name": "",
    "seen_voicemail_handling": "NO_SKIP",
    "seen_do_not_disturb": "DISABLED",
}


def test_a_write_for_someone_not_on_the_team_list_is_a_404_and_records_nothing(
    manager_client: Client, sandbox: Sandbox
) -> None:
    # The team list is cached (manager_client): nothing at all reaches Allo.
    response = manager_client.post(queue_url(sandbox.outsider_id), NEW_QUEUE, headers=HTMX)
    assert response.status_code == 404
    assert sandbox.stats()["log"] == []
    assert not AuditEntry.objects.exists()


def test_a_write_for_someone_allo_no_longer_knows_is_never_sent_and_records_nothing(
    manager_client: Client, sandbox: Sandbox
) -> None:
    gone = teammate_removed_from_allo(sandbox, LEA)
    sandbox.clear_stats()
    response = manager_client.post(queue_url(gone), NEW_QUEUE, headers=HTMX)
    # The queue is read before writing: Allo's 404 comes back then, and no PATCH leaves.
    assert failure_explain(AlloNotFoundError(code="ASSIGNEE_NOT_FOUND")).text in text(response)
    assert [(r["method"], r["status"]) for r in sandbox.stats()["log"]] == [("GET", 404)]
    assert not AuditEntry.objects.exists()


def test_a_write_to_an_unreachable_allo_is_never_sent_and_records_nothing(
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
    # Reading the queue before writing failed: no change left, so none is recorded.
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("fault", "outcome", "words"),
    [
        # Allo answered 502: it finished the request, and the re-read shows nothing applied.
        ({"status": 502}, Outcome.REFUSED, "Not saved:"),
        # Allo applied the change, then failed: the re-read shows it.
        ({"apply_then_fail": True}, Outcome.APPLIED, "Saved."),
        # No answer at all: Allo may still apply it later, so nothing is concluded.
        ({"hang": True}, Outcome.UNKNOWN, "Allo did not confirm the change"),
    ],
)
def test_a_write_allo_did_not_confirm_is_read_again_and_recorded_as_it_ended(
    manager_client: Client, sandbox: Sandbox, fault: dict[str, Any], outcome: str, words: str
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    sandbox.set_faults(FaultSpec.from_json({**fault, "methods": ["PATCH"]}))
    sandbox.clear_stats()
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert words in text(response)
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == outcome
    if outcome != Outcome.UNKNOWN:
        assert "the queue, read again right after," in entry.allo_message
    assert entry.allo_request_id == patches(sandbox)[0]["headers"]["x-request-id"]
    assert entry.changes == {"voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"}}
    applied = outcome == Outcome.APPLIED
    assert (sandbox.queue_of(chloe)["voicemail_handling"] == "SKIP") is applied


def test_a_write_that_lands_on_someone_elses_queue_is_recorded_as_misdirected(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    # Reads name Chloé's queue; the PATCH reaches Camille's (a read that came back for someone
    # else would stop the save before anything is written).
    sandbox.teammate_field_by_method = {"PATCH": "none"}
    manager_client.post(queue_url(chloe), data, headers=HTMX)
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.MISDIRECTED
    assert entry.allo_code == "WRONG_TEAMMATE"
    # Whoever may read Chloé's history reads the message: it names no one else. The other
    # teammate's id is kept apart, for operators (the admin).
    assert entry.allo_message == "Allo changed another teammate's queue instead."
    assert sandbox.owner_id not in entry.allo_message
    assert entry.other_teammate_id == sandbox.owner_id


def test_a_member_whose_write_lands_elsewhere_learns_nothing_of_the_other_teammate(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    browser = browser_of(account_of(sandbox, CHLOE, "chloe"))
    data = {**shown_form(browser, chloe), "voicemail_handling": "SKIP"}
    # The PATCH changes Allo's key owner's queue (Camille's) instead.
    sandbox.teammate_field_by_method = {"PATCH": "none"}
    sandbox.clear_stats()
    response = browser.post(queue_url(chloe), data, headers=HTMX)
    page = text(response)
    assert "Allo applied this to a different person's queue (another teammate)!" in page
    assert "Camille" not in page and sandbox.owner_id not in response.content.decode()
    # Nobody's name was asked of Allo for the message.
    assert [
        r["path"] for r in sandbox.stats()["log"] if r["path"].startswith("/v2/api/users")
    ] == []
    history = browser.get("/audit/")
    assert "Allo changed another teammate's queue instead." in text(history)
    assert sandbox.owner_id not in history.content.decode()
    csv_body = b"".join(browser.get("/audit/", {"format": "csv"}).streaming_content).decode()
    assert sandbox.owner_id not in csv_body


def test_a_manager_whose_write_lands_elsewhere_is_told_whose_queue_it_was(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    sandbox.teammate_field_by_method = {"PATCH": "none"}
    sandbox.clear_stats()
    response = manager_client.post(queue_url(chloe), data, headers=HTMX)
    # The name comes from the cached team list: no request about the other teammate.
    assert "a different person's queue (Camille Lefèvre)!" in text(response)
    assert [
        r["path"] for r in sandbox.stats()["log"] if r["path"].startswith("/v2/api/users")
    ] == []


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
    inner = sandbox_transport(sandbox)

    def break_on_patch(request: httpx.Request) -> httpx.Response:
        if request.method != "PATCH":
            return inner.handle_request(request)
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
                seen=QueueSettings("Grands comptes Rhône-Alpes", "NO_SKIP", "ENABLED"),
                author=Author(user=manager, name="Camille Lefèvre"),
            )
    finally:
        install_client(previous)
        client.close()
    entry = AuditEntry.objects.get()
    assert entry.outcome == Outcome.UNKNOWN
    assert entry.allo_message == "The dashboard failed while sending this change."
    assert entry.changes == {"name": {"before": "Grands comptes Rhône-Alpes", "after": "Nouveau"}}


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


def test_an_entry_cannot_be_overwritten_by_any_other_way_django_has(manager: User) -> None:
    entry = make_entry(manager)
    forged = AuditEntry(
        pk=entry.pk,
        author=manager,
        author_username="someone-else",
        teammate_id="usr-other",
        action=AuditEntry.Action.QUEUE_SETTINGS,
    )
    with pytest.raises(AuditEntryImmutableError), transaction.atomic():
        forged.save()  # a pk that exists: Django tries an UPDATE first
    with pytest.raises(AuditEntryImmutableError), transaction.atomic():
        AuditEntry.objects.bulk_create(
            [forged],
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["author_username", "teammate_id"],
        )
    with pytest.raises(AuditEntryImmutableError):
        AuditEntry.objects.bulk_create([forged], update_fields=["teammate_id"])
    with pytest.raises(AuditEntryImmutableError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk)._raw_delete(AuditEntry.objects.db)
    with pytest.raises(AuditEntryImmutableError), transaction.atomic():
        AuditEntry.objects.update_or_create(pk=entry.pk, defaults={"teammate_id": "usr-other"})
    kept = AuditEntry.objects.get()
    assert (kept.author_username, kept.teammate_id) == ("manager", "usr-chloe")
    # Adding entries in bulk is still allowed.
    AuditEntry.objects.bulk_create([AuditEntry(author=manager, teammate_id="usr-new")])
    assert AuditEntry.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_test_on_real_transactions_may_leave_entries_behind() -> None:
    """Its teardown flushes the database (a DELETE on SQLite, which the trigger refuses, a
    TRUNCATE on PostgreSQL): tests/conftest.py clears the entries first. Were it not so, this
    test would error at teardown."""
    author = User.objects.create_user("transactional", password="x" * 20)
    make_entry(author)
    make_entry(author, outcome=Outcome.PENDING)
    assert AuditEntry.objects.count() == 2


def test_a_pending_entry_is_completed_once_only(manager: User) -> None:
    entry = make_entry(manager, outcome=Outcome.PENDING)
    assert AuditEntry.objects.complete(entry.pk, outcome=Outcome.APPLIED) == 1
    assert AuditEntry.objects.complete(entry.pk, outcome=Outcome.REFUSED) == 0
    assert AuditEntry.objects.get().outcome == Outcome.APPLIED


def test_completing_sets_the_outcome_and_allos_answer_and_nothing_else(manager: User) -> None:
    entry = make_entry(manager, outcome=Outcome.PENDING)
    for forbidden in ("teammate_id", "changes", "author_username", "author", "created_at"):
        with pytest.raises(TypeError):
            AuditEntry.objects.complete(entry.pk, outcome=Outcome.APPLIED, **{forbidden: "x"})
    with pytest.raises(AuditEntryImmutableError):
        AuditEntry.objects.complete(entry.pk, outcome=Outcome.PENDING)
    with pytest.raises(AuditEntryImmutableError):
        AuditEntry.objects.complete(entry.pk, outcome="exploded")
    # Only what Allo kept ("after", "asked") of a field the entry holds; never "before".
    for results in (
        {"voicemail_handling": {"before": "SKIP"}},
        {"name": {"after": "Injected"}},
    ):
        with pytest.raises(AuditEntryImmutableError):
            AuditEntry.objects.complete(entry.pk, outcome=Outcome.APPLIED, results=results)
    assert AuditEntry.objects.get().outcome == Outcome.PENDING
    done = AuditEntry.objects.complete(
        entry.pk,
        outcome=Outcome.APPLIED,
        allo_code="",
        allo_message="ok",
        allo_request_id="req_x",
        results={"voicemail_handling": {"after": "SKIP_ALL", "asked": "SKIP"}},
    )
    assert done == 1
    kept = AuditEntry.objects.get()
    assert kept.changes == {
        "voicemail_handling": {"before": "NO_SKIP", "after": "SKIP_ALL", "asked": "SKIP"}
    }
    assert (kept.teammate_id, kept.author_username, kept.allo_request_id) == (
        "usr-chloe",
        "manager",
        "req_x",
    )
    # Finished: a second completion changes nothing, not even Allo's answer.
    assert AuditEntry.objects.complete(entry.pk, outcome=Outcome.REFUSED, allo_message="x") == 0
    assert AuditEntry.objects.get().allo_message == "ok"


def raw_sql(statement: str, params: list[Any]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_the_database_refuses_deleting_entries_and_rewriting_finished_ones(
    manager: User,
) -> None:
    """Triggers (migration 0002) stop what goes around Django: raw SQL, another client."""
    finished = make_entry(manager)
    pending = make_entry(manager, outcome=Outcome.PENDING, teammate_id="usr-pending")
    table = AuditEntry._meta.db_table
    refused = [
        (f"DELETE FROM {table} WHERE id = %s", [finished.pk]),
        (f"DELETE FROM {table} WHERE id = %s", [pending.pk]),
        (f"UPDATE {table} SET outcome = 'refused' WHERE id = %s", [finished.pk]),
        (f"UPDATE {table} SET allo_message = 'edited' WHERE id = %s", [finished.pk]),
        # A pending entry may only be completed: not rewritten, not left pending.
        (f"UPDATE {table} SET outcome = 'applied', teammate_id = 'x' WHERE id = %s", [pending.pk]),
        (
            f"UPDATE {table} SET author_username = 'x', outcome = 'applied' WHERE id = %s",
            [pending.pk],
        ),
        (f"UPDATE {table} SET allo_message = 'still pending' WHERE id = %s", [pending.pk]),
    ]
    for statement, params in refused:
        with pytest.raises(IntegrityError, match="append-only"):
            raw_sql(statement, params)
    forged_before = {"voicemail_handling": {"before": "FORGED", "after": "SKIP"}}
    with pytest.raises(IntegrityError, match="append-only"):
        raw_sql(
            f"UPDATE {table} SET outcome = 'applied', changes = %s WHERE id = %s",
            [json.dumps(forged_before), pending.pk],
        )
    assert AuditEntry.objects.count() == 2
    assert AuditEntry.objects.get(pk=finished.pk).outcome == Outcome.APPLIED
    assert AuditEntry.objects.get(pk=pending.pk).outcome == Outcome.PENDING
    # Completing, the one change allowed, passes the triggers.
    assert (
        AuditEntry.objects.complete(
            pending.pk, outcome=Outcome.APPLIED, results={"voicemail_handling": {"after": "SKIP"}}
        )
        == 1
    )


def test_audit_begin_refuses_to_run_inside_a_transaction(manager: User) -> None:
    """Its pending row must be committed before the request leaves: inside atomic() (or with
    ATOMIC_REQUESTS) a crash would roll the trace of a write that was sent away."""
    author = Author(user=manager, name="Camille Lefèvre")
    fields: dict[str, Any] = {
        "author": author,
        "teammate_id": "usr-chloe",
        "teammate_name": CHLOE,
        "action": AuditEntry.Action.QUEUE_SETTINGS,
        "changes": {"name": {"before": "a", "after": "b"}},
        "request_id": "req_dash_x",
    }
    with pytest.raises(AuditInTransactionError), transaction.atomic():
        audit_begin(**fields)
    assert not AuditEntry.objects.exists()
    entry = audit_begin(**fields)  # the test's own transaction does not count
    assert entry.outcome == Outcome.PENDING


def test_a_save_under_atomic_requests_fails_loudly_before_anything_is_sent(
    manager_client: Client, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**shown_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    sandbox.clear_stats()
    with pytest.raises(AuditInTransactionError):
        manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert patches(sandbox) == []
    assert sandbox.queue_of(chloe)["voicemail_handling"] == "NO_SKIP"


def test_the_audit_functions_complete_through_the_one_allowed_change(manager: User) -> None:
    author = Author(user=manager, name="Camille Lefèvre")
    entry = audit_begin(
        author=author,
        teammate_id="usr-chloe",
        teammate_name=CHLOE,
        action=AuditEntry.Action.QUEUE_SETTINGS,
        changes={"name": {"before": "a", "after": "b"}},
        request_id="req_dash_1",
    )
    audit_applied(entry, returned={"name": "B", "voicemail_handling": "SKIP"})
    assert AuditEntry.objects.get().changes == {"name": {"before": "a", "after": "B", "asked": "b"}}
    other = audit_begin(
        author=author,
        teammate_id="usr-chloe",
        teammate_name=CHLOE,
        action=AuditEntry.Action.QUEUE_SETTINGS,
        changes={"name": {"before": "a", "after": "c"}},
        request_id="req_dash_2",
    )
    error = AlloWrongTeammateError(
        "wrong", code="WRONG_TEAMMATE", expected_user_id="usr-chloe", returned_user_id="usr-zz"
    )
    audit_failed(other, error)
    misdirected = AuditEntry.objects.get(pk=other.pk)
    assert misdirected.outcome == Outcome.MISDIRECTED
    assert "usr-zz" not in misdirected.allo_message and misdirected.other_teammate_id == "usr-zz"


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


def test_staff_holding_the_view_permission_see_no_entry_in_the_admin(
    allo: AlloClient, sandbox: Sandbox, manager: User
) -> None:
    """The admin shows every entry, whatever an account may see: superusers only. A narrowed
    manager with staff status and every audit permission sees nothing there."""
    make_entry(manager, teammate_id=person(sandbox, LEA), teammate_name=LEA)
    staff = account_of(sandbox, ZOE, "zoe")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.set(Permission.objects.filter(codename__endswith="_auditentry"))
    assert staff.has_perm("dashboard.view_auditentry")
    ManagerScope.objects.create(user=staff)  # narrowed to no one
    browser = browser_of(staff)
    entry = AuditEntry.objects.get()
    for url in (
        "/admin/dashboard/auditentry/",
        f"/admin/dashboard/auditentry/{entry.pk}/change/",
        "/admin/dashboard/auditentry/add/",
        f"/admin/dashboard/auditentry/{entry.pk}/delete/",
    ):
        response = browser.get(url)
        assert response.status_code == 403, url
        assert LEA not in text(response), url
    index = browser.get("/admin/")
    assert index.status_code == 200
    assert "/admin/dashboard/auditentry/" not in index.content.decode()
    assert (
        browser.post(f"/admin/dashboard/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEntry.objects.count() == 1


def test_the_admin_shows_operators_whose_queue_a_misdirected_write_changed(manager: User) -> None:
    entry = make_entry(
        manager,
        outcome=Outcome.MISDIRECTED,
        allo_message="Allo changed another teammate's queue instead.",
        other_teammate_id="usr-owner",
    )
    admin = browser_of(User.objects.create_superuser("root", "root@example.com", "x" * 20))
    detail = admin.get(f"/admin/dashboard/auditentry/{entry.pk}/change/")
    assert "usr-owner" in text(detail)


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


def test_the_history_of_a_teammate_removed_from_allo_stays_readable_and_costs_allo_nothing(
    manager_client: Client, manager: User, sandbox: Sandbox
) -> None:
    make_entry(manager, teammate_id="usr-gone", teammate_name="Parti")
    sandbox.clear_stats()
    page = manager_client.get("/audit/", {"teammate": "usr-gone"})
    assert page.status_code == 200 and "Parti" in text(page)
    # An id neither on the team list nor in the history is a 404, like any unknown teammate.
    assert manager_client.get("/audit/", {"teammate": "usr-never"}).status_code == 404
    assert manager_client.get("/audit/", {"teammate": ".."}).status_code == 404
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
    manager_client: Client, manager: User, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    chloe = person(sandbox, CHLOE)
    untouched = manager_client.get(queue_url(chloe), headers=HTMX)
    assert "No change made from this dashboard yet." in text(untouched)
    make_entry(manager, teammate_id=chloe, created_at=timezone.now() - timedelta(minutes=10))
    # A refused attempt is not a change.
    make_entry(manager, teammate_id=chloe, author_name="Zoé", outcome=Outcome.REFUSED)
    sandbox.clear_stats()
    sandbox_clock.advance(settings.ALLO_SNAPSHOT_SECONDS)  # the first read is no longer shared
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
