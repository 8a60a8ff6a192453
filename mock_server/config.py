"""The mock's configuration: one YAML file, validated against a JSON Schema, frozen, passed explicitly.

``mock-server serve --config FILE`` loads a file with :func:`load_config`; without one the shipped
defaults (``data/default_config.yaml``) apply. ``MockConfig()`` is the configuration tests build
from: the development key ``sk-test`` (premium, every scope), rate limits on, latency and faults off.
Operating figures (costs, per-minute limits of the credits API, tiers) are the spec's, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mock_server.catalogue import DEFAULT_CATALOGUE
from mock_server.journal import DEFAULT_BODY_BYTES as DEFAULT_JOURNAL_BODY_BYTES
from mock_server.journal import DEFAULT_SIZE as DEFAULT_JOURNAL_SIZE
from mock_server.sim.latency import LatencyModel
from mock_server.sim.ledger import DEFAULT_STARTING_CREDITS
from mock_server.sim.tiers import TIERS
from spec import api_names, load_yaml, operations

#: The development key the mock accepts when no keys are configured (README "Development key").
DEV_API_KEY = "sk-test"
#: The shipped defaults of ``mock-server serve``.
DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent / "data" / "default_config.yaml"
#: Fault kinds a rate or the ``X-Mock-Fault`` header may trigger.
FAULT_KINDS = ("500", "502", "503", "slow_stream", "cut_stream", "safety")

#: What ``state.url`` may be: ``memory`` (in process, the default) or a Redis URL (``fleet/``).
STATE_URL_PATTERN = r"^(memory|rediss?://\S+)$"
#: What ``state.namespace`` may be (it prefixes every Redis key: ``gc:<namespace>:``).
STATE_NAMESPACE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

_DISTRIBUTION = {
    "oneOf": [
        {"type": "number", "minimum": 0},
        {"type": "object", "additionalProperties": False, "required": ["fixed"],
         "properties": {"fixed": {"type": "number", "minimum": 0}}},
        {"type": "object", "additionalProperties": False, "required": ["uniform"],
         "properties": {"uniform": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 2,
                                    "maxItems": 2}}},
        {"type": "object", "additionalProperties": False, "required": ["lognormal"],
         "properties": {"lognormal": {"type": "object", "additionalProperties": False, "required": ["p50", "p95"],
                                      "properties": {"p50": {"type": "number", "exclusiveMinimum": 0},
                                                     "p95": {"type": "number", "exclusiveMinimum": 0}}}}},
    ],
}
_LATENCY_MODEL = {
    "type": "object", "additionalProperties": False,
    "properties": {"queue": _DISTRIBUTION, "first": _DISTRIBUTION, "per_unit": _DISTRIBUTION,
                   "unit": {"enum": ["tokens", "megapixels", "audio_s", "video_s", "requests"]}},
}
_RATES = {"type": "object", "additionalProperties": False,
          "properties": {kind: {"type": "number", "minimum": 0, "maximum": 1} for kind in FAULT_KINDS}}

#: The catalogue model that stands in for a model id the catalogue lacks, per operation, when
#: ``unknown_models.serve`` is on (README "Offline development with any model"); ``unknown_models.as``
#: overrides any of them. The answer carries the id the client sent; the stand-in decides what the
#: model takes and gives (modalities, tools, structured output).
DEFAULT_STAND_INS: Mapping[str, str] = MappingProxyType({
    "createChatCompletion": "gpt-4o-mini",
    "createResponse": "openai/gpt-5-mini",
    "createMessage": "anthropic/claude-sonnet-4.6",
    "countMessageTokens": "anthropic/claude-sonnet-4.6",
    "retrieveModel": "gpt-4o-mini",
    "createImage": "gpt-image-1",
    "createImageEdit": "gpt-image-1",
    "createSpeech": "tts-1",
    "createTranscription": "whisper-1",
    "createTranslation": "whisper-1",
})

#: The JSON Schema of a configuration file.
CONFIG_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer"},
        "hosted_url_ttl_s": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "catalogue": {"type": "string"},
        "keys": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["key"],
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "tier": {"enum": list(TIERS)},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "credits": {"type": "integer", "minimum": 0},
                "rpm": {"type": "integer", "minimum": 1},
                "tpm": {"type": "integer", "minimum": 1},
                "rate_window_s": {"type": "number", "exclusiveMinimum": 0},
                "spend_limit_usd": {"type": "number", "minimum": 0},
            }}},
        "ledger": {"type": "object", "additionalProperties": False, "properties": {
            "path": {"type": ["string", "null"]}, "starting_credits": {"type": "integer", "minimum": 0}}},
        "rate_limits": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "rpm": {"type": "integer", "minimum": 1},
            "tpm": {"type": "integer", "minimum": 1}}},
        "latency": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "time_scale": {"type": "number", "minimum": 0},
            "gpu_slots": {"type": "integer", "minimum": 1}, "default": _LATENCY_MODEL,
            "operations": {"type": "object", "additionalProperties": _LATENCY_MODEL}}},
        "faults": {"type": "object", "additionalProperties": False, "properties": {
            "operations": {"type": "object", "additionalProperties": _RATES},
            "blocklist": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "header": {"type": "boolean"}}},
        "unknown_models": {"type": "object", "additionalProperties": False, "properties": {
            "serve": {"type": "boolean"},
            "as": {"type": "object", "propertyNames": {"enum": sorted(DEFAULT_STAND_INS)},
                   "additionalProperties": {"type": "string", "minLength": 1}}}},
        "observability": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}}},
        "journal": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "size": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "body_bytes": {"type": "integer", "minimum": 0}}},
        "control": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "key": {"type": ["string", "null"], "minLength": 1}}},
        "state": {"type": "object", "additionalProperties": False, "properties": {
            "url": {"type": "string", "pattern": STATE_URL_PATTERN},
            "namespace": {"type": "string", "pattern": STATE_NAMESPACE_PATTERN}}},
    },
}


class ConfigError(ValueError):
    """A configuration file that does not load or validate; the message names the bad key."""


def operation_ids() -> tuple[str, ...]:
    """Every operationId of the specs, sorted: what ``latency.operations``, ``faults.operations`` and a
    key's ``scopes`` may name."""
    return tuple(sorted({op.operation_id for api in api_names() for op in operations(api)}))


