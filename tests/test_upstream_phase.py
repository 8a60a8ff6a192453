"""The upstream phase can pass and can fail: suite -> gateway -> our mock as the gateway's upstream.

A correct pass-through gateway (``tests/gateway_under_test.py``) passes every upstream check; each
broken variant, breaking one rule, is caught by its own named check and by no unrelated one (the
checks a variant may also fail are the ones that judge the same rule from another side, listed
with it). Each case runs the real ``conformance run --phases upstream`` CLI in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.embedded import serve
from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.config import ControlConfig, KeyConfig
from tests.gateway_under_test import BROKEN, CLIENT_KEY, gateway_app

CONTROL_KEY = "ctl-upstream"
#: The gateway's model ids for each capability the upstream phase uses (MODEL_MAP's keys).
GATEWAY_MODELS = {"chat": "acme-chat", "video_input": "acme-vision", "messages": "acme-claude",
                  "responses": "acme-vision", "image_generation": "acme-image", "speech": "acme-tts"}
UPSTREAM_MODELS = {"acme-chat": "gpt-4o-mini", "acme-vision": "openai/gpt-5-mini",
                   "acme-claude": "anthropic/claude-sonnet-4.6", "acme-image": "gpt-image-1", "acme-tts": "tts-1"}

_ERRORS = {"upstream_error_translated", "upstream_failure_not_200"}
#: Broken variant -> (the check that must catch it, other checks it may also fail: the same rule seen
#: from another side).
CAUGHT_BY: Mapping[str, tuple[str, frozenset[str]]] = {
    "keeps_developer_role": ("upstream_developer_role_as_system", frozenset()),
    "conflicting_max_tokens": ("upstream_max_tokens_aligned", frozenset()),
    "rewrites_prompt": ("upstream_prompt_unrewritten", frozenset()),
    "rewrites_image_prompt": ("upstream_image_prompt_unrewritten", frozenset()),
    "wrong_model": ("upstream_model_routed", frozenset()),
    "mangles_image_data_url": ("upstream_image_parts_intact", frozenset()),
    "wraps_audio_base64": ("upstream_audio_part_intact", frozenset()),
    "drops_video_frames": ("upstream_video_parts_intact", frozenset()),
    "messages_max_tokens_floor": ("upstream_bridged_request_kept", frozenset()),
    # a failure turned into a success is also a failure mistranslated, and loses its Retry-After
    "errors_as_200": ("upstream_failure_not_200", frozenset({"upstream_error_translated", "upstream_retry_after_kept",
                                                             "upstream_retry_attempts"})),
    "wrong_error_type": ("upstream_error_translated", frozenset()),
    "drops_retry_after": ("upstream_retry_after_kept", frozenset()),
    "hides_safety_reason": ("upstream_safety_reason_kept", frozenset()),
    "passes_malformed": ("upstream_malformed_answer_handled", frozenset()),
    "completes_cut_stream": ("upstream_cut_stream_reported", frozenset()),
    # a buffered stream's first event waits for its last
    "buffers_stream": ("upstream_stream_not_buffered", frozenset({"upstream_first_byte_overhead"})),
    "changes_usage": ("upstream_usage_kept", frozenset()),
    "reencodes_image": ("upstream_media_intact", frozenset()),
    # images and videos are both re-hosted
    "breaks_rehosted_url": ("upstream_media_url_downloads", frozenset({"upstream_video_delivered"})),
    "truncates_audio": ("upstream_media_intact", frozenset()),
    "double_charges": ("upstream_single_charge", frozenset()),
    "image_errors_unwrapped": ("upstream_error_translated", frozenset()),
    "fills_own_defaults": ("upstream_defaults_kept", frozenset()),
    "invents_revised_prompt": ("upstream_revised_prompt_from_provider", frozenset()),
}


def upstream_mock() -> Any:
    """The mock as a gateway's upstream: control API on, the development key with credits for the run."""
    return create_app(MockConfig(keys=(KeyConfig(DEV_API_KEY, credits=10_000_000),),
                                 control=ControlConfig(enabled=True, key=CONTROL_KEY)))


@pytest.fixture
def upstream_url() -> Iterator[str]:
    """A fresh upstream per run, so that one run's calls count against no other's per-minute limits
    (the credits API's image-to-video allows 2 a minute, 004)."""
    with serve(upstream_mock()) as url:
        yield url


