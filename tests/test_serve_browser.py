"""The phone page in a real browser: Debian's chromium, headless, driven by selenium through the
system chromedriver (nothing downloads a browser). Opens the page at a phone's size, uploads
simulated photos through the file input, and sees the coverage change.

Without chromium this test skips locally, and fails under CI (CI=true), where .ci/run installs
chromium and chromium-driver."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from physical.serve import Service, ServerThread
from serve_fixtures import TOKEN, make_photos

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"


def _browser_or_reason() -> str | None:
    missing = [what for what, ok in (("chromium", CHROMIUM), ("/usr/bin/chromedriver", os.path.exists(CHROMEDRIVER)))
               if not ok]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    return f"missing: {', '.join(missing)} (apt-get install chromium chromium-driver)" if missing else None


@pytest.fixture
def driver():
    reason = _browser_or_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run under CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=390,844"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    d.set_window_size(390, 844)
    yield d
    d.quit()


def _page_in(d, page: int) -> str | None:
    # read in one script: the page re-renders its cards on every status event
    return d.execute_script(f"const e = document.querySelector(\"#pages [data-page='{page}']\"); "
                            "return e ? e.dataset.in : null;")


def _text(d, element_id: str) -> str:
    return d.execute_script(f"return document.getElementById('{element_id}').textContent;")


def test_phone_page_uploads_photos_and_shows_coverage(tmp_path, driver):
    from selenium.webdriver.support.ui import WebDriverWait

    ws, photos = make_photos(tmp_path)
    service = Service(ws, "g", TOKEN, max_upload_bytes=20_000_000)
    shots = Path(os.environ.get("PHYSICAL_SCREENSHOTS", tmp_path))
    with ServerThread(service) as server:
        d = driver
        wait = WebDriverWait(d, 120, poll_frequency=0.1)
        d.get(f"{server.url}/?token={TOKEN}")
        wait.until(lambda d: _page_in(d, 2) is not None)
        assert _page_in(d, 1) == "0" and _page_in(d, 2) == "0"
        assert "0 of 8 printed images in" in _text(d, "summary")
        camera = d.find_element("id", "camera")
        assert camera.get_attribute("capture") == "environment" and camera.get_attribute("multiple") == "true"

        # a photo of another run's sheet, then page 1 cut off: refused / partly in, with advice
        d.find_element("id", "gallery").send_keys(str(photos["other"]))
        wait.until(lambda d: "this sheet belongs to run other" in _text(d, "photos"))
        d.find_element("id", "gallery").send_keys(str(photos["cut"]))
        wait.until(lambda d: "cut off" in _text(d, "photos"))
        partly = int(_page_in(d, 1))
        assert 0 < partly < 4
        assert "cut off" in _text(d, "latest")  # the newest result shows above the pages
        d.save_screenshot(str(shots / "serve-phone-advice.png"))

        # both pages, two files through the camera input at once: coverage goes to 8 of 8
        camera.send_keys(f"{photos['p1']}\n{photos['p2']}")
        wait.until(lambda d: _page_in(d, 1) == "4" and _page_in(d, 2) == "4")
        wait.until(lambda d: d.find_element("id", "complete").is_displayed())
        assert "All 8 printed images are in." in _text(d, "complete")
        assert d.find_element("id", "finish").is_enabled()
        assert "8 of 8 printed images in" in _text(d, "summary")
        d.save_screenshot(str(shots / "serve-phone-complete.png"))
        names = _text(d, "photos")
        for path in (photos["p1"], photos["p2"], photos["other"], photos["cut"]):
            assert path.name in names
        assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
