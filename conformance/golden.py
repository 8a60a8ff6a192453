"""Golden fixtures: a request and the invariants its response must meet, as YAML data.

Layout: ``fixtures/<api>/<operationId>/<case>.yaml``::

    capability: chat.image_output            # matrix row
    source: {document: 002_....txt, section: Native image generation}
    request:
      json: {model: "${model:image_output}", messages: [...]}   # or multipart: {field: value}
      files: {image: "${media:png_256}"}     # multipart files (with multipart)
      query: {limit: 1}                      # query parameters
      path: {usage_id: "${last:createMultimodalTts.usage_id}"}   # path parameters
      auth: valid                            # valid (default) | none | invalid
    expect:
      status: 200
      media_type: application/json           # default: application/json
      schema: true                           # validate against the spec (default true)
      jsonpath:                              # every match of path must satisfy the test
        - {path: $.object, equals: chat.completion}
        - {path: $.usage.total_tokens, at_least: 1}
      checks: [structured_output_honours_schema]   # registered checks (conformance.checks) that judge it too
      media:
        - {path: "$.choices[0].message.images[0].image_url.url", format: PNG}   # base64 / data URL
        - {path: "$.data[0].url", download: true, format: PNG, size: [1024, 1024]}
        - {path: $.audio_base64, format: mp3, duration_ms_at: $.duration_ms}  # within 100 ms
        - {path: $.video_url, download: true, format: mp4, size: [1280, 720], duration_s: 5}
        - {body: true, format: mp3}          # the raw response body
        - {path: $.image_base64, format: [PNG, JPEG], size: [1024, 1024]}    # any of these formats

Formats PNG, JPEG and WEBP decode with Pillow; any other (mp3, mp4, wav, ogg, flac, aac) with
PyAV. Placeholders in the request: ``${model:<capability>}`` is the target's model for that
capability; ``${media:<name>}`` one of :data:`MEDIA` (a file's base64 text in JSON, its bytes in
``files``); ``${last:<field>}`` the top-level ``field`` of the latest 2xx JSON answer of this run that
had one, and ``${last:<operationId>.<field>}`` the same of that operation's answers (see :func:`remember`).
Fixtures run in id order, so an answer is remembered before a later fixture names it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonpath_ng.ext.parser import parse as jsonpath

from conformance import media
from conformance.checks import REGISTRY
from conformance.checks.contract import validate_against
from conformance.failures import CheckFailure
from conformance.http import Exchange
from conformance.target import Target
from spec import Operation, find_operation, load_yaml

CHECK = "golden_fixture"
_PLACEHOLDER = re.compile(r"\$\{(model|media|last):([A-Za-z0-9_.]+)\}")


@dataclass(frozen=True)
class GoldenCase:
    """One fixture file: ``id`` is ``<api>/<operationId>/<stem>``."""

    id: str
    operation: Operation
    capability: str
    source: str
    request: Mapping[str, Any]
    expect: Mapping[str, Any]


def load_cases(root: Path) -> list[GoldenCase]:
    """Every ``*.yaml`` fixture under ``root``, sorted by id. Raises ValueError naming a bad file."""
    forget()
    cases = []
    for path in sorted(root.glob("*/*/*.yaml")):
        api, operation_id = path.parent.parent.name, path.parent.name
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
            source = data["source"]
            cases.append(GoldenCase(
                id=f"{api}/{operation_id}/{path.stem}",
                operation=find_operation(api, operation_id),
                capability=data["capability"],
                source=f"{source['document']} {source['section']}",
                request=data["request"],
                expect=data["expect"],
            ))
            unknown = [name for name in data["expect"].get("checks", []) if name not in REGISTRY]
        except (KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: malformed fixture ({exc})") from exc
        if unknown:
            raise ValueError(f"{path}: expect.checks names no registered check: {', '.join(unknown)}")
    return cases


#: Media a fixture can name as ``${media:<name>}``: real files made here, never fetched.
MEDIA: Mapping[str, Callable[[], bytes]] = {
    "wav": lambda: media.wav_tone(1.0),
    "wav_base64": lambda: media.wav_tone(1.0),
    "png_1024": lambda: media.png(1024, 1024, (200, 120, 40, 255)),
    "mask_1024": lambda: media.png(1024, 1024, (0, 0, 0, 0)),
    "mask_512": lambda: media.png(512, 512, (0, 0, 0, 0)),     # a mask of another size than png_1024
    "png_256": lambda: media.png(256, 256, (40, 120, 200, 255)),  # small enough for a data URL
    "mp3": lambda: media.mp3_tone(1.0),                         # 1 s; 003 "Audio input" names wav or mp3
    "pdf": lambda: media.pdf("Invoice 2026-117: total 42.00 EUR, due 31 December 2026"),  # 000 "Documents"
}
#: File name suffix of a :data:`MEDIA` entry sent as a multipart file (by name; else ``.png``).
_SUFFIX: Mapping[str, str] = {"wav": ".wav", "mp3": ".mp3"}

#: Top-level fields of earlier 2xx JSON answers, by field and by ``<operationId>.<field>`` (``${last:...}``).
_REMEMBERED: dict[str, Any] = {}


def remember(case: GoldenCase, exchange: Exchange) -> None:
    """Keep the top-level string and number fields of a 2xx JSON object answer, for ``${last:...}``."""
    body = exchange.json() if 200 <= exchange.status < 300 else None
    if isinstance(body, dict):
        for name, value in body.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                _REMEMBERED[name] = _REMEMBERED[f"{case.operation.operation_id}.{name}"] = value


def forget() -> None:
    """Clear what :func:`remember` kept (a new run starts; :func:`load_cases` calls it)."""
    _REMEMBERED.clear()


def media_file(name: str) -> bytes:
    """The bytes of :data:`MEDIA` entry ``name``; KeyError if there is none."""
    return MEDIA[name]()


def render(value: Any, target: Target) -> Any:
    """``value`` with its ``${model:...}`` and ``${media:...}`` placeholders filled in for ``target``
    (media as base64 text)."""
    if isinstance(value, str):
        def fill(match: re.Match[str]) -> str:
            kind, name = match.groups()
            if kind == "model":
                return target.model(name)
            if kind == "last":
                if name not in _REMEMBERED:
                    raise ValueError(f"${{last:{name}}}: no earlier 2xx answer of this run had that field")
                return str(_REMEMBERED[name])
            return base64.b64encode(media_file(name)).decode("ascii")

        return _PLACEHOLDER.sub(fill, value)
    if isinstance(value, list):
        return [render(item, target) for item in value]
    if isinstance(value, dict):
        return {key: render(item, target) for key, item in value.items()}
    return value


def files(case: GoldenCase) -> list[tuple[str, tuple[str, bytes]]] | None:
    """The multipart files of a fixture's request (``files: {field: ${media:name}}``), or None."""
    spec = case.request.get("files")
    if not spec:
        return None
    out = []
    for field_name, value in spec.items():
        for item in value if isinstance(value, list) else [value]:
            match = _PLACEHOLDER.fullmatch(str(item))
            if match is None or match.group(1) != "media":
                raise ValueError(f"{case.id}: files take ${{media:<name>}} values, not {item!r}")
            suffix = _SUFFIX.get(match.group(2), ".png")
            out.append((field_name, (match.group(2) + suffix, media_file(match.group(2)))))
    return out


