"""The interface of the pipeline's cross-cutting stages: one concern per module, built per operation at start-up.

A stage runs around the handler of every request of its operation: ``before`` (or ``check``, its
synchronous form) after the request is authenticated and validated (it may raise
:class:`~mock_server.errors.ApiError` to refuse it),
``after`` (or ``finish``, its synchronous form) on the handler's response (it may add headers, pace or
cut a stream). Stages run in the
order of :data:`mock_server.stages.pipeline.FACTORIES` before the handler and in reverse after it.
Per-request data a stage
keeps for its ``after`` goes in ``call.state``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response

from mock_server.context import Call, Services
from spec import Operation


class Stage:
    """A stage that does nothing; subclasses override what they need."""

    #: The ``call.state`` key without which :meth:`after` returns the response unchanged (what its
    #: ``before`` notes for it): the pipeline then skips the call. None: ``after`` is always called.
    after_needs: str | None = None

    def check(self, call: Call) -> Awaitable[None] | None:
        """Judge the request before its handler runs, without awaiting anything; raise ApiError to
        refuse it. A stage whose judgement never awaits (or only sometimes) overrides this rather than
        :meth:`before`: the pipeline then calls it directly, sparing a coroutine per request (about 700
        instructions), and awaits what it returns when that is not None (the judgement's awaiting part)."""
        return None

    async def before(self, call: Call) -> None:
        """Judge the request before its handler runs; raise ApiError to refuse it (by default :meth:`check`,
        and what it returns awaited)."""
        waiting = self.check(call)
        if waiting is not None:
            await waiting

    def finish(self, call: Call, response: Response) -> Response:
        """Return the response to send (the handler's, changed or wrapped), without awaiting anything. A
        stage whose ``after`` never awaits overrides this rather than :meth:`after`: the pipeline then
        calls it directly, as it calls :meth:`check`."""
        return response

    async def after(self, call: Call, response: Response) -> Response:
        """Return the response to send (the handler's, changed or wrapped; by default :meth:`finish`)."""
        return self.finish(call, response)


StageFactory = Callable[[Operation, Services], Stage | None]

