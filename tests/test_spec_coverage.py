"""The specs say everything the five seed documents say: an explicit list, written from the documents.

Each entry names an operation and one thing a document states about it: a request field and its
constraints, a response field, a status code and its ``error.type``, an operating figure. Each
constraint is its own test, so a failure names exactly what is missing. The list is closed over
operations too: an operation in the specs that is not listed here fails, so new ones get listed.

Where a document is silent and the spec mirrors OpenAI or Anthropic, only the things the brief of
the spec relies on are listed (marked "mirrors" below), not every mirrored field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from spec import find_operation, load_api, operations, resolve, response_media, response_schema, schema_validator
from spec.coverage import COVERAGE_FILE, REFRESH_COMMAND, render
from spec.fields import FieldMatch, alternatives, find_field, request_schemas
from spec.loader import api_names

D000, D001, D002, D003, D004 = "000", "001", "002", "003", "004"
GW, MP, CR = "openai_gateway", "multi_protocol", "credits_api"

# ---- operations: (api, method, path, operationId, seed document) -------------------------------
OPERATIONS = [
    (GW, "post", "/v1/chat/completions", "createChatCompletion", D001),
    (GW, "post", "/v1/images/generations", "createImage", D002),
    (GW, "post", "/v1/images/edits", "createImageEdit", D002),
    (GW, "post", "/v1/audio/speech", "createSpeech", D000),
    (GW, "post", "/v1/audio/transcriptions", "createTranscription", D000),
    (GW, "post", "/v1/audio/translations", "createTranslation", D000),
    (GW, "get", "/v1/models", "listModels", D001),
    (MP, "post", "/v1/chat/completions", "createChatCompletion", D003),
    (MP, "post", "/v1/responses", "createResponse", D003),
    (MP, "post", "/v1/messages", "createMessage", D003),
    (CR, "post", "/api/v1/multimodal/tts", "createMultimodalTts", D004),
    (CR, "post", "/api/v1/multimodal/image", "createMultimodalImage", D004),
    (CR, "post", "/api/v1/multimodal/video/i2v", "createImageToVideo", D004),
    (CR, "post", "/api/v1/multimodal/video/t2v", "createTextToVideo", D004),
    (CR, "post", "/api/v1/multimodal/video/cogvideox", "createCogVideoX", D004),
    (CR, "get", "/api/v1/multimodal/usage", "listMultimodalUsage", D004),
    (CR, "get", "/api/v1/multimodal/usage/{usage_id}", "getMultimodalUsage", D004),
    (CR, "get", "/api/v1/managed/usage", "getManagedUsage", D004),
    (CR, "post", "/api/v1/public/zerodb/files/upload", "uploadZeroDbFile", D004),
    # the calls the official SDKs make besides the documented ones (issue 17)
    (GW, "get", "/v1/models/{model}", "retrieveModel", D001),
    (MP, "post", "/v1/messages/count_tokens", "countMessageTokens", D003),
]

ANY = object()  # an expected value that only asks for presence
REQ = {"required": True}
OPT = {"required": False}
STR = {"type": "string"}
INT = {"type": "integer"}
CHAT_PARTS = {"values": {"text", "image_url", "input_audio", "video_url", "video"}}

# ---- request fields: (api, operationId, field path, {constraint: expected}) ----------------------
# Constraints: required, type, minLength, maxLength, minimum, maximum, enum, default, const;
# values = these const/enum values are all allowed; nullable = null is allowed too;
# absent = the field must not exist.
REQUEST_FIELDS: list[tuple[str, str, str, dict[str, Any]]] = [
    # 001 Chat Completions, 000 content parts, 002 native image generation
    (GW, "createChatCompletion", "model", {**REQ, **STR}),
    (GW, "createChatCompletion", "messages", {**REQ, "type": "array"}),
    (GW, "createChatCompletion", "messages[].role", {"values": {"system", "developer", "user", "assistant", "tool"}}),
    (GW, "createChatCompletion", "messages[].content[].type", {"values": {"text", "image_url", "file"}}),
    (GW, "createChatCompletion", "messages[].content[].image_url.url", {**REQ, **STR}),
    (GW, "createChatCompletion", "messages[].images[].image_url.url", STR),
    (GW, "createChatCompletion", "stream", {"type": "boolean", "default": False}),
    (GW, "createChatCompletion", "tools[].function.name", REQ),
    (GW, "createChatCompletion", "tools[].function.parameters", {"type": "object"}),
    (GW, "createChatCompletion", "response_format.type", {"values": {"json_schema"}}),
    (GW, "createChatCompletion", "max_tokens", {"type": "integer"}),
    (GW, "createChatCompletion", "max_completion_tokens", {"type": "integer"}),
    # 002 Images API request body table
    (GW, "createImage", "model", {**REQ, **STR}),
    (GW, "createImage", "prompt", {**REQ, **STR}),
    (GW, "createImage", "n", {**OPT, **INT, "default": 1, "minimum": 1}),
    (GW, "createImage", "size", {**OPT, **STR}),
    (GW, "createImage", "quality", {**OPT, **STR}),
    (GW, "createImage", "style", {**OPT, **STR}),
    (GW, "createImage", "background", {**OPT, **STR}),
    (GW, "createImage", "response_format", {**OPT, "enum": ["url", "b64_json"], "default": "url"}),
    (GW, "createImage", "safety_identifier", {**OPT, **STR}),
    # 000/002 image edits (mirrors OpenAI)
    (GW, "createImageEdit", "image", REQ),
    (GW, "createImageEdit", "mask", OPT),
    (GW, "createImageEdit", "prompt", {**REQ, **STR}),
    (GW, "createImageEdit", "model", STR),
    (GW, "createImageEdit", "n", {"default": 1}),
    (GW, "createImageEdit", "size", STR),
    (GW, "createImageEdit", "response_format", {"enum": ["url", "b64_json"], "default": "url"}),
    # 000 speech (mirrors OpenAI)
    (GW, "createSpeech", "model", {**REQ, **STR}),
    (GW, "createSpeech", "input", {**REQ, **STR}),
    (GW, "createSpeech", "voice", {**REQ, **STR}),
    (GW, "createSpeech", "response_format", {"enum": ["mp3", "opus", "aac", "flac", "wav", "pcm"], "default": "mp3"}),
    (GW, "createSpeech", "speed", {"type": "number", "minimum": 0.25, "maximum": 4.0, "default": 1}),
    (GW, "createSpeech", "instructions", {**OPT, **STR}),
    # 000 transcriptions and translations (mirrors OpenAI)
    (GW, "createTranscription", "file", REQ),
    (GW, "createTranscription", "model", {**REQ, **STR}),
    (GW, "createTranscription", "language", {**OPT, **STR}),
    (GW, "createTranscription", "prompt", {**OPT, **STR}),
    (
        GW,
        "createTranscription",
        "response_format",
        {"enum": ["json", "text", "srt", "verbose_json", "vtt"], "default": "json"},
    ),
    (GW, "createTranscription", "temperature", {"type": "number"}),
    (GW, "createTranscription", "timestamp_granularities[]", {"values": {"word", "segment"}}),
    (GW, "createTranslation", "file", REQ),
    (GW, "createTranslation", "model", {**REQ, **STR}),
    (GW, "createTranslation", "language", {"absent": True}),
    (GW, "createTranslation", "prompt", {**OPT, **STR}),
    (
        GW,
        "createTranslation",
        "response_format",
        {"enum": ["json", "text", "srt", "verbose_json", "vtt"], "default": "json"},
    ),
    (GW, "createTranslation", "temperature", {"type": "number"}),
    # 003 Chat Completions content blocks
    (MP, "createChatCompletion", "model", REQ),
    (MP, "createChatCompletion", "messages[].content[].type", CHAT_PARTS),
    (MP, "createChatCompletion", "messages[].content[].text", STR),
    (MP, "createChatCompletion", "messages[].content[].image_url.url", {**REQ, **STR}),
    (MP, "createChatCompletion", "messages[].content[].image_url.detail", {"enum": ["low", "auto", "high"]}),
    (MP, "createChatCompletion", "messages[].content[].input_audio.data", {**REQ, **STR}),
    (MP, "createChatCompletion", "messages[].content[].input_audio.format", {**REQ, "values": {"wav", "mp3"}}),
    (MP, "createChatCompletion", "messages[].content[].video_url.url", {**REQ, **STR}),
    (MP, "createChatCompletion", "messages[].content[].video", {**REQ, "type": "array"}),
    (MP, "createChatCompletion", "messages[].content[].video[]", STR),
    # 003 Responses image input (+ mirrors OpenAI Responses)
    (MP, "createResponse", "model", {**REQ, **STR}),
    (MP, "createResponse", "input", REQ),
    (MP, "createResponse", "input[].type", {"values": {"message"}}),
    (MP, "createResponse", "input[].role", {"values": {"user"}}),
    (MP, "createResponse", "input[].content[].type", {"values": {"input_text", "input_image"}}),
    (MP, "createResponse", "input[].content[].text", STR),
    (MP, "createResponse", "input[].content[].image_url", STR),
    (MP, "createResponse", "input[].content[].detail", {"enum": ["low", "high", "auto"]}),
    (MP, "createResponse", "instructions", OPT),
    (MP, "createResponse", "max_output_tokens", {**OPT, "type": "integer"}),
    (MP, "createResponse", "stream", {"type": "boolean"}),
    (MP, "createResponse", "tools", {"type": "array"}),
    (MP, "createResponse", "temperature", {"type": "number"}),
    # 003 Messages image input (+ mirrors Anthropic Messages)
    (MP, "createMessage", "model", {**REQ, **STR}),
    (MP, "createMessage", "max_tokens", {**REQ, "type": "integer", "minimum": 1}),
    (MP, "createMessage", "messages", {**REQ, "type": "array"}),
    (MP, "createMessage", "messages[].role", {"values": {"user", "assistant"}}),
    (MP, "createMessage", "messages[].content[].type", {"values": {"text", "image"}}),
    (MP, "createMessage", "messages[].content[].source.type", {"values": {"url", "base64"}}),
    (MP, "createMessage", "messages[].content[].source.url", {**REQ, **STR}),
    (MP, "createMessage", "messages[].content[].source.media_type", REQ),
    (MP, "createMessage", "messages[].content[].source.data", {**REQ, **STR}),
    (MP, "createMessage", "system", OPT),
    (MP, "createMessage", "stream", {"type": "boolean"}),
    (MP, "createMessage", "temperature", {"type": "number"}),
    (MP, "createMessage", "tools", {"type": "array"}),
    # 004 Text-to-Speech
    (CR, "createMultimodalTts", "text", {**REQ, **STR, "minLength": 1, "maxLength": 5000}),
    (CR, "createMultimodalTts", "voice", {**OPT, **STR, "default": "Wise_Woman"}),
    # 004 Image Generation
    (CR, "createMultimodalImage", "prompt", {**REQ, **STR, "minLength": 1, "maxLength": 2000}),
    (CR, "createMultimodalImage", "width", {**OPT, **INT, "minimum": 512, "maximum": 2048, "default": 1024}),
    (CR, "createMultimodalImage", "height", {**OPT, **INT, "minimum": 512, "maximum": 2048, "default": 1024}),
    (CR, "createMultimodalImage", "style", {**OPT, **STR, "nullable": True, "default": None}),
    # 004 Video: I2V
    (CR, "createImageToVideo", "image_url", {**REQ, **STR}),
    (CR, "createImageToVideo", "motion_prompt", {**REQ, **STR, "minLength": 1, "maxLength": 1000}),
    (CR, "createImageToVideo", "provider", {**OPT, "enum": ["wan22", "seedance", "sora2"], "default": "wan22"}),
    # 004 Video: T2V
    (CR, "createTextToVideo", "prompt", {**REQ, **STR, "minLength": 1, "maxLength": 1000}),
    (CR, "createTextToVideo", "duration", {**OPT, **INT, "minimum": 1, "maximum": 10, "default": 5}),
    # 004 Video: CogVideoX
    (CR, "createCogVideoX", "prompt", {**REQ, **STR, "minLength": 1, "maxLength": 1000}),
    (CR, "createCogVideoX", "num_frames", {**OPT, **INT, "enum": [17, 33, 49], "default": 49}),
    (
        CR,
        "createCogVideoX",
        "guidance_scale",
        {**OPT, "type": "number", "minimum": 1.0, "maximum": 20.0, "default": 6.0},
    ),
    (CR, "createCogVideoX", "num_inference_steps", {**OPT, **INT, "minimum": 20, "maximum": 100, "default": 50}),
]

# ---- parameters: (api, operationId, in, name, {constraint: expected}) ----------------------------
PARAMETERS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    (CR, "listMultimodalUsage", "query", "skip", {**OPT, **INT, "minimum": 0, "default": 0}),
    (CR, "listMultimodalUsage", "query", "limit", {**OPT, **INT, "minimum": 1, "maximum": 100, "default": 50}),
    (
        CR,
        "listMultimodalUsage",
        "query",
        "endpoint_type",
        {**OPT, "enum": ["tts", "image", "video_i2v", "video_t2v", "video_cogvideox"]},
    ),
    (CR, "getMultimodalUsage", "path", "usage_id", {**REQ, **STR}),
    (MP, "createMessage", "header", "anthropic-version", {**REQ, **STR}),
    (MP, "countMessageTokens", "header", "anthropic-version", {**REQ, **STR}),
    (GW, "retrieveModel", "path", "model", {**REQ, **STR}),
]

# ---- response fields: (api, operationId, status, media type, field path, {constraint: expected}) -
JSON = "application/json"
RESPONSE_FIELDS: list[tuple[str, str, int, str, str, dict[str, Any]]] = [
    # 002 native image generation response
    (GW, "createChatCompletion", 200, JSON, "id", {**REQ, **STR}),
    (GW, "createChatCompletion", 200, JSON, "object", {"const": "chat.completion"}),
    (GW, "createChatCompletion", 200, JSON, "created", {**REQ, **INT}),
    (GW, "createChatCompletion", 200, JSON, "model", REQ),
    (GW, "createChatCompletion", 200, JSON, "choices[].message.content", REQ),
    (GW, "createChatCompletion", 200, JSON, "choices[].message.images[].type", {"const": "image_url"}),
    (GW, "createChatCompletion", 200, JSON, "choices[].message.images[].image_url.url", {**REQ, **STR}),
    (GW, "createChatCompletion", 200, JSON, "choices[].finish_reason", {"values": {"stop"}}),
    (GW, "createChatCompletion", 200, JSON, "usage.prompt_tokens", REQ),
    (GW, "createChatCompletion", 200, JSON, "usage.completion_tokens_details.image_tokens", INT),
    (GW, "createChatCompletion", 200, JSON, "usage.completion_tokens_details.reasoning_tokens", INT),
    (GW, "createChatCompletion", 200, JSON, "usage.completion_tokens_details.audio_tokens", INT),
    # 002 Images API response
    (GW, "createImage", 200, JSON, "created", {**REQ, **INT}),
    (GW, "createImage", 200, JSON, "data", {**REQ, "type": "array"}),
    (GW, "createImage", 200, JSON, "data[].url", STR),
    (GW, "createImage", 200, JSON, "data[].b64_json", STR),
    (GW, "createImage", 200, JSON, "data[].revised_prompt", STR),
    (GW, "createImageEdit", 200, JSON, "data[].url", STR),
    (GW, "createImageEdit", 200, JSON, "data[].b64_json", STR),
    # 000 transcriptions return JSON or plain text; translations return English text
    (GW, "createTranscription", 200, JSON, "text", {**REQ, **STR}),
    (GW, "createTranscription", 200, JSON, "segments", {"type": "array"}),
    (GW, "createTranslation", 200, JSON, "text", {**REQ, **STR}),
    # 001 model list (mirrors OpenAI)
    (GW, "listModels", 200, JSON, "object", {"const": "list"}),
    (GW, "listModels", 200, JSON, "data[].id", {**REQ, **STR}),
    (GW, "listModels", 200, JSON, "data[].object", {"const": "model"}),
    (GW, "listModels", 200, JSON, "data[].created", INT),
    (GW, "listModels", 200, JSON, "data[].owned_by", STR),
    (GW, "retrieveModel", 200, JSON, "id", {**REQ, **STR}),
    (GW, "retrieveModel", 200, JSON, "object", {"const": "model"}),
    (MP, "countMessageTokens", 200, JSON, "input_tokens", {**REQ, **INT}),
    # Responses object (mirrors OpenAI)
    (MP, "createResponse", 200, JSON, "id", {**REQ, **STR}),
    (MP, "createResponse", 200, JSON, "object", {"const": "response"}),
    (MP, "createResponse", 200, JSON, "created_at", REQ),
    (MP, "createResponse", 200, JSON, "status", {**REQ, "values": {"completed", "in_progress", "failed"}}),
    (MP, "createResponse", 200, JSON, "model", REQ),
    (MP, "createResponse", 200, JSON, "output[].type", {"values": {"message"}}),
    (MP, "createResponse", 200, JSON, "output[].id", STR),
    (MP, "createResponse", 200, JSON, "output[].role", {"const": "assistant"}),
    (MP, "createResponse", 200, JSON, "output[].content[].type", {"values": {"output_text"}}),
    (MP, "createResponse", 200, JSON, "output[].content[].text", STR),
    (MP, "createResponse", 200, JSON, "output[].content[].annotations", {"type": "array"}),
    (MP, "createResponse", 200, JSON, "usage.input_tokens", {**REQ, **INT}),
    (MP, "createResponse", 200, JSON, "usage.output_tokens", {**REQ, **INT}),
    (MP, "createResponse", 200, JSON, "usage.total_tokens", {**REQ, **INT}),
    # Messages object (mirrors Anthropic)
    (MP, "createMessage", 200, JSON, "id", {**REQ, **STR}),
    (MP, "createMessage", 200, JSON, "type", {"const": "message"}),
    (MP, "createMessage", 200, JSON, "role", {"const": "assistant"}),
    (MP, "createMessage", 200, JSON, "content[].type", {"values": {"text"}}),
    (MP, "createMessage", 200, JSON, "content[].text", STR),
    (MP, "createMessage", 200, JSON, "model", REQ),
    (MP, "createMessage", 200, JSON, "stop_reason", {**REQ, "values": {"end_turn", "max_tokens", "stop_sequence"}}),
    (MP, "createMessage", 200, JSON, "stop_sequence", REQ),
    (MP, "createMessage", 200, JSON, "usage.input_tokens", {**REQ, **INT}),
    (MP, "createMessage", 200, JSON, "usage.output_tokens", {**REQ, **INT}),
    # 004 TTS response table
    (CR, "createMultimodalTts", 200, JSON, "audio_base64", {**REQ, **STR}),
    (CR, "createMultimodalTts", 200, JSON, "format", {**REQ, "enum": ["mp3"]}),
    (CR, "createMultimodalTts", 200, JSON, "duration_ms", {**REQ, **INT}),
    (CR, "createMultimodalTts", 200, JSON, "usage_id", {**REQ, **STR}),
    (CR, "createMultimodalTts", 200, JSON, "credits_used", {**REQ, **INT}),
    (CR, "createMultimodalTts", 200, JSON, "credits_remaining", {**REQ, **INT}),
    # 004 image response table
    (CR, "createMultimodalImage", 200, JSON, "image_base64", {**REQ, **STR}),
    (CR, "createMultimodalImage", 200, JSON, "format", {**REQ, "enum": ["jpg", "png"]}),
    (CR, "createMultimodalImage", 200, JSON, "width", {**REQ, **INT}),
    (CR, "createMultimodalImage", 200, JSON, "height", {**REQ, **INT}),
    (CR, "createMultimodalImage", 200, JSON, "credits_used", {**REQ, **INT}),
]
# 004 "Video Response (all video endpoints)"
for _video in ("createImageToVideo", "createTextToVideo", "createCogVideoX"):
    RESPONSE_FIELDS += [
        (CR, _video, 200, JSON, "video_url", {**REQ, **STR}),
        (CR, _video, 200, JSON, "format", {**REQ, "enum": ["mp4"]}),
        (CR, _video, 200, JSON, "duration_seconds", {**REQ, "type": "number"}),
        (CR, _video, 200, JSON, "usage_id", {**REQ, **STR}),
        (CR, _video, 200, JSON, "credits_used", {**REQ, **INT}),
        (CR, _video, 200, JSON, "credits_remaining", {**REQ, **INT}),
    ]

# ---- response media types: (api, operationId, status, media types that must be documented) ------
MEDIA_TYPES = [
    (GW, "createChatCompletion", 200, {JSON, "text/event-stream"}),
    (MP, "createChatCompletion", 200, {JSON, "text/event-stream"}),
    (MP, "createResponse", 200, {JSON, "text/event-stream"}),
    (MP, "createMessage", 200, {JSON, "text/event-stream"}),
    (GW, "createSpeech", 200, {"audio/mpeg", "audio/opus", "audio/aac", "audio/flac", "audio/wav", "audio/pcm"}),
    (GW, "createTranscription", 200, {JSON, "text/plain"}),
    (GW, "createTranslation", 200, {JSON, "text/plain"}),
]

# ---- stream events: (api, operationId, x-sse key, expected; "types" = event types the item allows) --
STREAMS = [
    (GW, "createChatCompletion", "terminator", "[DONE]"),
    (MP, "createChatCompletion", "terminator", "[DONE]"),
    (MP, "createResponse", "types", {"response.created", "response.output_text.delta", "response.completed"}),
    (MP, "createResponse", "event", "type"),
    (
        MP,
        "createMessage",
        "types",
        {
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        },
    ),
    (MP, "createMessage", "event", "type"),
]

# ---- statuses: (api, operationId, status, error envelope, error.type or None if not documented) -----
OPENAI, ANTHROPIC = "openai", "anthropic"
_TABLE_001 = [
    (400, "invalid_request_error"),
    (401, "authentication_error"),
    (402, "billing_error"),
    (403, "permission_error"),
    (429, "rate_limit_error"),
    (500, "internal_server_error"),
    (502, "upstream_error"),
    (503, "upstream_error"),
]
_TABLE_002 = [
    (400, "invalid_request_error"),
    (401, "authentication_error"),
    (402, "billing_error"),
    (429, "rate_limit_error"),
    (500, "internal_server_error"),
    (502, "upstream_error"),
    (503, "upstream_error"),
]
STATUSES: list[tuple[str, str, int, str, str | None]] = [
    *[
        (GW, op, status, OPENAI, kind)
        for op in ("createChatCompletion", "createSpeech", "createTranscription", "createTranslation")
        for status, kind in _TABLE_001
    ],
    *[(GW, op, status, OPENAI, kind) for op in ("createImage", "createImageEdit") for status, kind in _TABLE_002],
    (GW, "createImageEdit", 413, OPENAI, "invalid_request_error"),  # 002: image file too large
    (GW, "listModels", 401, OPENAI, "authentication_error"),
    *[
        (MP, op, status, OPENAI, None)
        for op in ("createChatCompletion", "createResponse")
        for status in (400, 401, 429, 500)
    ],
    *[
        (MP, "createMessage", status, ANTHROPIC, kind)
        for status, kind in (
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (529, "overloaded_error"),
        )
    ],
    *[
        (CR, op, status, OPENAI, None)
        for op in (
            "createMultimodalTts",
            "createMultimodalImage",
            "createImageToVideo",
            "createTextToVideo",
            "createCogVideoX",
        )
        for status in (400, 401, 402, 429, 500)
    ],
    (CR, "createTextToVideo", 403, OPENAI, None),  # Tier: Premium only
    (CR, "listMultimodalUsage", 401, OPENAI, None),
]

# ---- operating figures: (api, operationId, dotted path in the operation, expected) -----------------
FIGURES: list[tuple[str, str, str, Any]] = [
    (CR, "createMultimodalTts", "x-credits.cost", 14),
    (CR, "createMultimodalTts", "x-credits.usd", 0.007),
    (CR, "createMultimodalTts", "x-rate-limit.requests", 10),
    (CR, "createMultimodalTts", "x-rate-limit.window_s", 60),
    (CR, "createMultimodalImage", "x-credits.cost", 50),
    (CR, "createMultimodalImage", "x-credits.usd", 0.025),
    (CR, "createMultimodalImage", "x-rate-limit.requests", 5),
    (CR, "createMultimodalImage", "x-rate-limit.window_s", 60),
    (CR, "createImageToVideo", "x-credits.by", "provider"),
    (CR, "createImageToVideo", "x-credits.costs.wan22.cost", 400),
    (CR, "createImageToVideo", "x-credits.costs.wan22.usd", 0.20),
    (CR, "createImageToVideo", "x-credits.costs.seedance.cost", 520),
    (CR, "createImageToVideo", "x-credits.costs.seedance.usd", 0.26),
    (CR, "createImageToVideo", "x-credits.costs.sora2.cost", 800),
    (CR, "createImageToVideo", "x-credits.costs.sora2.usd", 0.40),
    (CR, "createImageToVideo", "x-rate-limit.requests", 2),
    (CR, "createImageToVideo", "x-rate-limit.window_s", 60),
    (CR, "createImageToVideo", "x-providers.wan22.duration_s", 5),
    (CR, "createImageToVideo", "x-providers.wan22.resolution.width", 1280),
    (CR, "createImageToVideo", "x-providers.wan22.resolution.height", 720),
    (CR, "createImageToVideo", "x-providers.wan22.quality", "Best value"),
    (CR, "createImageToVideo", "x-providers.wan22.premium", False),
    (CR, "createImageToVideo", "x-providers.seedance.duration_s", 5),
    (CR, "createImageToVideo", "x-providers.seedance.resolution.width", 1280),
    (CR, "createImageToVideo", "x-providers.seedance.resolution.height", 720),
    (CR, "createImageToVideo", "x-providers.seedance.quality", "High quality"),
    (CR, "createImageToVideo", "x-providers.seedance.premium", False),
    (CR, "createImageToVideo", "x-providers.sora2.duration_s", 4),
    (CR, "createImageToVideo", "x-providers.sora2.resolution.width", 1280),
    (CR, "createImageToVideo", "x-providers.sora2.resolution.height", 720),
    (CR, "createImageToVideo", "x-providers.sora2.quality", "Cinematic"),
    (CR, "createImageToVideo", "x-providers.sora2.premium", True),
    (CR, "createTextToVideo", "x-credits.cost", 1000),
    (CR, "createTextToVideo", "x-credits.usd", 0.50),
    (CR, "createTextToVideo", "x-rate-limit.requests", 1),
    (CR, "createTextToVideo", "x-rate-limit.window_s", 60),
    (CR, "createTextToVideo", "x-tier", "premium"),
    (CR, "createCogVideoX", "x-credits.cost", 800),
    (CR, "createCogVideoX", "x-credits.usd", 0.40),
    (CR, "createCogVideoX", "x-rate-limit.requests", 1),
    (CR, "createCogVideoX", "x-rate-limit.window_s", 60),
    *[
        (CR, op, "responses.500.x-retry-after-s", 30)
        for op in (
            "createMultimodalTts",
            "createMultimodalImage",
            "createImageToVideo",
            "createTextToVideo",
            "createCogVideoX",
        )
    ],
    (GW, "createChatCompletion", "x-rate-limit.dimensions", ["rpm", "tpm"]),
    (GW, "createChatCompletion", "x-rate-limit.configurable", True),
    (GW, "createImage", "x-rate-limit.dimensions", ["rpm"]),
    (GW, "createImage", "x-hosted-url-ttl-s", 3600),
    (GW, "createImageEdit", "x-upload-limit-bytes", 50 * 1024 * 1024),
    (GW, "createTranscription", "x-upload-limit-bytes", 25 * 1024 * 1024),
    (GW, "createTranslation", "x-upload-limit-bytes", 25 * 1024 * 1024),
    (GW, "createImageEdit", "x-mirrors", "openai"),
    (GW, "createSpeech", "x-mirrors", "openai"),
    (MP, "createResponse", "x-mirrors", "openai"),
    (MP, "createMessage", "x-mirrors", "anthropic"),
    *[(CR, op, "x-undocumented", ANY) for op in ("getMultimodalUsage", "getManagedUsage", "uploadZeroDbFile")],
    (GW, "createChatCompletion", "responses.429.headers.Retry-After", ANY),  # 001: respect Retry-After
]

# ---- security: (api, operationId, scheme type, scheme "in" / http scheme, header name) ------------
SECURITY = [
    *[(GW, op, "http", "bearer", None) for _, _, _, op, _ in OPERATIONS[:7]],
    (MP, "createChatCompletion", "http", "bearer", None),
    (MP, "createResponse", "http", "bearer", None),
    (MP, "createMessage", "apiKey", "header", "x-api-key"),
    *[(CR, op, "http", "bearer", None) for _, _, _, op, _ in OPERATIONS[10:19]],
    (GW, "retrieveModel", "http", "bearer", None),
    (MP, "countMessageTokens", "apiKey", "header", "x-api-key"),
]


# ---- checks -------------------------------------------------------------------------------------


def _describe(matches: list[FieldMatch], api: str) -> str:
    if not matches:
        return "the field is missing"
    return "; ".join(
        f"required={match.required} "
        + ", ".join(
            f"{key}={node[key]!r}"
            for node in alternatives(api, match.schema)
            for key in node
            if key in ("type", "minLength", "maxLength", "minimum", "maximum", "enum", "default", "const")
        )
        for match in matches
    )


def _same(actual: Any, expected: Any) -> bool:
    """Equal, with booleans kept apart from 0 and 1 and floats compared approximately."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, float) and isinstance(actual, int | float):
        return bool(actual == pytest.approx(expected))
    return bool(actual == expected)


