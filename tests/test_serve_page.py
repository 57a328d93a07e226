"""The web page at ``/`` in a real headless Chromium (Playwright driving the system's browser)."""
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import red_car_photo
from serving import running_server

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:  # one driver per module: a second one cannot start beside it
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(oracle_model, browser):
    with running_server(str(oracle_model), "--refine", "none") as url:
        page = browser.new_page()
        page.goto(url)
        yield page
        page.close()


def photo_file(path, height: int, width: int):
    Image.fromarray(red_car_photo(height, width)[0]).save(path)
    return path


def natural_size(image) -> tuple:
    return tuple(image.evaluate("img => [img.naturalWidth, img.naturalHeight]"))


def test_picked_photos_show_before_and_after_with_downloads(page, tmp_path):
    files = [photo_file(tmp_path / "first.png", 120, 180), photo_file(tmp_path / "second.png", 90, 150)]
    page.set_input_files("#files", [str(f) for f in files])
    page.wait_for_selector(".result:nth-child(2) .after", timeout=30_000)
    page.wait_for_selector(".result:nth-child(1) .after", timeout=30_000)
    for name, size in (("first", (180, 120)), ("second", (150, 90))):
        card = page.locator(".result", has_text=name)
        card.locator("img.after").evaluate("img => img.decode()")
        assert natural_size(card.locator("img.before")) == natural_size(card.locator("img.after")) == size
        link = card.locator("a.download")
        assert link.get_attribute("download") == f"{name}.png" and link.get_attribute("href").startswith("blob:")
        with page.expect_download() as download:
            link.click()
        cutout = np.asarray(Image.open(download.value.path()))
        assert cutout.shape == (size[1], size[0], 4)  # the RGBA cut-out, not the photo


def test_form_controls_reach_the_service_and_errors_show(page, tmp_path):
    page.select_option("select[name=background]", "white")
    page.select_option("select[name=format]", "jpg")
    page.set_input_files("#files", str(photo_file(tmp_path / "white.png", 60, 90)))
    link = page.wait_for_selector(".result:has-text('white') a.download", timeout=30_000)
    assert link.get_attribute("download") == "white.jpg"
    page.select_option("select[name=background]", "transparent")  # jpg has no transparency: a 422 the page shows
    page.set_input_files("#files", str(photo_file(tmp_path / "clear.png", 60, 90)))
    error = page.wait_for_selector(".result:has-text('clear') .error", timeout=30_000)
    assert "no transparency" in error.text_content()
    (tmp_path / "notes.png").write_bytes(b"not a photo at all")
    page.select_option("select[name=format]", "png")
    page.set_input_files("#files", str(tmp_path / "notes.png"))
    error = page.wait_for_selector(".result:has-text('notes') .error", timeout=30_000)
    assert "not an image" in error.text_content()


DROP = """async () => {  // a photo drawn on a canvas, dropped on the drop zone as a file
    const canvas = Object.assign(document.createElement("canvas"), {width: 80, height: 50});
    const context = canvas.getContext("2d");
    context.fillStyle = "rgb(30,60,200)"; context.fillRect(0, 0, 80, 50);
    context.fillStyle = "rgb(220,20,20)"; context.fillRect(20, 15, 40, 20);
    const blob = await new Promise(done => canvas.toBlob(done, "image/png"));
    const transfer = new DataTransfer();
    transfer.items.add(new File([blob], "dropped.png", {type: "image/png"}));
    document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
}"""


def test_dropped_photo_is_cut_out(page):
    page.select_option("select[name=format]", "png")
    page.evaluate(DROP)
    after = page.wait_for_selector(".result:has-text('dropped') img.after", timeout=30_000)
    after.evaluate("img => img.decode()")
    assert natural_size(after) == (80, 50)


def test_openapi_page_renders_offline(page):
    page.goto(page.url.rstrip("/") + "/docs")  # Swagger UI from the server's own files, no CDN
    operation = page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    assert "/api/remove" in page.locator(".opblock-summary-path").all_text_contents()
    assert operation.is_visible()
    page.goto(page.url.replace("/docs", "/"))


KEY = "page-key-0123456789abcdef"


def test_the_page_asks_for_a_key_when_the_service_needs_one(oracle_model, browser, tmp_path):
    """With --api-keys the page shows a key field; without the key a photo's card shows the 403, with it the cut-out
    comes back, and the key stays for the tab (sessionStorage) across a reload."""
    (tmp_path / "keys.txt").write_text(KEY + "\n")
    with running_server(str(oracle_model), "--refine", "none", "--api-keys", str(tmp_path / "keys.txt")) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#api-key", state="visible", timeout=30_000)
        page.set_input_files("#files", str(photo_file(tmp_path / "locked.png", 60, 90)))
        error = page.wait_for_selector(".result:has-text('locked') .error", timeout=30_000)
        assert "no API key" in error.text_content()
        page.fill("#api-key", KEY)
        page.dispatch_event("#api-key", "change")
        page.set_input_files("#files", str(photo_file(tmp_path / "opened.png", 60, 90)))
        after = page.wait_for_selector(".result:has-text('opened') img.after", timeout=30_000)
        after.evaluate("img => img.decode()")
        assert natural_size(after) == (90, 60)
        page.reload()
        page.wait_for_selector("#api-key", state="visible", timeout=30_000)
        assert page.input_value("#api-key") == KEY
        page.close()


def test_the_page_hides_the_key_field_without_keys(page):
    page.wait_for_function("document.getElementById('key-box').hidden === true", timeout=30_000)
    assert not page.is_visible("#api-key")