def verify(case: GoldenCase, exchange: Exchange, download: Callable[[str], Exchange] | None = None,
           target: Target | None = None) -> None:
    """Raise :class:`CheckFailure` (``golden_fixture``) at the first invariant ``exchange`` breaks, or the
    failure of a registered check the fixture's ``expect.checks`` names (reported under that check's name).

    ``download`` fetches a URL for ``download: true`` media assertions. With ``target``, the
    expectations' ``${model:...}`` placeholders are the target's model ids (a gateway that names its
    models otherwise is judged by its own ids, as its target file maps them).
    """
    expect = case.expect if target is None else render(case.expect, target)
    remember(case, exchange)

    def fail(expected: str, received: str) -> CheckFailure:
        return CheckFailure(CHECK, f"{case.id}: {expected}", received, exchange.evidence())

    if exchange.status != expect.get("status", 200):
        raise fail(f"status {expect.get('status', 200)}", str(exchange.status))
    media_type = expect.get("media_type", "application/json")
    if exchange.media_type != media_type:
        raise fail(f"Content-Type {media_type}", exchange.media_type or "none")
    body = exchange.json() if media_type == "application/json" else None
    if media_type == "application/json" and body is None:
        raise fail("a JSON body", "a body that does not parse as JSON")
    if expect.get("schema", True) and body is not None:
        reason = validate_against(case.operation, exchange.status, media_type, body)
        if reason is not None:
            raise fail("a body valid against the spec", reason)
    for assertion in expect.get("jsonpath", []):
        for wanted, got in _jsonpath_problems(assertion, body):
            raise fail(wanted, got)
    for assertion in expect.get("media", []):
        values = [exchange.body] if assertion.get("body") else _matches(assertion["path"], body) or [None]
        for value in values:
            reason = _media_problem(assertion, value, body, download)
            if reason is not None:
                where = "the body" if assertion.get("body") else assertion["path"]
                raise fail(f"{where} decodes as {' or '.join(_formats(assertion))}", reason)
    for name in expect.get("checks", []):
        REGISTRY[name](exchange, case.operation)


