#!/usr/bin/env python
from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    # The Allo sandbox (and its help) is a local tool holding no secret of the dashboard's: it
    # runs without DJANGO_SECRET_KEY, in the debug settings, unless told otherwise.
    if "allo_sandbox" in sys.argv[1:3]:
        os.environ.setdefault("DJANGO_DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