def target_file(directory: Path, gateway_url: str, upstream_url: str, **extra: object) -> Path:
    """A complete target file for the gateway under test, with its upstream section (README example), and
    ``extra`` keys."""
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump({
        "name": "gateway-under-test", "base_url": gateway_url, "api_key": CLIENT_KEY,
        "apis": ["openai_gateway", "multi_protocol", "credits_api"], "models": GATEWAY_MODELS, "timeout_s": 20,
        "upstream": {"control_url": upstream_url, "control_key": CONTROL_KEY, "models": UPSTREAM_MODELS},
        **extra,
    }))
    return path


def run_upstream_phase(target: Path, reports: Path) -> tuple[int, dict[str, Any], str]:
    """``conformance run --phases upstream``: (exit code, report.json, output)."""
    command = [sys.executable, "-m", "conformance", "run", "--target", str(target), "--phases", "upstream",
               "--reports", str(reports), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads((reports / "gateway-under-test" / "latest" / "report.json").read_text())
    return done.returncode, report, done.stdout + done.stderr


def _failed(report: dict[str, Any]) -> set[str]:
    return {row["check"] for row in report["checks"] if row["outcome"] == "failed"}


def test_correct_gateway_passes_every_upstream_check(upstream_url: str, tmp_path: Path) -> None:
    with serve(gateway_app(upstream_url, DEV_API_KEY)) as gateway_url:
        code, report, output = run_upstream_phase(target_file(tmp_path, gateway_url, upstream_url), tmp_path)
    assert code == 0, output
    rows = report["checks"]
    assert {row["outcome"] for row in rows} == {"passed"}, [r["id"] for r in rows if r["outcome"] != "passed"]
    assert {row["check"] for row in rows} >= {caught for caught, _ in CAUGHT_BY.values()}
    assert all(row["phase"] == "upstream" and row["upstream"]["arrived"] for row in rows)
    measured = {key: value for row in rows for key, value in row["upstream"]["measured"].items()}
    assert measured["upstream_attempts"] == 3  # the gateway retries a 503 twice, then succeeds
    assert measured["first_byte_overhead_ms"] < 1000
    assert measured["client_video_s"] == pytest.approx(measured["upstream_video_s"], abs=0.2)  # 004: wan22, 5 s
    assert measured["client_audio_s"] == pytest.approx(measured["upstream_audio_s"], abs=0.1)
    # 002 "Safety": both sides of revised_prompt were seen, one the provider sent (dall-e-3) and none
    revised = {row["id"].split("[")[1].split("-")[0]: row["upstream"]["measured"]["revised_prompts"]
               for row in rows if row["check"] == "upstream_revised_prompt_from_provider"}
    assert revised["image_revised"]["upstream"][0] and revised["image_b64"]["upstream"] == [None]
    assert {row["id"].split("[")[1].split("-")[0] for row in rows if row["check"] == "upstream_defaults_kept"} == {
        "credits_charge", "cogvideox_defaults"}  # 004: TTS voice, CogVideoX guidance_scale and steps left out
    assert {row["id"].split("[")[1].split("-")[0] for row in rows if row["check"] == "upstream_error_translated"} >= {
        "image_error_500", "image_error_502", "image_error_503"}
    markdown = (tmp_path / "gateway-under-test" / "latest" / "report.md").read_text()
    assert "## Upstream view" in markdown and "first_byte_overhead_ms" in markdown


def test_every_broken_variant_has_a_check() -> None:
    assert set(CAUGHT_BY) == set(BROKEN)


@pytest.mark.parametrize("variant", sorted(CAUGHT_BY))
def test_broken_gateway_is_caught_by_its_check(variant: str, upstream_url: str, tmp_path: Path) -> None:
    check, related = CAUGHT_BY[variant]
    # one check at a time: the correct gateway's run above covers the concurrent one, and here workers would
    # only add their start-up (about 3 s of each of these runs' 8)
    with serve(gateway_app(upstream_url, DEV_API_KEY, breaks=variant)) as gateway_url:
        code, report, output = run_upstream_phase(target_file(tmp_path, gateway_url, upstream_url, concurrency=1),
                                                  tmp_path)
    assert code == 1, output
    failed = _failed(report)
    assert check in failed, f"{variant}: failed checks were {sorted(failed)}"
    assert failed <= {check, *related}, f"{variant}: unrelated checks failed too: {sorted(failed - {check, *related})}"
    row = next(row for row in report["checks"] if row["check"] == check and row["failure"])
    assert row["failure"]["expected"] and row["failure"]["received"]
    assert "upstream" in row["failure"]["evidence"]


def test_upstream_phase_needs_an_upstream_section(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump({"base_url": "http://127.0.0.1:9", "api_key": "k"}))
    done = subprocess.run([sys.executable, "-m", "conformance", "run", "--target", str(path), "--phases", "upstream",
                           "--reports", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "upstream section" in done.stderr
