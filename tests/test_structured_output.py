"""Structured output (001 "What you can do": "Enforce structured output"): the mock's answer to a
``json_schema`` request validates against the whole schema the caller sent, for every keyword of a
battery and for schemas hypothesis draws; the same seed gives the same JSON; strict rules, unsafe and
hostile schemas are a 400 naming the schema's field, quickly (``mock_server.structured``). And the
suite's ``structured_output_honours_schema`` fails each answer shape it reads when it breaks the schema."""

from __future__ import annotations

import datetime
import functools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from starlette.testclient import TestClient

from conformance.checks import REGISTRY
from conformance.embedded import serve
from conformance.failures import CheckFailure
from conformance.http import Exchange
from mock_server import MockConfig, create_app, structured
from mock_server.errors import ApiError
from spec import find_operation

AUTH = {"Authorization": "Bearer sk-test"}
PARAM = "response_format.json_schema.schema"
CHAT = find_operation("openai_gateway", "createChatCompletion")
#: No answer to a hostile schema may take this long, in s (a stall bound, far above BUDGET_S).
STALL_S = 10 * structured.BUDGET_S


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A strict object schema: every property required, no others."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False,
            **extra}


#: One schema per keyword the mock must honour, each as a strict object (OpenAI's root must be one).
BATTERY: dict[str, dict[str, Any]] = {
    "pattern": obj({"code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"}}),
    "pattern_and_lengths": obj({"p": {"type": "string", "pattern": "^[a-z]+$", "minLength": 5, "maxLength": 8}}),
    "lengths": obj({"long": {"type": "string", "minLength": 30, "maxLength": 31}, "short": {"type": "string",
                                                                                          "maxLength": 2}}),
    "formats": obj({f: {"type": "string", "format": f} for f in
                    ("email", "date-time", "uri", "uuid", "date", "time", "ipv4", "ipv6")}),
    "multipleOf": obj({"tenth": {"type": "number", "multipleOf": 0.1, "minimum": 0, "maximum": 3},
                       "sevens": {"type": "integer", "multipleOf": 7, "exclusiveMinimum": 7, "maximum": 30},
                       "quarter": {"type": "number", "multipleOf": 0.25}}),
    "uniqueItems": obj({"u": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 4},
                              "uniqueItems": True, "minItems": 4}}),
    "uniqueItems_objects": obj({"u": {"type": "array", "items": obj({"k": {"type": "boolean"}}), "uniqueItems": True,
                                      "minItems": 2}}),
    "item_counts": obj({"a": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3},
                        "wide": {"type": "array", "items": {"type": "integer"}, "maxItems": 100_000}}),
    "enum_const": obj({"e": {"enum": ["x", 1, None, {"a": 1}]}, "c": {"const": "fixed"},
                       "t": {"type": "string", "enum": ["red", "green"]}}),
    "defs": {**obj({"a": {"$ref": "#/$defs/A"}, "l": {"type": "array", "items": {"$ref": "#/$defs/A"}}}),
             "$defs": {"A": obj({"n": {"$ref": "#/$defs/N"}}), "N": {"type": "integer", "minimum": 5, "maximum": 6}}},
    "anyOf": obj({"v": {"anyOf": [obj({"kind": {"const": "a"}, "x": {"type": "integer"}}),
                                  obj({"kind": {"const": "b"}, "y": {"type": "string", "format": "email"}})]},
                  "maybe": {"anyOf": [{"type": "string", "pattern": "^ok$"}, {"type": "null"}]}}),
    "oneOf": obj({"v": {"oneOf": [{"type": "integer", "multipleOf": 2}, {"type": "integer", "multipleOf": 3}]}}),
    "allOf": obj({"a": {"allOf": [{"type": "integer", "minimum": 10}, {"maximum": 12}]}}),
    "nesting": obj({"a": obj({"b": obj({"c": obj({"d": {"type": "array", "items": obj({"e": {"type": ["string",
                                                                                                   "null"]}})}})})})}),
    "recursive": {**obj({"root": {"$ref": "#/$defs/node"}}),
                  "$defs": {"node": obj({"name": {"type": "string"},
                                         "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}})}},
    "linked_list": {**obj({"head": {"$ref": "#/$defs/cell"}}),
                    "$defs": {"cell": obj({"v": {"type": "integer"},
                                           "next": {"anyOf": [{"$ref": "#/$defs/cell"}, {"type": "null"}]}})}},
}


def validator(schema: dict[str, Any]) -> Any:
    """The judge the suite uses: the schema's draft (2020-12 by default), format checking on."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(MockConfig())) as test_client:
        yield test_client


def ask(client: TestClient, schema: Any, *, strict: bool = True, **extra: Any) -> Any:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Answer in JSON."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": strict,
                                                                       "schema": schema}}, **extra}
    return client.post("/v1/chat/completions", json=body, headers=AUTH)


@pytest.mark.parametrize("name", sorted(BATTERY))
def test_each_choice_honours_the_whole_schema(client: TestClient, name: str) -> None:
    schema = BATTERY[name]
    response = ask(client, schema, n=3)
    assert response.status_code == 200, response.text
    judge = validator(schema)
    for choice in response.json()["choices"]:
        assert choice["finish_reason"] == "stop"
        errors = [error.message for error in judge.iter_errors(json.loads(choice["message"]["content"]))]
        assert not errors, (name, choice["message"]["content"], errors)


def test_a_loose_answer_would_fail_the_judge() -> None:
    """The judge is not vacuous: JSON of the right shape that ignores pattern, format, uniqueItems or
    multipleOf is refused."""
    assert not validator(BATTERY["pattern"]).is_valid({"code": "abc-1234"})
    assert not validator(BATTERY["formats"]["properties"]["uuid"]).is_valid("not-a-uuid")
    assert not validator(BATTERY["uniqueItems"]).is_valid({"u": [0, 1, 2, 2]})
    assert not validator(BATTERY["multipleOf"]["properties"]["sevens"]).is_valid(15)


def test_the_stream_joins_to_a_valid_answer(client: TestClient) -> None:
    schema = BATTERY["formats"]
    response = ask(client, schema, stream=True)
    chunks = [json.loads(line[6:]) for line in response.text.split("\n\n") if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1
    assert validator(schema).is_valid(json.loads(text)), text
    assert text == ask(client, schema).json()["choices"][0]["message"]["content"]


def test_responses_text_format_honours_the_schema(client: TestClient) -> None:
    schema = BATTERY["anyOf"]
    text_format = {"type": "json_schema", "name": "v", "strict": True, "schema": schema}
    response = client.post("/v1/responses", json={"model": "openai/gpt-5-mini", "input": "JSON please",
                                                   "text": {"format": text_format}}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert validator(schema).is_valid(json.loads(response.json()["output"][0]["content"][0]["text"]))
    remote = {**text_format, "schema": obj({"x": {"$ref": "x.json"}})}
    bad = client.post("/v1/responses", json={"model": "openai/gpt-5-mini", "input": "JSON please",
                                              "text": {"format": remote}}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "text.format.schema.properties.x.$ref"


def _contents(seed: int) -> list[str]:
    with TestClient(create_app(MockConfig(seed=seed))) as test_client:
        return [ask(test_client, BATTERY[name]).json()["choices"][0]["message"]["content"] for name in sorted(BATTERY)]


def test_same_seed_same_json_another_seed_other_json() -> None:
    first = _contents(7)
    assert _contents(7) == first
    assert _contents(8) != first


# ---- schemas hypothesis draws --------------------------------------------------------------------------

_PATTERNS = ("^[A-Z]{2}$", "^[a-z]{3,6}-[0-9]{2}$", "^(yes|no)$", "^\\d{5}(-\\d{4})?$", "^[A-F0-9]{8}$")
_FORMATS = ("email", "date-time", "uri", "uuid", "date", "ipv4")
_NAMES = st.sampled_from(["a", "b", "c", "id", "name", "kind", "count", "items"])


def _leaves() -> st.SearchStrategy[dict[str, Any]]:
    low = st.integers(0, 20)
    return st.one_of(
        st.builds(lambda lo, span: {"type": "string", "minLength": lo, "maxLength": lo + span},
                  st.integers(0, 10), st.integers(0, 20)),
        st.sampled_from(_PATTERNS).map(lambda p: {"type": "string", "pattern": p}),
        st.sampled_from(_FORMATS).map(lambda f: {"type": "string", "format": f}),
        st.builds(lambda lo, step: {"type": "integer", "minimum": lo, "maximum": lo + 60, "multipleOf": step},
                  low, st.integers(1, 7)),
        st.builds(lambda lo, step: {"type": "number", "minimum": lo, "maximum": lo + 30, "multipleOf": step},
                  low, st.sampled_from([0.5, 0.25, 2])),
        st.just({"type": "boolean"}),
        st.lists(st.sampled_from(["red", "green", "blue", 3, None]), min_size=1, max_size=4, unique=True)
        .map(lambda values: {"enum": values}),
        st.sampled_from(["fixed", 42, True]).map(lambda value: {"const": value}),
    )


def _compose(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.dictionaries(_NAMES, children, min_size=1, max_size=4).map(obj),
        st.builds(lambda items, lo, span: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + span},
                  children, st.integers(0, 2), st.integers(0, 3)),
        st.builds(lambda lo: {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{4,8}$"},
                              "uniqueItems": True, "minItems": lo, "maxItems": lo + 2}, st.integers(0, 3)),
        st.lists(children, min_size=2, max_size=3).map(lambda options: {"anyOf": options}),
        children.map(lambda child: {"anyOf": [child, {"type": "null"}]}),
    )


def _with_defs(root: dict[str, Any]) -> dict[str, Any]:
    """``root``'s first property moved into ``$defs`` and referenced (when it has one)."""
    if not root.get("properties"):
        return root
    first = next(iter(root["properties"]))
    return {**root, "$defs": {"Moved": root["properties"][first]},
            "properties": {**root["properties"], first: {"$ref": "#/$defs/Moved"}}}


SCHEMAS = st.builds(_with_defs, st.dictionaries(_NAMES, st.recursive(_leaves(), _compose, max_leaves=8),
                                                min_size=1, max_size=5).map(obj))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(SCHEMAS)
def test_drawn_schemas_are_honoured(schema: dict[str, Any]) -> None:
    texts = structured.generate(schema, [b"\x01" * 32, b"\x02" * 32], PARAM, strict=True)
    judge = validator(schema)
    for text in texts:
        assert judge.is_valid(json.loads(text)), (schema, text)
    assert structured.generate(schema, [b"\x01" * 32], PARAM, strict=True) == texts[:1]


# ---- refusals -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("schema", "param"), [
    ({"type": "array", "items": {"type": "string"}}, f"{PARAM}.type"),
    ({"anyOf": [obj({"a": {"type": "string"}})]}, f"{PARAM}.type"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, f"{PARAM}.additionalProperties"),
    (obj({"a": {"type": "string"}}, required=[]), f"{PARAM}.required"),
    (obj({"inner": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}),
     f"{PARAM}.properties.inner.additionalProperties"),
])
def test_strict_rules_name_the_field(client: TestClient, schema: dict[str, Any], param: str) -> None:
    response = ask(client, schema)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert ask(client, schema, strict=False).status_code == 200  # not strict: the same schema is answered


def test_a_provider_keyword_is_refused_not_evaluated(client: TestClient, tmp_path: Path) -> None:
    """jsf would ``eval`` ``$provider``: the mock refuses it before jsf sees it."""
    marker = tmp_path / "evaluated"
    code = f"lambda: open({str(marker)!r}, 'w').write('x')"
    for keyword in ("$provider", "$state", "$fixed"):
        response = ask(client, obj({"x": {"type": "array", "items": {"type": "string"}, keyword: code}}))
        assert response.status_code == 400
        assert response.json()["error"]["param"] == f"{PARAM}.properties.x.{keyword}"
    assert not marker.exists()


def _chain(levels: int) -> dict[str, Any]:
    """A schema of ``levels`` definitions, each referring twice to the next: 2**levels subschemas once
    its references are expanded, from 3 * levels written ones."""
    defs = {f"d{i}": obj({"a": {"$ref": f"#/$defs/d{i + 1}"}, "b": {"$ref": f"#/$defs/d{i + 1}"}})
            for i in range(levels)}
    return {**obj({"r": {"$ref": "#/$defs/d0"}}), "$defs": {**defs, f"d{levels}": {"type": "integer"}}}


HOSTILE: dict[str, tuple[Any, str]] = {
    "remote_ref": (obj({"x": {"$ref": "http://127.0.0.1:9/x.json#/a"}}), f"{PARAM}.properties.x.$ref"),
    "file_ref": (obj({"x": {"$ref": "/etc/passwd#/a"}}), f"{PARAM}.properties.x.$ref"),
    "huge_min_items": (obj({"x": {"type": "array", "items": {"type": "integer"}, "minItems": 10**9}}),
                       f"{PARAM}.properties.x.minItems"),
    "huge_min_length": (obj({"x": {"type": "string", "minLength": 10**9}}), f"{PARAM}.properties.x.minLength"),
    "not_a_schema": (obj({"x": {"type": 5}}), f"{PARAM}.properties.x.type"),
    "bad_regex": (obj({"x": {"type": "string", "pattern": "(("}}), f"{PARAM}.properties.x.pattern"),
    "unsatisfiable_lengths": (obj({"x": {"type": "string", "minLength": 5, "maxLength": 2}}), PARAM),
    "unique_items_beyond_the_enum": (obj({"x": {"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": True,
                                                "minItems": 3}}), PARAM),
    "exponential_refs": (_chain(40), PARAM),
    "nested_plus": (obj({"x": {"type": "string", "pattern": "^((((a+)+)+)+)+$"}}), PARAM),
    "deep_nesting": (functools.reduce(lambda inner, _: obj({"a": inner}), range(100), {"type": "string"}), PARAM),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_schema_is_a_quick_400_naming_the_field(client: TestClient, name: str) -> None:
    schema, param = HOSTILE[name]
    started = time.monotonic()
    response = ask(client, schema)
    elapsed = time.monotonic() - started
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert elapsed < STALL_S, f"{name}: {elapsed:.1f} s"
    assert ask(client, BATTERY["pattern"]).status_code == 200  # and the mock still answers


def test_a_refused_schema_leaves_no_deadline_behind() -> None:
    import sys

    from mock_server import watchdog

    before = sys.gettrace()
    with pytest.raises(ApiError):
        structured.generate(HOSTILE["unique_items_beyond_the_enum"][0], [b"\x00" * 32], PARAM)
    assert sys.gettrace() is before
    assert watchdog.active() == 0


def test_references_are_refused_by_their_expanded_size_before_jsf_sees_them() -> None:
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        structured.generate(_chain(40), [b"\x00" * 32], PARAM)
    assert time.monotonic() - started < structured.BUDGET_S / 2  # counted, not built and stopped by the budget
    assert caught.value.param == PARAM and "expand to" in caught.value.message
    # a shared definition within the limit is answered in full (2**10 leaves)
    [text] = structured.generate(_chain(10), [b"\x00" * 32], PARAM)
    jsonschema.validate(json.loads(text), _chain(10))
    assert json.dumps(json.loads(text)).count(":") == 2 ** 11 - 1


# ---- the suite's check: every answer shape it reads can fail it -------------------------------------------

def _exchange(request: dict[str, Any], status: int, body: Any, media_type: str = "application/json") -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange("POST", "http://127.0.0.1:9/v1/x", request, status, {"content-type": media_type}, raw)


def _stream(pieces: list[str]) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


CODE = obj({"code": {"type": "string", "pattern": "^[A-Z]{2}$"}, "at": {"type": "string", "format": "date-time"}})
CHAT_REQUEST = {"response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": CODE}}}
RESPONSES_REQUEST = {"text": {"format": {"type": "json_schema", "name": "c", "schema": CODE}}}
GOOD = '{"code": "FR", "at": "2026-01-02T03:04:05Z"}'
LOOSE = GOOD.replace("FR", "fr")
BAD_FORMAT = GOOD.replace("2026-01-02T03:04:05Z", "yesterday")


