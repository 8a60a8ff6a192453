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
def test_quick_leaves_out_the_boundary_cases_of_seconds_long_answers_only(profile: str, tmp_path: Path) -> None:
    profiles.activate(profile, tmp_path)
    try:
        import schemathesis

        from spec import load_api

        def coverage(api: str, positive: bool) -> dict[str, bool]:
            schema = schemathesis.openapi.from_dict(load_api(api), config=profiles.schemathesis_config(positive))
            return {op.definition.raw["operationId"]: schema.config.phases_for(operation=op).coverage.enabled
                    for op in (result.ok() for result in schema.get_all_operations())}

        positive, negative = coverage("openai_gateway", True), coverage("openai_gateway", False)
        slow = {"createImage", "createImageEdit"} if profile == "quick" else set()
        assert {op for op, enabled in positive.items() if not enabled} == slow
        assert all(negative.values()) and len(negative) > 5
        assert coverage("credits_api", True)["createMultimodalImage"] == (profile != "quick")
    finally:
        profiles.activate("quick", tmp_path)
