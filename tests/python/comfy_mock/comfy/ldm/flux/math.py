"""Mock of comfy/ldm/flux/math.py (ComfyUI 0.8, 618b803d): rope(pos, dim, theta) builds 2x2
rotation matrices per position and frequency; attention(q, k, v, pe) rotates q and k with the
module's apply_rope, looked up at call time. As in ComfyUI with comfy-kitchen installed,
apply_rope is a fused kernel that has no autograd formula: its forward is the rotation, its
backward raises (what the real kernel does under autograd). Not mirrored: optimized_attention's
backends (plain scaled_dot_product_attention here), apply_rope1's callers in other models."""
import torch


def rope(pos, dim, theta):
    """pos [B, N] -> [B, N, dim/2, 2, 2]: [[cos, -sin], [sin, cos]] of pos * theta^(-2i/dim)."""
    scale = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    omega = 1.0 / (theta ** scale)
    angles = pos.to(torch.float64)[..., None] * omega  # [B, N, dim/2]
    out = torch.stack([torch.cos(angles), -torch.sin(angles), torch.sin(angles), torch.cos(angles)], dim=-1)
    return out.reshape(*angles.shape, 2, 2).float()


class _FusedRope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, freqs_cis):
        pairs = x.to(freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
        out = freqs_cis[..., 0] * pairs[..., 0] + freqs_cis[..., 1] * pairs[..., 1]
        return out.reshape(x.shape).type_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("Trying to backward through comfy_kitchen.apply_rope.default but no autograd formula was registered.")


def _kernel_apply_rope(xq, xk, freqs_cis):
    return _FusedRope.apply(xq, freqs_cis), _FusedRope.apply(xk, freqs_cis)


_kernel_apply_rope.__module__ = "comfy_kitchen.backends.eager"  # where the real kernel comes from
apply_rope = _kernel_apply_rope


def attention(q, k, v, pe, mask=None, transformer_options={}):  # noqa: B006 (the real signature)
    """q, k, v [B, H, N, D]; pe [B, 1, N, D/2, 2, 2] -> [B, N, H D]."""
    if pe is not None:
        q, k = apply_rope(q, k, pe)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
