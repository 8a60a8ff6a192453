"""What the suite's video and rate-limit tests share: polling a credits-API video job (004 "For AI Agents":
"Poll usage records via GET /api/v1/multimodal/usage/{usage_id} to check generation status"), and the
bursts of limit + 1 requests on the rate-limit probes' key (004 per-endpoint limits).

A video job takes tens of seconds on a real GPU, and the serial stage's jobs used to run one after
another. A burst's first requests may start jobs other checks need (:func:`carried_burst`): the I2V
burst starts the premium providers' jobs (``test_credits_behaviour``), the T2V and CogVideoX bursts
the documented defaults' jobs (``test_defaults``, :func:`carried_video_defaults`), all started together
(:func:`start_video_jobs`) and polled side by side. One window, one burst: a burst sent after jobs on the
same key found its window spent, and judged a gateway that admits more than the limit as correct.

The jobs take a minute on the mock's real-time latency, most of the serial stage. So a concurrent run
(``conformance/cli.py``) starts them before its first session, where their keys allow it
(:func:`starts_before_the_run`), and they run on the target while the golden and behavioural checks
do; the serial stage polls and judges them. What was started and sent is the run's, not a session's
(:class:`Carried`): a burst is sent once a run and judged once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.failures import TargetError
from conformance.http import Exchange, TargetClient, retry_after_s
from conformance.target import Target
from spec import Operation, find_operation
from spec.extensions import providers, rate_limit

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


@dataclass
class Carried:
    """What a run carries across its pytest sessions (one per run: ``ConformancePlugin.carry``, the
    ``carried`` fixture): the rate-limit bursts another test sent, kept for the check of that operation to
    judge (``bursts``: operationId -> :class:`Burst`, popped when judged), the operationIds whose burst was
    sent or begun (``attempted``: one burst a window), the video jobs those bursts and the I2V providers'
    starts began (:func:`start_video_jobs`: ``video_defaults`` operationId -> the start's answer on the
    probes' key, ``i2v`` provider -> (key style, the start's answer); None before they were started), and
    ``error``, what broke their start before the run's first session (raised to the first test that asks)."""

    bursts: dict[str, Burst] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)
    video_defaults: dict[str, Exchange] | None = None
    i2v: dict[str, tuple[str, Exchange]] | None = None
    error: BaseException | None = None


#: One request of each rate-limited credits endpoint, as its burst sends it (TTS's limit is
#: ``rate_limit_enforced``'s); a carried burst ends with these after its leading requests.
BURST_BODIES: dict[str, dict[str, Any]] = {
    "createMultimodalImage": {"prompt": "A lighthouse at dusk", "width": 512, "height": 512},
    "createImageToVideo": {"image_url": "https://example.com/photo.jpg", "motion_prompt": "Clouds drift by",
                           "provider": "wan22"},
    "createTextToVideo": {"prompt": "A wave on a beach", "duration": 1},
    "createCogVideoX": {"prompt": "A robot in the rain", "num_frames": 17},
}


def selected(items: Iterable[pytest.Item], check: str, **params: Any) -> bool:
    """Whether ``items`` (a session's tests) hold a test of ``check`` whose parameters include ``params``
    (``-k`` and ``--phases`` runs start no job for a test they leave out)."""
    for item in items:
        marker = item.get_closest_marker("check")
        found = getattr(getattr(item, "callspec", None), "params", {})
        if marker is not None and marker.args[0] == check and all(found.get(k) == v for k, v in params.items()):
            return True
    return False


