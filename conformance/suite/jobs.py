"""What the suite's video and rate-limit tests share: polling a credits-API video job (004 "For AI Agents":
"Poll usage records via GET /api/v1/multimodal/usage/{usage_id} to check generation status"), and the
bursts of limit + 1 requests on the rate-limit probes' key (004 per-endpoint limits).

A video job takes tens of seconds on a real GPU, and the serial stage's jobs used to run one after
another. A burst's first requests may start jobs other checks need (:func:`carried_burst`): the I2V
burst starts the premium providers' jobs (``test_credits_behaviour``), the T2V and CogVideoX bursts
the documented defaults' jobs (``test_defaults``, :func:`carried_video_defaults`), all at the serial
stage's first video test, polled side by side. One window, one burst: a burst sent after jobs on the
same key found its window spent, and judged a gateway that admits more than the limit as correct.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.failures import TargetError
from conformance.http import Exchange, TargetClient
from conformance.target import Target
from spec import Operation, find_operation
from spec.extensions import rate_limit

API = "credits_api"
RECORD = find_operation(API, "getMultimodalUsage")
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
    how long they took (``took_s``, s) and the window they were sent in (``window_s``, s); ``broken`` says why
    a burst stopped before its end without a 429 (a request got no answer), None for a whole burst."""

    exchanges: list[Exchange]
    took_s: float
    window_s: float
    broken: str | None = None

    def judgeable(self) -> list[Exchange]:
        """The answers, or a pytest skip when the burst broke off (its window is spent, and a second burst
        there would judge a lone 429) or took longer than its window allows to judge: a correct gateway may
        admit more than the limit across two windows."""
        if self.broken is not None:
            pytest.skip(f"the burst broke off after {len(self.exchanges)} answers ({self.broken}); its window is "
                        "spent, so no second burst is sent")
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


#: One request of each rate-limited credits endpoint, as its burst sends it (TTS's limit is
#: ``rate_limit_enforced``'s); a carried burst ends with these after its leading requests.
BURST_BODIES: dict[str, dict[str, Any]] = {
    "createMultimodalImage": {"prompt": "A lighthouse at dusk", "width": 512, "height": 512},
    "createImageToVideo": {"image_url": "https://example.com/photo.jpg", "motion_prompt": "Clouds drift by",
                           "provider": "wan22"},
    "createTextToVideo": {"prompt": "A wave on a beach", "duration": 1},
    "createCogVideoX": {"prompt": "A robot in the rain", "num_frames": 17},
}


def selected(session: pytest.Session, check: str, **params: Any) -> bool:
    """Whether this session runs a test of ``check`` whose parameters include ``params`` (``-k`` and
    ``--phases`` runs start no job for a test they leave out)."""
    for item in session.items:
        marker = item.get_closest_marker("check")
        found = getattr(getattr(item, "callspec", None), "params", {})
        if marker is not None and marker.args[0] == check and all(found.get(k) == v for k, v in params.items()):
            return True
    return False


def carried_burst(session: pytest.Session, client: TargetClient, target: Target, operation: Operation,
                  leading: Sequence[dict[str, Any]]) -> list[Exchange] | None:
    """When this session runs the rate-limit burst of ``operation`` (``credits_rate_limits_enforced``, the
    target file's ``rate_limits.endpoints`` listing it), send it now on the probes' key with the request
    bodies ``leading`` first (at most the limit of them), then :data:`BURST_BODIES` up to limit + 1, and keep
    it for its check (:func:`sent_bursts`). Returns the answers to ``leading`` (fewer when a 429 came
    first: the last is that 429), None when no such burst runs (the caller starts its jobs itself)."""
    probes, limit = target.rate_limits, rate_limit(operation)
    if (probes is None or operation.operation_id not in probes.endpoints or limit is None or limit.requests is None
            or not selected(session, "credits_rate_limits_enforced", operation_id=operation.operation_id)):
        return None
    attempted = session.stash.setdefault(_CARRIED, set())
    if operation.operation_id in attempted:  # a caller that failed before recording what it started asks again
        return None
    attempted.add(operation.operation_id)
    leading = list(leading)[:limit.requests]
    bodies = leading + [BURST_BODIES[operation.operation_id]] * (limit.requests + 1 - len(leading))
    window_s = float(limit.window_s or 60)
    try:
        burst = send_burst(client, operation.path, bodies, window_s)
    except TargetError as error:
        sent_bursts(session)[operation.operation_id] = Burst([], 0.0, window_s, broken=error.received)
        raise
    sent_bursts(session)[operation.operation_id] = burst
    return burst.exchanges[:len(leading)]


