"""Saving without losing or inventing an edit: conflicts, merges, lost answers, double clicks.

A rep changes their queue in Allo's app while a manager has the form open (the sandbox's
``PUT /_sandbox/queues/<id>``, which Allo's log does not count); Allo fails before or after
applying a change (the fault switch). Each test asserts what the manager sees, what Allo
received (the request log, bodies included) and now holds, and what the audit trail says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import DatabaseError
from django.test import Client

from dashboard import services
from dashboard.allo.client import build_client, install_client
from dashboard.allo.resilience import Timing
from dashboard.models import AuditEntry
from dashboard.permissions import team_roster
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.server import SandboxServer
from dashboard.sandbox.transport import sandbox_transport
from dashboard.templatetags.dashboard_tags import queue_dom_id
from tests.conftest import sandbox_api_key
from tests.helpers import HTMX, person, queue_url, text

pytestmark = pytest.mark.django_db

CHLOE = "Chloé Dubois-Maréchal"  # "Grands comptes Rhône-Alpes", NO_SKIP, ENABLED
ANAIS = "Anaïs Fontaine"  # no queue at all
QUEUE = "/v2/api/dialing-queues/current"
Outcome = AuditEntry.Outcome


# Helpers ----------------------------------------------------------------------------------------


def form_values(response: Any) -> dict[str, str]:
    """The settings form as the response draws it: what a browser would send back untouched."""
    form = response.context["form"]
    return {name: form[name].value() or "" for name in form.fields}


def open_form(client: Client, user_id: str) -> dict[str, str]:
    response = client.get(queue_url(user_id), headers=HTMX)
    assert response.status_code == 200
    return form_values(response)


def rep_changes(allo_http: httpx.Client, user_id: str, **settings: str) -> None:
    """The rep changes their own queue in Allo's app, behind the dashboard's back."""
    assert allo_http.put(f"/_sandbox/queues/{user_id}", json=settings).status_code == 200


def requests(sandbox: Sandbox, method: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sandbox.stats()["log"] if method is None or r["method"] == method]


def settings_of(sandbox: Sandbox, user_id: str) -> tuple[Any, Any, Any] | None:
    queue = sandbox.queue_of(user_id)
    if queue is None:
        return None
    return (queue["name"], queue["voicemail_handling"], queue["do_not_disturb"])


def fault(sandbox: Sandbox, **spec: Any) -> None:
    sandbox.set_faults(FaultSpec.from_json(spec))


def post(client: Client, user_id: str, data: dict[str, str], sandbox: Sandbox) -> Any:
    """Press Save (htmx); Allo's log starts empty."""
    sandbox.clear_stats()
    return client.post(queue_url(user_id), data, headers=HTMX)


# Conflicts: someone changed what this save would overwrite ---------------------------------------


def test_a_conflicting_change_made_in_allo_while_the_form_was_open_is_shown_and_nothing_is_sent(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "name": "Comptes clés"}
    rep_changes(allo_http, chloe, name="Ma liste du lundi")
    response = post(manager_client, chloe, data, sandbox)

    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#{queue_dom_id(chloe)}-form"
    page = text(response)
    assert (
        "Someone changed this queue in Allo while you were editing it. Nothing was saved." in page
    )
    assert (
        "You saw Grands comptes Rhône-Alpes · Now in Allo: Ma liste du lundi · "
        "You want: Comptes clés" in page
    )
    html = response.content.decode()
    assert '<div class="alert alert--warning" role="alert"' in html
    assert "<legend>Queue name</legend>" in html
    assert re.search(r'name="resolve_name" value="keep" checked', html)
    assert 'name="resolve_name" value="overwrite"' in html
    assert "Keep Allo's current value" in page and "Overwrite with mine" in page
    # What the manager typed is kept; the value Allo showed is now the one seen.
    assert form_values(response)["name"] == "Comptes clés"
    assert form_values(response)["seen_name"] == "Ma liste du lundi"
    # Allo was only read: the rep's name stands.
    assert [r["method"] for r in requests(sandbox)] == ["GET"]
    assert settings_of(sandbox, chloe) == ("Ma liste du lundi", "NO_SKIP", "ENABLED")
    assert not AuditEntry.objects.exists()


