"""Checks of rejections: authentication and schema violations (001 "Errors", "Endpoints").

Each check judges the answer to a request built to be rejected; the suite's scenario says which.
"""

from __future__ import annotations

from conformance.checks import check
from conformance.checks.contract import validate_against
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation
from spec.extensions import retry_after_s

SOURCE_AUTH = "001 Errors (401 authentication_error); 001 Endpoints (bearer token)"


def _error(exchange: Exchange) -> dict[str, object]:
    body = exchange.json()
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _expect_status(name: str, exchange: Exchange, status: int, error_type: str) -> None:
    got_type = _error(exchange).get("type")
    if exchange.status != status or got_type != error_type:
        raise CheckFailure(name, f"{status} with error.type {error_type}",
                           f"{exchange.status} with error.type {got_type!r}", exchange.evidence())


@check(capability="auth", source=SOURCE_AUTH)
def missing_key_rejected(exchange: Exchange, operation: Operation) -> None:
    """A request without Authorization is answered 401 authentication_error."""
    _expect_status("missing_key_rejected", exchange, 401, "authentication_error")


@check(capability="auth", source=SOURCE_AUTH)
def invalid_key_rejected(exchange: Exchange, operation: Operation) -> None:
    """A request with an unknown Bearer key is answered 401 authentication_error."""
    _expect_status("invalid_key_rejected", exchange, 401, "authentication_error")


@check(capability="errors.invalid_request", source="001 Errors (400: the message names the offending field)")
def invalid_request_names_field(exchange: Exchange, operation: Operation) -> None:
    """A body missing ``messages`` is answered 400 invalid_request_error whose message or param names it."""
    _expect_status("invalid_request_names_field", exchange, 400, "invalid_request_error")
    error = _error(exchange)
    named = "messages" in str(error.get("message", "")) or "messages" in str(error.get("param") or "")
    if not named:
        raise CheckFailure("invalid_request_names_field", "error.message or error.param naming 'messages'",
                           f"message {error.get('message')!r}, param {error.get('param')!r}", exchange.evidence())


@check(capability="multimodal.audio", source="003 Tips (audio base64 with no line breaks or extra prefix/suffix)")
def malformed_audio_base64_refused(exchange: Exchange, operation: Operation) -> None:
    """An ``input_audio`` part whose base64 has line breaks or a ``data:`` prefix is answered 400
    invalid_request_error naming the part (``...input_audio...`` in ``param`` or the message), not
    taken as audio."""
    name = "malformed_audio_base64_refused"
    _expect_status(name, exchange, 400, "invalid_request_error")
    error = _error(exchange)
    if "input_audio" not in str(error.get("param") or "") + str(error.get("message", "")):
        raise CheckFailure(name, "error.param or error.message naming the input_audio part",
                           f"message {error.get('message')!r}, param {error.get('param')!r}", exchange.evidence())


@check(capability="auth.tier", source="004 Video: Text-to-Video (T2V) (Tier: Premium only); 001 Errors (403)")
def tier_rejected(exchange: Exchange, operation: Operation) -> None:
    """A premium-only operation called with a key below the premium tier is answered 403 with an error envelope."""
    expect_403("tier_rejected", exchange)


def expect_403(name: str, exchange: Exchange) -> None:
    """Raise CheckFailure naming check ``name`` unless ``exchange`` is a 403 in an error envelope (001 Errors:
    403 permission_error; the credits API's tier refusals, whose 403 004's "Error Codes" do not list)."""
    body = exchange.json()
    if exchange.status != 403 or not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        raise CheckFailure(name, "403 with an error envelope", f"{exchange.status}: {exchange.body[:160]!r}",
                           exchange.evidence())


@check(capability="errors.statuses", source="001 Errors; 002 Errors; 004 Error Codes")
def documented_error_status(exchange: Exchange, operation: Operation, status: int) -> None:
    """A provoked documented error status comes with that status, the documented envelope and error.type,
    and a Retry-After where the spec gives one (004: "GPU provider error - retry after 30s")."""
    name = "documented_error_status"
    if exchange.status != status:
        raise CheckFailure(name, f"status {status}", str(exchange.status), exchange.evidence())
    reason = validate_against(operation, status, "application/json", exchange.json())
    if reason is not None:
        raise CheckFailure(name, f"the error envelope documented for {status}", reason, exchange.evidence())
    retry = retry_after_s(operation, status)
    if retry is not None and exchange.headers.get("retry-after") != str(retry):
        raise CheckFailure(name, f"Retry-After: {retry}", f"Retry-After: {exchange.headers.get('retry-after')}",
                           exchange.evidence())


@check(capability="errors.not_found", source="003 Messages image input (x-mirrors anthropic: errors in the Messages "
                                             "envelope)")
def unknown_path_in_protocol_envelope(exchange: Exchange, operation: Operation) -> None:
    """A request for a path under ``operation``'s path that no operation serves (``/v1/messages/...``) is a 404
    or 405 in that operation's error envelope: ``{"type": "error", "error": {"type": ...}}`` for the Messages
    protocol, ``{"error": {"type": ...}}`` for OpenAI's, so the protocol's SDK can read the error."""
    name = "unknown_path_in_protocol_envelope"
    body = exchange.json()
    error = body.get("error") if isinstance(body, dict) else None
    anthropic = operation.spec.get("x-mirrors") == "anthropic"
    enveloped = isinstance(error, dict) and isinstance(error.get("type"), str) and (
        not anthropic or body.get("type") == "error")
    if exchange.status not in (404, 405) or not enveloped:
        shape = '{"type": "error", "error": {"type", "message"}}' if anthropic else '{"error": {"type", "message"}}'
        raise CheckFailure(name, f"404 or 405 with {shape}", f"{exchange.status}: {exchange.body[:200]!r}",
                           exchange.evidence())


@check(capability="errors.billing", source="001 Errors (402 billing_error: out of credit or hit a spend limit); "
                                           "002 Errors (402)")
def gateway_billing_error_402(exchange: Exchange, operation: Operation) -> None:
    """A gateway request (chat or image generation) made with a key out of credit or over its spend limit
    is answered 402 with ``error.type`` billing_error in the envelope the spec documents for 402, not
    served (and, as a 402, not charged: 001 "Errors")."""
    name = "gateway_billing_error_402"
    _expect_status(name, exchange, 402, "billing_error")
    reason = validate_against(operation, 402, "application/json", exchange.json())
    if reason is not None:
        raise CheckFailure(name, "the error envelope documented for 402", reason, exchange.evidence())


@check(capability="errors.safety", source="002 Safety (disallowed prompts: 400 invalid_request_error with the "
                                          "rejection reason in error.message)")
def safety_rejection_reported(exchange: Exchange, operation: Operation) -> None:
    """A prompt the target's content filter refuses is answered 400 invalid_request_error whose
    ``error.message`` gives the rejection reason: a non-empty sentence, not a bare status word
    (the gateway does not silently rewrite prompts, so a 200 is a failure too)."""
    name = "safety_rejection_reported"
    _expect_status(name, exchange, 400, "invalid_request_error")
    message = str(_error(exchange).get("message") or "").strip()
    if len(message.split()) < 3:
        raise CheckFailure(name, "error.message giving the rejection reason", f"message {message!r}",
                           exchange.evidence())
