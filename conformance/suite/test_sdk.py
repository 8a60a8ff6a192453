"""The key scenarios through the official ``openai`` and ``anthropic`` SDKs, to prove SDK compatibility
(001, 002; 003 "Messages image input" for the Messages protocol)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from conformance.budget import RunState, call_cost
from conformance.checks import REGISTRY
from conformance.checks.sdk import run_sdk
from conformance.golden import media_file
from conformance.http import Recorder
from conformance.target import Target

if TYPE_CHECKING:  # the fixtures import the SDKs when a test of this module runs (see checks.sdk.run_sdk)
    import anthropic
    import openai

API = "openai_gateway"


@pytest.fixture(scope="module")
def recorder(target: Target) -> Recorder:
    """The SDK's last exchange, the evidence of a failed SDK check."""
    return Recorder(target)


@pytest.fixture(scope="module")
def hooks(recorder: Recorder, run_state: RunState) -> dict[str, list[Any]]:
    """``event_hooks`` for an SDK's httpx client: each request counts against the run's budgets and pacing
    first, and each exchange is recorded (:class:`Recorder`)."""
    def reserve(request: Any) -> None:
        run_state.reserve(call_cost(request.method, request.url.path, None))

    return {**recorder.hooks, "request": [reserve]}


@pytest.fixture(scope="module")
def sdk(target: Target, hooks: dict[str, list[Any]]) -> Iterator[openai.OpenAI]:
    """The SDK pointed at the target with only base_url and api_key (no retries: a failure is a finding);
    its HTTP client is the SDK's default but for the :func:`hooks`."""
    import openai

    http = openai.DefaultHttpxClient(event_hooks=hooks)
    with openai.OpenAI(base_url=f"{target.base_url}/v1", api_key=target.api_key, max_retries=0,
                       timeout=target.timeout_s, http_client=http) as client:
        yield client


@pytest.mark.api(API, operation="createChatCompletion")
@pytest.mark.check("sdk_chat_completion")
def test_sdk_chat(sdk: openai.OpenAI, target: Target, recorder: Recorder) -> None:
    with recorder.attached():  # a failure carries the SDK's last request and answer
        completion = run_sdk("sdk_chat_completion", target.base_url, lambda: sdk.chat.completions.create(
            model=target.model("chat"), messages=[{"role": "user", "content": "Say hello."}]))
        REGISTRY["sdk_chat_completion"](completion, target.base_url)


@pytest.mark.api(API, operation="createChatCompletion")
@pytest.mark.check("sdk_chat_stream")
def test_sdk_chat_stream(sdk: openai.OpenAI, target: Target, recorder: Recorder) -> None:
    with recorder.attached():  # a failure carries the SDK's last request and answer
        chunks = run_sdk("sdk_chat_stream", target.base_url, lambda: list(sdk.chat.completions.create(
            model=target.model("chat"), messages=[{"role": "user", "content": "Say hello."}], stream=True,
            stream_options={"include_usage": True})))
        REGISTRY["sdk_chat_stream"](chunks, target.base_url)


@pytest.mark.api(API, operation="createImage")
@pytest.mark.check("sdk_images_generate")
def test_sdk_images(sdk: openai.OpenAI, target: Target, recorder: Recorder) -> None:
    with recorder.attached():  # a failure carries the SDK's last request and answer
        result = run_sdk("sdk_images_generate", target.base_url, lambda: sdk.images.generate(
            model=target.model("image_generation"), prompt="A logo for a coffee app", response_format="b64_json"))
        REGISTRY["sdk_images_generate"](result, target.base_url)


@pytest.mark.api(API, operation="listModels")
@pytest.mark.check("sdk_models_list")
def test_sdk_models(sdk: openai.OpenAI, target: Target, recorder: Recorder) -> None:
    with recorder.attached():  # a failure carries the SDK's last request and answer
        models = run_sdk("sdk_models_list", target.base_url, lambda: list(sdk.models.list()))
        REGISTRY["sdk_models_list"](models, target.base_url)


@pytest.mark.api(API, operation="retrieveModel")
@pytest.mark.check("sdk_models_retrieve")
def test_sdk_models_retrieve(sdk: openai.OpenAI, target: Target, recorder: Recorder) -> None:
    with recorder.attached():  # a failure carries the SDK's last request and answer
        wanted = target.model("chat")
        model = run_sdk("sdk_models_retrieve", target.base_url, lambda: sdk.models.retrieve(wanted))
        REGISTRY["sdk_models_retrieve"](model, wanted, target.base_url)


MESSAGES_API = "multi_protocol"
HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def claude(target: Target, hooks: dict[str, list[Any]]) -> Iterator[anthropic.Anthropic]:
    """The Anthropic SDK pointed at the target with only base_url and api_key (sent as x-api-key), the
    target's anthropic-version, no retries; its HTTP client has the :func:`hooks`, as the openai SDK's does."""
    import anthropic

    with anthropic.Anthropic(base_url=target.base_url, api_key=target.api_key, max_retries=0,
                             timeout=target.timeout_s, http_client=anthropic.DefaultHttpxClient(event_hooks=hooks),
                             default_headers={"anthropic-version": target.messages_version}) as client:
        yield client


@pytest.mark.api(MESSAGES_API, operation="createMessage")
@pytest.mark.check("sdk_anthropic_messages_create")
def test_sdk_anthropic_create(claude: anthropic.Anthropic, target: Target, recorder: Recorder) -> None:
    with recorder.attached():  # a failure carries the SDK's last request and answer
        message = run_sdk("sdk_anthropic_messages_create", target.base_url, lambda: claude.messages.create(
            model=target.model("messages"), max_tokens=256, messages=HELLO))
        REGISTRY["sdk_anthropic_messages_create"](message, target.base_url)


@pytest.mark.api(MESSAGES_API, operation="createMessage")
@pytest.mark.check("sdk_anthropic_messages_stream")
def test_sdk_anthropic_stream(claude: anthropic.Anthropic, target: Target, recorder: Recorder) -> None:
    with recorder.attached():  # a failure carries the SDK's last request and answer
        def stream() -> tuple[list[Any], Any]:
            with claude.messages.stream(model=target.model("messages"), max_tokens=256, messages=HELLO) as events:
                seen = list(events)
                return seen, events.get_final_message()

        seen, final = run_sdk("sdk_anthropic_messages_stream", target.base_url, stream)
        REGISTRY["sdk_anthropic_messages_stream"](seen, final, target.base_url)


@pytest.mark.api(MESSAGES_API, operation="createMessage")
@pytest.mark.check("sdk_anthropic_image_block")
def test_sdk_anthropic_image_block(claude: anthropic.Anthropic, target: Target, recorder: Recorder) -> None:
    # 003 "Messages image input"; the image as a base64 source, so that no gateway has to fetch a URL
    image: Any = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(media_file("png_256")).decode()}
    turn: Any = {"role": "user", "content": [{"type": "text", "text": "Describe this image"},
                                             {"type": "image", "source": image}]}
    with recorder.attached():  # a failure carries the SDK's last request and answer
        message = run_sdk("sdk_anthropic_image_block", target.base_url, lambda: claude.messages.create(
            model=target.model("messages"), max_tokens=256, messages=[turn]))
        REGISTRY["sdk_anthropic_image_block"](message, target.base_url)
