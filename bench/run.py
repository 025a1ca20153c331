"""The load test: many managers saving at once, against the dashboard as production runs it.

``make bench`` (or ``.venv/bin/python bench/run.py``) runs two scenarios, one after the other:

1. ``steady``: the Allo sandbox with its real limits (real clock, 20 reads and 5 writes a second
   per key, the simulated reps dialing), the dashboard under gunicorn (4 workers) on PostgreSQL
   and Redis, and BENCH_MANAGERS simulated managers (threads, each with its own signed-in
   session) saving for BENCH_SECONDS: open a queue card (the htmx fragment), change one random
   setting, press Save, read the answer; honour "try again in N s"; settle a conflict by
   choosing at random.
2. ``outage``: the same, with the sandbox gone for BENCH_OUTAGE_SECONDS in the middle of the run
   (its listening socket closed and every connection dropped, then a new server on the same
   port with the same state): connections are refused, as from an Allo that is down.

Each prints what the managers saw (saves attempted, applied, refused with a clear message, by
reason), the dashboard's server errors (must be 0), the 429s Allo served (from the sandbox's
``/_sandbox/stats``, must be 0), and whether the audit trail and the sandbox's final state agree
exactly: every PATCH the sandbox applied has an ``applied`` audit row with its request id, every
``applied`` row matches a PATCH the sandbox applied, and replaying the applied rows' "after"
values in the order Allo applied them gives each queue's final settings.

Each scenario creates its own PostgreSQL database (dropped at the end) and its own key prefix in
Redis (deleted at the end). Environment: BENCH_SECONDS (60), BENCH_MANAGERS (50),
BENCH_OUTAGE_SECONDS (10), BENCH_WORKERS (4), BENCH_SCENARIOS (``steady,outage``),
BENCH_POSTGRES (``postgres://root@127.0.0.1:5432``), BENCH_REDIS (``redis://127.0.0.1:6379/14``).
Ports are picked free at start (never 8000 or 8765).
"""

from __future__ import annotations

import html
import json
import multiprocessing
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# gunicorn's logs and the last run's details (not committed).
OUT = ROOT / "bench" / "out"

