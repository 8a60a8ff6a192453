"""The mock's audio endpoints through the official OpenAI SDK: speech decodable by PyAV in every format,
and transcripts and translations of real WAV/MP3 files in every response_format."""

from __future__ import annotations

import functools
import io
import re
import warnings
from collections.abc import Iterator
from typing import Any

import av
import httpx
import openai
import pytest
from jsonschema import Draft202012Validator

from mock_server.media_av import SAMPLE_RATE, speech
from spec import find_operation, response_schema, schema_validator
from spec.extensions import response_media_type

API = "openai_gateway"
SHORT = "Hello there."
LONG = "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill."
SRT_CUE = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+$")
VTT_CUE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n.+$")


@functools.cache
def _validator(operation_id: str, status: int, media_type: str) -> Draft202012Validator:
    schema = response_schema(find_operation(API, operation_id), status, media_type)
    assert schema is not None, f"{operation_id} documents no {media_type} {status}"
    return schema_validator(API, schema)


def validated(operation_id: str, response: httpx.Response) -> Any:
    """The body of ``response`` (JSON or text), after checking it against the spec's schema."""
    media_type = response.headers["content-type"].split(";")[0]
    body = response.json() if media_type == "application/json" else response.text
    _validator(operation_id, response.status_code, media_type).validate(body)
    return body


@pytest.fixture(scope="module")
def sdk(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


def decoded_ms(content: bytes, fmt: str) -> int:
    """Duration of ``content`` in ms, decoding every audio frame with PyAV."""
    options = {"format": "s16le", "options": {"sample_rate": str(SAMPLE_RATE), "ch_layout": "mono"}} \
        if fmt == "pcm" else {}
    with av.open(io.BytesIO(content), **options) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return int(samples * 1000 // stream.rate)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_in_each_format_decodes_and_lasts_with_the_text(sdk: openai.OpenAI, fmt: str) -> None:
    durations = []
    for text in (SHORT, LONG):
        audio = sdk.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=text,
                                        response_format=fmt)
        expected = response_media_type(find_operation(API, "createSpeech"), {"response_format": fmt})
        assert audio.response.headers["content-type"] == expected
        durations.append(decoded_ms(audio.content, fmt))
    short_ms, long_ms = durations
    assert 600 <= short_ms < long_ms  # two words against seventeen, at 150 words/min
    assert abs(long_ms - 17 * 400) < 250


def test_speech_defaults_to_mp3_and_speed_shortens_it(sdk: openai.OpenAI) -> None:
    normal = sdk.audio.speech.create(model="tts-1", voice="alloy", input=LONG)
    fast = sdk.audio.speech.create(model="tts-1", voice="alloy", input=LONG, speed=2.0)
    assert normal.response.headers["content-type"] == "audio/mpeg"
    assert decoded_ms(fast.content, "mp3") < 0.6 * decoded_ms(normal.content, "mp3")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tts-1", "voice": "nobody"}, "voice"),
        ({"model": "tts-1", "voice": "verse"}, "voice"),  # newer voices are not tts-1's
        ({"model": "tts-1-hd", "voice": "alloy", "instructions": "Whisper."}, "instructions"),
        ({"model": "whisper-1", "voice": "alloy"}, "model"),
        ({"model": "tts-1", "voice": "alloy", "speed": 5}, "speed"),
        ({"model": "tts-1", "voice": "alloy", "response_format": "ogg"}, "response_format"),
    ],
)
def test_speech_rejections_name_the_field(mock_url: str, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{mock_url}/v1/audio/speech", json={"input": "Hi", **body},
                          headers={"Authorization": "Bearer sk-test"}, timeout=10)
    assert response.status_code == 400
    assert validated("createSpeech", response)["error"]["param"] == param


@pytest.fixture(scope="module")
def recordings() -> dict[str, tuple[bytes, int]]:
    """A short and a long recording in WAV and MP3: {name: (bytes, duration ms)}."""
    return {f"{size}.{fmt}": speech(text * 3 if size == "long" else text, fmt)
            for size, text in (("short", SHORT), ("long", LONG)) for fmt in ("wav", "mp3")}


def transcribe(sdk: openai.OpenAI, operation_id: str, name: str, content: bytes, fmt: str, **extra: Any) -> Any:
    """Call the operation through the SDK; returns (the raw body validated against the spec, the parsed result)."""
    if operation_id == "createTranscription":
        raw = sdk.audio.transcriptions.with_raw_response.create(model="whisper-1", file=(name, content),
                                                                response_format=fmt, **extra)
    else:
        with warnings.catch_warnings():  # the SDK marks translations deprecated; the gateway still serves them
            warnings.simplefilter("ignore", DeprecationWarning)
            raw = sdk.audio.translations.with_raw_response.create(model="whisper-1", file=(name, content),
                                                                  response_format=fmt, **extra)
    expected = response_media_type(find_operation(API, operation_id), {"response_format": fmt})
    assert raw.http_response.headers["content-type"].split(";")[0] == expected
    return validated(operation_id, raw.http_response), raw.parse()


