"""Polling a credits-API video job (004 "For AI Agents": "Poll usage records via GET
/api/v1/multimodal/usage/{usage_id} to check generation status"), shared by the suite's video tests."""

from __future__ import annotations

import time

from conformance.http import Exchange, TargetClient
from spec import find_operation

RECORD = find_operation("credits_api", "getMultimodalUsage")
#: Longest a video job may take before the poll gives up, in s (real GPU providers take minutes).
VIDEO_JOB_TIMEOUT_S = 600.0


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
