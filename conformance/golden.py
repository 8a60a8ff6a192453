"""Golden fixtures: a request and the invariants its response must meet, as YAML data.

Layout: ``fixtures/<api>/<operationId>/<case>.yaml``::

    capability: chat.image_output            # matrix row
    source: {document: 002_....txt, section: Native image generation}
    request:
      json: {model: "${model:image_output}", messages: [...]}
      auth: valid                            # valid (default) | none | invalid
    expect:
      status: 200
      media_type: application/json           # default: application/json
      schema: true                           # validate against the spec (default true)
      jsonpath:                              # every match of path must satisfy the test
        - {path: $.object, equals: chat.completion}
        - {path: $.usage.total_tokens, at_least: 1}
      media:
        - {path: "$.choices[0].message.images[0].image_url.url", format: PNG}

Placeholders in the request: ``${model:<capability>}`` is the target's model for that capability;
``${media:wav_base64}`` is a short real WAV file, base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import wave
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonpath_ng.ext.parser import parse as jsonpath
from PIL import Image, UnidentifiedImageError

from conformance.checks.contract import validate_against
from conformance.failures import CheckFailure
from conformance.http import Exchange
from conformance.target import Target
from spec import Operation, find_operation

CHECK = "golden_fixture"
_PLACEHOLDER = re.compile(r"\$\{(model|media):([a-z_]+)\}")


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
    cases = []
    for path in sorted(root.glob("*/*/*.yaml")):
        api, operation_id = path.parent.parent.name, path.parent.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            source = data["source"]
            cases.append(GoldenCase(
                id=f"{api}/{operation_id}/{path.stem}",
                operation=find_operation(api, operation_id),
                capability=data["capability"],
                source=f"{source['document']} {source['section']}",
                request=data["request"],
                expect=data["expect"],
            ))
        except (KeyError, TypeError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: malformed fixture ({exc})") from exc
    return cases


def _wav_base64() -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\x00\x00" * 16_000)  # 1 s of silence
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_MEDIA: Mapping[str, Callable[[], str]] = {"wav_base64": _wav_base64}


def render(value: Any, target: Target) -> Any:
    """``value`` with its ``${model:...}`` and ``${media:...}`` placeholders filled in for ``target``."""
    if isinstance(value, str):
        def fill(match: re.Match[str]) -> str:
            kind, name = match.groups()
            return target.model(name) if kind == "model" else _MEDIA[name]()

        return _PLACEHOLDER.sub(fill, value)
    if isinstance(value, list):
        return [render(item, target) for item in value]
    if isinstance(value, dict):
        return {key: render(item, target) for key, item in value.items()}
    return value


def verify(case: GoldenCase, exchange: Exchange) -> None:
    """Raise :class:`CheckFailure` (``golden_fixture``) at the first invariant ``exchange`` breaks."""
    expect = case.expect

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
        for value in _matches(assertion["path"], body) or [None]:
            reason = _media_problem(assertion, value)
            if reason is not None:
                raise fail(f"{assertion['path']} decodes as {assertion['format']}", reason)


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


def _media_problem(assertion: Mapping[str, Any], value: Any) -> str | None:
    """None if ``value`` (a data URL or base64 text) decodes as the expected image, else the reason."""
    if not isinstance(value, str):
        return f"no string at {assertion['path']}"
    encoded = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
        image.load()
    except (binascii.Error, ValueError):
        return "text that is not valid base64"
    except (UnidentifiedImageError, OSError) as exc:
        return f"bytes no image decoder accepts ({exc})"
    if image.format != assertion["format"]:
        return f"a {image.format} image"
    size = assertion.get("size")
    if size and list(image.size) != list(size):
        return f"a {image.size[0]}x{image.size[1]} image"
    return None
