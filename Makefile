# The README's commands. Everything installs into .venv from uv.lock; nothing else is needed
# but Python 3.12+ and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
# The first Python 3.12+ on PATH (a .python-version file makes pyenv's shims pick one).
BOOTSTRAP_PYTHON ?= $(shell for p in python3.13 python3.12 python3 python; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
	then echo $$p; break; fi; done)

SANDBOX_PORT ?= 8765
DASHBOARD_PORT ?= 8000
# Several workers only with Redis: without it each process keeps its own Allo rate budget.
WORKERS ?= $(if $(REDIS_URL),4,1)

.PHONY: help install demo test lint format sandbox clean messages serve bench

help:
	@echo "make demo   run the dashboard at http://127.0.0.1:$(DASHBOARD_PORT) against the bundled Allo sandbox"
	@echo "make test   run the test suite"
	@echo "make serve  run it as in production: gunicorn, $(WORKERS) workers (see the README)"
	@echo "make lint   ruff check and format check"
	@echo "make bench  the load test: 50 managers saving for 60 s, then with Allo gone for 10 s (needs PostgreSQL and Redis)"
	@echo "make sandbox  run the Allo sandbox alone on http://127.0.0.1:$(SANDBOX_PORT)"

$(VENV)/.installed: pyproject.toml uv.lock
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo "Python 3.12 or newer is required (none found on PATH)." >&2; exit 1; }
	@test -x $(PY) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(PY) -m uv sync --frozen --inexact --python $(PY)
	@touch $@

# The translations: each locale/*/LC_MESSAGES/*.po compiled to its .mo (not committed) by a
# Python command, so that a fresh clone needs no GNU gettext.
MO_FILES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))

%.mo: %.po | $(VENV)/.installed
	DJANGO_DEBUG=1 $(PY) manage.py compile_translations --force

install: $(VENV)/.installed $(MO_FILES)

# For developers, after changing user-facing text (needs GNU gettext: apt-get install gettext):
# refresh the catalogues from the code and templates, then translate every new or fuzzy entry
# (tests/test_translations.py fails until each one is).
messages: install
	DJANGO_DEBUG=1 $(PY) manage.py makemessages -l fr --add-location=file \
		--ignore=.venv --ignore=tests --ignore=staticfiles --ignore='dashboard/sandbox/*'

# DJANGO_DEBUG=1: a local demo over plain HTTP (no secret key, no HTTPS-only cookies).
demo: install
	DJANGO_DEBUG=1 $(PY) manage.py demo --port $(DASHBOARD_PORT) --sandbox-port $(SANDBOX_PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# As in production (README, "Running in production"): static files collected, database
# migrated, then gunicorn with several workers. Reads DJANGO_SECRET_KEY, ALLO_API_KEY,
# DJANGO_ALLOWED_HOSTS, DATABASE_URL, REDIS_URL… from the environment.
serve: install
	DJANGO_DEBUG=0 $(PY) manage.py collectstatic --noinput
	DJANGO_DEBUG=0 $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=0 $(VENV)/bin/gunicorn dashboard.wsgi -w $(WORKERS) -b 127.0.0.1:$(DASHBOARD_PORT) \
		--access-logfile -

# DJANGO_DEBUG=1: like the demo, a local tool that needs no DJANGO_SECRET_KEY.
sandbox: install
	DJANGO_DEBUG=1 $(PY) manage.py allo_sandbox --port $(SANDBOX_PORT)

# The load test (README, "Load test"): gunicorn on PostgreSQL and Redis against the sandbox at
# its real limits. Shorter: make bench BENCH_SECONDS=15 BENCH_MANAGERS=10.
bench: install
	BENCH_SECONDS=$(or $(BENCH_SECONDS),60) BENCH_MANAGERS=$(or $(BENCH_MANAGERS),50) \
		$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache db.sqlite3 staticfiles $(MO_FILES)
