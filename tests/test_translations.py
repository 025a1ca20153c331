"""French and English: the catalogue is complete, compiled by the build, and the pages follow the
browser's language or the header's switcher, with Allo's values always in words."""

from __future__ import annotations

import gettext
import re
import shutil
from pathlib import Path
from typing import Any

import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation

from dashboard import labels
from dashboard.allo.types import (
    DO_NOT_DISTURB,
    NOT_REACHED_REASONS,
    ROLES,
    ROUTING_RESULTS,
    STATUSES,
    SYNC_STATUSES,
    VOICEMAIL_HANDLING,
)
from dashboard.management.commands.compile_translations import compile_catalogue
from dashboard.sandbox.core import Sandbox
from tests.helpers import text

FRENCH_PO = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
FR = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
EN = {"Accept-Language": "en-US,en;q=0.9"}
# Every value Allo sends that a page puts into words: none may show raw.
ALLO_VALUES = (
    *ROUTING_RESULTS,
    *NOT_REACHED_REASONS,
    *SYNC_STATUSES,
    *VOICEMAIL_HANDLING,
    *DO_NOT_DISTURB,
    *ROLES,
    *STATUSES,
)


def raw_allo_values(page: str) -> list[str]:
    return [value for value in ALLO_VALUES if re.search(rf"\b{value}\b", page)]


# The catalogue ----------------------------------------------------------------------------------


def test_every_user_facing_string_has_a_french_translation() -> None:
    catalogue = polib.pofile(str(FRENCH_PO))
    untranslated = [entry.msgid for entry in catalogue.untranslated_entries()]
    fuzzy = [entry.msgid for entry in catalogue.fuzzy_entries()]
    half_plural = [
        entry.msgid
        for entry in catalogue
        if entry.msgid_plural and not all(entry.msgstr_plural.values())
    ]
    assert untranslated == [], "Translate these in locale/fr/LC_MESSAGES/django.po"
    assert fuzzy == [], "Check these translations and remove their fuzzy flag"
    assert half_plural == []
    assert catalogue.percent_translated() == 100


def test_the_catalogue_keeps_every_placeholder_of_the_english() -> None:
    placeholder = re.compile(r"%\([a-z_]+\)s|%%")
    for entry in polib.pofile(str(FRENCH_PO)).translated_entries():
        wanted = sorted(placeholder.findall(entry.msgid))
        found = [entry.msgstr] if not entry.msgid_plural else entry.msgstr_plural.values()
        for msgstr in found:
            # A count may be left out of the singular ("one"), never anything else.
            assert sorted(placeholder.findall(msgstr)) == wanted, entry.msgid


@pytest.mark.parametrize(
    "words",
    [
        *labels.ROLE_LABELS.values(),
        *labels.STATUS_LABELS.values(),
        *labels.VOICEMAIL_HANDLING_LABELS.values(),
        *labels.DO_NOT_DISTURB_LABELS.values(),
        *labels.ROUTING_RESULT_LABELS.values(),
        *labels.NOT_REACHED_LABELS.values(),
        *labels.SYNC_STATUS_LABELS.values(),
        *labels.OUTCOME_LABELS.values(),
        *labels.GROUP_LABELS.values(),
    ],
    ids=str,
)
def test_every_word_for_an_allo_value_is_in_the_catalogue(words: Any) -> None:
    entry = polib.pofile(str(FRENCH_PO)).find(str(words))
    assert entry is not None and entry.msgstr, f"{words!s} is missing from the French catalogue"


def test_the_build_compiles_the_catalogue_that_the_pages_use() -> None:
    compiled = FRENCH_PO.with_suffix(".mo")
    assert compiled.exists(), "Run `make install`: it compiles the translations"
    assert compiled.stat().st_mtime >= FRENCH_PO.stat().st_mtime, "Run `make install` again"


def test_compile_translations_writes_a_catalogue_that_gettext_reads(tmp_path: Path) -> None:
    po_path = tmp_path / "django.po"
    shutil.copy(FRENCH_PO, po_path)
    mo_path = compile_catalogue(po_path)
    with mo_path.open("rb") as compiled:
        french = gettext.GNUTranslations(compiled)
    assert french.gettext("Edit queue") == "Modifier la file"
    assert french.ngettext("%(n)s number", "%(n)s numbers", 1) == "%(n)s numéro"
    assert french.ngettext("%(n)s number", "%(n)s numbers", 12) == "%(n)s numéros"
    assert not list(tmp_path.glob("*.tmp"))


def test_the_compile_command_leaves_a_fresh_catalogue_alone(tmp_path: Path, settings: Any) -> None:
    messages = tmp_path / "fr" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    shutil.copy(FRENCH_PO, messages / "django.po")
    settings.LOCALE_PATHS = [tmp_path]
    call_command("compile_translations", verbosity=0)
    compiled = messages / "django.mo"
    first = compiled.stat().st_mtime_ns
    call_command("compile_translations", verbosity=0)
    assert compiled.stat().st_mtime_ns == first
    call_command("compile_translations", "--force", verbosity=0)
    assert compiled.exists()


# The pages, in French -----------------------------------------------------------------------------


