"""Test stand-ins for the ComfyUI nodes of workflows/sd15-artist-removal.json and
workflows/sdxl-artist-removal.json, with the real nodes' names, INPUT_TYPES (ComfyUI @ a125cd84,
nodes.py) and value types, so the workflows run end to end inside the mock ComfyUI on the tiny SD
and SDXL checkpoints (the tiny_sd fixture of conftest.py, tiny_sdxl of test_sdxl_workflow.py):

- CheckpointLoaderSimple: the checkpoint's UNet as a ComfyUI MODEL (a mock BaseModel, or for an
  SDXL-configured spec the mock SDXL with its model_config.unet_config so LoraLoader maps kohya
  names, over a diffusers UNet2DConditionModel whose state dict is presented with the
  checkpoint's LDM keys so LoRA patches keyed "diffusion_model.<ldm>.weight" apply), a toy CLIP
  and a toy VAE;
- CLIPTextEncode: the toy CLIP (a fixed random embedding per word; [1, 77, context width]) with a
  pooled output (zeros for SD1.x, a fixed random vector per prompt for SDXL, as CLIP-G gives);
- VAEEncode / VAEDecode: the toy VAE (8x8 average pooling to 4 channels and back; raw VAE scale,
  i.e. divided by the family's latent scale as ComfyUI's LATENT is);
- EmptyLatentImage and KSampler (Euler steps over ComfyUI's sigmas with classifier-free guidance,
  on the MODEL's weights with its patches merged, the conds made by the model's extra_conds with
  the latent's size in pixels as ComfyUI's samplers make them).
They are not models of CLIP or a VAE: they only give the workflow's values the right types and shapes.
SDXL's y reaches the diffusers UNet unchanged: its add_time_proj (which would embed the size
values) is replaced by the identity, so add_embedding sees [pooled, size embeddings] = y exactly
as the LDM UNet's label_emb does."""
import zlib

import torch
from safetensors.torch import load_file

import folder_paths
import nodes
from comfy.model_base import SDXL, BaseModel
from comfy.model_patcher import ModelPatcher
from comfy.model_sampling import model_sampling

LATENT_SCALE = 0.18215  # SD1.x (latent_formats.SD15); SDXL: 0.13025
SIZE_EMBEDDING = 256  # SDXL's Timestep(256) per size value


def is_sdxl(spec):
    return spec.get("addition_embed_type") == "text_time"


def pooled_width(spec):
    """The pooled text embedding's width in y (SDXL), or 768 (SD1.x CLIPTextEncode's pooled output)."""
    return spec["projection_class_embeddings_input_dim"] - 6 * SIZE_EMBEDDING if is_sdxl(spec) else 768


def _diffusers_unet(spec):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **spec).eval()
    if is_sdxl(spec):
        unet.add_time_proj = torch.nn.Identity()  # y's size embeddings pass to add_embedding as they are
    return unet


class UNetCall(torch.nn.Module):
    """ComfyUI's UNet call convention (x, timesteps, context=..., y=...) over a diffusers UNet."""

    def __init__(self, unet, spec):
        super().__init__()
        self.unet, self.spec = unet, spec

    def forward(self, x, timesteps, context=None, y=None, **kwargs):
        if not is_sdxl(self.spec):
            return self.unet(x, timesteps, encoder_hidden_states=context).sample
        assert y is not None, "SDXL's UNet needs y"  # as the LDM UNet asserts
        width = pooled_width(self.spec)
        return self.unet(x, timesteps, encoder_hidden_states=context,
                         added_cond_kwargs={"text_embeds": y[:, :width], "time_ids": y[:, width:]}).sample


class LdmKeyedModel(BaseModel):
    """BaseModel whose state dict carries the checkpoint's LDM keys ("diffusion_model.<ldm>")."""

    def __init__(self, unet, ldm_to_diffusers, spec):
        super().__init__(UNetCall(unet, spec), model_sampling())
        self.ldm_to_diffusers, self.spec = ldm_to_diffusers, spec

    def state_dict(self, *args, **kwargs):
        weights = self.diffusion_model.unet.state_dict()
        return {f"diffusion_model.{ldm}": weights[name] for ldm, name in self.ldm_to_diffusers.items()}


class LdmKeyedSDXL(LdmKeyedModel, SDXL):
    """The mock SDXL (encode_adm, latent scale 0.13025) with LDM keys and the unet_config that
    comfy/model_detection.py finds in the checkpoint (for LoraLoader's kohya key map)."""

    def __init__(self, unet, ldm_to_diffusers, spec):
        import types

        from comfy_helpers import comfyui_unet_config

        super().__init__(unet, ldm_to_diffusers, spec)
        self.model_config = types.SimpleNamespace(unet_config=comfyui_unet_config(spec))


def keyed_model(unet, ldm_to_diffusers, spec):
    return (LdmKeyedSDXL if is_sdxl(spec) else LdmKeyedModel)(unet, ldm_to_diffusers, spec)


