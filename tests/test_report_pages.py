"""report.html and compare.html as documents: the grid, its links, grouped failures, media, skips, compare.

What a browser shows (fit at 1280 px, anchors that resolve) is tests/test_report_browser.py.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from conformance import grid, media, pages
from conformance.cli import main
from conformance.report import write
from tests.report_samples import sample_report


class Page(HTMLParser):
    """Ids, links, image sources and the text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.add(tag)
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag == "img":
            self.images.append(str(values.get("src")))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join("".join(self.text).split())


def test_capabilities_are_grouped_in_reading_order() -> None:
    assert [grid.group_of(c) for c in ("chat.tools", "chat.streaming.usage", "chat.input.video", "chat.image_output",
                                      "images.url", "audio.speech", "responses.input.image", "messages.create",
                                      "credits.tts", "rate_limits", "uploads.limit", "errors.envelope", "auth.tier",
                                      "upstream.media", "facts.credits", "something.new")] == [
        "chat", "streaming", "input", "image_output", "images", "audio", "responses", "messages", "credits",
        "limits", "limits", "errors", "auth", "upstream", "facts", "other"]


def test_grid_has_a_column_per_api_and_cells_that_count_their_checks() -> None:
    report = sample_report()
    report_grid = grid.report_grid(report)
    assert report_grid.columns == ("credits_api", "multi_protocol", "openai_gateway")
    streaming = next(group for group in report_grid.groups if group.key == "streaming")
    cell = streaming.rows[0].cells[2]
    assert cell is not None and cell.tally.verdict == "fail" and cell.tally.detail == "2 failed"
    assert cell.href == "#cap-openai_gateway-chat.streaming"
    assert streaming.rows[0].cells[0] is None  # not run on credits_api
    limits = next(group for group in report_grid.groups if group.key == "limits")
    assert limits.rows[0].cells[0] is not None and limits.rows[0].cells[0].tally.verdict == "not claimed"
    keys = [group.key for group in report_grid.groups]
    assert keys == sorted(keys, key=[key for key, _, _ in grid.GROUPS].index)


def test_every_cell_and_in_page_link_of_the_report_resolves() -> None:
    page = Page(pages.report_page(sample_report()))
    assert len(page.ids) == len(set(page.ids)), "ids are unique"
    internal = [link[1:] for link in page.links if link.startswith("#")]
    assert "cap-openai_gateway-audio.speech" in internal and "failures" in internal
    assert not set(internal) - set(page.ids)


def test_failures_are_grouped_by_check_with_folded_evidence() -> None:
    report = sample_report()
    groups = pages.failure_groups(report)
    assert [group.check for group in groups] == ["image_b64_json_decodes", "speech_audio_decodes",
                                                 "stream_ends_with_done"]
    assert len(groups[2].cases) == 2
    text = pages.report_page(report)
    section = text[text.index('id="failures"'):text.index('id="skipped"')]
    assert section.count("<details") == 4 and "<details open" not in section
    assert "curl -sS -X POST http://gw.example:8080/v1/chat/completions" in section
    assert "Authorization: Bearer $CONFORMANCE_API_KEY" in section


def test_media_evidence_shows_a_thumbnail_and_durations() -> None:
    page = Page(pages.report_page(sample_report()))
    assert len(page.images) == 1 and page.images[0].startswith("data:image/png;base64,")
    thumbnail = media.image(media.from_base64(page.images[0]))
    assert (thumbnail.width, thumbnail.height) == (96, 64)  # under THUMBNAIL_PX: kept as it was
    assert "image: PNG, 96\N{MULTIPLICATION SIGN}64 px" in page.words
    assert re.search(r"audio: mp3 \(mp3\w*\), 1\.5\d* s", page.words), page.words


def test_a_thumbnail_that_is_not_an_image_data_url_is_not_shown() -> None:
    report = sample_report()
    failing = next(row for row in report["checks"] if row["check"] == "image_b64_json_decodes")
    failing["failure"]["evidence"]["media"]["thumbnail"] = "javascript:alert(1)"
    page = Page(pages.report_page(report))
    assert page.images == [] and "image: PNG" in page.words


def test_text_from_the_target_is_escaped() -> None:
    text = pages.report_page(sample_report())
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_skip_reasons_and_unclaimed_apis_are_visible() -> None:
    words = Page(pages.report_page(sample_report())).words
    assert "opus is excluded by the target file" in words
    assert "credits_api: 2 checks not claimed (not claimed: the target does not claim credits_api)" in words


