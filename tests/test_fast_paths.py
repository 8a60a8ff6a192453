"""The hot path's fast libraries agree with the slow ones they stand in for (issue 7).

- ``mock_server.stages.validation``: the Rust validator (``jsonschema_rs``) only answers "valid?"; a body it
  accepts is never looked at by Python ``jsonschema``, so the two must give the same verdict.
- ``mock_server.jsoncodec``: orjson must read and write what the stdlib would.
"""

from __future__ import annotations

import asyncio
import builtins
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.testclient import TestClient

import spec.loader
from conformance.golden import load_cases, render
from conformance.target import Target
from mock_server import MockConfig, create_app, jsoncodec
from mock_server.app import MockRequest, StaticPathRouter
from mock_server.cli import build_parser, default_stack
from mock_server.config import ControlConfig
from mock_server.context import Call
from mock_server.handlers import chat
from mock_server.http_stack import STACKS
from mock_server.stages.body import BodyReader
from mock_server.stages.limits import estimated_tokens
from mock_server.stages.validation import BodyValidator, fast_validator
from mock_server.textgen import HashRandom, count_tokens, key_for, pieces, sentence, sentence_for
from mock_server.tokens import PIECE as _PIECE
from spec import operations, request_body_schema, schema_validator

ROOT = Path(__file__).resolve().parent.parent
TARGET = Target(name="fixtures", base_url="http://127.0.0.1:9", api_key="sk-test")
JSON_OPERATIONS = [op for api in ("openai_gateway", "multi_protocol", "credits_api") for op in operations(api)
                   if request_body_schema(op, "application/json") is not None]


def _golden_bodies() -> list[tuple[str, str, Any]]:
    """(api, operationId, rendered JSON body) of every golden fixture that sends JSON without ``${last:}``."""
    out = []
    for case in load_cases(ROOT / "fixtures"):
        body = case.request.get("json")
        if body is None or "${last:" in json.dumps(body):
            continue
        out.append((case.operation.api, case.operation.operation_id, render(body, TARGET)))
    return out


GOLDEN = _golden_bodies()


def _validators(api: str, operation_id: str) -> tuple[Any, Any]:
    operation = next(op for op in JSON_OPERATIONS if op.api == api and op.operation_id == operation_id)
    schema = request_body_schema(operation, "application/json")
    assert schema is not None
    fast = fast_validator(api, schema)
    assert fast is not None, f"{api}.{operation_id}: the Rust validator could not compile its request body"
    return fast, schema_validator(api, schema)


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=lambda op: f"{op.api}.{op.operation_id}")
def test_every_json_request_body_compiles_to_a_fast_validator(operation: Any) -> None:
    _validators(operation.api, operation.operation_id)


def test_golden_fixture_bodies_get_the_same_verdict_from_both_validators() -> None:
    assert len(GOLDEN) > 40
    verdicts = set()
    for api, operation_id, body in GOLDEN:
        fast, slow = _validators(api, operation_id)
        assert fast.is_valid(body) == slow.is_valid(body), f"{api}.{operation_id}: {body}"
        verdicts.add(slow.is_valid(body))
    assert verdicts == {True, False}  # both kinds were compared


#: JSON leaves a mutation may put anywhere: wrong types, out-of-range numbers, bad enums, formats.
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
                   st.sampled_from(["", "user", "auto", "not a uri", "data:image/png;base64,AAAA", "https://x.y/z",
                                    "1024x1024", "mp3", "wav", "x" * 5000]),
                   st.text(max_size=8))
JSON_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["type", "text", "role", "url", "x"]), inner, max_size=3),
                           max_leaves=6)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return copy


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(GOLDEN), choice=st.integers(0, 10**6), new=JSON_VALUES, drop=st.booleans())
def test_mutated_bodies_get_the_same_verdict_from_both_validators(case: tuple[str, str, Any], choice: int,
                                                                  new: Any, drop: bool) -> None:
    api, operation_id, body = case
    paths = _paths(body)
    path = paths[choice % len(paths)]
    mutated = _replaced(body, path, new)
    if drop and path and isinstance(path[-1], str):  # or remove the field altogether (a missing required one)
        mutated = _replaced(body, path[:-1], {k: v for k, v in _at(body, path[:-1]).items() if k != path[-1]})
    fast, slow = _validators(api, operation_id)
    assert fast.is_valid(mutated) == slow.is_valid(mutated), f"{api}.{operation_id}: {mutated}"


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def test_a_body_the_rust_validator_cannot_take_is_judged_by_python() -> None:
    operation = next(op for op in JSON_OPERATIONS if op.operation_id == "createChatCompletion")
    validator = BodyValidator(operation)
    huge = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2**70}
    validator.validate({**huge, "max_tokens": 5})  # valid: no error
    with pytest.raises(Exception) as raised:  # the Python validator words the error, naming the field
        validator.validate({**huge, "messages": "not a list"})
    assert "messages" in str(raised.value)


@pytest.mark.parametrize("raw", [
    b'{"a": 1, "b": [true, null, 1.5, "\\u00e9\\ud83d\\ude00"]}',
    b'{"big": 123456789012345678901234567890}',      # past 64 bits: the stdlib keeps it exact
    b'{"n": -9223372036854775809}',
    b'{"a": 1, "a": 2}',                               # duplicate keys: the last wins in both
])
def test_loads_reads_what_the_stdlib_reads(raw: bytes) -> None:
    expected, got = json.loads(raw), jsoncodec.loads(raw)
    assert json.dumps(got) == json.dumps(expected)


@pytest.mark.parametrize(("raw", "path"), [
    (b'[1, NaN]', [1]), (b'{"t": Infinity}', ["t"]), (b'{"t": [-Infinity]}', ["t", 0]), (b'{"t": 1e400}', ["t"]),
    (b'{"m": "\\ud800"}', ["m"]), (b'{"m": {"k": "a\\udfff"}}', ["m", "k"]), (b'{"\\ud800": 1}', []),
    (b'{"n": 123456789012345678901234567890, "t": NaN}', ["t"]),  # the long-digit path checks too
    (b"[" * 2000 + b"]" * 2000, []),
])
def test_loads_refuses_what_only_the_stdlib_reads_naming_where(raw: bytes, path: list[Any]) -> None:
    """NaN, infinities and lone surrogates parse in the stdlib only: refused, naming their place (issue 16)."""
    with pytest.raises(jsoncodec.UnsafeJson) as raised:
        jsoncodec.loads(raw)
    assert raised.value.path == path


