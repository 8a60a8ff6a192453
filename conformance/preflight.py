"""Before a run: does the target answer HTTP as the API at all? (``target_reachable``)

One cheap request, bounded by :data:`PROBE_TIMEOUT_S`: a target that refuses connections, whose
name does not resolve, whose TLS fails, that answers garbage bytes, an HTML page, a redirect, or
nothing at all fails ``target_reachable`` within seconds, and the run skips the rest with that
reason instead of failing every check one timeout at a time. So does a 401 to the run's own key on
an authenticated GET (001: "Every endpoint expects a bearer token", 401 "Missing or invalid API
key"; 004 "Authentication"): a wrong or expired key would otherwise fail nearly every check with the
same 401. Any other JSON answer, whatever its status (a 403, a 404 in an error envelope), is the API
answering: the checks judge it.
"""

from __future__ import annotations

import dataclasses

from conformance.failures import CheckFailure
from conformance.http import Exchange, TargetClient
from conformance.target import Target

#: Longest wait for the probe's whole answer, in s (the target's ``timeout_s`` when that is shorter).
PROBE_TIMEOUT_S = 10.0
#: The row name of the probe's verdict (and of every "no answer" failure during a run).
CHECK = "target_reachable"
CAPABILITY = "transport.reachable"
SOURCE = "suite precondition: the target answers HTTP with the API's JSON"


def _probe_request(client: TargetClient, target: Target) -> Exchange:
    """A request every claimed API answers in JSON without charging: GET /v1/models (001), the credits
    API's usage list (004), or an empty Messages request (a 400 in its envelope, 003)."""
    if target.claims("openai_gateway") or not target.apis:
        return client.request("GET", "/v1/models", honour_429=False)
    if target.claims("credits_api"):
        return client.request("GET", "/api/v1/multimodal/usage", params={"limit": 1}, honour_429=False)
    return client.request("POST", "/v1/messages", json_body={}, auth="messages", honour_429=False)


def probe(target: Target) -> CheckFailure | None:
    """None when the target answers the probe with JSON; else the ``target_reachable`` failure saying
    what came back (nothing, not HTTP, a redirect, a page that is not the API)."""
    bounded = dataclasses.replace(target, timeout_s=min(target.timeout_s, PROBE_TIMEOUT_S))
    with TargetClient(bounded) as client:
        try:
            exchange = _probe_request(client, bounded)
        except CheckFailure as failure:
            return CheckFailure(CHECK, "an HTTP answer from the API", failure.received, failure.evidence)
    if 300 <= exchange.status < 400:
        where = exchange.headers.get("location", "nowhere")
        return CheckFailure(CHECK, "the API's JSON answer in place", f"a redirect ({exchange.status}) to {where}",
                            exchange.evidence())
    if exchange.status == 401 and exchange.method == "GET" and exchange.json() is not None:
        return CheckFailure(CHECK, "the API's answer to the run's API key",
                            "401: the target refuses the run's API key (give the right one with --api-key or the "
                            "target file's api_key); nothing else was run", exchange.evidence())
    if exchange.json() is None:
        return CheckFailure(CHECK, "the API's JSON answer",
                            f"{exchange.status} {exchange.media_type or 'without a Content-Type'} that is not JSON "
                            "(not the API: check the base URL)", exchange.evidence())
    return None

