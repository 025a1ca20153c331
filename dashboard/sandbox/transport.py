"""The sandbox as an ``httpx`` transport, for fast in-process tests: no socket, no thread.

The only module of the sandbox that imports httpx.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import httpx

from .core import Sandbox, SandboxRequest


def sandbox_transport(sandbox: Sandbox) -> httpx.MockTransport:
    """A transport that answers every request from ``sandbox``.

    A ``hang`` fault raises ``httpx.ReadTimeout`` at once, as a client with a read timeout would
    see it, without waiting; a latency fault sleeps.
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
        if answer.delay > 0:
            time.sleep(answer.delay)
        if answer.hang:
            raise httpx.ReadTimeout("The Allo sandbox left the request hanging.", request=request)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    return httpx.MockTransport(handler)
