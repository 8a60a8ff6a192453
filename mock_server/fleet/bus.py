"""The fleet's control bus: a change made through one replica's control API reaches every replica
before the control call answers.

A request on the bus is published on ``gc:<ns>:bus`` (Redis pub/sub) with a reply list; every
replica's listener (including the asker's) runs the handler of its kind and pushes its answer on
that list; the asker waits for as many answers as ``PUBLISH`` counted listeners, for at most
:data:`ASK_TIMEOUT_S`. So "set these fault rates" is in force on every replica once the control API
has answered, and "what does the journal hold" gathers every replica's entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mock_server.fleet.store import RedisStore, StateUnavailable, guarded

#: Most seconds an ask waits for every replica's answer (under the store's socket timeout).
ASK_TIMEOUT_S = 1.5
#: Seconds between two attempts of a listener whose Redis connection broke.
RECONNECT_S = 0.5
#: Seconds a reply list lives in Redis.
REPLY_TTL_S = 10

log = logging.getLogger("mock_server.fleet.bus")

#: What a replica does for one kind of request: its arguments (JSON) -> its answer (JSON-able).
BusHandler = Callable[[Any], Awaitable[Any]]


class Bus:
    """Publish requests to every replica and gather their answers (module docstring). ``handlers`` maps
    a kind to what this replica does for it; ``on_connect`` runs each time the listener (re)subscribes
    (to reload state that may have changed while it was away)."""

    def __init__(self, store: RedisStore, handlers: Mapping[str, BusHandler],
                 on_connect: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.on_connect = on_connect
        self.channel = store.key("bus")
        self.ready = asyncio.Event()

    async def ask(self, kind: str, args: Any = None) -> list[Any]:
        """Every listening replica's answer to ``kind`` with ``args``. Raises :class:`StateUnavailable`
        when Redis fails or a replica does not answer within :data:`ASK_TIMEOUT_S`."""
        reply = self.store.key("reply", secrets.token_hex(8))
        loop = asyncio.get_running_loop()
        with guarded():
            listeners = await self.store.client.publish(self.channel, json.dumps(
                {"kind": kind, "args": args, "reply": reply}))
            answers: list[Any] = []
            deadline = loop.time() + ASK_TIMEOUT_S
            while len(answers) < listeners:
                left = deadline - loop.time()
                popped = await self.store.client.blpop([reply], timeout=max(left, 0.01)) if left > 0 else None
                if popped is None:
                    raise StateUnavailable(f"{len(answers)} of {listeners} replicas answered {kind!r} in time")
                answers.append(json.loads(popped[1]))
            await self.store.client.delete(reply)
        return answers

    async def listen(self) -> None:
        """Serve the bus until cancelled, resubscribing after any Redis failure (``on_connect`` each time)."""
        failing = False
        while True:
            pubsub = self.store.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if self.on_connect is not None:
                    await self.on_connect()
                self.ready.set()
                if failing:
                    log.warning("fleet bus: listening again")
                failing = False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._serve(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis away (or a bad message): wait, then resubscribe
                if not failing:  # once per outage, not every RECONNECT_S
                    log.warning("fleet bus: %s; resubscribing every %g s", error, RECONNECT_S)
                failing = True
                await asyncio.sleep(RECONNECT_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _serve(self, request: Mapping[str, Any]) -> None:
        handler = self.handlers.get(request.get("kind", ""))
        answer = await handler(request.get("args")) if handler is not None else None
        with guarded():
            await self.store.client.rpush(request["reply"], json.dumps(answer))
            await self.store.client.expire(request["reply"], REPLY_TTL_S)

