"""Decoding what a target returns, to judge media by what it is rather than by what it claims.

Images decode with Pillow; audio and video with PyAV (FFmpeg's decoders).
"""

from __future__ import annotations

import array
import base64
import binascii
import io
import json
import math
import wave
from dataclasses import dataclass
from fractions import Fraction

import av
from PIL import Image, UnidentifiedImageError


class MediaError(ValueError):
    """The bytes (or base64 text) do not decode as the media expected; the message says why."""


@dataclass(frozen=True)
class Decoded:
    """What a file turned out to be: ``format`` (PNG, mp3, mp4...), size in px, duration in s."""

    format: str
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    codec: str = ""
    decoded_s: float = 0.0
    """Where the last decoded frame starts, in s: what the bytes really hold, whatever a header claims."""
    transparent: bool = False
    """An image with an alpha channel in which at least one pixel is not fully opaque."""


def wav_tone(seconds: float, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV file of a 440 Hz tone lasting ``seconds`` s."""
    samples = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def mp3_tone(seconds: float, rate: int = 24_000) -> bytes:
    """An MP3 file (mono, ``rate`` Hz) of the same 440 Hz tone as :func:`wav_tone`, lasting ``seconds`` s:
    audio in the other format 003 "Audio input" names (``wav`` or ``mp3``), encoded here with PyAV."""
    samples = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))))
    pcm = samples.tobytes()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as output:
        stream = output.add_stream("libmp3lame", rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        frame_samples = 1152
        for start in range(0, len(samples), frame_samples):
            chunk = pcm[start * 2:(start + frame_samples) * 2]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
            frame.planes[0].update(chunk)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for resampled in resampler.resample(frame):
                output.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            output.mux(stream.encode(resampled))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """A ``width`` x ``height`` px PNG of one RGBA colour (an image to edit, or a transparent mask)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), rgba).save(buffer, format="PNG")
    return buffer.getvalue()


def pdf(text: str) -> bytes:
    """A one-page PDF 1.4 document whose page shows ``text`` (ASCII, one line, Helvetica 18 pt): a real
    document for the 000 "Documents" input, with a correct cross-reference table so any reader opens it."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 18 Tf 72 720 Td ({escaped}) Tj ET".encode("ascii")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def from_base64(text: str) -> bytes:
    """The bytes of base64 text or of a ``data:...;base64,`` URL. Raises :class:`MediaError`."""
    encoded = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError("text that is not valid base64") from exc


def image(content: bytes) -> Decoded:
    """Decode an image fully. Raises :class:`MediaError` when no decoder accepts it."""
    try:
        with Image.open(io.BytesIO(content)) as picture:
            picture.load()
            return Decoded(str(picture.format), picture.size[0], picture.size[1], transparent=_see_through(picture))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"bytes no image decoder accepts ({exc})") from exc


def _see_through(picture: Image.Image) -> bool:
    """Whether ``picture`` has an alpha channel (or a transparent palette entry) with a pixel below 255."""
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        extrema = picture.convert("RGBA").getchannel("A").getextrema()  # (lowest, highest) of one band
        low = extrema[0]
        return isinstance(low, (int, float)) and low < 255
    return False


def audio_video(content: bytes) -> Decoded:
    """Decode an audio or video file to its end. Raises :class:`MediaError` when it does not decode."""
    try:
        with av.open(io.BytesIO(content), mode="r") as container:
            video = container.streams.video[0] if container.streams.video else None
            stream = video or (container.streams.audio[0] if container.streams.audio else None)
            if stream is None:
                raise MediaError("a file with no audio or video stream")
            end = 0.0
            for frame in container.decode(stream):
                if isinstance(frame, av.VideoFrame | av.AudioFrame) and frame.pts is not None and frame.time_base:
                    end = max(end, float(frame.pts * frame.time_base))
            duration = container.duration / av.time_base if container.duration else end
            return Decoded(container.format.name, video.width if video else 0, video.height if video else 0,
                           float(duration), stream.codec_context.name, end)
    except av.error.FFmpegError as exc:
        raise MediaError(f"bytes no audio/video decoder accepts ({exc})") from exc


#: Longest side of an evidence thumbnail, in px.
THUMBNAIL_PX = 160


def thumbnail(content: bytes) -> str:
    """A ``data:`` URL of the image shrunk to at most :data:`THUMBNAIL_PX` px a side (aspect kept): PNG when
    it has transparency, else JPEG (a few kB). Raises :class:`MediaError` when the bytes are not an image."""
    try:
        with Image.open(io.BytesIO(content)) as picture:
            picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            transparent = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            buffer = io.BytesIO()
            if transparent:
                picture.convert("RGBA").save(buffer, format="PNG", optimize=True)
            else:
                picture.convert("RGB").save(buffer, format="JPEG", quality=80)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"bytes no image decoder accepts ({exc})") from exc
    return f"data:image/{'png' if transparent else 'jpeg'};base64," + base64.b64encode(buffer.getvalue()).decode()


def _embedded_image(body: bytes) -> str | None:
    """The first image a JSON answer carries: ``data[].b64_json`` or a ``data:`` URL in ``choices[].message.images``."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    for item in document.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            return str(item["b64_json"])
    for choice in document.get("choices") or []:
        images = choice.get("message", {}).get("images") if isinstance(choice, dict) else None
        for image_part in images or []:
            url = image_part.get("image_url", {}).get("url") if isinstance(image_part, dict) else None
            if isinstance(url, str) and url.startswith("data:"):
                return url
    return None


def _sniffed(body: bytes) -> dict[str, object] | None:
    """The summary of an untyped body that decodes as an image or as audio/video, else None."""
    for kind in ("image", "audio"):
        shown = summary(f"{kind}/*", body)
        if shown is not None and "error" not in shown:
            return shown if kind == "image" or not shown["width"] else {**shown, "kind": "video"}
    return None


def summary(content_type: str, body: bytes) -> dict[str, object] | None:
    """What an answer's media turned out to be, for a report's evidence; None when it carries none.

    An ``image/*`` body, or a JSON answer with base64 image data (Images API, chat image output), gives
    ``{"kind": "image", "format", "width", "height" (px), "thumbnail" (:func:`thumbnail`)}``; ``audio/*`` and
    ``video/*`` give ``{"kind", "format", "codec", "duration_s", "width", "height"}``; an untyped body
    (``application/octet-stream``) is summarised when it decodes as one of them. Media that does not
    decode gives ``{"kind", "error"}`` with the decoder's reason. Never raises.
    """
    kind = content_type.split("/", 1)[0]
    content: bytes | None = body if kind in ("image", "audio", "video") else None
    if content_type in ("", "application/octet-stream") and body:
        return _sniffed(body)
    if content is None and content_type.endswith("json"):
        embedded = _embedded_image(body)
        if embedded is None:
            return None
        kind = "image"
        try:
            content = from_base64(embedded)
        except MediaError as exc:
            return {"kind": kind, "error": str(exc)}
    if content is None:
        return None
    try:
        if kind == "image":
            decoded = image(content)
            return {"kind": kind, "format": decoded.format, "width": decoded.width, "height": decoded.height,
                    "thumbnail": thumbnail(content)}
        decoded = audio_video(content)
    except (MediaError, Image.DecompressionBombError) as exc:
        return {"kind": kind, "error": str(exc)}
    return {"kind": kind, "format": decoded.format, "codec": decoded.codec, "duration_s": round(decoded.duration_s, 3),
            "width": decoded.width, "height": decoded.height}
