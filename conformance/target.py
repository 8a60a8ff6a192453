"""The system under test: where it is, how to authenticate, what it claims, which models to use.

A target file (YAML) says it; ``conformance run --target FILE``::

    name: acme-gateway                   # report folder name (default: from the URL)
    base_url: https://gateway.acme.dev   # server root; spec paths carry /v1 themselves
    api_key_env: ACME_KEY                # or api_key: sk-...; used as Bearer and as x-api-key
    standard_api_key_env: ACME_BASIC     # optional: a key below the premium tier, for the 403 checks
    empty_api_key_env: ACME_EMPTY        # optional: a key with no credits left, for the 402 checks
    scoped_api_key_env: ACME_CHAT_ONLY   # optional: a key whose scopes leave out image generation, for the
                                         # 403 scope check (001: "Key lacks the required scope")
    billing_api_key_env: ACME_BROKE      # optional: a key out of credit or over its spend limit on the
                                         # OpenAI-compatible gateway, for the 402 billing_error check
    refused_prompt: "..."                # optional: a prompt the target's content filter refuses (002 Safety)
    rate_limits:                         # optional: the limits the suite may provoke (429), on a key of their own
      api_key_env: ACME_LIMITED          # or api_key: ...; a premium key (default the main key); it also
                                         # carries the seedance and sora2 I2V calls
      rpm: 3                             # that key's requests per minute on createChatCompletion
      tpm: 2000                          # that key's tokens per minute on createChatCompletion (>= 200)
      endpoints: [createMultimodalImage] # credits API operations whose documented per-minute limit (004)
                                         # the suite may reach: limit + 1 requests each, at their cost
    fault_header: X-Mock-Fault           # optional: a header that makes the target answer a given
                                         # error status (a test mode), for the 5xx envelope checks
    messages_version: "2023-06-01"       # anthropic-version sent to the Messages protocol
    apis: [openai_gateway, multi_protocol, credits_api]   # what it claims (default: all)
    models: {chat: gpt-4o-mini, image_generation: gpt-image-1, speech: tts-1, transcription: whisper-1}
                                         # optional model keys no default fills (their checks skip without):
                                         # text_only (a chat model taking text only), without_image,
                                         # without_audio, without_video, without_document (one lacking that
                                         # medium; else text_only), provider_<name> (a chat model per provider,
                                         # for the same request body sent to each: provider_openai, ...)
    exclude_operations: [createTextToVideo]               # never called (cost, side effects)
    request_interval_s: 0.2              # pacing between requests (default 0)
    max_retry_wait_s: 5                  # a 429 whose Retry-After is longer is not waited for
    hosted_url_recheck_s: 10             # least time before hosted URLs are downloaded again (default 10)
    timeout_s: 60                        # a whole answer (headers and body) slower than this is a failed
                                         # check (target_reachable)
    rpm: 120                             # requests per minute the key may send: requests are paced to it
    concurrency: 4                       # checks in flight at once (default 4; 1 runs them one by one)
    job_timeout_s: 600                   # longest wait for a video job to complete when polled
    upstream:                            # optional: the mock the gateway talks to (its upstream provider)
      control_url: http://127.0.0.1:9100 # that mock's root URL (`mock-server serve` with control enabled)
      control_key_env: MOCK_CONTROL_KEY  # or control_key: ...; the mock's control.key
      models: {acme-chat: gpt-4o-mini}   # gateway model id -> the upstream id it routes to (default: same)
      max_first_byte_overhead_ms: 1000   # most time the gateway may add before a stream's first event

With ``upstream`` the suite's upstream phase runs (``conformance/suite/test_upstream.py``): it marks
each request with a nonce in its prompt, scripts the upstream's behaviour, and reads the upstream's
request journal to judge how the gateway translated.

The file is validated against :data:`TARGET_FILE_SCHEMA`; an error names the bad key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from spec import api_names, load_yaml

#: Model per capability when the target names none: the ids the seed documents use.
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType({
    "chat": "gpt-4o-mini",                                # 001 examples use OpenAI-compatible ids
    "vision": "openai/gpt-5-mini",                        # 003 "Image input"
    "audio_input": "openai/gpt-5-mini",                   # 003 "Audio input"
    "video_input": "openai/gpt-5-mini",                   # 003 "Video input"
    "image_output": "gemini-2.5-flash-image-generation",  # 002 "Native image generation"
    "image_generation": "gpt-image-1",                    # 002 "Images API"
    "speech": "tts-1",                                    # OpenAI speech, which 000 mirrors
    "transcription": "whisper-1",                         # OpenAI transcription, which 000 mirrors
    "messages": "anthropic/claude-sonnet-4.6",            # 003 "Messages image input"
    "responses": "openai/gpt-5-mini",                     # 003 "Responses image input"
    "image_edit": "gpt-image-1",                          # 002 "Images API" model, OpenAI's edits contract
    "translation": "whisper-1",                           # OpenAI translation, which 000 mirrors
    "document_input": "gpt-4o-mini",                      # 000 "Documents": OpenAI `file` parts, which it takes
    "image_revising": "dall-e-3",                         # 002 "Request body" names it; its provider revises prompts
})
#: anthropic-version sent to the Messages protocol when the target names none.
DEFAULT_MESSAGES_VERSION = "2023-06-01"

#: Smallest TPM the suite provokes: its probe's prompt is 60% of it, its request framing far less.
MIN_PROBED_TPM = 200

TARGET_FILE_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["base_url"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
        "base_url": {"type": "string", "pattern": "^https?://"},
        "api_key": {"type": "string", "minLength": 1},
        "api_key_env": {"type": "string", "minLength": 1},
        "standard_api_key": {"type": "string", "minLength": 1},
        "standard_api_key_env": {"type": "string", "minLength": 1},
        "empty_api_key": {"type": "string", "minLength": 1},
        "scoped_api_key": {"type": "string", "minLength": 1},
        "scoped_api_key_env": {"type": "string", "minLength": 1},
        "empty_api_key_env": {"type": "string", "minLength": 1},
        "fault_header": {"type": "string", "minLength": 1},
        "billing_api_key": {"type": "string", "minLength": 1},
        "billing_api_key_env": {"type": "string", "minLength": 1},
        "refused_prompt": {"type": "string", "minLength": 1},
        "rate_limits": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "api_key": {"type": "string", "minLength": 1},
                "api_key_env": {"type": "string", "minLength": 1},
                "rpm": {"type": "integer", "minimum": 1},
                "tpm": {"type": "integer", "minimum": MIN_PROBED_TPM},
                "endpoints": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            },
        },
        "messages_version": {"type": "string", "minLength": 1},
        "apis": {"type": "array", "items": {"enum": api_names()}, "uniqueItems": True},
        "models": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
        "exclude_operations": {"type": "array", "items": {"type": "string"}},
        "request_interval_s": {"type": "number", "minimum": 0},
        "max_retry_wait_s": {"type": "number", "minimum": 0},
        "hosted_url_recheck_s": {"type": "number", "minimum": 0, "maximum": 3600},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "rpm": {"type": "number", "exclusiveMinimum": 0},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
        "job_timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "upstream": {
            "type": "object", "additionalProperties": False, "required": ["control_url"],
            "properties": {
                "control_url": {"type": "string", "pattern": "^https?://"},
                "control_key": {"type": "string", "minLength": 1},
                "control_key_env": {"type": "string", "minLength": 1},
                "models": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
                "max_first_byte_overhead_ms": {"type": "number", "exclusiveMinimum": 0},
            },
        },
    },
}

#: Checks in flight at once when the target file sets no ``concurrency``: enough to hide a slow
#: gateway's latency, few enough for a small CI machine and a key's rate limits.
DEFAULT_CONCURRENCY = 4
#: Most time a gateway may add before a stream's first event, in ms, when the target file sets none.
DEFAULT_FIRST_BYTE_OVERHEAD_MS = 1000.0


@dataclass(frozen=True)
class Upstream:
    """The mock a gateway under test uses as its upstream provider: its root ``control_url`` and
    ``control_key`` (the control API's, ``mock_server/control.py``), how the gateway renames models
    (``models``: gateway id -> upstream id), and the most ms it may add before a stream's first event."""

    control_url: str
    control_key: str
    models: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    max_first_byte_overhead_ms: float = DEFAULT_FIRST_BYTE_OVERHEAD_MS

    def upstream_model(self, model: str) -> str:
        """The upstream model id a gateway model id routes to."""
        return self.models.get(model, model)


@dataclass(frozen=True)
class RateLimitProbes:
    """The limits a target lets the suite reach (001 "Errors": 429 "RPM or TPM exceeded"; 004 per-endpoint
    limits), all on ``api_key`` (None: the target's main key): ``rpm`` requests and ``tpm`` tokens per
    minute on createChatCompletion (None: not provoked), and the credits API ``endpoints`` (operationIds)
    whose documented limit may be reached with limit + 1 requests."""

    api_key: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    endpoints: frozenset[str] = frozenset()


class TargetFileError(ValueError):
    """A target file that does not load or does not validate; the message names the bad key."""


@dataclass(frozen=True)
class Target:
    """``base_url`` is the server root (``http://127.0.0.1:8000``): spec paths carry ``/v1`` themselves.

    ``apis`` are the claimed spec names; ``request_interval_s``, ``max_retry_wait_s`` and ``timeout_s``
    (the longest wait for an answer) are in s.
    """

    name: str
    base_url: str
    api_key: str
    models: Mapping[str, str] = field(default_factory=lambda: DEFAULT_MODELS)
    apis: frozenset[str] = field(default_factory=lambda: frozenset(api_names()))
    messages_version: str = DEFAULT_MESSAGES_VERSION
    exclude_operations: frozenset[str] = frozenset()
    request_interval_s: float = 0.0
    max_retry_wait_s: float = 5.0
    hosted_url_recheck_s: float = 10.0
    """Least time, in s, between a hosted URL's issue and its second download (``hosted_urls_download_later``)."""
    standard_api_key: str | None = None
    empty_api_key: str | None = None
    scoped_api_key: str | None = None
    """A key without the scope of ``createImage`` (it may call chat), for the 403 scope check."""
    fault_header: str | None = None
    timeout_s: float = 60.0
    upstream: Upstream | None = None
    """The gateway's upstream mock, for the upstream phase; None skips that phase."""
    billing_api_key: str | None = None
    """A key out of credit or over its spend limit on the OpenAI-compatible gateway (402 billing_error)."""
    refused_prompt: str | None = None
    """A prompt the target refuses (002 "Safety": 400 invalid_request_error with the reason)."""
    rate_limits: RateLimitProbes | None = None
    """The limits the suite may provoke with 429s; None: none."""
    rpm: float | None = None
    """Requests per minute the key may send (the suite paces its requests to it); None: unpaced."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Checks in flight at once (pytest-xdist workers); 1 runs them one after another."""
    job_timeout_s: float = 600.0
    """Longest wait, in s, for a video job to complete when polled (real GPU providers take minutes)."""

    @property
    def interval_s(self) -> float:
        """The least time between two requests, in s: ``request_interval_s``, or 60 / ``rpm`` if longer."""
        return max(self.request_interval_s, 60.0 / self.rpm if self.rpm else 0.0)

    def model(self, capability: str) -> str:
        """The model id to use for ``capability`` (chat, vision, image_output, ...)."""
        return self.models.get(capability) or DEFAULT_MODELS.get(capability) or DEFAULT_MODELS["chat"]

    def model_without(self, medium: str) -> str | None:
        """The chat model the target names as lacking ``medium`` (image, audio, video, document):
        ``without_<medium>``, else ``text_only``; None when it names neither."""
        return self.models.get(f"without_{medium}") or self.models.get("text_only")

    def provider_models(self) -> dict[str, str]:
        """The chat model named per provider (``provider_<name>`` keys): ``{name: model id}``."""
        return {key.removeprefix("provider_"): model for key, model in sorted(self.models.items())
                if key.startswith("provider_")}

    def claims(self, api: str) -> bool:
        """Whether the target claims to implement spec ``api``."""
        return api in self.apis

    def auth_headers(self, style: str = "bearer") -> dict[str, str]:
        """Headers carrying the key: ``bearer`` (OpenAI protocols), ``messages`` (x-api-key + version),
        ``standard`` (Bearer with the below-premium key), ``empty`` (Bearer with the no-credits key),
        ``scoped`` (Bearer with the key lacking the images scope), ``billing`` (Bearer with the key over
        its gateway spend limit) or ``limited`` (Bearer with the rate-limit probes' key), when the target
        has them; the main key otherwise."""
        if style == "messages":
            return {"x-api-key": self.api_key, "anthropic-version": self.messages_version}
        if style == "standard" and self.standard_api_key:
            return {"Authorization": f"Bearer {self.standard_api_key}"}
        if style == "empty" and self.empty_api_key:
            return {"Authorization": f"Bearer {self.empty_api_key}"}
        if style == "scoped" and self.scoped_api_key:
            return {"Authorization": f"Bearer {self.scoped_api_key}"}
        if style == "billing" and self.billing_api_key:
            return {"Authorization": f"Bearer {self.billing_api_key}"}
        if style == "limited" and self.rate_limits is not None and self.rate_limits.api_key:
            return {"Authorization": f"Bearer {self.rate_limits.api_key}"}
        return {"Authorization": f"Bearer {self.api_key}"}


def load_target_file(path: Path, api_key: str | None = None) -> Target:
    """Read and validate a target file; ``api_key`` (from the command line) wins over the file's.

    Raises :class:`TargetFileError` naming the bad key, or the missing key source.
    """
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TargetFileError(f"{path}: {exc}") from exc
    return parse_target(data, str(path), api_key)


def parse_target(data: Any, path: str, api_key: str | None = None) -> Target:
    """A target file's parsed content as a :class:`Target`; ``path`` names it in errors and ``api_key``
    wins over its own. Raises :class:`TargetFileError` naming the bad key, or the missing key source."""
    error = best_match(Draft202012Validator(TARGET_FILE_SCHEMA).iter_errors(data))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise TargetFileError(f"{path}: {where}: {error.message}")
    key = api_key or data.get("api_key") or os.environ.get(data.get("api_key_env", ""), "")
    if not key:
        raise TargetFileError(f"{path}: no API key: set api_key, or api_key_env to a variable that is set")
    base_url = root_url(data["base_url"])
    return Target(
        name=data.get("name") or name_for(base_url),
        base_url=base_url,
        api_key=key,
        models=MappingProxyType({**DEFAULT_MODELS, **data.get("models", {})}),
        apis=frozenset(data.get("apis", api_names())),
        messages_version=data.get("messages_version", DEFAULT_MESSAGES_VERSION),
        exclude_operations=frozenset(data.get("exclude_operations", [])),
        request_interval_s=float(data.get("request_interval_s", 0.0)),
        max_retry_wait_s=float(data.get("max_retry_wait_s", 5.0)),
        hosted_url_recheck_s=float(data.get("hosted_url_recheck_s", 10.0)),
        standard_api_key=_key(data, "standard_api_key"),
        empty_api_key=_key(data, "empty_api_key"),
        scoped_api_key=_key(data, "scoped_api_key"),
        fault_header=data.get("fault_header"),
        timeout_s=float(data.get("timeout_s", 60.0)),
        upstream=_upstream(path, data.get("upstream")),
        billing_api_key=_key(data, "billing_api_key"),
        refused_prompt=data.get("refused_prompt"),
        rate_limits=_rate_limits(data.get("rate_limits")),
        rpm=float(data["rpm"]) if "rpm" in data else None,
        concurrency=int(data.get("concurrency", DEFAULT_CONCURRENCY)),
        job_timeout_s=float(data.get("job_timeout_s", 600.0)),
    )


def _rate_limits(data: Mapping[str, Any] | None) -> RateLimitProbes | None:
    """The ``rate_limits`` section as :class:`RateLimitProbes` (None without one)."""
    if data is None:
        return None
    return RateLimitProbes(_key(data, "api_key"), data.get("rpm"), data.get("tpm"),
                           frozenset(data.get("endpoints", [])))


def _upstream(path: str, data: Mapping[str, Any] | None) -> Upstream | None:
    """The ``upstream`` section as an :class:`Upstream`. Raises TargetFileError without a control key."""
    if data is None:
        return None
    key = _key(data, "control_key")
    if not key:
        raise TargetFileError(f"{path}: upstream: no control key: set control_key, or control_key_env to a "
                              "variable that is set")
    return Upstream(root_url(data["control_url"]), key, MappingProxyType(dict(data.get("models", {}))),
                    float(data.get("max_first_byte_overhead_ms", DEFAULT_FIRST_BYTE_OVERHEAD_MS)))


def _key(data: Mapping[str, Any], name: str) -> str | None:
    """An optional key given as ``<name>`` or ``<name>_env`` (an environment variable)."""
    return data.get(name) or os.environ.get(data.get(f"{name}_env", ""), "") or None


def root_url(url: str) -> str:
    """Normalise a target URL to its server root: no trailing slash, no trailing ``/v1``."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def name_for(url: str) -> str:
    """A file-system-safe target name from a URL: ``api.example.com_8443``."""
    parts = urlsplit(url)
    raw = parts.netloc or parts.path or "target"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("_") or "target"