def _responses(text: str | None) -> dict[str, Any]:
    part = {"type": "output_text", "text": text} if text is not None else {"type": "refusal", "refusal": "no"}
    return {"output": [{"type": "message", "content": [part]}]}


@pytest.mark.parametrize(("exchange", "fails_with"), [
    (_exchange(CHAT_REQUEST, 200, {"choices": [{"message": {"content": GOOD}}]}), None),
    (_exchange(CHAT_REQUEST, 200, {"choices": [{"message": {"content": GOOD}}, {"message": {"content": LOOSE}}]}),
     "pattern"),
    (_exchange(CHAT_REQUEST, 200, {"choices": [{"message": {"content": BAD_FORMAT}}]}), "format"),
    (_exchange(CHAT_REQUEST, 200, {"choices": [{"message": {"content": None, "refusal": "I can't"}}]}), "JSON text"),
    (_exchange(CHAT_REQUEST, 200, {"choices": [{"message": {"content": "Sure! Here it is"}}]}), "JSON text"),
    (_exchange(CHAT_REQUEST, 400, {"error": {"message": "no"}}), "200"),
    (_exchange(CHAT_REQUEST, 200, _stream(['{"code": "F', 'R", "at": "2026-01-02T03:04:05Z"}']),
               "text/event-stream"), None),
    (_exchange(CHAT_REQUEST, 200, _stream(['{"code": "f', 'r", "at": "2026-01-02T03:04:05Z"}']),
               "text/event-stream"), "pattern"),
    (_exchange(RESPONSES_REQUEST, 200, _responses(GOOD)), None),
    (_exchange(RESPONSES_REQUEST, 200, _responses(LOOSE)), "pattern"),
    (_exchange(RESPONSES_REQUEST, 200, _responses(None)), "no content"),
])
def test_the_check_judges_every_answer_shape(exchange: Exchange, fails_with: str | None) -> None:
    check = REGISTRY["structured_output_honours_schema"]
    if fails_with is None:
        check(exchange, CHAT)
        return
    with pytest.raises(CheckFailure) as failure:
        check(exchange, CHAT)
    assert fails_with in f"{failure.value.expected} {failure.value.received}"


