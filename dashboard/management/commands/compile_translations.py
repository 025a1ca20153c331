"""``manage.py compile_translations``: compile every ``.po`` catalogue of LOCALE_PATHS to ``.mo``.

Django's own ``compilemessages`` needs GNU gettext's ``msgfmt``; this needs only polib (a Python
dependency), so that a fresh clone builds with Python and make alone (``make install`` runs it).
Like ``msgfmt``, it leaves out fuzzy and untranslated entries. A ``.mo`` newer than its ``.po``
is left alone unless ``--force``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polib
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


def compile_catalogue(po_path: Path) -> Path:
    """Write ``po_path``'s ``.mo`` beside it, atomically (readers never see half a file)."""
    try:
        catalogue = polib.pofile(str(po_path))
    except (OSError, ValueError) as error:
        raise CommandError(f"{po_path} cannot be read: {error}") from None
    mo_path = po_path.with_suffix(".mo")
    partial = mo_path.with_name(mo_path.name + ".tmp")
    catalogue.save_as_mofile(str(partial))
    os.replace(partial, mo_path)
    return mo_path


class Command(BaseCommand):
    help = "Compile the translation catalogues (locale/*/LC_MESSAGES/*.po) to .mo, in Python."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="recompile even .mo files newer than their .po"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        catalogues = sorted(
            po
            for locale_path in settings.LOCALE_PATHS
            for po in Path(locale_path).glob("*/LC_MESSAGES/*.po")
        )
        if not catalogues:
            raise CommandError("No .po catalogue found in LOCALE_PATHS.")
        for po_path in catalogues:
            mo_path = po_path.with_suffix(".mo")
            fresh = mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime
            if fresh and not options["force"]:
                continue
            compile_catalogue(po_path)
            if options["verbosity"]:
                self.stdout.write(f"Compiled {mo_path.relative_to(settings.BASE_DIR)}")