def test_a_conflict_without_javascript_shows_the_whole_page_with_the_choice(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "do_not_disturb": "DISABLED"}
    rep_changes(allo_http, chloe, do_not_disturb="ENABLED", voicemail_handling="SKIP")
    rep_changes(allo_http, chloe, do_not_disturb="DISABLED")
    rep_changes(allo_http, chloe, do_not_disturb="ENABLED")
    # Back where it was: no conflict, the manager's change goes through.
    sandbox.clear_stats()
    assert manager_client.post(queue_url(chloe), data).status_code == 302
    assert settings_of(sandbox, chloe) == ("Grands comptes Rhône-Alpes", "SKIP", "DISABLED")
    data = {**open_form(manager_client, chloe), "do_not_disturb": "ENABLED"}
    rep_changes(allo_http, chloe, do_not_disturb="UNKNOWN_TOMORROW")
    sandbox.clear_stats()
    response = manager_client.post(queue_url(chloe), data)
    assert response.status_code == 200
    assert "<html" in response.content.decode()
    page = text(response)
    assert "You saw Let incoming calls ring · Now in Allo: UNKNOWN_TOMORROW" in page
    assert "12 numbers" in page  # the whole card, read again
    assert requests(sandbox, "PATCH") == []


def test_choosing_to_overwrite_sends_the_managers_value_and_records_what_it_replaced(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "name": "Comptes clés"}
    rep_changes(allo_http, chloe, name="Ma liste du lundi")
    conflict = post(manager_client, chloe, data, sandbox)
    response = post(
        manager_client, chloe, {**form_values(conflict), "resolve_name": "overwrite"}, sandbox
    )
    assert "Saved." in text(response)
    (patch,) = requests(sandbox, "PATCH")
    assert patch["body"] == {"name": "Comptes clés", "user_id": chloe, "user_pid": chloe}
    assert settings_of(sandbox, chloe) == ("Comptes clés", "NO_SKIP", "ENABLED")
    (entry,) = AuditEntry.objects.all()
    assert entry.changes == {"name": {"before": "Ma liste du lundi", "after": "Comptes clés"}}


