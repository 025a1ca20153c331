"""Fixtures shared by the test files."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from dashboard.allo.client import AlloClient, build_client, install_client
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import DEFAULT_API_KEY, Sandbox
from dashboard.sandbox.server import SandboxServer
from dashboard.sandbox.transport import sandbox_transport

# The Allo sandbox ------------------------------------------------------------------------------


def sandbox_api_key() -> str:
    """The key the tests' settings give the dashboard, so a client built from settings gets in."""
    return settings.ALLO_API_KEY or DEFAULT_API_KEY


@pytest.fixture
def sandbox_clock() -> FakeClock:
    """The ``sandbox`` fixture's clock: it moves only with ``sandbox_clock.advance(seconds)``."""
    return FakeClock()


@pytest.fixture
def sandbox(sandbox_clock: FakeClock) -> Sandbox:
    """A fresh seeded Allo sandbox (seed 7) on a fake clock, whose key is settings.ALLO_API_KEY."""
    return Sandbox(api_key=sandbox_api_key(), clock=sandbox_clock)


@pytest.fixture
def allo_http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An httpx client talking to ``sandbox`` in process, with the key's Authorization header."""
    with httpx.Client(
        transport=sandbox_transport(sandbox),
        base_url="http://allo.test",
        headers={"Authorization": f"Api-Key {sandbox.api_key}"},
    ) as client:
        yield client


@pytest.fixture
def live_sandbox() -> Iterator[SandboxServer]:
    """A sandbox served on a free loopback port (real clock, no simulated dialing); ``.url`` is
    its base URL and ``.sandbox`` the core behind it. Stopped at teardown."""
    with SandboxServer(Sandbox(api_key=sandbox_api_key()), port=0, dial_interval=0) as server:
        yield server


# The dashboard ---------------------------------------------------------------------------------


@pytest.fixture
def allo(sandbox: Sandbox) -> Iterator[AlloClient]:
    """The dashboard's Allo client, talking to ``sandbox`` in process, installed for the test
    (what ``get_client()`` returns) and replaced by the previous one afterwards."""
    client = build_client(
        base_url="http://allo.test", api_key=sandbox.api_key, transport=sandbox_transport(sandbox)
    )
    previous = install_client(client)
    yield client
    install_client(previous)
    client.close()


@pytest.fixture
def manager(db: None) -> User:
    return User.objects.create_user(username="manager", password="correct horse battery")


@pytest.fixture
def manager_client(client: Client, manager: User, allo: AlloClient) -> Client:
    """A signed-in manager's browser, the dashboard wired to the ``sandbox``."""
    client.force_login(manager)
    return client