def carried_burst(carried: Carried, items: Iterable[pytest.Item], client: TargetClient, target: Target,
                  operation: Operation, leading: Sequence[dict[str, Any]]) -> list[Exchange] | None:
    """When ``items`` (the tests that run) hold the rate-limit burst of ``operation``
    (``credits_rate_limits_enforced``, the target file's ``rate_limits.endpoints`` listing it), send it now on
    the probes' key with the request bodies ``leading`` first (at most the limit of them), then
    :data:`BURST_BODIES` up to limit + 1, and keep it in ``carried.bursts`` for its check. Returns the answers
    to ``leading`` (fewer when a 429 came first: the last is that 429), None when no such burst runs or it
    was sent (or begun) before in this run (the caller starts its jobs itself)."""
    probes, limit = target.rate_limits, rate_limit(operation)
    if (probes is None or operation.operation_id not in probes.endpoints or limit is None or limit.requests is None
            or not selected(items, "credits_rate_limits_enforced", operation_id=operation.operation_id)):
        return None
    if operation.operation_id in carried.attempted:  # a caller that failed before recording its jobs asks again
        return None
    carried.attempted.add(operation.operation_id)
    leading = list(leading)[:limit.requests]
    bodies = leading + [BURST_BODIES[operation.operation_id]] * (limit.requests + 1 - len(leading))
    window_s = float(limit.window_s or 60)
    try:
        burst = send_burst(client, operation.path, bodies, window_s)
    except TargetError as error:
        carried.bursts[operation.operation_id] = Burst([], 0.0, window_s, broken=error.received)
        raise
    carried.bursts[operation.operation_id] = burst
    return burst.exchanges[:len(leading)]


#: One video job: (its start's answer, the usage records polled, the download of its video or None).
VideoJob = tuple[Exchange, list[Exchange], Exchange | None]
#: The documented video defaults ``test_defaults`` judges: operationId -> (check, request body leaving the field
#: out, key style when no burst carries the job). T2V is premium only; CogVideoX uses the standard key when
#: there is one (a rate-limit window the golden fixture did not use).
VIDEO_DEFAULTS = {
    "createTextToVideo": ("t2v_duration_default", {"prompt": "A paper boat drifting down a stream"}, "bearer"),
    "createCogVideoX": ("cogvideox_frames_default", {"prompt": "A kite rising over a hill"}, "standard"),
}


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


def polled(client: TargetClient, started: Exchange, auth: str) -> VideoJob:
    """The :data:`VideoJob` of ``started`` (a video request's answer), polled on key ``auth`` (:func:`poll_video`)."""
    return (started, *poll_video(client, started, auth))


def carried_video_defaults(carried: Carried, items: Iterable[pytest.Item], client: TargetClient,
                           target: Target) -> dict[str, Exchange]:
    """The jobs of the :data:`VIDEO_DEFAULTS` whose tests and rate-limit bursts ``items`` both hold, each
    started as the first request of its burst on the probes' key (:func:`carried_burst`; a 1/min window
    nothing else of the run uses); made once per run (``carried.video_defaults``): operationId -> the
    start's answer (a 429 is left out: ``test_defaults`` then starts that job itself, waiting out the
    window). The others are left to ``test_defaults`` (on the main or standard key, after the golden
    fixtures' window)."""
    if carried.video_defaults is not None:
        return carried.video_defaults
    # kept before any start: if one fails, a later caller gets the jobs started so far, not a second burst
    starts: dict[str, Exchange] = {}
    carried.video_defaults = starts
    for operation_id, (check, body, _) in VIDEO_DEFAULTS.items():
        if operation_id in target.exclude_operations or not selected(items, check):
            continue
        answers = carried_burst(carried, items, client, target, find_operation(API, operation_id), [body])
        if answers and answers[0].status != 429:
            starts[operation_id] = answers[0]
    return starts


I2V = find_operation(API, "createImageToVideo")
I2V_PROVIDERS = providers(I2V)
#: Longest wait for a key's I2V window when two of the run's jobs would share it (004: 2 a minute), in s.
I2V_WINDOW_WAIT_S = 65.0


def i2v_body(provider: str) -> dict[str, Any]:
    """An I2V request for ``provider``; wan22 is the documented default, asked for by omitting the field."""
    body = {"image_url": "https://example.com/photo.jpg", "motion_prompt": "Clouds drift across the sky"}
    return body if provider == "wan22" else {**body, "provider": provider}


