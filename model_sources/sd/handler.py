"""TorchServe handler of the ``sd`` model: Stable Diffusion 2 inpainting ("replace from a prompt").

Request (JSON; the shared contract of ``mme_serving``)::

    {"image": <base64 PNG/JPEG/WebP>, "mask_image": <base64, same size, white = replace>,
     "prompt": "a red vase", "negative_prompt": "blurry",            # negative_prompt optional
     "gen_args": {"num_inference_steps": 25, "guidance_scale": 7.5, "seed": 42,  # all optional
                  "strength": 1.0}}

Response: ``{"generated_image": <base64 PNG, the input's displayed size>, "seed": <the seed used>}``
(plus ``ignored_args``, the unknown ``gen_args`` keys, when there are any).
Pixels outside the mask are the input's (as decoded: display orientation, 8-bit), byte for byte.
Without ``seed`` a random one is drawn and returned, so any result can be reproduced; with the
same seed and inputs the same bytes come back (on the same hardware and software; a CUDA and a
CPU generator give different noise). An input with transparency is seen by the model
composited over white and comes back RGBA: its alpha unchanged outside the mask, opaque inside
it (the new content is painted).

``strength`` (0 < strength <= 1, default 1.0) is how much of the masked area is repainted: 1.0
starts from pure noise (the prompt alone decides what appears), lower values start from the
photo with that much noise added and keep more of its shapes and colours. Only the last
``int(steps * strength)`` denoising steps run, so it must leave at least one step.

Bad input -> 400 ``{"error": {"code", "message"}}`` for that request only: missing/empty prompt
(``missing_field``/``empty_prompt``), prompt over ``max_prompt_chars`` characters or over the text
encoder's 77-token window (``prompt_too_long``, likewise ``negative_prompt_too_long``; the pipeline
would otherwise silently drop the tail), steps/guidance/seed/strength out of range, or a strength
so low that no denoising step is left (``out_of_range``),
mask size different from the image (``mask_size_mismatch``), empty mask (``empty_mask``), bad
base64, not an image, over the pixel limit.

Model: diffusers ``StableDiffusionInpaintPipeline`` from the ``weights/`` diffusers folder of
the model dir (the ``stabilityai/stable-diffusion-2-inpainting`` layout). On GPU it runs in
fp16, loading the repository's ``fp16`` variant files (half the bytes to fetch and load); on
CPU in fp32 (upcast from whichever files are there). **The safety checker is off**
(``safety_checker=None, requires_safety_checker=False``): the product edits the user's own
images, and whether and how to filter generated content is a separate policy decision for the
deployer (diffusers' checker is a separate CLIP ViT-L/14 image model that would also add
latency and GPU memory to every request).

Scheduler: the published repository ships PNDM, which the pipeline runs for 50 steps by
default. This handler swaps in DPM-Solver++ (``DPMSolverMultistepScheduler``, 2nd order, the
order recommended for guided sampling) at 25 steps by default: DPM-Solver++ is a dedicated
high-order ODE solver for diffusion models whose authors and the diffusers documentation report
high-quality samples in about 20 steps and good ones in 10, so 25 steps halves the UNet
evaluations of the 50-step default at equal quality, with a margin for inpainting. References:
Lu et al., "DPM-Solver++" (arXiv:2211.01095); diffusers DPMSolverMultistepScheduler docs.
``handler.scheduler`` selects ``unipc``, ``ddim``, ``euler`` or ``pndm`` instead.

Geometry: the edit happens in a window around the mask at the model's native 512 x 512 and is
pasted back (see ``sd_crop``).

Settings (``model-config.yaml`` ``handler:``; the shared ones are in ``mme_serving``):
``weights_dir`` (weights), ``variant`` (fp16; used when its files exist), ``dtype``
(auto|float16|bfloat16|float32; auto = fp16 on GPU, fp32 on CPU), ``scheduler``
(dpmsolver++|unipc|ddim|euler|pndm), ``default_steps`` (25), ``max_steps`` (100),
``default_guidance`` (7.5), ``max_guidance`` (20), ``context`` (0.25: margin around the mask as
a fraction of its longest side), ``native_size`` (0 = from the model: UNet sample size x VAE
factor), ``max_prompt_chars`` (1000), ``batch_mode`` (sequential|grouped: grouped runs the
requests of a TorchServe batch that share steps, guidance and strength in one pipeline call),
``deterministic`` (true: cuDNN deterministic algorithms).
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

import numpy as np
import torch
from mme_serving import Arg, ConfigError, Request, RequestError, ServingHandler, encode_png_b64, request_log
from mme_serving.errors import OUT_OF_RANGE
from mme_serving.ops import alpha_inside_mask
from mme_serving.pixels import flatten
from sd_crop import mask_bbox, paste_back, plan_crop, prepare_canvas
from sd_pipeline import has_variant, load_pipeline

logger = logging.getLogger(__name__)

SEED_MAX = 2**32 - 1
DEFAULT_STRENGTH = 1.0
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def make_scheduler(name: str, config: Any):
    """The scheduler ``name`` built from the weights' scheduler config (betas, offsets...)."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        PNDMScheduler,
        UniPCMultistepScheduler,
    )

    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "pndm":
        return PNDMScheduler.from_config(config)
    raise ConfigError(f"unknown scheduler {name!r}")


