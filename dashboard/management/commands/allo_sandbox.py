"""``manage.py allo_sandbox``: run the Allo sandbox on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dashboard.sandbox.core import (
    ALL_SCOPES,
    DEFAULT_API_KEY,
    GET_SHAPES,
    SCOPE_ERROR_SHAPES,
    TEAMMATE_FIELDS,
    Sandbox,
)
from dashboard.sandbox.server import SandboxServer


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise ArgumentTypeError("must be 0 (off) or more")
    return value


class Command(BaseCommand):
    help = (
        "Run the Allo sandbox: a stand-in for Allo's REST API (the /v2/api/ users and "
        "dialing-queues endpoints the dashboard calls, with Allo's errors and rate limits), "
        "with a seeded team and reps dialing through their queues. /_sandbox/ shows and "
        "steers it (queues, faults, stats): see dashboard/sandbox/control.py."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--api-key",
            default=DEFAULT_API_KEY,
            help=f"the key clients must send (default: {DEFAULT_API_KEY})",
        )
        parser.add_argument(
            "--scopes",
            default=",".join(ALL_SCOPES),
            help="comma-separated scopes the key carries (default: %(default)s; '' for none)",
        )
        parser.add_argument(
            "--teammate-field",
            choices=TEAMMATE_FIELDS,
            default="both",
            help="which name targets a teammate: user_pid, user_id, both, or none (ignored)",
        )
        parser.add_argument(
            "--strict-fields",
            action="store_true",
            help="refuse (400 UNKNOWN_FIELD) a teammate field name the --teammate-field mode "
            "does not know, instead of ignoring it",
        )
        parser.add_argument("--get-shape", choices=GET_SHAPES, default="paginated")
        parser.add_argument(
            "--scope-error-shape",
            choices=SCOPE_ERROR_SHAPES,
            default="v2",
            help="a missing scope answers the v2 error envelope or the v1 {code, details} body",
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--dial-interval",
            type=_seconds,
            default=4.0,
            help="seconds between two numbers dialed by the simulated reps (0: off)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sandbox = Sandbox(
            api_key=options["api_key"],
            scopes=options["scopes"].split(","),
            teammate_field=options["teammate_field"],
            strict_fields=options["strict_fields"],
            get_shape=options["get_shape"],
            scope_error_shape=options["scope_error_shape"],
            seed=options["seed"],
        )
        server = SandboxServer(
            sandbox,
            host=options["host"],
            port=options["port"],
            dial_interval=options["dial_interval"],
        )
        try:
            server.start()
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        owner = sandbox.owner
        out = self.stdout
        out.write(self.style.SUCCESS(f"Allo sandbox listening on {server.url}"))
        out.write(f"  API key:  {sandbox.api_key}")
        out.write(f"  Scopes:   {', '.join(sandbox.scopes) or '(none)'}")
        out.write(f"  Key owner: {owner['name']} ({owner['role']}, {owner['id']})")
        unknown = "refused" if sandbox.strict_fields else "ignored"
        out.write(
            f"  Teammate field: {sandbox.teammate_field} (unknown names {unknown}); "
            f"GET shape: {sandbox.get_shape}; seed {sandbox.seed}; "
            f"dialing every {options['dial_interval']:g} s"
        )
        out.write("  Try:")
        header = f"Authorization: Api-Key {sandbox.api_key}"
        out.write(f"    curl -H '{header}' {server.url}/v2/api/users")
        out.write(f"    curl -H '{header}' {server.url}/_sandbox/queues/{owner['id']}")
        out.write("  Quit with Ctrl-C.")
        stopped = threading.Event()
        # A terminate signal (a process manager, a test harness) stops it as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
        try:
            while not stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            out.write("Stopping the Allo sandbox.")
            server.stop()