def test_the_page_is_self_contained() -> None:
    text = pages.report_page(sample_report())
    page = Page(text)
    assert "script" not in page.tags and "link" not in page.tags and "<style>" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "@media print" in text


def test_markdown_keeps_failures_media_and_skip_reasons(tmp_path: Path) -> None:
    write(sample_report(), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "- media: image PNG, 96x64 px" in markdown
    assert "| speech_audio_decodes | test_speech[opus] | opus is excluded by the target file |" in markdown
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_compare_grid_marks_differences() -> None:
    runs = [sample_report("alpha", 0), sample_report("beta", 1), sample_report("gamma", 2)]
    compared = grid.compare_grid(runs, ["a/report.html", None, "c/report.html"])
    assert compared.columns == ("alpha", "beta", "gamma")
    rows = {(row.api, row.capability): row for group in compared.groups for row in group.rows}
    streaming = rows[("openai_gateway", "chat.streaming")]
    assert [cell.tally.verdict for cell in streaming.cells if cell] == ["fail", "pass", "known failure"]
    assert streaming.differs and not rows[("multi_protocol", "auth")].differs
    assert rows[("all", "sdk.openai")].differs  # only beta ran it
    first = streaming.cells[0]
    assert first is not None and first.href == "a/report.html#cap-openai_gateway-chat.streaming"
    assert streaming.cells[1] is not None and streaming.cells[1].href is None


def test_conformance_compare_writes_a_page_linking_each_run(tmp_path: Path) -> None:
    for name, variant in (("alpha", 0), ("beta", 1)):
        write(sample_report(name, variant), tmp_path / "reports" / name / "20261202T000000Z")
        (tmp_path / "reports" / name / "latest").symlink_to("20261202T000000Z")
    (tmp_path / "elsewhere.json").write_text(json.dumps(sample_report("gamma", 2)))  # no report.html beside it
    out = tmp_path / "out" / "compare.html"
    code = main(["compare", str(tmp_path / "reports" / "alpha" / "latest"),
                 str(tmp_path / "reports" / "beta" / "latest" / "report.json"), str(tmp_path / "elsewhere.json"),
                 "--html", str(out), "--out", str(tmp_path / "compare.md")])
    assert code == 0
    page = Page(out.read_text())
    external = [link for link in page.links if not link.startswith("#")]
    assert external and all(link.startswith("../reports/") and "/latest/" not in link for link in external)
    assert {link.split("/")[2] for link in external} == {"alpha", "beta"}
    for link in external:  # the run's name links to its report, each cell to its capability there
        path, _, fragment = link.partition("#")
        assert (out.parent / path).is_file(), link
        assert not fragment or fragment in Page((out.parent / path).read_text()).ids, link
    assert "gamma" in page.words and "rows that differ" in page.words
    assert "| alpha | beta | gamma |" in (tmp_path / "compare.md").read_text()


def test_conformance_compare_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    assert main(["compare", str(tmp_path / "x.json"), "--html", str(tmp_path / "c.html")]) == 2


def test_a_binary_body_is_not_shown_as_text() -> None:
    text = pages.report_page(sample_report())
    speech = text[text.index('id="check-speech_audio_decodes"'):text.index('id="check-stream_ends_with_done"')]
    assert "a binary body (not shown as text; see media)" in speech and "ID3" not in speech
    assert pages.is_binary("ID3\x04\x00\x00\ufffd\ufffd") and not pages.is_binary('{"error": "bad"}\n')


def test_media_summaries_are_what_a_person_wants_to_see() -> None:
    import io

    from PIL import Image

    photo = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 30)).save(photo, format="PNG")
    shown = media.summary("image/png", photo.getvalue())
    assert shown is not None and (shown["format"], shown["width"], shown["height"]) == ("PNG", 640, 480)
    assert str(shown["thumbnail"]).startswith("data:image/jpeg;base64,")
    small = media.image(media.from_base64(str(shown["thumbnail"])))
    assert (small.format, small.width, small.height) == ("JPEG", media.THUMBNAIL_PX, 120)
    untyped = media.summary("application/octet-stream", media.wav_tone(0.5))
    assert untyped is not None and untyped["kind"] == "audio" and untyped["format"] == "wav"
    assert media.summary("application/octet-stream", b"not media") is None
    broken = media.summary("application/json", json.dumps({"data": [{"b64_json": "iVBORw0KGgo="}]}).encode())
    assert broken is not None and broken["kind"] == "image" and "decoder" in str(broken["error"])
    assert media.summary("application/json", b'{"choices": []}') is None
