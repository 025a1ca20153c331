"""The Allo sandbox over a real loopback socket, and the command that serves it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dashboard.sandbox.core import DEFAULT_API_KEY, Sandbox
from dashboard.sandbox.server import SandboxServer

QUEUE = "/v2/api/dialing-queues/current"
REPO = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll until ``condition()`` holds; fail if it never does."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never came true")
        time.sleep(0.01)


def client_for(server: SandboxServer, *, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Api-Key {server.sandbox.api_key}"},
        timeout=timeout,
    )


def requests_seen(sandbox: Sandbox) -> int:
    return len(sandbox.stats()["log"])


def test_it_serves_on_a_free_loopback_port(live_sandbox: SandboxServer) -> None:
    assert live_sandbox.url.startswith("http://127.0.0.1:")
    assert not live_sandbox.url.endswith(":0")


def test_it_answers_401_over_the_socket_without_a_key(live_sandbox: SandboxServer) -> None:
    response = httpx.get(f"{live_sandbox.url}/v2/api/users")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_a_write_over_the_socket_is_applied_and_logged(live_sandbox: SandboxServer) -> None:
    sandbox = live_sandbox.sandbox
    zoe = sandbox.user_named("Zoé O'Connor")["id"]
    with client_for(live_sandbox) as http:
        response = http.post(
            f"{QUEUE}/numbers",
            json={"user_id": zoe, "numbers": [{"number": "06 12 34 56 78", "name": "Émile"}]},
        )
        assert response.status_code == 200
        assert response.json()["data"]["added"][0]["number_to"] == "+33612345678"
        assert int(response.headers["X-RateLimit-Remaining"]) <= 4
        state = http.get(f"/_sandbox/queues/{zoe}").json()["data"]
        log = http.get("/_sandbox/stats").json()["data"]["log"]
    assert [n["number_to"] for n in state["numbers"]] == ["+33612345678"]
    assert log[-1]["body"]["numbers"] == [{"number": "06 12 34 56 78", "name": "Émile"}]


def test_the_control_endpoints_answer_over_the_socket(live_sandbox: SandboxServer) -> None:
    sandbox = live_sandbox.sandbox
    anais = sandbox.user_named("Anaïs Fontaine")["id"]
    with client_for(live_sandbox) as http:
        put = http.put(f"/_sandbox/queues/{anais}", json={"numbers": ["0612345678"]})
        assert put.status_code == 200
        http.get(QUEUE, params={"user_id": anais})
        stats = http.get("/_sandbox/stats").json()["data"]
        assert stats["requests"] == [{"method": "GET", "path": QUEUE, "status": 200, "count": 1}]
        assert http.post("/_sandbox/reset").status_code == 200
        assert http.get(f"/_sandbox/queues/{anais}").json() == {"data": None}
        assert httpx.get(f"{live_sandbox.url}/_sandbox/stats").status_code == 401


def test_a_hang_ends_in_the_clients_timeout_while_other_requests_are_answered(
    live_sandbox: SandboxServer,
) -> None:
    sandbox = live_sandbox.sandbox
    with client_for(live_sandbox) as http, client_for(live_sandbox, timeout=0.3) as impatient:
        http.post("/_sandbox/faults", json={"hang": True, "count": 1})
        with ThreadPoolExecutor(1) as pool:
            hanging = pool.submit(impatient.patch, QUEUE, json={"name": "Never answered"})
            wait_until(lambda: requests_seen(sandbox) == 1)
            # The server still answers someone else while one request hangs.
            assert http.get("/v2/api/me").status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                hanging.result(timeout=5)
        log = http.get("/_sandbox/stats").json()["data"]["log"]
    assert [(row["method"], row["status"], row["fault"]) for row in log] == [
        ("PATCH", None, "hang"),
        ("GET", 200, None),
    ]
    queue = sandbox.queue_of(sandbox.owner_id)
    assert queue is not None and queue["name"] != "Never answered"


def test_lifting_the_fault_lets_a_hanging_request_go(live_sandbox: SandboxServer) -> None:
    sandbox = live_sandbox.sandbox
    with client_for(live_sandbox, timeout=30) as patient, client_for(live_sandbox) as http:
        http.post("/_sandbox/faults", json={"hang": True})
        with ThreadPoolExecutor(1) as pool:
            hanging = pool.submit(patient.get, "/v2/api/users")
            wait_until(lambda: requests_seen(sandbox) == 1)
            http.post("/_sandbox/faults", json={})
            # The connection is closed without an answer, as a dropped request would be.
            with pytest.raises(httpx.RemoteProtocolError):
                hanging.result(timeout=5)
        assert patient.get("/v2/api/users").status_code == 200


def test_stopping_the_server_lets_a_hanging_request_go() -> None:
    server = SandboxServer(Sandbox(), port=0).start()
    with client_for(server, timeout=30) as patient:
        patient.post("/_sandbox/faults", json={"hang": True})
        with ThreadPoolExecutor(1) as pool:
            hanging = pool.submit(patient.get, "/v2/api/users")
            wait_until(lambda: requests_seen(server.sandbox) == 1)
            url = server.url
            server.stop()
            with pytest.raises(httpx.TransportError):
                hanging.result(timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v2/api/me")


def test_latency_makes_a_client_with_a_shorter_timeout_give_up(
    live_sandbox: SandboxServer,
) -> None:
    with client_for(live_sandbox) as http, client_for(live_sandbox, timeout=0.05) as impatient:
        http.post("/_sandbox/faults", json={"latency_ms": 400, "count": 1})
        with pytest.raises(httpx.ReadTimeout):
            impatient.get("/v2/api/me")
        http.post("/_sandbox/faults", json={"latency_ms": 20, "count": 1})
        assert impatient.get("/v2/api/me", timeout=5).status_code == 200
        log = http.get("/_sandbox/stats").json()["data"]["log"]
    assert [(row["status"], row["fault"]) for row in log] == [(200, "latency"), (200, "latency")]


def test_the_simulated_reps_dial_on_their_own_when_given_an_interval() -> None:
    sandbox = Sandbox()
    lea = sandbox.user_named("Léa Moreau")["id"]

    def called() -> int:
        queue = sandbox.queue_of(lea)
        assert queue is not None
        return sum(1 for n in queue["numbers"] if n["call_start_date"])

    before = called()
    with SandboxServer(sandbox, dial_interval=0.02):
        wait_until(lambda: called() >= before + 2)


def test_no_dial_interval_means_no_dialing_thread(live_sandbox: SandboxServer) -> None:
    assert "allo-sandbox-dialer" not in {t.name for t in threading.enumerate()}
    with SandboxServer(Sandbox(), dial_interval=None):
        assert "allo-sandbox-dialer" not in {t.name for t in threading.enumerate()}


def test_the_url_is_known_only_once_started() -> None:
    server = SandboxServer(Sandbox())
    with pytest.raises(RuntimeError):
        _ = server.url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_prints_how_to_reach_it_and_serves_until_interrupted() -> None:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "manage.py", "allo_sandbox", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--dial-interval", "0", "--teammate-field", "user_id"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any("curl" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"the command ended early: {process.stderr and process.stderr.read()}"
            lines.append(line)
        printed = "".join(lines)
        assert f"http://127.0.0.1:{port}" in printed
        assert DEFAULT_API_KEY in printed
        assert "Camille Lefèvre" in printed
        assert "Teammate field: user_id" in printed
        response = httpx.get(
            f"http://127.0.0.1:{port}/v2/api/users",
            headers={"Authorization": f"Api-Key {DEFAULT_API_KEY}"},
        )
        assert response.status_code == 200 and len(response.json()["data"]) == 12
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Stopping the Allo sandbox." in out
