"""The models this app packages and serves: one folder each in ``model_sources/``, one archive
each under the model prefix, one ``TargetModel`` each. Everything that lists them imports them
from here (the stack's settings, the client, local mode, the tiny builders, the benches)."""

from __future__ import annotations

#: SAM: a click (points, a box) -> the object's mask.
SEGMENT_MODEL = "sam"
#: LaMa: image + mask -> the masked area filled from its surroundings.
ERASE_MODEL = "lama"
#: Stable Diffusion 2 inpainting: image + mask + prompt -> the masked area repainted.
REPLACE_MODEL = "sd"

#: Every model, in the order the docs and outputs list them.
MODELS: tuple[str, ...] = (SEGMENT_MODEL, ERASE_MODEL, REPLACE_MODEL)

#: The editing operation each model serves.
MODEL_FOR_OPERATION = {"select": SEGMENT_MODEL, "erase": ERASE_MODEL, "replace": REPLACE_MODEL}

#: p90 of a served request's handler time above which the model's latency alarm fires (ms). The
#: handler time covers decoding the images, the model and encoding the answer. The GPU targets on one
#: H100 (docs/performance.md) are 60 ms for SAM's first click, 40 ms for LaMa at 1024 px and 0.5 s for
#: SD at 512 px; the default instance's A10G is several times slower, and the largest inputs (up to
#: 16 megapixels) add seconds of JPEG/PNG work. The thresholds leave that room and fire when a model
#: is slow for everyone: SAM 2 s, LaMa 5 s, SD 20 s (at 25 steps; 100 steps stays under it on an A10G
#: at 512 px).
LATENCY_ALARM_P90_MS = {SEGMENT_MODEL: 2000, ERASE_MODEL: 5000, REPLACE_MODEL: 20000}