@pytest.mark.parametrize("raw", [b"{", b'{"a": }', b"\xff\xfe", b"[1,]"])
def test_loads_refuses_what_the_stdlib_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        jsoncodec.loads(raw)


@pytest.mark.parametrize("value", [
    {"id": "x", "n": [1, 2.5, None, True], "text": "caf\u00e9 \U0001f600"},
    {"big": 2**70},                                    # orjson refuses: the stdlib encoder renders it
    {1: "non-string key"},
    [],
])
def test_dumps_sends_the_bytes_jsonresponse_sends(value: Any) -> None:
    assert json.loads(jsoncodec.dumps(value)) == json.loads(JSONResponse(value).body)
    assert jsoncodec.dumps(value) == JSONResponse(value).body


def test_dumps_refuses_what_jsonresponse_refuses() -> None:
    with pytest.raises(TypeError):
        jsoncodec.dumps({"x": object()})
    assert jsoncodec.dumps({"x": math.inf}) == b'{"x":null}'  # the documented difference


def test_serve_defaults_to_the_measured_stack() -> None:
    assert default_stack() == "uvloop"  # uvloop and httptools are runtime dependencies
    assert STACKS["uvloop"] == {"loop": "uvloop", "http": "httptools"}
    args = build_parser().parse_args(["serve", "--stack", "asyncio", "--no-access-log"])
    assert (args.stack, args.no_access_log) == ("asyncio", True)


