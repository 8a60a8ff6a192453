"""Property-based checks generated from each claimed spec by schemathesis.

Positive cases (valid by the spec) must be answered with a documented status and content type
and a body valid against the documented schema; negative cases (invalid by the spec) must be
rejected with a 4xx in the API's error envelope, never a 5xx or a 2xx.

The number of generated cases per operation follows the active Hypothesis profile
(``conformance run --profile``); schemathesis's deterministic coverage phase adds boundary cases
(but to the positive cases of the quick profile's ``profiles.WITHOUT_COVERAGE`` operations, whose
every answer costs GPU time: ``profiles.GPU_BOUND``).
A 429 is honoured, never failed: the case is sent again after a short Retry-After, and otherwise
judged only as a documented rejection. The cases of one operation are sent up to the target's
``concurrency`` at once (``conformance/batch.py``; the credits API's one by one, for its per-minute limits).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import HealthCheck
from schemathesis.core.failures import FailureGroup
from schemathesis.transport.requests import ManagedCookiesSession

from conformance import batch, profiles
from conformance.budget import RunState, call_cost
from conformance.checks import REGISTRY
from conformance.failures import CheckFailure, Evidence, TargetError, excerpt, form_field, redact_headers
from conformance.http import MAX_RETRIES, Exchange, retry_after_s, secrets_of
from conformance.suite import generated_test_names
from conformance.target import Target
from spec import api_names, find_operation, load_api

#: Statuses that count as a rejection of invalid input.
REJECTIONS = ["400", "401", "403", "404", "405", "413", "415", "422"]
POSITIVE_CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                   "response_headers_conformance", "response_schema_conformance")
NEGATIVE_CHECKS = ("not_a_server_error", "negative_data_rejection", "status_code_conformance")
#: operationId -> the target capability whose model a generated case uses.
MODEL_FOR = {
    "createChatCompletion": "vision", "createResponse": "vision", "createMessage": "messages",
    "createImage": "image_generation", "createImageEdit": "image_generation", "createSpeech": "speech",
    "createTranscription": "transcription", "createTranslation": "transcription",
}

load_all_checks()

#: This thread's HTTP session for sending generated cases (see :func:`_session`).
_SESSIONS = threading.local()


def _session() -> ManagedCookiesSession:
    """The requests session this thread sends generated cases with: the one schemathesis makes for a call without
    a session (redirects followed only to the same host, the answer's cookies dropped before the next case), kept
    for the thread's cases so that its connection to the target is reused (keep-alive) instead of a new TCP
    connection and session per case. schemathesis resends a case whose kept connection the target had closed."""
    session: ManagedCookiesSession | None = getattr(_SESSIONS, "session", None)
    if session is None:
        session = _SESSIONS.session = ManagedCookiesSession()
    return session


def _for_generation(document: dict[str, Any]) -> dict[str, Any]:
    """The spec without multipart ``encoding`` entries: their wildcard part types (``audio/*``) say what a
    server takes, but give schemathesis nothing to serialise a generated part as."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for media in operation.get("requestBody", {}).get("content", {}).values() if isinstance(
                    operation, dict) else []:
                media.pop("encoding", None)
    return document


def _schema(api: str, mode: GenerationMode) -> Any:
    config = profiles.schemathesis_config(positive=mode == GenerationMode.POSITIVE)
    schema = schemathesis.openapi.from_dict(_for_generation(load_api(api)), config=config)
    # Unknown query parameters are ignored by real gateways, not rejected: not a contract violation.
    schema.config.generation.update(modes=[mode], max_examples=hypothesis.settings().max_examples,
                                    database="none", allow_extra_parameters=False)
    schema.config.suppress_health_check = [HealthCheck.all]
    schema.config.output.sanitization.update(enabled=False)
    schema.config.checks.negative_data_rejection.expected_statuses = REJECTIONS

    @schema.hook
    def map_case(context: Any, case: Any) -> Any:
        # Streams are judged by the streaming checks; here every answer is one JSON document.
        if isinstance(case.body, dict) and case.body.get("stream"):
            case.body = {**case.body, "stream": False}
        # The Messages protocol's key goes in x-api-key (the suite sends it); schemathesis also fills in the
        # spec's other scheme, an `Authorization: Bearer` of generated text or empty, which a real gateway
        # may take as the key and refuse: not the contract under test.
        if case.headers and case.operation.definition.raw.get("x-mirrors") == "anthropic":
            case.headers = {name: value for name, value in case.headers.items() if name.lower() != "authorization"}
        # the profile's most for a positive case's GPU-bound fields (profiles.CASE_LIMITS: quick asks for fewer
        # images); a negative case keeps what it drew (the invalid value may be the one limited)
        if mode == GenerationMode.POSITIVE:
            case.body = profiles.limited_case(case.operation.definition.raw.get("operationId", ""), case.body)
        return case

    return schema


def _auth(case: Any, target: Target) -> dict[str, str]:
    """The key's headers; a generated protocol header (``anthropic-version``) is the case's to set."""
    style = "messages" if case.operation.definition.raw.get("x-mirrors") == "anthropic" else "bearer"
    generated = {name.lower() for name in (case.headers or {})}
    return {name: value for name, value in target.auth_headers(style).items()
            if name == "x-api-key" or name == "Authorization" or name.lower() not in generated}


def _form(case: Any, content_type: str) -> tuple[dict[str, Any], ...] | None:
    """A multipart case's body as evidence parts (a generated value of bytes is a file part)."""
    if not content_type.startswith("multipart/") or not isinstance(case.body, dict):
        return None
    return tuple(form_field(str(name), item) for name, value in case.body.items()
                 for item in (value if isinstance(value, list) else [value]))


def _sent_body(body: bytes | str | None) -> Any:
    """The body as it went on the wire: parsed when it is JSON, else its text (bytes decoded leniently);
    None when there was none (a case without a body, not schemathesis's ``NotSet`` marker)."""
    if body is None:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.loads(text)
    except ValueError:
        return text


def _call(case: Any, target: Target, run_state: RunState) -> tuple[Any, Exchange]:
    """Send a generated case (counted against the run's budgets and paced first, honouring a short
    Retry-After) and record it as an :class:`Exchange` with its request headers (keys redacted) and form;
    a target that does not answer fails ``target_reachable`` (:class:`TargetError`), as the client's
    requests do."""
    headers = _auth(case, target)
    for _ in range(MAX_RETRIES):
        run_state.reserve(call_cost(case.method, case.formatted_path, case.body))
        try:
            response = case.call(base_url=target.base_url, session=_session(), headers=headers,
                                 timeout=target.timeout_s)
        except OSError as exc:  # requests' errors (refused, timeout) are OSErrors
            sent = redact_headers({**(case.headers or {}), **headers}, secrets_of(target))
            raise TargetError("target_reachable", "an HTTP answer", f"{type(exc).__name__}: {excerpt(str(exc))}",
                              Evidence(case.method, target.base_url + case.formatted_path, case.body,
                                       request_headers=sent)) from None
        wait = retry_after_s({k.lower(): v[0] for k, v in response.headers.items()})
        if response.status_code != 429 or wait is None or wait > target.max_retry_wait_s:
            break
        time.sleep(wait)
    request = response.request
    sent = redact_headers(dict(request.headers), secrets_of(target))
    form = _form(case, sent.get("content-type", ""))
    exchange = Exchange(request.method or case.method, request.url or "", None if form else _sent_body(request.body),
                        response.status_code, {k.lower(): v[0] for k, v in response.headers.items()},
                        response.content or b"", sent, form)
    return response, exchange


def _validate(api: str, case: Any, response: Any, exchange: Exchange, names: tuple[str, ...],
              target: Target) -> None:
    """Run each schemathesis check by name; the first failure becomes a :class:`CheckFailure` of that name.

    The checks run together first, in one ``validate_response`` (each call resolves the operation's check
    configuration again: most of the judging's CPU when run check by check); only an answer that fails
    them is judged again check by check, to name the first that fails."""
    headers = _auth(case, target)
    transport = {"base_url": target.base_url, "headers": headers}
    try:
        case.validate_response(response, checks=[CHECKS.get_one(name) for name in names], headers=headers,
                               transport_kwargs=transport)
        passed = True
    except (FailureGroup, Exception):  # a failure or a check's error: raised as before by the loop below
        passed = False
    for name in () if passed else names:
        try:
            case.validate_response(response, checks=[CHECKS.get_one(name)], headers=headers,
                                   transport_kwargs=transport)
        except FailureGroup as group:
            first = group.exceptions[0]
            raise CheckFailure(name, f"{name} to hold ({case.meta.generation.mode.value} case)",
                               f"{first.title}: {excerpt(first.message)}", exchange.evidence()) from None
    if exchange.status >= 400:  # a 2xx was judged above (documented for a positive case, refused for a negative)
        REGISTRY["error_envelope_conformance"](exchange,
                                               find_operation(api, case.operation.definition.raw["operationId"]))


def _skip_excluded(case: Any, target: Target) -> str:
    operation_id = str(case.operation.definition.raw["operationId"])
    if operation_id in target.exclude_operations:
        pytest.skip(f"{operation_id} is excluded by the target file")
    return operation_id


def _positive_test(api: str) -> Callable[..., None]:
    schema = _schema(api, GenerationMode.POSITIVE)

    @pytest.mark.api(api)
    @pytest.mark.capability("contract.positive", source="spec: documented status, content type and schema")
    @schema.parametrize()
    def test(case: Any, target: Target, run_state: RunState) -> None:
        operation_id = _skip_excluded(case, target)
        if isinstance(case.body, dict) and operation_id in MODEL_FOR:
            case.body = {**case.body, "model": target.model(MODEL_FOR[operation_id])}

        def send() -> None:
            response, exchange = _call(case, target, run_state)
            _validate(api, case, response, exchange, POSITIVE_CHECKS, target)

        batch.submit(send)  # sent (and judged) concurrently with the test's other cases: conformance/batch.py

    return test  # type: ignore[no-any-return]


def _negative_test(api: str) -> Callable[..., None]:
    schema = _schema(api, GenerationMode.NEGATIVE)

    @pytest.mark.api(api)
    @pytest.mark.capability("contract.negative", source="invalid input is a 4xx in the API's error envelope")
    @schema.parametrize()
    def test(case: Any, target: Target, run_state: RunState) -> None:
        operation_id = _skip_excluded(case, target)
        model = case.body.get("model") if isinstance(case.body, dict) else None
        if isinstance(model, str) and model and operation_id in MODEL_FOR:
            case.body = {**case.body, "model": target.model(MODEL_FOR[operation_id])}

        def send() -> None:
            response, exchange = _call(case, target, run_state)
            if response.status_code == 429:
                return  # rate limited before the invalid input was judged: nothing to conclude
            _validate(api, case, response, exchange, NEGATIVE_CHECKS, target)

        batch.submit(send)

    return test  # type: ignore[no-any-return]


for _api in api_names():
    _positive_name, _negative_name = generated_test_names(_api)
    globals()[_positive_name] = _positive_test(_api)
    globals()[_negative_name] = _negative_test(_api)