def i2v_style(provider: str, target: Target) -> str:
    """The key an I2V job of ``provider`` is started and polled with: wan22 on the standard key when the target
    has one, seedance and sora2 (premium) on the rate-limit probes' key (``limited``: a premium key set aside
    for rate-limited calls, the main key when the target file names none; the golden fixtures spend the main
    key's I2V window, 2 a minute in 004)."""
    return "standard" if provider == "wan22" and target.standard_api_key else "limited" if provider != "wan22" \
        else "bearer"


def start_i2v(client: TargetClient, provider: str, style: str) -> Exchange:
    """Start an I2V job of ``provider`` on key ``style``, waiting out a 429's Retry-After when it is at most
    :data:`I2V_WINDOW_WAIT_S` (another job of the run may hold the key's window)."""
    started = client.request("POST", I2V.path, auth=style, json_body=i2v_body(provider), honour_429=False)
    wait = retry_after_s(started.headers) if started.status == 429 else None
    if wait is not None and wait <= I2V_WINDOW_WAIT_S:
        time.sleep(wait)
        started = client.request("POST", I2V.path, auth=style, json_body=i2v_body(provider))
    return started


def start_video_jobs(carried: Carried, items: Iterable[pytest.Item], client: TargetClient,
                     target: Target) -> dict[str, tuple[str, Exchange]]:
    """Start the run's polled video jobs for the tests ``items`` hold, once per run (a later call returns what
    the first started): the video defaults a burst carries (:func:`carried_video_defaults`), then the I2V
    providers' jobs (``video_job_completes``: wan22; ``video_provider_cost_and_duration``: each provider's),
    the premium ones as the first requests of the I2V burst on the probes' key (:func:`carried_burst`: a
    burst sent after them would find the key's window, 2 a minute, spent and judge a gateway that admits
    more as correct), wan22 on its own key (:func:`i2v_style`). Only the starts are made (they charge); the
    jobs run on the target meanwhile and are polled by the tests' fixtures. Returns the I2V starts: provider
    -> (key style, the start's answer). Raises what broke an earlier start of the run (``carried.error``,
    once)."""
    if carried.error is not None:
        error, carried.error = carried.error, None
        raise error
    items = list(items)  # read more than once
    carried_video_defaults(carried, items, client, target)
    if carried.i2v is not None:
        return carried.i2v
    wanted = {"wan22"} if selected(items, "video_job_completes") else set()
    wanted |= {p for p in I2V_PROVIDERS if selected(items, "video_provider_cost_and_duration", provider=p)}
    started: dict[str, tuple[str, Exchange]] = {}
    carried.i2v = started  # kept before any start (see carried_video_defaults)
    if not wanted:
        return started
    premium = sorted(p for p in wanted if i2v_style(p, target) == "limited")
    answers = carried_burst(carried, items, client, target, I2V, [i2v_body(p) for p in premium]) or []
    started.update({p: ("limited", answer) for p, answer in zip(premium, answers, strict=False)})
    for provider in sorted(wanted - set(started)):
        style = i2v_style(provider, target)
        started[provider] = style, start_i2v(client, provider, style)
    return started


def starts_before_the_run(target: Target) -> bool:
    """Whether :func:`start_video_jobs` may run before the run's first session, alongside its golden and
    behavioural checks: only when the jobs' keys are none of the keys those checks use, i.e. the target names a
    probes' key (``rate_limits.api_key``) and a standard key, both other than the main key. Else the golden
    video cases (the main key's I2V, T2V and CogVideoX windows, 2 and 1 a minute) and the bursts would meet in
    one window, and the jobs are started by the serial stage's fixtures."""
    keys = (target.rate_limits.api_key if target.rate_limits else None, target.standard_api_key)
    return all(key and key != target.api_key for key in keys)
