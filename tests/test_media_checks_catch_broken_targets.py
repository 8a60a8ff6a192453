"""The multimodal and media facts can fail: each target of ``tests/broken_media_targets.py`` is reported by
its own check and by no unrelated one, over the whole behavioural phase but its slow defaults module (the real
``conformance run`` CLI in a subprocess, against the target served on 127.0.0.1, reading the report it writes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance import media
from conformance.checks import REGISTRY
from conformance.checks.hosted import IssuedUrl, LaterDownload, url_lifetime_s
from conformance.embedded import EMBEDDED_MODELS, serve
from conformance.failures import CheckFailure
from conformance.http import Exchange
from tests.broken_media_targets import MEDIA_BREAKS
from tests.test_suite_catches_broken_targets import WITHOUT_DEFAULTS, mock_like_target_file, run_suite


@pytest.mark.parametrize("name", sorted(MEDIA_BREAKS))
def test_media_break_is_reported_by_its_check_alone(name: str, tmp_path: Path) -> None:
    broken = MEDIA_BREAKS[name]
    with serve(broken.app()) as url:
        target = mock_like_target_file(url, tmp_path, models=dict(EMBEDDED_MODELS), **broken.target)
        code, report, output = run_suite(target, tmp_path, "--phases", "behavioural", "-k", WITHOUT_DEFAULTS)
    assert code == 1, output
    failed = {row["check"] for row in report["checks"] if row["outcome"] == "failed"}
    assert broken.check in failed, f"{name}: failed checks were {sorted(failed)}"
    assert failed <= {broken.check} | broken.also, f"{name}: unrelated checks failed too: {sorted(failed)}"
    failure = next(row["failure"] for row in report["checks"] if row["check"] == broken.check and row["failure"])
    assert failure["expected"] and failure["received"]


ISSUED = 1_800_000_000.0  # a Unix time in s


@pytest.mark.parametrize(("url", "stated"), [
    ("https://b.s3.amazonaws.com/i.png?X-Amz-Date=20270115T080000Z&X-Amz-Expires=3600&X-Amz-Signature=ab",
     ("x-amz-expires", 3600.0)),
    ("https://storage.googleapis.com/b/i.png?X-Goog-Expires=900&X-Goog-Signature=ab", ("x-goog-expires", 900.0)),
    (f"https://cdn.example/i.png?Expires={int(ISSUED) + 3600}&Signature=ab", ("expires", 3600.0)),
    (f"https://cdn.example/i.png?exp={int(ISSUED) + 120}", ("exp", 120.0)),
    ("https://a.blob.core.windows.net/c/i.png?sv=2024&se=2027-01-15T09%3A00%3A00Z&sig=ab",
     ("se", 1_800_003_600.0 - ISSUED)),
    ("https://cdn.example/img/abc123.png", None),
    ("https://cdn.example/i.png?exp=30", None),  # not a Unix time
])
def test_url_lifetime_read_from_signed_url_parameters(url: str, stated: tuple[str, float] | None) -> None:
    assert url_lifetime_s(url, ISSUED) == stated


@pytest.mark.parametrize("headers", [
    {"cache-control": "public, max-age=300"}, {"cache-control": "no-store"},
    {"expires": "Fri, 15 Jan 2027 08:01:00 GMT", "date": "Fri, 15 Jan 2027 08:00:00 GMT"}])
def test_short_caching_headers_are_not_a_failure(headers: dict[str, str]) -> None:
    """A CDN's caching headers say how long a copy stays fresh, not how long the URL lives: a URL that still
    downloads and states no short lifetime of its own passes, whatever its max-age (no false alarm)."""
    issued = IssuedUrl("openai_gateway", "https://cdn.example/i.png", "image", "createImage data[0].url", ISSUED)
    fetched = Exchange("GET", issued.url, None, 200, {"content-type": "image/png", **headers},
                       media.png(8, 8, (1, 2, 3, 255)))
    REGISTRY["hosted_urls_download_later"]([LaterDownload(issued, fetched, ISSUED + 20)])


@pytest.mark.parametrize(("expires_s", "fails"), [(3600, False), (300, True), (7 * 24 * 3600, True)])
def test_signed_url_lifetime_judged_by_the_check(expires_s: int, fails: bool) -> None:
    """A URL signed for an hour passes; for 5 minutes (not "about an hour") or a week (not short-lived) fails."""
    url = f"https://b.s3.amazonaws.com/i.png?X-Amz-Date=20270115T080000Z&X-Amz-Expires={expires_s}&X-Amz-Signature=ab"
    issued = IssuedUrl("openai_gateway", url, "image", "createImage data[0].url", ISSUED)
    fetched = Exchange("GET", url, None, 200, {"content-type": "image/png"}, media.png(8, 8, (1, 2, 3, 255)))
    judge = REGISTRY["hosted_urls_download_later"]
    if fails:
        with pytest.raises(CheckFailure, match="x-amz-expires states"):
            judge([LaterDownload(issued, fetched, ISSUED + 20)])
    else:
        judge([LaterDownload(issued, fetched, ISSUED + 20)])


@pytest.mark.parametrize("expires_s", [300, 7 * 24 * 3600])
def test_a_video_url_lifetime_is_not_held_to_the_image_pages_hour(expires_s: int) -> None:
    """002's "typically expire after 1 hour" is the OpenAI-compatible gateway's (its image page); 004 states no
    lifetime for the credits API's video_url: one signed for 5 minutes or a week that still downloads passes."""
    from mock_server.media_av import mp4

    url = f"https://b.s3.amazonaws.com/v.mp4?X-Amz-Date=20270115T080000Z&X-Amz-Expires={expires_s}&X-Amz-Signature=ab"
    issued = IssuedUrl("credits_api", url, "video", "getMultimodalUsage video_url", ISSUED)
    fetched = Exchange("GET", url, None, 200, {"content-type": "video/mp4"}, mp4(64, 36, 1.0))
    REGISTRY["hosted_urls_download_later"]([LaterDownload(issued, fetched, ISSUED + 20)])
