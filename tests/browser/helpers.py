"""What several browser tests do: find a teammate, open their queue card, read the sandbox."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from dashboard.allo.types import (
    DO_NOT_DISTURB,
    NOT_REACHED_REASONS,
    ROLES,
    ROUTING_RESULTS,
    STATUSES,
    SYNC_STATUSES,
    VOICEMAIL_HANDLING,
)
from dashboard.sandbox.server import SandboxServer
from dashboard.templatetags.dashboard_tags import queue_dom_id

CHLOE = "Chloé Dubois-Maréchal"  # 12 numbers, NO_SKIP, ENABLED, nobody dialing
INES = "Inès Benali"  # 60 numbers, a rep dialing them
LEA = "Léa Moreau"  # 137 numbers: 6 pages
# The name of a row's "Edit queue" button, before the teammate's name (an en dash).
EDIT_QUEUE = "Edit queue \N{EN DASH} "

# Every value Allo sends that a page puts into words: none may show raw.
ALLO_VALUES = (
    *ROUTING_RESULTS,
    *NOT_REACHED_REASONS,
    *SYNC_STATUSES,
    *VOICEMAIL_HANDLING,
    *DO_NOT_DISTURB,
    *ROLES,
    *STATUSES,
)


def teammate_id(live_allo: SandboxServer, name: str) -> str:
    return live_allo.sandbox.user_named(name)["id"]


def card_of(page: Page, user_id: str) -> Locator:
    """A teammate's queue card (on the teammates page, or the queue's own page)."""
    return page.locator(f"section#{queue_dom_id(user_id)}")


def overview_done(page: Page) -> None:
    """Wait until the team overview has counted every queue (it asks again until then)."""
    expect(page.locator("#team-overview:not([hx-get])")).to_be_attached(timeout=15_000)


def open_card(page: Page, live_allo: SandboxServer, name: str) -> Locator:
    """Press "Edit queue" on a teammate's row; the card, once its form is there."""
    user_id = teammate_id(live_allo, name)
    toggle = page.get_by_role("button", name=EDIT_QUEUE + name)
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    card = card_of(page, user_id)
    expect(card.get_by_role("button", name="Save")).to_be_visible()
    return card


def every_queue(live_allo: SandboxServer) -> dict[str, Any]:
    """Each teammate's queue settings as the sandbox holds them."""
    queues = {}
    for user in live_allo.sandbox.users:
        queue = live_allo.sandbox.queue_of(user["id"])
        queues[user["id"]] = queue and (
            queue["name"],
            queue["voicemail_handling"],
            queue["do_not_disturb"],
        )
    return queues


def raw_allo_values(text: str) -> list[str]:
    return [value for value in ALLO_VALUES if re.search(rf"\b{value}\b", text)]


def mark_the_page(page: Page) -> None:
    """A mark that only a full page load would erase: checked by ``still_the_same_page``."""
    page.evaluate("window.__marker = 'still here'")


def still_the_same_page(page: Page) -> bool:
    return page.evaluate("window.__marker") == "still here"
