"""Scripted upstream behaviour: the scripts in force and their steps (what ``mock_server/stages/scripted.py``
answers with; the module docstring there lists the answers). Plain data and logic: no HTTP here.

A script matches requests by nonce (a string found in any string of the request body), by
operationId, or both; each of its steps answers ``times`` matching requests in turn, and a script
whose steps are all used is gone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Statuses an ``error`` step may answer (001 "Errors", 002 "Errors", 004 "Error Codes", and the
#: Messages protocol's 529).
ERROR_STATUSES = (400, 401, 402, 403, 429, 500, 502, 503, 529)
#: What a step may answer.
ANSWERS = ("error", "malformed", "cut_stream", "reset_stream", "pace", "delay", "pass")
#: Most times one step may answer, most steps in a script, most scripts at once.
MAX_TIMES, MAX_STEPS, MAX_SCRIPTS = 10_000, 100, 1_000
#: Longest ``delay`` (ms) and ``pace`` gap (ms) a step may ask for.
MAX_DELAY_MS = 600_000
#: Most events ``after_events`` may name.
MAX_EVENTS = 100_000

class ScriptError(ValueError):
    """A script the control API refuses: ``param`` names the offending field (``steps[1].status``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Step:
    """One step of a script: its ``answer`` and its parameters (module docstring); ``times`` left."""

    answer: str
    times: int = 1
    status: int | None = None
    message: str | None = None
    reason: str | None = None
    retry_after: float | None = None
    after_events: int = 0
    gap_ms: float = 0.0
    ms: float = 0.0

    def describe(self) -> str:
        """A short label for the journal: ``error 503``, ``pace 200 ms``."""
        if self.answer == "error":
            return f"error {self.status}"
        if self.answer in ("cut_stream", "reset_stream"):
            return f"{self.answer} after {self.after_events} events"
        if self.answer == "pace":
            return f"pace {self.gap_ms:g} ms"
        return f"delay {self.ms:g} ms" if self.answer == "delay" else self.answer


@dataclass
class Script:
    """Steps answering the requests that match ``nonce`` and ``operation_id`` (None: any)."""

    id: str
    steps: list[Step]
    nonce: str | None = None
    operation_id: str | None = None
    used: int = 0

    def matches(self, operation_id: str, body: Any) -> bool:
        """Whether a request of ``operation_id`` with ``body`` is one of this script's."""
        if self.operation_id is not None and operation_id != self.operation_id:
            return False
        return self.nonce is None or any(self.nonce in text for text in strings(body))

    def as_dict(self) -> dict[str, Any]:
        """The script as the control API shows it: what is left of each step."""
        return {"id": self.id, "match": {"nonce": self.nonce, "operation_id": self.operation_id},
                "used": self.used, "steps": [{"answer": step.answer, "times_left": step.times,
                                              "label": step.describe()} for step in self.steps]}


class ScriptBook:
    """The scripts in force, oldest first; a request takes a step of the first script it matches."""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self._ids = itertools.count(1)

    def add(self, steps: list[Step], nonce: str | None, operation_id: str | None) -> Script:
        """Put a new script in force. Raises ScriptError when :data:`MAX_SCRIPTS` are."""
        if len(self.scripts) >= MAX_SCRIPTS:
            raise ScriptError(f"At most {MAX_SCRIPTS} scripts may be in force; delete some first.", "steps")
        script = Script(f"script-{next(self._ids)}", steps, nonce, operation_id)
        self.scripts.append(script)
        return script

    def take(self, operation_id: str, body: Any) -> tuple[Script, Step] | None:
        """The step the first matching script answers this request with (used up by one), or None."""
        for script in self.scripts:
            if not script.matches(operation_id, body):
                continue
            step = script.steps[0]
            step.times -= 1
            script.used += 1
            if step.times <= 0:
                script.steps.pop(0)
                if not script.steps:
                    self.scripts.remove(script)
            return script, step
        return None

    # The asynchronous face the scripted stage and the control API use: a fleet's book
    # (``fleet/scripts.py``) is in Redis and overrides these; in process they are the methods around them.

    async def take_async(self, operation_id: str, body: Any) -> tuple[Script, Step] | None:
        """:meth:`take`, awaited."""
        return self.take(operation_id, body)

    async def add_async(self, steps: list[Step], nonce: str | None, operation_id: str | None) -> Script:
        """:meth:`add`, awaited."""
        return self.add(steps, nonce, operation_id)

    async def remove_async(self, script_id: str) -> bool:
        """:meth:`remove`, awaited."""
        return self.remove(script_id)

    async def clear_async(self) -> int:
        """:meth:`clear`, awaited."""
        return self.clear()

    async def listed(self) -> list[Script]:
        """The scripts in force, oldest first, as they are now."""
        return list(self.scripts)

    def remove(self, script_id: str) -> bool:
        """Delete one script; whether it was in force."""
        before = len(self.scripts)
        self.scripts = [script for script in self.scripts if script.id != script_id]
        return len(self.scripts) < before

    def clear(self) -> int:
        """Delete every script; returns how many there were."""
        count = len(self.scripts)
        self.scripts.clear()
        return count


def parse_steps(raw: Any, messages_protocol: bool) -> list[Step]:
    """The steps of a control-API script body's ``steps``. Raises ScriptError naming the bad field.

    ``messages_protocol``: the script names a Messages-protocol operation, the only ones a 529 step
    (overloaded_error) may answer.
    """
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STEPS:
        raise ScriptError(f"steps must be a list of 1 to {MAX_STEPS} steps.", "steps")
    steps = []
    for index, item in enumerate(raw):
        where = f"steps[{index}]"
        if not isinstance(item, Mapping):
            raise ScriptError(f"{where} must be an object with an 'answer'.", where)
        known = {"answer", "times", "status", "message", "reason", "retry_after", "after_events", "gap_ms", "ms"}
        extra = sorted(set(item) - known)
        if extra:
            raise ScriptError(f"{where}: unknown field {extra[0]!r}.", f"{where}.{extra[0]}")
        answer = item.get("answer")
        if answer not in ANSWERS:
            raise ScriptError(f"{where}.answer must be one of {', '.join(ANSWERS)}; got {answer!r}.",
                              f"{where}.answer")
        step = Step(answer, times=_integer(item, "times", where, 1, MAX_TIMES, 1))
        if answer == "error":
            step.status = _integer(item, "status", where, 400, 599, None)
            if step.status not in ERROR_STATUSES:
                raise ScriptError(f"{where}.status must be one of {', '.join(map(str, ERROR_STATUSES))}.",
                                  f"{where}.status")
            if step.status == 529 and not messages_protocol:
                raise ScriptError(f"{where}.status 529 (overloaded_error) is the Messages protocol's: name a "
                                  "Messages operation in match.operation_id.", f"{where}.status")
            step.message = _text(item, "message", where)
            step.reason = _text(item, "reason", where)
            if step.reason is not None and step.status != 400:
                raise ScriptError(f"{where}.reason is the safety rejection's: it needs status 400.", f"{where}.reason")
            retry = item.get("retry_after")
            if retry is not None:
                if isinstance(retry, bool) or not isinstance(retry, int | float) or not 0 <= retry <= 86_400:
                    raise ScriptError(f"{where}.retry_after must be a number of s from 0 to 86400.",
                                      f"{where}.retry_after")
                step.retry_after = float(retry)
        elif answer in ("cut_stream", "reset_stream"):
            step.after_events = _integer(item, "after_events", where, 0, MAX_EVENTS, 1)
        elif answer == "pace":
            step.gap_ms = _integer(item, "gap_ms", where, 1, MAX_DELAY_MS, None)
        elif answer == "delay":
            step.ms = _integer(item, "ms", where, 1, MAX_DELAY_MS, None)
        steps.append(step)
    return steps


def _integer(item: Mapping[str, Any], name: str, where: str, low: int, high: int, default: int | None) -> int:
    value = item.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScriptError(f"{where}.{name} must be an integer from {low} to {high}.", f"{where}.{name}")
    return value


def _text(item: Mapping[str, Any], name: str, where: str) -> str | None:
    value = item.get(name)
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 2000):
        raise ScriptError(f"{where}.{name} must be a string of 1 to 2000 characters.", f"{where}.{name}")
    return value




def strings(value: Any, budget: int = 1_000_000) -> Iterable[str]:
    """Every string (keys aside) in a parsed JSON value, depth first, at most ``budget`` of them;
    iterative, so a deeply nested body cannot exhaust the stack."""
    stack = [value]
    while stack and budget > 0:
        item = stack.pop()
        if isinstance(item, str):
            budget -= 1
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
