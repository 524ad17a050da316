"""Tiny stand-ins for the diffusion networks of SDXL, SD3 and Flux (test fixtures, not ComfyUI code),
called exactly as (the mock of) ComfyUI's BaseModel.apply_model calls the real ones:
diffusion_model(xc, t, context=..., control=..., transformer_options=..., y=..., [guidance=...]).

Each is a torch.nn.Module, deterministic given torch.manual_seed, differentiable, with a hidden
width of 32 and one block of each kind (SD3: a full joint block, then one whose context side is
pre_only, as SD3's last block is), and its layers are named as in the real network's state
dict (comfy/ldm/modules/diffusionmodules/openaimodel.py, comfy/ldm/modules/diffusionmodules/mmdit.py,
comfy/ldm/flux/model.py and layers.py), so LoRA target suffixes such as attn2.to_k,
x_block.attn.qkv or img_attn.proj find them. Every conditioning input changes the output; a
missing one raises (the real SDXL UNet asserts y, the reference Flux raises without guidance).
They are not the real architectures: single-head attention, no positional embeddings except
Flux's rotary one of each token's index (through the mock comfy.ldm.flux.math, whose apply_rope
is a kernel without backward, as comfy-kitchen's; Flux's blocks add to the residual in place, as
flux/layers.py does), no sin-cos table, no ControlNet residuals (control is accepted and ignored), no zero-initialised
layers (so the conditioning matters from the first step)."""
import torch
import torch.nn.functional as F

import comfy.ldm.flux.math as flux_math  # imported with the model, as flux/layers.py does
from comfy.model_base import timestep_embedding


def _per_sample(t, batch):
    """Timesteps as a [batch] vector (ComfyUI passes one per sample; a single value is broadcast)."""
    t = t.reshape(-1)
    return t.expand(batch) if t.numel() == 1 else t


def _attention(q, k, v):
    """Single-head scaled dot-product attention over [B, N, D] tokens."""
    return F.scaled_dot_product_attention(q, k, v)


def _rope_attention(q, k, v):
    """Single-head attention over [B, N, D] tokens with Flux's rotary position embedding of each
    token's index, through (the mock of) comfy.ldm.flux.math, whose apply_rope is a kernel without
    autograd as comfy-kitchen's is."""
    positions = torch.arange(q.shape[1], device=q.device).expand(q.shape[0], -1)
    pe = flux_math.rope(positions, q.shape[-1], 10000).unsqueeze(1)  # [B, 1, N, D/2, 2, 2]
    return flux_math.attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), pe)


def _modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def _pad_to_patch_size(x, patch):
    """comfy/ldm/common_dit.py:pad_to_patch_size (circular padding up to a multiple of the patch)."""
    pad_h, pad_w = (patch - x.shape[-2] % patch) % patch, (patch - x.shape[-1] % patch) % patch
    return F.pad(x, (0, pad_w, 0, pad_h), mode="circular") if pad_h or pad_w else x


def _require(value, name, model):
    if value is None:
        raise ValueError(f"{model}: `{name}` is required (ComfyUI's apply_model passes it from the model's extra_conds)")
    return value


# ---- SDXL: openaimodel.UNetModel ----

class _ResBlock(torch.nn.Module):
    """openaimodel.ResBlock (in_layers.2 / emb_layers.1 / out_layers.3, identity skip)."""

    def __init__(self, channels, emb_dim):
        super().__init__()
        self.in_layers = torch.nn.Sequential(torch.nn.GroupNorm(8, channels), torch.nn.SiLU(),
                                             torch.nn.Conv2d(channels, channels, 3, padding=1))
        self.emb_layers = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(emb_dim, channels))
        self.out_layers = torch.nn.Sequential(torch.nn.GroupNorm(8, channels), torch.nn.SiLU(), torch.nn.Identity(),
                                              torch.nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x, emb):
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return x + self.out_layers(h)