def test_the_chat_hot_path_reads_no_file_and_loads_no_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 7: "the hot path should do no schema loading, no per-request file I/O"."""
    with TestClient(create_app(MockConfig())) as client:
        headers = {"Authorization": "Bearer sk-test"}
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200  # warm

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"file or schema read on the hot path: {args[:1]}")

        for target, name in ((builtins, "open"), (io, "open"), (yaml, "safe_load"), (spec.loader, "load_api")):
            monkeypatch.setattr(target, name, refuse)
        for request in (body, {**body, "stream": True}, {**body, "messages": "x"}, {**body, "max_tokens": 3}):
            answer = client.post("/v1/chat/completions", json=request, headers=headers)
            assert answer.status_code in (200, 400), answer.text


async def _asgi_post(app: Any, path: str, pieces: list[bytes]) -> tuple[int, Any]:
    """POST ``pieces`` as one ASGI ``http.request`` message each; returns (status, JSON body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"authorization", b"Bearer sk-test")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": piece, "more_body": index < len(pieces) - 1}
                for index, piece in enumerate(pieces)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_a_json_body_sent_in_several_messages_is_read_whole_and_counted_against_the_limit() -> None:
    app = create_app(MockConfig())
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi " * 50}]}).encode()
    pieces = [body[start:start + 16] for start in range(0, len(body), 16)]
    status, answer = asyncio.run(_asgi_post(app, "/v1/chat/completions", pieces))
    assert status == 200, answer
    limit = BodyReader(next(op for op in JSON_OPERATIONS if op.operation_id == "createChatCompletion")).limit
    status, answer = asyncio.run(_asgi_post(app, "/v1/chat/completions", [b" " * (limit // 2)] * 3))
    assert status == 413 and answer["error"]["code"] == "request_too_large"


def test_hash_random_is_deterministic_uniform_and_a_full_random_random() -> None:
    first, second, other = HashRandom(b"k"), HashRandom(b"k"), HashRandom(b"other")
    draws = [first.random() for _ in range(20_000)]
    assert draws == [second.random() for _ in range(20_000)]
    assert draws[:100] != [other.random() for _ in range(100)]
    assert all(0.0 <= x < 1.0 for x in draws) and abs(sum(draws) / len(draws) - 0.5) < 0.01
    counts = [0] * 10
    for _ in range(20_000):
        counts[first.randrange(10)] += 1
    assert min(counts) > 1_800  # each of 10 values near 2,000
    state = first.getstate()
    ahead = [first.getrandbits(70), first.choice("abcdef"), first.uniform(1, 2), first.randbytes(5)]
    first.setstate(state)
    assert [first.getrandbits(70), first.choice("abcdef"), first.uniform(1, 2), first.randbytes(5)] == ahead
    assert first.getrandbits(0) == 0 and first.getrandbits(300) < 2**300
    for size in (1, 23, 32, 33, 70):  # randbytes' one-block fast path draws what getrandbits draws
        fast, slow = HashRandom(b"same"), HashRandom(b"same")
        assert fast.randbytes(size) == slow.getrandbits(8 * size).to_bytes(size, "big")
        assert fast.getrandbits(99) == slow.getrandbits(99)
    with pytest.raises(ValueError):
        first.getrandbits(-1)


def test_the_same_chat_request_gets_the_same_answer() -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Same question"}]}
    answers = []
    for _ in range(2):
        with TestClient(create_app(MockConfig())) as client:
            answer = client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-test"})
            answers.append(answer.json()["choices"][0]["message"]["content"])
    assert answers[0] == answers[1] and len(answers[0].split()) == 23


#: Text with every ASCII character class the token regex tells apart (\\w, \\s, the rest), and some beyond.
TEXTS = st.text(alphabet=st.sampled_from([chr(c) for c in range(128)] + ["\u00e9", "\u00a0", "\u2028", "\U0001f600"]))


@settings(max_examples=500, deadline=None)
@given(text=TEXTS)
def test_count_tokens_counts_what_the_token_regex_finds(text: str) -> None:
    assert count_tokens(text) == len(_PIECE.findall(text))


def test_estimated_tokens_counts_every_string_of_the_body() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello, world"}, {"role": "x", "n": [1, "a b"]}],
            "max_tokens": 7}
    assert estimated_tokens(body) == count_tokens("m user Hello, world x a b") + 7
    assert estimated_tokens({"max_completion_tokens": 3.0, "nested": {"deep": [["one two"]]}}) == 2 + 3


@pytest.mark.parametrize("count", [1, 2, 24, 33, 34, 80])
def test_sentence_for_a_key_is_the_sentence_of_its_generator(count: int) -> None:
    for part in range(40):
        key = key_for(0, "model", part)
        assert sentence_for(key, count) == sentence(HashRandom(key), count)
        assert count_tokens(sentence_for(key, count)) == count


def test_the_pipeline_reads_headers_as_starlette_does() -> None:
    raw = [(b"authorization", b"Bearer a"), (b"x-two", b"1"), (b"authorization", b"Bearer b")]
    headers = MockRequest({"type": "http", "headers": raw}).headers
    assert headers.get("Authorization") == headers["authorization"] == "Bearer a"  # the first occurrence
    assert headers.get("x-mock-fault") is None and headers.get("x-mock-fault", "d") == "d"
    assert headers.getlist("authorization") == ["Bearer a", "Bearer b"] and "X-Two" in headers


def _starlette_pick(router: Router, path: str, method: str) -> BaseRoute | None:
    """The route Starlette's own matching gives a full match (the first one), as ``Router.app`` does."""
    scope = {"type": "http", "path": path, "root_path": "", "method": method}
    return next((route for route in router.routes if route.matches(scope)[0] is Match.FULL), None)


def test_the_static_path_table_picks_the_route_starlettes_matching_picks() -> None:
    config = MockConfig(control=ControlConfig(enabled=True, key="sk-control"))
    router = create_app(config).router
    assert isinstance(router, StaticPathRouter) and ("/v1/chat/completions", "POST") in router.static
    for (path, method), route in router.static.items():
        assert _starlette_pick(router, path, method) is route, (path, method)
    static_paths = {(route.path, method) for route in router.routes if isinstance(route, Route)
                    and not route.param_convertors for method in route.methods or ()}
    assert set(router.static) == static_paths  # every static route is in the table


def test_a_route_behind_an_earlier_match_is_left_to_starlette() -> None:
    async def first(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("dynamic")(scope, receive, send)

    async def second(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("static")(scope, receive, send)

    seen: list[tuple[Any, ...]] = []

    class Endpoint:  # an ASGI endpoint (Starlette wraps plain functions as request/response)
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            seen.append((scope["endpoint"], scope["path_params"], scope["route"].path))
            await self.app(scope, receive, send)

    router = StaticPathRouter([Route("/items/{name}", Endpoint(first), methods=["GET"]),
                               Route("/items/new", Endpoint(second), methods=["GET", "POST"])])
    assert set(router.static) == {("/items/new", "POST")}  # GET /items/new is the dynamic route's
    app = Starlette()
    app.router = router
    client = TestClient(app)
    assert client.get("/items/new").text == "dynamic" and client.post("/items/new").text == "static"
    assert client.delete("/items/new").status_code == 405
    assert seen[0][1:] == ({"name": "new"}, "/items/{name}")  # Starlette's matching
    assert seen[1][0] is router.routes[1].endpoint and seen[1][1:] == ({}, "/items/new")  # the table: the same keys


def test_the_mock_answers_through_the_table_as_through_starlette() -> None:
    with TestClient(create_app(MockConfig())) as client:
        headers = {"Authorization": "Bearer sk-test"}
        assert client.get("/v1/models", headers=headers).status_code == 200
        assert client.head("/v1/models", headers=headers).status_code == 200
        wrong = client.get("/v1/chat/completions", headers=headers)
        assert wrong.status_code == 405 and wrong.json()["error"]["message"].startswith("Method GET")
        assert client.post("/v1/nothing", headers=headers).status_code == 404
    with TestClient(create_app(MockConfig()), root_path="/gateway") as client:  # Starlette's own matching
        answer = client.post("/gateway/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200, answer.text


async def _exchange(app: Any, method: str, path: str, body: bytes = b"", headers: tuple[tuple[bytes, bytes], ...] = (),
                    root_path: str = "") -> tuple[list[dict[str, Any]], str | None, dict[str, Any]]:
    """One raw ASGI request: (every message the app sent, the exception it raised as ``type: text``, the scope)."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": root_path, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"authorization", b"Bearer sk-test"), (b"x-request-id", b"fixed-id"), *headers]}
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception as error:  # what the server would see (and log)
        return sent, f"{type(error).__name__}: {error}", scope
    return sent, None, scope


def _comparable(sent: list[dict[str, Any]]) -> list[Any]:
    """The messages with what changes from one second to the next (``created``, ``date``) blanked."""
    out = []
    for message in sent:
        message = dict(message)
        if "headers" in message:
            message["headers"] = [(k, v) for k, v in message["headers"] if k != b"date"]
        if "body" in message:
            message["body"] = re.sub(rb'"created":\d+', b'"created":0', message["body"])
        out.append(message)
    return out


def _two_apps(config: MockConfig) -> tuple[Any, Any]:
    """Two identical apps, the second with the direct way off (every request through Starlette's layers)."""
    direct, layered = create_app(config), create_app(config)
    for app in (direct, layered):
        app.middleware_stack = app.build_middleware_stack()
    assert ("/v1/chat/completions", "POST") in direct.direct
    layered.direct = {}
    return direct, layered


def _scope_keys(scope: dict[str, Any], app: Any) -> dict[str, Any]:
    """What Starlette's layers put in the scope, told apart from one app to the other by what it stands for."""
    handlers = scope.get("starlette.exception_handlers")
    return {"app": scope.get("app") is app, "router": scope.get("router") is app.router,
            "route": getattr(scope.get("route"), "path", None), "path_params": scope.get("path_params"),
            "endpoint": getattr(getattr(scope.get("endpoint"), "operation", None), "operation_id", None),
            "handlers": handlers and [sorted((str(key), value.__name__) for key, value in table.items())
                                     for table in handlers]}


CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.mark.parametrize("observed", [True, False])
def test_the_direct_way_answers_as_starlettes_layers(observed: bool) -> None:
    config = MockConfig(observability=observed, control=ControlConfig(enabled=True, key="sk-control"))
    direct, layered = _two_apps(config)
    requests: list[tuple[str, str, bytes, tuple[tuple[bytes, bytes], ...]]] = [
        ("POST", "/v1/chat/completions", CHAT, ()),
        ("POST", "/v1/chat/completions", CHAT[:-1] + b', "stream": true}', ()),
        ("POST", "/v1/chat/completions", b'{"model": "gpt-4o-mini", "messages": "x"}', ()),  # 400
        ("POST", "/v1/chat/completions", b"{", ()),  # 400: not JSON
        ("POST", "/v1/chat/completions", CHAT, ((b"authorization", b"Bearer nope"),)),  # the first one counts
        ("POST", "/v1/chat/completions", CHAT, ((b"x-mock-fault", b"500"),)),
        ("GET", "/v1/models", b"", ()), ("HEAD", "/v1/models", b"", ()),
        ("GET", "/v1/chat/completions", b"", ()),  # 405, through Starlette on both
        ("POST", "/v1/nothing", b"", ()),  # 404
    ]
    for method, path, body, headers in requests:
        fast, fast_error, fast_scope = asyncio.run(_exchange(direct, method, path, body, headers))
        slow, slow_error, slow_scope = asyncio.run(_exchange(layered, method, path, body, headers))
        assert _comparable(fast) == _comparable(slow), (method, path, body)
        assert fast_error == slow_error is None
        assert ((b"x-request-id", b"fixed-id") in fast[0]["headers"]) is observed
        assert _scope_keys(fast_scope, direct) == _scope_keys(slow_scope, layered), (method, path)
    # a root_path goes through Starlette's matching on both
    fast, _, scope = asyncio.run(_exchange(direct, "POST", "/gw/v1/chat/completions", CHAT, root_path="/gw"))
    assert fast[0]["status"] == 200 and "starlette.exception_handlers" in scope


async def _raise_runtime(call: Any) -> Any:
    raise RuntimeError("handler bug")


async def _raise_disconnect(call: Any) -> Any:
    raise ClientDisconnect()


async def _raise_http(call: Any) -> Any:
    raise HTTPException(418, "teapot")


async def _raise_mid_stream(call: Any) -> Any:
    async def pieces() -> Any:
        yield b"data: one\n\n"
        raise RuntimeError("stream bug")

    return StreamingResponse(pieces(), media_type="text/event-stream")


@pytest.mark.parametrize("observed", [True, False])
@pytest.mark.parametrize("handler", [_raise_runtime, _raise_disconnect, _raise_http, _raise_mid_stream])
def test_the_direct_way_fails_as_starlettes_layers(handler: Any, observed: bool) -> None:
    """A handler's exception gets the answer Starlette's two exception middlewares give it, and the same
    exception reaches the server: a 500 envelope (re-raised), ClientDisconnect's and HTTPException's own
    handlers (not re-raised), and after the answer began, no second answer."""
    direct, layered = _two_apps(MockConfig(observability=observed))
    outcomes = []
    for app in (direct, layered):
        app.router.static[("/v1/chat/completions", "POST")].endpoint.handler = handler
        sent, error, _ = asyncio.run(_exchange(app, "POST", "/v1/chat/completions", CHAT))
        outcomes.append((_comparable(sent), error))
    assert outcomes[0] == outcomes[1]
    sent, error = outcomes[0]
    expected = {_raise_runtime: (500, "RuntimeError: handler bug"), _raise_disconnect: (400, None),
                _raise_http: (418, None), _raise_mid_stream: (200, "RuntimeError: stream bug")}[handler]
    assert (sent[0]["status"], error) == expected
    tagged = observed and handler is not _raise_disconnect  # an answer nobody receives is not tagged
    assert ((b"x-request-id", b"fixed-id") in sent[0]["headers"]) is tagged
    assert [m["type"] for m in sent].count("http.response.start") == 1


def test_the_endpoint_sends_a_plain_answer_as_its_own_call_would() -> None:
    """The endpoint sends a plain ``Response``'s start and body messages itself, without the coroutine of
    ``Response.__call__``: the same messages (status, the very header list, body), and an answer with a
    background task still goes through ``Response.__call__``, which runs the task."""
    from starlette.background import BackgroundTask

    ran: list[str] = []

    def answers() -> list[Any]:
        return [JSONResponse({"a": 1}, headers={"x-one": "1"}), PlainTextResponse("no", status_code=404),
                jsoncodec.json_bytes_response(b'{"b":2}'),
                JSONResponse({"c": 3}, background=BackgroundTask(ran.append, "task"))]

    app = create_app(MockConfig(observability=False))
    endpoint = app.router.static[("/v1/chat/completions", "POST")].endpoint
    for response in answers():
        async def handler(call: Any, response: Any = response) -> Any:
            return response

        endpoint.handler = handler
        sent, error, _ = asyncio.run(_exchange(app, "POST", "/v1/chat/completions", CHAT))
        own: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], own: list[dict[str, Any]] = own) -> None:
            own.append(message)

        asyncio.run(response({"type": "http"}, _never_receive, send))  # the answer as the pipeline left it
        assert error is None and sent == own and sent[0]["headers"] is response.raw_headers
    assert ran == ["task", "task"]  # by the endpoint and by the direct call


async def _never_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def test_an_exception_while_sending_the_start_counts_as_started_both_ways() -> None:
    """Starlette's layers note the start message before passing it on: a send that fails on it gets no
    second answer, and the error reaches the server, on the direct way too."""
    direct, layered = _two_apps(MockConfig())
    outcomes = []
    for app in (direct, layered):
        calls: list[str] = []

        async def failing_send(message: dict[str, Any], calls: list[str] = calls) -> None:
            calls.append(message["type"])
            raise OSError("connection reset")

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
                 "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer sk-test")]}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": CHAT, "more_body": False}

        with pytest.raises(OSError, match="connection reset"):
            asyncio.run(app(scope, receive, failing_send))
        outcomes.append(calls)
    assert outcomes[0] == outcomes[1] == ["http.response.start"]


@pytest.mark.parametrize("limit", [None, 1, 5, 23, 24, 25, 64, 4096])
def test_a_plain_answer_within_max_tokens_is_the_one_splitting_into_tokens_gives(limit: int | None) -> None:
    """The chat handler skips splitting a generated answer into tokens when its known count fits the limit:
    the same content, finish_reason and token count as splitting (the slow path) gives."""
    app = create_app(MockConfig())
    services = app.state.services
    model = services.catalogue.find("gpt-4o-mini", "createChatCompletion")
    for part in range(30):
        messages = [{"role": "user", "content": f"question {part}"}]
        key = key_for(services.config.seed, model.id, messages, None, None, 0)
        answer = chat._answer(services, model, {"model": model.id, "messages": messages}, messages, key, None, limit)
        text = sentence_for(key, chat.ANSWER_TOKENS)
        tokens = pieces(text)  # the slow path: split, then cut at the limit
        if limit is not None and len(tokens) > limit:
            expected = ("".join(tokens[:limit]), "length", limit)
        else:
            expected = (text, "stop", len(tokens))
        assert (answer.content, answer.finish_reason, answer.text_tokens) == expected


def test_an_after_hook_skipped_for_want_of_its_state_key_would_return_the_answer_unchanged() -> None:
    """The pipeline skips a stage's ``after`` when ``call.state`` lacks its ``after_needs`` key: called
    anyway, such a hook returns the very answer it was given, unchanged, a JSON answer or an SSE stream."""
    config = MockConfig(control=ControlConfig(enabled=True, key="sk-control"))
    app = create_app(config)
    endpoint = app.router.static[("/v1/chat/completions", "POST")].endpoint
    skippable = [after for needs, _, after in endpoint.afters if needs is not None]
    assert {type(after.__self__).__name__ for after in skippable} >= {"Faults", "Scripted"}
    request = MockRequest({"type": "http", "headers": []})
    for needs, now, after in endpoint.afters:
        if needs is None:
            continue

        async def events() -> Any:
            yield b"data: {}\n\n"

        for response in (JSONResponse({"a": 1}), StreamingResponse(events(), media_type="text/event-stream")):
            before = (dict(response.headers), getattr(response, "body_iterator", None), getattr(response, "body", None))
            call = Call(request, endpoint.operation, {}, "sk-test", app.state.services,
                        state={"rate_limits": (), "fault": None} if needs != "fault" else {"script_step": None})
            assert (after(call, response) if now else asyncio.run(after(call, response))) is response
            assert (dict(response.headers), getattr(response, "body_iterator", None),
                    getattr(response, "body", None)) == before


def test_the_pipelines_request_is_built_as_starlettes() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {"type": "http", "headers": [], "method": "POST", "path": "/v1/chat/completions"}
    for args in ((scope,), (scope, receive), (scope, receive, send)):
        ours, theirs = MockRequest(*args), Request(*args)
        assert vars(ours) == vars(theirs)
        assert (ours.receive, ours.method, ours.scope) == (theirs.receive, theirs.method, theirs.scope)


@settings(max_examples=500, deadline=None)
@given(raw=st.binary() | st.lists(st.sampled_from([b"1", b"9", b"0", b" ", b",", b"a", b"\xd9", b"\xff", b"12345678"]),
                                  max_size=40).map(b"".join))
def test_the_long_digits_precheck_agrees_with_the_regex(raw: bytes) -> None:
    """``jsoncodec.loads`` counts digits before the regex scan: the same verdict as the regex alone."""
    assert jsoncodec.long_digits(raw) is (jsoncodec._LONG_DIGITS.search(raw) is not None)
    assert jsoncodec.long_digits(b"x" + b"7" * 19) and not jsoncodec.long_digits(b"7" * 18 + b",7")


def test_a_stage_that_never_awaits_is_checked_without_a_coroutine_in_the_same_order() -> None:
    """The pipeline calls a stage's synchronous ``check`` directly where its ``before`` is the base's (which
    only calls ``check``), and awaits any other ``before``: the same hooks, in the stages' order, as awaiting
    every ``before``. A fleet's rate limits (Redis, awaited) keep their ``before``."""
    from mock_server.stages.base import Stage
    from mock_server.stages.limits import SharedRateLimits

    app = create_app(MockConfig(control=ControlConfig(enabled=True, key="sk-control")))
    endpoint = app.router.static[("/v1/chat/completions", "POST")].endpoint
    kinds = [(now, type(hook.__self__).__name__, hook.__name__) for now, hook in endpoint.befores]
    assert kinds == [(True, "Access", "check"), (True, "Scripted", "check"), (True, "Faults", "check"),
                     (True, "RateLimits", "check")]
    for now, hook in endpoint.befores:  # a direct check is what awaiting its stage's before would run
        stage = hook.__self__
        assert (type(stage).before is Stage.before) is now
    assert SharedRateLimits.before is not Stage.before  # so a fleet's limits stay awaited
    services = app.state.services
    request = MockRequest({"type": "http", "headers": []})
    limits = endpoint.befores[-1][1].__self__
    for body in ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]},):
        state_by_way = []
        for way in ("check", "before"):
            services.limiter.reset()
            call = Call(request, endpoint.operation, body, "sk-test", services)
            if way == "check":
                limits.check(call)
            else:
                asyncio.run(limits.before(call))
            state_by_way.append([d._replace(reset_s=round(d.reset_s)) for d in call.state["rate_limits"]])
        assert state_by_way[0] == state_by_way[1]


