"""The sandbox's world: the team, its queues, and how they are written out as Allo's JSON.

Everything here is plain data. Timestamps are kept as Unix seconds (floats) and only turned into
ISO 8601 strings when a response is written, so that the clock stays injectable.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

NEW_QUEUE_VOICEMAIL_HANDLING = "NO_SKIP"
NEW_QUEUE_DO_NOT_DISTURB = "DISABLED"
CALL_STATUS_QUEUED = "QUEUED"

_ALNUM = string.ascii_letters + string.digits


def iso(ts: float | None, *, naive: bool = False) -> str | None:
    """ISO 8601 in UTC with milliseconds: ``2026-05-04T09:12:33.512Z`` (or no offset if naive)."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + ("" if naive else "Z")


def parse_iso(text: str) -> float:
    """Read an ISO 8601 date-time; a missing offset is read as UTC. Raises ValueError."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass
class User:
    id: str
    name: str
    email: str
    role: str
    status: str
    image_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "role": self.role,
            "status": self.status,
            "image_url": self.image_url,
        }


@dataclass
class Entry:
    """One number in a queue; its position is its index in ``Queue.numbers``."""

    number_to: str
    created_at: float
    updated_at: float
    call_start_date: float | None = None
    call_id: str | None = None
    routing_result: str | None = None
    not_reached_destination_reason: str | None = None
    detected_outbound_voicemail: bool | None = None
    voicemail_left: bool | None = None
    sync_status: str | None = "NOT_SYNCED"
    call_status: str | None = CALL_STATUS_QUEUED
    # What the append request said about the contact (name, company…): kept, shown only by the
    # control endpoints, since Allo's QueueNumber does not return it.
    contact: dict[str, Any] = field(default_factory=dict)

    @property
    def called(self) -> bool:
        return self.call_start_date is not None

    @property
    def in_progress(self) -> bool:
        return self.call_start_date is not None and self.routing_result is None


@dataclass
class Queue:
    id: str
    name: str | None
    creator_id: str | None
    assignee_id: str | None
    voicemail_handling: str
    do_not_disturb: str
    created_at: float
    updated_at: float
    numbers: list[Entry] = field(default_factory=list)
    # Whether a (simulated) rep is running a dialer session on it right now.
    dialing: bool = False


@dataclass(frozen=True)
class Style:
    """How the API version being imitated writes dates and numbers."""

    naive_dates: bool = False
    call_status: bool = True

    def date(self, ts: float | None) -> str | None:
        return iso(ts, naive=self.naive_dates)

    def entry(self, entry: Entry, position: int) -> dict[str, Any]:
        data: dict[str, Any] = {
            "number_to": entry.number_to,
            "position": position,
            "created_at": self.date(entry.created_at),
            "updated_at": self.date(entry.updated_at),
            "call_start_date": self.date(entry.call_start_date),
            "call_id": entry.call_id,
            "routing_result": entry.routing_result,
            "not_reached_destination_reason": entry.not_reached_destination_reason,
            "detected_outbound_voicemail": entry.detected_outbound_voicemail,
            "voicemail_left": entry.voicemail_left,
            "sync_status": entry.sync_status,
        }
        if self.call_status:
            data["call_status"] = entry.call_status
        return data

    def queue(self, queue: Queue, *, numbers: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": queue.id,
            "name": queue.name,
            "creator_id": queue.creator_id,
            "assignee_id": queue.assignee_id,
            "voicemail_handling": queue.voicemail_handling,
            "do_not_disturb": queue.do_not_disturb,
        }
        if numbers:
            data["numbers"] = [self.entry(e, i) for i, e in enumerate(queue.numbers)]
        data["created_at"] = self.date(queue.created_at)
        data["updated_at"] = self.date(queue.updated_at)
        return data


class IdMaker:
    """Allo-looking ids from a seeded generator, so a seeded sandbox always makes the same ones."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def user(self) -> str:
        return f"usr-{self.rng.getrandbits(160):040X}"

    def queue(self) -> str:
        return "pdl_" + "".join(self.rng.choice(_ALNUM) for _ in range(12))

    def call(self) -> str:
        return f"cll-{self.rng.getrandbits(160):040X}"

    def hex(self, prefix: str, digits: int) -> str:
        return f"{prefix}{self.rng.getrandbits(digits * 4):0{digits}x}"


@dataclass
class World:
    """The team behind one API key, every queue ever made, and who holds which queue now."""

    team: dict[str, str]
    api_key_id: str
    owner_id: str
    users: list[User]
    # Users of other teams: they exist, yet the key's team must not be able to see them.
    outsiders: list[User]
    queues: dict[str, Queue]
    # user id -> id of that user's current queue. A reset replaces the entry; the old queue stays
    # in ``queues`` (Allo does not document it as deleted) but is no longer anyone's current one.
    current: dict[str, str]
    ids: IdMaker
    clock: Callable[[], float]

    def member(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def member_by_email(self, email: str) -> User | None:
        wanted = email.strip().casefold()
        return next((u for u in self.users if u.email.casefold() == wanted), None)

    @property
    def owner(self) -> User:
        owner = self.member(self.owner_id)
        assert owner is not None
        return owner

    def current_queue(self, user_id: str) -> Queue | None:
        queue_id = self.current.get(user_id)
        return self.queues.get(queue_id) if queue_id else None

    def create_queue(
        self,
        *,
        assignee_id: str,
        creator_id: str | None = None,
        name: str | None = None,
        voicemail_handling: str = NEW_QUEUE_VOICEMAIL_HANDLING,
        do_not_disturb: str = NEW_QUEUE_DO_NOT_DISTURB,
        queue_id: str | None = None,
        now: float | None = None,
    ) -> Queue:
        """Make a queue and make it ``assignee_id``'s current one."""
        now = self.clock() if now is None else now
        queue = Queue(
            id=queue_id or self.ids.queue(),
            name=name,
            creator_id=self.owner_id if creator_id is None else creator_id,
            assignee_id=assignee_id,
            voicemail_handling=voicemail_handling,
            do_not_disturb=do_not_disturb,
            created_at=now,
            updated_at=now,
        )
        self.queues[queue.id] = queue
        self.current[assignee_id] = queue.id
        return queue

    def assign(self, queue: Queue, user_id: str) -> None:
        """Move ``queue`` to ``user_id``: it becomes their current queue, and stops being its
        previous assignee's."""
        previous = queue.assignee_id
        if previous is not None and self.current.get(previous) == queue.id:
            del self.current[previous]
        queue.assignee_id = user_id
        self.current[user_id] = queue.id

    def current_queues(self) -> list[Queue]:
        """Every current queue, in the order the queues were made (stable for the simulation)."""
        held = set(self.current.values())
        return [q for q in self.queues.values() if q.id in held]