class _CrossAttention(torch.nn.Module):
    """attention.CrossAttention: to_q/to_k/to_v without bias, to_out.0 with; keys and values from
    `context` (attn2) or from x itself (attn1)."""

    def __init__(self, dim, context_dim=None):
        super().__init__()
        context_dim = context_dim or dim
        self.to_q = torch.nn.Linear(dim, dim, bias=False)
        self.to_k = torch.nn.Linear(context_dim, dim, bias=False)
        self.to_v = torch.nn.Linear(context_dim, dim, bias=False)
        self.to_out = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.Dropout(0.0))

    def forward(self, x, context=None):
        context = x if context is None else context
        return self.to_out(_attention(self.to_q(x), self.to_k(context), self.to_v(context)))


class _GEGLU(torch.nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = torch.nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class _FeedForward(torch.nn.Module):
    """attention.FeedForward with GEGLU: ff.net.0.proj, ff.net.2."""

    def __init__(self, dim, mult=2):
        super().__init__()
        self.net = torch.nn.Sequential(_GEGLU(dim, dim * mult), torch.nn.Dropout(0.0), torch.nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class _BasicTransformerBlock(torch.nn.Module):
    def __init__(self, dim, context_dim):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (torch.nn.LayerNorm(dim) for _ in range(3))
        self.attn1 = _CrossAttention(dim)
        self.attn2 = _CrossAttention(dim, context_dim)
        self.ff = _FeedForward(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class _SpatialTransformer(torch.nn.Module):
    """attention.SpatialTransformer with linear proj_in/proj_out (SDXL's use_linear_in_transformer)."""

    def __init__(self, channels, context_dim):
        super().__init__()
        self.norm = torch.nn.GroupNorm(8, channels)
        self.proj_in = torch.nn.Linear(channels, channels)
        self.transformer_blocks = torch.nn.ModuleList([_BasicTransformerBlock(channels, context_dim)])
        self.proj_out = torch.nn.Linear(channels, channels)

    def forward(self, x, context):
        b, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        return x + self.proj_out(tokens).transpose(1, 2).reshape(b, c, h, w)


class TinySDXLUNet(torch.nn.Module):
    """Stands in for SDXL's UNet (comfy/ldm/modules/diffusionmodules/openaimodel.py:UNetModel with
    adm_in_channels = 2816). forward(x [B, 4, h, w], timesteps [B] (the discrete timestep index that
    ModelSamplingDiscrete gives), context [B, L, 48] (text tokens), y [B, pooled_dim + 6·256]
    (model_base.SDXL.encode_adm: pooled output then six size embeddings; 1568 by default)) →
    [B, 4, h, w]. timesteps go through timestep_embedding(·, 32) and time_embed.0/.2, y through
    label_emb.0.0/.2, their sum modulates input_blocks.1.0 (a ResBlock) before the transformer
    input_blocks.1.1 (attn1 over the h·w tokens, attn2 over context, GEGLU ff), then out.2.
    pooled_dim=None makes the SD1.x/2.x UNet instead: no label_emb, and no y."""

    def __init__(self, model_channels=32, context_dim=48, pooled_dim=32, in_channels=4, out_channels=4):
        super().__init__()
        self.model_channels = model_channels
        self.adm_in_channels = None if pooled_dim is None else pooled_dim + 6 * 256
        emb = model_channels
        self.time_embed = torch.nn.Sequential(torch.nn.Linear(model_channels, emb), torch.nn.SiLU(), torch.nn.Linear(emb, emb))
        if self.adm_in_channels is not None:
            self.label_emb = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(self.adm_in_channels, emb), torch.nn.SiLU(),
                                                                     torch.nn.Linear(emb, emb)))
        self.input_blocks = torch.nn.ModuleList([
            torch.nn.ModuleList([torch.nn.Conv2d(in_channels, model_channels, 3, padding=1)]),
            torch.nn.ModuleList([_ResBlock(model_channels, emb), _SpatialTransformer(model_channels, context_dim)]),
        ])
        self.out = torch.nn.Sequential(torch.nn.GroupNorm(8, model_channels), torch.nn.SiLU(),
                                       torch.nn.Conv2d(model_channels, out_channels, 3, padding=1))

    def forward(self, x, timesteps, context=None, y=None, control=None, transformer_options={}, **kwargs):
        context = _require(context, "context", "TinySDXLUNet")
        t = timestep_embedding(_per_sample(timesteps, x.shape[0]), self.model_channels).to(x.dtype)
        emb = self.time_embed(t)
        if self.adm_in_channels is not None:
            emb = emb + self.label_emb(_require(y, "y", "TinySDXLUNet"))
        h = self.input_blocks[0][0](x)
        h = self.input_blocks[1][0](h, emb)
        h = self.input_blocks[1][1](h, context)
        return self.out(h)


# ---- SD3: mmdit.MMDiT ----

class _Mlp(torch.nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(dim, hidden)
        self.act = torch.nn.GELU(approximate="tanh")
        self.fc2 = torch.nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _MMDiTAttention(torch.nn.Module):
    def __init__(self, dim, pre_only=False):
        super().__init__()
        self.qkv = torch.nn.Linear(dim, dim * 3)
        if not pre_only:
            self.proj = torch.nn.Linear(dim, dim)


class _DismantledBlock(torch.nn.Module):
    """mmdit.DismantledBlock: adaLN_modulation.1 gives shift/scale/gate for attention and MLP; a
    pre_only block (the last joint block's context side) only feeds the attention (shift, scale, qkv)."""

    def __init__(self, dim, mlp_ratio=2, pre_only=False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = torch.nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = _MMDiTAttention(dim, pre_only)
        if not pre_only:
            self.norm2 = torch.nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.mlp = _Mlp(dim, dim * mlp_ratio)
        self.adaLN_modulation = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(dim, (2 if pre_only else 6) * dim))

    def pre_attention(self, x, c):
        if self.pre_only:
            shift_msa, scale_msa = self.adaLN_modulation(c).chunk(2, dim=1)
            return self.attn.qkv(_modulate(self.norm1(x), shift_msa, scale_msa)).chunk(3, dim=-1), None
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        qkv = self.attn.qkv(_modulate(self.norm1(x), shift_msa, scale_msa)).chunk(3, dim=-1)
        return qkv, (gate_msa, shift_mlp, scale_mlp, gate_mlp)

    def post_attention(self, attn, x, gate_msa, shift_mlp, scale_mlp, gate_mlp):
        x = x + gate_msa.unsqueeze(1) * self.attn.proj(attn)
        return x + gate_mlp.unsqueeze(1) * self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp))