def test_a_stage_that_never_awaits_after_the_handler_is_called_without_a_coroutine() -> None:
    """The pipeline calls a stage's synchronous ``finish`` directly where its ``after`` is the base's (which
    only calls ``finish``), and awaits any other ``after``: the same hooks, in reverse order, as awaiting
    every ``after``; the rate limits' ``finish`` and ``after`` add the same headers to the same answer."""
    from mock_server.stages.base import Stage

    app = create_app(MockConfig(control=ControlConfig(enabled=True, key="sk-control")))
    endpoint = app.router.static[("/v1/chat/completions", "POST")].endpoint
    kinds = [(needs, now, type(hook.__self__).__name__, hook.__name__) for needs, now, hook in endpoint.afters]
    assert kinds == [(None, True, "RateLimits", "finish"), ("fault", False, "Faults", "after"),
                     ("script_step", False, "Scripted", "after")]
    for _, now, hook in endpoint.afters:
        assert (type(hook.__self__).after is Stage.after) is now
    services = app.state.services
    limits = endpoint.afters[0][2].__self__
    request = MockRequest({"type": "http", "headers": []})
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}
    call = Call(request, endpoint.operation, body, "sk-test", services)
    limits.check(call)
    answers = []
    for way in ("finish", "after"):
        response = JSONResponse({"a": 1})
        returned = limits.finish(call, response) if way == "finish" else asyncio.run(limits.after(call, response))
        assert returned is response
        answers.append(response.raw_headers)
    assert answers[0] == answers[1] and any(name.startswith(b"x-ratelimit-") for name, _ in answers[0])


