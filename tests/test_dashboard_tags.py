"""Dates and Allo's values as the pages show them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone, translation

from dashboard.allo.types import QueueNumber
from dashboard.templatetags.dashboard_tags import result_label, when

NOON = datetime(2026, 3, 12, 10, 7, tzinfo=UTC)  # 11:07 in Paris


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: NOON + timedelta(days=10))
    return NOON + timedelta(days=10)


@pytest.mark.parametrize(
    ("language", "short", "full"),
    [
        ("en", ">12 Mar, 11:07<", 'title="Thursday 12 March 2026, 11:07"'),
        ("fr", ">12 mars, 11:07<", 'title="jeudi 12 mars 2026, 11:07"'),
    ],
)
def test_a_date_is_day_month_in_letters_and_24_hour_time(
    language: str, short: str, full: str, frozen_now: datetime
) -> None:
    with translation.override(language):
        html = when(NOON)
    assert short in html and full in html
    assert 'datetime="2026-03-12T10:07:00+00:00"' in html


def test_a_date_of_another_year_says_the_year(frozen_now: datetime) -> None:
    with translation.override("en"):
        assert ">12 Mar 2025, 11:07<" in when(NOON.replace(year=2025))


@pytest.mark.parametrize(
    ("ago", "words"),
    [
        (timedelta(seconds=0), r"just now"),
        (timedelta(seconds=59), r"just now"),
        (timedelta(minutes=3), r"3\xa0minutes ago"),
        # After a day, the date itself.
        (timedelta(days=2), r"\d{1,2} [A-Z][a-z]{2}( \d{4})?, \d\d:\d\d"),
    ],
)
def test_a_relative_date_says_just_now_then_ago_then_the_date(ago: timedelta, words: str) -> None:
    with translation.override("en"):
        assert re.search(f">{words}</time>", when(timezone.now() - ago, relative=True))


def test_no_date_shows_nothing() -> None:
    assert when(None) == ""


def number(**fields: Any) -> QueueNumber:
    return QueueNumber(number_to="+33612345678", position=0, **fields)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        # The summary's words: a busy line is counted as "Line busy", not as "Not reached".
        ({"routing_result": "FAILED", "not_reached_destination_reason": "BUSY"}, "Line busy"),
        ({"routing_result": "FAILED", "not_reached_destination_reason": "DECLINED"}, "Not reached"),
        # Not the teammate's status "Blocked".
        ({"routing_result": "BLOCKED"}, "Call blocked"),
        ({"routing_result": "RECEIVED"}, "Inbound call received"),
        ({"routing_result": "TELEPORTED"}, "TELEPORTED"),
    ],
)
def test_a_numbers_result_uses_the_words_of_the_summary(fields: dict[str, Any], words: str) -> None:
    with translation.override("en"):
        assert result_label(number(**fields)) == words
