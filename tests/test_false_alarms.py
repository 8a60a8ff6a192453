"""False alarms the suite raised on correct gateways (issue 13), each kept as a regression test."""

from __future__ import annotations

import collections
import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.embedded import EMPTY_KEY, FAULT_HEADER, REFUSED_PROMPT, STANDARD_KEY, embedded_app, serve
from conformance.failures import CheckFailure
from conformance.golden import load_cases, verify
from conformance.http import Exchange
from conformance.target import DEFAULT_MODELS, Target
from tests.broken_targets import RequestRewriting

ROOT = Path(__file__).resolve().parent.parent


def _models_list(*ids: str) -> Exchange:
    body = {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "x"} for i in ids]}
    return Exchange("GET", "http://gw/v1/models", None, 200, {"content-type": "application/json"},
                    json.dumps(body).encode())


def test_the_models_list_fixture_looks_for_the_targets_own_model_ids() -> None:
    case = next(c for c in load_cases(ROOT / "fixtures") if c.id == "openai_gateway/listModels/list")
    renamed = Target("gw", "http://gw", "k", models={**DEFAULT_MODELS, "image_generation": "acme/image-1",
                                                     "image_output": "acme/flash-image"})
    verify(case, _models_list("acme/image-1", "acme/flash-image"), target=renamed)  # its own ids: a pass
    with pytest.raises(CheckFailure):  # the catalogue's ids are not what this gateway serves
        verify(case, _models_list(DEFAULT_MODELS["image_generation"], DEFAULT_MODELS["image_output"]),
               target=renamed)
    with pytest.raises(CheckFailure):  # and a list missing the routed models still fails
        verify(case, _models_list("something-else"), target=renamed)


def test_generated_messages_requests_carry_no_authorization_beside_the_key(tmp_path: Path) -> None:
    seen: collections.Counter[tuple[bool, bool]] = collections.Counter()
    app = embedded_app()

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/messages":
            names = {name.lower() for name, _ in scope["headers"]}
            seen[(b"authorization" in names, b"x-api-key" in names)] += 1
        await app(scope, receive, send)

    with serve(recording) as url:
        target = tmp_path / "target.yaml"
        target.write_text(yaml.safe_dump({"base_url": url, "api_key": "sk-test", "standard_api_key": STANDARD_KEY,
                                          "empty_api_key": EMPTY_KEY, "fault_header": FAULT_HEADER}))
        subprocess.run([sys.executable, "-m", "conformance", "run", "--target", str(target), "--name", "t",
                        "--reports", str(tmp_path), "-q", "--phases", "property", "-k", "/v1/messages"],
                       capture_output=True, timeout=600, check=False)
    assert sum(seen.values()) > 20  # the generated cases did reach the Messages endpoint
    assert set(seen) == {(False, True)}, dict(seen)


def test_transparent_background_is_not_judged_for_a_model_that_does_not_take_it(tmp_path: Path) -> None:
    """002: 'transparent' for supported models only: a target whose image model refuses it (400 naming
    background) is skipped with that reason, not failed; the mock's gpt-image-1 is judged and passes."""
    target = tmp_path / "target.yaml"
    with serve(embedded_app()) as url:
        for model, outcome in (("dall-e-3", "skipped"), ("gpt-image-1", "passed")):
            target.write_text(yaml.safe_dump({"base_url": url, "api_key": "sk-test", "models": {
                "image_generation": model}}))
            subprocess.run([sys.executable, "-m", "conformance", "run", "--target", str(target), "--name", model,
                            "--reports", str(tmp_path), "-q", "--phases", "behavioural", "-k", "transparent"],
                           capture_output=True, timeout=300, check=False)
            report = json.loads((tmp_path / model / "latest" / "report.json").read_text())
            rows = [row for row in report["checks"] if row["check"] == "image_transparent_background"]
            assert [row["outcome"] for row in rows] == [outcome], rows


