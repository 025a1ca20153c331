"""Shared reads: one answer from Allo, kept a few seconds in the shared store, for everyone.

Ten managers watching the same team cost Allo about what one does: the first to ask fetches, the
others (in every process) get the same answer until it is ``ttl`` seconds old. Within one
process, concurrent misses wait for one fetch (single flight); across processes, while one
refreshes an expired answer the others keep serving the old one. When Allo cannot answer (down,
circuit open, out of budget), the last answer is served, marked stale with its age, for up to
``stale_ttl`` more seconds, so that a page can show it with a banner instead of an error.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from dashboard.allo.errors import (
    AlloBadResponseError,
    AlloError,
    AlloRateLimitedError,
    AlloUnavailableError,
)
from dashboard.allo.resilience import current_deadline
from dashboard.allo.store import SharedStore, shared_store

# Failures that say "not now" rather than "no": the last answer may stand in for a new one.
TRANSIENT = (AlloUnavailableError, AlloRateLimitedError, AlloBadResponseError)
# How long one process may hold the right to refresh an answer, at most.
LEASE_SECONDS = 10


@dataclass(frozen=True)
class Snapshot[T]:
    """An answer from Allo and how old it is.

    ``stale`` is True when it is older than the ``ttl`` asked for: ``error`` then says why no
    fresher one could be had (None: another process was fetching it that very moment).
    """

    value: T
    fetched_at: datetime
    age: float
    stale: bool
    error: AlloError | None = None


class _SingleFlight:
    """One lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[bool]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        acquired = lock.acquire(timeout=max(timeout, 0.0))
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


_flights = _SingleFlight()


def _store_key(key: str) -> str:
    # Keyed by the API key's digest too: another key may be another team. Hashed, so that any
    # caller key (spaces, length) is a valid cache key.
    namespace = f"{settings.ALLO_API_BASE_URL}\n{settings.ALLO_API_KEY}\n{key}"
    return "allo:read:" + hashlib.sha256(namespace.encode()).hexdigest()[:32]


def cached_read[T](
    key: str,
    *,
    ttl: float,
    stale_ttl: float,
    fetch: Callable[[], T],
    store: SharedStore | None = None,
    clock: Callable[[], float] = time.time,
) -> Snapshot[T]:
    """``fetch()``'s answer, shared by every process for ``ttl`` seconds under ``key``.

    ``key`` names the read with everything that changes its answer (``"team:MEMBER:ACTIVE"``,
    ``f"queue:{user_id}"``). When ``fetch`` raises a transient AlloError (unavailable, circuit
    open, rate limited, bad response) and an answer younger than ``ttl + stale_ttl`` is kept,
    that answer is returned with ``stale=True`` and the ``error``; without one the error is
    raised. Any other AlloError (404, 403…) is always raised: it is Allo's real answer.
    ``fetch``'s value must pickle (the dataclasses of ``dashboard.allo.types`` do).
    """
    store = store if store is not None else shared_store
    full_key = _store_key(key)

    def snapshot(entry: tuple[T, float], error: AlloError | None = None) -> Snapshot[T]:
        value, fetched_at = entry
        age = max(0.0, clock() - fetched_at)
        return Snapshot(
            value=value,
            fetched_at=datetime.fromtimestamp(fetched_at, UTC),
            age=age,
            stale=age >= ttl,
            error=error,
        )

    def kept() -> tuple[T, float] | None:
        entry = store.get(full_key)
        return entry if isinstance(entry, tuple) and len(entry) == 2 else None

    entry = kept()
    if entry is not None and clock() - entry[1] < ttl:
        return snapshot(entry)
    until = current_deadline()
    wait = until.remaining() if until is not None else LEASE_SECONDS
    with _flights.hold(full_key, wait) as flying:
        entry = kept()
        if entry is not None and clock() - entry[1] < ttl:
            # Another thread of this process fetched it while this one waited.
            return snapshot(entry)
        if not flying:
            if entry is not None:
                return snapshot(entry)
            raise AlloUnavailableError(
                message="Allo did not answer in time.",
                code="DEADLINE_EXCEEDED",
                request_sent=False,
            )
        lease = f"{full_key}:lease"
        leased = store.add(lease, 1, LEASE_SECONDS)
        if not leased and entry is not None:
            # Another process is refreshing it: the answer kept will do meanwhile.
            return snapshot(entry)
        # Stamped with when the fetch started: its answer is no newer than that, and anything
        # kept meanwhile (a save's cached_put) must not be overwritten by it.
        started = clock()
        generation = store.get(_generation_key(full_key))
        try:
            value = fetch()
        except TRANSIENT as error:
            if entry is not None and clock() - entry[1] < ttl + stale_ttl:
                return snapshot(entry, error)
            raise
        finally:
            if leased:
                store.delete_many([lease])
        fresh = (value, started)
        found = store.get_many([full_key, _generation_key(full_key)])
        newer = found.get(full_key)
        if isinstance(newer, tuple) and len(newer) == 2 and newer[1] >= started:
            # A save kept its answer (cached_put) while this fetch ran: that one is newer.
            return snapshot(newer)
        if found.get(_generation_key(full_key)) == generation:
            # Kept unless cached_expire ran meanwhile: then this answer may predate the write
            # that expired the key, and is only returned, not kept. There is no compare-and-set
            # in the store: a save landing between the look above and this set (a few ms) can
            # still be overwritten by this older answer, until it expires.
            store.set(full_key, fresh, ttl + stale_ttl)
        return snapshot(fresh)


def _generation_key(full_key: str) -> str:
    # Counts the cached_expire calls of the key: a fetch that saw it change does not keep its
    # answer.
    return f"{full_key}:generation"


def cached_put[T](
    key: str,
    value: T,
    *,
    ttl: float,
    stale_ttl: float,
    store: SharedStore | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Keep ``value`` under ``key`` as a fresh answer (what a write just returned), for every
    process, as ``cached_read`` would have kept it."""
    store = store if store is not None else shared_store
    # Stamped "now": newer than any read still in flight (they are stamped with their start),
    # which will then leave this answer in place.
    store.set(_store_key(key), (value, clock()), ttl + stale_ttl)


def cached_expire(
    key: str,
    *,
    ttl: float,
    stale_ttl: float,
    store: SharedStore | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Make the answer kept under ``key`` too old to serve as fresh (a write may have changed
    it): the next read fetches, but while Allo cannot answer it is still served, stale."""
    store = store if store is not None else shared_store
    full_key = _store_key(key)
    # Reads in flight now may have started before the write: they must not keep their answers.
    store.count(_generation_key(full_key), max(LEASE_SECONDS, ttl + stale_ttl))
    entry = store.get(full_key)
    now = clock()
    if not (isinstance(entry, tuple) and len(entry) == 2 and now - entry[1] < ttl):
        return
    # Put back only the answer just read, and only if it is still the one kept: a newer one kept
    # meanwhile (a save's cached_put) stays. The store has no compare-and-set, so one kept
    # between the check and the set (a few ms) can still be replaced by the older answer,
    # marked expired: the next read then fetches again.
    current = store.get(full_key)
    if isinstance(current, tuple) and len(current) == 2 and current[1] == entry[1]:
        store.set(full_key, (entry[0], now - ttl), ttl + stale_ttl)
