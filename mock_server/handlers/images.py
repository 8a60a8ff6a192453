"""POST /v1/images/generations and /v1/images/edits (002 "Images API (Dedicated Endpoint)"; the
OpenAI image contract where 002 is silent, as the spec's ``x-mirrors: openai`` fields record).

Each answer carries ``n`` real images of the resolved size and format, hosted by the mock (``url``,
expiring after the spec's ``x-hosted-url-ttl-s`` unless ``MockConfig.hosted_url_ttl_s`` is set) or
inline (``b64_json``). What a model accepts (sizes, qualities, styles, formats, transparency, n)
is OpenAI's per-model contract (:data:`PROFILES`); a value it does not take is 400 naming the field
(002 "Errors": "unsupported size, or bad params").
"""

from __future__ import annotations

import base64
import functools
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from random import Random
from typing import Any

import anyio.to_thread
from PIL import Image, ImageDraw
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

from mock_server.context import Call
from mock_server.errors import ApiError
from mock_server.handlers import handles
from mock_server.handlers.billing import bill
from mock_server.handlers.models import serving_model
from mock_server.media import IMAGE_MIME
from mock_server.sim.spend import Price
from mock_server.textgen import count_tokens, rng_for
from spec.extensions import hosted_url_ttl_s

#: Hosted-URL lifetime when neither the config nor the spec gives one, in s (002 "Download URLs are short-lived").
DEFAULT_TTL_S = 3600
#: Longest side of an edit whose size follows its input image, in px (larger inputs are scaled down).
MAX_OUTPUT_SIDE = 4096
#: Most pixels of an input image or mask (6000 x 6000): decoding a larger one would cost too much memory.
MAX_INPUT_PIXELS = 36_000_000
#: Input tokens per input image of an edit (the rate chat counts for an image part).
IMAGE_INPUT_TOKENS = 85
#: gpt-image-1 output tokens per image by quality and size (OpenAI's published table).
OUTPUT_TOKENS: Mapping[str, Mapping[str, int]] = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
#: Input formats an edit takes (the spec's multipart ``encoding`` of ``image``), as Pillow names them.
EDIT_FORMATS = ("PNG", "JPEG", "WEBP")
_PALETTE = ((232, 119, 34), (46, 134, 193), (39, 174, 96), (142, 68, 173), (241, 196, 15), (192, 57, 43))
_DETAILS = ("in soft natural light", "with crisp detail and balanced colours", "in a clean, modern style")


@dataclass(frozen=True)
class ImageProfile:
    """What one image model accepts. ``sizes`` are ``WxH`` strings (``auto`` = 1024x1024); ``qualities``
    start with the default; ``details`` adds background/output_format/quality/size/usage to answers."""

    sizes: tuple[str, ...]
    qualities: tuple[str, ...]
    max_n: int = 10
    styles: tuple[str, ...] = ()
    formats: tuple[str, ...] = ("png",)
    transparent: bool = False
    revised_prompt: bool = False
    details: bool = False
    max_images: int = 1


#: OpenAI's per-model image contract; a catalogue image model not listed here gets gpt-image-1's.
PROFILES: Mapping[str, ImageProfile] = {
    "gpt-image-1": ImageProfile(sizes=("1024x1024", "1536x1024", "1024x1536", "auto"),
                                qualities=("auto", "low", "medium", "high"), formats=("png", "jpeg", "webp"),
                                transparent=True, details=True, max_images=16),
    "dall-e-3": ImageProfile(sizes=("1024x1024", "1792x1024", "1024x1792"), qualities=("standard", "hd"),
                             max_n=1, styles=("vivid", "natural"), revised_prompt=True),
    "dall-e-2": ImageProfile(sizes=("256x256", "512x512", "1024x1024"), qualities=("standard",)),
}
DEFAULT_PROFILE = PROFILES["gpt-image-1"]


@dataclass(frozen=True)
class Settings:
    """A request's resolved output: ``width``/``height`` in px, ``fmt`` png/jpeg/webp, ``compression`` 0-100."""

    width: int
    height: int
    fmt: str
    transparent: bool
    quality: str
    compression: int
    n: int
    b64: bool


@handles("createImage")
async def create_image(call: Call) -> Response:
    """Generate ``n`` images from ``prompt``: ``{"created", "data": [{"url" | "b64_json", "revised_prompt"?}],
    ...}``. Raises ApiError 400 naming ``model``, ``n``, ``size``, ``quality``, ``style``, ``background`` or
    ``output_format`` for a value the model does not take."""
    body = call.body
    model = serving_model(call, "image_generation", "image generation")
    profile = PROFILES.get(model.id, DEFAULT_PROFILE)
    if body.get("style") is not None and body["style"] not in profile.styles:
        raise _unsupported("style", body["style"], model.id, profile.styles)
    settings = _settings(profile, model.id, body, _listed_size(profile, model.id, body.get("size")))
    rng = rng_for(call.services.config.seed, "createImage", model.id, body["prompt"], asdict(settings))
    return await _answer(call, profile, settings, body["prompt"], 0, rng, model.price)