#: The operationIds whose burst :func:`carried_burst` sent (or began) in this session: one burst a window.
_CARRIED = pytest.StashKey[set[str]]()


#: One video job: (its start's answer, the usage records polled, the download of its video or None).
VideoJob = tuple[Exchange, list[Exchange], Exchange | None]
#: The documented video defaults ``test_defaults`` judges: operationId -> (check, request body leaving the field
#: out, key style when no burst carries the job). T2V is premium only; CogVideoX uses the standard key when
#: there is one (a rate-limit window the golden fixture did not use).
VIDEO_DEFAULTS = {
    "createTextToVideo": ("t2v_duration_default", {"prompt": "A paper boat drifting down a stream"}, "bearer"),
    "createCogVideoX": ("cogvideox_frames_default", {"prompt": "A kite rising over a hill"}, "standard"),
}
_CARRIED_DEFAULTS = pytest.StashKey[dict[str, Future[VideoJob]]]()


def poll_video(client: TargetClient, started: Exchange, auth: str) -> tuple[list[Exchange], Exchange | None]:
    """Poll the usage record of a video request until it is ``completed`` or ``failed``
    (:func:`poll_usage_record`), then download its ``video_url``: (the polled records, the download or None
    when the request started no job)."""
    body: Any = started.json()
    usage_id = body.get("usage_id") if isinstance(body, dict) else None
    if started.status != 200 or not isinstance(usage_id, str):
        return [], None
    records = poll_usage_record(client, usage_id, auth)
    final = records[-1].json() if records else None
    url = (final.get("video_url") if isinstance(final, dict) else None) or body.get("video_url")
    return records, client.request("GET", str(url), auth=None)


def _polled(client: TargetClient, started: Exchange, auth: str) -> VideoJob:
    return (started, *poll_video(client, started, auth))


def carried_video_defaults(session: pytest.Session, client: TargetClient,
                           target: Target) -> dict[str, Future[VideoJob]]:
    """The jobs of the :data:`VIDEO_DEFAULTS` whose tests and rate-limit bursts this session both runs: each
    started as the first request of its burst on the probes' key (:func:`carried_burst`; a 1/min window
    nothing else of the run uses) and polled in a thread. Made once per session, by the first of the serial
    stage's video fixtures to ask (so they run alongside the I2V jobs); operationId -> the job's future. The
    others are left to ``test_defaults`` (on the main or standard key, after the golden fixtures' window)."""
    if _CARRIED_DEFAULTS in session.stash:
        return session.stash[_CARRIED_DEFAULTS]
    pool = ThreadPoolExecutor(len(VIDEO_DEFAULTS), thread_name_prefix="video-default")
    session.config.add_cleanup(pool.shutdown)
    # kept before any start: if one fails, a later caller gets the jobs started so far, not a second burst
    jobs: dict[str, Future[VideoJob]] = session.stash.setdefault(_CARRIED_DEFAULTS, {})
    for operation_id, (check, body, _) in VIDEO_DEFAULTS.items():
        if operation_id in target.exclude_operations or not selected(session, check):
            continue
        answers = carried_burst(session, client, target, find_operation(API, operation_id), [body])
        if answers and answers[0].status != 429:  # else test_defaults starts it, waiting out the window
            jobs[operation_id] = pool.submit(_polled, client, answers[0], "limited")
    return jobs