class _JointBlock(torch.nn.Module):
    """mmdit.JointBlock: joint attention over [context tokens, image tokens]."""

    def __init__(self, dim, pre_only=False):
        super().__init__()
        self.context_block = _DismantledBlock(dim, pre_only=pre_only)
        self.x_block = _DismantledBlock(dim)

    def forward(self, context, x, c):
        (cq, ck, cv), c_mod = self.context_block.pre_attention(context, c)
        (xq, xk, xv), x_mod = self.x_block.pre_attention(x, c)
        attn = _attention(torch.cat([cq, xq], 1), torch.cat([ck, xk], 1), torch.cat([cv, xv], 1))
        n = context.shape[1]
        context = None if c_mod is None else self.context_block.post_attention(attn[:, :n], context, *c_mod)
        return context, self.x_block.post_attention(attn[:, n:], x, *x_mod)


class _Embedder(torch.nn.Module):
    """mmdit.TimestepEmbedder / VectorEmbedder: mlp.0, SiLU, mlp.2."""

    def __init__(self, dim_in, dim):
        super().__init__()
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim_in, dim), torch.nn.SiLU(), torch.nn.Linear(dim, dim))

    def forward(self, x):
        return self.mlp(x)


class _PatchEmbed(torch.nn.Module):
    def __init__(self, in_channels, dim, patch):
        super().__init__()
        self.proj = torch.nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class _FinalLayer(torch.nn.Module):
    """mmdit.FinalLayer / flux layers.LastLayer: adaLN_modulation.1 (shift, scale), linear."""

    def __init__(self, dim, out_features):
        super().__init__()
        self.norm_final = torch.nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = torch.nn.Linear(dim, out_features)
        self.adaLN_modulation = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(dim, 2 * dim))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(_modulate(self.norm_final(x), shift, scale))