@handles("createImageEdit")
async def create_image_edit(call: Call) -> Response:
    """Edit the uploaded ``image`` (one, or up to the model's limit) guided by ``prompt`` and an optional
    ``mask``; answers like :func:`create_image`. The size is ``size``, else the first image's (scaled
    to at most :data:`MAX_OUTPUT_SIDE` px a side). Raises ApiError 400 naming ``image`` (missing,
    undecodable, not png/jpeg/webp, over :data:`MAX_INPUT_PIXELS`; too many), ``mask`` (not a PNG of the
    first image's size) or a field :func:`create_image` checks; the pipeline answers 413 over
    ``x-upload-limit-bytes``."""
    body = call.body
    model = serving_model(call, "image_edit", "image edits")
    profile = PROFILES.get(model.id, DEFAULT_PROFILE)
    uploads = call.files.get("image") or []
    if not uploads:
        raise ApiError(400, "image must be uploaded as a file (multipart/form-data).", param="image")
    if len(uploads) > profile.max_images:
        raise ApiError(400, f"Model '{model.id}' takes at most {profile.max_images} image(s); got {len(uploads)}.",
                       param="image")
    shapes = [await _decoded(upload, "image", EDIT_FORMATS) for upload in uploads]
    masks = call.files.get("mask") or []
    if masks:
        mask = await _decoded(masks[0], "mask", ("PNG",))
        if mask[1:] != shapes[0][1:]:
            raise ApiError(400, f"mask is {mask[1]}x{mask[2]} px but the image is {shapes[0][1]}x{shapes[0][2]} px; "
                           "they must be the same size.", param="mask")
    requested = body.get("size")
    if requested is None or (requested == "auto" and "auto" in profile.sizes):
        size = _fitted(shapes[0][1], shapes[0][2])
    else:
        size = _listed_size(profile, model.id, requested)
    settings = _settings(profile, model.id, body, size)
    rng = rng_for(call.services.config.seed, "createImageEdit", model.id, body["prompt"], shapes, asdict(settings))
    return await _answer(call, profile, settings, body["prompt"], IMAGE_INPUT_TOKENS * len(uploads), rng, model.price)


def _unsupported(field: str, value: Any, model_id: str, allowed: Sequence[str]) -> ApiError:
    takes = f"it takes: {', '.join(allowed)}" if allowed else f"it does not take {field}"
    return ApiError(400, f"Unsupported {field} {value!r} for model '{model_id}'; {takes}.", param=field)


def _listed_size(profile: ImageProfile, model_id: str, value: str | None) -> tuple[int, int]:
    """``value`` (default 1024x1024) as (width, height) px if the model offers it. Raises ApiError 400 ``size``."""
    value = value or "1024x1024"
    if value not in profile.sizes:
        raise _unsupported("size", value, model_id, profile.sizes)
    width, _, height = ("1024x1024" if value == "auto" else value).partition("x")
    return int(width), int(height)


def _fitted(width: int, height: int) -> tuple[int, int]:
    """An input image's size, scaled down to at most :data:`MAX_OUTPUT_SIDE` px a side."""
    scale = min(1.0, MAX_OUTPUT_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _settings(profile: ImageProfile, model_id: str, body: Mapping[str, Any], size: tuple[int, int]) -> Settings:
    """Resolve and check n, quality, output_format and background. Raises ApiError 400 naming the field."""
    n = int(body.get("n") or 1)
    if n > profile.max_n:
        raise ApiError(400, f"Model '{model_id}' makes at most {profile.max_n} image(s) per request; n is {n}.",
                       param="n")
    quality = body.get("quality") or profile.qualities[0]
    if quality not in profile.qualities:
        raise _unsupported("quality", quality, model_id, profile.qualities)
    fmt = body.get("output_format") or "png"
    if fmt not in profile.formats:
        raise _unsupported("output_format", fmt, model_id, profile.formats)
    background = body.get("background") or "auto"
    if background not in ("transparent", "opaque", "auto") or (background == "transparent" and not profile.transparent):
        raise _unsupported("background", background, model_id, ("transparent", "opaque", "auto")
                           if profile.transparent else ("opaque", "auto"))
    if background == "transparent" and fmt == "jpeg":
        raise ApiError(400, "background 'transparent' needs output_format png or webp; jpeg has no alpha.",
                       param="background")
    compression = int(body.get("output_compression", 100))
    return Settings(size[0], size[1], fmt, background == "transparent", "medium" if quality == "auto" else quality,
                    compression, n, body.get("response_format") == "b64_json")


async def _decoded(upload: UploadFile, field: str, formats: Sequence[str]) -> tuple[str, int, int]:
    """(Pillow format, width px, height px) of an uploaded image. Raises ApiError 400 naming ``field``."""
    content = await upload.read()
    try:
        shape = await anyio.to_thread.run_sync(functools.partial(_decode, content))
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, DecompressionBombError...)
        raise ApiError(400, f"{field} {upload.filename or ''!r} is not a decodable image ({type(exc).__name__}).",
                       param=field) from exc
    if shape[0] not in formats:
        raise ApiError(400, f"{field} must be {' or '.join(f.lower() for f in formats)}; got {shape[0].lower()}.",
                       param=field)
    if shape[1] * shape[2] > MAX_INPUT_PIXELS:
        raise ApiError(400, f"{field} is {shape[1]}x{shape[2]} px; at most {MAX_INPUT_PIXELS} pixels are accepted.",
                       param=field)
    return shape