def _holds(api: str, matches: list[FieldMatch], key: str, expected: Any) -> bool:
    nodes = [node for match in matches for node in alternatives(api, match.schema)]
    if key == "absent":
        return not matches
    if key == "required":
        return bool(matches) and any(match.required for match in matches) == expected
    if key in ("type", "nullable"):
        wanted = "null" if key == "nullable" else expected
        types = [node.get("type") for node in nodes]
        return any(wanted == kind or (isinstance(kind, list) and wanted in kind) for kind in types)
    if key == "values":
        allowed = {node["const"] for node in nodes if "const" in node}
        allowed |= {value for node in nodes for value in node.get("enum", [])}
        return set(expected) <= allowed
    if key == "enum":
        return any(sorted(map(str, node.get("enum", []))) == sorted(map(str, expected)) for node in nodes)
    return any(key in node and _same(node[key], expected) for node in nodes)


def _request_matches(api: str, operation_id: str, path: str) -> list[FieldMatch]:
    operation = find_operation(api, operation_id)
    return [m for schema in request_schemas(operation).values() for m in find_field(api, schema, path)]


def _expand(entries: list[tuple[Any, ...]]) -> list[Any]:
    """One pytest param per (entry, constraint), its id naming both."""
    params = []
    for *head, constraints in entries:
        for key, expected in constraints.items():
            # a set's repr follows the hash seed: sorted, so every pytest-xdist worker collects the same ids
            shown = sorted(expected, key=repr) if isinstance(expected, (set, frozenset)) else expected
            ident = ".".join(str(part) for part in head) + f".{key}={shown!r}"
            params.append(pytest.param(*head, key, expected, id=ident))
    return params


