"""The seeded team: a French sales team whose queues cover every case a page must show.

Everything is drawn from ``random.Random(seed)``, and every date is counted back from the clock's
minute at seeding time, so that the same seed and the same clock give the same world.
Generating the 1,000-number queue takes a few milliseconds: the numbers are drawn from ranges
known to be valid rather than checked one by one (a test checks them all with phonenumbers).
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from dashboard.allo.types import NOT_REACHED_REASONS, ROUTING_RESULTS

from .dialer import draw_outcome
from .state import Entry, IdMaker, Queue, User, World

EMAIL_DOMAIN = "lumen-energie.fr"
TEAM_NAME = "Lumen Énergie, équipe Ventes"


@dataclass(frozen=True)
class SeedQueue:
    name: str | None
    size: int
    # How many numbers were called already (not counting the call in progress, if dialing).
    called: int
    voicemail_handling: str
    do_not_disturb: str
    dialing: bool = False
    # Who made the queue: the key's owner (through the API) or the rep, in Allo's app.
    made_by_rep: bool = False
    days_old: float = 2.0
    # Whether the calls happened long ago (a finished or abandoned list).
    calls_days_ago: float = 0.0
    # Give the first calls one of each routing result and reason, so every value is on show.
    every_outcome: bool = False
    # Positions that repeat an earlier number (the same number may sit at several positions).
    duplicates: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class SeedMember:
    name: str
    role: str
    status: str = "ACTIVE"
    queue: SeedQueue | None = None
    avatar: bool = False


OWNER_NAME = "Camille Lefèvre"

TEAM: tuple[SeedMember, ...] = (
    SeedMember(
        OWNER_NAME,
        "ADMIN",
        queue=SeedQueue(
            "Relances salon Batimat", 8, 3, "NO_SKIP", "DISABLED", duplicates=((6, 2),)
        ),
        avatar=True,
    ),
    SeedMember(
        "Zoé O'Connor", "MANAGER", queue=SeedQueue(None, 0, 0, "NO_SKIP", "DISABLED"), avatar=True
    ),
    SeedMember(
        "Jérôme d'Arbois",
        "MEMBER",
        queue=SeedQueue(
            "Base prospects Île-de-France", 1000, 140, "SKIP", "ENABLED", dialing=True, days_old=6
        ),
    ),
    SeedMember(
        "Léa Moreau",
        "MEMBER",
        queue=SeedQueue(
            "Leads entrants de mai",
            137,
            52,
            "NO_SKIP",
            "ENABLED",
            dialing=True,
            duplicates=((90, 5),),
        ),
        avatar=True,
    ),
    SeedMember(
        "Théo Garnier",
        "MEMBER",
        queue=SeedQueue(
            "Clients inactifs 2025",
            45,
            45,
            "NO_SKIP",
            "DISABLED",
            days_old=4,
            calls_days_ago=1,
            every_outcome=True,
        ),
    ),
    SeedMember(
        "Inès Benali",
        "MEMBER",
        queue=SeedQueue("Webinar « Énergie verte »", 60, 9, "SKIP", "DISABLED", dialing=True),
        avatar=True,
    ),
    SeedMember(
        "Mathéo Rousseau",
        "MEMBER",
        queue=SeedQueue("Rappels à programmer", 25, 0, "NO_SKIP", "DISABLED", days_old=1),
    ),
    SeedMember(
        "Chloé Dubois-Maréchal",
        "MEMBER",
        queue=SeedQueue("Grands comptes Rhône-Alpes", 12, 4, "NO_SKIP", "ENABLED"),
    ),
    SeedMember(
        "Noé Lambert",
        "MEMBER",
        queue=SeedQueue("Relance devis non signés", 300, 120, "NO_SKIP", "DISABLED", dialing=True),
    ),
    SeedMember("Anaïs Fontaine", "MANAGER", avatar=True),
    SeedMember(
        "François N'Diaye",
        "MEMBER",
        queue=SeedQueue("Ma liste perso", 20, 6, "SKIP", "DISABLED", made_by_rep=True),
    ),
    SeedMember(
        "Éloïse Marchand",
        "MEMBER",
        "BLOCKED",
        queue=SeedQueue(
            "Ancienne liste Éloïse", 15, 7, "NO_SKIP", "DISABLED", days_old=30, calls_days_ago=21
        ),
    ),
    SeedMember("Maël Le Goff", "MEMBER"),
    SeedMember("Bastien Leroy", "ADMIN", "BLOCKED"),
)

# Someone in another team: the key's team must not see them (Allo answers 404 for both).
OUTSIDER = SeedMember("Pierre Martin", "ADMIN")
OUTSIDER_DOMAIN = "concurrent-solaire.fr"


def email_for(name: str, domain: str = EMAIL_DOMAIN) -> str:
    """``Jérôme d'Arbois`` -> ``jerome.darbois@…``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    local = ".".join(plain.lower().replace("'", "").split())
    return f"{local}@{domain}"


def avatar_for(email: str) -> str:
    digest = hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?d=identicon&s=128"