_ANSWER_TEXT = st.text(max_size=60) | st.sampled_from(["", "A plain sentence.", 'quote " and \\ back', "\x00\x1f\x7f",
                                                       "é ü 中文 🎉", "\ud800 lone", "line\nbreak\ttab"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_ANSWER_TEXT, model=_ANSWER_TEXT, finish=st.sampled_from(["stop", "length"]),
       counts=st.tuples(*[st.integers(0, 10**12)] * 3), created=st.integers(0, 2**40),
       n=st.integers(1, 2), tool=st.booleans(), image=st.booleans())
def test_a_chat_completion_is_rendered_as_dumps_writes_its_object(content: str, model: str, finish: str,
                                                                  counts: tuple[int, int, int], created: int, n: int,
                                                                  tool: bool, image: bool) -> None:
    """The chat answer's JSON filled into a template (one text choice) is byte for byte what
    ``jsoncodec.dumps`` writes for the completion object, and any other answer is that object's dumps."""
    tool_calls = [{"id": "call-1", "type": "function", "function": {"name": "f", "arguments": "{}"}}] if tool else []
    images = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}] if image else []
    answers = [chat.Answer(content=None if tool else content, finish_reason="tool_calls" if tool else finish,
                           tool_calls=tool_calls, images=images) for _ in range(n)]
    prompt, completion, images_tokens = counts
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
             "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": images_tokens, "audio_tokens": 0},
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}}
    completion_id = "chatcmpl-" + "0123456789abcdef01234567"
    try:
        slow: Any = jsoncodec.dumps(chat._completion(completion_id, created, model, answers, usage))
    except (TypeError, UnicodeEncodeError) as refused:  # what the encoders refuse (a lone surrogate)
        slow = type(refused)
    try:
        fast: Any = chat._rendered(completion_id, created, model, answers, usage)
    except (TypeError, UnicodeEncodeError) as refused:
        fast = type(refused)
    assert fast == slow


