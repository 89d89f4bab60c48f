"""The page in a real browser (headless Debian Chromium through Playwright), used as a person
would: against ``mme ui --local`` on the tiny models' TorchServe (the pictures are noise, the flow
is real) and against a deployed-endpoint stand-in that answers "model is loading".

The screenshots of the main states are written to docs/images/ (docs/usage.md shows them).
"""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from client_support import sample_photo
from PIL import Image
from sagemaker_fakes import FakeSageMakerRuntime, model_not_ready
from ui_support import REPO_ROOT, SCREENSHOTS, UiProcess, rgb

pytestmark = [pytest.mark.torchserve, pytest.mark.browser]


# ---------------------------------------------------------------------------------- page helpers
def shot(page, name: str) -> None:
    """A screenshot for the docs (JPEG: a sixth of the PNG's size for photos, rewritten each run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), type="jpeg", quality=85)


def jobs(page) -> int:
    return int(page.get_attribute("body", "data-jobs") or 0)


def wait_jobs(page, count: int) -> None:
    page.wait_for_selector(f"body[data-jobs='{count}']", state="attached")


def drop_file(page, data: bytes, name: str, mime: str) -> None:
    """Drag-and-drop of a file onto the page (a DataTransfer holding it, as the OS gives one)."""
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""", [base64.b64encode(data).decode(), name, mime])
    page.dispatch_event("#stage", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#stage", "drop", {"dataTransfer": transfer})


def screen_xy(page, x: float, y: float, size: tuple[int, int]) -> tuple[float, float]:
    box = page.locator("#base").bounding_box()
    return box["x"] + (x + 0.5) * box["width"] / size[0], box["y"] + (y + 0.5) * box["height"] / size[1]


def click_at(page, x, y, size, button="left", shift=False) -> None:
    """Click image pixel (x, y) and wait for the mask of the new selection."""
    before = jobs(page)
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(*screen_xy(page, x, y, size), button=button)
    if shift:
        page.keyboard.up("Shift")
    wait_jobs(page, before + 1)


def drag_box(page, start, end, size) -> None:
    before = jobs(page)
    page.mouse.move(*screen_xy(page, *start, size))
    page.mouse.down()
    page.mouse.move(*screen_xy(page, *end, size), steps=8)
    page.mouse.up()
    wait_jobs(page, before + 1)


def counts(page) -> tuple[int, int]:
    return page.locator("#marks circle").count(), page.locator("#marks rect").count()


def run_edit(page, button: str) -> None:
    before = jobs(page)
    page.click(button)
    wait_jobs(page, before + 1)
    assert page.is_hidden("#error"), page.inner_text("#error")


def download(page) -> bytes:
    with page.expect_download() as info:
        page.click("#download")
    return open(info.value.path(), "rb").read()


def assert_edit_kept_outside(result_png: bytes, original: np.ndarray, mask: np.ndarray) -> None:
    image = Image.open(io.BytesIO(result_png))
    assert image.format == "PNG" and image.size == (original.shape[1], original.shape[0])
    result = np.asarray(image.convert("RGB"))
    assert np.array_equal(result[~mask], original[~mask]), "pixels outside the selection changed"
    assert not np.array_equal(result[mask], original[mask]), "nothing changed inside the selection"


def history_mask(ui, index: int = 0) -> np.ndarray:
    _, history = ui.json("GET", "/api/history")
    status, _, data = ui.request("GET", f"/api/masks/{history['history'][index]['mask']}")
    assert status == 200
    return np.asarray(Image.open(io.BytesIO(data))) == 255


# ---------------------------------------------------------------------------------- the flow
def test_select_erase_replace_compare_download_continue(ui_local, page_for):
    photo = sample_photo("coffee.png")
    original = rgb(photo.read_bytes())
    size = (original.shape[1], original.shape[0])
    page = page_for(ui_local)
    open_photo(page, photo)
    select_with_clicks_and_a_box(page, size)
    undo_redo_and_escape(page)
    erase_compare_and_download(page, ui_local, original)
    replace_twice_with_the_same_seed(page, ui_local, original)
    show_older_edits_from_the_history(page)
    continue_from_the_result(page, size)


def open_photo(page, photo: Path) -> None:
    assert "up to 4.3 MB and 16.8 megapixels" in page.inner_text("#limits")
    shot(page, "ui-start.jpg")
    drop_file(page, photo.read_bytes(), "coffee.png", "image/png")
    page.wait_for_selector("#view:not([hidden])")
    assert page.inner_text("#image-info") == "coffee.png · 600×400"


def select_with_clicks_and_a_box(page, size) -> None:
    """Include, exclude (shift-click and right click), box: the mask follows every click."""
    click_at(page, 300, 180, size)
    assert page.get_attribute("#score", "data-sent") == "image"
    assert page.is_visible("#overlay") and page.get_attribute("#overlay", "src").startswith("data:image/png")
    click_at(page, 480, 90, size, shift=True)
    assert page.get_attribute("#score", "data-sent") == "image_id"  # later clicks reuse SAM's image_id
    click_at(page, 90, 330, size, button="right")
    drag_box(page, (120, 60), (470, 360), size)
    assert counts(page) == (3, 1)
    assert page.locator("#marks .exclude").count() == 2
    assert page.inner_text("#score").startswith("Score ")


def undo_redo_and_escape(page) -> None:
    """Undo / redo / Escape, from the keyboard; earlier masks come back without a request."""
    before = jobs(page)
    page.keyboard.press("Control+z")
    assert counts(page) == (3, 0)
    page.keyboard.press("Control+Shift+z")
    assert counts(page) == (3, 1)
    page.keyboard.press("Escape")
    assert counts(page) == (0, 0) and page.inner_text("#score").startswith("No selection")
    assert page.is_disabled("#erase")
    page.keyboard.press("Control+z")
    assert counts(page) == (3, 1) and jobs(page) == before and page.is_enabled("#erase")
    page.click("#undo")
    page.click("#redo")
    assert counts(page) == (3, 1)
    shot(page, "ui-select.jpg")


def erase_compare_and_download(page, ui, original: np.ndarray) -> None:
    """Erase, compare before/after (slider, press-and-hold, drag on the picture), download."""
    run_edit(page, "#erase")
    page.wait_for_selector("#result-panel:not([hidden])")
    assert page.inner_text("#status-text").startswith("Erase done in")
    page.locator("#compare").fill("30")
    assert "30%" in page.get_attribute("#after", "style")
    page.keyboard.down("b")
    assert page.get_attribute("#view", "data-holding") == "1"
    page.keyboard.up("b")
    assert page.get_attribute("#view", "data-holding") == "0"
    box = page.locator("#base").bounding_box()
    page.mouse.click(box["x"] + 0.7 * box["width"], box["y"] + 0.5 * box["height"])
    assert 68 <= int(page.input_value("#compare")) <= 72
    shot(page, "ui-erase.jpg")
    assert_edit_kept_outside(download(page), original, history_mask(ui))


def replace_twice_with_the_same_seed(page, ui, original: np.ndarray) -> None:
    """Replace with a prompt, a fixed seed, 2 steps and strength 0.8; the same seed again: same picture."""
    page.click("#back")
    page.fill("#prompt", "a red ceramic cup")
    page.fill("#negative", "blurry")
    page.uncheck("#seed-random")
    page.fill("#seed", "7")
    page.fill("#steps", "2")
    page.locator("#strength").fill("0.8")
    run_edit(page, "#replace")
    assert page.inner_text("#seed-used") == "used: 7"
    assert "with seed 7" in page.inner_text("#status-text")
    assert "strength 0.8" in page.inner_text("#result-info")
    shot(page, "ui-replace.jpg")
    first = download(page)
    assert_edit_kept_outside(first, original, history_mask(ui))
    page.keyboard.press("Escape")  # back to the selection
    run_edit(page, "#replace")
    assert download(page) == first


def show_older_edits_from_the_history(page) -> None:
    """The history lists every edit; an older one can be shown again."""
    assert page.locator("#history li").count() == 3
    page.locator("#history li button").last.click()
    assert page.inner_text("#result-info").startswith("Erased")
    page.locator("#history li button").first.click()
    assert page.inner_text("#result-info").startswith("Replaced with “a red ceramic cup” (seed 7")


def continue_from_the_result(page, size) -> None:
    """Continue editing from the result: it becomes the image; its first click sends it."""
    page.click("#continue")
    assert page.inner_text("#image-info").startswith("coffee-replace.png · 600×400")
    assert page.is_hidden("#result-panel") and counts(page) == (0, 0)
    click_at(page, 300, 200, size)
    assert page.get_attribute("#score", "data-sent") == "image"
    click_at(page, 100, 100, size, shift=True)
    assert page.get_attribute("#score", "data-sent") == "image_id"


def test_error_paths_show_clear_messages(ui_local, page_for, tmp_path):
    page = page_for(ui_local)
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/api/images") else None)

    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list, not a photo\n")
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error-title") == "Cannot open this file:"
    assert "not an image (expected PNG, JPEG or WebP)" in page.inner_text("#error-message")
    assert page.is_hidden("#view") and len(uploads) == 1

    huge = tmp_path / "huge.jpg"
    huge.write_bytes(os.urandom(4_400_000))
    page.set_input_files("#file", str(huge))
    page.wait_for_selector("#error-message:text('the limit is 4.3 MB')")
    assert page.inner_text("#error-title") == "Image too large:" and len(uploads) == 1  # refused before upload

    photo = sample_photo("chelsea.png")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#view:not([hidden])")
    assert page.is_hidden("#error")
    click_at(page, 200, 150, (451, 300))

    before = jobs(page)
    page.click("#replace")  # no prompt: said on the page, nothing sent
    assert page.inner_text("#error-title") == "Write a prompt:" and jobs(page) == before

    # the model's 400 messages, as the model wrote them
    page.fill("#prompt", "cat " * 80)
    page.fill("#steps", "2")
    before = jobs(page)
    page.click("#replace")
    wait_jobs(page, before + 1)
    assert page.inner_text("#error-title") == "Replace failed:"
    assert page.inner_text("#error-message") == "'prompt' is 80 tokens; the text encoder takes at most 75"
    assert page.inner_text("#error-detail") == "(model sd · prompt_too_long · HTTP 400)"
    shot(page, "ui-error.jpg")

    page.fill("#prompt", "a hat")
    page.fill("#steps", "101")
    before = jobs(page)
    page.click("#replace")
    wait_jobs(page, before + 1)
    assert page.inner_text("#error-message") == "gen_args.num_inference_steps=101 is above the maximum 100"
    page.click("#error-close")
    assert page.is_hidden("#error")

    page.keyboard.press("?")  # the shortcuts, from the keyboard
    assert page.is_visible("#help") and "undo" in page.inner_text("#help")
    page.keyboard.press("Escape")
    assert page.is_hidden("#help")


def test_loading_model_state_against_an_endpoint(ui_env, page_for):
    """A multi-model endpoint answers ModelNotReadyException while it loads a model: the page says
    so and keeps waiting while the client retries (the loopback stand-in of SageMaker Runtime)."""
    with FakeSageMakerRuntime() as runtime:
        env = {**ui_env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url}
        targets = [arg for name in ("sam", "lama", "sd") for arg in ("--target-model", f"{name}={name}-1.tar.gz")]
        ui = UiProcess(["--endpoint", "image-editing-mme", *targets], env)
        try:
            page = page_for(ui)
            assert page.inner_text("#backend") == "Models: SageMaker endpoint image-editing-mme (us-east-1)"
            page.set_input_files("#file", str(sample_photo("chelsea.png")))
            page.wait_for_selector("#view:not([hidden])")
            click_at(page, 200, 150, (451, 300))
            runtime.script(*[model_not_ready()] * 40)
            before = jobs(page)
            page.click("#erase")
            page.wait_for_selector("#status[data-state='loading_model']")
            assert page.is_visible("#progress")
            assert page.inner_text("#status-text").startswith("Loading the model… lama is loading on the endpoint")
            shot(page, "ui-loading-model.jpg")
            runtime.scripted.clear()  # the model is loaded now
            wait_jobs(page, before + 1)
            assert page.inner_text("#status-text").startswith("Erase done in")
            assert page.get_attribute("#status", "data-state") == "idle"
            lama_calls = [call for call in runtime.calls if call.target_model == "lama-1.tar.gz"]
            assert len(lama_calls) >= 2 and {c.endpoint for c in lama_calls} == {"image-editing-mme"}
        finally:
            code, out, err = ui.stop()
        assert code == 0 and "Traceback" not in err


def test_the_docs_show_every_screenshot_taken_here():
    taken = set(re.findall(r'shot\(page, "([^"]+)"\)', Path(__file__).read_text()))
    shown = set(re.findall(r"\]\(images/([^)]+)\)", (REPO_ROOT / "docs" / "usage.md").read_text()))
    assert len(taken) == 6 and shown == taken
