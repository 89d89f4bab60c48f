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
