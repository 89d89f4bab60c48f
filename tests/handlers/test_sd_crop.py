"""Unit tests of the sd handler's crop / canvas / paste-back geometry (model_sources/sd/sd_crop.py).

Pure numpy + Pillow: no model, no torch. The handler tests (test_sd.py) run the same code
through the real pipeline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_SD_DIR = Path(__file__).resolve().parents[2] / "model_sources" / "sd"
if str(_SD_DIR) not in sys.path:
    sys.path.insert(0, str(_SD_DIR))

from sd_crop import (  # noqa: E402
    CropPlan,
    grow_to_cells,
    mask_bbox,
    paste_back,
    plan_crop,
    prepare_canvas,
    window_from_canvas,
)

NATIVE = 512


def _rect_mask(w: int, h: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def _noise_image(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": None, "LA": 2}[mode]
    shape = (h, w) if channels is None else (h, w, channels)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


def _check_plan(plan: CropPlan, size: tuple[int, int], bbox: tuple[int, int, int, int], native: int) -> None:
    w, h = size
    x0, y0, x1, y1 = plan.box
    bx0, by0, bx1, by1 = bbox
    assert 0 <= x0 <= bx0 < bx1 <= x1 <= w, (plan, bbox, size)
    assert 0 <= y0 <= by0 < by1 <= y1 <= h, (plan, bbox, size)
    ww, wh = plan.window_size
    cw, ch = plan.content
    assert plan.canvas == native
    assert max(cw, ch) == native and 1 <= min(cw, ch) <= native
    ox, oy = plan.offset
    assert 0 <= ox and ox + cw <= native and 0 <= oy and oy + ch <= native
    assert (ox, oy) == ((native - cw) // 2, (native - ch) // 2)   # centred: context on both sides
    # aspect ratio kept (up to rounding of the short side)
    assert abs(cw / native - ww / max(ww, wh)) <= 1.0 / native + 1e-9
    assert abs(ch / native - wh / max(ww, wh)) <= 1.0 / native + 1e-9
    # the window is the full image extent wherever it is smaller than the square
    side = max(native, int(np.ceil(max(bx1 - bx0, by1 - by0) * 1.5)))
    assert ww == min(side, w) and wh == min(side, h)


# ---------------------------------------------------------------------------------- mask_bbox
def test_mask_bbox_empty_and_single_pixels():
    assert mask_bbox(np.zeros((7, 5), dtype=bool)) is None
    m = np.zeros((7, 5), dtype=bool)
    m[6, 4] = True
    assert mask_bbox(m) == (4, 6, 5, 7)
    m[0, 0] = True
    assert mask_bbox(m) == (0, 0, 5, 7)


# ---------------------------------------------------------------------------------- plan_crop
@pytest.mark.parametrize(
    "size,bbox",
    [
        ((333, 517), (100, 200, 150, 260)),     # odd size, interior mask
        ((97, 61), (40, 10, 60, 30)),           # tiny image: window = whole image, upscaled
        ((97, 61), (0, 0, 97, 61)),             # whole image masked
        ((4000, 3000), (0, 0, 10, 10)),         # top-left corner
        ((4000, 3000), (3990, 2990, 4000, 3000)),  # bottom-right corner
        ((4000, 3000), (0, 1000, 4000, 1200)),  # a band across the full width
        ((4000, 3000), (1000, 1000, 3400, 2600)),  # large mask: window bigger than native
        ((600, 40), (590, 0, 600, 40)),         # very elongated image, mask at the right border
        ((1, 1), (0, 0, 1, 1)),                 # one pixel
        ((512, 512), (200, 200, 300, 300)),     # exactly native
    ],
)
def test_plan_crop_invariants(size, bbox):
    plan = plan_crop(size, bbox, native=NATIVE)
    _check_plan(plan, size, bbox, NATIVE)


def test_plan_crop_random_invariants():
    rng = np.random.default_rng(1234)
    for _ in range(400):
        w, h = (int(v) for v in rng.integers(1, 3000, 2))
        x0, x1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        if x1 > w:
            x0, x1 = w - 1, w
        if y1 > h:
            y0, y1 = h - 1, h
        native = int(rng.choice([64, 512]))
        _check_plan(plan_crop((w, h), (x0, y0, x1, y1), native=native), (w, h), (x0, y0, x1, y1), native)


def test_small_mask_in_large_image_is_edited_at_native_scale():
    plan = plan_crop((2000, 1500), (900, 700, 960, 740), native=NATIVE)
    assert plan.window_size == (NATIVE, NATIVE)      # no resampling at all
    assert plan.content == (NATIVE, NATIVE) and plan.offset == (0, 0)
    x0, y0, x1, y1 = plan.box                          # centred on the mask
    assert abs((x0 + x1) / 2 - 930) <= 1 and abs((y0 + y1) / 2 - 720) <= 1


def test_large_mask_keeps_context_margin():
    bbox = (1000, 1000, 2000, 1400)                    # longest side 1000 -> 250 px margin
    plan = plan_crop((4000, 3000), bbox, native=NATIVE, context=0.25)
    x0, y0, x1, y1 = plan.box
    assert plan.window_size == (1500, 1500)
    assert bbox[0] - x0 >= 250 and x1 - bbox[2] >= 250
    assert plan.content == (NATIVE, NATIVE)


def test_plan_crop_rejects_bad_bbox():
    with pytest.raises(ValueError):
        plan_crop((10, 10), (5, 5, 11, 6))
    with pytest.raises(ValueError):
        plan_crop((10, 10), (5, 5, 5, 6))


# ---------------------------------------------------------------------------------- canvas
def test_grow_to_cells():
    m = np.zeros((16, 16), dtype=bool)
    m[9, 3] = True
    g = grow_to_cells(m, 8)
    assert g[8:16, 0:8].all() and g.sum() == 64
    assert (grow_to_cells(m, 1) == m).all()
    with pytest.raises(ValueError):
        grow_to_cells(np.zeros((12, 16), dtype=bool), 8)


@pytest.mark.parametrize("size,box", [((333, 517), (100, 200, 150, 260)), ((97, 61), (0, 50, 97, 61)),
                                       ((700, 300), (690, 0, 700, 300))])
def test_prepare_canvas_shapes_mask_and_padding(size, box):
    w, h = size
    img = _noise_image(w, h)
    mask = _rect_mask(w, h, box)
    plan = plan_crop(size, mask_bbox(mask), native=NATIVE)
    canvas, canvas_mask = prepare_canvas(img, mask, plan, cell=8)
    assert canvas.size == (NATIVE, NATIVE) and canvas.mode == "RGB"
    assert canvas_mask.size == (NATIVE, NATIVE) and canvas_mask.mode == "L"
    cm = np.asarray(canvas_mask)
    assert set(np.unique(cm)) <= {0, 255}
    # whole latent cells
    cells = cm.reshape(NATIVE // 8, 8, NATIVE // 8, 8)
    assert (cells.min(axis=(1, 3)) == cells.max(axis=(1, 3))).all()
    # the mask's footprint on the canvas is covered
    ox, oy = plan.offset
    cw, ch = plan.content
    ww, wh = plan.window_size
    sx, sy = cw / ww, ch / wh
    x0, y0 = plan.box[:2]
    fx0, fy0 = ox + int((box[0] - x0) * sx), oy + int((box[1] - y0) * sy)
    fx1, fy1 = ox + int(np.ceil((box[2] - x0) * sx)), oy + int(np.ceil((box[3] - y0) * sy))
    assert (cm[fy0:fy1, fx0:fx1] == 255).all()
    # nothing far from the footprint is masked (at most one cell + one pixel of growth)
    grown = np.zeros_like(cm, dtype=bool)
    grown[max(0, fy0 - 9):fy1 + 9, max(0, fx0 - 9):fx1 + 9] = True
    assert not (cm.astype(bool) & ~grown).any()
    # the padding mirrors the content (symmetric reflection at the borders)
    arr = np.asarray(canvas)
    if oy > 0:
        assert (arr[oy - 1] == arr[oy]).all()
    if ox > 0:
        assert (arr[:, ox - 1] == arr[:, ox]).all()


def test_thin_stroke_survives_downscale():
    w, h = 3000, 3000
    mask = np.zeros((h, w), dtype=bool)
    mask[100:2900, 1500] = True                         # 1 px wide, 2800 px tall
    plan = plan_crop((w, h), mask_bbox(mask), native=NATIVE)
    assert plan.window_size[1] > NATIVE                 # really a downscale
    _, canvas_mask = prepare_canvas(_noise_image(w, h), mask, plan, cell=8)
    cm = np.asarray(canvas_mask) > 0
    rows = np.flatnonzero(cm.any(axis=1))
    assert rows.size > 0
    assert rows[-1] - rows[0] + 1 >= int(2800 * NATIVE / plan.window_size[1]) - 1
    # every row of the stroke's span is masked somewhere
    assert cm[rows[0]:rows[-1] + 1].any(axis=1).all()


# ---------------------------------------------------------------------------------- paste back
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
@pytest.mark.parametrize("size,box", [((333, 517), (100, 200, 150, 260)), ((97, 61), (0, 0, 20, 61)),
                                       ((61, 97), (0, 0, 61, 97))])
def test_paste_back_only_masked_pixels_change(mode, size, box):
    w, h = size
    img = _noise_image(w, h, seed=3, mode=mode)
    mask = _rect_mask(w, h, box)
    mask[box[1], box[0]] = False                        # a hole: must stay unchanged too
    plan = plan_crop(size, mask_bbox(mask), native=NATIVE)
    generated = Image.new("RGB", (NATIVE, NATIVE), (255, 0, 255))
    out = paste_back(img, mask, generated, plan)
    assert out.size == img.size and out.mode == img.mode
    a, b = np.asarray(img), np.asarray(out)
    assert (a[~mask] == b[~mask]).all()
    if mode == "RGB":
        assert (b[mask] == (255, 0, 255)).all()
    elif mode == "RGBA":
        assert (b[mask][:, :3] == (255, 0, 255)).all()
        assert (b[..., 3] == a[..., 3]).all()           # alpha untouched everywhere
    elif mode == "LA":
        assert (b[..., 1] == a[..., 1]).all()
        assert (b[mask][:, 0] == np.asarray(Image.new("RGB", (1, 1), (255, 0, 255)).convert("L"))[0, 0]).all()


def test_paste_back_palette_image_comes_back_rgb():
    img = _noise_image(40, 30).convert("P")
    mask = _rect_mask(40, 30, (5, 5, 10, 10))
    plan = plan_crop(img.size, mask_bbox(mask), native=64)
    out = paste_back(img, mask, Image.new("RGB", (64, 64), (1, 2, 3)), plan)
    assert out.mode == "RGB" and out.size == img.size
    assert (np.asarray(out)[~mask] == np.asarray(img.convert("RGB"))[~mask]).all()


def test_identity_model_round_trips_at_native_scale():
    """A 'model' returning its input gives the input back exactly when no resampling happens."""
    img = _noise_image(1200, 900, seed=5)
    mask = _rect_mask(1200, 900, (1100, 850, 1200, 900))   # at the bottom-right corner
    plan = plan_crop(img.size, mask_bbox(mask), native=NATIVE)
    assert plan.window_size == (NATIVE, NATIVE)
    canvas, _ = prepare_canvas(img, mask, plan, cell=8)
    assert (np.asarray(window_from_canvas(canvas, plan)) == np.asarray(img.crop(plan.box))).all()
    out = paste_back(img, mask, canvas, plan)
    assert (np.asarray(out) == np.asarray(img)).all()


def test_identity_model_round_trip_with_resampling_is_close():
    img = Image.fromarray(np.tile(np.linspace(0, 255, 97, dtype=np.uint8), (61, 1))).convert("RGB")
    mask = _rect_mask(97, 61, (30, 20, 60, 40))
    plan = plan_crop(img.size, mask_bbox(mask), native=NATIVE)
    canvas, _ = prepare_canvas(img, mask, plan, cell=8)
    out = np.asarray(paste_back(img, mask, canvas, plan)).astype(int)
    assert np.abs(out - np.asarray(img).astype(int)).max() <= 3   # smooth gradient survives


def test_paste_back_rejects_wrong_sizes():
    img = _noise_image(20, 10)
    mask = _rect_mask(20, 10, (1, 1, 3, 3))
    plan = plan_crop(img.size, mask_bbox(mask), native=64)
    with pytest.raises(ValueError):
        paste_back(img, mask[:, :-1], Image.new("RGB", (64, 64)), plan)
    with pytest.raises(ValueError):
        paste_back(img, mask, Image.new("RGB", (32, 64)), plan)
