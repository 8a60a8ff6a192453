"""Hypothesis keeps its caches in one folder across runs, not in each run's report folder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from conformance import profiles


def test_the_cache_folder_is_under_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = profiles.cache_dir()
    assert folder == tmp_path / "gateway-conformance" / "hypothesis" and folder.is_dir()
    assert profiles.cache_dir() == folder  # the same folder for every run


def test_an_unusable_cache_home_falls_back_to_the_temporary_folder(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    folder = profiles.cache_dir()
    assert folder == Path(tempfile.gettempdir()) / "gateway-conformance-hypothesis" and folder.is_dir()


@pytest.mark.parametrize("profile", ["quick", "thorough"])
def test_quick_leaves_out_the_boundary_cases_of_gpu_bound_answers_only(profile: str, tmp_path: Path) -> None:
    profiles.activate(profile, tmp_path)
    try:
        import schemathesis

        from spec import api_names, load_api

        def coverage(api: str, positive: bool) -> dict[str, bool]:
            schema = schemathesis.openapi.from_dict(load_api(api), config=profiles.schemathesis_config(positive))
            return {op.definition.raw["operationId"]: schema.config.phases_for(operation=op).coverage.enabled
                    for op in (result.ok() for result in schema.get_all_operations())}

        for api in api_names():
            positive, negative = coverage(api, True), coverage(api, False)
            slow = {op for op in positive if op in profiles.GPU_BOUND} if profile == "quick" else set()
            assert {op for op, enabled in positive.items() if not enabled} == slow, api
            assert all(negative.values()) and negative, api  # negative cases keep every boundary case
        assert {"createImage", "createChatCompletion", "createSpeech"} <= set(coverage("openai_gateway", True))
        assert coverage("multi_protocol", True)["countMessageTokens"]  # no GPU time: boundary cases kept
        assert coverage("credits_api", True)["createMultimodalImage"] == (profile != "quick")
    finally:
        profiles.activate("quick", tmp_path)


def test_the_gpu_bound_operations_are_those_the_mocks_latency_model_times() -> None:
    """The quick profile's list of operations answered with GPU time is the one the mock's shipped configuration
    gives a latency model of its own (``latency.operations``), and names operations the specs have."""
    import yaml

    from mock_server.config import DEFAULT_CONFIG_FILE
    from spec import api_names, load_api

    timed = set(yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())["latency"]["operations"])
    assert timed == profiles.GPU_BOUND
    known = {operation.get("operationId") for api in api_names()
             for item in load_api(api)["paths"].values() for operation in item.values() if isinstance(operation, dict)}
    assert known >= profiles.GPU_BOUND


@pytest.fixture
def suite_markers(pytestconfig: pytest.Config) -> None:
    """The suite's markers (``conformance/plugin.py``), which its property module applies as it is imported."""
    for name in ("api", "check", "capability"):
        pytestconfig.addinivalue_line("markers", f"{name}: the suite's")


def _drawn(profile: str, operation_id: str, mode: str, storage: Path) -> list[Any]:
    """The ``n`` of 60 cases of ``operation_id`` (openai_gateway) drawn as the property tests draw them in ``mode``."""
    profiles.activate(profile, storage)
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    from conformance.suite import test_properties

    generation = GenerationMode(mode)
    schema = test_properties._schema("openai_gateway", generation)
    operation = next(result.ok() for result in schema.get_all_operations()
                     if result.ok().definition.raw.get("operationId") == operation_id)
    seen: list[Any] = []

    @settings(max_examples=60, derandomize=True, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate])
    @given(operation.as_strategy(generation_mode=generation))
    def draw(case: Any) -> None:
        seen.append(case.body.get("n") if isinstance(case.body, dict) else None)

    draw()
    return seen


@pytest.mark.parametrize("operation_id", ["createImage", "createImageEdit"])
@pytest.mark.usefixtures("suite_markers")
def test_quick_asks_for_at_most_two_images_in_a_positive_case(operation_id: str, tmp_path: Path) -> None:
    try:
        quick = [n for n in _drawn("quick", operation_id, "positive", tmp_path) if n is not None]
        assert quick and max(quick) == 2 and 1 in quick  # one and several images are still asked for
        thorough = [n for n in _drawn("thorough", operation_id, "positive", tmp_path) if n is not None]
        assert max(thorough) > 2  # the thorough profile keeps every drawn value
        negative = _drawn("quick", operation_id, "negative", tmp_path)
        assert any(not isinstance(n, int) or n > 10 or n < 1 for n in negative if n is not None)  # invalid kept
    finally:
        profiles.activate("quick", tmp_path)


def test_a_limited_case_keeps_what_it_does_not_limit(tmp_path: Path) -> None:
    profiles.activate("quick", tmp_path)
    body = {"prompt": "x", "n": 7.0, "size": "1792x1024"}
    assert profiles.limited_case("createImage", body) == {"prompt": "x", "n": 2, "size": "1792x1024"}
    assert profiles.limited_case("createImage", {"n": True}) == {"n": True}  # not a number: as drawn
    assert profiles.limited_case("createChatCompletion", {"n": 7}) == {"n": 7}  # not limited
    assert profiles.limited_case("createImage", "raw") == "raw"