def _matches(path: str, body: Any) -> list[Any]:
    return [match.value for match in jsonpath(path).find(body)]


_TESTS: Mapping[str, Callable[[Any, Any], bool]] = {
    "equals": lambda value, want: bool(value == want),
    "one_of": lambda value, want: value in want,
    "matches": lambda value, want: isinstance(value, str) and re.search(want, value) is not None,
    "at_least": lambda value, want: isinstance(value, int | float) and value >= want,
    "at_most": lambda value, want: isinstance(value, int | float) and value <= want,
    "min_length": lambda value, want: hasattr(value, "__len__") and len(value) >= want,
    "json_schema": lambda value, want: _json_valid(value, want),
}


def _json_valid(value: Any, schema: Mapping[str, Any]) -> bool:
    try:
        jsonschema.validate(json.loads(value), schema)
    except (TypeError, ValueError, jsonschema.ValidationError):
        return False
    return True


def _jsonpath_problems(assertion: Mapping[str, Any], body: Any) -> Iterator[tuple[str, str]]:
    path = assertion["path"]
    values = _matches(path, body)
    if assertion.get("absent"):
        if values:
            yield f"{path} absent", json.dumps(values[0])[:200]
        return
    if not values:
        yield f"{path} present", "no match"
        return
    for name, test in _TESTS.items():
        if name in assertion:
            for value in values:
                if not test(value, assertion[name]):
                    want = json.dumps(assertion[name])[:200]
                    yield f"{path} {name.replace('_', ' ')} {want}", json.dumps(value)[:200]


def _media_problem(assertion: Mapping[str, Any], value: Any, body: Any,
                   download: Callable[[str], Exchange] | None) -> str | None:
    """None if ``value`` (raw bytes, base64 text, a data URL, or a URL to download) decodes as the
    assertion expects, else the reason."""
    wanted = _formats(assertion)
    try:
        content = _content(assertion, value, download)
        if set(wanted) <= {"PNG", "JPEG", "WEBP"}:
            decoded = media.image(content)
            if decoded.format not in wanted:
                return f"a {decoded.format} image"
        else:
            decoded = media.audio_video(content)
            if not set(wanted) & set(decoded.format.split(",")):
                return f"a {decoded.format} file"
    except media.MediaError as exc:
        return str(exc)
    size = assertion.get("size")
    if size and [decoded.width, decoded.height] != list(size):
        return f"{decoded.width}x{decoded.height} px"
    if "duration_s" in assertion and abs(decoded.duration_s - assertion["duration_s"]) > 0.5:
        return f"{decoded.duration_s:.2f} s long"
    if "duration_ms_at" in assertion:
        stated = (_matches(assertion["duration_ms_at"], body) or [None])[0]
        if not isinstance(stated, int | float) or abs(decoded.duration_s * 1000 - stated) > 100:
            return f"{decoded.duration_s * 1000:.0f} ms of audio, but {assertion['duration_ms_at']} says {stated!r}"
    return None


def _formats(assertion: Mapping[str, Any]) -> list[str]:
    """The formats a media assertion accepts: ``format: PNG``, or a list (``[PNG, JPEG]``: 004's "jpg or png")."""
    wanted = assertion["format"]
    return [str(item) for item in wanted] if isinstance(wanted, list) else [str(wanted)]


def _content(assertion: Mapping[str, Any], value: Any, download: Callable[[str], Exchange] | None) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise media.MediaError(f"no string at {assertion.get('path')}")
    if assertion.get("download"):
        if download is None:
            raise media.MediaError("nothing to download with")
        fetched = download(value)
        if fetched.status != 200:
            raise media.MediaError(f"GET {value} answered {fetched.status}")
        return fetched.body
    return media.from_base64(value)
