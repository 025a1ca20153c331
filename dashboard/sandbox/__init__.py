"""The Allo sandbox: a stand-in for Allo's REST API as ../shared/allo-api.md describes it.

- ``core.Sandbox``: the ``SandboxRequest -> SandboxResponse`` object (no HTTP), its settings
  (``teammate_field``, ``teammate_field_by_method``, ``strict_fields``, ``get_shape``,
  ``scopes``, ``scope_error_shape``, ``date_style``, ``read_limit``, ``write_limit``; each
  settable at runtime, in the constructor, and through ``PATCH /_sandbox/config``) and
  ``dial_step()``; ``wait_for_dials(count, timeout)`` and ``wait_for_requests(count, timeout)``
  let a test wait for the server's threads without polling. ``api`` holds the ``/v2/api/``
  endpoints, ``control`` the ``/_sandbox/`` ones.
- ``server.SandboxServer``: serves it on a loopback socket; ``transport.sandbox_transport``:
  plugs it into ``httpx.MockTransport``; ``clock.FakeClock``: a clock for tests.
- ``seed``: the seeded French sales team; ``dialer``: the simulated reps.

Where the contract is silent, the sandbox chooses (each choice is one a client must survive):

- A 401 spends no rate budget and shows a fresh window's headers. Faults that replace the
  answer are served before authentication and spend none either; ``apply_then_fail`` runs the
  request fully, then replaces a 2xx answer. A fault's error may carry the envelope's ``code``,
  ``param`` and ``message`` (see ``faults``).
- Rate-limit windows are fixed one-second windows of the clock; ``X-RateLimit-Reset`` is the
  window's end as a Unix timestamp; ``Retry-After`` and ``retry_after_seconds`` are whole
  seconds, at least 1.
- ``teammate_field`` (``both``, ``user_id``, ``user_pid``, ``none``) names the teammate id
  fields Allo reads; ``teammate_field_by_method`` overrides it per HTTP method (keys ``GET``,
  ``PATCH``, ``POST``, ``DELETE``), e.g. ``{"POST": "none", "DELETE": "none"}``: reads honour the
  teammate while appends, resets and clears silently act on the key owner's queue. It is per
  method, not per endpoint: ``POST`` covers both reset and append, ``PATCH`` both upsert and
  reassign.
- A teammate id field the mode in force (for the request's method) does not know is ignored,
  as an API ignores unknown fields. Under ``strict_fields`` (``--strict-fields``) it is refused
  instead: 400 ``validation_error``, ``code: "UNKNOWN_FIELD"``, ``param`` the field's name,
  ``errors: [{"field": name, "code": "UNKNOWN_FIELD", "message": ...}]``, nothing applied. The
  field's presence is enough (a JSON null or a blank query value too); ``email`` is always known,
  and other unknown fields are still ignored.
- An unknown teammate id gives ``param: "user_id"`` (whether sent as ``user_id`` or
  ``user_pid``), an unknown email ``param: "email"``. A teammate field sent as JSON null counts
  as not sent (so the key owner's queue is used); an empty string is an unknown id (404).
- Explicit null in a PATCH leaves the field alone. Queue names are 1-255 characters, for reset
  too. A reset starts with ``NO_SKIP``/``DISABLED`` (settings are not carried over); a rep who
  was dialing the old queue dials the new one.
- The 1,000 cap counts the valid numbers of a request; if they do not all fit, nothing is added.
- After a delete, later numbers move up: positions are always 0..n-1.
- Without a queue, the paginated GET answers ``{"data": [], "pagination": {"page": 0, "size":
  0, "total_count": 0, "total_pages": 0, "has_more": false}}``; the legacy GET answers
  ``{"data": null}`` and ignores ``page``/``size``. The legacy shape also leaves out
  ``call_status`` (newest pages only). ``call_status`` is ``QUEUED`` on every number.
- Reassigning makes the queue the new assignee's current one and leaves the previous assignee
  with no queue. A queue replaced by a reset is kept but is nobody's current queue (unless it
  is reassigned by id).
- A failure inside the sandbox (a bug, or a world a test changed into nonsense) answers 500
  ``INTERNAL_SERVER_ERROR`` in the envelope, with the rate-limit headers (its budget was spent)
  and counted in the stats and log like any answer; the traceback goes to the log.
- Latency is served after the request is handled: a write delayed past the client's read
  timeout was applied all the same (a fault that replaces the answer applies nothing). Through
  ``httpx.MockTransport``, a delay longer than the request's read timeout (or a hang) raises
  ``httpx.ReadTimeout`` at once instead of sleeping; a shorter one is slept.
- Unknown paths answer 404 ``NOT_FOUND``, known paths with another method 405
  ``METHOD_NOT_ALLOWED`` with ``Allow``; 405 and 415 have ``type: invalid_request_error``.
"""