def test_choosing_to_keep_allos_value_keeps_it_and_still_saves_the_other_changes(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {
        **open_form(manager_client, chloe),
        "name": "Comptes clés",
        "voicemail_handling": "SKIP",
    }
    rep_changes(allo_http, chloe, name="Ma liste du lundi")
    conflict = post(manager_client, chloe, data, sandbox)
    assert [c.field for c in conflict.context["conflicts"]] == ["name"]
    # "Keep" is the choice already made: pressing Save again keeps the rep's name.
    response = post(
        manager_client, chloe, form_values(conflict) | {"resolve_name": "keep"}, sandbox
    )
    assert "Saved." in text(response)
    (patch,) = requests(sandbox, "PATCH")
    assert patch["body"] == {"voicemail_handling": "SKIP", "user_id": chloe, "user_pid": chloe}
    assert settings_of(sandbox, chloe) == ("Ma liste du lundi", "SKIP", "ENABLED")


def test_a_value_changed_again_in_allo_after_the_conflict_was_shown_is_a_new_conflict(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "name": "Comptes clés"}
    rep_changes(allo_http, chloe, name="Ma liste du lundi")
    conflict = post(manager_client, chloe, data, sandbox)
    rep_changes(allo_http, chloe, name="Ma liste du mardi")
    # "Overwrite" was chosen against Monday's name, which is gone: the manager decides again.
    response = post(
        manager_client, chloe, {**form_values(conflict), "resolve_name": "overwrite"}, sandbox
    )
    assert "You saw Ma liste du lundi · Now in Allo: Ma liste du mardi" in text(response)
    assert requests(sandbox, "PATCH") == []
    assert settings_of(sandbox, chloe)[0] == "Ma liste du mardi"


def test_changes_to_different_settings_merge(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    rep_changes(allo_http, chloe, do_not_disturb="DISABLED")
    response = post(manager_client, chloe, data, sandbox)
    assert "Saved." in text(response)
    # Only the manager's setting is sent: the rep's change (not on the form) stands.
    (patch,) = requests(sandbox, "PATCH")
    assert patch["body"] == {"voicemail_handling": "SKIP", "user_id": chloe, "user_pid": chloe}
    assert settings_of(sandbox, chloe) == ("Grands comptes Rhône-Alpes", "SKIP", "DISABLED")
    # The card shows both changes, as Allo returned them.
    assert form_values(response)["do_not_disturb"] == "DISABLED"


def test_a_change_someone_already_made_in_allo_is_not_sent_again(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    rep_changes(allo_http, chloe, voicemail_handling="SKIP")
    response = post(manager_client, chloe, data, sandbox)
    assert "Nothing to save: these are already the queue's settings." in text(response)
    assert requests(sandbox, "PATCH") == []
    assert not AuditEntry.objects.exists()


def test_forged_seen_values_never_reach_the_audit_trail(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {
        **open_form(manager_client, chloe),
        "voicemail_handling": "SKIP",
        # A page tampered with: what it claims the manager saw is not what Allo had.
        "seen_name": "Forged name",
        "seen_do_not_disturb": "FORGED",
    }
    response = post(manager_client, chloe, data, sandbox)
    assert "Saved." in text(response)
    (entry,) = AuditEntry.objects.all()
    # "before" is what Allo had, read just before the PATCH.
    assert entry.changes == {"voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"}}
    # A forged value can only ever look like a conflict, never write anything.
    forged = {**open_form(manager_client, chloe), "name": "Autre", "seen_name": "Forged name"}
    response = post(manager_client, chloe, forged, sandbox)
    assert "You saw Forged name · Now in Allo: Grands comptes Rhône-Alpes" in text(response)
    assert requests(sandbox, "PATCH") == []
    assert "Forged" not in repr(list(AuditEntry.objects.values("changes")))


def test_a_queue_that_does_not_exist_yet_is_created_by_saving_the_settings_shown(
    manager_client: Client, sandbox: Sandbox
) -> None:
    anais = person(sandbox, ANAIS)
    data = open_form(manager_client, anais)
    # Nothing was seen: the defaults shown are what the manager chooses for the new queue.
    assert (data["seen_name"], data["seen_voicemail_handling"], data["seen_do_not_disturb"]) == (
        "",
        "",
        "",
    )
    response = post(manager_client, anais, data, sandbox)
    assert "Saved." in text(response)
    (patch,) = requests(sandbox, "PATCH")
    assert patch["body"] == {
        "voicemail_handling": "NO_SKIP",
        "do_not_disturb": "DISABLED",
        "user_id": anais,
        "user_pid": anais,
    }
    assert settings_of(sandbox, anais) == (None, "NO_SKIP", "DISABLED")


def test_a_queue_someone_created_while_the_form_was_open_is_a_conflict_for_the_name_typed(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    anais = person(sandbox, ANAIS)
    data = {**open_form(manager_client, anais), "name": "Premiers appels"}
    rep_changes(allo_http, anais, name="Sa propre liste")
    response = post(manager_client, anais, data, sandbox)
    assert "You saw — · Now in Allo: Sa propre liste · You want: Premiers appels" in text(response)
    assert requests(sandbox, "PATCH") == []


# Allo's answer lost: the queue is read again and the truth is told -------------------------------


def test_a_5xx_after_the_change_was_applied_is_reported_saved(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    fault(sandbox, apply_then_fail=True, methods=["PATCH"])
    response = post(manager_client, chloe, data, sandbox)
    assert "Saved. Allo's answer was lost, so the dashboard read the queue again" in text(response)
    # One PATCH, never repeated, then one read to check (then the card's own read).
    assert [(r["method"], r["status"]) for r in requests(sandbox)][:3] == [
        ("GET", 200),
        ("PATCH", 500),
        ("GET", 200),
    ]
    assert len(requests(sandbox, "PATCH")) == 1
    assert settings_of(sandbox, chloe)[1] == "SKIP"
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.APPLIED
    assert entry.changes == {"voicemail_handling": {"before": "NO_SKIP", "after": "SKIP"}}
    assert "read again right after, has it" in entry.allo_message


@pytest.mark.parametrize(
    "spec",
    [{"status": 500}, {"status": 503}, {"malformed": True}],
    ids=["500", "503", "malformed JSON"],
)
def test_a_failure_before_the_change_was_applied_is_reported_not_saved(
    manager_client: Client, sandbox: Sandbox, spec: dict[str, Any]
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    fault(sandbox, methods=["PATCH"], **spec)
    response = post(manager_client, chloe, data, sandbox)
    page = text(response)
    assert "Not saved: Allo failed before applying this change" in page
    assert "Saved." not in page
    assert form_values(response)["voicemail_handling"] == "SKIP"  # kept as typed
    assert [r["method"] for r in requests(sandbox)] == ["GET", "PATCH", "GET"]
    assert settings_of(sandbox, chloe)[1] == "NO_SKIP"
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.REFUSED
    assert "does not have it: it was not applied" in entry.allo_message


def test_a_timeout_whose_change_is_not_there_yet_is_unknown_not_not_saved(
    manager_client: Client, sandbox: Sandbox
) -> None:
    """No answer at all: the PATCH may still be running at Allo, so a read right after that
    lacks the change proves nothing (unlike a 5xx or a malformed body: Allo was done)."""
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    fault(sandbox, hang=True, methods=["PATCH"])
    response = post(manager_client, chloe, data, sandbox)
    page = text(response)
    assert "Allo did not confirm the change; it may or may not have been applied." in page
    assert "Reload the queue to check." in page
    assert "Saved." not in page and "Not saved" not in page
    assert form_values(response)["voicemail_handling"] == "SKIP"  # kept as typed
    assert [r["method"] for r in requests(sandbox)] == ["GET", "PATCH", "GET"]
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.UNKNOWN
    assert "it was not applied" not in entry.allo_message
    # The same form sent again is not sent twice: Allo may yet apply the first one.
    again = post(manager_client, chloe, data, sandbox)
    assert "Allo did not confirm that change" in text(again)
    assert requests(sandbox, "PATCH") == []


def test_a_timeout_whose_change_is_already_there_is_saved(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    fault(sandbox, apply_then_fail=True, hang=True, methods=["PATCH"])
    response = post(manager_client, chloe, data, sandbox)
    assert "Saved. Allo's answer was lost, so the dashboard read the queue again" in text(response)
    assert settings_of(sandbox, chloe)[1] == "SKIP"
    assert AuditEntry.objects.get().outcome == Outcome.APPLIED


def test_a_dashboard_failure_before_anything_was_sent_frees_the_form_for_a_retry(
    manager_client: Client, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    real_audit_begin = services.audit_begin

    def failing_audit_begin(**kwargs: Any) -> Any:
        raise DatabaseError("the audit trail could not be written")

    monkeypatch.setattr(services, "audit_begin", failing_audit_begin)
    with pytest.raises(DatabaseError):
        post(manager_client, chloe, data, sandbox)
    assert requests(sandbox, "PATCH") == []
    monkeypatch.setattr(services, "audit_begin", real_audit_begin)
    # The same form, sent again once the database is back: judged afresh, and saved.
    response = post(manager_client, chloe, data, sandbox)
    assert "Saved. Allo confirmed the queue's new settings" in text(response)
    assert len(requests(sandbox, "PATCH")) == 1
    assert settings_of(sandbox, chloe)[1] == "SKIP"


def test_a_dashboard_failure_after_the_patch_left_never_sends_the_form_again(
    manager_client: Client, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}

    def failing_audit_applied(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("the audit trail could not be written")

    monkeypatch.setattr(services, "audit_applied", failing_audit_applied)
    with pytest.raises(DatabaseError):
        post(manager_client, chloe, data, sandbox)
    assert len(requests(sandbox, "PATCH")) == 1
    again = post(manager_client, chloe, data, sandbox)
    assert "This form was already sent once, and Allo did not confirm that change." in text(again)
    assert requests(sandbox, "PATCH") == []


def test_a_save_whose_answer_is_lost_and_cannot_be_checked_says_so_and_is_unknown(
    manager: User, client: Client, sandbox: Sandbox, sandbox_clock: FakeClock
) -> None:
    """Allo applies the PATCH, then goes silent before the check: a transport in front of the
    sandbox refuses every connection once a PATCH went through."""
    inner = sandbox_transport(sandbox)
    patched: list[str] = []

    def silent_after_patch(request: httpx.Request) -> httpx.Response:
        if patched:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.method == "PATCH":
            patched.append(request.headers["X-Request-Id"])
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return inner.handle_request(request)

    allo = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=httpx.MockTransport(silent_after_patch),
        timing=Timing.simulated(sandbox_clock),
    )
    previous = install_client(allo)
    try:
        client.force_login(manager)
        team_roster()
        chloe = person(sandbox, CHLOE)
        data = {**open_form(client, chloe), "voicemail_handling": "SKIP"}
        response = client.post(queue_url(chloe), data, headers=HTMX)
    finally:
        install_client(previous)
        allo.close()
    page = text(response)
    assert "Allo did not confirm the change; it may or may not have been applied." in page
    assert "Reload the queue to check." in page
    assert "Saved." not in page and "Not saved" not in page
    assert len(patched) == 1
    (entry,) = AuditEntry.objects.all()
    assert entry.outcome == Outcome.UNKNOWN
    assert entry.allo_request_id == patched[0]


@pytest.fixture
def live_manager(
    manager: User, client: Client, live_sandbox: SandboxServer, settings: Any
) -> Iterator[Client]:
    """A manager's browser, the dashboard talking to ``live_sandbox`` over a real socket with a
    deadline of 2 seconds per action (socket timeouts far longer: only the deadline ends a
    hang)."""
    settings.ALLO_ACTION_DEADLINE = 2.0
    allo = build_client(base_url=live_sandbox.url, api_key=sandbox_api_key(), read_timeout=30)
    previous = install_client(allo)
    client.force_login(manager)
    team_roster()
    yield client
    install_client(previous)
    allo.close()


def test_a_hang_longer_than_the_deadline_ends_in_time_to_check_and_says_unknown(
    live_manager: Client, live_sandbox: SandboxServer
) -> None:
    sandbox = live_sandbox.sandbox
    chloe = person(sandbox, CHLOE)
    data = {**open_form(live_manager, chloe), "name": "Suspendue"}
    fault(sandbox, hang=True, methods=["PATCH"])
    sandbox.clear_stats()
    response = live_manager.post(queue_url(chloe), data, headers=HTMX)
    # The PATCH was given the deadline but a share kept back, in which the queue was read.
    # It may still be running at Allo: the read proves nothing, the outcome is unknown.
    page = text(response)
    assert "Allo did not confirm the change; it may or may not have been applied." in page
    assert "Not saved" not in page
    assert [(r["method"], r["status"]) for r in requests(sandbox)] == [
        ("GET", 200),
        ("PATCH", None),  # left hanging, never answered, never sent again
        ("GET", 200),
    ]
    assert settings_of(sandbox, chloe)[0] == "Grands comptes Rhône-Alpes"
    assert AuditEntry.objects.get().outcome == Outcome.UNKNOWN


# Double clicks ---------------------------------------------------------------------------------


def test_a_double_click_sends_one_patch_and_the_second_click_says_already_saved(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "name": "Une seule fois"}
    sandbox.clear_stats()
    first = manager_client.post(queue_url(chloe), data, headers=HTMX)
    second = manager_client.post(queue_url(chloe), data, headers=HTMX)
    assert "Saved." in text(first)
    assert "Already saved: this form was sent twice, and Allo has it once." in text(second)
    assert "Une seule fois" in text(second)
    assert len(requests(sandbox, "PATCH")) == 1
    assert AuditEntry.objects.count() == 1


def test_a_plain_double_click_redirects_both_times_and_saves_once(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    sandbox.clear_stats()
    first = manager_client.post(queue_url(chloe), data)
    second = manager_client.post(queue_url(chloe), data)
    assert first.status_code == second.status_code == 302
    page = manager_client.get(second["Location"])
    assert "Already saved: this form was sent twice, and Allo has it once." in text(page)
    assert len(requests(sandbox, "PATCH")) == 1


def test_a_second_click_while_the_first_is_on_its_way_sends_nothing(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "name": "En route"}
    # The first submission of this form holds its token: its PATCH is under way.
    assert cache.add(services._save_key(data["token"]), "pending", 60)
    response = post(manager_client, chloe, data, sandbox)
    assert "This change is already on its way to Allo (the form was sent twice)." in text(response)
    assert requests(sandbox) == []
    # The form drawn again carries a new token: pressing Save again is a new save.
    assert form_values(response)["token"] != data["token"]


def test_a_second_click_on_a_save_that_sent_nothing_is_judged_again(
    manager_client: Client, sandbox: Sandbox, allo_http: httpx.Client
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "name": "Comptes clés"}
    rep_changes(allo_http, chloe, name="Ma liste du lundi")
    first = post(manager_client, chloe, data, sandbox)
    second = post(manager_client, chloe, data, sandbox)
    # Nothing was sent the first time, so the second is not a duplicate: the same conflict.
    assert "Now in Allo: Ma liste du lundi" in text(first)
    assert "Now in Allo: Ma liste du lundi" in text(second)
    assert requests(sandbox, "PATCH") == []


def test_a_save_whose_fresh_read_comes_back_for_someone_else_writes_nothing(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = person(sandbox, CHLOE)
    data = {**open_form(manager_client, chloe), "voicemail_handling": "SKIP"}
    everyone = {user["id"]: settings_of(sandbox, user["id"]) for user in sandbox.users}
    sandbox.teammate_field = "none"  # Allo ignores the teammate: every request is Camille's
    response = post(manager_client, chloe, data, sandbox)
    # The read before writing caught it: an alarm, and no write anywhere.
    assert "Allo answered with a different person's queue (Camille Lefèvre)" in text(response)
    assert 'class="alert alert--alarm" role="alert"' in response.content.decode()
    assert requests(sandbox, "PATCH") == []
    assert not AuditEntry.objects.exists()
    assert {user["id"]: settings_of(sandbox, user["id"]) for user in sandbox.users} == everyone
