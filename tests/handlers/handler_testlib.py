"""Helpers for the handler tests (importable as ``handler_testlib``; fixtures live in conftest.py).

Handlers are driven directly with a real ``ts.context.Context`` (plus ``RequestProcessor``s, as
TorchServe's worker builds them) and end to end on a real TorchServe started by
``mme.local.torchserve``.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "model_sources"
for p in (REPO, SOURCES / "common"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from ts.context import Context, RequestProcessor  # noqa: E402

# ---------------------------------------------------------------------------------------------- images
def png_bytes(image, fmt: str = "PNG", **save_kwargs) -> bytes:
    """Encode an array/PIL image (default PNG)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()

def b64_png(image, fmt: str = "PNG", **save_kwargs) -> str:
    """Base64 string of an encoded image (what clients send)."""
    return base64.b64encode(png_bytes(image, fmt, **save_kwargs)).decode()

def decode_b64_png(data: str) -> np.ndarray:
    """Decode a response's base64 PNG into an array (checks it really is a PNG)."""
    raw = base64.b64decode(data, validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "response image is not a PNG"
    with Image.open(io.BytesIO(raw)) as img:
        return np.asarray(img.copy())

def sample_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB test picture: smooth gradients plus a bright square 'object'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)),
                    ((xx + yy) * 127 // max(width + height - 2, 1))], axis=-1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    img[height // 4: height // 2, width // 4: width // 2] = (250, 240, 30)
    return img

sample_image.__test__ = False  # not a test function

def rect_mask(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A (height, width) bool mask with ``box`` = (left, top, right, bottom) set."""
    mask = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask

# ---------------------------------------------------------------------------------------------- contexts
def load_handler_class(name: str):
    """Import ``model_sources/<name>/handler.py`` under a unique module name and return the one
    class TorchServe would pick (the only class defined in the module)."""
    import inspect

    src = SOURCES / name
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    mod_name = f"{name}_handler_under_test"
    module = sys.modules.get(mod_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(mod_name, src / "handler.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    assert len(classes) == 1, f"TorchServe needs exactly one class in handler.py, found {classes}"
    return classes[0]

def model_config(name: str, **handler_overrides) -> dict:
    """The shipped model-config.yaml of a model, with optional ``handler:`` overrides."""
    cfg = yaml.safe_load((SOURCES / name / "model-config.yaml").read_text())
    cfg.setdefault("handler", {}).update(handler_overrides)
    return cfg

def make_context(model_dir, yaml_config: dict, model_name: str = "test", batch_size: int = 4) -> Context:
    """A real TorchServe ``Context`` as the worker builds it for a model directory."""
    manifest = {"model": {"modelName": model_name, "handler": "handler.py", "modelVersion": "1.0",
                          "configFile": "model-config.yaml"}, "runtime": "python"}
    return Context(model_name, str(model_dir), manifest, batch_size, None, "0.12.0",
                   model_yaml_config=yaml_config)

def run_batch(handler, ctx: Context, bodies: list, as_bytes: bool = True) -> list[tuple[int, dict]]:
    """Send one batch through ``handler.handle`` the way TorchServe does (rows with ``body``:
    bytearray for non-JSON content types, or an already decoded dict); returns (status, json)
    per request, the status taken from the context's per-request response status."""
    rows = []
    for body in bodies:
        if isinstance(body, (bytes, bytearray, str)):
            payload = bytearray(body.encode() if isinstance(body, str) else body)
        elif as_bytes:
            payload = bytearray(json.dumps(body).encode())
        else:
            payload = body
        rows.append({"body": payload})
    ctx.request_processor = [RequestProcessor({}) for _ in rows]
    ctx.request_ids = {i: f"req-{i}" for i in range(len(rows))}
    out = handler.handle(rows, ctx)
    assert isinstance(out, list) and len(out) == len(rows)
    results = []
    for i, item in enumerate(out):
        status = ctx.get_response_status(i)[0]
        assert ctx.get_response_content_type(i) == "application/json"
        results.append((status, json.loads(item)))
    return results

def model_dir_with(tmp: Path, name: str, weights: Path) -> Path:
    """A model directory like the unpacked archive (weights/ + model-config.yaml) for direct tests."""
    d = tmp / f"{name}-model"
    shutil.copytree(weights, d / "weights", dirs_exist_ok=True)
    shutil.copy2(SOURCES / name / "model-config.yaml", d / "model-config.yaml")
    return d

def start_handler(name: str, tmp: Path, weights: Path, **handler_overrides):
    """``(handler, ctx)``: the ``name`` handler initialized on a model dir under ``tmp`` holding
    ``weights`` and the shipped model-config.yaml with ``handler_overrides``."""
    handler = load_handler_class(name)()
    ctx = make_context(model_dir_with(tmp, name, weights), model_config(name, **handler_overrides))
    handler.initialize(ctx)
    return handler, ctx

# ---------------------------------------------------------------------------------------------- packaging
def package_model(name: str, weights_dir: Path, out_dir: Path) -> Path:
    """Build ``<out_dir>/<name>.tar.gz`` with the project's packager (the code path of the
    custom-resource Lambda and ``mme package``): the TorchServe no-archive model dir (handler.py,
    the model's other sources, model_sources/common/*, model-config.yaml, weights/, MAR-INF) at
    the archive root. The ONE place the tests package models.
    """
    from mme_constructs.packager.core import LocalDestination, package
    from mme_constructs.packager.specs import parse_spec

    result = package(name, [SOURCES / name, SOURCES / "common"],
                     parse_spec({"kind": "local", "path": str(weights_dir)}), LocalDestination(out_dir))
    archive = out_dir / f"{name}.tar.gz"
    Path(result.location).replace(archive)
    return archive

# ---------------------------------------------------------------------------------------------- photos
#: How to store a picture so that a viewer applying EXIF orientation ``k`` shows it upright: the
#: inverse of the transposition the orientation asks for (orientations 6 and 8 are each other's).
STORE_FOR_ORIENTATION = {
    1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270,
}


def oriented_jpeg(display: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """JPEG bytes of ``display`` stored the way a camera stores it with EXIF ``orientation``
    (1-8): a viewer that applies the tag shows ``display`` (up to JPEG loss)."""
    from PIL import ExifTags

    img = Image.fromarray(display)
    method = STORE_FOR_ORIENTATION[orientation]
    stored = img.transpose(method) if method is not None else img
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def displayed(data: bytes) -> np.ndarray:
    """What a viewer shows for encoded image ``data`` (Pillow's exif_transpose), as RGB."""
    from PIL import ImageOps

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG of a uint16 (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA array. Pillow cannot
    write 16-bit colour PNGs, so the chunks are written here (PNG spec: IHDR bit depth 16, colour
    type 0/2/6, filter 0 per row, zlib IDAT)."""
    array = np.asarray(array, dtype=">u2")
    height, width = array.shape[:2]
    colour = {2: 0, 3: {3: 2, 4: 6}.get(array.shape[-1])}[array.ndim]
    rows = array.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    """Base64 text of encoded bytes (a request field)."""
    return base64.b64encode(data).decode()
