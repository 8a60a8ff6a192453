"""Real audio and video, encoded with PyAV (FFmpeg's codecs): speech, and MP4 clips.

Speech is a deterministic "babble" of tones, one per word, whose duration follows the text
(:data:`WORDS_PER_MINUTE`); it is encoded in any of the OpenAI speech formats (mp3 default, opus,
aac, flac, wav, pcm). Video is H.264 in MP4 of the requested size, duration and frame rate.
Both are cached per shape, so a repeated request costs a dictionary look-up; callers on the event
loop should run a first encode in a worker thread (``anyio.to_thread.run_sync``).
"""

from __future__ import annotations

import array
import functools
import io
import math
from collections.abc import Mapping
from fractions import Fraction
from typing import cast

import av
from av.audio.stream import AudioStream

#: Speaking rate of synthesised speech; 150 words/min is ordinary conversational speech.
WORDS_PER_MINUTE = 150
#: Sample rate of synthesised speech, in Hz (OpenAI's pcm format is 24 kHz, 16-bit, mono).
SAMPLE_RATE = 24_000
#: Shortest speech answer, in ms.
MIN_SPEECH_MS = 400

#: speech response_format -> (container format, codec, MIME type); pcm is raw samples, no container.
SPEECH_FORMATS: Mapping[str, tuple[str, str, str]] = {
    "mp3": ("mp3", "libmp3lame", "audio/mpeg"),
    "opus": ("ogg", "libopus", "audio/ogg"),
    "aac": ("adts", "aac", "audio/aac"),
    "flac": ("flac", "flac", "audio/flac"),
    "wav": ("wav", "pcm_s16le", "audio/wav"),
    "pcm": ("s16le", "pcm_s16le", "audio/pcm"),
}


def speech_duration_ms(text: str) -> int:
    """How long ``text`` takes to say at :data:`WORDS_PER_MINUTE`, in ms (at least :data:`MIN_SPEECH_MS`)."""
    words = max(len(text.split()), 1)
    return max(MIN_SPEECH_MS, round(words * 60_000 / WORDS_PER_MINUTE))


def speech(text: str, fmt: str = "mp3", speed: float = 1.0) -> tuple[bytes, int]:
    """Encode speech for ``text`` in ``fmt``; returns (the encoded bytes, duration in ms).

    ``speed`` (> 0, OpenAI's 0.25-4) divides the duration. Raises KeyError for a format not in
    :data:`SPEECH_FORMATS`.
    """
    duration_ms = max(MIN_SPEECH_MS, round(speech_duration_ms(text) / speed))
    return _encoded_speech(duration_ms, fmt, len(text) % 7), duration_ms


#: One spoken "word": 400 ms, a tone in the first 80 % and silence after.
WORD_MS = 400
#: Pitches of the word tones, in Hz; consecutive words cycle through them.
PITCHES = (160, 200, 240, 280, 320)


@functools.cache
def _word(pitch: int) -> bytes:
    """One word of 16-bit mono PCM at ``pitch`` Hz with a sine envelope (computed once per pitch)."""
    count = SAMPLE_RATE * WORD_MS // 1000
    voiced = int(count * 0.8)
    out = array.array("h", bytes(2 * count))
    for i in range(voiced):
        envelope = math.sin(math.pi * i / voiced)
        out[i] = int(9000 * envelope * math.sin(2 * math.pi * pitch * i / SAMPLE_RATE))
    return out.tobytes()


def _samples(duration_ms: int, voice: int) -> bytes:
    """16-bit mono PCM of ``duration_ms``: word tones whose pitch sequence depends on ``voice``."""
    count = SAMPLE_RATE * duration_ms // 1000
    words = -(-duration_ms // WORD_MS)
    pcm = b"".join(_word(PITCHES[(index + voice) % len(PITCHES)]) for index in range(words))
    return pcm[: 2 * count]


@functools.lru_cache(maxsize=64)
def _encoded_speech(duration_ms: int, fmt: str, voice: int) -> bytes:
    container, codec, _ = SPEECH_FORMATS[fmt]
    pcm = _samples(duration_ms, voice)
    if fmt == "pcm":
        return pcm
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        rate = 48_000 if codec == "libopus" else SAMPLE_RATE
        stream = cast(AudioStream, output.add_stream(codec, rate=rate, layout="mono"))
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        frame_samples = 1024
        for start in range(0, len(pcm) // 2, frame_samples):
            chunk = pcm[start * 2:(start + frame_samples) * 2]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
            frame.planes[0].update(chunk)
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = Fraction(1, SAMPLE_RATE)
            for resampled in resampler.resample(frame):
                output.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            output.mux(stream.encode(resampled))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def probe_duration_ms(content: bytes) -> int:
    """Decode an uploaded audio (or video) file and return its duration in ms.

    The container's duration is used when it states one; otherwise the audio is decoded to the end.
    Raises ValueError when no decoder accepts the bytes or there is no audio.
    """
    try:
        with av.open(io.BytesIO(content), mode="r") as source:
            if not source.streams.audio:
                raise ValueError("the file has no audio stream")
            if source.duration:
                return int(source.duration * 1000 / av.time_base)
            samples = 0
            rate = source.streams.audio[0].rate or SAMPLE_RATE
            for frame in source.decode(source.streams.audio[0]):
                samples += frame.samples
            return samples * 1000 // rate
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a decodable media file ({exc})") from exc


@functools.lru_cache(maxsize=16)
def mp4(width: int, height: int, duration_s: float, fps: int = 8, colour: int = 0) -> bytes:
    """An H.264 MP4 of ``width`` x ``height`` px lasting ``duration_s`` s at ``fps`` frames/s.

    The picture is a bar that sweeps across a coloured field, so players show motion.
    Raises ValueError for odd sizes (H.264 with yuv420p needs even width and height).
    """
    if width % 2 or height % 2:
        raise ValueError("width and height must be even")
    frames = max(1, round(duration_s * fps))
    buffer = io.BytesIO()
    background = [(30, 60, 90), (90, 40, 30), (30, 90, 50), (70, 30, 90)][colour % 4]
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "stillimage", "crf": "35"}
        row = bytes(background) * width
        for index in range(frames):
            bar = (index * width // frames) // 16 * 16
            line = bytearray(row)
            line[bar * 3:(bar + 16) * 3] = b"\xff\xff\xff" * 16
            frame = av.VideoFrame(width, height, "rgb24")
            frame.planes[0].update(bytes(line) * height if frame.planes[0].line_size == width * 3
                                   else _padded(bytes(line), frame.planes[0].line_size, height))
            frame.pts = index
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def _padded(line: bytes, line_size: int, height: int) -> bytes:
    return (line + bytes(line_size - len(line))) * height