def test_the_chat_answer_body_is_the_completion_objects_json() -> None:
    """End to end: the body sent for a chat request parses to the completion object, and is its dumps."""
    with TestClient(create_app(MockConfig())) as client:
        for content in ("Hello", 'say "hi" \\ 中文', "x" * 300):
            answer = client.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                                 json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
            assert answer.status_code == 200
            assert answer.content == jsoncodec.dumps(answer.json())


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=0, max_size=64), counter=st.integers(1, 2**63 - 1))
def test_a_stream_block_is_the_sha256_hashlib_gives(key: bytes, counter: int) -> None:
    """``textgen._block`` hashes with CPython's own SHA-256 where there is one: hashlib's digest."""
    import hashlib

    from mock_server.textgen import _block

    assert _block(key, counter) == hashlib.sha256(key + counter.to_bytes(8, "big")).digest()


class _Transport:
    """What a response cycle writes and closes, as events: ("write", bytes) and ("close",)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def write(self, data: bytes) -> None:
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.events.append(("close",))

    def is_closing(self) -> bool:
        return False


def _cycle_run(cls: Any, method: str, messages: list[dict[str, Any]], keep_alive: bool, end: str
               ) -> tuple[bytes, list[Any]]:
    """Serve an app that sends ``messages`` (and then ``end``s: returns, raises, or returns a value) through a
    response cycle of class ``cls`` on a recording transport; returns the bytes written (all writes
    joined), and the outcome: each send's result or error, the closes, the on_response calls."""
    import logging

    from uvicorn.protocols.http.flow_control import FlowControl

    transport = _Transport()
    completed: list[str] = []
    logger = logging.getLogger("test.cycle")
    logger.disabled = True
    cycle = cls(scope={"method": method, "http_version": "1.1", "type": "http"}, transport=transport,
                flow=FlowControl(transport), logger=logger, access_logger=logger, access_log=False,
                default_headers=[(b"date", b"Mon, 07 Dec 2026 00:00:00 GMT"), (b"server", b"x")],
                message_event=asyncio.Event(), expect_100_continue=False, keep_alive=keep_alive,
                on_response=lambda: completed.append("done"))
    outcome: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> Any:
        for message in messages:
            try:
                await send(message)
                outcome.append("sent")
            except Exception as error:  # what the app sees; it stops there, as a real one would
                outcome.append(f"{type(error).__name__}: {error}")
                raise
        if end == "raise":
            raise RuntimeError("app bug")
        return 1 if end == "value" else None

    asyncio.run(cycle.run_asgi(app))
    writes = b"".join(event[1] for event in transport.events if event[0] == "write")
    return writes, [outcome, [event[0] for event in transport.events if event[0] == "close"], completed]


_HEADER_BYTES = st.binary(max_size=12) | st.sampled_from([b"content-type", b"x-ratelimit-remaining-tokens", b"a b",
                                                         b"x\x00", b"ok\t", b"(", b"\x7f", b"caf\xc3\xa9"])
