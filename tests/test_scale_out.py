"""Several processes, one Allo key: the budget and Allo's 429 are shared through Redis, and the
dashboard keeps working when Redis is away.

The cross-process tests start real Python processes with the tests' settings and the same Redis
key prefix, against a sandbox served on a real socket. They need Redis (``REDIS_URL``); without
it they are skipped, unless ``REQUIRE_REDIS_TESTS=1`` (CI's second run) makes that a failure.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.test import Client

from dashboard.allo.client import AlloClient, build_client
from dashboard.allo.errors import AlloRateLimitedError
from dashboard.allo.resilience import deadline
from dashboard.allo.store import Fallback, SharedStore
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec
from dashboard.sandbox.server import SandboxServer
from tests.conftest import sandbox_api_key

ROOT = Path(__file__).resolve().parent.parent
USERS = "/v2/api/users"

# A second dashboard process: reads ``count`` times from Allo at ``url`` with ``threads`` threads
# once told "go" on its standard input, prints what each read gave as one JSON line, then waits
# for its standard input to close, so that the test acts while it is still alive.
OTHER_PROCESS = """
import json, sys
from concurrent.futures import ThreadPoolExecutor

import django

django.setup()

from django.conf import settings

from dashboard.allo.client import build_client
from dashboard.allo.errors import AlloError
from dashboard.allo.resilience import deadline

url, count, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
client = build_client(base_url=url, api_key=settings.ALLO_API_KEY)


def read(_: int) -> str:
    try:
        with deadline(seconds):
            client.list_users()
    except AlloError as exc:
        return exc.code or type(exc).__name__
    return "ok"


print("ready", flush=True)
sys.stdin.readline()
with ThreadPoolExecutor(max_workers=threads) as pool:
    print(json.dumps(list(pool.map(read, range(count)))), flush=True)
sys.stdin.read()
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def statuses(sandbox: Sandbox, method: str, path: str) -> list[int | None]:
    log = sandbox.stats()["log"]
    return [r["status"] for r in log if r["method"] == method and r["path"] == path]


@pytest.fixture
def shared_redis() -> None:
    """The tests' cache is Redis, and it answers."""
    backend = caches["default"]
    reason = ""
    if not isinstance(backend, RedisCache):
        reason = "needs Redis: set REDIS_URL (e.g. redis://127.0.0.1:6379/15)"
    else:
        try:
            backend._cache.get_client(write=True).ping()
        except Exception as exc:
            reason = f"Redis at REDIS_URL does not answer ({type(exc).__name__})"
    if reason:
        if os.environ.get("REQUIRE_REDIS_TESTS") == "1":
            pytest.fail(f"REQUIRE_REDIS_TESTS=1 but this test {reason}")
        pytest.skip(reason)


