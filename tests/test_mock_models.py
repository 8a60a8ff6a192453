"""The mock's GET /v1/models through the official OpenAI SDK, and the catalogue's ``serves`` families."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from mock_server.catalogue import load_catalogue
from spec import find_operation, response_schema, schema_validator

API = "openai_gateway"


@pytest.fixture(scope="module")
def sdk(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


def test_list_models_is_the_catalogue_in_the_openai_shape(sdk: openai.OpenAI) -> None:
    raw = sdk.models.with_raw_response.list()
    body = raw.http_response.json()
    schema = response_schema(find_operation(API, "listModels"), 200)
    assert schema is not None
    schema_validator(API, schema).validate(body)
    assert body["object"] == "list"
    catalogue = load_catalogue()
    models = list(raw.parse())
    assert [model.id for model in models] == list(catalogue)
    for model in models:
        assert model.object == "model" and model.owned_by == catalogue[model.id].provider
    ids = {model.id for model in models}
    assert {"gpt-image-1", "dall-e-3", "tts-1", "whisper-1", "gpt-4o-mini"} <= ids


def test_list_models_needs_a_key(mock_url: str) -> None:
    response = httpx.get(f"{mock_url}/v1/models", timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("model", ["whisper-1", "dall-e-3", "tts-1"])
def test_chat_rejects_a_media_model(sdk: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}])
    assert caught.value.body["param"] == "model"
    assert caught.value.body["code"] == "model_not_supported"


def test_catalogue_serves_defaults_to_chat_and_rejects_unknown_families(tmp_path: Path) -> None:
    catalogue = tmp_path / "models.yaml"
    catalogue.write_text("models:\n  - {id: a, provider: p, input: [text], output: [text]}\n"
                         "  - {id: b, provider: p, input: [audio], output: [text], serves: [transcription]}\n")
    models = load_catalogue(catalogue)
    assert models["a"].serves == {"chat"} and models["b"].serves == {"transcription"}
    catalogue.write_text("models:\n  - {id: c, provider: p, input: [text], output: [text], serves: [dancing]}\n")
    with pytest.raises(ValueError, match="dancing"):
        load_catalogue(catalogue)
