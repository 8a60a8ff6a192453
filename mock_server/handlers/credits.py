"""The credits-based multimodal API of 004 "Multimodal API" (spec ``credits_api.yaml``).

Every generation charges the credits the spec gives (``x-credits``; per provider for I2V) in the
ledger of :mod:`mock_server.sim.ledger`, atomically with its usage record; a short balance is
402 "Insufficient credits" (004 "Error Codes") and charges nothing. Media are real: TTS answers
MP3 speech, images are PNGs of the asked size, videos are H.264 MP4s hosted by the mock
(``video_url``), made by asynchronous jobs whose usage records agents poll (004 "For AI Agents";
see :func:`_video`). Tier rules (T2V "Premium only", sora2 "(premium)") come from the spec and the key's
tier from the configuration (``Services.tier``).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.handlers import handles
from mock_server.media import image_bytes
from mock_server.media_av import mp4, speech
from mock_server.sim import PREMIUM, FileTooLarge, InsufficientCredits, UsageRecord, meets
from mock_server.sim.jobs import Job
from mock_server.sim.latency import Plan
from mock_server.sim.ledger import COMPLETED, QUEUED
from mock_server.stages.latency import JOB_STATE
from mock_server.textgen import rng_for
from spec import find_operation, request_body_schema, resolve
from spec.extensions import credit_cost, hosted_url_ttl_s, providers

API = "credits_api"
#: The usage-record ``endpoint_type`` of each generation (004 "Usage History": the filter's values).
ENDPOINT_TYPE = {"createMultimodalTts": "tts", "createMultimodalImage": "image", "createImageToVideo": "video_i2v",
                 "createTextToVideo": "video_t2v", "createCogVideoX": "video_cogvideox"}
#: Frame rate of every generated video, in frames/s: CogVideoX-2B's 8 fps, so num_frames / 8 s.
VIDEO_FPS = 8
#: Size of T2V and CogVideoX videos, in px: 004 gives a resolution only for I2V (1280x720 for every
#: provider); the same is assumed for the other video endpoints.
VIDEO_SIZE = (1280, 720)
#: Lifetime of a ``video_url``, in s, when neither the config nor the spec sets one (004 gives none): 24 h.
VIDEO_URL_TTL_S = 24 * 3600
#: How long a video job takes, in s, when simulated latency is off (``latency.enabled: false``).
VIDEO_JOB_S = 0.05
#: Retry-After of a video refused because too many jobs are pending, in s.
JOBS_FULL_RETRY_AFTER_S = 5
#: Bytes a multipart upload may add around its file (boundaries, part headers, small fields).
MULTIPART_OVERHEAD_BYTES = 64 * 1024

T = TypeVar("T")


def _request_defaults(operation_id: str) -> dict[str, Any]:
    """``{field: schema default}`` of an operation's JSON request body (read once, at import)."""
    schema = resolve(API, request_body_schema(find_operation(API, operation_id)) or {})
    return {name: resolve(API, prop).get("default") for name, prop in schema.get("properties", {}).items()}


DEFAULTS = {operation_id: _request_defaults(operation_id) for operation_id in ENDPOINT_TYPE}
#: The I2V providers by name (``x-providers``: cost, duration, size, premium; 004 "Video: Image-to-Video (I2V)").
I2V_PROVIDERS = providers(find_operation(API, "createImageToVideo"))


def _field(call: Call, name: str) -> Any:
    """A request field, or its schema default when omitted."""
    value = call.body.get(name)
    return DEFAULTS[call.operation.operation_id][name] if value is None else value


