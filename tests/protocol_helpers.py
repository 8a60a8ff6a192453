"""Helpers of the multi-protocol tests: spec validators of spec/multi_protocol.yaml and an SSE reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from spec import find_operation, response_media, response_schema, schema_validator

API = "multi_protocol"


@dataclass(frozen=True)
class Contract:
    """Validators of one operation's answers: the 200 JSON body, one SSE item, and an error status."""

    operation_id: str

    @property
    def operation(self) -> Any:
        return find_operation(API, self.operation_id)

    def body(self, status: int = 200) -> Draft202012Validator:
        schema = response_schema(self.operation, status)
        assert schema is not None, f"{self.operation_id} documents no JSON {status}"
        return schema_validator(API, schema)

    def sse_item(self) -> Draft202012Validator:
        sse = response_media(self.operation, 200)["text/event-stream"]["x-sse"]
        return schema_validator(API, sse["item"])

    def sse_rules(self) -> dict[str, Any]:
        return dict(response_media(self.operation, 200)["text/event-stream"]["x-sse"])


def read_sse(text: str) -> list[tuple[str | None, Any]]:
    """``(event name or None, decoded data)`` of each event of an SSE body (``data:`` lines joined)."""
    events: list[tuple[str | None, Any]] = []
    name: str | None = None
    data: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line:
            if data:
                joined = "\n".join(data)
                events.append((name, joined if joined == "[DONE]" else json.loads(joined)))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].strip())
    return events


def check_typed_stream(text: str, contract: Contract) -> list[dict[str, Any]]:
    """Validate a named-event stream against the spec's ``x-sse``: every payload against the item schema,
    each ``event:`` equal to the payload ``type``, the first and last types allowed; return the payloads."""
    rules = contract.sse_rules()
    validator = contract.sse_item()
    events = read_sse(text)
    assert events, "empty stream"
    for name, payload in events:
        assert payload != "[DONE]", "this protocol has no [DONE] sentinel"
        validator.validate(payload)
        assert name == payload["type"], f"event: {name} but type {payload.get('type')}"
    assert events[0][0] in rules["first"]
    assert events[-1][0] in rules["last"]
    return [payload for _, payload in events]