@pytest.mark.parametrize("operation_id", ["createTranscription", "createTranslation"])
@pytest.mark.parametrize("container", ["wav", "mp3"])
def test_transcript_in_every_format_follows_the_duration(sdk: openai.OpenAI, recordings: dict[str, tuple[bytes, int]],
                                                         operation_id: str, container: str) -> None:
    lengths = {}
    for size in ("short", "long"):
        content, duration_ms = recordings[f"{size}.{container}"]
        body, parsed = transcribe(sdk, operation_id, f"{size}.{container}", content, "json")
        assert parsed.text == body["text"] and body["text"]
        lengths[size] = len(body["text"].split())
        text, _ = transcribe(sdk, operation_id, f"{size}.{container}", content, "text")
        assert text.strip() == body["text"]
        srt, _ = transcribe(sdk, operation_id, f"{size}.{container}", content, "srt")
        assert all(SRT_CUE.match(cue) for cue in srt.strip().split("\n\n"))
        vtt, _ = transcribe(sdk, operation_id, f"{size}.{container}", content, "vtt")
        header, *cues = vtt.strip().split("\n\n")
        assert header == "WEBVTT" and cues and all(VTT_CUE.match(cue) for cue in cues)
        verbose, result = transcribe(sdk, operation_id, f"{size}.{container}", content, "verbose_json")
        assert verbose["text"] == body["text"] and result.language == "english"
        assert verbose["task"] == ("transcribe" if operation_id == "createTranscription" else "translate")
        assert abs(result.duration - duration_ms / 1000) < 0.15  # mp3 adds encoder padding
        segments = verbose["segments"]
        assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(result.duration, abs=0.01)
        assert " ".join(s["text"].strip() for s in segments) == body["text"]
    assert lengths["long"] > 3 * lengths["short"]  # words follow the audio's duration


def test_transcript_is_deterministic_and_has_words_on_request(sdk: openai.OpenAI,
                                                              recordings: dict[str, tuple[bytes, int]]) -> None:
    content, duration_ms = recordings["long.wav"]
    first, _ = transcribe(sdk, "createTranscription", "a.wav", content, "verbose_json",
                          timestamp_granularities=["word", "segment"], language="de")
    again, parsed = transcribe(sdk, "createTranscription", "a.wav", content, "verbose_json",
                               timestamp_granularities=["word", "segment"], language="de")
    assert first == again and parsed.language == "german"
    words = parsed.words or []
    assert len(words) == len(first["text"].split())
    assert all(w.start < w.end <= duration_ms / 1000 + 0.01 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    plain, _ = transcribe(sdk, "createTranscription", "a.wav", content, "verbose_json")
    assert "words" not in plain
    assert first["usage"] == {"type": "duration", "seconds": -(-duration_ms // 1000)}


@pytest.mark.parametrize(
    ("path", "fields", "files", "param"),
    [
        ("transcriptions", {"model": "whisper-1"}, {"file": ("a.wav", b"not audio at all")}, "file"),
        ("translations", {"model": "whisper-1"}, {"file": ("a.mp3", b"\xff\xfb" + bytes(64))}, "file"),
        ("transcriptions", {"model": "whisper-1", "language": "xx"}, "long.wav", "language"),
        ("translations", {"model": "gpt-4o-transcribe"}, "long.wav", "model"),
        ("transcriptions", {"model": "tts-1"}, "long.wav", "model"),
        ("transcriptions", {"model": "whisper-1", "response_format": "xml"}, "long.wav", "response_format"),
    ],
)
def test_transcript_rejections_name_the_field(mock_url: str, recordings: dict[str, tuple[bytes, int]], path: str,
                                              fields: dict[str, str], files: Any, param: str) -> None:
    if isinstance(files, str):
        files = {"file": (files, recordings[files][0])}
    response = httpx.post(f"{mock_url}/v1/audio/{path}", data=fields, files=files,
                          headers={"Authorization": "Bearer sk-test"}, timeout=10)
    assert response.status_code == 400
    operation_id = "createTranscription" if path == "transcriptions" else "createTranslation"
    assert validated(operation_id, response)["error"]["param"] == param
