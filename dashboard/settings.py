"""Settings for the Allo Power Dialer team dashboard, read from environment variables.

Every value a deployment may change comes from the environment through the small helpers below,
which raise ImproperlyConfigured on a value they cannot read. Secure by default: DEBUG is off
unless DJANGO_DEBUG says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (see the README)."
        )
    SECRET_KEY = "insecure-development-key-only-for-debug-mode"

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# A refused form says why in words (a fragment for htmx), not Django's developer page.
CSRF_FAILURE_VIEW = "dashboard.errorpages.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # naturaltime ("3 minutes ago", "il y a 3 minutes") and intcomma for localised counts.
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Cache-Control: private, no-store on every answer to a signed-in account.
    "dashboard.middleware.PrivatePagesMiddleware",
    # LoginRequiredMiddleware that answers htmx requests with a whole-page redirect.
    "dashboard.middleware.HtmxLoginRequiredMiddleware",
    # Who may see which teammate: request.access, and a 404 for a teammate out of reach.
    "dashboard.permissions.TeamAccessMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.permissions.access_context",
                # allo_outage: the banner shown while Allo is not answering.
                "dashboard.context_processors.allo_outage",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=60,
        # A connection kept between requests is checked first: PostgreSQL may have restarted.
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The store every process shares (Allo's rate budget, its circuit breaker, shared reads): Redis
# in production, so that all workers and hosts agree; this process's memory without REDIS_URL,
# which is right for a single process only. Short socket timeouts: when Redis is away the
# dashboard falls back to per-process memory (dashboard/allo/store.py) instead of failing.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache, serving from local memory while Redis is down.
            "BACKEND": "dashboard.allo.store.RedisCacheWithFallback",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "allo-dash"),
            # No retries inside redis-py (its default backs off for a few hundred ms): a failed
            # operation falls back to local memory at once.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry": None},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:teammates"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The header's language switcher stores the choice in this cookie; without it, the browser's
# Accept-Language decides (LocaleMiddleware).
LANGUAGE_COOKIE_SECURE = not DEBUG
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "Europe/Paris")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security: strict by default, loosened only by DEBUG for local work.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = 0 if DEBUG else int(env_float("DJANGO_SECURE_HSTS_SECONDS", 31536000))
# includeSubDomains and preload reach past this host (every subdomain; browsers' built-in lists,
# hard to leave): a deployment opts in to each. Until it does, check --deploy's reminders about
# them (security.W005, security.W021) are silenced, as the choice is deliberate.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Teammates' photos: Allo's image_url is shown only when it is https: (dashboard_security's
# avatar_src filter), and, if this lists hosts (e.g. "cdn.withallo.com"), only from them, which
# the CSP then allows instead of any https: host. Empty (the default): any https: host, as
# Allo documents no image host to pin.
ALLO_AVATAR_HOSTS = [host.lower() for host in env_list("ALLO_AVATAR_HOSTS", [])]

# Django's built-in Content Security Policy: no inline script or style, nonces where needed.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [
        CSP.SELF,
        "data:",
        *([f"https://{host}" for host in ALLO_AVATAR_HOSTS] or ["https:"]),
    ],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Allo.
ALLO_API_BASE_URL = env_str("ALLO_API_BASE_URL", "https://api.withallo.com")
ALLO_API_KEY = env_str("ALLO_API_KEY")
# Seconds: how long to wait to connect, and for each read/write on the socket.
ALLO_CONNECT_TIMEOUT = env_float("ALLO_CONNECT_TIMEOUT", 3.0)
ALLO_READ_TIMEOUT = env_float("ALLO_READ_TIMEOUT", 8.0)
# Seconds one user action may spend on Allo, retries and waits included (dashboard.allo.
# resilience.deadline); a call made outside any action gets this much of its own.
ALLO_ACTION_DEADLINE = env_float("ALLO_ACTION_DEADLINE", 6.0)
# Sends per call at most (reads are retried; writes only when surely not applied).
ALLO_ATTEMPTS = env_int("ALLO_ATTEMPTS", 3)
# The longest a call waits for rate budget before "Allo is busy, try again in N s".
ALLO_BUDGET_WAIT = env_float("ALLO_BUDGET_WAIT", 3.0)
# The key's limits per second, shared by every process; unset: what GET /v2/api/me reports,
# else 20 and 5. The dashboard keeps ALLO_RATE_SAFETY_MARGIN of each unused (at least one).
ALLO_READS_PER_SECOND = env_int("ALLO_READS_PER_SECOND", None)
ALLO_WRITES_PER_SECOND = env_int("ALLO_WRITES_PER_SECOND", None)
ALLO_RATE_SAFETY_MARGIN = env_float("ALLO_RATE_SAFETY_MARGIN", 0.1)
# After this many failures in a row (timeouts, connection errors, 5xx) no request goes to Allo
# for ALLO_CIRCUIT_COOLDOWN seconds; then one trial request decides.
ALLO_CIRCUIT_FAILURES = env_int("ALLO_CIRCUIT_FAILURES", 5)
ALLO_CIRCUIT_COOLDOWN = env_float("ALLO_CIRCUIT_COOLDOWN", 20.0)
# Shared reads (dashboard.allo.reads): the team list and each queue, as Allo last answered, are
# kept in the shared store and served to every manager for ALLO_SNAPSHOT_SECONDS; while Allo
# cannot answer, the last answer is shown (marked with its age) for ALLO_SNAPSHOT_STALE_SECONDS
# more.
ALLO_SNAPSHOT_SECONDS = env_float("ALLO_SNAPSHOT_SECONDS", 3.0)
ALLO_SNAPSHOT_STALE_SECONDS = env_float("ALLO_SNAPSHOT_STALE_SECONDS", 3600.0)

# Access: roles are read from Allo's team list, kept this many seconds (a role changed in Allo
# takes effect within that time).
DASHBOARD_TEAM_CACHE_SECONDS = env_float("ALLO_TEAM_CACHE_SECONDS", 30.0)

# Signing in: this many wrong passwords within the window lock the username (or the client
# address: an office behind one address shares it, hence a higher limit) for a while.
SIGNIN_MAX_FAILURES_PER_ACCOUNT = 5
SIGNIN_MAX_FAILURES_PER_ADDRESS = 20
SIGNIN_WINDOW_SECONDS = 15 * 60
SIGNIN_LOCKOUT_SECONDS = 15 * 60
# Behind a proxy, the request.META key of the header carrying the client's address (e.g.
# HTTP_X_FORWARDED_FOR); empty: REMOTE_ADDR. Each proxy appends the address it was reached
# from, so with N proxies in front of the dashboard the client is the Nth entry from the right
# (a check, dashboard.W001, warns behind a TLS proxy without the header).
SIGNIN_CLIENT_IP_HEADER = env_str("DJANGO_CLIENT_IP_HEADER")
SIGNIN_TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXY_COUNT", 1)
if SIGNIN_TRUSTED_PROXY_COUNT is None or SIGNIN_TRUSTED_PROXY_COUNT < 1:
    raise ImproperlyConfigured("DJANGO_TRUSTED_PROXY_COUNT must be 1 or more.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "httpx": {"level": "WARNING"},
    },
}
