"""Test settings: the production settings with the few overrides tests need."""

from __future__ import annotations

import os

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
