"""Shared reads: one fetch for many viewers, and the last answer when Allo cannot give a new one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from dashboard.allo.client import AlloClient
from dashboard.allo.errors import AlloNotFoundError, AlloUnavailableError
from dashboard.allo.reads import _store_key, cached_expire, cached_put, cached_read
from dashboard.allo.store import shared_store
from dashboard.sandbox.clock import FakeClock
from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.faults import FaultSpec


class Fetcher:
    """A fetch that counts its calls and answers with ``value`` (or raises ``error``)."""

    def __init__(self, value: object = "answer") -> None:
        self.value = value
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.value


def test_ten_viewers_within_the_ttl_cost_allo_one_read(allo: AlloClient, sandbox: Sandbox) -> None:
    clock = FakeClock()
    snapshots = [
        cached_read("team:ACTIVE", ttl=5, stale_ttl=60, fetch=allo.list_users, clock=clock)
        for _ in range(10)
    ]
    assert len({tuple(s.value) for s in snapshots}) == 1
    assert not any(s.stale for s in snapshots)
    users = [r for r in sandbox.stats()["log"] if r["path"] == "/v2/api/users"]
    assert len(users) == 1


def test_an_answer_older_than_the_ttl_is_fetched_again() -> None:
    clock, fetch = FakeClock(), Fetcher()
    cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    clock.advance(4)
    kept = cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    assert (fetch.calls, kept.age, kept.stale) == (1, 4, False)
    clock.advance(2)
    fresh = cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    assert (fetch.calls, fresh.age, fresh.stale) == (2, 0, False)


def test_when_allo_cannot_answer_the_last_answer_is_served_stale_with_its_age() -> None:
    clock, fetch = FakeClock(), Fetcher(["Chloé"])
    cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    clock.advance(30)
    fetch.error = AlloUnavailableError(code="CIRCUIT_OPEN", request_sent=False)
    stale = cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    assert stale.value == ["Chloé"] and stale.stale and stale.age == 30
    assert stale.error is fetch.error
    clock.advance(40)  # 70 s old: past ttl + stale_ttl, nothing is kept any more
    with pytest.raises(AlloUnavailableError):
        cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)


def test_allos_real_refusals_are_never_hidden_behind_an_old_answer() -> None:
    clock, fetch = FakeClock(), Fetcher()
    cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    clock.advance(10)
    fetch.error = AlloNotFoundError(code="ASSIGNEE_NOT_FOUND")
    with pytest.raises(AlloNotFoundError):
        cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)


def test_concurrent_misses_in_one_process_make_one_fetch() -> None:
    release, started = threading.Event(), threading.Event()
    fetch = Fetcher()

    def slow() -> object:
        started.set()
        release.wait(5)
        return fetch()

    def read(_: int) -> object:
        return cached_read("k", ttl=5, stale_ttl=60, fetch=slow).value

    with ThreadPoolExecutor(max_workers=10) as pool:
        first = pool.submit(read, 0)
        assert started.wait(5)
        others = [pool.submit(read, i) for i in range(1, 10)]
        release.set()
        values = [first.result(5)] + [f.result(5) for f in others]
    assert values == ["answer"] * 10
    assert fetch.calls == 1


def test_while_another_process_refreshes_the_kept_answer_is_served() -> None:
    clock, fetch = FakeClock(), Fetcher()
    cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    clock.advance(6)
    shared_store.add(f"{_store_key('k')}:lease", 1, 10)  # another process is fetching
    kept = cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    assert fetch.calls == 1 and kept.stale and kept.error is None


def test_a_stale_team_is_served_while_allos_circuit_is_open(
    allo: AlloClient, sandbox: Sandbox
) -> None:
    clock = FakeClock()
    first = cached_read("team", ttl=5, stale_ttl=300, fetch=allo.list_users, clock=clock)
    sandbox.set_faults(FaultSpec(status=503))
    for _ in range(2):
        with pytest.raises(AlloUnavailableError):
            allo.list_users()  # five failures: the circuit opens
    clock.advance(60)
    later = cached_read("team", ttl=5, stale_ttl=300, fetch=allo.list_users, clock=clock)
    assert later.value == first.value and later.stale and later.age == 60
    assert isinstance(later.error, AlloUnavailableError) and later.error.code == "CIRCUIT_OPEN"


def test_a_save_kept_while_a_slow_read_runs_is_not_overwritten_by_the_read() -> None:
    clock = FakeClock()

    def slow_fetch() -> str:
        # The read asked Allo first; meanwhile a save returned the newer answer and kept it.
        clock.advance(0.5)
        cached_put("k", "saved", ttl=5, stale_ttl=60, clock=clock)
        clock.advance(0.5)
        return "read before the save"

    returned = cached_read("k", ttl=5, stale_ttl=60, fetch=slow_fetch, clock=clock)
    assert returned.value == "saved"
    fetch = Fetcher("not asked")
    kept = cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    assert (kept.value, kept.stale, fetch.calls) == ("saved", False, 0)


def test_a_save_in_the_same_instant_as_a_read_started_wins() -> None:
    clock = FakeClock()

    def fetch() -> str:
        cached_put("k", "saved", ttl=5, stale_ttl=60, clock=clock)
        return "read"

    cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock)
    assert shared_store.get(_store_key("k"))[0] == "saved"


def test_a_read_is_stamped_with_when_it_started() -> None:
    clock = FakeClock()

    def slow_fetch() -> str:
        clock.advance(2)
        return "answer"

    snapshot = cached_read("k", ttl=5, stale_ttl=60, fetch=slow_fetch, clock=clock)
    assert snapshot.age == 2
    assert shared_store.get(_store_key("k"))[1] == clock() - 2


def test_a_read_begun_before_an_expiry_does_not_keep_its_answer_as_fresh() -> None:
    clock = FakeClock()
    cached_read("k", ttl=5, stale_ttl=60, fetch=Fetcher("old"), clock=clock)
    clock.advance(6)

    def fetch_across_a_write() -> str:
        # Allo answered before the write; the write then expired the key.
        cached_expire("k", ttl=5, stale_ttl=60, clock=clock)
        return "before the write"

    cached_read("k", ttl=5, stale_ttl=60, fetch=fetch_across_a_write, clock=clock)
    fetch = Fetcher("after the write")
    assert cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock).value == (
        "after the write"
    )
    assert fetch.calls == 1


def test_an_expiry_does_not_put_back_an_older_answer_over_a_newer_one() -> None:
    clock = FakeClock()
    cached_read("k", ttl=5, stale_ttl=60, fetch=Fetcher("old"), clock=clock)
    real_get = shared_store.get
    calls = {"n": 0}

    def get_with_a_save_in_between(key: str, default: object = None) -> object:
        found = real_get(key, default)
        if key == _store_key("k") and calls["n"] == 0:
            # Another process saves right after the expiry read the old answer.
            calls["n"] += 1
            clock.advance(0.1)
            cached_put("k", "saved", ttl=5, stale_ttl=60, clock=clock)
        return found

    shared_store.get = get_with_a_save_in_between  # type: ignore[method-assign]
    try:
        cached_expire("k", ttl=5, stale_ttl=60, clock=clock)
    finally:
        del shared_store.get
    kept = real_get(_store_key("k"))
    assert kept == ("saved", clock())


def test_an_expiry_makes_the_next_read_fetch_and_keeps_the_answer_for_outages() -> None:
    clock = FakeClock()
    cached_read("k", ttl=5, stale_ttl=60, fetch=Fetcher("old"), clock=clock)
    cached_expire("k", ttl=5, stale_ttl=60, clock=clock)
    down = Fetcher()
    down.error = AlloUnavailableError(message="down", code="UNAVAILABLE")
    served = cached_read("k", ttl=5, stale_ttl=60, fetch=down, clock=clock)
    assert (served.value, served.stale, down.calls) == ("old", True, 1)
    fetch = Fetcher("new")
    assert cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock).value == "new"
    assert cached_read("k", ttl=5, stale_ttl=60, fetch=fetch, clock=clock).value == "new"
    assert fetch.calls == 1
