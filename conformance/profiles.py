"""Hypothesis profiles of the suite: how much property-based generation a run does.

``quick`` is for CI gates (seconds against a local target); ``thorough`` for a nightly or a
vendor's full report. Both are derandomised, so the same target gets the same cases. ``quick``
spends fewer positive cases on the operations whose every answer costs GPU time (:data:`GPU_BOUND`:
no boundary cases for them, :data:`WITHOUT_COVERAGE`), and its positive image cases ask for fewer images
(:data:`CASE_LIMITS`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, Phase, configuration, settings

#: profile name -> generated cases per operation and generation mode (fuzzing phase)
PROFILES: Mapping[str, int] = MappingProxyType({"quick": 15, "thorough": 200})
#: profile name -> the run's time budget when ``--max-duration`` is not given, in s: a CI gate's
#: slot (quick) or a nightly job's (thorough). What does not run in time is skipped with that reason.
MAX_DURATION_S: Mapping[str, float] = MappingProxyType({"quick": 600.0, "thorough": 3600.0})
#: profile name -> ``latency.time_scale`` of the mock that ``--target mock`` serves (its shipped GPU
#: latency model, scaled): 0.001 makes a 0.4 s first token 0.4 ms and a 30 s video job 30 ms; 0.01
#: keeps streams paced (a 20 ms inter-token gap is 0.2 ms) for the thorough report.
MOCK_TIME_SCALE: Mapping[str, float] = MappingProxyType({"quick": 0.001, "thorough": 0.01})
#: The operations whose every answer costs GPU time (002, 004: an image "a few seconds", a chat answer about
#: 0.4 s to its first token then tens of tokens a second, speech and transcripts in proportion to their
#: audio, a video job tens of seconds; the mock's latency model, ``latency.operations`` of its shipped
#: configuration, gives each of them its own), as against listings, token counts and usage records.
GPU_BOUND = frozenset({
    "createChatCompletion", "createResponse", "createMessage",  # text generation, per output token
    "createImage", "createImageEdit", "createMultimodalImage",  # per megapixel
    "createSpeech", "createMultimodalTts", "createTranscription", "createTranslation",  # per second of audio
    "createImageToVideo", "createTextToVideo", "createCogVideoX",  # a job per video (1-2 a minute, 004)
})
#: profile name -> operationIds whose positive generated cases leave out schemathesis's coverage phase (its
#: deterministic boundary cases, most of an operation's cases: 60 of 75 for createImage, about 290 of 300
#: for chat completions) and keep the profile's own generated ones (``PROFILES``): in ``quick``, the
#: :data:`GPU_BOUND` operations. Against a real gateway (or the mock's real-time latency) their boundary
#: cases queue on the model's few GPU slots: 1504 requests to /v1/chat/completions in one property phase,
#: 74-83 s for each chat-like operation and minutes for the images, most of a CI gate's time, where the
#: generated cases already send every schema's shapes. Their negative cases (refused before any GPU work)
#: keep every boundary case, and the thorough profile keeps all of them.
WITHOUT_COVERAGE: Mapping[str, frozenset[str]] = MappingProxyType({"quick": GPU_BOUND, "thorough": frozenset()})

#: profile name -> operationId -> {request body field: most}: what a positive generated case of the operation asks
#: for at most in that profile (a drawn value above it is lowered to it). In ``quick``, at most 2 images per
#: request (``n``, 1-10 in the spec) for the OpenAI image operations: each image is GPU time (2.5 s per
#: megapixel on the mock's real-time latency, one request's images one after another on one GPU slot), and a
#: drawn ``n`` of 10 at 1792x1024 made one case 46 s, most of a CI gate's property phase. The cases still send
#: every drawn size, quality, style and format, and answers of more than one image (``data`` of 2); golden
#: fixtures send their own ``n``, and the thorough profile keeps every drawn value.
CASE_LIMITS: Mapping[str, Mapping[str, Mapping[str, int]]] = MappingProxyType({
    "quick": MappingProxyType({"createImage": MappingProxyType({"n": 2}),
                               "createImageEdit": MappingProxyType({"n": 2})}),
    "thorough": MappingProxyType({}),
})

#: The profile :func:`activate` loaded in this process (None before).
active: str | None = None


def schemathesis_config(positive: bool) -> Any:
    """schemathesis's ``Config`` of the property tests of one mode (``positive`` or negative cases) in the active
    profile: positive cases of its :data:`WITHOUT_COVERAGE` operations leave out the coverage phase."""
    import schemathesis  # only the property tests need it (seconds of import)

    slow = sorted(WITHOUT_COVERAGE.get(active or "", frozenset()))
    if not positive or not slow:
        return schemathesis.Config()
    return schemathesis.Config.from_dict({"operations": [{"include-operation-id": slow,
                                                          "phases": {"coverage": {"enabled": False}}}]})


def limited_case(operation_id: str, body: Any) -> Any:
    """The request body of a positive generated case of ``operation_id`` within the active profile's
    :data:`CASE_LIMITS`: a new dict with each limited number field above its most lowered to it; any other
    body (no limits, not a dict) as it is."""
    limits = CASE_LIMITS.get(active or "", {}).get(operation_id)
    if not limits or not isinstance(body, dict):
        return body
    lowered = {name: most for name, most in limits.items() if _above(body.get(name), most)}
    return {**body, **lowered} if lowered else body


def _above(value: Any, most: int) -> bool:
    """Whether ``value`` is a number (a JSON integer may be drawn as 3.0; not a bool) above ``most``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > most


def cache_dir() -> Path:
    """Where Hypothesis keeps its files between runs: ``$XDG_CACHE_HOME`` (else ``~/.cache``)
    ``/gateway-conformance/hypothesis``.

    Not the run's report folder: Hypothesis caches there the characters each codec can encode,
    which takes seconds to compute (a loop over every code point) and would be redone by every run.
    Nothing in it changes a run's cases: the profiles are derandomised and keep no example database.
    When that folder cannot be made (a read-only home), one under the system's temporary folder.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    for folder in (Path(base) / "gateway-conformance" / "hypothesis",
                   Path(tempfile.gettempdir()) / "gateway-conformance-hypothesis"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        return folder
    return folder  # neither could be made: Hypothesis then recomputes its caches


def activate(name: str, storage: Path) -> None:
    """Register the suite's profiles, load ``name``, and keep Hypothesis's files under ``storage``.

    Raises KeyError for an unknown profile name.
    """
    configuration.set_hypothesis_home_dir(str(storage))
    for profile, examples in PROFILES.items():
        settings.register_profile(
            profile,
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: a report needs the failure, not the minimum
            suppress_health_check=list(HealthCheck),
        )
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    settings.load_profile(name)
    global active
    active = name

