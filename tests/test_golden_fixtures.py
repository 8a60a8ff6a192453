"""The golden fixtures (``fixtures/``) as data: complete, cited, valid, and judged by ``conformance.golden``.

Every operation of the three specs has a fixture that expects success; every request example the
specs carry (each one a seed document's own example) is reproduced by a fixture; a fixture that
expects success sends a body valid against the spec. The fixture engine's additions are proved
here too: ``format`` lists (004 "Image Generation": "jpg or png") and ``${last:...}`` placeholders.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance import media
from conformance.failures import CheckFailure
from conformance.golden import GoldenCase, forget, load_cases, remember, render, verify
from conformance.http import Exchange
from conformance.target import Target
from spec import api_names, find_operation, operations, request_body_schema, schema_validator
from spec.vocabulary import SEED_DOCUMENTS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = load_cases(FIXTURES)
TARGET = Target(name="fixtures", base_url="http://127.0.0.1:9", api_key="sk-test")
#: Strings of the specs' examples that stand for data the document leaves out (a fixture sends real data).
PLACEHOLDER = re.compile(r"BASE64_AUDIO_DATA|\.\.\.$")


def _succeeds(case: GoldenCase) -> bool:
    return 200 <= int(case.expect.get("status", 200)) < 300


def test_fixtures_cite_a_seed_and_name_a_capability() -> None:
    assert len(CASES) >= 90
    for case in CASES:
        assert case.source.split(" ", 1)[0] in SEED_DOCUMENTS, case.id
        assert re.fullmatch(r"[a-z_]+(\.[a-z0-9_]+)*", case.capability), case.id


@pytest.mark.parametrize("api", api_names())
def test_every_operation_has_a_success_fixture_and_every_api_error_fixtures(api: str) -> None:
    ops = {op.operation_id for op in operations(api)}
    succeeding = {case.operation.operation_id for case in CASES if case.operation.api == api and _succeeds(case)}
    assert ops - succeeding == set(), f"{api}: operations without a fixture expecting success"
    failing = [case for case in CASES if case.operation.api == api and not _succeeds(case)]
    assert len({case.operation.operation_id for case in failing}) >= 3, f"{api}: error fixtures"


@pytest.mark.parametrize("case", [case for case in CASES if _succeeds(case) and "json" in case.request],
                         ids=lambda case: case.id)
def test_success_fixtures_send_a_body_the_spec_accepts(case: GoldenCase) -> None:
    schema = request_body_schema(case.operation)
    assert schema is not None, case.id
    errors = sorted(schema_validator(case.operation.api, schema).iter_errors(render(case.request["json"], TARGET)),
                    key=str)
    assert not errors, f"{case.id}: {errors[0].message}"


def _reproduces(sent: Any, example: Any) -> bool:
    """Whether a fixture's rendered request value is the example's (placeholder strings match any string)."""
    if isinstance(example, str) and PLACEHOLDER.search(example):
        return isinstance(sent, str)
    if isinstance(example, dict):
        return isinstance(sent, dict) and sent.keys() == example.keys() and all(
            _reproduces(sent[key], value) for key, value in example.items())
    if isinstance(example, list):
        return isinstance(sent, list) and len(sent) == len(example) and all(map(_reproduces, sent, example))
    return bool(sent == example)


def _examples() -> list[tuple[str, str, str, str, Any]]:
    """(api, operationId, where, name, value) of every request body and parameter example of the specs."""
    found = []
    for api in api_names():
        for op in operations(api):
            content = op.spec.get("requestBody", {}).get("content", {}).get("application/json", {})
            for name, example in content.get("examples", {}).items():
                found.append((api, op.operation_id, "json", name, example["value"]))
            for parameter in op.spec.get("parameters", []):
                for name, example in parameter.get("examples", {}).items():
                    found.append((api, op.operation_id, parameter["in"], name, {parameter["name"]: example["value"]}))
    return found


EXAMPLES = _examples()


@pytest.mark.parametrize(("api", "operation_id", "where", "name", "value"), EXAMPLES,
                         ids=[f"{api}/{operation_id}/{name}" for api, operation_id, _, name, _ in EXAMPLES])
def test_every_spec_example_is_reproduced_by_a_fixture(api: str, operation_id: str, where: str, name: str,
                                                       value: Any) -> None:
    key = "json" if where == "json" else where
    sent = [render(case.request.get(key), TARGET) for case in CASES
            if case.operation.api == api and case.operation.operation_id == operation_id]
    if where == "json":
        assert any(_reproduces(body, value) for body in sent), f"no fixture sends example {name!r}"
    else:
        assert any(isinstance(params, dict) and params.items() >= value.items() for params in sent), name


def _case(operation_id: str, expect: dict[str, Any]) -> GoldenCase:
    return GoldenCase(id=f"credits_api/{operation_id}/t", operation=find_operation("credits_api", operation_id),
                      capability="credits.test", source="004_1e36542453c15fdd.txt test", request={}, expect=expect)


def _exchange(status: int, body: Any) -> Exchange:
    return Exchange("POST", "http://127.0.0.1:9/x", None, status, {"content-type": "application/json"},
                    json.dumps(body).encode())


def test_media_format_may_list_alternatives() -> None:
    png = base64.b64encode(media.png(64, 32, (1, 2, 3, 255))).decode()
    answer = _exchange(200, {"image_base64": png})
    accepting = _case("createMultimodalImage", {"schema": False, "media": [
        {"path": "$.image_base64", "format": ["JPEG", "PNG"], "size": [64, 32]}]})
    verify(accepting, answer)
    refusing = _case("createMultimodalImage", {"schema": False, "media": [
        {"path": "$.image_base64", "format": ["JPEG", "WEBP"]}]})
    with pytest.raises(CheckFailure, match="JPEG or WEBP"):
        verify(refusing, answer)


def test_last_placeholder_names_an_earlier_answers_field() -> None:
    forget()
    with pytest.raises(ValueError, match="no earlier"):
        render("${last:createMultimodalTts.usage_id}", TARGET)
    tts = _case("createMultimodalTts", {"schema": False})
    remember(tts, _exchange(200, {"usage_id": "usage_1", "credits_used": 14}))
    remember(_case("createTextToVideo", {}), _exchange(200, {"usage_id": "usage_2"}))
    remember(tts, _exchange(404, {"usage_id": "usage_3"}))  # only 2xx answers are remembered
    assert render({"usage_id": "${last:createMultimodalTts.usage_id}"}, TARGET) == {"usage_id": "usage_1"}
    assert render("/u/${last:usage_id}/${last:credits_used}", TARGET) == "/u/usage_2/14"
    forget()


def test_expect_checks_run_registered_checks_and_name_them(tmp_path: Path) -> None:
    """``expect.checks`` runs each named check on the answer (its failure reported under its own name);
    a fixture naming no registered check is refused when loaded."""
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}$"}},
              "required": ["code"], "additionalProperties": False}
    sent = {"model": "m", "messages": [], "response_format": {"type": "json_schema",
                                                              "json_schema": {"name": "c", "schema": schema}}}
    case = GoldenCase(id="openai_gateway/createChatCompletion/t", capability="chat.structured_output",
                      operation=find_operation("openai_gateway", "createChatCompletion"), source="001 t",
                      request={"json": sent}, expect={"schema": False, "checks": ["structured_output_honours_schema"]})

    def answer(content: str) -> Exchange:
        message = {"role": "assistant", "content": content}
        body = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        return Exchange("POST", "http://127.0.0.1:9/v1/chat/completions", sent, 200,
                        {"content-type": "application/json"}, json.dumps(body).encode())

    verify(case, answer('{"code": "FR"}'))
    with pytest.raises(CheckFailure) as failure:
        verify(case, answer('{"code": "fr"}'))
    assert failure.value.check == "structured_output_honours_schema" and "pattern" in failure.value.expected
    folder = tmp_path / "openai_gateway" / "createChatCompletion"
    folder.mkdir(parents=True)
    (folder / "bad.yaml").write_text(yaml.safe_dump({
        "capability": "chat.structured_output", "source": {"document": "001", "section": "x"},
        "request": {"json": sent}, "expect": {"checks": ["no_such_check"]}}))
    with pytest.raises(ValueError, match="no_such_check"):
        load_cases(tmp_path)
