"""Deliberately broken targets: the mock with one contract rule broken on the way out.

Each is an ASGI wrapper around the mock that rewrites whole responses (buffered, which is fine
for the short answers the suite asks for). Used to prove that the suite catches each break.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from mock_server import create_app

#: (status, content type, body) -> (status, body)
Rewrite = Callable[[int, str, bytes], tuple[int, bytes]]


class Rewriting:
    """ASGI middleware that buffers each HTTP response and passes it through ``rewrite``."""

    def __init__(self, app: Any, rewrite: Rewrite) -> None:
        self.app = app
        self.rewrite = rewrite

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                    ctype = dict(headers).get(b"content-type", b"").decode()
                    status, new_body = self.rewrite(start["status"], ctype, bytes(body))
                    headers.append((b"content-length", str(len(new_body)).encode()))
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": new_body})

        await self.app(scope, receive, capture)


def _json_rewrite(change: Callable[[int, Any], tuple[int, Any]]) -> Rewrite:
    def rewrite(status: int, ctype: str, body: bytes) -> tuple[int, bytes]:
        if not ctype.startswith("application/json"):
            return status, body
        new_status, data = change(status, json.loads(body))
        return new_status, json.dumps(data).encode()

    return rewrite


def _sse_rewrite(change: Callable[[bytes], bytes]) -> Rewrite:
    return lambda status, ctype, body: (status, change(body) if ctype.startswith("text/event-stream") else body)


def _drop_usage(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and data.get("object") == "chat.completion":
        data.pop("usage", None)
    return status, data


def _flat_error(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and "error" in data:
        return status, {"message": data["error"]["message"], "code": status}
    return status, data


def _401_as_400(status: int, data: Any) -> tuple[int, Any]:
    if status == 401:
        data["error"]["type"] = "invalid_request_error"
        return 400, data
    return status, data


def _corrupt_image(status: int, data: Any) -> tuple[int, Any]:
    for choice in data.get("choices", []) if isinstance(data, dict) else []:
        for image in choice["message"].get("images", []):
            image["image_url"]["url"] = "data:image/png;base64,iVBORw0KGgoAAAAN" + "A" * 40
    return status, data


def _new_id_per_chunk(body: bytes) -> bytes:
    counter = iter(range(10**6))
    return re.sub(rb'"id":"chatcmpl-[0-9a-f]+"', lambda m: b'"id":"chatcmpl-%d"' % next(counter), body)


BROKEN: dict[str, tuple[Rewrite, str]] = {
    # name: (rewrite, the check that must report it)
    "drops_usage": (_json_rewrite(_drop_usage), "response_schema_conformance"),
    "no_done": (_sse_rewrite(lambda body: body.replace(b"data: [DONE]\n\n", b"")), "stream_ends_with_done"),
    "flat_error_envelope": (_json_rewrite(_flat_error), "error_envelope_conformance"),
    "401_as_400": (_json_rewrite(_401_as_400), "missing_key_rejected"),
    "corrupt_image": (_json_rewrite(_corrupt_image), "golden_fixture"),
    "chunk_ids_change": (_sse_rewrite(_new_id_per_chunk), "stream_ids_consistent"),
}


def broken_app(name: str) -> Any:
    """The mock wrapped so that it breaks rule ``name`` of :data:`BROKEN`."""
    return Rewriting(create_app(), BROKEN[name][0])
