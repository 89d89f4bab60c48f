"""What each benchmark run sends: synthetic inputs, request bodies and the per-profile plans.

Inputs are synthetic but photo-like (smooth gradients, shapes, mild noise) so JPEG/PNG decoding
costs are realistic; images travel as JPEG (as the original sample's clients send them), masks as
PNG. Bodies use the original sample's JSON (``gen_args`` as a JSON string), which both the
project's handlers and the baseline accept, so both do the same work per request.

Profiles (``--profile``):

- ``gpu``: full-size models at the target request types (sam: a first click on a new 1024 px
  image, a cached click; lama 512/1024/2048 px centred masks and 1024/2048/4096 px small masks;
  sd 512 px at the default steps).
- ``cpu``: full-size models on a small CPU: a few iterations, lama centred masks at 512/1024 and
  small masks at 1024/2048/4096, and sd at 1 and 2 denoising steps (the per-step time is their
  difference; the time at the default steps is extrapolated and labelled as such).
- ``tiny``: the tiny random-weight models at toy sizes: exercises the runner in seconds (tests).
- ``load``: full-size models, load only (no request): the cold-start figures, quickly; with
  ``--compare-sources`` an earlier version's handlers load side by side.
- ``click``: full-size SAM, cached clicks on a 1024 px image (the embedding computed once).
- ``lama-4096``: full-size LaMa on a 4096 px image, the handler and the full-resolution baseline
  (about 17 GiB of RAM on a CPU: kept out of ``cpu``).

LaMa runs two mask shapes: a centred ellipse spanning 30% of each side, and a small object
(:func:`small_object_mask`, 128 x 96 px whatever the image size: one thing erased from a large
photo). Its baseline is the project's handler with ``hd_strategy: original``: the whole image at
full resolution, as the original sample (and this handler before its large-image strategy) ran it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


# ---------------------------------------------------------------------- inputs
def synthetic_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: gradient background, a few filled ellipses/rectangles, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 60 + 120 * xx / max(width - 1, 1)
    img[..., 1] = 80 + 100 * yy / max(height - 1, 1)
    img[..., 2] = 140 - 60 * (xx + yy) / max(width + height - 2, 1)
    for _ in range(6):
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        rx, ry = rng.uniform(0.05, 0.25) * width, rng.uniform(0.05, 0.25) * height
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        img[inside] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ellipse_mask(width: int, height: int, frac: float = 0.3) -> np.ndarray:
    """(H, W) bool: a centred ellipse spanning ``frac`` of each side (the "object" to edit)."""
    yy, xx = np.mgrid[0:height, 0:width]
    rx, ry = max(frac * width / 2, 1), max(frac * height / 2, 1)
    return ((xx - width / 2) / rx) ** 2 + ((yy - height / 2) / ry) ** 2 <= 1.0


def small_object_mask(width: int, height: int, object_w: int = 128, object_h: int = 96) -> np.ndarray:
    """(H, W) bool: an ellipse of ``object_w`` x ``object_h`` pixels centred at 60% / 40% of the
    image (a small object in a large photo, away from the centre and the borders)."""
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = 0.6 * width, 0.4 * height
    return ((xx - cx) / (object_w / 2)) ** 2 + ((yy - cy) / (object_h / 2)) ** 2 <= 1.0


def encode(array: np.ndarray, fmt: str) -> bytes:
    """JPEG (quality 90) or PNG bytes of an RGB array or a bool mask (0/255)."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buf = io.BytesIO()
    img = Image.fromarray(array)
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def b64(data: bytes) -> str:
    """Base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------- plans
@dataclass
class RequestType:
    """One latency series: ``kind`` builds the bodies from ``params``."""

    name: str
    kind: str  # sam_click | lama | sd
    params: dict = field(default_factory=dict)
    iterations: int = 5
    warmup: int = 1
    description: str = ""

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return {"name": self.name, "kind": self.kind, "params": self.params, "iterations": self.iterations,
                "warmup": self.warmup, "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "RequestType":
        """Inverse of :meth:`to_dict`."""
        return cls(d["name"], d["kind"], dict(d.get("params") or {}), int(d["iterations"]), int(d["warmup"]),
                   d.get("description", ""))


#: The steps of a SAM click timed apart on cached clicks (bench.stages): request parsing and
#: validation, prompt encoder + mask decoder, mask upscaling to the image and threshold, dilation,
#: PNG encoding, base64 (``encode`` minus its PNG).
SAM_STAGES = ["parse", "decode", "upscale", "dilate", "encode_png", "encode"]

def _sam(size: int, iters: int, warm: int, iters_cached: int, warm_cached: int, base_iters: int, base_warm: int):
    handler = [
        RequestType(f"first_click_{size}", "sam_click", {"size": size, "image": "new"}, iters, warm,
                    f"first click on a new {size}x{size} image (image encoder runs)"),
        RequestType("cached_click", "sam_click", {"size": size, "image": "id", "stages": SAM_STAGES}, iters_cached,
                    warm_cached, "another click on an embedded image, sent as image_id (decoder only)"),
        RequestType("cached_click_resend", "sam_click", {"size": size, "image": "same"}, iters_cached, warm_cached,
                    "another click, the same image bytes sent again (decode + digest + decoder)"),
    ]
    baseline = [
        RequestType(f"click_{size}", "sam_click", {"size": size, "image": "new"}, base_iters, base_warm,
                    "any click: set_image (encoder) + predict, fp32, as the original sample"),
    ]
    return {"handler": handler, "baseline": baseline}


def _sd(size: int, steps_list: list, iters: int, warm: int, base_steps_list: list, base_iters: int, base_warm: int):
    handler = [RequestType(f"inpaint_{size}" + (f"_{s}step" if s else ""), "sd",
                           {"size": size, "steps": s, "guidance": None}, iters, warm,
                           f"{size}px image, mask 30% of each side, "
                           + (f"{s} steps" if s else "handler default steps and scheduler"))
               for s in steps_list]
    baseline = [RequestType(f"inpaint_{size}_pndm_{s}step", "sd", {"size": size, "steps": s, "guidance": 10.0},
                            base_iters, base_warm,
                            f"{size}px, PNDM {s} steps, guidance 10 (the original sample's client)")
                for s in base_steps_list]
    return {"handler": handler, "baseline": baseline}


def _lama(sizes: list, iters: list, warm: list, small_sizes: list = (), small_iters: list = (),
          small_warm: list = (), baseline_sizes: list | None = None):
    """LaMa plans: centred masks at ``sizes``; small-object masks at ``small_sizes`` for the handler
    and at ``baseline_sizes`` (default: the same) for the full-resolution baseline, once each when
    the list is given (minutes and GiBs per request on a CPU at 2048 px and more)."""
    centred = [RequestType(f"inpaint_{s}", "lama", {"size": s}, n, w, f"{s}x{s} image, centred mask 30% of each side")
               for s, n, w in zip(sizes, iters, warm)]

    def small(size: int, iterations: int, warmup: int) -> RequestType:
        return RequestType(f"inpaint_{size}_small_mask", "lama", {"size": size, "mask": "small"}, iterations, warmup,
                           f"{size}x{size} image, a 128x96 px object to erase")

    handler = centred + [small(s, n, w) for s, n, w in zip(small_sizes, small_iters, small_warm)]
    if baseline_sizes is None:
        baseline = [small(s, n, w) for s, n, w in zip(small_sizes, small_iters, small_warm)]
    else:
        baseline = [small(s, 1, 0) for s in baseline_sizes]
    return {"handler": handler, "baseline": baseline}


def _load_only() -> dict:
    return {"handler": [], "baseline": [], "load_only": True}


PROFILES: dict[str, dict] = {
    "gpu": {
        "size": "full",
        "sam": _sam(1024, 20, 3, 50, 5, 10, 2),
        "lama": _lama([512, 1024, 2048], [20, 20, 10], [3, 3, 2], [1024, 2048, 4096], [10, 10, 5], [2, 2, 1]),
        "sd": _sd(512, [None], 10, 2, [50], 5, 1),
    },
    "cpu": {
        "size": "full",
        "sam": _sam(1024, 1, 0, 5, 1, 1, 0),
        # The full-resolution baseline once per size, up to 2048 px: at 4096 px it needs about 17 GiB of
        # RAM (about 1 GiB per Mpx, measured at 2048) and many minutes on a CPU: profile lama-4096.
        "lama": _lama([512, 1024], [3, 1], [1, 0], [1024, 2048, 4096], [3, 3, 3], [1, 1, 1], [1024, 2048]),
        "sd": _sd(512, [1, 2], 1, 0, [1, 2], 1, 0),
    },
    # sd also as "fp16": no dtype conversion, the load the GPU handler does (files -> device as stored)
    # LaMa at 4096 px, handler and full-resolution baseline, on a CPU with about 20 GiB free
    "lama-4096": {"size": "full", "lama": _lama([], [], [], [4096], [1], [1], [4096])},
    "load": {"size": "full", "sam": _load_only(), "lama": _load_only(),
             "sd": {**_load_only(), "handler_variants": {"fp16": {"dtype": "float16"}}}},
    "click": {
        "size": "full",
        "sam": {"handler": [RequestType("cached_click", "sam_click", {"size": 1024, "image": "id", "stages": SAM_STAGES},
                                        20, 3, "another click on an embedded image, sent as image_id (decoder only)")],
                "baseline": []},
        "lama": _load_only(), "sd": _load_only(),
    },
    "tiny": {
        "size": "tiny",
        # toy tensors: one thread (two OpenMP threads on a busy shared machine wait on each other)
        "threads": 1,
        "sam": _sam(128, 2, 1, 2, 1, 2, 1),
        "lama": _lama([64, 128], [2, 2], [1, 1], [256], [1], [0]),
        "sd": _sd(64, [None], 1, 0, [50], 1, 0),
    },
}


# ---------------------------------------------------------------------- bodies
def build_bodies(rt: RequestType, variant: str, count: int) -> tuple[list, list]:
    """``(priming bodies, bodies)`` for ``count`` requests of ``rt`` (priming: untimed setup)."""
    p = rt.params
    size = int(p["size"])
    if rt.kind == "sam_click":
        base = synthetic_image(size, size, seed=1)
        points = [[int(size * (0.3 + 0.4 * ((i * 37) % 11) / 10)), int(size * (0.3 + 0.4 * ((i * 53) % 7) / 6))]
                  for i in range(count)]

        def gen_args(i: int) -> str:
            return json.dumps({"point_coords": points[i], "point_labels": 1, "dilate_kernel_size": 15})

        if p["image"] == "new":
            bodies = []
            for i in range(count):
                img = base.copy()
                img[0, 0] = [i % 256, (i // 256) % 256, 7]  # a new image for the cache (new digest)
                bodies.append({"image": b64(encode(img, "JPEG")), "gen_args": gen_args(i)})
            return [], bodies
        raw = encode(base, "JPEG")
        if p["image"] == "same":
            prime = [{"image": b64(raw), "gen_args": gen_args(0)}]
            return prime, [{"image": b64(raw), "gen_args": gen_args(i)} for i in range(count)]
        image_id = hashlib.sha256(raw).hexdigest()
        prime = [{"image": b64(raw), "gen_args": gen_args(0)}]
        return prime, [{"image_id": image_id, "gen_args": gen_args(i)} for i in range(count)]
    if rt.kind == "lama":
        img = b64(encode(synthetic_image(size, size, seed=2), "JPEG"))
        shape = small_object_mask if p.get("mask") == "small" else ellipse_mask
        mask = b64(encode(shape(size, size), "PNG"))
        return [], [{"image": img, "mask_image": mask} for _ in range(count)]
    if rt.kind == "sd":
        img = b64(encode(synthetic_image(size, size, seed=3), "JPEG"))
        mask = b64(encode(ellipse_mask(size, size), "PNG"))
        args: dict = {"seed": 1}
        steps, guidance = p.get("steps"), p.get("guidance")
        if variant == "baseline":  # the sample's handler requires every key
            args.update(num_inference_steps=steps or 50, guidance_scale=guidance if guidance is not None else 10.0)
        else:
            if steps:
                args["num_inference_steps"] = steps
            if guidance is not None:
                args["guidance_scale"] = guidance
        body = {"image": img, "mask_image": mask, "prompt": "a red ceramic vase on a wooden table, photo",
                "negative_prompt": "blurry, low quality", "gen_args": json.dumps(args)}
        return [], [dict(body) for _ in range(count)]
    raise ValueError(f"unknown request kind {rt.kind!r}")
