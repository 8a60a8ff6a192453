"""Pipeline stage: read the request body, JSON or multipart/form-data, within the size limit.

The limit is the operation's ``x-upload-limit-bytes`` (OpenAI's figures, as the spec records them),
else :data:`DEFAULT_LIMIT_BYTES`. A body over it gets 413 while it is read: a declared
Content-Length over the limit is refused before any byte is read, and a chunked body is counted as
it arrives and refused at the first byte past the limit, never buffered whole (002 "Errors": 413
"Image file too large").
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import AsyncGenerator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from mock_server import jsoncodec, offload
from mock_server.errors import ApiError, excerpt, field_path
from mock_server.stages.validation import BodyValidator
from spec import Operation, find_operation, load_api
from spec.extensions import upload_limit_bytes

log = logging.getLogger(__name__)

#: Body limit of operations whose spec gives none, in bytes (32 MiB).
DEFAULT_LIMIT_BYTES = 32 * 1024 * 1024
#: Largest non-file form field, in bytes.
MAX_FIELD_BYTES = 1024 * 1024


#: The uploads of a body without files (shared: read-only).
NO_FILES: Mapping[str, list[UploadFile]] = MappingProxyType({})


class Body(NamedTuple):
    """A read body: ``data`` is what the spec's schema validates (for multipart, each file stands as
    its filename); ``files`` maps a form field to its uploads (Starlette ``UploadFile``s)."""

    data: Any
    files: Mapping[str, list[UploadFile]] = NO_FILES
    raw: bytes | None = None
    """The bytes of a JSON body as received (the request journal keeps them: one object, not a tree)."""


#: The body of an operation that takes none.
NO_BODY = Body(None)


class BodyReader:
    """Reads one operation's request body; build at start-up, call per request."""

    def __init__(self, operation: Operation) -> None:
        content = operation.spec.get("requestBody", {}).get("content", {})
        self.json = "application/json" in content
        self.multipart = "multipart/form-data" in content
        self.expects_body = self.json or self.multipart
        self.api, self.operation_id = operation.api, operation.operation_id
        """Whether the operation documents a request body at all."""
        self.limit = upload_limit_bytes(operation) or DEFAULT_LIMIT_BYTES
        self._fields: Mapping[str, Any] = {}
        if self.multipart:
            self._fields = _properties(operation.api, content["multipart/form-data"].get("schema", {}))


    async def read(self, request: Request) -> Body:
        """Read and parse the body. Raises ApiError 413 over the limit, 400 for an unparsable body or a
        content type the operation does not take."""
        if self.multipart and (not self.json or _media_type(request) == "multipart/form-data"):
            self._check_declared(request)
            return await self._multipart(request)
        # the body as it arrives, counted (``_bytes``); the usual one, in a single ASGI message, taken here
        message = await request.receive()
        raw = message.get("body", b"") if message["type"] == "http.request" else None
        if raw is None or len(raw) > self.limit or message.get("more_body", False):
            raw = await self._bytes(request, message)
        if offload.is_complex(raw):  # judged in the worker process first: refusing it never holds the loop
            try:
                refusal = await offload.run(judge_json, self.api, self.operation_id, raw)
            except offload.WorkerUnavailable:
                log.warning("the worker process is unavailable: judging a %d-byte body inline", len(raw))
                refusal = None  # judged below, on the event loop
            if refusal is not None:
                raise refusal.error()
        return Body(_parse_json(raw), NO_FILES, raw)

    def _check_declared(self, request: Request) -> None:
        """Raises ApiError 413 when the Content-Length header already says the body is over the limit."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            raise self._too_large()

    def _too_large(self) -> ApiError:
        return ApiError(413, f"Request body too large: the limit is {self.limit} bytes.", code="request_too_large")

    async def _counted(self, request: Request) -> AsyncGenerator[bytes, None]:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > self.limit:
                raise self._too_large()
            yield chunk

    async def _bytes(self, request: Request, message: Message) -> bytes:
        """The whole body, counted as it arrives, from its first ASGI ``message`` on (received by the
        caller). A body that came in one message (the usual JSON request) is taken straight from
        ``receive``, without ``Request.stream``'s generator."""
        if message["type"] != "http.request":  # the client went away before sending a body
            raise ClientDisconnect()
        first: bytes = message.get("body", b"")
        if len(first) > self.limit:
            raise self._too_large()
        if not message.get("more_body", False):
            return first
        self._check_declared(request)  # before reading the rest of a body that will not fit
        chunks, total = [first], len(first)
        while True:
            message = await request.receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.limit:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _multipart(self, request: Request) -> Body:
        if "boundary=" not in request.headers.get("content-type", ""):
            raise ApiError(400, "This endpoint takes multipart/form-data with a boundary.")
        parser = MultiPartParser(request.headers, self._counted(request), max_part_size=MAX_FIELD_BYTES)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            part = getattr(parser, "_current_part", None)  # Starlette's part being read (private: may go)
            field = getattr(part, "field_name", "") or None
            if field is not None and exc.message.startswith("Part exceeded"):
                raise ApiError(400, f"Invalid value for '{excerpt(field)}': a form field holds at most "
                                    f"{MAX_FIELD_BYTES} bytes (files go in file parts).", param=field) from exc
            raise ApiError(400, f"Malformed multipart body: {exc.message}") from exc
        data: dict[str, Any] = {}
        files: dict[str, list[UploadFile]] = {}
        for raw_key, value in form.multi_items():
            key = raw_key.removesuffix("[]")
            if isinstance(value, UploadFile):
                files.setdefault(key, []).append(value)
                item: Any = value.filename or key
            else:
                item = _coerce(value, self._fields.get(key, {}))
            if _is_array(self._fields.get(key, {})) or raw_key.endswith("[]"):
                data.setdefault(key, []).append(item)
            else:
                data[key] = item
        for key, value in data.items():
            if isinstance(value, list) and len(value) == 1 and not _is_array(self._fields.get(key, {})):
                data[key] = value[0]
            elif isinstance(value, list) and not _accepts_array(self._fields.get(key, {})):
                data[key] = value[-1]
        return Body(data, files)


