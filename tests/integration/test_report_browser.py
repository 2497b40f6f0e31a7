"""report.html in a real browser: headless Chromium (Playwright) renders the device x feature matrix.

Chromium comes from Debian (`apt-get install -y chromium`), not from Playwright's own download,
which this project's machines cannot fetch. Without /usr/bin/chromium the test is skipped and
says which package is missing: an environment gap, not a pass.

ENROLLAB_UPDATE_SCREENSHOT=1 also writes the screenshot to docs/report-screenshot.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.report import write_report
from tests.lab_tiers import gap
from tests.unit.test_report import needing_an_operator, sample

CHROMIUM = Path(os.environ.get("ENROLLAB_CHROMIUM", "/usr/bin/chromium"))
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"
OUTCOMES = ("pass", "fail", "error", "needs_operator", "not_applicable")


def test_report_html_renders_the_matrix_in_headless_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        gap(f"no Chromium at {CHROMIUM}: install the Debian package `chromium` (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is missing: pip install -e '.[test]' (the test extra)"
    )

    doc = needing_an_operator(sample())  # every outcome has a cell
    files = write_report(doc, tmp_path / "report")
    screenshot = tmp_path / "report-screenshot.png"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(files.html.as_uri())

            matrix = page.locator("#matrix")
            sync_api.expect(matrix).to_be_visible()
            rows = matrix.locator("tbody tr")
            sync_api.expect(rows).to_have_count(len(doc["devices"]))
            for i in range(len(doc["devices"])):
                sync_api.expect(rows.nth(i).locator("td[data-outcome]")).to_have_count(len(doc["features"]))
            for outcome in OUTCOMES:
                expected = sum(cell == outcome for row in doc["matrix"].values() for cell in row.values())
                sync_api.expect(matrix.locator(f'td[data-outcome="{outcome}"]')).to_have_count(expected)

            def background(outcome: str) -> str:
                cell = matrix.locator(f'td[data-outcome="{outcome}"]').first
                return str(cell.evaluate("cell => getComputedStyle(cell).backgroundColor"))

            colours = {outcome: background(outcome) for outcome in OUTCOMES}
            assert len(set(colours.values())) == len(OUTCOMES), colours
            assert all(c not in ("rgba(0, 0, 0, 0)", "transparent") for c in colours.values()), colours

            # the matrix is laid out as a grid: cells side by side, not collapsed
            box = matrix.locator("tbody tr").first.locator("td[data-outcome]").first.bounding_box()
            assert box is not None and box["width"] >= 20 and box["height"] >= 20

            page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()

    assert screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("ENROLLAB_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