class ToyCLIP:
    def __init__(self, spec):
        self.width, self.pooled = spec["cross_attention_dim"], is_sdxl(spec) and pooled_width(spec)

    def encode(self, text):
        rows = []
        for word in (text.split() or [""])[:77]:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            rows.append(torch.randn(self.width, generator=g))
        context = torch.zeros(77, self.width)
        context[: len(rows)] = torch.stack(rows)
        return context.unsqueeze(0)

    def pooled_output(self, text):
        if not self.pooled:
            return torch.zeros(1, 768)
        return torch.randn(1, self.pooled, generator=torch.Generator().manual_seed(zlib.crc32(text.encode()) + 1))


class ToyVAE:
    def __init__(self, scale):
        self.scale = scale

    def encode(self, pixels):  # IMAGE [B, H, W, 3] in [0, 1] -> raw latents [B, 4, H/8, W/8]
        x = pixels.movedim(-1, 1)
        x = torch.cat([x, x.mean(1, keepdim=True)], dim=1) * 2 - 1
        return torch.nn.functional.avg_pool2d(x, 8) / self.scale

    def decode(self, latents):  # raw latents -> IMAGE
        x = torch.nn.functional.interpolate(latents[:, :3] * self.scale, scale_factor=8, mode="nearest")
        return ((x + 1) / 2).clamp(0, 1).movedim(1, -1).contiguous()


class CheckpointLoaderSimple:
    SPEC = None  # the diffusers config of the tiny checkpoint (set by the test)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"

    def load_checkpoint(self, ckpt_name):
        from ldm_convert import diffusers_to_ldm

        sd = load_file(folder_paths.get_full_path("checkpoints", ckpt_name))
        ldm = {k[len("model.diffusion_model."):]: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
        unet = _diffusers_unet(self.SPEC)
        up_has_attention = ["CrossAttn" in kind for kind in self.SPEC["up_block_types"]]
        names = diffusers_to_ldm({k: k for k in unet.state_dict()}, self.SPEC["layers_per_block"], up_has_attention)
        unet.load_state_dict({names[k]: v for k, v in ldm.items()})
        unet.requires_grad_(False)
        model = keyed_model(unet, names, self.SPEC)
        return (ModelPatcher(model), ToyCLIP(self.SPEC), ToyVAE(model.latent_scale))


class CLIPTextEncode:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"text": ("STRING", {"multiline": True, "dynamicPrompts": True}), "clip": ("CLIP",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    def encode(self, clip, text):
        return ([[clip.encode(text), {"pooled_output": clip.pooled_output(text)}]],)


class VAEEncode:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"pixels": ("IMAGE",), "vae": ("VAE",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"

    def encode(self, vae, pixels):
        return ({"samples": vae.encode(pixels)},)


class VAEDecode:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"samples": ("LATENT",), "vae": ("VAE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"

    def decode(self, vae, samples):
        return (vae.decode(samples["samples"]),)


class EmptyLatentImage:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"width": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                             "height": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "generate"

    def generate(self, width, height, batch_size=1):
        return ({"samples": torch.zeros(batch_size, 4, height // 8, width // 8)},)


class KSampler:
    SAMPLERS, SCHEDULERS = ["euler", "ddim"], ["normal", "simple", "ddim_uniform"]

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"model": ("MODEL",),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
                             "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                             "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                             "sampler_name": (cls.SAMPLERS,), "scheduler": (cls.SCHEDULERS,),
                             "positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "latent_image": ("LATENT",),
                             "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    patched_keys = None  # how many patched weights the last call merged (for the test)

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0):
        base = model.model
        weights = {}
        for key in base.state_dict():
            weights[base.ldm_to_diffusers[key[len("diffusion_model."):]]] = model.patched_weight(key)
        KSampler.patched_keys = len(model.patches)
        unet = _diffusers_unet(base.spec)
        unet.load_state_dict(weights)
        patched = keyed_model(unet, base.ldm_to_diffusers, base.spec)
        sigmas = base.model_sampling.sigmas
        schedule = torch.cat([sigmas[torch.linspace(len(sigmas) - 1, 0, steps).round().long()], torch.zeros(1)])
        shape = latent_image["samples"].shape
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * (1 + schedule[0] ** 2).sqrt()

        def conds(conditioning):  # samplers.py: encode_model_conds (width/height from the latent), then batched
            entry = conditioning[0]
            params = dict(entry[1], cross_attn=entry[0], device=x.device, noise=x)
            params.setdefault("width", shape[3] * 8)
            params.setdefault("height", shape[2] * 8)
            return {name: cond.process_cond(batch_size=shape[0], device=x.device).cond
                    for name, cond in patched.extra_conds(**params).items()}

        cond, uncond = conds(positive), conds(negative)
        with torch.no_grad():
            for i in range(steps):
                sigma = schedule[i].expand(shape[0])
                c, u = patched.apply_model(x, sigma, **cond), patched.apply_model(x, sigma, **uncond)
                denoised = u + cfg * (c - u)
                x = x + (x - denoised) / schedule[i] * (schedule[i + 1] - schedule[i])
        return ({"samples": x / base.latent_scale},)


def register(spec):
    CheckpointLoaderSimple.SPEC = spec
    for cls in (CheckpointLoaderSimple, CLIPTextEncode, VAEEncode, VAEDecode, EmptyLatentImage, KSampler):
        nodes.NODE_CLASS_MAPPINGS[cls.__name__] = cls
