"""The sandbox as an ``httpx`` transport, for fast in-process tests: no socket, no thread.

The only module of the sandbox that imports httpx.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import httpx

from .core import Sandbox, SandboxRequest


def _read_timeout(request: httpx.Request) -> float | None:
    """The client's read timeout for this request (None: it waits for ever)."""
    timeout = request.extensions.get("timeout") or {}
    value = timeout.get("read")
    return float(value) if value is not None else None


def sandbox_transport(sandbox: Sandbox) -> httpx.MockTransport:
    """A transport that answers every request from ``sandbox``, as the socket server would.

    The request is handled first (a write is applied), then the answer waits out any latency
    fault, exactly as ``server.SandboxServer`` does. A latency longer than the client's read
    timeout, or a ``hang`` fault, raises ``httpx.ReadTimeout`` at once instead of waiting for
    the timeout: what the client would see over the socket, the write having been applied or
    not just as it would have been there (a plain latency fault or ``apply_then_fail``:
    applied; a fault that replaces the answer: not). A shorter latency is slept.
    """

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode("ascii"), keep_blank_values=True)
        answer = sandbox.handle(
            SandboxRequest(
                method=request.method,
                path=request.url.path,
                query=query,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=request.read(),
            )
        )
        if answer.hang:
            raise httpx.ReadTimeout("The Allo sandbox left the request hanging.", request=request)
        read_timeout = _read_timeout(request)
        if read_timeout is not None and answer.delay > read_timeout:
            raise httpx.ReadTimeout(
                f"The Allo sandbox took {answer.delay:g} s, past the {read_timeout:g} s read "
                "timeout.",
                request=request,
            )
        if answer.delay > 0:
            time.sleep(answer.delay)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    return httpx.MockTransport(handler)