def name_problems(data: Any) -> list[str]:
    """The names in a configuration that are not what they must be, each as ``<path>: <what is wrong>;
    allowed: <values>``: an operationId under ``latency.operations``, ``faults.operations``,
    ``unknown_models.as`` or in a key's ``scopes`` (or ``*``), a fault kind under
    ``faults.operations.<operationId>``. (A tier, a value, is
    the schema's enum.) ``data`` is the parsed file; what is not a mapping or list is left to the schema."""
    known = operation_ids()
    allowed_ops = ", ".join(known)
    problems: list[str] = []
    if not isinstance(data, Mapping):
        return problems
    for section in ("latency", "faults"):
        by_operation = data.get(section, {}).get("operations") if isinstance(data.get(section), Mapping) else None
        for name, value in (by_operation or {}).items() if isinstance(by_operation, Mapping) else ():
            if name not in known:
                problems.append(f"{section}.operations.{name}: not an operationId; allowed: {allowed_ops}")
            if section == "faults" and isinstance(value, Mapping):
                problems += [f"faults.operations.{name}.{kind}: not a fault kind; allowed: {', '.join(FAULT_KINDS)}"
                             for kind in value if kind not in FAULT_KINDS]
    unknown = data.get("unknown_models")
    stand_ins = unknown.get("as") if isinstance(unknown, Mapping) else None
    problems += [f"unknown_models.as.{name}: not an operation that names a model; allowed: "
                 f"{', '.join(sorted(DEFAULT_STAND_INS))}"
                 for name in (stand_ins if isinstance(stand_ins, Mapping) else ()) if name not in DEFAULT_STAND_INS]
    keys = data.get("keys")
    for index, entry in enumerate(keys if isinstance(keys, list) else []):
        scopes = entry.get("scopes") if isinstance(entry, Mapping) else None
        for position, scope in enumerate(scopes if isinstance(scopes, list) else []):
            if scope != "*" and scope not in known:
                problems.append(f"keys[{index}].scopes[{position}]: {scope!r} is not an operationId; "
                                f"allowed: *, {allowed_ops}")
    return problems


