"""The key scenarios through the official ``openai`` SDK, to prove SDK compatibility (001, 002)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from conformance.budget import RunState, call_cost
from conformance.checks import REGISTRY
from conformance.checks.sdk import run_sdk
from conformance.target import Target

API = "openai_gateway"


@pytest.fixture(scope="module")
def sdk(target: Target, run_state: RunState) -> Iterator[openai.OpenAI]:
    """The SDK pointed at the target with only base_url and api_key (no retries: a failure is a finding);
    each of its requests counts against the run's budgets and pacing first."""
    def reserve(request: Any) -> None:
        run_state.reserve(call_cost(request.method, request.url.path, None))

    with openai.DefaultHttpxClient(event_hooks={"request": [reserve]}) as http, openai.OpenAI(
            base_url=f"{target.base_url}/v1", api_key=target.api_key, max_retries=0, timeout=target.timeout_s,
            http_client=http) as client:
        yield client


@pytest.mark.api(API, operation="createChatCompletion")
@pytest.mark.check("sdk_chat_completion")
def test_sdk_chat(sdk: openai.OpenAI, target: Target) -> None:
    completion = run_sdk("sdk_chat_completion", target.base_url, lambda: sdk.chat.completions.create(
        model=target.model("chat"), messages=[{"role": "user", "content": "Say hello."}]))
    REGISTRY["sdk_chat_completion"](completion, target.base_url)


@pytest.mark.api(API, operation="createChatCompletion")
@pytest.mark.check("sdk_chat_stream")
def test_sdk_chat_stream(sdk: openai.OpenAI, target: Target) -> None:
    chunks = run_sdk("sdk_chat_stream", target.base_url, lambda: list(sdk.chat.completions.create(
        model=target.model("chat"), messages=[{"role": "user", "content": "Say hello."}], stream=True,
        stream_options={"include_usage": True})))
    REGISTRY["sdk_chat_stream"](chunks, target.base_url)


@pytest.mark.api(API, operation="createImage")
@pytest.mark.check("sdk_images_generate")
def test_sdk_images(sdk: openai.OpenAI, target: Target) -> None:
    result = run_sdk("sdk_images_generate", target.base_url, lambda: sdk.images.generate(
        model=target.model("image_generation"), prompt="A logo for a coffee app", response_format="b64_json"))
    REGISTRY["sdk_images_generate"](result, target.base_url)


@pytest.mark.api(API, operation="listModels")
@pytest.mark.check("sdk_models_list")
def test_sdk_models(sdk: openai.OpenAI, target: Target) -> None:
    models = run_sdk("sdk_models_list", target.base_url, lambda: list(sdk.models.list()))
    REGISTRY["sdk_models_list"](models, target.base_url)


@pytest.mark.api(API, operation="retrieveModel")
@pytest.mark.check("sdk_models_retrieve")
def test_sdk_models_retrieve(sdk: openai.OpenAI, target: Target) -> None:
    wanted = target.model("chat")
    model = run_sdk("sdk_models_retrieve", target.base_url, lambda: sdk.models.retrieve(wanted))
    REGISTRY["sdk_models_retrieve"](model, wanted, target.base_url)
