"""Hosted result URLs: they still download later in the run, and any expiry they state is about an hour.

Source: 002 "Download URLs are short-lived": "Hosted URLs typically expire after 1 hour. Save the
bytes or set response_format: 'b64_json' if you need long-term storage." The credits API's
``video_url`` (004 "Video Response") is such a URL too.

Black-box, an hour cannot be waited for; what can be judged is:

- **Downloads later.** Every URL the run's answers carried (images' ``data[].url``, a completed video
  job's ``video_url``) is fetched again, without the key, at the end of the behavioural phase and at
  least :data:`MIN_LATER_S` s after its answer arrived: 200 and media that still decodes. A URL that
  dies within seconds or minutes fails here.
- **Stated lifetime consistent with about an hour.** The lifetime a URL or its download states,
  counted from when the answer carrying the URL arrived ("issued"):

  * (the OpenAI-compatible gateway's URLs only, :data:`LIFETIME_APIS`: 004 gives the credits API's
    ``video_url`` no lifetime) signed-URL parameters, which state the URL's own validity: ``X-Amz-Expires`` and
    ``X-Goog-Expires`` (s from signing), ``Expires`` (Unix s; S3 v2, CloudFront, GCS v2), ``exp``
    (Unix s), Azure SAS ``se`` (ISO 8601, beside ``sig``). Consistent means between
    :data:`MIN_LIFETIME_S` (an hour less a quarter, for "typically" and clock skew) and
    :data:`MAX_LIFETIME_S` (a URL living for days is not "short-lived");

  Caching headers of the download (``Cache-Control: max-age``, ``Expires``) are not judged: they say how
  long a copy stays fresh, not how long the URL lives, and a correct CDN may well say ``max-age=300``
  of a URL that lives an hour (a false alarm the suite must not raise).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from conformance import media
from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange

SOURCE = '002 Download URLs are short-lived ("Hosted URLs typically expire after 1 hour"); 004 Video Response'

#: Least time between a URL's issue and its second download, in s.
MIN_LATER_S = 10.0
#: Shortest stated lifetime consistent with "typically expire after 1 hour", in s (45 min).
MIN_LIFETIME_S = 45 * 60
#: Longest stated URL lifetime consistent with "short-lived", in s (24 h).
MAX_LIFETIME_S = 24 * 3600
#: The APIs whose documents give hosted URLs a lifetime: 002's gateway ("typically expire after 1 hour"). 004
#: states none for the credits API's ``video_url``, so its URLs are only downloaded again.
LIFETIME_APIS = frozenset({"openai_gateway"})


@dataclass(frozen=True)
class IssuedUrl:
    """A hosted URL an answer carried: the ``api`` it came from, what it is (``kind``: image or video),
    where (``source``, e.g. ``createImage data[0].url``) and ``issued_at`` (Unix s, when the answer arrived)."""

    api: str
    url: str
    kind: str
    source: str
    issued_at: float


@dataclass(frozen=True)
class LaterDownload:
    """The second download of an :class:`IssuedUrl`: the exchange and when it arrived (Unix s)."""

    issued: IssuedUrl
    exchange: Exchange
    fetched_at: float


def _unix(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _iso(value: str) -> float | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def url_lifetime_s(url: str, issued_at: float) -> tuple[str, float] | None:
    """The lifetime a signed URL states for itself, counted from ``issued_at`` (Unix s), as ``(parameter,
    s)``; None when it states none (module docstring lists the parameters)."""
    query = {key.lower(): values[-1] for key, values in parse_qs(urlsplit(url).query).items()}
    for name in ("x-amz-expires", "x-goog-expires"):
        seconds = _unix(query.get(name, ""))
        if seconds is not None:
            return name, seconds
    for name in ("expires", "exp"):
        moment = _unix(query.get(name, ""))
        if moment is not None and moment > 1e9:  # a Unix time, not a duration
            return name, moment - issued_at
    if "se" in query and "sig" in query:
        moment = _iso(query["se"])
        if moment is not None:
            return "se", moment - issued_at
    return None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


@check(capability="images.hosted_urls", source=SOURCE)
def hosted_urls_download_later(downloads: list[LaterDownload], min_later_s: float = MIN_LATER_S) -> None:
    """Each hosted URL, fetched again at least ``min_later_s`` s (default :data:`MIN_LATER_S`; the target
    file's ``hosted_url_recheck_s``) after its issue, downloads (200,
    media that decodes as its kind), and any lifetime an OpenAI-compatible gateway's URL states is consistent
    with about an hour (module docstring: what is read, and the bounds)."""
    name = "hosted_urls_download_later"
    for download in downloads:
        issued, exchange = download.issued, download.exchange
        elapsed = download.fetched_at - issued.issued_at
        if elapsed < min_later_s:
            raise ValueError(f"{issued.url} fetched again after {elapsed:.1f} s, before {min_later_s} s")
        if exchange.status != 200:
            raise CheckFailure(name, f"{issued.source} still downloading {elapsed:.0f} s after issue",
                               f"{exchange.status}", exchange.evidence())
        try:
            media.image(exchange.body) if issued.kind == "image" else media.audio_video(exchange.body)
        except media.MediaError as exc:
            raise CheckFailure(name, f"{issued.source}: the {issued.kind} still there {elapsed:.0f} s after issue",
                               str(exc), exchange.evidence()) from None
        stated = url_lifetime_s(issued.url, issued.issued_at) if issued.api in LIFETIME_APIS else None
        if stated is not None and not MIN_LIFETIME_S <= stated[1] <= MAX_LIFETIME_S:
            raise CheckFailure(name, f"{issued.source}: a URL lifetime of about an hour "
                                     f"({_minutes(MIN_LIFETIME_S)} to {MAX_LIFETIME_S // 3600} h)",
                               f"{stated[0]} states {_minutes(stated[1])}", exchange.evidence())

