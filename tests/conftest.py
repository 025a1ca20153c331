"""Fixtures shared by the test files."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.test import Client
from pytest_django.plugin import validate_django_db

from dashboard.allo.client import AlloClient, build_client, install_client
from dashboard.allo.resilience import Timing
from dashboard.allo.store import reset_fallbacks
from dashboard.permissions import team_roster
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import DEFAULT_API_KEY, Sandbox
from dashboard.sandbox.seed import OWNER_NAME, email_for
from dashboard.sandbox.server import SandboxServer
from dashboard.sandbox.transport import sandbox_transport


def _clear_cache() -> None:
    """Empty the cache, and forget the per-process fallback used while Redis is down. On Redis
    only this run's keys go (its KEY_PREFIX, see tests/settings.py), never the whole database."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        redis = backend._cache.get_client(write=True)
        keys = list(redis.scan_iter(match=f"{backend.key_prefix}:*", count=1000))
        if keys:
            redis.delete(*keys)
    else:
        backend.clear()
    reset_fallbacks()


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Each test starts with an empty cache: no team list, no sign-in failures, no Allo rate
    budget or circuit breaker state, from another."""
    _clear_cache()
    yield
    _clear_cache()


@pytest.fixture(autouse=True)
def _audit_rows_removed_after_transactional_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests on a real transaction (live_server, transactional_db) end with Django's flush.
    On SQLite that is a DELETE, which the audit table's append-only trigger refuses (migration
    0002; PostgreSQL's flush is a TRUNCATE, which row triggers do not see): the rows go first,
    past the trigger, which is put back at once."""
    marker = request.node.get_closest_marker("django_db")
    transaction, reset_sequences, *_rest = validate_django_db(marker) if marker else (False, False)
    named = {"transactional_db", "live_server", "django_db_reset_sequences"}
    if not (transaction or reset_sequences or named & set(request.fixturenames)):
        yield
        return
    # Set up transactional_db first, so that this teardown runs before its flush.
    request.getfixturevalue("transactional_db")
    yield
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name = %s",
            ["dashboard_auditentry_no_delete"],
        )
        triggers = cursor.fetchall()
        for name, _sql in triggers:
            cursor.execute(f'DROP TRIGGER "{name}"')
        cursor.execute("DELETE FROM dashboard_auditentry")
        for _name, sql in triggers:
            cursor.execute(sql)


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


def teammate_removed_from_allo(sandbox: Sandbox, name: str) -> str:
    """The id of the teammate called ``name``, on the team list the dashboard has cached, since
    removed from the team in Allo (Allo now answers 404 ASSIGNEE_NOT_FOUND for them).

    Ids the team list does not hold are refused before reaching Allo; this is how a request
    for someone Allo does not know still reaches it: they left within the cache's 30 seconds.
    """
    team_roster()
    user = sandbox.world.member(sandbox.user_named(name)["id"])
    assert user is not None
    sandbox.world.users.remove(user)
    sandbox.world.outsiders.append(user)
    sandbox.clear_stats()
    return user.id


# The dashboard ---------------------------------------------------------------------------------


@pytest.fixture
def allo(sandbox: Sandbox, sandbox_clock: FakeClock) -> Iterator[AlloClient]:
    """The dashboard's Allo client, talking to ``sandbox`` in process, installed for the test
    (what ``get_client()`` returns) and replaced by the previous one afterwards.

    It lives on the sandbox's clock: waiting for rate budget or a Retry-After, backing off
    between retries and cooling down after failures advance ``sandbox_clock`` instead of
    sleeping, so Allo and the dashboard see the same time pass, and no test waits."""
    client = build_client(
        base_url="http://allo.test",
        api_key=sandbox.api_key,
        transport=sandbox_transport(sandbox),
        timing=Timing.simulated(sandbox_clock),
    )
    previous = install_client(client)
    yield client
    install_client(previous)
    client.close()


@pytest.fixture
def manager(db: None) -> User:
    """The account of Camille Lefèvre, the sandbox team's ADMIN (linked by her Allo email)."""
    return User.objects.create_user(
        username="manager", password="correct horse battery", email=email_for(OWNER_NAME)
    )


@pytest.fixture
def manager_client(client: Client, manager: User, allo: AlloClient, sandbox: Sandbox) -> Client:
    """A signed-in manager's browser, the dashboard wired to the ``sandbox``.

    The team list that access checks read (two reads, then cached) is read beforehand, and the
    sandbox's log and rate budget start empty, so each test sees only its own requests.
    """
    client.force_login(manager)
    team_roster()
    sandbox.clear_stats()
    sandbox.limiter.clear()
    return client


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
