"""Test settings: the production settings with the few overrides tests need."""

from __future__ import annotations

import os
import uuid

os.environ.setdefault(
    "DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production-use-0123456789"
)
os.environ.setdefault("ALLO_API_KEY", "ak_live_TESTKEY_0000000000")
os.environ.setdefault("ALLO_API_BASE_URL", "http://allo.test")

from dashboard.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Static files from the app directories as they are, without a collectstatic run first.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# The sandbox's limits, stated, so that no test spends a request asking GET /v2/api/me for them
# (tests/test_budget.py covers learning them from Allo).
ALLO_READS_PER_SECOND = 20
ALLO_WRITES_PER_SECOND = 5

# With REDIS_URL (and DATABASE_URL) the suite runs on Redis (and PostgreSQL), as production does.
# This run's keys carry a prefix of their own, inherited by the processes the tests start, so that
# runs sharing a Redis database never see each other's budget or circuit.
if REDIS_URL:  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = os.environ.setdefault(  # noqa: F405
        "ALLO_TEST_CACHE_PREFIX", f"allo-test-{uuid.uuid4().hex[:12]}"
    )
