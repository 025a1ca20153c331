"""Small helpers the dashboard's test files share: what a person reads, and where things are."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client
from django.urls import reverse

from dashboard.sandbox.core import Sandbox

HTMX = {"HX-Request": "true"}


def text_of(html: str) -> str:
    """HTML with tags removed and spaces collapsed: what a person reads."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def text(response: Any) -> str:
    """What a person reads in a response."""
    return text_of(response.content.decode())


def person(sandbox: Sandbox, name: str) -> str:
    """The Allo id of the seeded teammate called ``name``."""
    return sandbox.user_named(name)["id"]


def queue_url(user_id: str) -> str:
    return reverse("dashboard:queue", args=[user_id])


def shown_form(client: Client, user_id: str) -> dict[str, str]:
    """The settings form as the page shows it: what a browser would post back untouched."""
    response = client.get(queue_url(user_id), headers=HTMX)
    assert response.status_code == 200
    form = response.context["form"]
    return {key: form.initial[key] for key in form.fields}