def test_every_operation_is_listed_and_every_listed_one_exists() -> None:
    specified = {(op.api, op.method, op.path, op.operation_id) for api in api_names() for op in operations(api)}
    listed = {entry[:4] for entry in OPERATIONS}
    assert sorted(listed - specified) == [], "operations the documents describe but the specs lack"
    assert sorted(specified - listed) == [], "operations in the specs not listed here: add them with their fields"


@pytest.mark.parametrize(
    ("api", "method", "path", "operation_id", "document"), OPERATIONS, ids=[f"{e[0]}.{e[3]}" for e in OPERATIONS]
)
def test_operation_cites_its_seed(api: str, method: str, path: str, operation_id: str, document: str) -> None:
    operation = find_operation(api, operation_id)
    assert (operation.method, operation.path) == (method, path)
    assert operation.spec["x-source"]["document"].startswith(document)


@pytest.mark.parametrize(("api", "operation_id", "path", "key", "expected"), _expand(REQUEST_FIELDS))
def test_request_field(api: str, operation_id: str, path: str, key: str, expected: Any) -> None:
    matches = _request_matches(api, operation_id, path)
    assert _holds(api, matches, key, expected), f"{path}: expected {key}={expected!r}; {_describe(matches, api)}"


@pytest.mark.parametrize(("api", "operation_id", "where", "name", "key", "expected"), _expand(PARAMETERS))
def test_parameter(api: str, operation_id: str, where: str, name: str, key: str, expected: Any) -> None:
    operation = find_operation(api, operation_id)
    found = [resolve(api, p) for p in operation.spec.get("parameters", [])]
    found = [p for p in found if p["in"] == where and p["name"] == name]
    assert found, f"no {where} parameter {name}"
    matches = [FieldMatch(found[0]["schema"], bool(found[0].get("required")))]
    assert _holds(api, matches, key, expected), f"{name}: expected {key}={expected!r}; {_describe(matches, api)}"


