"""Every documented error status answers in its documented envelope (001, 002, 004 error tables).

402 is provoked with the target's no-credits key; 5xx statuses with the target's fault-injection
header (a test mode such as the mock's ``X-Mock-Fault``). Without them these checks are skipped:
a real gateway's 5xx cannot be asked for, only judged when it happens (the property phase does).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.http import TargetClient
from conformance.target import Target
from spec import Operation, find_operation

#: One representative request per API: (api, operationId, body factory).
REQUESTS: list[tuple[str, str, Any]] = [
    ("openai_gateway", "createChatCompletion",
     lambda t: {"model": t.model("chat"), "messages": [{"role": "user", "content": "Hello"}]}),
    ("multi_protocol", "createMessage",
     lambda t: {"model": t.model("messages"), "max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]}),
    ("credits_api", "createMultimodalTts", lambda t: {"text": "Hello"}),
    ("openai_gateway", "createImage",  # 002 "Errors": 500 and 502 / 503 of the Images API
     lambda t: {"model": t.model("image_generation"), "prompt": "A red square", "size": "1024x1024",
                "response_format": "b64_json"}),
]
PROVOKED = (500, 502, 503)
CASES = [(api, op, status) for api, op, _ in REQUESTS for status in PROVOKED
         if str(status) in find_operation(api, op).spec["responses"]]


def _style(operation: Operation) -> str:
    return "messages" if operation.spec.get("x-mirrors") == "anthropic" else "bearer"


@pytest.mark.check("documented_error_status")
@pytest.mark.parametrize(("api", "operation_id", "status"), CASES)
def test_provoked_5xx(api: str, operation_id: str, status: int, client: TargetClient, target: Target) -> None:
    if not target.fault_header:
        pytest.skip("the target file names no fault_header: 5xx statuses cannot be provoked")
    operation = find_operation(api, operation_id)
    body = next(factory for a, op, factory in REQUESTS if (a, op) == (api, operation_id))(target)
    exchange = client.request("POST", operation.path, json_body=body, auth=_style(operation),
                              headers={target.fault_header: str(status)}, honour_429=False)
    REGISTRY["documented_error_status"](exchange, operation, status)


@pytest.mark.api("credits_api", operation="createMultimodalTts")
@pytest.mark.check("documented_error_status")
def test_insufficient_credits_402(client: TargetClient, target: Target) -> None:
    if not target.empty_api_key:
        pytest.skip("the target file names no empty_api_key (a key with no credits)")
    operation = find_operation("credits_api", "createMultimodalTts")
    exchange = client.request("POST", operation.path, json_body={"text": "Hello"}, auth="empty")
    REGISTRY["documented_error_status"](exchange, operation, 402)


@pytest.mark.api("openai_gateway", operation="createImage")
@pytest.mark.check("documented_error_status")
def test_key_without_the_scope_403(client: TargetClient, target: Target) -> None:
    """001 "Errors": 403 permission_error, "Key lacks the required scope": the target's scoped key (one
    that may call chat but not image generation) is refused by createImage."""
    if not target.scoped_api_key:
        pytest.skip("the target file names no scoped_api_key (a key without the image generation scope)")
    operation = find_operation("openai_gateway", "createImage")
    exchange = client.request("POST", operation.path, auth="scoped", json_body={
        "model": target.model("image_generation"), "prompt": "A red square", "size": "1024x1024",
        "response_format": "b64_json"})
    REGISTRY["documented_error_status"](exchange, operation, 403)


@pytest.mark.api("multi_protocol", operation="createMessage")
@pytest.mark.check("unknown_path_in_protocol_envelope")
@pytest.mark.parametrize(("method", "suffix"), [("POST", "/no-such-path-conformance"), ("GET", "")])
def test_unknown_messages_path(method: str, suffix: str, client: TargetClient) -> None:
    """An unknown path under /v1/messages (404), or a method it does not take (405), in the Messages envelope."""
    operation = find_operation("multi_protocol", "createMessage")
    exchange = client.request(method, operation.path + suffix, json_body={} if method == "POST" else None,
                              auth="messages")
    REGISTRY["unknown_path_in_protocol_envelope"](exchange, operation)


#: The gateway requests that cost money (002 "Pricing": chat per token, images per image): (operationId, body).
PRICED: list[tuple[str, Any]] = [
    ("createChatCompletion", lambda t, text: {"model": t.model("chat"),
                                              "messages": [{"role": "user", "content": text}]}),
    ("createImage", lambda t, text: {"model": t.model("image_generation"), "prompt": text, "size": "1024x1024",
                                     "response_format": "b64_json"}),
]


def _priced(operation_id: str, target: Target, text: str) -> tuple[Operation, Any]:
    """The gateway operation and a request body of :data:`PRICED` saying ``text``."""
    return (find_operation("openai_gateway", operation_id),
            next(factory for op, factory in PRICED if op == operation_id)(target, text))


@pytest.mark.api("openai_gateway")
@pytest.mark.check("gateway_billing_error_402")
@pytest.mark.parametrize("operation_id", [op for op, _ in PRICED])
def test_gateway_key_over_spend_limit_402(operation_id: str, client: TargetClient, target: Target) -> None:
    """001, 002 "Errors": 402 billing_error, "Account out of credit or hit a spend limit"."""
    if not target.billing_api_key:
        pytest.skip("the target file names no billing_api_key (a key out of credit or over its gateway spend limit)")
    operation, body = _priced(operation_id, target, "A red square on white")
    REGISTRY["gateway_billing_error_402"](client.request("POST", operation.path, json_body=body, auth="billing"),
                                          operation)


@pytest.mark.api("openai_gateway")
@pytest.mark.check("safety_rejection_reported")
@pytest.mark.parametrize("operation_id", [op for op, _ in PRICED])
def test_refused_prompt_reported(operation_id: str, client: TargetClient, target: Target) -> None:
    """002 "Safety": a disallowed prompt is 400 invalid_request_error with the reason in error.message. 002 is
    the image generation page, so chat is asked with the ``image_output`` model (its "Native image
    generation"): a text model that answers a refusal in words (200), as OpenAI's do, breaks no document."""
    if not target.refused_prompt:
        pytest.skip("the target file names no refused_prompt (a prompt its content filter refuses)")
    operation, body = _priced(operation_id, target, target.refused_prompt)
    if operation_id == "createChatCompletion":
        body = {**body, "model": target.model("image_output")}
    REGISTRY["safety_rejection_reported"](client.request("POST", operation.path, json_body=body), operation)
