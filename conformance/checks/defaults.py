"""Checks that a field left out behaves as its documented default (004's parameter tables, "Default" column).

Each check judges answers to a request that omits the field; the default it expects is read from the
spec (the request schema's or the query parameter's ``default``, which ``spec/documented/facts.yaml``
holds to the document), never repeated here. Sources: 004 "Video: Text-to-Video (T2V)" (duration 5),
"Video: CogVideoX" (num_frames 49: "Frame count"), "Usage History" (skip 0, limit 50). The image's
width and height (1024) are a golden fixture's (``credits_api/createMultimodalImage/default_size``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance import media
from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation
from spec.facts import field_schemas

#: Slack between a video's decoded length and the duration asked for, in s (one frame at 2 fps; the
#: credits checks' tolerance).
DURATION_SLACK_S = 0.5


def about(stated: Any, seconds: float) -> bool:
    """Whether a stated ``duration_seconds`` (004 "Video Response": a float) is a number within
    :data:`DURATION_SLACK_S` of ``seconds``: an encoder's real length (5.04 s for 5 s) is a correct answer."""
    return (isinstance(stated, int | float) and not isinstance(stated, bool)
            and abs(stated - seconds) <= DURATION_SLACK_S)


def documented_default(operation: Operation, where: str, name: str) -> Any:
    """The spec's ``default`` of field ``name`` of ``operation`` (``where``: request, query). Raises KeyError
    when the spec gives none."""
    for schema in field_schemas(operation.api, operation.operation_id, where, name):
        if "default" in schema:
            return schema["default"]
    raise KeyError(f"{operation.operation_id} {where} {name} has no default in the spec")


def _completed_video(name: str, started: Exchange, records: Sequence[Exchange], video: Exchange) -> media.Decoded:
    """The decoded video of a job that completed (its last polled record) and downloaded; fails ``name``
    otherwise."""
    if started.status != 200:
        raise CheckFailure(name, "200 for the video request", str(started.status), started.evidence())
    final = records[-1].json() if records else None
    if not isinstance(final, dict) or final.get("status") != "completed":
        statuses = [r.json().get("status") if isinstance(r.json(), dict) else r.status for r in records]
        raise CheckFailure(name, "the usage record to reach status completed", f"statuses {statuses}",
                           (records[-1] if records else started).evidence())
    if video.status != 200:
        raise CheckFailure(name, "the video_url to download (200)", str(video.status), video.evidence())
    try:
        return media.audio_video(video.body)
    except media.MediaError as exc:
        raise CheckFailure(name, "a decodable MP4", str(exc), video.evidence()) from None


@check(capability="credits.defaults", source="004 Video: Text-to-Video (T2V) (duration: default 5, seconds)")
def t2v_duration_default(started: Exchange, records: Sequence[Exchange], video: Exchange,
                         operation: Operation) -> None:
    """A T2V request without ``duration`` is answered ``duration_seconds`` the default (5 s, within
    :data:`DURATION_SLACK_S`: :func:`about`), and its
    video, once the job completes, decodes to that long (within :data:`DURATION_SLACK_S`)."""
    name = "t2v_duration_default"
    default = float(documented_default(operation, "request", "duration"))
    body = started.json()
    stated = body.get("duration_seconds") if isinstance(body, dict) else None
    if started.status == 200 and not about(stated, default):
        raise CheckFailure(name, f"duration_seconds {default:g} (the default)", f"duration_seconds {stated!r}",
                           started.evidence())
    decoded = _completed_video(name, started, records, video)
    if abs(decoded.duration_s - default) > DURATION_SLACK_S:
        raise CheckFailure(name, f"about {default:g} s of video (the default duration)",
                           f"{decoded.duration_s:.2f} s", video.evidence())


@check(capability="credits.defaults", source='004 Video: CogVideoX (num_frames: default 49, "Frame count")')
def cogvideox_frames_default(started: Exchange, records: Sequence[Exchange], video: Exchange,
                             operation: Operation) -> None:
    """A CogVideoX request without ``num_frames`` makes a video of the default frame count (49 frames),
    counted by decoding it once the job completes."""
    name = "cogvideox_frames_default"
    default = int(documented_default(operation, "request", "num_frames"))
    decoded = _completed_video(name, started, records, video)
    if decoded.frames != default:
        raise CheckFailure(name, f"{default} frames (the default num_frames)",
                           f"{decoded.frames} frames ({decoded.duration_s:.2f} s)", video.evidence())


def _ids(name: str, exchange: Exchange) -> list[Any]:
    """The usage records' ids of a list answer, in order."""
    body = exchange.json()
    if exchange.status != 200 or not isinstance(body, dict):
        raise CheckFailure(name, "200 with a JSON object", f"{exchange.status} {exchange.media_type}",
                           exchange.evidence())
    records = next((body[key] for key in ("items", "records", "data", "usage") if isinstance(body.get(key), list)),
                   None)
    if records is None:
        raise CheckFailure(name, "a list of usage records", f"keys {sorted(body)}", exchange.evidence())
    return [record.get("usage_id", record.get("id")) if isinstance(record, dict) else record for record in records]


@check(capability="credits.usage", source="004 Usage History (skip: default 0; limit: default 50)")
def usage_page_defaults(plain: Exchange, widest: Exchange, operation: Operation) -> None:
    """With more records than the default ``limit``, a list without ``skip`` and ``limit`` answers exactly the
    first ``limit`` (50) of the list ``skip=0&limit=<the most>`` answers, in its order: it starts at the
    first record (skip 0) and holds 50."""
    name = "usage_page_defaults"
    skip, limit = (int(documented_default(operation, "query", key)) for key in ("skip", "limit"))
    everything, got = _ids(name, widest), _ids(name, plain)
    if len(everything) <= limit:
        raise CheckFailure(name, f"more than {limit} records to list", f"{len(everything)}", widest.evidence())
    wanted = everything[skip:skip + limit]
    if got != wanted:
        first = f"first {got[0]!r}" if got else "none"
        raise CheckFailure(name, f"{len(wanted)} records from the first ({wanted[0]!r}), as skip={skip}&limit={limit}",
                           f"{len(got)} records, {first}", plain.evidence())