def _above_zero(value: float, name: str) -> float:
    """``strength`` is in (0, 1]: zero would repaint nothing."""
    if value <= 0:
        raise RequestError(OUT_OF_RANGE, f"gen_args.{name}={value:g} must be above 0 (0 < {name} <= 1)")
    return value


class SDInpaintHandler(ServingHandler):
    """Stable Diffusion 2 inpainting: replace the masked region of an image from a text prompt."""

    operation = "replace"

    def load_model(self) -> None:
        """Load the diffusers pipeline from ``weights/`` with the configured scheduler/precision."""
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        # No per-file progress bars in the worker's log (one worker process per model).
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        s = self.settings
        weights_dir = os.path.join(self.model_dir, s.get_str("weights_dir", "weights"))

        dtype_name = s.get_str("dtype", "auto", choices=("auto", *_DTYPES))
        if dtype_name == "auto":
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        else:
            dtype = _DTYPES[dtype_name]
        variant = s.get_str("variant", "fp16") or None
        if variant and not has_variant(weights_dir, variant):
            logger.info("no '%s' variant files under %s; loading the default files", variant, weights_dir)
            variant = None

        self.scheduler_name = s.get_str("scheduler", "dpmsolver++",
                                        choices=("dpmsolver++", "unipc", "ddim", "euler", "pndm"))
        self.default_steps = s.get_int("default_steps", 25, min=1, max=1000)
        self.max_steps = s.get_int("max_steps", 100, min=self.default_steps, max=1000)
        self.max_guidance = s.get_float("max_guidance", 20.0, min=0.0)
        self.default_guidance = s.get_float("default_guidance", 7.5, min=0.0, max=self.max_guidance)
        self.context_ratio = s.get_float("context", 0.25, min=0.0, max=4.0)
        self.max_prompt_chars = s.get_int("max_prompt_chars", 1000, min=1)
        self.batch_mode = s.get_str("batch_mode", "sequential", choices=("sequential", "grouped"))
        if self.device.type == "cuda" and s.get_bool("deterministic", True):
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False

        pipe = load_pipeline(weights_dir, self.device, dtype, variant)  # safety checker off: see above
        pipe.scheduler = make_scheduler(self.scheduler_name, pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.tokenizer = pipe.tokenizer
        self.max_tokens = int(self.tokenizer.model_max_length)
        self.cell = int(pipe.vae_scale_factor)
        native = s.get_int("native_size", 0, min=0)
        self.native = native or int(pipe.unet.config.sample_size) * self.cell
        if self.native % self.cell:
            raise ConfigError(f"handler.native_size={self.native} is not a multiple of {self.cell}")
        self.gen_spec = {
            "num_inference_steps": Arg(int, self.default_steps, min=1, max=self.max_steps),
            "guidance_scale": Arg(float, self.default_guidance, min=0.0, max=self.max_guidance),
            "seed": Arg(int, None, min=0, max=SEED_MAX),
            "strength": Arg(float, DEFAULT_STRENGTH, min=0.0, max=1.0, parse=_above_zero),
        }
        logger.info("sd: %s, variant=%s, scheduler=%s, %d steps by default, native %dpx, "
                    "safety checker off", dtype, variant, self.scheduler_name, self.default_steps, self.native)

    # ------------------------------------------------------------------ requests
    def _check_tokens(self, text: str, field: str) -> None:
        """400 when ``text`` does not fit the text encoder's window (BOS + tokens + EOS)."""
        if not text:
            return
        n = len(self.tokenizer(text, truncation=False, add_special_tokens=True).input_ids)
        if n > self.max_tokens:
            raise RequestError(
                f"{field}_too_long",
                f"'{field}' is {n - 2} tokens; the text encoder takes at most {self.max_tokens - 2}",
            )

    def parse(self, request: Request) -> dict:
        """Validate one request and prepare its model canvas (crop around the mask)."""
        prompt = request.text("prompt", max_chars=self.max_prompt_chars)
        negative = request.text("negative_prompt", required=False, allow_empty=True,
                                max_chars=self.max_prompt_chars)
        args = request.gen_args(self.gen_spec)
        self._check_tokens(prompt, "prompt")
        self._check_tokens(negative, "negative_prompt")
        image = request.image("image")
        mask = request.mask(image.size, "mask_image")
        steps, strength = args["num_inference_steps"], args["strength"]
        request_log.note(steps=steps)
        if self.log_prompts:
            request_log.note(prompt=prompt, negative_prompt=negative)
        if int(steps * strength) < 1:
            raise RequestError(OUT_OF_RANGE, f"gen_args.strength={strength:g} with {steps} steps leaves no denoising "
                                             f"step (int(steps x strength) must be at least 1): raise either")
        seed = args["seed"]
        if seed is None:
            seed = secrets.randbelow(SEED_MAX + 1)
        plan = plan_crop(image.size, mask_bbox(mask), native=self.native, context=self.context_ratio)
        canvas, canvas_mask = prepare_canvas(flatten(image), mask, plan, cell=self.cell)
        return {
            "image": image, "mask": mask, "plan": plan, "canvas": canvas, "canvas_mask": canvas_mask,
            "prompt": prompt, "negative_prompt": negative, "seed": seed,
            "steps": steps, "guidance": args["guidance_scale"], "strength": strength,
        }

    # ------------------------------------------------------------------ inference
    def _run(self, items: list[dict]) -> list:
        """One pipeline call for ``items`` (same steps, guidance and strength); returns canvases."""
        generators = [torch.Generator(device=self.device).manual_seed(it["seed"]) for it in items]
        with request_log.stage("inference"):
            out = self.pipe(
                prompt=[it["prompt"] for it in items],
                negative_prompt=[it["negative_prompt"] for it in items],
                image=[it["canvas"] for it in items],
                mask_image=[it["canvas_mask"] for it in items],
                height=self.native,
                width=self.native,
                num_inference_steps=items[0]["steps"],
                guidance_scale=items[0]["guidance"],
                strength=items[0]["strength"],
                generator=generators,
                output_type="pil",
            )
        return list(out.images)

    def _respond(self, item: dict, generated) -> dict:
        with request_log.stage("postprocess"):
            result = paste_back(item["image"], item["mask"], generated, item["plan"])
            if result.mode == "RGBA":  # the painted pixels are opaque; the input's alpha elsewhere
                pixels = np.array(result)
                pixels[..., 3] = alpha_inside_mask(pixels[..., 3], item["mask"], "opaque")
                result = pixels
        return {"generated_image": encode_png_b64(result, self.png_compress_level), "seed": item["seed"]}

    def infer(self, item: dict) -> dict:
        """Inpaint one request and paste the result back into the full image."""
        return self._respond(item, self._run([item])[0])

    def infer_batch(self, items: list) -> list:
        """Sequential by default; ``batch_mode: grouped`` shares pipeline calls (see docstring)."""
        if self.batch_mode == "sequential" or len(items) < 2:
            return super().infer_batch(items)
        groups: dict[tuple, list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault((it["steps"], it["guidance"], it["strength"]), []).append(i)
        results: list = [None] * len(items)
        for idxs in groups.values():
            group = [items[i] for i in idxs]
            try:
                images = self._run(group)
                for i, img in zip(idxs, images):
                    results[i] = self._respond(items[i], img)
            except Exception as exc:  # noqa: BLE001 - reported per request by handle()
                for i in idxs:
                    results[i] = exc
        return results
