"""TorchServe handler for Segment Anything (``sam``): a click on an image -> the object's mask.

Request (JSON): ``image`` (base64 PNG/JPEG/WebP) or ``image_id`` (from an earlier response),
``gen_args`` (object or JSON string):

- ``point_coords``: ``[x, y]`` or ``[[x, y], ...]`` in pixels of the image as displayed (EXIF
  orientation applied, see ``mme_serving.pixels``; required unless ``box``);
- ``point_labels``: ``1``/``0`` or a list of them, one per point (default: all 1 = foreground);
- ``box``: optional ``[x0, y0, x1, y1]``;
- ``dilate_kernel_size``: optional int, square dilation of the mask (0 = none);
- ``multimask``: default true = the best-scoring of SAM's three masks; false = single mask.

Response: ``{"generated_image": <base64 PNG, 0/255, the displayed size>, "score": <predicted IoU>,
"image_id": <sha256 of the image file>, "embedding_cached": <bool>}``.

Image embeddings are kept in an LRU cache keyed by the image digest (``handler.cache_size``),
so a second click on the same image skips the image encoder; sending ``image_id`` alone works
while the embedding is cached on this instance, otherwise the client gets a 400
``unknown_image_id`` telling it to resend the image.

The model sees transparent images composited over white. Precision: the image encoder (the
expensive ViT) runs under CUDA autocast (bf16 where the GPU supports it, else fp16); the prompt
encoder, mask decoder and thresholding stay fp32, as do all weights. On CPU everything is fp32.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
from types import SimpleNamespace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from mme_serving import (
    Arg,
    ConfigError,
    LRUCache,
    Request,
    RequestError,
    ServingHandler,
    decode_image,
    digest,
    dilate,
    encode_png,
    finite_float,
    load_json_overrides,
    resolve_file,
)
from mme_serving import request_log, weights
from mme_serving.errors import (
    INVALID_ARGUMENT,
    INVALID_FIELD,
    MISSING_FIELD,
    POINT_OUTSIDE_IMAGE,
    INVALID_POINT_LABEL,
    UNKNOWN_IMAGE_ID,
)
from decoder_memo import ProjectionMemo
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.utils.transforms import ResizeLongestSide

logger = logging.getLogger(__name__)

# Architecture presets matching segment_anything.build_sam (the published checkpoints).
_COMMON = {
    "image_size": 1024, "patch_size": 16, "window_size": 14, "mlp_ratio": 4.0,
    "prompt_embed_dim": 256, "mask_in_chans": 16, "decoder_depth": 2, "decoder_mlp_dim": 2048,
    "decoder_num_heads": 8, "iou_head_depth": 3, "iou_head_hidden_dim": 256,
}
ARCH_PRESETS = {
    "vit_h": {**_COMMON, "encoder_embed_dim": 1280, "encoder_depth": 32, "encoder_num_heads": 16,
              "encoder_global_attn_indexes": [7, 15, 23, 31]},
    "vit_l": {**_COMMON, "encoder_embed_dim": 1024, "encoder_depth": 24, "encoder_num_heads": 16,
              "encoder_global_attn_indexes": [5, 11, 17, 23]},
    "vit_b": {**_COMMON, "encoder_embed_dim": 768, "encoder_depth": 12, "encoder_num_heads": 12,
              "encoder_global_attn_indexes": [2, 5, 8, 11]},
}
_IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")


def build_sam(arch: dict) -> Sam:
    """Build an (untrained) SAM from an architecture dict (see ``ARCH_PRESETS``); parameter
    names and shapes match ``segment_anything.build_sam`` for the presets."""
    unknown = set(arch) - set(ARCH_PRESETS["vit_h"])
    if unknown:
        raise ConfigError(f"unknown SAM architecture keys: {sorted(unknown)}")
    a = arch
    image_size, patch = int(a["image_size"]), int(a["patch_size"])
    embed = int(a["prompt_embed_dim"])
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=int(a["encoder_depth"]), embed_dim=int(a["encoder_embed_dim"]), img_size=image_size,
            mlp_ratio=float(a["mlp_ratio"]), norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=int(a["encoder_num_heads"]), patch_size=patch, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=tuple(int(i) for i in a["encoder_global_attn_indexes"]),
            window_size=int(a["window_size"]), out_chans=embed,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=embed, image_embedding_size=(image_size // patch, image_size // patch),
            input_image_size=(image_size, image_size), mask_in_chans=int(a["mask_in_chans"]),
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=int(a["decoder_depth"]), embedding_dim=embed,
                                          mlp_dim=int(a["decoder_mlp_dim"]), num_heads=int(a["decoder_num_heads"])),
            transformer_dim=embed, iou_head_depth=int(a["iou_head_depth"]),
            iou_head_hidden_dim=int(a["iou_head_hidden_dim"]),
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


# NOTE: TorchServe requires handler.py to define exactly one class, so the small records below
# are SimpleNamespace objects rather than dataclasses.
def _embedding(features: torch.Tensor, original_size: tuple, input_size: tuple) -> SimpleNamespace:
    """A cached image embedding (fp32, on the model's device), the original (H, W), the (h, w)
    after ResizeLongestSide and the decoder's memo for this image (``decoder_memo.py``)."""
    return SimpleNamespace(features=features, original_size=original_size, input_size=input_size, memo={})


def _as_number(value, what: str) -> float:
    number = finite_float(value)
    if number is None:
        raise RequestError(INVALID_ARGUMENT, f"{what} must be a finite number")
    return number


class SamHandler(ServingHandler):
    """Segment Anything handler (see the module docstring for the request/response contract)."""

    default_max_image_pixels = 4096 * 4096
    operation = "select"

    def load_model(self) -> None:
        """Build SAM from ``model_type`` (or ``weights/arch.json``) and load the ``.pth`` state dict."""
        s = self.settings
        model_type = s.get_str("model_type", "vit_h", choices=tuple(ARCH_PRESETS))
        arch = dict(ARCH_PRESETS[model_type])
        arch.update(s.get_dict("arch"))
        arch.update(load_json_overrides(self.model_dir, s.get_str("arch_file", "weights/arch.json")))
        ckpt = resolve_file(self.model_dir, s.get("checkpoint", ["weights/sam_*.pth", "weights/*.pth"]),
                            "SAM checkpoint")
        # built without random init, tensors assigned from the mapped file, moved to the device once
        with weights.ReadAhead([ckpt]):
            state = weights.torch_checkpoint(ckpt)
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
            self.model = weights.assign(weights.empty(lambda: build_sam(arch)), state, self.device)
            del state
        self.transform = ResizeLongestSide(self.model.image_encoder.img_size)
        with torch.no_grad():  # the prompt encoder's positional grid: the same for every click
            self.dense_pe = self.model.prompt_encoder.get_dense_pe()
        self.cache = LRUCache(s.get_int("cache_size", 32, min=0, max=4096))
        memo = s.get_str("decoder_memo", "auto", choices=("auto", "on", "off"))
        use_memo = memo == "on" or (memo == "auto" and self.device.type == "cpu")
        self.decoder_memo = ProjectionMemo(self.model) if use_memo else None
        self.max_points = s.get_int("max_points", 32, min=1, max=1024)
        self.max_dilate = s.get_int("max_dilate_kernel_size", 101, min=0, max=1001)
        dtype_name = s.get_str("encoder_dtype", "auto", choices=("auto", "float32", "bfloat16", "float16"))
        if self.device.type != "cuda" or dtype_name == "float32":
            self.encoder_dtype = None
        elif dtype_name == "auto":
            self.encoder_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.encoder_dtype = getattr(torch, dtype_name)
        self.encoder_calls = 0
        logger.info("SAM %s from %s, encoder dtype %s, cache %d", model_type, ckpt,
                    self.encoder_dtype or torch.float32, self.cache.capacity)
        self.gen_args_spec = {
            "point_coords": Arg("any"),
            "point_labels": Arg("any"),
            "box": Arg("any"),
            "dilate_kernel_size": Arg(int, 0, min=0, max=self.max_dilate),
            "multimask": Arg(bool, True),
        }

    # ------------------------------------------------------------------ parsing
    def parse(self, request: Request) -> SimpleNamespace:
        """Validate the request; decode the image only when its embedding is not cached."""
        args = request.gen_args(self.gen_args_spec)
        image = None
        if request.has("image"):
            raw = request.image_bytes("image")
            image_id = digest(raw)
            embedding = self.cache.get(image_id)
            if embedding is None:
                image = np.asarray(decode_image(raw, "image", request.limits, mode="RGB"))
                height, width = image.shape[:2]
            else:
                height, width = embedding.original_size
            request_log.add_pixels(input_pixels=height * width)
        elif request.has("image_id"):
            image_id = request.field("image_id", str)
            if not _IMAGE_ID.match(image_id):
                raise RequestError(INVALID_FIELD, "'image_id' must be the 64-hex-digit id returned by an earlier response")
            embedding = self.cache.get(image_id)
            if embedding is None:
                raise RequestError(
                    UNKNOWN_IMAGE_ID,
                    f"image_id {image_id[:12]}... is not cached on this instance (caches are per instance "
                    "and bounded); resend the request with 'image'",
                )
            height, width = embedding.original_size
        else:
            raise RequestError(MISSING_FIELD, "'image' (base64) or 'image_id' is required")

        coords, labels = self._points(args["point_coords"], args["point_labels"], width, height)
        box = self._box(args["box"], width, height)
        if coords is None and box is None:
            raise RequestError(MISSING_FIELD, "gen_args.point_coords (or gen_args.box) is required")
        # embedding is held by the job so a concurrent eviction cannot lose it
        return SimpleNamespace(image_id=image_id, image=image, embedding=embedding, coords=coords, labels=labels,
                               box=box, dilate=args["dilate_kernel_size"], multimask=args["multimask"])

    def _points(self, raw_coords, raw_labels, width: int, height: int):
        if raw_coords is None:
            if raw_labels is not None:
                raise RequestError(MISSING_FIELD, "gen_args.point_labels given without gen_args.point_coords")
            return None, None
        if not isinstance(raw_coords, list) or not raw_coords:
            raise RequestError(INVALID_ARGUMENT, "gen_args.point_coords must be [x, y] or [[x, y], ...]")
        points = [raw_coords] if not isinstance(raw_coords[0], list) else raw_coords
        if len(points) > self.max_points:
            raise RequestError(INVALID_ARGUMENT, f"at most {self.max_points} points are accepted")
        coords = []
        for i, point in enumerate(points):
            if not isinstance(point, list) or len(point) != 2:
                raise RequestError(INVALID_ARGUMENT, f"gen_args.point_coords[{i}] must be [x, y]")
            x, y = (_as_number(v, f"gen_args.point_coords[{i}]") for v in point)
            if not (0 <= x < width and 0 <= y < height):
                raise RequestError(POINT_OUTSIDE_IMAGE,
                                   f"point ({x:g}, {y:g}) is outside the {width}x{height} image")
            coords.append((x, y))
        if raw_labels is None:
            labels = [1] * len(coords)
        else:
            labels = raw_labels if isinstance(raw_labels, list) else [raw_labels]
            if len(labels) == 1 and isinstance(labels[0], list):  # [[1, 0]] from older clients
                labels = labels[0]
            if len(labels) != len(coords):
                raise RequestError(INVALID_ARGUMENT,
                                   f"gen_args.point_labels has {len(labels)} labels for {len(coords)} points")
            for label in labels:
                if isinstance(label, bool) or label not in (0, 1):
                    raise RequestError(INVALID_POINT_LABEL,
                                       f"point labels must be 1 (foreground) or 0 (background), got {label!r}")
        return np.asarray(coords, dtype=np.float64), np.asarray([int(v) for v in labels], dtype=np.int64)

    def _box(self, raw, width: int, height: int):
        if raw is None:
            return None
        if not isinstance(raw, list) or len(raw) != 4:
            raise RequestError(INVALID_ARGUMENT, "gen_args.box must be [x0, y0, x1, y1]")
        x0, y0, x1, y1 = (_as_number(v, "gen_args.box") for v in raw)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise RequestError(POINT_OUTSIDE_IMAGE,
                               f"box {raw} must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
        return np.asarray([x0, y0, x1, y1], dtype=np.float64)

    # ------------------------------------------------------------------ inference
    def embed(self, image: np.ndarray) -> SimpleNamespace:
        """Run the image encoder on an (H, W, 3) uint8 RGB image."""
        self.encoder_calls += 1
        resized = self.transform.apply_image(image)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None].float()
        x = self.model.preprocess(x)
        if self.encoder_dtype is not None:
            with torch.autocast(device_type="cuda", dtype=self.encoder_dtype):
                features = self.model.image_encoder(x)
        else:
            features = self.model.image_encoder(x)
        return _embedding(features.float(), tuple(image.shape[:2]), tuple(resized.shape[:2]))

    def infer(self, job: SimpleNamespace) -> dict:
        """Embed (or reuse the cached embedding), decode the prompt, pick the mask, encode it."""
        cached = True
        embedding = job.embedding or self.cache.get(job.image_id)
        if embedding is None:
            embedding = self.embed(job.image)
            cached = False
        self.cache.put(job.image_id, embedding)
        request_log.note(cache_hit=int(cached))
        low_res, score = self.decode(job, embedding)
        with request_log.stage("postprocess"):
            mask = self.upscale(low_res, embedding)
            if job.dilate > 1:
                mask = dilate(mask, job.dilate)
        return {
            "generated_image": self.encode(mask),
            "score": score,
            "image_id": job.image_id,
            "embedding_cached": cached,
        }

    def decode(self, job: SimpleNamespace, embedding: SimpleNamespace) -> tuple[torch.Tensor, float]:
        """Prompt encoder + mask decoder: the best-scoring low-resolution mask logits (1, 1, 256,
        256) and its predicted IoU."""
        model, dev = self.model, self.device
        points = None
        if job.coords is not None:
            coords = self.transform.apply_coords(job.coords, embedding.original_size)
            points = (torch.as_tensor(coords, dtype=torch.float32, device=dev)[None],
                      torch.as_tensor(job.labels, dtype=torch.int64, device=dev)[None])
        boxes = None
        if job.box is not None:
            box = self.transform.apply_boxes(job.box[None], embedding.original_size)
            boxes = torch.as_tensor(box, dtype=torch.float32, device=dev)
        sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=None)  # no mask prompt: see decoder_memo
        with self.decoder_memo.image(embedding.memo) if self.decoder_memo else contextlib.nullcontext():
            low_res, iou = model.mask_decoder(
                image_embeddings=embedding.features, image_pe=self.dense_pe,
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=job.multimask,
            )
        scores = iou[0].tolist()  # one device->host copy for the choice and the score
        best = scores.index(max(scores))  # the first best, as torch.argmax
        return low_res[:, best:best + 1], scores[best]

    def upscale(self, low_res: torch.Tensor, embedding: SimpleNamespace) -> np.ndarray:
        """The mask at the image's size, (H, W) bool: ``Sam.postprocess_masks`` (bilinear to the
        encoder's input, crop the padding, bilinear to the image's size) and the threshold. The
        last resize is skipped when the image's longest side is the encoder's input size (1024):
        it would resize to the same size, which bilinear interpolation leaves unchanged."""
        model = self.model
        size = model.image_encoder.img_size
        logits = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
        h, w = embedding.input_size
        logits = logits[..., :h, :w]
        if tuple(embedding.original_size) != (h, w):
            logits = F.interpolate(logits, embedding.original_size, mode="bilinear", align_corners=False)
        return (logits[0, 0] > model.mask_threshold).cpu().numpy()

    def encode(self, mask: np.ndarray) -> str:
        """The mask as a base64 PNG (0/255)."""
        return base64.b64encode(encode_png(mask, self.png_compress_level)).decode("ascii")
