"""``manage.py demo``: the parts that can be checked without starting servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from dashboard.management.commands.demo import manager_account_reset


@pytest.mark.django_db
def test_the_manager_account_gets_a_new_working_password_each_run() -> None:
    first = manager_account_reset()
    second = manager_account_reset()
    assert first != second and len(second) >= 12
    assert authenticate(username="manager", password=first) is None
    assert authenticate(username="manager", password=second) is not None


def test_a_port_in_use_is_said_plainly(settings: Any) -> None:
    settings.DEBUG = True
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"Port {port} .* is already in use"):
            call_command("demo", port=port, sandbox_port=port + 1)


def test_the_demo_refuses_to_run_without_debug(settings: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        call_command("demo")


def test_the_sandbox_command_and_its_help_need_no_secret_key() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    done = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "help", "allo_sandbox"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Allo sandbox" in done.stdout and "/_sandbox/" in done.stdout
    # It points at what is in the repository, not at a document that is not.
    assert "allo-api.md" not in done.stdout
