"""report.html and compare.html seen in a real browser: Debian's headless Chromium at a 1280 px viewport.

Each page must show its grid, never scroll sideways (evidence unfolded too, and in print), and have every
in-page anchor resolve. The checks are also run on pages broken on purpose, to prove they can fail.
Screenshots go to ``$REPORT_SCREENSHOTS`` (default: pytest's temporary folder), never to the tree.

Needs ``chromium`` and ``chromium-driver`` (Debian; ``.ci/run`` installs them); skipped without them.
``$CHROMIUM`` and ``$CHROMEDRIVER`` name other binaries.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import pages
from conformance.embedded import serve
from tests.broken_targets import BROKEN, Rewriting, broken_app
from tests.report_samples import sample_report
from tests.test_suite_catches_broken_targets import mock_like_target_file

#: The browser and its driver: ``$CHROMIUM`` and ``$CHROMEDRIVER``, else Debian's on the PATH or in /usr/bin.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
VIEWPORT = (1280, 900)

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
    reason=f"headless Chromium not found ({CHROMIUM}, {CHROMEDRIVER}): "
           "apt-get install chromium chromium-driver, as .ci/run does where it is root")

#: What a page looks like to the browser: its width, what scrolls sideways, anchors that lead nowhere.
MEASURE = """
const root = document.documentElement;
const ids = new Set(Array.from(document.querySelectorAll('[id]'), e => e.id));
const anchors = Array.from(document.querySelectorAll('a[href^="#"]'), a => a.getAttribute('href'));
const scrollers = Array.from(document.querySelectorAll('body *')).filter(e => {
  const overflow = getComputedStyle(e).overflowX;
  return (overflow === 'auto' || overflow === 'scroll') && e.scrollWidth > e.clientWidth + 1;
}).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className);
return {
  scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, innerWidth: window.innerWidth,
  height: root.scrollHeight, scrollers: scrollers,
  anchors: anchors.length, broken: anchors.filter(h => !ids.has(decodeURIComponent(h.slice(1)))),
  gridCells: document.querySelectorAll('table.grid td.cell').length,
  gridRows: document.querySelectorAll('table.grid tbody tr:not(.group)').length,
  fetched: performance.getEntriesByType('resource').map(r => r.name),
};
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (WebDriver) with a 1280 x 900 CSS px viewport."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-extensions", "--no-first-run", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$REPORT_SCREENSHOTS`` or a temporary folder."""
    folder = Path(os.environ.get("REPORT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(browser: Any, path: Path, media: str = "screen") -> dict[str, Any]:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": media})
    browser.get(path.as_uri())
    measured: dict[str, Any] = browser.execute_script(MEASURE)
    return measured


def _unfold(browser: Any) -> dict[str, Any]:
    browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    measured: dict[str, Any] = browser.execute_script(MEASURE)
    return measured


def _screenshot(browser: Any, path: Path, height: int) -> None:
    """A PNG of the page's top ``height`` CSS px at the viewport's width."""
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": VIEWPORT[0], "height": height, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def _fits(measured: dict[str, Any]) -> None:
    assert measured["innerWidth"] == VIEWPORT[0]
    assert measured["scrollWidth"] <= VIEWPORT[0], f"page is {measured['scrollWidth']} px wide"
    assert measured["scrollers"] == [], "elements scroll sideways"


def _anchors_resolve(measured: dict[str, Any]) -> None:
    assert measured["anchors"] > 0
    assert measured["broken"] == [], "anchors that lead nowhere"


def test_report_shows_the_grid_fits_1280_and_its_anchors_resolve(browser: Any, tmp_path: Path, shots: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(pages.report_page(sample_report()))
    measured = _open(browser, page)
    assert measured["gridCells"] >= 12 and measured["gridRows"] >= 12
    _fits(measured)
    _anchors_resolve(measured)
    assert measured["fetched"] == [], "a self-contained page fetches nothing"
    _screenshot(browser, shots / "report-top.png", 1500)
    unfolded = _unfold(browser)
    _fits(unfolded)
    browser.execute_script("document.getElementById('failures').scrollIntoView()")
    _screenshot(browser, shots / "report-failures.png", unfolded["height"])


def test_a_grid_cell_leads_to_its_checks(browser: Any, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(pages.report_page(sample_report()))
    _open(browser, page)
    cell = browser.find_element("css selector", "table.grid td.v-fail a")
    href = cell.get_attribute("href").split("#", 1)[1]
    cell.click()
    target = browser.execute_script("const t = document.querySelector(':target'); return t && t.id")
    assert target == href
    text = browser.find_element("id", href).text
    assert "stream_ends_with_done" in text and "failed" in text


def test_report_prints_with_its_evidence_unfolded(browser: Any, tmp_path: Path, shots: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(pages.report_page(sample_report()))
    measured = _open(browser, page, media="print")
    _fits(measured)
    heights = browser.execute_script(
        "return Array.from(document.querySelectorAll('details:not([open]) dl.evidence'), e => e.offsetHeight)")
    assert heights and min(heights) > 0, "folded evidence is printed"
    assert browser.execute_script("return getComputedStyle(document.querySelector('nav')).display") == "none"
    _screenshot(browser, shots / "report-print.png", min(measured["height"], 2400))


def test_compare_page_fits_1280_and_highlights_differences(browser: Any, tmp_path: Path, shots: Path) -> None:
    runs = [sample_report(name, variant) for variant, name in enumerate(("acme-gateway", "beta-proxy", "gamma-edge"))]
    page = tmp_path / "compare.html"
    page.write_text(pages.compare_page(runs, ["acme/report.html", "beta/report.html", None]))
    measured = _open(browser, page)
    assert measured["gridCells"] >= 3 * 12
    _fits(measured)
    _anchors_resolve(measured)
    differing = browser.find_elements("css selector", "table.compare tr.differs")
    assert differing and all(row.is_displayed() for row in differing)
    _screenshot(browser, shots / "compare.png", measured["height"])
    browser.find_element("css selector", "label[for=only-differences]").click()
    same = browser.find_elements("css selector", "table.compare tr.same")
    assert same and not any(row.is_displayed() for row in same)
    assert all(row.is_displayed() for row in differing)
    _screenshot(browser, shots / "compare-differences.png", min(browser.execute_script(MEASURE)["height"], 1400))


def test_the_checks_catch_a_page_too_wide_and_an_anchor_to_nowhere(browser: Any, tmp_path: Path) -> None:
    text = pages.report_page(sample_report())
    too_wide = tmp_path / "too-wide.html"
    too_wide.write_text(text.replace("</main>", '<div style="width:1500px">wide</div></main>'))
    with pytest.raises(AssertionError, match=r"page is 1[45]\d\d px wide"):
        _fits(_open(browser, too_wide))
    own_scroll = tmp_path / "own-scroll.html"
    own_scroll.write_text(text.replace("</main>", '<pre style="white-space:pre;overflow-x:auto">'
                                       + "x" * 400 + "</pre></main>"))
    with pytest.raises(AssertionError, match="elements scroll sideways"):
        _fits(_open(browser, own_scroll))
    broken = tmp_path / "broken-anchor.html"
    broken.write_text(text.replace('<a href="#checks">', '<a href="#nowhere">'))
    with pytest.raises(AssertionError, match="anchors that lead nowhere"):
        _anchors_resolve(_open(browser, broken))


def _run(target: str, name: str, reports: Path, exit_code: int) -> Path:
    """``conformance run`` of the image and speech checks; the folder of the report it wrote."""
    command = [sys.executable, "-m", "conformance", "run", "--target", target, "--name", name, "--reports",
               str(reports), "--phases", "behavioural", "-k", "image_b64 or speech", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == exit_code, done.stdout + done.stderr
    return (reports / name / "latest").resolve()


def test_a_real_run_and_its_comparison_in_the_browser(browser: Any, tmp_path: Path, shots: Path) -> None:
    """The CLI as a user runs it: the mock and a target with wrong-size images and untyped speech, compared."""
    clean = _run("mock", "mock", tmp_path / "reports", 0)
    with serve(Rewriting(broken_app("images_wrong_size"), BROKEN["speech_as_octet_stream"].rewrite)) as url:
        broken = _run(mock_like_target_file(url, tmp_path, name="broken-gateway"), "broken-gateway",
                      tmp_path / "reports", 1)
    report = _open(browser, broken / "report.html")
    _fits(_unfold(browser))
    _anchors_resolve(report)
    media = browser.find_elements("css selector", "dd.media")
    texts = [element.text for element in media]
    assert any("image: PNG, 64\N{MULTIPLICATION SIGN}48 px" in text for text in texts), texts
    assert any(text.startswith("audio: mp3") for text in texts), texts
    assert browser.execute_script("return document.querySelector('dd.media img').naturalWidth") == 64
    _screenshot(browser, shots / "real-report.png", min(browser.execute_script(MEASURE)["height"], 3000))
    page = tmp_path / "reports" / "compare.html"
    done = subprocess.run([sys.executable, "-m", "conformance", "compare", str(clean), str(broken),
                           "--html", str(page)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    compared = _open(browser, page)
    _fits(compared)
    _anchors_resolve(compared)
    differing = browser.find_elements("css selector", "table.compare tr.differs th.cap")
    assert {"images.b64_json", "audio.speech"} <= {row.text.split()[1] for row in differing}
    _screenshot(browser, shots / "real-compare.png", compared["height"])
    browser.find_element("css selector", "table.compare tr.differs td.v-fail a").click()
    assert browser.current_url.startswith((broken / "report.html").as_uri() + "#cap-openai_gateway-")
    assert browser.execute_script("return document.querySelector(':target') !== null")
