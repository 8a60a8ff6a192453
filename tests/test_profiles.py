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