_HEADERS = st.lists(st.tuples(_HEADER_BYTES, _HEADER_BYTES), max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=_HEADERS, method=st.sampled_from(["POST", "GET", "HEAD"]), status=st.sampled_from([200, 204, 304, 429]),
       length=st.sampled_from([None, "exact", "short", "long", b"x"]),
       framing=st.sampled_from([None, b"chunked", b"gzip"]),
       connection=st.sampled_from([None, b"close", b"keep-alive"]),
       bodies=st.lists(st.binary(max_size=20), min_size=0, max_size=3), keep_alive=st.booleans(),
       extra=st.sampled_from([None, "start", "other", "body"]), end=st.sampled_from(["return", "raise", "value"]))
def test_the_lean_cycle_writes_and_fails_as_uvicorns(headers: list[tuple[bytes, bytes]], method: str, status: int,
                                                     length: Any, framing: Any, connection: Any, bodies: list[bytes],
                                                     keep_alive: bool, extra: Any, end: str) -> None:
    """``http_stack.LeanCycle``'s ``send`` writes the same bytes as uvicorn's ``RequestResponseCycle`` (held
    header block and all), closes and completes alike, and raises the same errors for the same messages:
    any header bytes (bad names and values included), any framing, HEAD, 204/304, a body shorter or longer
    than its Content-Length, a message out of order, and an app that stops, fails or returns a value after
    any of them (``run_asgi``'s 500s and closes)."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from mock_server.http_stack import LeanCycle

    total = sum(len(body) for body in bodies)
    headers = list(headers)
    if length is not None:
        value = {"exact": total, "short": max(total - 1, 0), "long": total + 1}.get(length, length)
        headers.append((b"Content-Length", b"%d" % value if isinstance(value, int) else value))
    if framing is not None:
        headers.append((b"transfer-encoding", framing))
    if connection is not None:
        headers.append((b"connection", connection))
    messages: list[dict[str, Any]] = [{"type": "http.response.start", "status": status, "headers": headers}]
    messages += [{"type": "http.response.body", "body": body, "more_body": index < len(bodies) - 1}
                 for index, body in enumerate(bodies)]
    if extra is not None:
        messages.append({"type": {"start": "http.response.start", "other": "http.other",
                                  "body": "http.response.body"}[extra], "status": 200, "headers": [], "body": b"z"})
    assert (_cycle_run(LeanCycle, method, messages, keep_alive, end)
            == _cycle_run(RequestResponseCycle, method, messages, keep_alive, end))


def test_the_lean_cycle_writes_a_fixed_length_answer_once_and_the_mock_uses_it() -> None:
    """The usual answer (Content-Length, then its body) goes out in one write, the same bytes as uvicorn's
    two; ``mock-server serve``'s httptools protocol builds its cycles as LeanCycle, by uvicorn's own code."""
    from uvicorn.protocols.http import httptools_impl

    from mock_server.http_stack import PROTOCOLS, LeanCycle

    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-length", b"7"), (b"content-type", b"application/json")]}
    body = {"type": "http.response.body", "body": b'{"a":1}'}
    lean, _ = _cycle_run(LeanCycle, "POST", [start, body], True, "return")
    stock, _ = _cycle_run(httptools_impl.RequestResponseCycle, "POST", [start, body], True, "return")
    assert lean == stock and lean.endswith(b'\r\n\r\n{"a":1}')
    writes: list[bytes] = []

    class Counting(_Transport):
        def write(self, data: bytes) -> None:
            writes.append(data)

    cycle = LeanCycle(scope={"method": "POST", "http_version": "1.1", "type": "http"}, transport=Counting(),
                      flow=None, logger=None, access_logger=None, access_log=False, default_headers=[],
                      message_event=asyncio.Event(), expect_100_continue=False, keep_alive=True,
                      on_response=lambda: None)
    cycle.flow = type("Flow", (), {"write_paused": False})()
    for message in (start, body):
        asyncio.run(cycle.send(message))
    assert len(writes) == 1
    protocol = PROTOCOLS["httptools"]
    assert protocol.on_headers_complete.__code__ is httptools_impl.HttpToolsProtocol.on_headers_complete.__code__
    assert protocol.on_headers_complete.__globals__["RequestResponseCycle"] is LeanCycle


def test_the_lean_cycle_is_used_only_with_the_uvicorn_it_copies() -> None:
    """LeanCycle copies uvicorn 0.55's ``send`` and ``run_asgi``: with a uvicorn whose cycle differs, the
    protocol builds uvicorn's own cycle (a copy would silently keep the old behaviour)."""
    from uvicorn.protocols.http import httptools_impl

    from mock_server import http_stack

    assert http_stack.copies(httptools_impl.RequestResponseCycle)
    assert http_stack.CYCLE is http_stack.LeanCycle

    class Changed(httptools_impl.RequestResponseCycle):
        async def send(self, message: Any) -> None:  # another uvicorn's send
            await super().send(message)

    assert not http_stack.copies(Changed)


def test_the_lean_cycle_writes_nothing_held_once_the_client_has_gone() -> None:
    """An app that started a fixed-length answer (its header block held for the body) and then failed after the
    client disconnected: the held block is dropped, not written to the closed transport (uvloop raises
    RuntimeError there, which surfaced as "Task exception was never retrieved")."""
    import logging

    from uvicorn.protocols.http.flow_control import FlowControl

    from mock_server.http_stack import LeanCycle

    class Closed(_Transport):
        def write(self, data: bytes) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    logger = logging.getLogger("test.cycle.gone")
    logger.disabled = True
    transport = Closed()
    cycle = LeanCycle(scope={"method": "POST", "http_version": "1.1", "type": "http"}, transport=transport,
                      flow=FlowControl(transport), logger=logger, access_logger=logger, access_log=False,
                      default_headers=[], message_event=asyncio.Event(), expect_100_continue=False, keep_alive=True,
                      on_response=lambda: None)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"7")]})
        cycle.disconnected = True  # the client goes (uvicorn's protocol sets this on connection_lost)
        raise RuntimeError("app bug after the client left")

    asyncio.run(cycle.run_asgi(app))  # raised RuntimeError from the write before the fix
    assert cycle._held == b"" and ("write",) not in {event[:1] for event in transport.events}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(st.tuples(st.sampled_from(["ok", "invalid", "unauthorised"]),
                          st.one_of(st.sampled_from([0.0, 0.001, 0.005, 0.0050001, 120.0, 121.0]),
                                    st.floats(0, 300, allow_nan=False))), min_size=1, max_size=6))