def _text_model_refuses_in_words(body: Any) -> Any:
    """A correct gateway whose text chat model answers a prompt its filter dislikes as OpenAI's models do:
    200 with the refusal in the message (001 documents no content filter for chat); image generation,
    dedicated or native in chat, still refuses it with 400 and the reason (002 "Safety")."""
    said = json.dumps(body.get("messages"))
    if body.get("model") == DEFAULT_MODELS["chat"] and REFUSED_PROMPT in said:
        return 200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
                         "role": "assistant", "content": None, "refusal": "I can't help with that."}}],
                     "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}}
    return body


def test_a_text_chat_model_answering_a_refusal_in_words_is_not_failed_by_the_safety_check(tmp_path: Path) -> None:
    """002 "Safety" is the image generation page's: the chat case of safety_rejection_reported asks the
    image_output model (native image generation), so a text model's 200 refusal is no failure, and
    the 400s of both image routes are still judged (and pass)."""
    target = tmp_path / "target.yaml"
    with serve(RequestRewriting(embedded_app(), _text_model_refuses_in_words)) as url:
        target.write_text(yaml.safe_dump({"base_url": url, "api_key": "sk-test", "refused_prompt": REFUSED_PROMPT}))
        subprocess.run([sys.executable, "-m", "conformance", "run", "--target", str(target), "--name", "t",
                        "--reports", str(tmp_path), "-q", "--phases", "behavioural", "-k", "refused_prompt"],
                       capture_output=True, timeout=300, check=False)
    report = json.loads((tmp_path / "t" / "latest" / "report.json").read_text())
    rows = [row for row in report["checks"] if row["check"] == "safety_rejection_reported"]
    assert sorted(row["outcome"] for row in rows) == ["passed", "passed"], rows


class PostHocTpm:
    """A correct gateway that counts TPM after each answer (by its ``usage.total_tokens``, as LiteLLM-style
    gateways do): a chat request is refused with 429 rate_limit_error and Retry-After once the tokens
    already used in the window reach ``tpm``, so the request that passes the limit is admitted and the
    next one refused (001 "Errors": 429 when "TPM exceeded")."""

    def __init__(self, app: Any, tpm: int) -> None:
        self.app, self.tpm, self.used = app, tpm, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        if self.used >= self.tpm:
            body = json.dumps({"error": {"type": "rate_limit_error", "message": "TPM exceeded."}}).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", b"60")]})
            await send({"type": "http.response.body", "body": body})
            return
        answer = bytearray()

        async def counting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting)
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            self.used += int(json.loads(answer)["usage"]["total_tokens"])


@pytest.mark.parametrize(("counting", "outcome"), [(True, "passed"), (False, "failed")])
def test_a_gateway_counting_tpm_after_each_answer_is_not_failed_by_the_tpm_probe(counting: bool, outcome: str,
                                                                                 tmp_path: Path) -> None:
    """Two probe requests of 60% of the TPM each take a gateway that counts tokens before admitting to its
    429 at the second, one that counts after each answer at the third: both enforce the limit. A gateway
    that does not hold the key to the declared 2,000 TPM (the mock's sk-test, without the wrapper) admits
    all three and fails."""
    target = tmp_path / "target.yaml"
    with serve(PostHocTpm(embedded_app(), tpm=2000) if counting else embedded_app()) as url:
        target.write_text(yaml.safe_dump({"base_url": url, "api_key": "sk-test",
                                          "rate_limits": {"api_key": "sk-test", "tpm": 2000}}))
        subprocess.run([sys.executable, "-m", "conformance", "run", "--target", str(target), "--name", "t",
                        "--reports", str(tmp_path), "-q", "--phases", "behavioural", "-k", "tpm_exceeded"],
                       capture_output=True, timeout=300, check=False)
    report = json.loads((tmp_path / "t" / "latest" / "report.json").read_text())
    rows = [row for row in report["checks"] if row["id"] == "test_tpm_exceeded"]
    assert [row["outcome"] for row in rows] == [outcome], rows
