"""The suite's test modules, run by ``conformance run`` against one target (see conformance.plugin)."""

from __future__ import annotations


def generated_test_names(api: str) -> list[str]:
    """The names of ``test_properties``' two generated tests of API ``api`` (a spec name, as in
    ``spec.api_names``): ``[test_positive_cases_<api>, test_negative_cases_<api>]``. The module defines them
    by these names and the CLI selects them by node id (``cli._generated``)."""
    return [f"test_{mode}_cases_{api}" for mode in ("positive", "negative")]
