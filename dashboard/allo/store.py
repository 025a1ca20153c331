"""The store every process of the dashboard shares: Django's cache, with a local fallback.

In production the default cache is Redis (``REDIS_URL``), so the counters and flags kept here
(rate budget, Allo's Retry-After pause, the circuit, shared reads) are the same for every worker
on every host; Django's Redis backend makes ``add`` (SET NX) and ``incr`` (INCR) atomic. Without
Redis the default cache is this process's memory: right for a single process.

If Redis stops answering, each operation falls back to a store in this process's memory, and
Redis is tried again a few seconds later. The dashboard keeps working: each process then keeps its
own budget and circuit (so several processes together may exceed Allo's limits and meet its
429s, which the client honours) instead of failing every page. Two layers do this:
:class:`RedisCacheWithFallback`, the cache backend the settings use with ``REDIS_URL`` (so every
use of Django's cache degrades, not only Allo's), and :class:`SharedStore`, which the Allo client
goes through whatever the backend.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

# Seconds the shared store is left alone after it failed, before it is tried again.
RETRY_SHARED_AFTER = 5.0


class Fallback:
    """A local stand-in for a shared cache that failed, and when to try the shared one again.

    ``run(primary_call, local_call)`` calls the primary unless it failed less than
    ``retry_after`` seconds ago, and falls back to the local memory when it raises. The first
    failure of an outage is logged (a warning), and so is the recovery; nothing in between.
    """

    def __init__(
        self,
        name: str,
        *,
        retry_after: float = RETRY_SHARED_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.retry_after = retry_after
        self.clock = clock
        # LocMemCache instances of one name share their data: every thread sees the same.
        self.local = LocMemCache(f"allo-fallback:{name}", {"OPTIONS": {"MAX_ENTRIES": 10000}})
        self._lock = threading.Lock()
        self._down_until: float | None = None

    @property
    def down(self) -> bool:
        """True while the shared cache is failing and this process keeps its own state."""
        return self._down_until is not None

    def reset(self) -> None:
        with self._lock:
            self.local.clear()
            self._down_until = None

    def run[T](self, shared: Callable[[], T], local: Callable[[], T]) -> T:
        down_until = self._down_until
        if down_until is not None and self.clock() < down_until:
            return local()
        try:
            result = shared()
        except ValueError:
            # ``incr`` of a missing key: an answer, not an outage.
            raise
        except Exception as exc:
            # Whatever the backend raises (redis' ConnectionError, TimeoutError, OSError…):
            # the dashboard must degrade, not fail, while its shared store is away.
            self._went_down(exc)
            return local()
        if down_until is not None:
            self._came_back()
        return result

    def _went_down(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = self.clock() + self.retry_after
        if first:
            logger.warning(
                "The shared cache %s failed (%s: %s); this process keeps its own state (Allo "
                "rate budget, circuit, cached reads) until it answers again.",
                self.name,
                type(exc).__name__,
                exc,
            )

    def _came_back(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            logger.warning("The shared cache %s answers again.", self.name)


_fallbacks: dict[str, Fallback] = {}
_fallbacks_lock = threading.Lock()


def _fallback_for(name: str) -> Fallback:
    # One per process and cache, shared by the per-thread backend instances Django makes.
    with _fallbacks_lock:
        if name not in _fallbacks:
            _fallbacks[name] = Fallback(name)
        return _fallbacks[name]


def reset_fallbacks() -> None:
    """Forget every local fallback and outage (tests: as in a fresh process)."""
    with _fallbacks_lock:
        for fallback in _fallbacks.values():
            fallback.reset()


def _guarded(name: str) -> Callable[..., Any]:
    def method(self: RedisCacheWithFallback, *args: Any, **kwargs: Any) -> Any:
        shared = getattr(super(RedisCacheWithFallback, self), name)
        local = getattr(self.fallback.local, name)
        return self.fallback.run(lambda: shared(*args, **kwargs), lambda: local(*args, **kwargs))

    method.__name__ = name
    return method


class RedisCacheWithFallback(RedisCache):
    """Django's Redis cache backend, that serves from this process's memory while Redis is
    down instead of raising (set it as ``BACKEND``; ``LOCATION`` and ``OPTIONS`` as usual)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        # Named (and logged) without the password a Redis URL may carry.
        where = re.sub(r"//[^@/]*@", "//", str(server))
        self.fallback = _fallback_for(f"{where}#{params.get('KEY_PREFIX', '')}")

    add = _guarded("add")
    get = _guarded("get")
    set = _guarded("set")
    touch = _guarded("touch")
    delete = _guarded("delete")
    get_many = _guarded("get_many")
    has_key = _guarded("has_key")
    incr = _guarded("incr")
    set_many = _guarded("set_many")
    delete_many = _guarded("delete_many")
    clear = _guarded("clear")


class SharedStore:
    """The few cache operations the Allo client needs, on the cache ``alias``, each falling
    back to local memory if the backend raises (whichever backend it is)."""

    def __init__(self, alias: str = "default", *, fallback: Fallback | None = None) -> None:
        self.alias = alias
        self.fallback = fallback if fallback is not None else _fallback_for(f"store:{alias}")

    @property
    def degraded(self) -> bool:
        """True while the shared store fails and this process keeps its own state."""
        cache = caches[self.alias]
        return self.fallback.down or bool(
            isinstance(cache, RedisCacheWithFallback) and cache.fallback.down
        )

    def _run[T](self, operation: Callable[[BaseCache], T]) -> T:
        return self.fallback.run(
            lambda: operation(caches[self.alias]), lambda: operation(self.fallback.local)
        )

    def get(self, key: str, default: Any = None) -> Any:
        return self._run(lambda cache: cache.get(key, default))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        wanted = list(keys)
        return self._run(lambda cache: cache.get_many(wanted))

    def add(self, key: str, value: Any, timeout: float) -> bool:
        """Set ``key`` only if it is absent (atomic): True if this call set it."""
        return self._run(lambda cache: cache.add(key, value, timeout))

    def set(self, key: str, value: Any, timeout: float | None) -> None:
        self._run(lambda cache: cache.set(key, value, timeout))

    def delete_many(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        self._run(lambda cache: cache.delete_many(wanted))

    def count(self, key: str, timeout: float) -> int:
        """Add one to the counter ``key`` (created at 0, expiring after ``timeout`` seconds) and
        return its new value. Atomic across processes on Redis."""

        def count_in(cache: BaseCache) -> int:
            cache.add(key, 0, timeout)
            try:
                value = cache.incr(key)
            except ValueError:
                # It expired between add and incr.
                cache.add(key, 0, timeout)
                value = cache.incr(key)
            if value == 1:
                # Redis' INCR recreates a key that expired under it without an expiry: make
                # sure the counter this call started does expire.
                cache.touch(key, timeout)
            return int(value)

        return self._run(count_in)


shared_store = SharedStore()