def _decode(content: bytes) -> tuple[str, int, int]:
    with Image.open(io.BytesIO(content)) as image:
        if image.width * image.height <= MAX_INPUT_PIXELS:
            image.load()  # decodes every pixel: a truncated or corrupt file raises here
        return str(image.format), image.width, image.height


async def _answer(call: Call, profile: ImageProfile, settings: Settings, prompt: str, image_tokens: int,
                  rng: Random, price: Price | None) -> Response:
    """The ImagesResponse: each image encoded off the event loop, then hosted or inlined. Billed first
    (002 "Pricing": by model, size and quality, per image): 402 billing_error past the key's spend limit."""
    if price is not None:
        charging = bill(call, price.images_usd(settings.quality, f"{settings.width}x{settings.height}", settings.n))
        if charging is not None:  # a fleet's shared spend (handlers/billing.py)
            await charging
    colours = [rng.randrange(len(_PALETTE)) for _ in range(settings.n)]
    ttl = call.services.config.hosted_url_ttl_s
    ttl_s = ttl if ttl is not None else hosted_url_ttl_s(call.operation) or DEFAULT_TTL_S
    mime = IMAGE_MIME[settings.fmt]
    data: list[dict[str, Any]] = []
    for colour in colours:
        content = await anyio.to_thread.run_sync(functools.partial(
            render, settings.width, settings.height, colour, settings.fmt, settings.transparent, settings.compression))
        entry: dict[str, Any] = ({"b64_json": base64.b64encode(content).decode("ascii")} if settings.b64 else
                                 {"url": await call.services.hosted.publish(
                                     call.request, content, mime, ttl_s, suffix="." + settings.fmt,
                                     owner=call.api_key)})
        if profile.revised_prompt:
            entry["revised_prompt"] = f"{prompt.rstrip(' .')}, {rng.choice(_DETAILS)}."
        data.append(entry)
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if profile.details:
        answer.update(background="transparent" if settings.transparent else "opaque", output_format=settings.fmt,
                      quality=settings.quality, size=f"{settings.width}x{settings.height}",
                      usage=_usage(prompt, image_tokens, settings))
    return JSONResponse(answer)


def _usage(prompt: str, image_tokens: int, settings: Settings) -> dict[str, Any]:
    """gpt-image-1 token usage; output tokens follow :data:`OUTPUT_TOKENS`, scaled by area off its sizes."""
    table = OUTPUT_TOKENS.get(settings.quality, OUTPUT_TOKENS["medium"])
    size = f"{settings.width}x{settings.height}"
    per_image = table.get(size) or max(1, round(table["1024x1024"] * settings.width * settings.height / 1024 ** 2))
    text_tokens = count_tokens(prompt)
    output_tokens = per_image * settings.n
    return {"input_tokens": text_tokens + image_tokens, "output_tokens": output_tokens,
            "total_tokens": text_tokens + image_tokens + output_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens}}


@functools.lru_cache(maxsize=64)
def render(width: int, height: int, colour: int, fmt: str, transparent: bool = False, compression: int = 100) -> bytes:
    """A ``width`` x ``height`` px image in ``fmt`` (png, jpeg, webp): a two-colour vertical gradient.

    ``transparent`` gives RGBA with a fully transparent background around an opaque ellipse (png, webp);
    ``compression`` (0-100) is the jpeg/webp quality. Raises KeyError for another format. Cached.
    """
    if fmt not in IMAGE_MIME:
        raise KeyError(f"unknown image format {fmt!r}")
    size = (width, height)
    gradient = Image.linear_gradient("L").resize(size)
    top, bottom = _PALETTE[colour % len(_PALETTE)], _PALETTE[(colour + 1) % len(_PALETTE)]
    picture = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), gradient)
    if transparent:
        alpha = Image.new("L", size, 0)
        ImageDraw.Draw(alpha).ellipse((width // 8, height // 8, width * 7 // 8, height * 7 // 8), fill=255)
        picture.putalpha(alpha)
    buffer = io.BytesIO()
    options = {"quality": compression} if fmt in ("jpeg", "webp") else {}
    picture.save(buffer, format=fmt.upper(), **options)
    return buffer.getvalue()
