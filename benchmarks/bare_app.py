"""The reference the budgets are ratios against: a bare Starlette app on the same uvicorn stack.

``POST /v1/chat/completions`` answers a fixed ``chat.completion`` (or, for ``"stream": true`` in the
body, a fixed stream of ``chat.completion.chunk`` events paced by ``BARE_GAP_S`` seconds, default
0.05, and ``data: [DONE]``). No auth, no validation, no limits, no ledger: the fastest a Starlette
app on this machine can answer, so "the mock reaches X% of it" measures the mock's own cost.

Run: ``python -m benchmarks.bare_app --port 8001 [--stack uvloop|asyncio]``: under uvicorn on the mock's
own server stack, the same event loop and the same HTTP protocol classes as ``mock-server serve``
(``mock_server/http_stack.py``, which imports nothing else of the mock), so that a ratio against it
measures the mock's own work and not a difference of protocol code. (``uvicorn benchmarks.bare_app:app``
serves it on uvicorn's stock protocol classes instead.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

#: Inter-chunk gap of the bare stream, in s (the streaming benchmark sets it to the mock's per-token gap).
GAP_S = float(os.environ.get("BARE_GAP_S", "0.05"))
#: Content chunks of the bare stream (the mock's default answer has 24 tokens).
STREAM_PIECES = int(os.environ.get("BARE_STREAM_PIECES", "24"))

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-bare", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
    "system_fingerprint": "fp_bare",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A fixed answer of the bare app.",
                                         "refusal": None}, "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17},
}


def _event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-bare", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()


async def _stream() -> AsyncIterator[bytes]:
    events = [_event({"role": "assistant", "content": ""})]
    events += [_event({"content": f" word{i}"}) for i in range(STREAM_PIECES)]
    events += [_event({}, "stop"), b"data: [DONE]\n\n"]
    for index, event in enumerate(events):
        if index:
            await asyncio.sleep(GAP_S)
        yield event


async def chat_completions(request: Request) -> Response:
    """A fixed completion, or a fixed paced stream when the body asks for one."""
    body = await request.body()
    if b'"stream": true' in body or b'"stream":true' in body:
        return StreamingResponse(_stream(), media_type="text/event-stream")
    return JSONResponse(COMPLETION)


app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


def main(argv: list[str] | None = None) -> int:
    """Serve :data:`app` on 127.0.0.1 (``--host``, ``--port``) with the mock's stack (``--stack``, as
    ``mock-server serve --stack``), one worker, no access log; returns 0 after a clean shutdown."""
    import uvicorn

    from mock_server.http_stack import PROTOCOLS, STACKS

    parser = argparse.ArgumentParser(description="the bare app on the mock's server stack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--stack", choices=sorted(STACKS), default="uvloop")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--no-access-log", action="store_true", help="the access log is always off (uvicorn's flag)")
    args = parser.parse_args(argv)
    stack = STACKS[args.stack]
    uvicorn.run(app, host=args.host, port=args.port, loop=stack["loop"], http=PROTOCOLS[stack["http"]],
                log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
