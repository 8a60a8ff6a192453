"""Hypothesis keeps its caches in one folder across runs, not in each run's report folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

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