# ---- as an SDK user sees it ---------------------------------------------------------------------------

class Address(BaseModel):
    street: str = Field(min_length=3, max_length=40)
    zip_code: str = Field(pattern=r"^[0-9]{5}$")


class Member(BaseModel):
    id: uuid.UUID
    joined: datetime.date
    tier: Literal["free", "pro", "team"]
    score: float = Field(ge=0, le=10, multiple_of=0.5)
    tags: list[Literal["a", "b", "c"]] = Field(min_length=1, max_length=3)
    address: Address
    referrer: Address | None


def test_the_openai_sdk_parses_a_pydantic_model() -> None:
    """``client.chat.completions.parse(response_format=Model)``: the SDK sends the model's strict schema
    ($defs, anyOf for Optional, format uuid and date, pattern, lengths, multipleOf) and pydantic accepts
    the answer."""
    with serve(create_app(MockConfig())) as url, \
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0) as client:
        completion = client.chat.completions.parse(model="gpt-4o-mini", response_format=Member,
                                                   messages=[{"role": "user", "content": "A member, please."}])
    member = completion.choices[0].message.parsed
    assert isinstance(member, Member) and isinstance(member.address, Address)


def test_a_request_with_many_choices_lets_another_request_in_between_its_answers(monkeypatch: Any) -> None:
    """Answers are made one at a time (jsf's generators are process-wide), each within its own budget: a
    request's ``n`` answers must not hold the others back for n budgets. So the draw lock is taken for the
    schema's preparation and then once per answer, and let go between them, where another request's
    answer may come (judged by the lock's own record, not by thread timing, which a loaded machine
    reorders: Python's lock is not fair)."""
    import threading

    events: list[str] = []

    class Recording:
        """The draw lock, recording each hold."""

        def __init__(self) -> None:
            self.inner = threading.Lock()

        def __enter__(self) -> None:
            self.inner.acquire()
            events.append("take")

        def __exit__(self, *_: object) -> None:
            events.append("let go")
            self.inner.release()

    real = structured.instance

    def instance(prepared: Any, key: bytes) -> str:
        events.append(f"make {key.decode()}")
        return real(prepared, key)

    monkeypatch.setattr(structured, "_DRAW_LOCK", Recording())
    monkeypatch.setattr(structured, "instance", instance)
    structured.generate(obj({"a": {"type": "integer"}}), [b"many-0", b"many-1", b"many-2"], "p")
    assert events == ["take", "let go", *(step for i in range(3) for step in ("take", f"make many-{i}", "let go"))]
