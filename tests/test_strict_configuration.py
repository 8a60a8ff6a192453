"""Strict configuration and the CLIs' faces (issue 17): every operationId, fault kind, tier and scope
of a configuration file is checked at start-up (exit 2, the bad key's path and the allowed values);
``--log-level`` takes only known levels; both CLIs have ``--version``; ``--help`` reads as help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance import cli as conformance_cli
from mock_server import cli as mock_cli
from mock_server.config import DEFAULT_CONFIG_FILE, FAULT_KINDS, load_config
from spec import project_version

BAD = [
    ("faults: {operations: {createChatCompletions: {'503': 0.1}}}",
     "faults.operations.createChatCompletions: not an operationId; allowed: countMessageTokens, createChatCompletion"),
    ("faults: {operations: {createChatCompletion: {'504': 0.1}}}",
     f"faults.operations.createChatCompletion.504: not a fault kind; allowed: {', '.join(FAULT_KINDS)}"),
    ("latency: {operations: {createImages: {first: 1}}}", "latency.operations.createImages: not an operationId"),
    ("keys: [{key: k, tier: gold}]", "keys[0].tier: 'gold' is not one of ['premium', 'standard']"),
    ("keys: [{key: k, scopes: [createChatCompletion, createSpeach]}]",
     "keys[0].scopes[1]: 'createSpeach' is not an operationId; allowed: *, countMessageTokens"),
    ("unknown_models: {serve: true, as: {createImages: gpt-image-1}}",
     "unknown_models.as.createImages: not an operation that names a model; allowed: countMessageTokens"),
    ("latensy: {enabled: false}", "(top level): Additional properties are not allowed ('latensy' was unexpected); "
                                  "allowed keys: seed,"),
    ("rate_limits: {rpn: 3}", "rate_limits: Additional properties are not allowed ('rpn' was unexpected); "
                              "allowed keys: enabled, rpm, tpm"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[message.split(":")[0] for _, message in BAD])
def test_a_bad_name_exits_2_naming_its_path_and_the_allowed_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    path = tmp_path / "mock.yaml"
    path.write_text(text + "\n")
    assert mock_cli.main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_good_names_load(tmp_path: Path) -> None:
    path = tmp_path / "mock.yaml"
    path.write_text("keys: [{key: k, tier: standard, scopes: ['*']}, {key: j, scopes: [countMessageTokens]}]\n"
                    "faults: {operations: {retrieveModel: {'500': 0.5, cut_stream: 0}}}\n"
                    "latency: {operations: {countMessageTokens: {first: 0.1}}}\n")
    config = load_config(path)
    assert config.keys[0].tier == "standard" and config.faults.operations["retrieveModel"]["500"] == 0.5
    load_config(DEFAULT_CONFIG_FILE)  # the shipped defaults are valid


def test_log_level_takes_only_known_levels(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        mock_cli.main(["serve", "--log-level", "loud"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'loud'" in err and "'warning'" in err and "Traceback" not in err


@pytest.mark.parametrize("program", ["mock_server", "conformance"])
def test_version_and_help_read_as_a_tool(program: str) -> None:
    version = subprocess.run([sys.executable, "-m", program, "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    # "<prog> <version>", and for the mock which modules ran compiled (mock_server/compiled.py)
    assert version.split()[1] == project_version() and project_version() != "unknown"
    help_text = subprocess.run([sys.executable, "-m", program, "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert "``" not in help_text and ":class:" not in help_text and ":func:" not in help_text
    assert "Exit codes" in help_text and "--version" in help_text
    assert "\n  " in help_text.split("positional arguments")[0]  # the examples keep their indentation


def test_parsers_have_plain_descriptions() -> None:
    for parser in (mock_cli.build_parser(), conformance_cli.build_parser()):
        assert parser.description and "``" not in parser.description
