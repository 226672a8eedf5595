"""The page of `vaeinpaint serve` in a real headless Chromium (Debian's chromium and
chromium-driver, through Selenium): upload a photo, paint a stroke with the mouse, Restore,
download; only the stroke changed, and the page asked nothing of any other host."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaeinpaint.apps.server import ServerSettings, background_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTH, HEIGHT = 240, 160
BRUSH = 20  # the size slider's default is 30 screen px; the test sets it
STROKE = ((60, 80), (180, 80))  # photo px: a horizontal stroke through the middle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
]


def photo(path: Path) -> np.ndarray:
    """Smooth colours with a pattern, so that a fill changes nearly every stroke pixel."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([xx * 255 // WIDTH, yy * 255 // HEIGHT, ((xx // 8 + yy // 8) % 2) * 200 + 20], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def distance_to_stroke(shape: tuple[int, int]) -> np.ndarray:
    (x0, y0), (x1, _) = STROKE
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5  # pixel centres
    dx = np.maximum(np.maximum(x0 - xx, xx - x1), 0)
    return np.hypot(dx, yy - y0)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path / "downloads")})
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_paint_restore_download(tmp_path, tiny_checkpoint, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = photo(tmp_path / "photo.png")
    with background_server(ServerSettings(model=str(tiny_checkpoint), device="cpu")) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: "model ready" in d.find_element(By.ID, "health").text)
        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "photo.png"))
        canvas = browser.find_element(By.ID, "mask")
        wait.until(lambda d: canvas.get_property("width") == WIDTH and canvas.size["width"] > 0)

        # Paint at 1:1 so that the brush is BRUSH photo px wide: the page scales by the canvas's on-screen size.
        browser.execute_script("arguments[0].style.width = arguments[1] + 'px'", browser.find_element(By.ID, "stage"), WIDTH)
        browser.execute_script(
            "const s = document.getElementById('size'); s.value = arguments[0]; s.dispatchEvent(new Event('input'))", BRUSH
        )
        scale = canvas.size["width"] / WIDTH
        assert scale == pytest.approx(1.0, abs=0.01)
        (x0, y0), (x1, y1) = STROKE
        left, top = -canvas.size["width"] / 2, -canvas.size["height"] / 2  # offsets are from the element's centre
        actions = ActionChains(browser).move_to_element_with_offset(canvas, left + x0, top + y0).click_and_hold()
        for x in range(x0 + 10, x1 + 1, 10):
            actions.move_to_element_with_offset(canvas, left + x, top + y1)
        actions.release().perform()

        restore = browser.find_element(By.ID, "restore")
        wait.until(lambda d: restore.is_enabled())
        restore.click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", browser.find_element(By.ID, "message").text
        for method in ("biharmonic", "telea"):  # the baselines of the same hole are shown beside it
            assert browser.execute_script(f"return document.querySelector('#result-{method} img').naturalWidth") == WIDTH
        browser.find_element(By.ID, "download").click()
        downloaded = tmp_path / "downloads" / "photo-inpainted.png"
        deadline = time.monotonic() + 20
        while not downloaded.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        urls = requested_urls(browser)

    with Image.open(downloaded) as image:
        after = np.asarray(image.convert("RGB"))
    assert after.shape == before.shape
    distance = distance_to_stroke(before.shape[:2])
    changed = (after != before).any(-1)
    assert not changed[distance > BRUSH / 2 + 1.5].any()  # outside the stroke (and its antialiased rim): untouched
    inside = distance < BRUSH / 2 - 1.5
    assert changed[inside].mean() > 0.9  # inside it: filled
    assert urls and all(u.startswith((url + "/", "blob:", "data:")) for u in urls), [u for u in urls if not u.startswith(url)]
    assert {url + "/static/app.js", url + "/static/style.css", url + "/api/inpaint"} <= set(urls)  # the log saw the page's own requests


def test_bad_input_is_a_message_in_the_page(tmp_path, tiny_checkpoint, browser):
    """A file that is not an image, and a photo over the server's pixel limit: a clear line in
    the page, and the page (and server) go on working."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo(tmp_path / "photo.png")
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    with background_server(ServerSettings(model=str(tiny_checkpoint), device="cpu", max_pixels=10_000)) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 30)
        message = browser.find_element(By.ID, "message")
        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.png"))
        wait.until(lambda d: message.is_displayed())
        assert message.text == "notes.png: this browser cannot show it as an image (try a PNG or JPEG)"

        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "photo.png"))
        canvas = browser.find_element(By.ID, "mask")
        wait.until(lambda d: canvas.get_property("width") == WIDTH and not message.is_displayed())
        ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(40, 0).release().perform()
        browser.find_element(By.ID, "restore").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
        assert message.text == "image: 240x160 is 0.0384 megapixels, over the limit of 0.01"
        assert browser.find_element(By.ID, "restore").is_enabled()  # try again, e.g. after resizing the photo


def test_k_completions_side_by_side_and_the_chosen_one_downloads(tmp_path, tiny_checkpoint, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo(tmp_path / "photo.png")
    with background_server(ServerSettings(model=str(tiny_checkpoint), device="cpu")) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: "model ready" in d.find_element(By.ID, "health").text)
        browser.find_element(By.ID, "file").send_keys(str(tmp_path / "photo.png"))
        canvas = browser.find_element(By.ID, "mask")
        wait.until(lambda d: canvas.get_property("width") == WIDTH and canvas.size["width"] > 0)
        ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(40, 0).release().perform()
        samples = browser.find_element(By.ID, "samples")
        samples.clear()
        samples.send_keys("3")
        browser.find_element(By.ID, "restore").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", browser.find_element(By.ID, "message").text
        tiles = browser.find_elements(By.CSS_SELECTOR, "#completions img")
        assert len(tiles) == 3
        wait.until(lambda d: all(d.execute_script("return arguments[0].naturalWidth", t) == WIDTH for t in tiles))
        boxes = [t.rect for t in tiles]
        assert len({round(b["y"]) for b in boxes}) == 1 and boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]  # one row
        assert [t.get_attribute("aria-selected") for t in tiles] == ["true", "false", "false"]
        tiles[1].click()
        assert [t.get_attribute("aria-selected") for t in tiles] == ["false", "true", "false"]
        download = browser.find_element(By.ID, "download")
        assert download.get_attribute("download") == "photo-inpainted-2.png" and download.get_attribute("href") == tiles[1].get_attribute(
            "src"
        )
        assert "3 completions" in browser.find_element(By.ID, "sample-label").text
