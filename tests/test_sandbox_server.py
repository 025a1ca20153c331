"""The Allo sandbox over a real loopback socket, and the command that serves it."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dashboard.sandbox.core import DEFAULT_API_KEY, Sandbox
from dashboard.sandbox.server import SandboxServer

QUEUE = "/v2/api/dialing-queues/current"
REPO = Path(__file__).resolve().parent.parent


# How long a test waits for the server's own threads (a request reaching the sandbox, a dial
# step) before it fails: a bound for a broken build, never reached by a working one.
DEADLINE = 5.0


def wait_for_requests(sandbox: Sandbox, count: int) -> None:
    assert sandbox.wait_for_requests(count, DEADLINE), f"{count} request(s) never reached Allo"


def client_for(server: SandboxServer, *, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Api-Key {server.sandbox.api_key}"},
        timeout=timeout,
    )


def test_it_serves_on_a_free_loopback_port(live_sandbox: SandboxServer) -> None:
    assert live_sandbox.url.startswith("http://127.0.0.1:")
    assert not live_sandbox.url.endswith(":0")


def test_answers_leave_without_waiting_for_an_ack(live_sandbox: SandboxServer) -> None:
    # With Nagle's algorithm on, the tail of an answer waited for the client's delayed ACK:
    # ~40 ms a request. Timing is a benchmark's business; the switch itself is checked here.
    with client_for(live_sandbox) as http:
        assert http.get("/v2/api/me").status_code == 200
        httpd = live_sandbox._httpd
        assert httpd is not None
        with httpd.connections_lock:
            [connection] = httpd.connections
        assert connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


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
            wait_for_requests(sandbox, 1)
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
            wait_for_requests(sandbox, 1)
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
            wait_for_requests(server.sandbox, 1)
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
        assert sandbox.wait_for_dials(2, DEADLINE), "the dialing thread never dialed twice"
    assert called() >= before + 2


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


class ProcessOutput:
    """What a child process prints, read line by line on a thread, so that a test can wait for
    a line with a deadline instead of blocking on ``readline()`` for ever."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="command-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.stream:
            self._queue.put(line)
        self._queue.put(None)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str, seconds: float) -> str:
        """Everything printed up to the first line holding ``marker``; fails at the deadline or
        if the process ends first."""
        deadline = time.monotonic() + seconds
        while not any(marker in line for line in self.lines):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {seconds} s:\n{self.text}") from None
            if line is None:
                raise AssertionError(f"the command ended before printing {marker!r}:\n{self.text}")
            self.lines.append(line)
        return self.text

    def close(self, seconds: float) -> str:
        """Read to the end (the process must have ended), then close the pipe."""
        self._reader.join(seconds)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        if not self._reader.is_alive():
            self.stream.close()
        return self.text


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
        [*command, "--dial-interval", "0", "--teammate-field", "user_id", "--strict-fields"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ProcessOutput(process)
    try:
        printed = output.wait_for("Quit with Ctrl-C", DEADLINE)
        url = f"http://127.0.0.1:{port}"
        assert f"Allo sandbox listening on {url}" in printed
        assert f"API key:  {DEFAULT_API_KEY}" in printed
        assert "Camille Lefèvre" in printed
        assert "Teammate field: user_id (unknown names refused)" in printed
        with httpx.Client(
            base_url=url,
            headers={"Authorization": f"Api-Key {DEFAULT_API_KEY}"},
            timeout=DEADLINE,
        ) as http:
            users = http.get("/v2/api/users")
            assert users.status_code == 200 and len(users.json()["data"]) == 12
            strict = http.get(QUEUE, params={"user_pid": users.json()["data"][1]["id"]})
            assert strict.status_code == 400
            assert (strict.json()["error"]["code"], strict.json()["error"]["param"]) == (
                "UNKNOWN_FIELD",
                "user_pid",
            )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=DEADLINE) == 0, output.close(DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        out = output.close(DEADLINE)
    assert "Stopping the Allo sandbox." in out
