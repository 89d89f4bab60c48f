"""The original sample's way of serving, as baselines measured in the same run (own code).

What the original AWS sample (aws/amazon-sagemaker-examples, ``inference/torchserve/mme-gpu``)
does, reproduced from its behaviour:

- ``sam`` (``workspace/sam/customer_handler.py``): ``sam_model_registry["vit_h"](checkpoint)``
  in fp32 on the GPU, a ``SamPredictor``; **every request** calls ``set_image`` (the ViT-H image
  encoder) and then ``predict(multimask_output=True)``, keeps mask index 1, dilates it (15 px in
  the sample's client) and returns a JPEG.
- ``sd`` (``workspace/sd/custom_handler.py``): ``StableDiffusionInpaintPipeline.from_pretrained
  (model_dir, torch_dtype=torch.float16)`` with the repository's scheduler (PNDM), the client's
  ``num_inference_steps=50, guidance_scale=10, seed=1``, a 512 crop around the mask, JPEG out.
  fp16 on GPU as the sample; fp32 on CPU (fp16 on CPU is not what anyone would deploy). The sample
  called ``enable_xformers_memory_efficient_attention()``; here diffusers' default attention
  (PyTorch SDPA, memory-efficient kernels) stands in for xformers.
- ``lama``: the sample runs the same fp32 generator as the project's handler (no baseline needed:
  the compute is identical).

Each class has TorchServe's ``initialize(context)`` / ``handle(data, context)`` so the runner
measures both sides the same way.
"""

from __future__ import annotations

import base64
import glob
import io
import json
import os

import numpy as np
import torch
from PIL import Image


def _device(context) -> torch.device:
    props = context.system_properties
    if torch.cuda.is_available() and props.get("gpu_id") is not None:
        return torch.device(f"cuda:{props['gpu_id']}")
    return torch.device("cpu")


def _body(row) -> dict:
    body = row.get("data") or row.get("body")
    if isinstance(body, (bytes, bytearray)):
        body = json.loads(body)
    return body


def _decode(b64text: str, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64text))) as img:
        return np.array(img.convert(mode))


def _jpeg_b64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode("utf-8")


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """cv2.dilate with a k x k square of ones, on a 0/255 uint8 mask (max-pool)."""
    if k <= 1:
        return mask
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    left = (k - 1) // 2
    t = torch.nn.functional.pad(t, (left, k - 1 - left, left, k - 1 - left))
    return torch.nn.functional.max_pool2d(t, k, stride=1)[0, 0].numpy().astype(np.uint8)


class SampleSamHandler:
    """The original sample's SAM handler behaviour (fp32, encoder on every click)."""

    def initialize(self, context) -> None:
        """Build SAM the sample's way and wrap it in a SamPredictor."""
        from segment_anything import SamPredictor, sam_model_registry

        model_dir = context.system_properties["model_dir"]
        self.device = _device(context)
        ckpt = sorted(glob.glob(os.path.join(model_dir, "weights", "*.pth")))[0]
        arch_file = os.path.join(model_dir, "weights", "arch.json")
        if os.path.isfile(arch_file):  # the tiny test model: same modules, toy sizes
            from mme.tiny.sam import make_model

            with open(arch_file, encoding="utf-8") as fh:
                sam = make_model(json.load(fh))
            sam.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        else:
            model_type = (context.model_yaml_config.get("handler") or {}).get("model_type", "vit_h")
            sam = sam_model_registry[model_type](checkpoint=ckpt)
        self.predictor = SamPredictor(sam.to(self.device))
        self.initialized = True

    def handle(self, data, context):
        """Per request: set_image + predict, mask 1, dilate, JPEG."""
        out = []
        with torch.no_grad():
            for row in data:
                req = _body(row)
                image = _decode(req["image"], "RGB")
                args = json.loads(req["gen_args"]) if isinstance(req["gen_args"], str) else req["gen_args"]
                self.predictor.set_image(image)
                masks, _, _ = self.predictor.predict(point_coords=np.array([args["point_coords"]]),
                                                     point_labels=np.array([args["point_labels"]]),
                                                     multimask_output=True)
                mask = _dilate(masks[1].astype(np.uint8) * 255, int(args.get("dilate_kernel_size", 15)))
                out.append(json.dumps({"generated_image": _jpeg_b64(mask)}))
        return out


def _crop_box(mask: np.ndarray, crop: int) -> tuple[int, int]:
    """Top-left of a crop x crop window centred on the mask's bounding box, inside the image."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    return (int(min(max(cy - crop // 2, 0), max(h - crop, 0))), int(min(max(cx - crop // 2, 0), max(w - crop, 0))))


class SampleSDHandler:
    """The original sample's SD inpainting behaviour (pipeline defaults: PNDM, 50 steps)."""

    crop = 512

    def initialize(self, context) -> None:
        """Load the pipeline as the sample did (fp16 on GPU; fp32 on CPU)."""
        from diffusers import StableDiffusionInpaintPipeline

        weights = os.path.join(context.system_properties["model_dir"], "weights")
        self.device = _device(context)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        variant = "fp16" if glob.glob(os.path.join(weights, "unet", "*.fp16.*")) else None
        pipe = StableDiffusionInpaintPipeline.from_pretrained(
            weights, variant=variant, torch_dtype=dtype, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        self.pipeline = pipe.to(self.device)
        # the tiny test model's native size is smaller than 512
        self.crop = min(512, int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor))
        self.initialized = True

    def handle(self, data, context):
        """Per request: crop around the mask, run the pipeline, paste masked pixels back, JPEG."""
        out = []
        for row in data:
            req = _body(row)
            image = _decode(req["image"], "RGB")
            mask = _decode(req["mask_image"], "L")
            args = json.loads(req["gen_args"]) if isinstance(req["gen_args"], str) else req["gen_args"]
            y, x = _crop_box(mask > 127, self.crop)
            img_c = image[y:y + self.crop, x:x + self.crop]
            mask_c = mask[y:y + self.crop, x:x + self.crop]
            generator = [torch.Generator(device=self.device).manual_seed(int(args["seed"]))]
            with torch.no_grad():
                filled = self.pipeline(prompt=req["prompt"], negative_prompt=req["negative_prompt"],
                                       image=Image.fromarray(img_c), mask_image=Image.fromarray(mask_c),
                                       num_inference_steps=int(args["num_inference_steps"]),
                                       guidance_scale=float(args["guidance_scale"]), generator=generator,
                                       height=img_c.shape[0], width=img_c.shape[1]).images[0]
            result = image.copy()
            window = result[y:y + self.crop, x:x + self.crop]
            sel = mask_c == 255
            window[sel] = np.asarray(filled)[sel]
            out.append(json.dumps({"generated_image": _jpeg_b64(result)}))
        return out


BASELINES = {"sam": SampleSamHandler, "sd": SampleSDHandler}