from dashboard.sandbox.core import Sandbox, SandboxRequest, SandboxResponse  # noqa: E402
from dashboard.sandbox.seed import OWNER_NAME, email_for  # noqa: E402
from dashboard.sandbox.server import SandboxServer  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
MANAGERS = int(os.environ.get("BENCH_MANAGERS", "50"))
OUTAGE_SECONDS = float(os.environ.get("BENCH_OUTAGE_SECONDS", "10"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
SCENARIOS = [s for s in os.environ.get("BENCH_SCENARIOS", "steady,outage").split(",") if s]
# "managers": accounts linked to the team's Allo ADMIN and MANAGER emails, whose access is
# checked against Allo's team list like everyone's; "operators": superusers (the same emails),
# whose access does not depend on Allo.
ACCOUNTS = os.environ.get("BENCH_ACCOUNTS", "managers")
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgres://root@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")
# The simulated reps dial a number this often (the sandbox command's default).
DIAL_INTERVAL = 4.0
API_KEY = "ak_live_BENCH_" + secrets.token_hex(12)
PASSWORD = "bench-" + secrets.token_hex(12)
QUEUE_PATH = "/v2/api/dialing-queues/current"
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
SETTINGS = ("name", "voicemail_handling", "do_not_disturb")
OTHER = {
    "voicemail_handling": {"SKIP": "NO_SKIP", "NO_SKIP": "SKIP"},
    "do_not_disturb": {"ENABLED": "DISABLED", "DISABLED": "ENABLED"},
}


def free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in (8000, 8765):
            return port


# Allo: the sandbox, recording every PATCH in the order it applied them ----------------------------


class RecordingSandbox(Sandbox):
    """The sandbox, keeping every settings PATCH it answered, in the order it handled them."""

    def __init__(self, **kwargs: Any) -> None:
        self.patches: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def handle(self, req: SandboxRequest) -> SandboxResponse:
        # The sandbox handles one request at a time under this (reentrant) lock: recording
        # inside it keeps Allo's own order of the PATCHes.
        with self.lock:
            answer = super().handle(req)
            if req.method.upper() == "PATCH" and req.path == QUEUE_PATH:
                try:
                    body = json.loads(req.body or b"{}")
                except ValueError:
                    body = {}
                self.patches.append(
                    {
                        "request_id": req.headers.get("x-request-id"),
                        "user_id": body.get("user_id") or body.get("user_pid"),
                        "body": body,
                        "status": None if answer.hang else answer.status,
                    }
                )
        return answer


def settings_of(sandbox: Sandbox, user_id: str) -> tuple[Any, ...] | None:
    queue = sandbox.queue_of(user_id)
    return None if queue is None else tuple(queue[key] for key in SETTINGS)


# The dashboard: a database, a Redis prefix, gunicorn --------------------------------------------


@dataclass
class Dashboard:
    scenario: str
    sandbox_url: str
    port: int = field(default_factory=free_port)
    database: str = ""
    prefix: str = ""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def __post_init__(self) -> None:
        tag = f"{self.scenario}_{os.getpid()}_{secrets.token_hex(3)}"
        self.database = f"allo_bench_{tag}"
        self.prefix = f"allo-bench-{tag}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "ALLO_", "BENCH_"))
            and key not in ("DATABASE_URL", "REDIS_URL", "CACHE_KEY_PREFIX")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="dashboard.settings",
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY="bench-" + secrets.token_hex(32),
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            # Plain HTTP on loopback: no HTTPS redirect (the bench carries the cookies itself).
            DJANGO_SECURE_SSL_REDIRECT="0",
            DATABASE_URL=f"{POSTGRES}/{self.database}",
            REDIS_URL=REDIS,
            CACHE_KEY_PREFIX=self.prefix,
            ALLO_API_KEY=API_KEY,
            ALLO_API_BASE_URL=self.sandbox_url,
            PYTHONPATH=str(ROOT),
        )
        return env

    def manage(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [PY, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def set_up(self, emails: list[str]) -> list[str]:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        script = (
            "import json, sys\n"
            "from django.contrib.auth.models import User\n"
            "emails, count, password, operators = json.loads(sys.stdin.read())\n"
            "names = []\n"
            "for index in range(count):\n"
            "    name = f'bench{index:02d}'\n"
            "    User.objects.create_user(username=name, password=password,\n"
            "                             email=emails[index % len(emails)],\n"
            "                             is_superuser=operators)\n"
            "    names.append(name)\n"
            "print(json.dumps(names))\n"
        )
        accounts = [emails, MANAGERS, PASSWORD, ACCOUNTS == "operators"]
        out = self.manage("shell", "-c", script, stdin=json.dumps(accounts))
        return json.loads(out.strip().splitlines()[-1])

    def start(self) -> None:
        self.log_path = OUT / f"gunicorn-{self.scenario}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [GUNICORN, "dashboard.wsgi", "-w", str(WORKERS), "-b", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/accounts/login/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start; see {self.log_path}")

    def audit_rows(self) -> list[dict[str, Any]]:
        with psycopg.connect(f"{POSTGRES}/{self.database}") as conn:
            cursor = conn.execute(
                "SELECT id, teammate_id, changes, outcome, allo_request_id, allo_code "
                "FROM dashboard_auditentry ORDER BY id"
            )
            columns = [c.name for c in cursor.description or ()]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # The gunicorn master this script started (its own session), by its id.
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def tear_down(self) -> None:
        self.stop()
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


# A manager: a signed-in browser -------------------------------------------------------------------


class Browser:
    """One signed-in session: cookies kept by hand (Django marks them Secure; this is plain
    HTTP on loopback), every request with the headers htmx would send."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=False)
        self.cookies: dict[str, str] = {}

    def _headers(self, htmx: bool) -> dict[str, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if htmx:
            headers.update({"HX-Request": "true", "HX-Current-URL": f"{self.http.base_url}/"})
        return headers

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return response

    def get(self, path: str, *, htmx: bool = False) -> httpx.Response:
        return self._keep(self.http.get(path, headers=self._headers(htmx)))

    def post(self, path: str, data: dict[str, str], *, htmx: bool = False) -> httpx.Response:
        return self._keep(self.http.post(path, data=data, headers=self._headers(htmx)))

    def sign_in(self, username: str, password: str) -> None:
        page = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, "no CSRF token on the sign-in page"
        answer = self.post(
            "/accounts/login/",
            {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"{username} could not sign in ({answer.status_code})")


INPUT = re.compile(r"<input\b[^>]*>", re.S)
ATTRIBUTE = re.compile(r'([\w-]+)(?:="([^"]*)")?')


@dataclass
class SettingsForm:
    values: dict[str, str]
    paused: bool
    resolve: list[str]


def settings_form(page: str) -> SettingsForm | None:
    """The settings form in a card, as a browser would send it back untouched."""
    start = page.find('class="settings-form"')
    if start < 0:
        return None
    start = page.rfind("<form", 0, start)
    end = page.find("</form>", start)
    chunk = page[start:end]
    values: dict[str, str] = {}
    resolve: list[str] = []
    for tag in INPUT.findall(chunk):
        attrs = {k: html.unescape(v or "") for k, v in ATTRIBUTE.findall(tag[6:])}
        name = attrs.get("name")
        if not name:
            continue
        kind = attrs.get("type", "text")
        if kind == "radio":
            if name.startswith("resolve_") and name not in resolve:
                resolve.append(name)
            if "checked" in attrs:
                values[name] = attrs.get("value", "")
        else:
            values[name] = attrs.get("value", "")
    paused = bool(
        re.search(r'<button type="submit" class="button button--primary"[^>]*disabled', chunk)
    )
    return SettingsForm(values=values, paused=paused, resolve=resolve)


def words(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


RETRY = re.compile(r"try again in (\d+) seconds?")


def classify(response: httpx.Response) -> tuple[str, float]:
    """What the manager was told after pressing Save, and how long they were asked to wait."""
    if response.status_code >= 500:
        return "server error", 0.0
    if response.status_code == 302:
        return "redirect", 0.0
    text = words(response.text)
    wait = RETRY.search(text)
    seconds = float(wait.group(1)) if wait else 0.0
    checks = [
        ("applied", "Saved. "),
        ("applied (already saved)", "Already saved"),
        ("conflict shown", "Someone changed this queue in Allo while you were editing it"),
        ("nothing to save", "Nothing to save"),
        ("refused: access could not be checked", "could not be checked"),
        ("refused: Allo busy, try again in N s", "Allo is busy"),
        ("refused: changes paused (Allo not answering)", "changes are paused"),
        ("refused: not saved (checked by reading again)", "Not saved:"),
        ("refused: not confirmed, reload to check", "may or may not have been applied"),
        ("refused: Allo could not be reached", "Allo could not be reached"),
        ("refused: other Allo refusal", "Allo refused"),
    ]
    for outcome, phrase in checks:
        if phrase in text:
            return outcome, seconds
    return "unclassified", seconds


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    opens: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    applied_at: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str, outcome: str, sample: str = "") -> None:
        with self.lock:
            (self.counts if kind == "save" else self.opens)[outcome] += 1
            if sample and outcome not in self.samples:
                self.samples[outcome] = sample[:600]


def manager(
    browser: Browser, teammates: list[str], until: float, tally: Tally, seed: int, started: float
) -> None:
    rng = random.Random(seed)
    serial = 0
    while time.monotonic() < until:
        user_id = rng.choice(teammates)
        path = f"/teammates/{user_id}/queue/"
        try:
            card = browser.get(path, htmx=True)
        except httpx.HTTPError as exc:
            tally.count("open", f"dashboard unreachable ({type(exc).__name__})")
            time.sleep(1)
            continue
        if card.status_code >= 500:
            tally.count("open", "server error", card.text)
            time.sleep(1)
            continue
        form = settings_form(card.text)
        if form is None:
            outcome, wait = classify(card)
            tally.count("open", f"no form: {outcome}", words(card.text))
            time.sleep(max(wait, 1.0))
            continue
        if form.paused:
            tally.count("open", "shown stale, Save paused")
            time.sleep(1.0)
            continue
        tally.count("open", "form shown")
        data = dict(form.values)
        serial += 1
        changed = rng.choice(SETTINGS)
        if changed == "name":
            data["name"] = f"Bench {seed:02d}-{serial}"
        else:
            data[changed] = OTHER[changed].get(data.get(changed, ""), "SKIP")
        for _round in range(3):
            try:
                answer = browser.post(path, data, htmx=True)
            except httpx.HTTPError as exc:
                tally.count("save", f"dashboard unreachable ({type(exc).__name__})")
                break
            tally.count("save", "attempted")
            outcome, wait = classify(answer)
            tally.count("save", outcome, words(answer.text) if outcome != "applied" else "")
            if outcome.startswith("applied"):
                with tally.lock:
                    tally.applied_at.append(time.monotonic() - started)
            if outcome == "conflict shown":
                again = settings_form(answer.text)
                if again is None:
                    break
                # The manager reads the three values and decides, at random.
                data = dict(again.values)
                for name in again.resolve:
                    data[name] = rng.choice(["keep", "overwrite"])
                continue
            if wait:
                time.sleep(wait)
            break


def managers(
    base_url: str, usernames: list[str], password: str, teammates: list[str], pipe: Any
) -> None:
    """The simulated managers, in a process of their own (so that the sandbox's process, Allo,
    is not slowed by them): sign in, say ready, wait for "go" with the start time, run until the
    end, send back the tally."""
    browsers = []
    for name in usernames:
        browser = Browser(base_url)
        browser.sign_in(name, password)
        browsers.append(browser)
    pipe.send("ready")
    started = pipe.recv()
    until = started + SECONDS
    tally = Tally()
    threads = [
        threading.Thread(
            target=manager,
            args=(browser, teammates, until, tally, index, started),
            name=f"manager-{index}",
            daemon=True,
        )
        for index, browser in enumerate(browsers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipe.send(
        {
            "counts": dict(tally.counts),
            "opens": dict(tally.opens),
            "samples": tally.samples,
            "applied_at": tally.applied_at,
            "ended": time.monotonic(),
        }
    )


# Checking the audit trail against Allo -----------------------------------------------------------


def check(
    sandbox: RecordingSandbox, rows: list[dict[str, Any]], initial: dict[str, Any]
) -> dict[str, Any]:
    by_request = {row["allo_request_id"]: row for row in rows}
    applied_rows = {row["allo_request_id"] for row in rows if row["outcome"] == "applied"}
    applied_patches = [p for p in sandbox.patches if p["status"] == 200]
    missing = [p for p in applied_patches if p["request_id"] not in applied_rows]
    seen = {p["request_id"] for p in applied_patches}
    extra = sorted(applied_rows - seen)
    state = {user: (list(values) if values else None) for user, values in initial.items()}
    for patch in applied_patches:
        row = by_request.get(patch["request_id"])
        if row is None or row["outcome"] != "applied":
            continue
        current = state.get(row["teammate_id"]) or [None, "NO_SKIP", "DISABLED"]
        for field_name, change in (row["changes"] or {}).items():
            current[SETTINGS.index(field_name)] = change.get("after")
        state[row["teammate_id"]] = current
    final = {user: settings_of(sandbox, user) for user in initial}
    differ = {
        user: {"replayed": state[user], "sandbox": final[user]}
        for user in initial
        if (tuple(state[user]) if state[user] else None) != final[user]
    }
    return {
        "sandbox_patches": len(sandbox.patches),
        "sandbox_patches_applied": len(applied_patches),
        "audit_rows": len(rows),
        "audit_outcomes": dict(Counter(row["outcome"] for row in rows)),
        "applied_patches_without_applied_row": [
            {
                "request_id": p["request_id"],
                "audit": (by_request.get(p["request_id"]) or {}).get("outcome"),
            }
            for p in missing
        ],
        "applied_rows_without_applied_patch": extra,
        "queues_that_differ": differ,
        "agree": not missing and not extra and not differ,
    }


# A scenario -------------------------------------------------------------------------------------


def run(scenario: str) -> dict[str, Any]:
    sandbox = RecordingSandbox(api_key=API_KEY)
    port = free_port()
    server = SandboxServer(sandbox, port=port, dial_interval=DIAL_INTERVAL).start()
    dashboard = Dashboard(scenario=scenario, sandbox_url=server.url)
    outage: dict[str, float] = {}
    try:
        managing = [
            u
            for u in sandbox.users
            if u["status"] == "ACTIVE" and u["role"] in ("ADMIN", "MANAGER")
        ]
        emails = [u["email"] for u in managing] or [email_for(OWNER_NAME)]
        usernames = dashboard.set_up(emails)
        dashboard.start()
        teammates = [u["id"] for u in sandbox.users if u["status"] == "ACTIVE"]
        # Spawned, not forked: this process runs the sandbox's threads.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        crowd = context.Process(
            target=managers,
            args=(dashboard.url, usernames, PASSWORD, teammates, theirs),
            daemon=True,
        )
        crowd.start()
        if ours.recv() != "ready":
            raise RuntimeError("the managers could not sign in")
        initial = {user: settings_of(sandbox, user) for user in teammates}
        sandbox.clear_stats()
        sandbox.patches.clear()
        # CLOCK_MONOTONIC is the same in every process of this machine.
        started = time.monotonic()
        ours.send(started)
        if scenario == "outage":
            time.sleep(max(0.0, (SECONDS - OUTAGE_SECONDS) / 2))
            outage["down_at"] = time.monotonic() - started
            server.stop()  # the socket closes: connections are refused
            time.sleep(OUTAGE_SECONDS)
            server = SandboxServer(sandbox, port=port, dial_interval=DIAL_INTERVAL).start()
            outage["up_at"] = time.monotonic() - started
        tally = ours.recv()
        crowd.join(timeout=10)
        elapsed = tally["ended"] - started
        stats = httpx.get(
            f"{server.url}/_sandbox/stats", headers={"Authorization": f"Api-Key {API_KEY}"}
        ).json()["data"]
        served = Counter()
        for row in stats["requests"]:
            served[f"{row['method']} {row['status']}"] += row["count"]
        result = {
            "scenario": scenario,
            "managers": MANAGERS,
            "seconds": round(elapsed, 1),
            "workers": WORKERS,
            "accounts": ACCOUNTS,
            "saves": tally["counts"],
            "card_opens": tally["opens"],
            "samples": tally["samples"],
            "allo_served": dict(served),
            "allo_429s": sum(n for key, n in served.items() if key.endswith(" 429")),
            "consistency": check(sandbox, dashboard.audit_rows(), initial),
        }
        if outage:
            result["outage"] = {k: round(v, 1) for k, v in outage.items()}
            after = [t for t in tally["applied_at"] if t >= outage["up_at"]]
            result["outage"]["first_save_applied_after_allo_came_back_s"] = (
                round(min(after) - outage["up_at"], 1) if after else None
            )
            during = [t for t in tally["applied_at"] if outage["down_at"] <= t < outage["up_at"]]
            result["outage"]["saves_applied_while_allo_was_down"] = len(during)
        return result
    finally:
        dashboard.tear_down()
        server.stop()


def report(result: dict[str, Any]) -> str:
    saves, opens, agreement = result["saves"], result["card_opens"], result["consistency"]
    refused = {k[len("refused: ") :]: v for k, v in saves.items() if k.startswith("refused")}
    unreachable = sum(v for k, v in saves.items() if k.startswith("dashboard unreachable"))
    lines = [
        f"## {result['scenario']}: {result['managers']} {result['accounts']}, "
        f"{result['seconds']} s, gunicorn {result['workers']} workers, PostgreSQL + Redis",
        "",
    ]

    def row(label: str, value: object) -> None:
        lines.append(f"{label:<36}{value}")

    row("saves attempted", saves.get("attempted", 0))
    row("  applied", saves.get("applied", 0) + saves.get("applied (already saved)", 0))
    row("  conflict shown (then settled)", saves.get("conflict shown", 0))
    row("  nothing to save", saves.get("nothing to save", 0))
    row("  refused with a clear message", sum(refused.values()))
    for reason, count in sorted(refused.items()):
        row(f"    {reason}", count)
    row("  server errors (must be 0)", saves.get("server error", 0) + opens.get("server error", 0))
    row("  unclassified answers", saves.get("unclassified", 0))
    row("  dashboard unreachable", unreachable)
    row("queue cards opened", f"{sum(opens.values())} {json.dumps(opens, sort_keys=True)}")
    row("429s Allo served (must be 0)", result["allo_429s"])
    row("Allo served", json.dumps(result["allo_served"], sort_keys=True))
    row(
        "PATCHes Allo applied",
        f"{agreement['sandbox_patches_applied']} (of {agreement['sandbox_patches']} received)",
    )
    row(
        "audit rows",
        f"{agreement['audit_rows']} {json.dumps(agreement['audit_outcomes'], sort_keys=True)}",
    )
    row("applied PATCH without applied row", len(agreement["applied_patches_without_applied_row"]))
    row("applied row without applied PATCH", len(agreement["applied_rows_without_applied_patch"]))
    row("queues whose replay differs", len(agreement["queues_that_differ"]))
    row("audit trail and Allo agree", "yes" if agreement["agree"] else "NO")
    if "outage" in result:
        row("outage", json.dumps(result["outage"]))
    return "\n".join(lines)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    results = []
    for scenario in SCENARIOS:
        print(
            f"Running {scenario} ({MANAGERS} managers, {SECONDS:g} s)…", file=sys.stderr, flush=True
        )
        result = run(scenario)
        results.append(result)
        print(report(result), flush=True)
        print(flush=True)
    out = OUT / "last-run.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"(details, with a sample of each answer: {out.relative_to(ROOT)})")
    ok = all(
        r["consistency"]["agree"]
        and r["allo_429s"] == 0
        and r["saves"].get("server error", 0) == 0
        and r["card_opens"].get("server error", 0) == 0
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
