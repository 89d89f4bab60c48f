"""Per-image memo of the SAM mask decoder's prompt-independent projections.

The first two-way attention block of SAM's mask decoder projects the image tokens before any
prompt reaches them: the keys and values of its token-to-image attention
(``k_proj(image + pe)``, ``v_proj(image)``) and the queries of its image-to-token attention
(``q_proj(image + pe)``). The image tokens are the image embedding plus the "no mask" embedding
(the handler never sends a mask prompt), so these three projections of the 4096 image tokens
depend on the image only: clicks after the first on an image reuse them, 3 of the decoder's 10
projections of all image tokens. The answer is bit for bit the same (the very tensors computed
on the first click). The memo costs 3 x 4096 x 128 floats (6 MiB) per cached image, so the sam
handler uses it where the decoder dominates a click: on CPU (``handler.decoder_memo``).

Implementation: the three ``nn.Linear`` modules keep their parameters and names (the state dict
is unchanged); only their instances' ``forward`` consults the memo of the image being decoded.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


class ProjectionMemo:
    """Installs the memo on ``sam`` (a ``segment_anything`` ``Sam``); use :meth:`image` around
    each decode with that image's memo dict (``{}`` the first time, kept with its embedding)."""

    def __init__(self, sam: nn.Module):
        block = sam.mask_decoder.transformer.layers[0]
        self.projections = (block.cross_attn_token_to_image.k_proj, block.cross_attn_token_to_image.v_proj,
                            block.cross_attn_image_to_token.q_proj)
        self._memo: dict | None = None
        for index, linear in enumerate(self.projections):
            linear.forward = self._memoized(index, linear.forward)

    def _memoized(self, index: int, forward):
        def run(x):
            memo = self._memo
            if memo is None:
                return forward(x)
            if index not in memo:
                memo[index] = forward(x)
            return memo[index]
        return run

    @contextmanager
    def image(self, memo: dict):
        """Decode with ``memo`` (filled on the first decode of its image, reused after)."""
        self._memo = memo
        try:
            yield
        finally:
            self._memo = None
