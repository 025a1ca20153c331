"""``manage.py demo``: the dashboard, a manager account and the Allo sandbox, in one command.

Migrates the database, (re)sets the ``manager`` account with a fresh password that it prints,
starts the sandbox (its seeded team, a rep dialing every few seconds) in this process, and runs
the development server in a child process whose environment points it at the sandbox, as a real
deployment would point it at Allo. Ctrl-C stops both.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.sandbox.core import Sandbox
from dashboard.sandbox.seed import OWNER_NAME, email_for
from dashboard.sandbox.server import SandboxServer

HOST = "127.0.0.1"
MANAGER_USERNAME = "manager"
# Accounts are linked to Allo teammates by email: this one to the sandbox team's ADMIN, who may
# see and change every queue.
MANAGER_EMAIL = email_for(OWNER_NAME)
# No 0/O or 1/l/I: the password is read off a terminal and typed by hand.
PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the servers we are about to start, ignore connections lingering in TIME_WAIT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def manager_account_reset() -> str:
    """Create or update the demo's manager account; returns its new password."""
    password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(14))
    user_model = get_user_model()
    user, _created = user_model.objects.get_or_create(username=MANAGER_USERNAME)
    user.set_password(password)
    user.email = MANAGER_EMAIL
    user.is_active = True
    user.save()
    return password


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the dashboard against the bundled Allo sandbox, with a manager account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="the dashboard's port")
        parser.add_argument("--sandbox-port", type=int, default=8765, help="the sandbox's port")
        parser.add_argument("--seed", type=int, default=7, help="the sandbox team's seed")
        parser.add_argument(
            "--dial-interval",
            type=float,
            default=4.0,
            help="seconds between two simulated calls (0 turns the dialing off)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port: int = options["port"]
        sandbox_port: int = options["sandbox_port"]
        if not settings.DEBUG:
            raise CommandError(
                "The demo runs the development server over plain HTTP: set DJANGO_DEBUG=1 "
                "(make demo does)."
            )
        if port == sandbox_port:
            raise CommandError("The dashboard and the sandbox need two different ports.")
        for number, what, variable in (
            (port, "dashboard", "DASHBOARD_PORT"),
            (sandbox_port, "Allo sandbox", "SANDBOX_PORT"),
        ):
            if not port_is_free(number):
                raise CommandError(
                    f"Port {number} (for the {what}) is already in use on {HOST}: is another "
                    f"demo still running? Stop it, or pick another port, e.g. "
                    f"make demo {variable}={number + 1}"
                )

        call_command("migrate", interactive=False, verbosity=0)
        password = manager_account_reset()

        sandbox = Sandbox(seed=options["seed"])
        try:
            server = SandboxServer(
                sandbox, port=sandbox_port, dial_interval=options["dial_interval"] or None
            ).start()
        except OSError as error:
            raise CommandError(f"The Allo sandbox could not start: {error}") from None

        env = {
            **os.environ,
            "ALLO_API_BASE_URL": server.url,
            "ALLO_API_KEY": sandbox.api_key,
            "DJANGO_DEBUG": "1",
        }
        self.stdout.write(
            "\n".join(
                [
                    "",
                    self.style.SUCCESS("The Allo dialer dashboard is starting."),
                    f"  Dashboard      http://{HOST}:{port}/",
                    f"  Sign in as     {MANAGER_USERNAME}  (Allo's {OWNER_NAME}, an admin)",
                    f"  Password       {password}",
                    f"  Allo sandbox   {server.url}  (a seeded team of {len(sandbox.users)},"
                    f" {sum(u['status'] == 'ACTIVE' for u in sandbox.users)} active;"
                    f" a rep dials every {options['dial_interval']:g} s)",
                    "",
                    "  Look at the sandbox: the team as the dashboard reads it, then one",
                    "  teammate's queue as the sandbox holds it (any id from the first):",
                    f"    curl -H 'Authorization: Api-Key {sandbox.api_key}' \\",
                    f"         {server.url}/v2/api/users",
                    f"    curl -H 'Authorization: Api-Key {sandbox.api_key}' \\",
                    f"         {server.url}/_sandbox/queues/{sandbox.owner_id}",
                    "",
                    "  Press Ctrl-C to stop both.",
                    "",
                ]
            )
        )
        self.stdout.flush()
        command = [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "runserver",
            f"{HOST}:{port}",
            "--noreload",
        ]
        # A SIGTERM (a process manager, `kill`) stops both servers cleanly, like Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        child = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR)
        try:
            returncode = child.wait()
        except KeyboardInterrupt:
            # A terminal's Ctrl-C reaches the child too; a signal sent to this process alone
            # does not, so the child is asked to stop if it is still running.
            try:
                child.wait(timeout=2)
            except subprocess.TimeoutExpired:
                child.terminate()
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            returncode = 0
        finally:
            server.stop()
            self.stdout.write("The dashboard and the Allo sandbox are stopped.")
        if returncode:
            raise CommandError(f"The dashboard stopped with exit code {returncode}.")
