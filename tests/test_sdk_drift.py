"""No drift from the official SDKs (issue 17): every field the installed ``openai`` and ``anthropic``
SDKs can send for a documented operation is in spec/, and every Literal value they allow is
accepted, or the difference is listed with its reason in ``tests/sdk_drift_accepted.yaml``.

When the SDKs move (a new field, a new enum value), :func:`test_no_unlisted_drift` fails naming it:
add it to the spec, or list it with the reason the documents narrow it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Required, TypedDict

import pytest
from anthropic.types import message_count_tokens_params, message_create_params
from openai.types import image_edit_params, image_generate_params
from openai.types.audio import speech_create_params, transcription_create_params, translation_create_params
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params
from starlette.testclient import TestClient

from mock_server import create_app
from spec import api_names, load_yaml, operations
from tests.sdk_drift import drift, sdk_fields

ACCEPTED = load_yaml((Path(__file__).parent / "sdk_drift_accepted.yaml").read_text(encoding="utf-8"))

#: (api, operationId) -> the SDK's request parameters (streaming and not, where the SDK splits them).
SDK_PARAMS: dict[tuple[str, str], Any] = {
    ("openai_gateway", "createChatCompletion"): completion_create_params.CompletionCreateParamsNonStreaming
    | completion_create_params.CompletionCreateParamsStreaming,
    ("multi_protocol", "createChatCompletion"): completion_create_params.CompletionCreateParamsNonStreaming
    | completion_create_params.CompletionCreateParamsStreaming,
    ("multi_protocol", "createResponse"): response_create_params.ResponseCreateParamsNonStreaming
    | response_create_params.ResponseCreateParamsStreaming,
    ("openai_gateway", "createImage"): image_generate_params.ImageGenerateParamsNonStreaming
    | image_generate_params.ImageGenerateParamsStreaming,
    ("openai_gateway", "createImageEdit"): image_edit_params.ImageEditParamsNonStreaming
    | image_edit_params.ImageEditParamsStreaming,
    ("openai_gateway", "createSpeech"): speech_create_params.SpeechCreateParams,
    ("openai_gateway", "createTranscription"): transcription_create_params.TranscriptionCreateParamsNonStreaming
    | transcription_create_params.TranscriptionCreateParamsStreaming,
    ("openai_gateway", "createTranslation"): translation_create_params.TranslationCreateParams,
    ("multi_protocol", "createMessage"): message_create_params.MessageCreateParamsNonStreaming
    | message_create_params.MessageCreateParamsStreaming,
    ("multi_protocol", "countMessageTokens"): message_count_tokens_params.MessageCountTokensParams,
}
#: Documented operations with a request body and no official SDK: the credits API (004 shows plain
#: curl and requests calls).
NO_SDK = {"credits_api"}


def test_every_documented_operation_with_a_body_is_compared() -> None:
    with_body = {(api, op.operation_id) for api in api_names() if api not in NO_SDK for op in operations(api)
                 if "requestBody" in op.spec}
    assert with_body == set(SDK_PARAMS)


@pytest.mark.parametrize(("api", "operation_id"), sorted(SDK_PARAMS), ids=[f"{a}.{o}" for a, o in sorted(SDK_PARAMS)])
def test_no_unlisted_drift(api: str, operation_id: str) -> None:
    found = drift(api, operation_id, SDK_PARAMS[(api, operation_id)])
    listed_fields = set(ACCEPTED["fields"].get(operation_id, {}))
    listed_values = {path: set(entry["values"]) for path, entry in ACCEPTED["values"].get(operation_id, {}).items()}
    assert sorted(found.fields - listed_fields) == [], "SDK fields spec/ lacks: add them or list them with a reason"
    unlisted = {path: sorted(values - listed_values.get(path, set())) for path, values in found.values.items()}
    assert {path: v for path, v in unlisted.items() if v} == {}, "SDK enum values spec/ refuses: accept or list them"
    assert sorted(listed_fields - found.fields) == [], "listed fields that are no longer a difference: drop them"
    stale = {path: sorted(values - found.values.get(path, set())) for path, values in listed_values.items()}
    assert {path: v for path, v in stale.items() if v} == {}, "listed values no longer a difference: drop them"


def test_every_accepted_difference_has_a_reason() -> None:
    for operation_id, fields in ACCEPTED["fields"].items():
        assert all(isinstance(reason, str) and len(reason) > 20 for reason in fields.values()), operation_id
    for operation_id, paths in ACCEPTED["values"].items():
        assert all(len(entry["reason"]) > 20 and entry["values"] for entry in paths.values()), operation_id


# ---- the comparison can fail ---------------------------------------------------------------------

class _Reasoning(TypedDict, total=False):
    effort: Literal["none", "turbo"]


class _FutureResponseParams(TypedDict, total=False):
    """An SDK that moved: a new top-level field, a new enum value beside one spec/ now takes."""

    model: Required[str]
    input: Required[str]
    reasoning: _Reasoning
    brand_new_field: bool
    truncation: Literal["auto", "disabled"]


def test_drift_finds_a_new_field_and_a_refused_value() -> None:
    assert sdk_fields(_FutureResponseParams)["reasoning.effort"] == {"none", "turbo"}
    found = drift("multi_protocol", "createResponse", _FutureResponseParams)
    assert found.fields == {"brand_new_field"}
    assert found.values == {"reasoning.effort": {"turbo"}}  # "none" is accepted since issue 17


def test_the_fixed_values_are_answered(client: TestClient) -> None:
    bearer = {"Authorization": "Bearer sk-test"}
    for effort in ("none", "xhigh", "max"):
        response = client.post("/v1/responses", headers=bearer, json={
            "model": "openai/gpt-5-mini", "input": "Hi", "reasoning": {"effort": effort}})
        assert response.status_code == 200, response.text
    chat = client.post("/v1/chat/completions", headers=bearer, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "reasoning_effort": "none"})
    assert chat.status_code == 200
    refused = client.post("/v1/chat/completions", headers=bearer, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "reasoning_effort": "turbo"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "reasoning_effort"
    message = client.post("/v1/messages", headers={"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}, json={
        "model": "anthropic/claude-sonnet-4.6", "max_tokens": 16, "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "Hi"}]})
    assert message.status_code == 200


def test_a_listed_difference_is_refused_naming_the_field() -> None:
    """A value listed as narrowed by the documents is what the mock refuses (the list is not a wish)."""
    with TestClient(create_app()) as client:
        response = client.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-test"}, json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "original"}}]}]})
    assert response.status_code == 400 and "detail" in response.json()["error"]["param"]