def _media_type(request: Request) -> str:
    """The request's Content-Type without parameters, in lower case (``""`` without one)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _parse_json(raw: bytes) -> Any:
    if not raw:
        raise ApiError(400, "The request body is empty; this endpoint expects a JSON object.")
    try:
        return jsoncodec.loads(raw)
    except jsoncodec.UnsafeJson as exc:
        raise unsafe_json_error(exc) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"We could not parse the JSON body of your request: {exc}.") from exc


class Refusal(NamedTuple):
    """An :class:`ApiError` as plain values, to cross a process boundary (exceptions with keyword
    arguments do not pickle back)."""

    status: int
    message: str
    param: str | None
    code: str | None

    @classmethod
    def of(cls, error: ApiError) -> Refusal:
        return cls(error.status, error.message, error.param, error.code)

    def error(self) -> ApiError:
        """The :class:`ApiError` to raise."""
        return ApiError(self.status, self.message, param=self.param, code=self.code)


def judge_json(api: str, operation_id: str, raw: bytes) -> Refusal | None:
    """The refusal of the JSON body ``raw`` of operation ``operation_id`` of spec ``api`` (what the
    request pipeline would answer for it: unparsable, unsafe or schema-invalid), or None when it is
    valid. Runs in :mod:`mock_server.offload`'s worker process for a body of many values; the
    validator of each operation is built there once."""
    try:
        data = _parse_json(raw)
    except ApiError as error:
        return Refusal.of(error)
    validator = _worker_validator(api, operation_id)
    if validator.is_valid(data):
        return None
    found = validator.error(data)
    return None if found is None else Refusal.of(found)


@functools.cache
def _worker_validator(api: str, operation_id: str) -> BodyValidator:
    return BodyValidator(find_operation(api, operation_id))


def unsafe_json_error(exc: jsoncodec.UnsafeJson) -> ApiError:
    """The 400 of a body :func:`jsoncodec.loads` refused as unsafe, naming the field where it has one."""
    param = field_path(exc.path) or None
    where = f"'{param}'" if param else "the request body"
    return ApiError(400, f"Invalid value for {where}: {exc.message}.", param=param)


def _properties(api: str, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The top-level properties of a (possibly ``$ref``) object schema of spec ``api``."""
    if "$ref" in schema:
        node: Any = load_api(api)
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return dict(schema.get("properties", {}))


def _types(schema: Mapping[str, Any]) -> set[str]:
    kinds = schema.get("type")
    found = set(kinds if isinstance(kinds, list) else [kinds] if kinds else [])
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        found |= _types(branch)
    return found


def _is_array(schema: Mapping[str, Any]) -> bool:
    return _types(schema) == {"array"}


def _accepts_array(schema: Mapping[str, Any]) -> bool:
    return "array" in _types(schema)


def _coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """A form field's text as the type its schema asks for; unchanged when it does not convert."""
    kinds = _types(schema.get("items", {})) if _is_array(schema) else _types(schema)
    try:
        if "integer" in kinds and text.lstrip("-").isdigit():
            return int(text)
        if "number" in kinds and math.isfinite(number := float(text)):  # "nan", "inf": left as text, refused
            return number
    except ValueError:
        return text
    if "boolean" in kinds and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text
