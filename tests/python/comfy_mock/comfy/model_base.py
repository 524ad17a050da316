"""Mock of comfy/model_base.py (ComfyUI @ a125cd84, docs/comfyui-contract.md §5-§6; SDXL, SD3 and Flux
as in ComfyUI master of late 2025). BaseModel.apply_model(x, sigma, c_crossattn=..., **extra conds)
scales x to the network's input, converts sigma to the network's timestep, casts the conditioning
to the weights' dtype, runs diffusion_model(xc, t, context=..., control=..., transformer_options=...,
**extra conds) and returns the denoised x0; extra_conds(**kwargs) wraps a conditioning's pooled
output (encode_adm) as `y` and its tokens as `c_crossattn` (comfy/conds.py). SDXL's adm vector,
SD3's pooled y and Flux's y and guidance follow the real subclasses; the latent formats
(comfy/latent_formats.py: scale and shift) are constructor arguments with each family's values.
The mock's BaseModel takes the diffusion model and the model_sampling object directly (the real
one builds both from a model_config). Not mirrored: c_concat (inpainting inputs), manual casts,
process_timestep, memory estimates."""
import math

import torch

import comfy.conds
import comfy.model_sampling


# comfy/ldm/modules/diffusionmodules/util.py: timestep_embedding
def timestep_embedding(timesteps, dim, max_period=10000):
    """Sinusoidal embedding [cos(t·f_i), sin(t·f_i)] with f_i = max_period^(-i / (dim // 2)), a zero
    column appended when dim is odd."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class Timestep(torch.nn.Module):
    """comfy/ldm/modules/diffusionmodules/openaimodel.py:Timestep (SDXL's size embedder)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        return timestep_embedding(t, self.dim)


class BaseModel(torch.nn.Module):
    def __init__(self, diffusion_model, model_sampling, latent_scale=0.18215, latent_shift=0.0):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.model_sampling = model_sampling
        self.latent_scale = latent_scale
        self.latent_shift = latent_shift

    def get_dtype(self):
        return next(self.diffusion_model.parameters()).dtype

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        sigma = t
        xc = self.model_sampling.calculate_input(sigma, x)
        dtype = self.get_dtype()
        xc = xc.to(dtype)
        device = xc.device
        t = self.model_sampling.timestep(t).float()
        context = c_crossattn.to(device, dtype) if c_crossattn is not None else None
        extra_conds = {}
        for name, value in kwargs.items():
            if hasattr(value, "dtype"):  # model_base.py:convert_tensor: integer tensors keep their dtype
                value = value.to(device) if value.dtype in (torch.int, torch.long) else value.to(device, dtype)
            extra_conds[name] = value
        model_output = self.diffusion_model(xc, t, context=context, control=control, transformer_options=transformer_options,
                                            **extra_conds).float()
        return self.model_sampling.calculate_denoised(sigma, model_output, x)

    def encode_adm(self, **kwargs):
        return None

    def extra_conds(self, **kwargs):
        """The conds of one conditioning entry (kwargs: its dict, with the tokens as cross_attn)."""
        out = {}
        adm = self.encode_adm(**kwargs)
        if adm is not None:
            out["y"] = comfy.conds.CONDRegular(adm)
        cross_attn = kwargs.get("cross_attn", None)
        if cross_attn is not None:
            out["c_crossattn"] = comfy.conds.CONDCrossAttn(cross_attn)
        return out

    def process_latent_in(self, latent):
        return (latent - self.latent_shift) * self.latent_scale

    def process_latent_out(self, latent):
        return latent / self.latent_scale + self.latent_shift


class SDXL(BaseModel):
    """comfy/model_base.py:SDXL (EPS, discrete schedule; latent_formats.SDXL scale 0.13025). Its adm
    vector y is the pooled CLIP-G output followed by 256-wide sinusoidal embeddings of height, width,
    crop_h, crop_w, target_height and target_width."""

    def __init__(self, diffusion_model, model_sampling=None, latent_scale=0.13025, latent_shift=0.0):
        super().__init__(diffusion_model, model_sampling if model_sampling is not None else comfy.model_sampling.model_sampling(),
                         latent_scale, latent_shift)
        self.embedder = Timestep(256)

    def encode_adm(self, **kwargs):
        clip_pooled = kwargs["pooled_output"]
        width = kwargs.get("width", 768)
        height = kwargs.get("height", 768)
        crop_w = kwargs.get("crop_w", 0)
        crop_h = kwargs.get("crop_h", 0)
        target_width = kwargs.get("target_width", width)
        target_height = kwargs.get("target_height", height)
        out = [self.embedder(torch.Tensor([v])) for v in (height, width, crop_h, crop_w, target_height, target_width)]
        flat = torch.flatten(torch.cat(out)).unsqueeze(0).repeat(clip_pooled.shape[0], 1)
        return torch.cat((clip_pooled.to(flat.device), flat), dim=1)


class SD3(BaseModel):
    """comfy/model_base.py:SD3 (CONST over ModelSamplingDiscreteFlow, shift 3; latent_formats.SD3
    scale 1.5305, shift 0.0609); y is the pooled output as it is (required: a KeyError without it),
    the tokens a CONDRegular."""

    def __init__(self, diffusion_model, model_sampling=None, latent_scale=1.5305, latent_shift=0.0609):
        super().__init__(diffusion_model, model_sampling if model_sampling is not None else comfy.model_sampling.flow_sampling("sd3"),
                         latent_scale, latent_shift)

    def encode_adm(self, **kwargs):
        return kwargs["pooled_output"]

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        cross_attn = kwargs.get("cross_attn", None)
        if cross_attn is not None:
            out["c_crossattn"] = comfy.conds.CONDRegular(cross_attn)
        return out


class Flux(BaseModel):
    """comfy/model_base.py:Flux (CONST over ModelSamplingFlux, shift 1.15; latent_formats.Flux scale
    0.3611, shift 0.1159); y is the pooled output, and a guidance cond (default 3.5) feeds the
    guidance-distilled model's guidance embedding; the tokens are a CONDRegular. Not mirrored: the
    attention mask, reference latents and control-LoRA concat inputs."""

    def __init__(self, diffusion_model, model_sampling=None, latent_scale=0.3611, latent_shift=0.1159):
        super().__init__(diffusion_model, model_sampling if model_sampling is not None else comfy.model_sampling.flow_sampling("flux"),
                         latent_scale, latent_shift)

    def encode_adm(self, **kwargs):
        return kwargs.get("pooled_output", None)

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        cross_attn = kwargs.get("cross_attn", None)
        if cross_attn is not None:
            out["c_crossattn"] = comfy.conds.CONDRegular(cross_attn)
        guidance = kwargs.get("guidance", 3.5)
        if guidance is not None:
            out["guidance"] = comfy.conds.CONDRegular(torch.FloatTensor([guidance]))
        return out