def _draw_number(rng: random.Random) -> str:
    """A number from ranges that libphonenumber knows as valid, mostly French mobiles."""
    kind = rng.random()
    if kind < 0.62:
        return f"+336{rng.choice('0124568')}{rng.randrange(10**7):07d}"
    if kind < 0.72:
        return f"+337{rng.randrange(3, 10)}{rng.randrange(10**7):07d}"
    if kind < 0.90:
        # Paris, the North-East, the South-East, the South-West.
        area = rng.choice(("1", "3", "4" + rng.choice("123456789"), "5" + rng.choice("012345678")))
        return f"+33{area}{rng.randrange(10 ** (9 - len(area))):0{9 - len(area)}d}"
    if kind < 0.95:
        return f"+3247{rng.randrange(10**7):07d}"
    if kind < 0.98:
        return f"+417{rng.randrange(6, 10)}{rng.randrange(10**7):07d}"
    return f"+1212555{rng.randrange(100, 200):04d}"


def _forced_outcomes() -> list[tuple[str, str | None, bool | None]]:
    """One call of each routing result, a failed call of each reason, and a voicemail left."""
    forced: list[tuple[str, str | None, bool | None]] = [(r, None, None) for r in ROUTING_RESULTS]
    forced += [("FAILED", reason, None) for reason in NOT_REACHED_REASONS]
    forced += [("VOICEMAIL", None, True), ("VOICEMAIL", None, False)]
    return forced


def _seed_queue(
    spec: SeedQueue,
    assignee: User,
    owner: User,
    rng: random.Random,
    ids: IdMaker,
    minute: float,
) -> Queue:
    created = minute - spec.days_old * 86400 - rng.uniform(0, 3600)
    queue = Queue(
        id=ids.queue(),
        name=spec.name,
        creator_id=assignee.id if spec.made_by_rep else owner.id,
        assignee_id=assignee.id,
        voicemail_handling=spec.voicemail_handling,
        do_not_disturb=spec.do_not_disturb,
        created_at=created,
        updated_at=created + rng.uniform(5, 600),
        dialing=spec.dialing,
    )
    # Numbers arrive in import batches of 50, a few minutes apart.
    for i in range(spec.size):
        at = created + (i // 50) * 240 + (i % 50) * 0.01
        synced_from_crm = rng.random() < 0.3
        queue.numbers.append(
            Entry(
                number_to=_draw_number(rng),
                created_at=at,
                updated_at=at,
                sync_status="SYNCED" if synced_from_crm else "NOT_SYNCED",
            )
        )
    for position, copy_of in spec.duplicates:
        queue.numbers[position].number_to = queue.numbers[copy_of].number_to

    called = min(spec.called, spec.size)
    if spec.dialing:
        # The newest call ended a few seconds ago; the one after it is ringing now.
        end = minute - rng.uniform(5, 20)
    else:
        end = minute - spec.calls_days_ago * 86400 - rng.uniform(1800, 5 * 3600)
    gaps = [rng.uniform(25, 110) for _ in range(called)]
    start = end - sum(gaps)
    forced = _forced_outcomes() if spec.every_outcome else []
    for i in range(called):
        entry = queue.numbers[i]
        entry.call_start_date = start
        entry.call_id = ids.call()
        result, reason, left = forced[i] if i < len(forced) else (None, None, None)
        outcome = draw_outcome(
            rng, spec.voicemail_handling, result=result, reason=reason, voicemail_left=left
        )
        entry.routing_result = outcome.routing_result
        entry.not_reached_destination_reason = outcome.not_reached_destination_reason
        entry.detected_outbound_voicemail = outcome.detected_outbound_voicemail
        entry.voicemail_left = outcome.voicemail_left
        entry.updated_at = start + min(outcome.duration, gaps[i] - 1)
        recent = spec.dialing and i == called - 1
        entry.sync_status = (
            "PROCESSING" if recent else ("SYNCED" if rng.random() < 0.9 else "NOT_SYNCED")
        )
        start += gaps[i]
    if spec.dialing and called < spec.size:
        ringing = queue.numbers[called]
        ringing.call_start_date = minute - rng.uniform(1, 4)
        ringing.call_id = ids.call()
        ringing.updated_at = ringing.call_start_date
    return queue


def build_world(seed: int, now: float, clock: Callable[[], float]) -> World:
    """The seeded team, queues and ids. ``clock`` is stored for later writes."""
    rng = random.Random(seed)
    ids = IdMaker(rng)
    minute = now // 60 * 60
    users: list[User] = []
    for member in TEAM:
        email = email_for(member.name)
        users.append(
            User(
                id=ids.user(),
                name=member.name,
                email=email,
                role=member.role,
                status=member.status,
                image_url=avatar_for(email) if member.avatar else None,
            )
        )
    owner = users[0]
    outsider = User(
        id=ids.user(),
        name=OUTSIDER.name,
        email=email_for(OUTSIDER.name, OUTSIDER_DOMAIN),
        role=OUTSIDER.role,
        status=OUTSIDER.status,
    )
    queues: dict[str, Queue] = {}
    current: dict[str, str] = {}
    for member, user in zip(TEAM, users, strict=True):
        if member.queue is not None:
            queue = _seed_queue(member.queue, user, owner, rng, ids, minute)
            queues[queue.id] = queue
            current[user.id] = queue.id
    team = {"id": ids.hex("team-", 12), "name": TEAM_NAME}
    api_key_id = ids.hex("api-", 12)
    # Later ids (new queues, calls, users) come from their own generator, so that they do not
    # depend on how much of the seed generator the team above used.
    runtime_ids = IdMaker(random.Random(f"allo-sandbox-ids-{seed}"))
    return World(
        team=team,
        api_key_id=api_key_id,
        owner_id=owner.id,
        users=users,
        outsiders=[outsider],
        queues=queues,
        current=current,
        ids=runtime_ids,
        clock=clock,
    )