class OtherProcess:
    """Another dashboard process, as a gunicorn worker on another host would be."""

    def __init__(self, url: str, *, count: int, threads: int = 1, seconds: float = 6.0) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", OTHER_PROCESS, url, str(count), str(threads), str(seconds)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_until_ready(self) -> None:
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line:
            self.process.wait(timeout=30)
            raise AssertionError(f"the other process ended early ({self.process.returncode})")
        return line

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def outcomes(self) -> list[str]:
        return json.loads(self._line())

    def end(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            if self.process.stdout is not None:
                self.process.stdout.close()


@pytest.fixture
def others() -> Iterator[list[OtherProcess]]:
    started: list[OtherProcess] = []
    yield started
    for other in started:
        other.end()


# Across processes (Redis) ----------------------------------------------------------------------


@pytest.mark.usefixtures("shared_redis")
def test_a_429_met_by_another_process_pauses_this_one_until_retry_after(
    live_sandbox: SandboxServer, others: list[OtherProcess]
) -> None:
    live_sandbox.sandbox.set_faults(FaultSpec(status=429, count=1))
    # Too short a deadline to wait out the 1 s Retry-After: the other process reports the 429.
    other = OtherProcess(live_sandbox.url, count=1, seconds=0.9)
    others.append(other)
    other.wait_until_ready()
    other.go()
    assert other.outcomes() == ["RATE_LIMIT_EXCEEDED"]
    with build_client(base_url=live_sandbox.url, api_key=sandbox_api_key()) as client:
        # This process never met a 429, yet does not send during the pause.
        with deadline(0.2), pytest.raises(AlloRateLimitedError) as caught:
            client.list_users()
        assert caught.value.code == "BUDGET_EXHAUSTED"
        assert statuses(live_sandbox.sandbox, "GET", USERS) == [429]
        # Given time, it waits the pause out, then asks once.
        assert client.list_users()
    assert statuses(live_sandbox.sandbox, "GET", USERS) == [429, 200]


@pytest.mark.usefixtures("shared_redis")
def test_two_processes_reading_at_once_share_one_budget_and_never_meet_a_429(
    live_sandbox: SandboxServer, others: list[OtherProcess]
) -> None:
    # 30 reads at once from two processes: alone, each would allow itself 18 a second, and
    # together they would pass Allo's 20.
    pair = [OtherProcess(live_sandbox.url, count=15, threads=15) for _ in range(2)]
    others.extend(pair)
    for other in pair:
        other.wait_until_ready()
    for other in pair:
        other.go()
    outcomes = [result for other in pair for result in other.outcomes()]
    served = statuses(live_sandbox.sandbox, "GET", USERS)
    assert 429 not in served
    assert set(outcomes) <= {"ok", "BUDGET_EXHAUSTED"}
    assert served.count(200) == outcomes.count("ok") >= 1


# Redis away ------------------------------------------------------------------------------------


def test_the_dashboard_serves_pages_while_redis_is_down(
    settings: Any,
    manager_client: Client,
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "dashboard.allo.store.RedisCacheWithFallback",
            "LOCATION": f"redis://:s3cret-pass@127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2, "retry": None},
        }
    }
    with caplog.at_level("WARNING", logger="dashboard.allo.store"):
        for _ in range(3):
            response = manager_client.get("/")
            assert response.status_code == 200
            assert "Chloé Dubois-Maréchal" in response.content.decode()
    assert statuses(sandbox, "GET", USERS)
    # Said once, not on every request, and without Redis' password.
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1
    assert "s3cret-pass" not in caplog.text


def test_the_client_degrades_to_its_own_budget_when_the_cache_backend_raises(
    settings: Any, allo: AlloClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    # Django's plain Redis backend raises when Redis is down: the client's store catches it.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2, "retry": None},
        }
    }
    with caplog.at_level("WARNING", logger="dashboard.allo.store"):
        for _ in range(25):
            assert allo.list_users()
    assert allo.budget.store.degraded
    assert statuses(sandbox, "GET", USERS) == [200] * 25
    assert len(caplog.records) == 1


def test_a_store_that_came_back_is_used_again(settings: Any) -> None:
    store = SharedStore(fallback=Fallback("test", retry_after=0))
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2, "retry": None},
        }
    }
    assert store.count("k", 5) == 1
    assert store.degraded
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert store.count("k", 5) == 1  # the shared store's own count, not the fallback's
    assert not store.degraded


# Settings --------------------------------------------------------------------------------------


def production_settings(**env: str) -> dict[str, Any]:
    """``dashboard.settings`` as a production process reads it from ``env``."""
    script = (
        "import json, dashboard.settings as s; "
        "print(json.dumps({'CACHES': s.CACHES, 'DATABASES': s.DATABASES}, default=str))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "DJANGO_SECRET_KEY": "x" * 50, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_redis_url_and_database_url_put_production_on_redis_and_postgresql() -> None:
    found = production_settings(
        REDIS_URL="redis://cache.internal:6379/2",
        DATABASE_URL="postgres://dash@db.internal:5432/dash",
    )
    cache = found["CACHES"]["default"]
    assert cache["BACKEND"] == "dashboard.allo.store.RedisCacheWithFallback"
    assert cache["LOCATION"] == "redis://cache.internal:6379/2"
    database = found["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["NAME"]) == ("db.internal", "dash")


def test_without_redis_one_process_keeps_the_budget_in_its_memory() -> None:
    found = production_settings()
    assert found["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    assert found["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"


def test_the_suite_runs_on_what_the_environment_names() -> None:
    backend = caches["default"]
    assert isinstance(backend, RedisCache) == bool(os.environ.get("REDIS_URL"))
    engine = django_settings.DATABASES["default"]["ENGINE"]
    assert engine.endswith("postgresql") == bool(os.environ.get("DATABASE_URL"))
