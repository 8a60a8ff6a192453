"""What the suite's video and rate-limit tests share: polling a credits-API video job (004 "For AI Agents":
"Poll usage records via GET /api/v1/multimodal/usage/{usage_id} to check generation status"), and the
bursts of limit + 1 requests on the rate-limit probes' key (004 per-endpoint limits), which another test
may send for a check of its own (the I2V burst starts the premium providers' jobs: one window, one burst)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.http import Exchange, TargetClient
from spec import find_operation

RECORD = find_operation("credits_api", "getMultimodalUsage")
#: Longest a video job may take before the poll gives up, in s (real GPU providers take minutes).
VIDEO_JOB_TIMEOUT_S = 600.0
#: A burst starts no later than this many s before a clock boundary of its window (a fixed window aligned
#: on the clock would otherwise see it in two windows).
BOUNDARY_MARGIN_S = 5.0


def poll_usage_record(client: TargetClient, usage_id: str, auth: str,
                      timeout_s: float = VIDEO_JOB_TIMEOUT_S) -> list[Exchange]:
    """GET the usage record ``usage_id`` until its ``status`` is ``completed`` or ``failed``, an answer is not
    a JSON object or a 4xx/5xx, or ``timeout_s`` (s) pass, backing off from 50 ms to 5 s; every answer, in
    order (the last is the verdict)."""
    records: list[Exchange] = []
    deadline, delay = time.monotonic() + timeout_s, 0.05
    while time.monotonic() < deadline:
        records.append(client.request("GET", RECORD.path.format(usage_id=usage_id), auth=auth))
        record = records[-1].json()
        if not isinstance(record, dict) or record.get("status") in ("completed", "failed") or records[-1].status >= 400:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
    return records


@dataclass(frozen=True)
class Burst:
    """Requests sent one after another on the probes' key, up to the first 429: their answers (``exchanges``),
    how long they took (``took_s``, s) and the window they were sent in (``window_s``, s)."""

    exchanges: list[Exchange]
    took_s: float
    window_s: float

    def judgeable(self) -> list[Exchange]:
        """The answers, or a pytest skip when the burst took longer than its window allows to judge: a correct
        gateway may admit more than the limit across two windows."""
        if self.took_s > self.window_s - BOUNDARY_MARGIN_S:
            pytest.skip(f"the burst of {len(self.exchanges)} requests took {self.took_s:.0f} s, more than its "
                        f"{self.window_s:g} s window allows to judge: declare a smaller limit for this target")
        return self.exchanges


def send_burst(client: TargetClient, path: str, bodies: Sequence[dict[str, Any]], window_s: float = 60.0) -> Burst:
    """POST each of ``bodies`` to ``path`` on the probes' key (``limited``: the main key when the target file
    names none), one after another, stopping at the first 429 (never waited for).

    A limit "per ``window_s`` s" may be a sliding window or a fixed one aligned on the clock (a minute from
    :00), and neither may be judged on a burst that spans more than one window. So the burst does not start
    in the last :data:`BOUNDARY_MARGIN_S` s before a clock boundary of the window (it waits that out, at most
    that long), and :meth:`Burst.judgeable` skips one that took longer than the window."""
    left = window_s - time.time() % window_s
    if left < BOUNDARY_MARGIN_S:
        time.sleep(left + 0.5)
    started = time.monotonic()
    exchanges: list[Exchange] = []
    for body in bodies:
        exchanges.append(client.request("POST", path, json_body=body, auth="limited", honour_429=False))
        if exchanges[-1].status == 429:
            break
    return Burst(exchanges, time.monotonic() - started, window_s)


#: The run's bursts another test sent (operationId -> :class:`Burst`), kept on the pytest session
#: (``session.stash[SENT_BURSTS]``) for the rate-limit check of that operation to judge.
SENT_BURSTS = pytest.StashKey[dict[str, Burst]]()


def sent_bursts(session: pytest.Session) -> dict[str, Burst]:
    """The session's :data:`SENT_BURSTS` (made empty on first use)."""
    return session.stash.setdefault(SENT_BURSTS, {})