def test_a_french_browser_gets_the_teammates_page_in_french(
    manager_client: Client, sandbox: Sandbox
) -> None:
    response = manager_client.get("/", headers=FR)
    html = response.content.decode()
    page = text(response)
    assert '<html lang="fr">' in html
    for words in (
        "Les files d'appel de votre équipe",
        "Rechercher",
        "Tous les rôles",
        "Filtrer",
        "L'équipe en un coup d'œil",
        "Membre de l'équipe",
        "Reste à appeler",
        "Modifier la file",
        "Administrateur",
        "Actif",
    ):
        assert words in page, words
    assert "Edit queue" not in page and "Teammates" not in page
    assert raw_allo_values(page) == []
    assert "Accept-Language" in response["Vary"]


def test_counts_read_for_an_english_manager_are_shown_in_french_to_a_french_one(
    manager_client: Client, sandbox: Sandbox
) -> None:
    chloe = sandbox.user_named("Chloé Dubois-Maréchal")["id"]
    # Her queue is read (and its counts kept) while the page is in English…
    manager_client.get(
        reverse("dashboard:queue", args=[chloe]), headers={**EN, "HX-Request": "true"}
    )
    # …and the teammates page shows those kept counts in French.
    html = manager_client.get("/", headers=FR).content.decode()
    row = re.search(
        r'id="queue-[0-9a-f]+-tally".*?</div>', html.split("Chloé Dubois-Maréchal")[1], re.S
    )
    assert row and "Répondu" in row.group(0) and "Non joint" in row.group(0)
    assert "Answered" not in html and "Not reached" not in html


def test_a_queue_in_french_puts_every_allo_value_into_french_words(
    manager_client: Client, sandbox: Sandbox
) -> None:
    theo = sandbox.user_named("Théo Garnier")["id"]  # one call of each routing result
    queue_url = reverse("dashboard:queue", args=[theo])
    for response in (
        manager_client.get(queue_url, headers=FR),
        manager_client.get(queue_url, headers={**FR, "HX-Request": "true"}),
    ):
        page = text(response)
        for words in (
            "Répondu",
            "Messagerie vocale",
            "Ligne occupée",
            "Transféré à un agent IA (Bland)",
            "Synchronisé",
            "Rester en ligne quand une messagerie répond",
            "Laisser sonner les appels entrants",
            "Enregistrer",
        ):
            assert words in page, words
        assert raw_allo_values(page) == []


def test_an_english_queue_never_shows_allos_values_raw_either(
    manager_client: Client, sandbox: Sandbox
) -> None:
    theo = sandbox.user_named("Théo Garnier")["id"]
    page = text(manager_client.get(reverse("dashboard:queue", args=[theo]), headers=EN))
    assert "Answered" in page and "Line busy" in page
    assert raw_allo_values(page) == []


def test_dates_and_numbers_follow_the_language(manager_client: Client, sandbox: Sandbox) -> None:
    jerome = sandbox.user_named("Jérôme d'Arbois")["id"]  # 1,000 numbers
    url = reverse("dashboard:queue", args=[jerome])
    french = text(manager_client.get(url, headers=FR))
    english = text(manager_client.get(url, headers=EN))
    assert "1 000 numéros" in french and "1,000 numbers" in english
    # One unambiguous style: the day, the month in letters, a 24-hour time (the sandbox's
    # calls are in May of this year, so no year), never 04/05 (April or May?).
    assert re.search(r"dernier appel 4 mai, \d\d:\d\d\b", french)
    assert re.search(r"last call 4 May, \d\d:\d\d\b", english)
    assert not re.search(r"\d\d/\d\d/\d{4}|[ap]\.m\.", french + english)


def test_the_sign_in_page_follows_the_browser_language(client: Client, db: None) -> None:
    page = text(client.get(reverse("login"), headers=FR))
    assert "Se connecter" in page and "Identifiant" in page and "Mot de passe" in page


# The switcher -------------------------------------------------------------------------------------


def test_the_header_offers_each_language_by_its_own_name(manager_client: Client) -> None:
    html = manager_client.get("/", headers=EN).content.decode()
    assert re.search(r'<button[^>]*value="en"[^>]*aria-current="true"[^>]*>English</button>', html)
    assert re.search(r'<button[^>]*value="fr"[^>]*lang="fr"[^>]*>Français</button>', html)
    assert f'action="{reverse("set_language")}"' in html


def test_the_language_chosen_in_the_header_wins_over_the_browsers(
    manager_client: Client,
) -> None:
    response = manager_client.post(
        reverse("set_language"), {"language": "fr", "next": "/?role=MEMBER"}, headers=EN
    )
    assert response.status_code == 302
    assert response["Location"] == "/?role=MEMBER"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    assert "Les files d'appel de votre équipe" in text(manager_client.get("/", headers=EN))
    manager_client.post(reverse("set_language"), {"language": "en", "next": "/"}, headers=FR)
    assert "Your team's dialer queues" in text(manager_client.get("/", headers=FR))


def test_the_language_can_be_chosen_before_signing_in(client: Client, db: None) -> None:
    response = client.post(reverse("set_language"), {"language": "fr", "next": "/accounts/login/"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert "Se connecter" in text(client.get("/accounts/login/", headers=EN))


def test_a_language_we_do_not_speak_falls_back_to_english(manager_client: Client) -> None:
    response = manager_client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="en">' in response.content.decode()
    with translation.override("de"):
        assert translation.gettext("Edit queue") == "Edit queue"