@dataclass(frozen=True)
class KeyConfig:
    """One accepted API key: its ``tier``, ``scopes`` (operationIds, or ``*`` for all), starting
    ``credits`` (None: the ledger's default) and RPM/TPM overrides for the chat gateway."""

    key: str
    tier: str = "premium"
    scopes: frozenset[str] = frozenset({"*"})
    credits: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    rate_window_s: float | None = None
    """The window of this key's ``rpm``/``tpm``, in s (None: a minute); shorter only to test how
    clients wait for Retry-After without waiting a minute."""
    spend_limit_usd: float | None = None
    """Most the key may spend on the OpenAI-compatible gateway, in US dollars (``sim/spend.py``, priced
    by the catalogue); past it 402 billing_error (001, 002 "Errors"). None: no limit; 0: out of credit."""

    def allows(self, operation_id: str) -> bool:
        """Whether the key's scopes include ``operation_id``."""
        return "*" in self.scopes or operation_id in self.scopes


@dataclass(frozen=True)
class RateLimitConfig:
    """Per-key limits. The credits API's per-minute limits come from the spec (``x-rate-limit``); the
    gateways document RPM and TPM without figures (001 "Errors"), so ``rpm``/``tpm`` are ours."""

    enabled: bool = True
    rpm: int = 600
    tpm: int = 1_000_000


@dataclass(frozen=True)
class LatencyConfig:
    """Simulated GPU latency (``mock_server.sim.latency``); ``time_scale`` multiplies every delay."""

    enabled: bool = False
    time_scale: float = 1.0
    gpu_slots: int = 4
    default: LatencyModel = field(default_factory=LatencyModel)
    operations: Mapping[str, LatencyModel] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class FaultConfig:
    """Fault rates per operationId (kind -> probability per request), the safety ``blocklist`` of prompt
    words, and whether the ``X-Mock-Fault`` request header may trigger a fault deterministically."""

    operations: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    blocklist: tuple[str, ...] = ()
    header: bool = True


@dataclass(frozen=True)
class JournalConfig:
    """The request journal (``mock_server/journal.py``): on by default, read through the control API (and
    so recording only while that is enabled).
    ``size`` is the most entries kept (a ring), ``body_bytes`` the most answer-body bytes kept."""

    enabled: bool = True
    size: int = DEFAULT_JOURNAL_SIZE
    body_bytes: int = DEFAULT_JOURNAL_BODY_BYTES


@dataclass(frozen=True)
class UnknownModelsConfig:
    """Model ids the catalogue lacks: refused (``serve`` false, the default, as a real gateway does:
    400 or 404 ``model_not_found``), or served as ``stand_ins[operationId]``, a catalogue model id
    (:data:`DEFAULT_STAND_INS` unless the file's ``as`` names another), answering with the id sent."""

    serve: bool = False
    stand_ins: Mapping[str, str] = field(default_factory=lambda: DEFAULT_STAND_INS)


@dataclass(frozen=True)
class ControlConfig:
    """The control API under ``/_mock``: off unless enabled, and then only with its own ``key``."""

    enabled: bool = False
    key: str | None = None


@dataclass(frozen=True)
class StateConfig:
    """Where the state lives: ``url`` ``memory`` (this process: the ledger in SQLite, the rest in memory)
    or ``redis://host:port/db``, shared by every replica of a fleet (``mock_server/fleet/``) whose keys
    start ``gc:<namespace>:``, so that two fleets may share one Redis."""

    url: str = "memory"
    namespace: str = "mock"

    @property
    def shared(self) -> bool:
        """Whether the state is in Redis (fleet mode)."""
        return self.url != "memory"