@pytest.mark.parametrize(
    ("api", "operation_id", "status", "media_type", "path", "key", "expected"), _expand(RESPONSE_FIELDS)
)
def test_response_field(
    api: str, operation_id: str, status: int, media_type: str, path: str, key: str, expected: Any
) -> None:
    schema = response_schema(find_operation(api, operation_id), status, media_type)
    assert schema is not None, f"no {status} {media_type} response"
    matches = find_field(api, schema, path)
    assert _holds(api, matches, key, expected), f"{path}: expected {key}={expected!r}; {_describe(matches, api)}"


@pytest.mark.parametrize(
    ("api", "operation_id", "status", "media_types"), MEDIA_TYPES, ids=[f"{e[0]}.{e[1]}.{e[2]}" for e in MEDIA_TYPES]
)
def test_response_media_types(api: str, operation_id: str, status: int, media_types: set[str]) -> None:
    documented = set(response_media(find_operation(api, operation_id), status))
    assert media_types <= documented, f"missing {sorted(media_types - documented)}"


@pytest.mark.parametrize(
    ("api", "operation_id", "key", "expected"), STREAMS, ids=[f"{e[0]}.{e[1]}.{e[2]}" for e in STREAMS]
)
def test_stream(api: str, operation_id: str, key: str, expected: Any) -> None:
    sse = response_media(find_operation(api, operation_id), 200)["text/event-stream"]["x-sse"]
    if key == "types":
        matches = find_field(api, sse["item"], "type")
        assert _holds(api, matches, "values", expected), _describe(matches, api)
    else:
        assert sse.get(key) == expected


