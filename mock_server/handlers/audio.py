"""POST /v1/audio/speech, /v1/audio/transcriptions and /v1/audio/translations (000 "Picking the right
endpoint"; the OpenAI audio contract, ``x-mirrors: openai``).

Speech is real audio in ``response_format`` whose duration follows the text (``media_av.speech``).
Transcripts and translations decode the upload (``media_av.probe_duration_ms``) and answer a seeded
text whose length follows the audio's duration, at :data:`WORDS_PER_S`, in json, text, srt, vtt or
verbose_json (segments, and words when ``timestamp_granularities`` has ``word``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

import anyio.to_thread
from starlette.responses import JSONResponse, PlainTextResponse, Response

from mock_server.context import Call
from mock_server.errors import ApiError
from mock_server.handlers import handles
from mock_server.handlers.models import serving_model
from mock_server.media_av import SPEECH_FORMATS, WORDS_PER_MINUTE, probe_duration_ms, speech, speech_duration_ms
from mock_server.textgen import count_tokens, rng_for, sentence
from spec.extensions import response_media_type

#: Voices of OpenAI's speech models; tts-1 and tts-1-hd have the older subset.
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin",
          "cedar")
LEGACY_VOICES = ("alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer")
#: Speech models without ``instructions`` (the spec's CreateSpeechRequest.instructions).
LEGACY_SPEECH_MODELS = ("tts-1", "tts-1-hd")
#: Longest speech answer, in ms: 4096 characters of ordinary prose take about 5 min, 10 min at speed 0.5.
MAX_SPEECH_MS = 600_000
#: Words per second of a transcript: the speaking rate speech is synthesised at.
WORDS_PER_S = WORDS_PER_MINUTE / 60
#: Longest transcript, in words (a container may claim any duration).
MAX_WORDS = 20_000
#: Words per transcript segment (about 5 s of speech).
SEGMENT_WORDS = 12
#: ISO-639-1 code -> the language name verbose_json reports (Whisper's names).
LANGUAGES: Mapping[str, str] = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "sv": "swedish", "da": "danish", "no": "norwegian", "fi": "finnish", "pl": "polish",
    "cs": "czech", "ru": "russian", "uk": "ukrainian", "tr": "turkish", "el": "greek", "ar": "arabic",
    "he": "hebrew", "hi": "hindi", "zh": "chinese", "ja": "japanese", "ko": "korean", "vi": "vietnamese",
    "th": "thai", "id": "indonesian", "ms": "malay", "ro": "romanian", "hu": "hungarian", "ca": "catalan",
}


@handles("createSpeech")
async def create_speech(call: Call) -> Response:
    """Synthesise ``input`` as audio in ``response_format`` (default mp3), Content-Type per the spec's
    ``x-media-type-by``; ``speed`` divides the duration (capped at :data:`MAX_SPEECH_MS`). Raises ApiError
    400 naming ``model``, ``voice`` (not one of the model's voices) or ``instructions`` (tts-1, tts-1-hd)."""
    body = call.body
    model = serving_model(call, "speech", "speech synthesis")
    voices = LEGACY_VOICES if model.id in LEGACY_SPEECH_MODELS else VOICES
    if body["voice"] not in voices:
        raise ApiError(400, f"Unsupported voice {body['voice']!r} for model '{model.id}'; it takes: "
                       f"{', '.join(voices)}.", param="voice")
    if body.get("instructions") and model.id in LEGACY_SPEECH_MODELS:
        raise ApiError(400, f"Model '{model.id}' does not take instructions.", param="instructions")
    fmt = body.get("response_format") or "mp3"
    speed = float(body.get("speed") or 1.0)
    speed = max(speed, speech_duration_ms(body["input"]) / MAX_SPEECH_MS)  # bounds the encode (and its cost)
    content, _ = await anyio.to_thread.run_sync(functools.partial(speech, body["input"], fmt, speed))
    media_type = response_media_type(call.operation, {"response_format": fmt}) or SPEECH_FORMATS[fmt][2]
    return Response(content, media_type=media_type)


@handles("createTranscription")
async def create_transcription(call: Call) -> Response:
    """Transcribe the uploaded ``file``; ``language`` (ISO-639-1) is reported by name (default english).
    Raises ApiError 400 naming ``model``, ``file`` (missing or undecodable) or ``language`` (unknown)."""
    code = call.body.get("language")
    if code is not None and code not in LANGUAGES:
        raise ApiError(400, f"Unsupported language {code!r}; give an ISO-639-1 code such as 'en'.", param="language")
    return await _transcript(call, "transcribe", "transcription", LANGUAGES[code or "en"])


@handles("createTranslation")
async def create_translation(call: Call) -> Response:
    """Translate the uploaded ``file`` into English (000: "returns English text"). Raises ApiError 400
    naming ``model`` or ``file`` (missing or undecodable)."""
    return await _transcript(call, "translate", "translation", "english")


@dataclass(frozen=True)
class Word:
    """One spoken word; ``start``/``end`` in s."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """One segment (a sentence); ``start``/``end`` in s."""

    text: str
    start: float
    end: float
    words: tuple[Word, ...]


async def _transcript(call: Call, task: str, family: str, language: str) -> Response:
    body = call.body
    model = serving_model(call, family, f"{family}s")
    uploads = call.files.get("file") or []
    if not uploads:
        raise ApiError(400, "file must be uploaded as a file (multipart/form-data).", param="file")
    content = await uploads[0].read()
    try:
        duration_ms = await anyio.to_thread.run_sync(functools.partial(probe_duration_ms, content))
    except Exception as exc:  # ValueError from the probe, or anything else a decoder raises on hostile bytes
        raise ApiError(400, f"file {uploads[0].filename or ''!r} is not a decodable audio file ({exc}).",
                       param="file") from exc
    duration_s = max(duration_ms, 0) / 1000
    rng = rng_for(call.services.config.seed, task, model.id, hashlib.sha256(content).hexdigest(),
                  body.get("prompt"), language)
    segments = _segments(rng, duration_s)
    text = " ".join(segment.text for segment in segments)
    fmt = body.get("response_format") or "json"
    if fmt in ("text", "srt", "vtt"):
        rendered = text + "\n" if fmt == "text" else _subtitles(segments, vtt=fmt == "vtt")
        media_type = response_media_type(call.operation, {"response_format": fmt}) or "text/plain"
        return PlainTextResponse(rendered, media_type=media_type)
    answer: dict[str, Any] = {"text": text}
    if fmt == "verbose_json":
        answer = {"task": task, "language": language, "duration": round(duration_s, 3), "text": text,
                  "segments": [_segment_json(i, s, rng, body) for i, s in enumerate(segments)]}
        if task == "transcribe" and "word" in (body.get("timestamp_granularities") or ()):
            answer["words"] = [{"word": w.word, "start": w.start, "end": w.end} for s in segments for w in s.words]
    if task == "transcribe":
        answer["usage"] = _usage(model.id, duration_s, text)
    return JSONResponse(answer)


def _segments(rng: Random, duration_s: float) -> list[Segment]:
    """Sentences of :data:`SEGMENT_WORDS` words, :data:`WORDS_PER_S` words per s, evenly timed over the audio."""
    total = min(MAX_WORDS, max(1, round(duration_s * WORDS_PER_S)))
    slot = duration_s / total
    segments: list[Segment] = []
    for first in range(0, total, SEGMENT_WORDS):
        count = min(SEGMENT_WORDS, total - first)
        text = sentence(rng, count + 1) if count > 1 else sentence(rng, 1) + "."
        words = tuple(Word(token.strip(".,"), round((first + i) * slot, 2), round((first + i + 0.8) * slot, 2))
                      for i, token in enumerate(text.split()))
        end = duration_s if first + count == total else (first + count) * slot
        segments.append(Segment(text, words[0].start, round(end, 2), words))
    return segments


def _segment_json(index: int, segment: Segment, rng: Random, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": index, "seek": int(segment.start * 100), "start": segment.start, "end": segment.end,
            "text": " " + segment.text, "tokens": [rng.randrange(220, 50_000) for _ in segment.words],
            "temperature": float(body.get("temperature") or 0.0), "avg_logprob": round(-rng.uniform(0.1, 0.4), 4),
            "compression_ratio": round(rng.uniform(1.1, 1.6), 4), "no_speech_prob": round(rng.uniform(0, 0.05), 4)}


def _subtitles(segments: Sequence[Segment], *, vtt: bool) -> str:
    """SRT (numbered cues, ``HH:MM:SS,mmm``) or WebVTT (``WEBVTT`` header, ``HH:MM:SS.mmm``) of the segments."""
    cues = []
    for index, segment in enumerate(segments, start=1):
        span = f"{_clock(segment.start, vtt)} --> {_clock(segment.end, vtt)}"
        cues.append(f"{span}\n{segment.text}\n" if vtt else f"{index}\n{span}\n{segment.text}\n")
    return ("WEBVTT\n\n" if vtt else "") + "\n".join(cues)


def _clock(seconds: float, vtt: bool) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{'.' if vtt else ','}{rest % 1000:03d}"


def _usage(model_id: str, duration_s: float, text: str) -> dict[str, Any]:
    """whisper-1 bills by duration (whole s); the gpt-4o transcribers by tokens (audio: 10 per s)."""
    if model_id == "whisper-1":
        return {"type": "duration", "seconds": math.ceil(duration_s)}
    audio, output = math.ceil(duration_s * 10), count_tokens(text)
    return {"type": "tokens", "input_tokens": audio, "output_tokens": output, "total_tokens": audio + output}