def test_the_endpoint_counts_an_answer_as_operation_metrics_answered_does(
        requests: list[tuple[str, float]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline counts each answer in ``/metrics`` in place; its counts, buckets and sum are those
    :meth:`OperationMetrics.answered` keeps for the same statuses and durations (the pipeline's clock faked)."""
    import types

    from mock_server import app as app_module
    from mock_server.metrics import OperationMetrics

    app = create_app(MockConfig())
    endpoint = app.router.static[("/v1/chat/completions", "POST")].endpoint
    bodies = {"ok": (CHAT, ()), "invalid": (b'{"model": "gpt-4o-mini", "messages": "x"}', ()),
              "unauthorised": (CHAT, ((b"authorization", b"Bearer nope"),))}
    expected = OperationMetrics("createChatCompletion")
    for kind, seconds in requests:
        ticks = iter([1000.0, 1000.0 + seconds])  # the pipeline's two readings: the request taken, answered
        monkeypatch.setattr(app_module, "time", types.SimpleNamespace(perf_counter=lambda ticks=ticks: next(ticks),
                                                                      monotonic=app_module.time.monotonic))
        body, headers = bodies[kind]
        sent, error, _ = asyncio.run(_exchange(app, "POST", "/v1/chat/completions", body, headers))
        assert error is None and next(ticks, None) is None
        expected.answered(sent[0]["status"], (1000.0 + seconds) - 1000.0)
    counted = endpoint.metrics
    assert counted.statuses == expected.statuses and len(counted.statuses) >= 1
    assert counted.duration.counts == expected.duration.counts
    assert counted.duration.sum_s == expected.duration.sum_s


_CHAT_MESSAGES = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]),
     "content": st.one_of(st.text(max_size=40), st.just([{"type": "text", "text": "look"},
                                                          {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]))}),
    min_size=1, max_size=3)
_CHAT_OPTIONS = st.fixed_dictionaries({}, optional={
    "max_tokens": st.one_of(st.none(), st.integers(1, 40)), "max_completion_tokens": st.integers(20, 30),
    "n": st.one_of(st.none(), st.integers(1, 2)), "stream": st.booleans(), "temperature": st.floats(0, 2),
    "response_format": st.sampled_from([{}, {"type": "text"}, {"type": "json_object"}]),
    "tools": st.sampled_from([[], [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]]),
    "tool_choice": st.sampled_from(["none", "auto"])})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(["gpt-4o-mini", "gemini-2.5-flash-image-generation", "text-only-mini", "no-such-model",
                              "gpt-image-1", "stand-in-\udcff"]),
       messages=_CHAT_MESSAGES, options=_CHAT_OPTIONS, capped=st.booleans())
def test_the_usual_chat_request_is_answered_as_the_general_way_answers_it(
        model: str, messages: list[dict[str, Any]], options: dict[str, Any], capped: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``handlers/chat._usual`` (one plain text choice, in process) gives the bytes, status, headers, spend
    and id sequence of the general way, for the requests it takes and the ones it leaves (refusals included)."""
    from mock_server.config import KeyConfig, UnknownModelsConfig

    body = json.dumps({"model": model, "messages": messages, **options}).encode()
    # a capped key pays for about one chat answer (24 output tokens of gpt-4o-mini: 14.4e-6 USD): then 402
    stand_ins = UnknownModelsConfig(serve=True, stand_ins={"createChatCompletion": "gpt-4o-mini"})
    config = MockConfig(keys=(KeyConfig("sk-test", spend_limit_usd=0.00002 if capped else None),),
                        unknown_models=stand_ins if model.startswith("stand-in") else UnknownModelsConfig())
    outcomes = []
    for usual in (True, False):
        monkeypatch.setattr(chat, "USUAL_WAY", usual)
        app = create_app(config)
        sent = []
        for _ in range(2):  # a second request: the spend and the id sequence carry on alike
            answer, error, _ = asyncio.run(_exchange(app, "POST", "/v1/chat/completions", body))
            sent.append((_comparable(answer), error))
        outcomes.append((sent, app.state.services.spend.spent_usd("sk-test")))
    assert outcomes[0] == outcomes[1]


_HEADER_BYTES = st.binary(max_size=12).map(lambda raw: raw.replace(b"\n", b"_"))


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(_HEADER_BYTES, _HEADER_BYTES), max_size=80),
       form=st.sampled_from(["tuples", "lists", "iterator", "mixed"]))
def test_the_journal_keeps_request_headers_as_sent_whatever_their_form(pairs: list[tuple[bytes, bytes]],
                                                                        form: str) -> None:
    """``Journal.record`` flattens the headers with ``sum`` for a few tuples and with ``chain`` otherwise: the
    entry's headers are the pairs sent, in order, for any number of them and any iterable ASGI allows."""
    from starlette.responses import Response

    from mock_server.journal import Journal
    from mock_server.stages.body import Body

    headers: Any = {"tuples": pairs, "lists": [list(pair) for pair in pairs], "iterator": iter(pairs),
                    "mixed": [list(pair) if index % 2 else pair for index, pair in enumerate(pairs)]}[form]
    journal = Journal(size=4)
    scope = {"method": "POST", "path": "/v1/chat/completions", "query_string": b"", "headers": headers}
    journal.record(scope, "createChatCompletion", Body({"a": 1}, raw=b'{"a":1}'), 0.0, Response(b"ok"))
    assert journal.entries[0].headers == tuple(pairs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bits=st.integers(0, 2**96 - 1))
def test_a_fresh_request_id_is_req_and_24_hex_digits_of_its_96_bits(bits: int,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``observability.new_request_id`` writes its fresh id without %-formatting: ``b"req_%024x" % bits``."""
    from mock_server import observability

    class Bits:
        def getrandbits(self, k: int) -> int:
            assert k == 96
            return bits

    with monkeypatch.context() as patch:
        patch.setattr(observability, "_ids", Bits())
        assert observability.new_request_id({"headers": [(b"x-request-id", b"bad id")]}) == b"req_%024x" % bits
