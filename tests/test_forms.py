"""The settings form: what a manager may type, checked before anything reaches Allo."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.forms import QueueSettingsForm, TeammateFilterForm
from dashboard.services import QueueSettings


def make_data(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Grands comptes",
        "voicemail_handling": "NO_SKIP",
        "do_not_disturb": "ENABLED",
        "seen_name": "Grands comptes",
        "seen_voicemail_handling": "NO_SKIP",
        "seen_do_not_disturb": "ENABLED",
    }
    return {**data, **overrides}


def test_an_untouched_form_is_valid_and_wants_what_was_seen() -> None:
    form = QueueSettingsForm(make_data())
    assert form.is_valid(), form.errors
    assert form.wanted() == form.seen()


@pytest.mark.parametrize(("length", "valid"), [(1, True), (255, True), (256, False)])
def test_a_name_is_one_to_255_characters(length: int, valid: bool) -> None:
    assert QueueSettingsForm(make_data(name="é" * length)).is_valid() is valid


def test_spaces_around_a_name_are_dropped() -> None:
    form = QueueSettingsForm(make_data(name="  Comptes clés  "))
    assert form.is_valid()
    assert form.wanted().name == "Comptes clés"


def test_clearing_a_name_is_refused_with_the_reason() -> None:
    form = QueueSettingsForm(make_data(name=""))
    assert not form.is_valid()
    assert "cannot be removed in Allo" in form.errors["name"][0]


def test_a_queue_that_never_had_a_name_may_stay_without_one() -> None:
    form = QueueSettingsForm(make_data(name="", seen_name=""))
    assert form.is_valid()
    assert form.wanted().name == ""


@pytest.mark.parametrize(
    "overrides",
    [
        {"voicemail_handling": "SOMETIMES"},
        {"do_not_disturb": "MAYBE"},
        {"voicemail_handling": ""},
    ],
)
def test_only_known_choices_are_accepted(overrides: dict[str, str]) -> None:
    assert not QueueSettingsForm(make_data(**overrides)).is_valid()


def test_a_setting_allo_added_tomorrow_stays_selectable_as_it_came() -> None:
    unknown = make_data(voicemail_handling="SMART_SKIP", seen_voicemail_handling="SMART_SKIP")
    form = QueueSettingsForm(unknown)
    assert form.is_valid(), form.errors
    assert ("SMART_SKIP", "SMART_SKIP") in form.fields["voicemail_handling"].choices
    # ...but only the value Allo showed, not any other unknown value.
    assert not QueueSettingsForm({**unknown, "voicemail_handling": "OTHER"}).is_valid()


def test_a_form_for_a_queue_remembers_what_it_showed() -> None:
    form = QueueSettingsForm.from_settings(QueueSettings("Q", "SKIP", "DISABLED"))
    # Each drawing of the form has its own one-time token (a double click saves once).
    token = form.initial.pop("token")
    again = QueueSettingsForm.from_settings(QueueSettings("Q", "SKIP", "DISABLED"))
    assert len(token) == 32 and token != again.initial["token"]
    assert form.initial == {
        "name": "Q",
        "voicemail_handling": "SKIP",
        "do_not_disturb": "DISABLED",
        "seen_name": "Q",
        "seen_voicemail_handling": "SKIP",
        "seen_do_not_disturb": "DISABLED",
    }
    labels = dict(form.fields["voicemail_handling"].choices)
    assert labels["SKIP"] == "Skip voicemails, go to the next number"
    assert labels["NO_SKIP"] == "Stay on the call when a voicemail answers"


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ({}, {"role": None, "status": "ACTIVE", "query": ""}),
        (
            {"role": "MEMBER", "status": "all", "q": "léa"},
            {"role": "MEMBER", "status": "all", "query": "léa"},
        ),
        ({"role": "CEO", "status": "GONE"}, {"role": None, "status": "ACTIVE", "query": ""}),
        # A bad value drops its own filter only.
        (
            {"q": "chloe", "status": "bogus"},
            {"role": None, "status": "ACTIVE", "query": "chloe"},
        ),
        (
            {"q": "chloe", "role": "CEO", "status": "all"},
            {"role": None, "status": "all", "query": "chloe"},
        ),
    ],
)
def test_the_team_filters_fall_back_to_allos_defaults(
    query: dict[str, str], filters: dict[str, Any]
) -> None:
    assert TeammateFilterForm(query).filters() == filters
