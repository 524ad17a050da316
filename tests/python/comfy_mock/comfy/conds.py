"""Mock of comfy/conds.py (ComfyUI master, late 2025): the wrappers BaseModel.extra_conds puts each
conditioning input in, which the sampler batches (process_cond: repeated or cut to the batch size)
and concatenates across conds (can_concat / concat) before apply_model gets them as keywords.
CONDNoiseShape (area crops of concat latents) is not mirrored."""
import torch

import comfy.utils


class CONDRegular:
    """A tensor with the batch in dim 0 (pooled vectors, SDXL's y, Flux's guidance)."""

    def __init__(self, cond):
        self.cond = cond

    def _copy_with(self, cond):
        return self.__class__(cond)

    def process_cond(self, batch_size, device=None, **kwargs):
        cond = comfy.utils.repeat_to_batch_size(self.cond, batch_size)
        return self._copy_with(cond.to(device) if device is not None else cond)

    def can_concat(self, other):
        return self.cond.shape == other.cond.shape

    def concat(self, others):
        return torch.cat([self.cond] + [x.cond for x in others])

    def size(self):
        return list(self.cond.size())


class CONDCrossAttn(CONDRegular):
    """Text-encoder tokens [B, L, C] (c_crossattn). Two conds concatenate here when their shapes past
    the batch agree; the real class also joins token counts L1 != L2 by repeating each up to
    lcm(L1, L2) (when that is at most 4 times the shorter), which is not mirrored."""

    def can_concat(self, other):
        return self.cond.shape[1:] == other.cond.shape[1:]

    def concat(self, others):
        return torch.cat([self.cond] + [x.cond for x in others])


class CONDConstant(CONDRegular):
    """A value that is the same for the whole batch (not batched, concatenated only when equal)."""

    def __init__(self, cond):
        self.cond = cond

    def process_cond(self, batch_size, device=None, **kwargs):
        return self._copy_with(self.cond)

    def can_concat(self, other):
        if self.cond != other.cond:
            return False
        return True

    def concat(self, others):
        return self.cond

    def size(self):
        return [1]