async def _off_loop(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a worker thread (encoders, SQLite), keeping the event loop free."""
    return await anyio.to_thread.run_sync(functools.partial(function, *args))


def _printable(text: str) -> str:
    """``text`` with what UTF-8 cannot carry (a lone surrogate from a JSON escape) replaced by ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _key(call: Call) -> str:
    return call.api_key or ""


def _payment_required(needed: int, balance: int) -> ApiError:
    return ApiError(402, f"Insufficient credits: this call costs {needed} credits and {balance} are left.",
                    code="insufficient_credits")


def _cost(call: Call) -> int:
    """The credits this call charges (``x-credits``, by provider for I2V; 004 "Credit Costs Summary")."""
    cost = credit_cost(call.operation, call.body)
    return 0 if cost is None else cost.credits


async def _ensure_affordable(call: Call, credits: int) -> None:
    """Refuse early (402) a call the balance cannot pay, before any media is made; the charge re-checks."""
    balance = await call.services.credits.balance(_key(call))
    if balance < credits:
        raise _payment_required(credits, balance)


async def _charge(call: Call, credits: int, result: Mapping[str, Any], status: str = COMPLETED,
                  recipe: Mapping[str, Any] | None = None) -> UsageRecord:
    """Debit and record the call atomically, by the ledger's group commit (concurrent charges share one
    transaction, each in its own savepoint; answered after COMMIT); 402 (nothing charged) when the balance is short."""
    endpoint_type = ENDPOINT_TYPE[call.operation.operation_id]
    try:
        record = await call.services.credits.charge(_key(call), endpoint_type, credits, result, status, recipe)
    except InsufficientCredits as short:
        raise _payment_required(short.needed, short.balance) from None
    if call.services.metrics is not None:
        call.services.metrics.operation(call.operation.operation_id).charged(credits)
    return record


def _require_tier(call: Call, required: str | None, what: str) -> None:
    """403 when the key's tier does not meet ``required`` (004 T2V "Tier: Premium only"; sora2 "(premium)")."""
    if not meets(call.services.tier(call.api_key), required):
        raise ApiError(403, f"{what} requires the {required} tier.", code="tier_required")


@handles("createMultimodalTts")
async def create_tts(call: Call) -> Response:
    """004 "Text-to-Speech (TTS)": base64 MP3 speech whose ``duration_ms`` is the audio's duration."""
    credits = _cost(call)
    await _ensure_affordable(call, credits)
    audio, duration_ms = await _off_loop(speech, call.body["text"], "mp3")
    result = {"format": "mp3", "duration_ms": duration_ms, "voice": _printable(_field(call, "voice"))}
    record = await _charge(call, credits, result)
    return JSONResponse({"audio_base64": base64.b64encode(audio).decode("ascii"), "format": "mp3",
                         "duration_ms": duration_ms, "usage_id": record.usage_id, "credits_used": record.credits,
                         "credits_remaining": record.balance_after})


@handles("createMultimodalImage")
async def create_image(call: Call) -> Response:
    """004 "Image Generation": a base64 PNG of exactly ``width`` x ``height`` px (default 1024).

    004's response table lists no usage_id or credits_remaining for images; the answer follows it.
    """
    credits = _cost(call)
    width, height = int(_field(call, "width")), int(_field(call, "height"))
    await _ensure_affordable(call, credits)
    colour = rng_for(call.services.config.seed, call.body["prompt"], call.body.get("style")).randrange(64)
    png = await _off_loop(image_bytes, width, height, colour, "png")
    await _charge(call, credits, {"format": "png", "width": width, "height": height})
    return JSONResponse({"image_base64": base64.b64encode(png).decode("ascii"), "format": "png",
                         "width": width, "height": height, "credits_used": credits})


@handles("createImageToVideo")
async def create_image_to_video(call: Call) -> Response:
    """004 "Video: Image-to-Video (I2V)": the provider (default wan22) sets cost, duration and size."""
    provider = I2V_PROVIDERS[_field(call, "provider")]
    _require_tier(call, PREMIUM if provider.premium else None, f"The provider {provider.name}")
    return await _video(call, provider.width, provider.height, provider.duration_s, {"provider": provider.name})


@handles("createTextToVideo")
async def create_text_to_video(call: Call) -> Response:
    """004 "Video: Text-to-Video (T2V)": premium only; lasts the request's ``duration`` (s, default 5)."""
    return await _video(call, *VIDEO_SIZE, float(_field(call, "duration")), {})


@handles("createCogVideoX")
async def create_cogvideox(call: Call) -> Response:
    """004 "Video: CogVideoX": ``num_frames`` (17, 33, 49) frames at :data:`VIDEO_FPS`."""
    frames = int(_field(call, "num_frames"))
    return await _video(call, *VIDEO_SIZE, frames / VIDEO_FPS, {"num_frames": frames})


async def _video(call: Call, width: int, height: int, duration_s: float, extra: Mapping[str, Any]) -> Response:
    """Charge one video and start its job; answers 004 "Video Response (all video endpoints)" at once.

    004 "For AI Agents": "Poll usage records via GET /api/v1/multimodal/usage/{usage_id} to check
    generation status". The answer comes before the video exists: ``usage_id``, ``credits_used``,
    ``credits_remaining``, ``format``, ``duration_seconds`` (s), ``status: "queued"``, and ``video_url``,
    which the spec's VideoResponse requires: it is the URL the video WILL be served at, answering 425
    ``not_ready`` in the error envelope (Retry-After: 1) until the job completes, then the H.264 MP4
    of ``width`` x ``height`` px and ``duration_s``. The record's status moves queued -> processing ->
    completed (it gains ``video_url``) or failed (``error``; no refund). The job lasts the latency
    model of the operation for ``duration_s`` s of video (times ``latency.time_scale``) on the GPU pool
    of the provider (I2V) or the operation, or :data:`VIDEO_JOB_S` with latency off (``sim/jobs.py``).
    Records survive a restart (a file ledger; unfinished jobs become failed), hosted videos do not (404).
    Raises ApiError 402 (short balance) or 429 when too many jobs are pending; neither charges.
    """
    services = call.services
    credits = _cost(call)
    await _ensure_affordable(call, credits)
    if services.jobs.full:
        raise ApiError(429, f"Too many video jobs in progress ({services.jobs.max_pending}); retry later.",
                       code="too_many_jobs", headers={"Retry-After": str(JOBS_FULL_RETRY_AFTER_S)})
    ttl_s = services.config.hosted_url_ttl_s or hosted_url_ttl_s(call.operation) or VIDEO_URL_TTL_S
    path = await services.hosted.reserve_path("video/mp4", ttl_s, suffix=".mp4", owner=call.api_key)
    url = str(call.request.base_url).rstrip("/") + path
    operation_id = call.operation.operation_id
    plan = (services.latency.plan(operation_id, duration_s) if services.config.latency.enabled
            else Plan(0.0, VIDEO_JOB_S, 0.0))
    recipe = {"width": width, "height": height, "duration_s": duration_s,
              "colour": rng_for(services.config.seed, operation_id, call.body).randrange(4), "path": path, "url": url,
              "ttl_s": ttl_s, "model": str(extra.get("provider", operation_id)),
              "plan": [plan.queue_s, plan.first_s, plan.generation_s, plan.unit_s]}
    try:
        record = await _charge(call, credits, {"format": "mp4", "duration_seconds": duration_s, "width": width,
                                               "height": height, **extra}, QUEUED, recipe)
    except ApiError:
        await services.hosted.discard_path(path)
        raise
    services.jobs.submit(video_job(services, record.usage_id, recipe))
    call.state[JOB_STATE] = record.usage_id  # the latency stage leaves this answer alone: the job has the latency
    return JSONResponse({"video_url": url, "format": "mp4", "duration_seconds": duration_s, "status": QUEUED,
                         "usage_id": record.usage_id, "credits_used": record.credits,
                         "credits_remaining": record.balance_after})


def video_job(services: Services, usage_id: str, recipe: Mapping[str, Any]) -> Job:
    """The job that makes a video from its ``recipe`` (JSON: ``width``, ``height`` px, ``duration_s`` s,
    ``colour``, the reserved ``path`` and its ``url``, ``ttl_s`` s, the GPU pool ``model``, the drawn
    ``plan`` in s): encode the MP4, fill the reserved path, add ``video_url`` to the record. A fleet
    resumes an orphaned job from its recipe alone (``fleet/jobs.py``)."""

    async def produce() -> dict[str, Any]:
        video = await _off_loop(mp4, recipe["width"], recipe["height"], recipe["duration_s"], VIDEO_FPS,
                                recipe["colour"])
        await services.hosted.fill_path(recipe["path"], video, "video/mp4", recipe["ttl_s"])
        return {"video_url": recipe["url"]}

    return Job(usage_id, recipe["model"], Plan(*recipe["plan"]), produce,
               functools.partial(services.hosted.discard_path, recipe["path"]))


def usage_json(record: UsageRecord) -> dict[str, Any]:
    """A usage record as the API shows it: the spec's ``UsageRecord`` fields (``created_at`` in ISO 8601
    UTC) and what the call produced (``video_url``, ``duration_seconds``, ``duration_ms``...)."""
    created = datetime.fromtimestamp(record.created_at, UTC).isoformat(timespec="milliseconds")
    return {**record.result, "usage_id": record.usage_id, "endpoint_type": record.endpoint_type,
            "credits_used": record.credits, "status": record.status, "created_at": created.replace("+00:00", "Z")}


@handles("listMultimodalUsage")
async def list_usage(call: Call) -> Response:
    """004 "Usage History": the key's records, newest first, paged by skip and limit (1-100),
    optionally of one ``endpoint_type``; ``{"items", "total", "skip", "limit"}``."""
    skip, limit = int(call.params.get("skip", 0)), int(call.params.get("limit", 50))
    page = await call.services.credits.usage(_key(call), skip, limit, call.params.get("endpoint_type"))
    return JSONResponse({"items": [usage_json(record) for record in page.items], "total": page.total,
                         "skip": skip, "limit": limit})


@handles("getMultimodalUsage")
async def get_usage(call: Call) -> Response:
    """004 "For AI Agents" ("Poll usage records ... to check generation status"): one of the key's usage
    records, whose ``status`` is ``completed`` for a synchronous call and, for a video job, ``queued``,
    ``processing``, then ``completed`` (with ``video_url``) or ``failed`` (with ``error``). Raises
    ApiError 404 for an unknown or another key's id."""
    usage_id = call.params["usage_id"]
    record = await call.services.credits.record(_key(call), usage_id)
    if record is None:
        raise ApiError(404, f"No usage record {usage_id!r}.", param="usage_id", code="usage_not_found")
    return JSONResponse(usage_json(record))


@handles("getManagedUsage")
async def get_managed_usage(call: Call) -> Response:
    """004 "For AI Agents" ("Check credits first"): ``{"credits_remaining", "credits_used"}``."""
    account = await call.services.credits.account(_key(call))
    return JSONResponse({"credits_remaining": account.balance, "credits_used": account.used})


@handles("uploadZeroDbFile")
async def upload_file(call: Call) -> Response:
    """004 "For AI Agents": store a file in memory: a multipart body's ``file`` part (else its first
    file), any other body (or a form without a file) as sent, with its Content-Type.

    Answers ``{"file_id", "filename", "content_type", "size_bytes", "created_at"}``. 413 over the
    store's per-file limit and 400 for an empty body (the spec documents neither: 004 gives no errors).
    """
    store = call.services.files
    media_type = call.request.headers.get("content-type", "application/octet-stream")
    multipart = media_type.split(";")[0].strip().lower() == "multipart/form-data"
    raw = await _bounded_body(call.request, store.max_file_bytes + (MULTIPART_OVERHEAD_BYTES if multipart else 0))
    filename, content = "upload", raw
    part = await _file_part(call.request, raw) if multipart else None
    if part is not None:
        filename, media_type, content = part
    if not content:
        raise ApiError(400, "The upload is empty.", code="empty_file")
    try:
        stored = store.put(_key(call), filename, _printable(media_type), content)
    except FileTooLarge as error:
        raise ApiError(413, f"File too large: the limit is {error.limit} bytes.", code="file_too_large") from None
    created = datetime.fromtimestamp(stored.created_at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return JSONResponse({"file_id": stored.file_id, "filename": stored.filename, "content_type": stored.content_type,
                         "size_bytes": stored.size_bytes, "created_at": created})


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes (declared or counted)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"Request body too large: the limit is {limit} bytes.", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _file_part(request: Request, raw: bytes) -> tuple[str, str, bytes] | None:
    """(filename, media type, bytes) of the form's ``file`` part, else of its first file; None when the
    body is no parsable form or has no file."""
    if "boundary=" not in request.headers.get("content-type", ""):
        return None

    async def once() -> AsyncGenerator[bytes, None]:
        yield raw

    try:
        form = await MultiPartParser(request.headers, once(), max_files=4, max_fields=32).parse()
    except MultiPartException:
        return None
    try:
        uploads = [(name, value) for name, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            return None
        upload = next((value for name, value in uploads if name == "file"), uploads[0][1])
        content = await upload.read()
        return (_printable(upload.filename or "upload"), _printable(upload.content_type or "application/octet-stream"),
                content)
    finally:
        await form.close()
