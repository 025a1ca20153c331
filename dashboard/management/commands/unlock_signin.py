"""``manage.py unlock_signin [USERNAME] [--address ADDRESS]``: lift a sign-in pause at once.

Anyone can pause signing in for an account by typing wrong passwords for it (the price of
throttling, see dashboard/signin.py): this lets an operator give the account back before the
pause ends. It clears the pause and the attempts counted, for the username (any case) and/or
the client address, in the cache every worker shares.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.signin import signin_unlock


class Command(BaseCommand):
    help = "Lift the sign-in pause of a username and/or a client address."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", default="", help="the account's username")
        parser.add_argument(
            "--address", default="", help="a client address paused for too many failures"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"].strip()
        address = options["address"].strip()
        if not username and not address:
            raise CommandError("Name a username, an --address, or both.")
        lifted = signin_unlock(username=username, address=address)
        who = " and ".join(
            part
            for part in (
                f"username {username!r}" if username else "",
                f"address {address}" if address else "",
            )
            if part
        )
        if lifted:
            self.stdout.write(f"Signing in is open again for {who}.")
        else:
            self.stdout.write(f"{who.capitalize()} was not paused; its attempts were cleared.")