def _error_body(envelope: str, kind: str) -> dict[str, Any]:
    error = {"type": kind, "message": "m"}
    return {"type": "error", "error": error} if envelope == ANTHROPIC else {"error": error}


@pytest.mark.parametrize(
    ("api", "operation_id", "status", "envelope", "error_type"),
    STATUSES,
    ids=[f"{e[0]}.{e[1]}.{e[2]}={e[4]}" for e in STATUSES],
)
def test_status_and_error_type(api: str, operation_id: str, status: int, envelope: str, error_type: str | None) -> None:
    schema = response_schema(find_operation(api, operation_id), status)
    assert schema is not None, f"{status} is not documented"
    validator = schema_validator(api, schema)
    assert validator.is_valid(_error_body(envelope, error_type or "any_error")), f"not the {envelope} envelope"
    if error_type is not None:
        assert not validator.is_valid(_error_body(envelope, "not_the_documented_type")), "error.type is not pinned"


@pytest.mark.parametrize(
    ("api", "operation_id", "path", "expected"), FIGURES, ids=[f"{e[0]}.{e[1]}.{e[2]}" for e in FIGURES]
)
def test_operating_figure(api: str, operation_id: str, path: str, expected: Any) -> None:
    node: Any = find_operation(api, operation_id).spec
    for key in path.split("."):
        assert isinstance(node, Mapping) and key in resolve(api, node), f"{path}: no {key}"
        node = resolve(api, node)[key]
    if expected is not ANY:
        assert _same(node, expected), f"{path} = {node!r}, expected {expected!r}"


@pytest.mark.parametrize(
    ("api", "operation_id", "kind", "detail", "header"), SECURITY, ids=[f"{e[0]}.{e[1]}" for e in SECURITY]
)
def test_security(api: str, operation_id: str, kind: str, detail: str, header: str | None) -> None:
    operation = find_operation(api, operation_id)
    schemes = [name for requirement in operation.security for name in requirement]
    assert schemes, "no security requirement"
    scheme = load_api(api)["components"]["securitySchemes"][schemes[0]]
    assert scheme["type"] == kind
    assert scheme.get("scheme", scheme.get("in")) == detail
    assert scheme.get("name") == header


def test_coverage_table_is_up_to_date() -> None:
    current = COVERAGE_FILE.read_text(encoding="utf-8") if COVERAGE_FILE.is_file() else ""
    assert current == render(), f"{COVERAGE_FILE.name} is out of date: run `{REFRESH_COMMAND}`"