@dataclass(frozen=True)
class MockConfig:
    """Everything the mock is told. ``seed`` makes answers and simulated draws repeatable;
    ``hosted_url_ttl_s`` overrides the spec's hosted-URL lifetime (s); ``ledger_path`` is the credits
    ledger's SQLite file (None: in memory); ``starting_credits`` the balance of a key with none set."""

    seed: int = 0
    keys: tuple[KeyConfig, ...] = (KeyConfig(DEV_API_KEY),)
    catalogue: Path = DEFAULT_CATALOGUE
    hosted_url_ttl_s: float | None = None
    ledger_path: str | Path | None = None
    starting_credits: int = DEFAULT_STARTING_CREDITS
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    unknown_models: UnknownModelsConfig = field(default_factory=UnknownModelsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    observability: bool = True
    """``X-Request-Id`` on every answer, ``/metrics``, ``/health`` and ``/ready`` (``observability.py``);
    off only to measure what they cost (``benchmarks/bench_observability.py``)."""

    @property
    def api_keys(self) -> frozenset[str]:
        """The accepted keys."""
        return frozenset(entry.key for entry in self.keys)

    def key(self, api_key: str | None) -> KeyConfig | None:
        """The configuration of ``api_key``, or None for a key that is not configured."""
        return next((entry for entry in self.keys if entry.key == api_key), None)


def load_config(path: Path, **overrides: Any) -> MockConfig:
    """Read, validate and freeze a configuration file; ``overrides`` replace top-level fields.

    Raises :class:`ConfigError` naming the bad key.
    """
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    problems = name_problems(data)
    if problems:
        raise ConfigError(f"{path}: {problems[0]}")
    error = best_match(Draft202012Validator(CONFIG_SCHEMA).iter_errors(data))
    if error is not None:
        raise ConfigError(f"{path}: {_where(error.absolute_path)}: {error.message}{_allowed(error)}")
    try:
        return _build(data, overrides)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _allowed(error: Any) -> str:
    """``; allowed: ...`` for an error whose schema lists what may stand there (keys or values), else ``""``."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(schema.get("properties"), Mapping):
        return "; allowed keys: " + ", ".join(schema["properties"])
    return ""


def _where(parts: Any) -> str:
    """A JSON path as the configuration's own notation: ``keys[0].tier``, ``(top level)`` for none."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _build(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> MockConfig:
    keys = tuple(KeyConfig(key=entry["key"], tier=entry.get("tier", "premium"),
                           scopes=frozenset(entry.get("scopes", ["*"])), credits=entry.get("credits"),
                           rpm=entry.get("rpm"), tpm=entry.get("tpm"), rate_window_s=entry.get("rate_window_s"),
                           spend_limit_usd=entry.get("spend_limit_usd")) for entry in data.get("keys", []))
    ledger = data.get("ledger", {})
    latency = data.get("latency", {})
    faults = data.get("faults", {})
    fields: dict[str, Any] = {
        "seed": data.get("seed", 0),
        "keys": keys or (KeyConfig(DEV_API_KEY),),
        "catalogue": Path(data["catalogue"]) if "catalogue" in data else DEFAULT_CATALOGUE,
        "hosted_url_ttl_s": data.get("hosted_url_ttl_s"),
        "ledger_path": ledger.get("path"),
        "starting_credits": ledger.get("starting_credits", DEFAULT_STARTING_CREDITS),
        "rate_limits": RateLimitConfig(**data.get("rate_limits", {})),
        "latency": LatencyConfig(
            enabled=latency.get("enabled", False), time_scale=latency.get("time_scale", 1.0),
            gpu_slots=latency.get("gpu_slots", 4), default=LatencyModel.parse(latency.get("default", {})),
            operations=MappingProxyType({op: LatencyModel.parse(m) for op, m in latency.get("operations", {}).items()}),
        ),
        "faults": FaultConfig(
            operations=MappingProxyType({op: MappingProxyType(rates) for op, rates in
                                         faults.get("operations", {}).items()}),
            blocklist=tuple(word.lower() for word in faults.get("blocklist", [])), header=faults.get("header", True)),
        "control": ControlConfig(**data.get("control", {})),
        "journal": JournalConfig(**data.get("journal", {})),
        "observability": data.get("observability", {}).get("enabled", True),
        "unknown_models": UnknownModelsConfig(
            serve=data.get("unknown_models", {}).get("serve", False),
            stand_ins=MappingProxyType({**DEFAULT_STAND_INS, **data.get("unknown_models", {}).get("as", {})})),
    }
    fields["state"] = StateConfig(**data.get("state", {}))
    fields.update(overrides)
    if fields["state"].shared and fields["ledger_path"] is not None:
        raise ValueError("ledger.path: a fleet's ledger is in Redis (state.url); remove ledger.path or state.url")
    return MockConfig(**fields)