class TinyMMDiT(torch.nn.Module):
    """Stands in for SD3's MMDiT (comfy/ldm/modules/diffusionmodules/mmdit.py:OpenAISignatureMMDITWrapper).
    forward(x [B, 16, h, w], timesteps [B] (sigma·1000, ModelSamplingDiscreteFlow.timestep),
    context [B, L, 48] (text tokens), y [B, 32] (pooled output)) → [B, 16, h, w]. x is cut into 2x2
    patches (x_embedder.proj), c = t_embedder(timestep_embedding(t, 256)) + y_embedder(y) modulates
    the joint blocks (joint attention over context_embedder(context) and the image tokens) and
    final_layer (adaLN_modulation.1, linear), which is unpatchified back to [B, 16, h, w].
    joint_blocks.0 is a full block (context_block and x_block: attn.qkv, attn.proj, mlp.fc1,
    mlp.fc2, adaLN_modulation.1); the last one (joint_blocks.1 at the default depth 2) has a
    pre_only context_block (attn.qkv and adaLN_modulation.1 only), as in SD3, so that every
    layer of joint_blocks.0 reaches the output."""

    def __init__(self, hidden_size=32, in_channels=16, patch_size=2, context_dim=48, pooled_dim=32, frequency_embedding_size=256,
                 depth=2):
        super().__init__()
        self.in_channels = self.out_channels = in_channels
        self.patch_size = patch_size
        self.frequency_embedding_size = frequency_embedding_size
        self.x_embedder = _PatchEmbed(in_channels, hidden_size, patch_size)
        self.t_embedder = _Embedder(frequency_embedding_size, hidden_size)
        self.y_embedder = _Embedder(pooled_dim, hidden_size)
        self.context_embedder = torch.nn.Linear(context_dim, hidden_size)
        self.joint_blocks = torch.nn.ModuleList([_JointBlock(hidden_size, pre_only=i == depth - 1) for i in range(depth)])
        self.final_layer = _FinalLayer(hidden_size, patch_size * patch_size * self.out_channels)

    def unpatchify(self, x, h, w):
        p, c = self.patch_size, self.out_channels
        x = x.reshape(x.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x, timesteps, context=None, y=None, control=None, transformer_options={}, **kwargs):
        context = _require(context, "context", "TinyMMDiT")
        y = _require(y, "y", "TinyMMDiT")
        h_orig, w_orig = x.shape[-2:]
        x = _pad_to_patch_size(x, self.patch_size)
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = self.x_embedder(x)
        t = timestep_embedding(_per_sample(timesteps, x.shape[0]), self.frequency_embedding_size).to(x.dtype)
        c = self.t_embedder(t) + self.y_embedder(y)
        context = self.context_embedder(context)
        for block in self.joint_blocks:
            context, tokens = block(context, tokens, c)
        return self.unpatchify(self.final_layer(tokens, c), h, w)[:, :, :h_orig, :w_orig]


# ---- Flux: flux/model.py:Flux ----

class _MLPEmbedder(torch.nn.Module):
    """flux layers.MLPEmbedder: in_layer, SiLU, out_layer."""

    def __init__(self, in_dim, hidden):
        super().__init__()
        self.in_layer = torch.nn.Linear(in_dim, hidden)
        self.silu = torch.nn.SiLU()
        self.out_layer = torch.nn.Linear(hidden, hidden)

    def forward(self, x):
        return self.out_layer(self.silu(self.in_layer(x)))


class _RMSNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.scale


