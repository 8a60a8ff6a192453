"""The calls SDK users make besides the documented ones (issue 17): ``models.retrieve``, Anthropic's
``messages.count_tokens``, unknown paths under ``/v1/messages``, and unknown model ids served by a
stand-in when the configuration asks for it (``unknown_models``)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import create_app
from mock_server.config import DEFAULT_STAND_INS as STAND_INS
from mock_server.config import ConfigError, MockConfig, UnknownModelsConfig, load_config
from spec import find_operation, response_schema, schema_validator

MESSAGES = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
CLAUDE = "anthropic/claude-sonnet-4.6"


@pytest.fixture(scope="module")
def oai(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def claude(mock_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model_id", ["gpt-4o-mini", "gpt-4o", "openai/gpt-5-mini", CLAUDE])
def test_sdk_retrieves_a_model_even_with_a_slash_in_its_id(oai: openai.OpenAI, model_id: str) -> None:
    raw = oai.models.with_raw_response.retrieve(model_id)
    schema = response_schema(find_operation("openai_gateway", "retrieveModel"), 200)
    assert schema is not None
    schema_validator("openai_gateway", schema).validate(raw.http_response.json())
    model = raw.parse()
    assert (model.id, model.object) == (model_id, "model")


def test_sdk_retrieve_of_an_unknown_model_is_openais_404(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index, call-overload]


def test_the_readme_models_are_in_the_catalogue(oai: openai.OpenAI) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    ids = {model.id for model in oai.models.list()}
    named = {"gpt-4o-mini", "gpt-4o", "gemini-2.5-flash-image-generation", "gpt-image-1", "dall-e-3", "tts-1",
             "whisper-1", "openai/gpt-5-mini", CLAUDE}
    assert all(name in readme or name == "dall-e-3" for name in named)
    assert named <= ids


def test_count_tokens_matches_the_messages_usage(claude: anthropic.Anthropic) -> None:
    body: dict[str, Any] = {"model": CLAUDE, "system": "Be brief.", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Describe this image"},
                                     {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}
    counted = claude.messages.count_tokens(**body)
    created = claude.messages.create(max_tokens=64, **body)
    assert counted.input_tokens == created.usage.input_tokens > 0


def test_count_tokens_refuses_in_the_messages_envelope(claude: anthropic.Anthropic, mock_url: str) -> None:
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="anthropic/nope", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.count_tokens(model="text-only-mini", messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}])
    assert "messages[0].content[0]" in caught.value.message


@pytest.mark.parametrize(("method", "path", "status"), [("POST", "/v1/messages/batches", 404),
                                                        ("GET", "/v1/messages/count_tokens", 405),
                                                        ("POST", "/v1/messages/count_tokens/x", 404)])
def test_unknown_paths_under_messages_answer_in_its_envelope(client: TestClient, method: str, path: str,
                                                             status: int) -> None:
    response = client.request(method, path, headers=MESSAGES, json={})
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] in ("not_found_error", "invalid_request_error")


# ---- unknown model ids (unknown_models) ------------------------------------------------------------

def test_unknown_models_are_refused_by_default(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                           json={"model": "my-fine-tune", "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "model_not_found"


@pytest.fixture(scope="module")
def lenient_url() -> Iterator[str]:
    with serve(create_app(MockConfig(unknown_models=UnknownModelsConfig(serve=True, stand_ins=STAND_INS)))) as url:
        yield url


def test_unknown_ids_are_served_under_the_id_sent(lenient_url: str) -> None:
    with openai.OpenAI(base_url=f"{lenient_url}/v1", api_key="sk-test", max_retries=0) as client, \
            anthropic.Anthropic(base_url=lenient_url, api_key="sk-test", max_retries=0) as claude_client:
        chat = client.chat.completions.create(model="my-fine-tune", messages=[{"role": "user", "content": "Hi"}])
        assert chat.model == "my-fine-tune" and chat.choices[0].message.content
        chunks = list(client.chat.completions.create(model="my-fine-tune", stream=True,
                                                     messages=[{"role": "user", "content": "Hi"}]))
        assert {chunk.model for chunk in chunks} == {"my-fine-tune"}
        assert client.responses.create(model="acme/reasoner", input="Hi").model == "acme/reasoner"
        assert client.models.retrieve("my-fine-tune").id == "my-fine-tune"
        image = client.images.generate(model="my-image-model", prompt="A cat", response_format="b64_json")
        assert image.data and image.data[0].b64_json
        speech = client.audio.speech.create(model="my-voice", voice="alloy", input="Hello")
        assert speech.read()[:3] == b"ID3" or speech.read()[:2] == b"\xff\xfb"
        message = claude_client.messages.create(model="claude-custom", max_tokens=32,
                                                messages=[{"role": "user", "content": "Hi"}])
        assert message.model == "claude-custom"


def test_a_known_model_still_answers_as_itself_and_kinds_still_matter(lenient_url: str) -> None:
    with openai.OpenAI(base_url=f"{lenient_url}/v1", api_key="sk-test", max_retries=0) as client:
        assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
                                              ).model == "gpt-4o"
        with pytest.raises(openai.BadRequestError) as caught:  # a known media model is still not a chat model
            client.chat.completions.create(model="tts-1", messages=[{"role": "user", "content": "Hi"}])
        assert caught.value.code == "model_not_supported"


def test_the_configuration_file_turns_it_on_and_checks_the_stand_ins(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("unknown_models: {serve: true, as: {createChatCompletion: text-only-mini}}\n")
    config = load_config(good)
    assert config.unknown_models.serve and config.unknown_models.stand_ins["createChatCompletion"] == "text-only-mini"
    assert config.unknown_models.stand_ins["createImage"] == STAND_INS["createImage"]
    app = TestClient(create_app(config))
    response = app.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-test"}, json={
        "model": "mine", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages[0].content[0]"

    unknown_operation = tmp_path / "op.yaml"
    unknown_operation.write_text("unknown_models: {serve: true, as: {createChatCompletions: gpt-4o}}\n")
    with pytest.raises(ConfigError, match="unknown_models"):
        load_config(unknown_operation)
    not_a_chat_model = tmp_path / "kind.yaml"
    not_a_chat_model.write_text(textwrap.dedent("""\
        unknown_models:
          serve: true
          as: {createChatCompletion: tts-1}
        """))
    with pytest.raises(ValueError, match=r"unknown_models\.as\.createChatCompletion: 'tts-1' does not serve chat"):
        create_app(load_config(not_a_chat_model))