class _QKNorm(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.query_norm = _RMSNorm(dim)
        self.key_norm = _RMSNorm(dim)


class _SelfAttention(torch.nn.Module):
    """flux layers.SelfAttention: qkv, norm (QK RMSNorm), proj."""

    def __init__(self, dim):
        super().__init__()
        self.qkv = torch.nn.Linear(dim, dim * 3)
        self.norm = _QKNorm(dim)
        self.proj = torch.nn.Linear(dim, dim)

    def qkv_normed(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.norm.query_norm(q), self.norm.key_norm(k), v


class _Modulation(torch.nn.Module):
    """flux layers.Modulation: lin(silu(vec)) split into (shift, scale, gate) once or twice."""

    def __init__(self, dim, double):
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = torch.nn.Linear(dim, self.multiplier * dim)

    def forward(self, vec):
        return self.lin(F.silu(vec)).chunk(self.multiplier, dim=-1)


class _DoubleStreamBlock(torch.nn.Module):
    def __init__(self, dim, mlp_ratio=2):
        super().__init__()
        for side in ("img", "txt"):
            setattr(self, f"{side}_mod", _Modulation(dim, double=True))
            setattr(self, f"{side}_norm1", torch.nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{side}_attn", _SelfAttention(dim))
            setattr(self, f"{side}_norm2", torch.nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{side}_mlp", torch.nn.Sequential(torch.nn.Linear(dim, dim * mlp_ratio), torch.nn.GELU(approximate="tanh"),
                                                             torch.nn.Linear(dim * mlp_ratio, dim)))

    def forward(self, img, txt, vec):
        img_mod = self.img_mod(vec)
        txt_mod = self.txt_mod(vec)
        iq, ik, iv = self.img_attn.qkv_normed(_modulate(self.img_norm1(img), img_mod[0], img_mod[1]))
        tq, tk, tv = self.txt_attn.qkv_normed(_modulate(self.txt_norm1(txt), txt_mod[0], txt_mod[1]))
        attn = _rope_attention(torch.cat([tq, iq], 1), torch.cat([tk, ik], 1), torch.cat([tv, iv], 1))
        txt_attn, img_attn = attn[:, :txt.shape[1]], attn[:, txt.shape[1]:]
        # in place, as flux/layers.py adds to the residual stream (after its LayerNorms saved it)
        img += img_mod[2].unsqueeze(1) * self.img_attn.proj(img_attn)
        img += img_mod[5].unsqueeze(1) * self.img_mlp(_modulate(self.img_norm2(img), img_mod[3], img_mod[4]))
        txt += txt_mod[2].unsqueeze(1) * self.txt_attn.proj(txt_attn)
        txt += txt_mod[5].unsqueeze(1) * self.txt_mlp(_modulate(self.txt_norm2(txt), txt_mod[3], txt_mod[4]))
        return img, txt


class _SingleStreamBlock(torch.nn.Module):
    """flux layers.SingleStreamBlock: linear1 gives qkv and the MLP input in one, linear2 joins the
    attention output and the activated MLP."""

    def __init__(self, dim, mlp_ratio=2):
        super().__init__()
        self.dim, self.mlp_hidden = dim, dim * mlp_ratio
        self.linear1 = torch.nn.Linear(dim, dim * 3 + self.mlp_hidden)
        self.linear2 = torch.nn.Linear(dim + self.mlp_hidden, dim)
        self.norm = _QKNorm(dim)
        self.pre_norm = torch.nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp_act = torch.nn.GELU(approximate="tanh")
        self.modulation = _Modulation(dim, double=False)

    def forward(self, x, vec):
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = torch.split(self.linear1(_modulate(self.pre_norm(x), shift, scale)), [3 * self.dim, self.mlp_hidden], dim=-1)
        q, k, v = qkv.chunk(3, dim=-1)
        attn = _rope_attention(self.norm.query_norm(q), self.norm.key_norm(k), v)
        x += gate.unsqueeze(1) * self.linear2(torch.cat([attn, self.mlp_act(mlp)], dim=-1))  # in place, as layers.py
        return x


class TinyFlux(torch.nn.Module):
    """Stands in for Flux-dev (comfy/ldm/flux/model.py:Flux, guidance-distilled). forward(x [B, 16, h, w],
    timestep [B] (sigma itself, ModelSamplingFlux.timestep; scaled by 1000 inside as Flux does),
    context [B, L, 48] (T5 tokens), y [B, 32] (CLIP pooled), guidance [B]) → [B, 16, h, w]. x is
    cut into 2x2 patches (img_in on the 64 values of each), vec = time_in(emb(1000·t)) +
    guidance_in(emb(1000·guidance)) + vector_in(y) with emb = timestep_embedding(·, 64); txt_in(context)
    and the image tokens go through double_blocks.0 (img_/txt_ mod.lin, attn.qkv, attn.proj, mlp.0,
    mlp.2) and single_blocks.0 (linear1, linear2, modulation.lin), then final_layer.linear and unpatchify."""

    def __init__(self, hidden_size=32, in_channels=16, context_dim=48, vec_in_dim=32, frequency_embedding_size=64):
        super().__init__()
        self.patch_size = 2
        self.in_channels = self.out_channels = in_channels
        self.frequency_embedding_size = frequency_embedding_size
        patch_values = in_channels * self.patch_size ** 2
        self.img_in = torch.nn.Linear(patch_values, hidden_size)
        self.time_in = _MLPEmbedder(frequency_embedding_size, hidden_size)
        self.vector_in = _MLPEmbedder(vec_in_dim, hidden_size)
        self.guidance_in = _MLPEmbedder(frequency_embedding_size, hidden_size)
        self.txt_in = torch.nn.Linear(context_dim, hidden_size)
        self.double_blocks = torch.nn.ModuleList([_DoubleStreamBlock(hidden_size)])
        self.single_blocks = torch.nn.ModuleList([_SingleStreamBlock(hidden_size)])
        self.final_layer = _FinalLayer(hidden_size, patch_values)

    def _embed(self, t, batch, dtype):
        return timestep_embedding(_per_sample(t, batch) * 1000.0, self.frequency_embedding_size).to(dtype)

    def forward(self, x, timestep, context, y=None, guidance=None, control=None, transformer_options={}, **kwargs):
        context = _require(context, "context", "TinyFlux")
        y = _require(y, "y", "TinyFlux")
        if guidance is None:
            raise ValueError("TinyFlux: didn't get guidance strength for a guidance-distilled model (Flux-dev needs the "
                             "`guidance` cond, model_base.Flux.extra_conds)")
        b, c, h_orig, w_orig = x.shape
        p = self.patch_size
        x = _pad_to_patch_size(x, p)
        h, w = x.shape[-2] // p, x.shape[-1] // p
        # "b c (h ph) (w pw) -> b (h w) (c ph pw)"
        img = x.reshape(b, c, h, p, w, p).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, c * p * p)
        img = self.img_in(img)
        vec = self.time_in(self._embed(timestep, b, img.dtype))
        vec = vec + self.guidance_in(self._embed(guidance, b, img.dtype))
        vec = vec + self.vector_in(y)
        txt = self.txt_in(context)
        for block in self.double_blocks:
            img, txt = block(img=img, txt=txt, vec=vec)  # by keyword, as comfy/ldm/flux/model.py calls them
        joint = torch.cat([txt, img], 1)
        for block in self.single_blocks:
            joint = block(joint, vec)
        img = self.final_layer(joint[:, txt.shape[1]:], vec)
        # "b (h w) (c ph pw) -> b c (h ph) (w pw)"
        out = img.reshape(b, h, w, self.out_channels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, self.out_channels, h * p, w * p)
        return out[:, :, :h_orig, :w_orig]


STANDINS = {"sdxl": TinySDXLUNet, "sd3": TinyMMDiT, "flux": TinyFlux}


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())

