"""Test stand-ins for the ComfyUI nodes of workflows/sd15-artist-removal.json, with the real
nodes' names, INPUT_TYPES (ComfyUI @ a125cd84, nodes.py) and value types, so the workflow runs
end to end inside the mock ComfyUI on the tiny SD checkpoint (the tiny_sd fixture of conftest.py):

- CheckpointLoaderSimple: the checkpoint's UNet as a ComfyUI MODEL (mock BaseModel over a
  diffusers UNet2DConditionModel, whose state dict is presented with the checkpoint's LDM keys so
  LoRA patches keyed "diffusion_model.<ldm>.weight" apply), a toy CLIP and a toy VAE;
- CLIPTextEncode: the toy CLIP (a fixed random embedding per word; [1, 77, 768]);
- VAEEncode / VAEDecode: the toy VAE (8x8 average pooling to 4 channels and back; raw VAE scale,
  i.e. divided by 0.18215 as ComfyUI's LATENT is);
- EmptyLatentImage and KSampler (Euler steps over ComfyUI's sigmas with classifier-free guidance,
  on the MODEL's weights with its patches merged).
They are not models of CLIP or a VAE: they only give the workflow's values the right types and shapes."""
import zlib

import torch
from safetensors.torch import load_file

import folder_paths
import nodes
from comfy.model_base import BaseModel
from comfy.model_patcher import ModelPatcher
from comfy.model_sampling import model_sampling

LATENT_SCALE = 0.18215


def _diffusers_unet(spec):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **spec).eval()


class UNetCall(torch.nn.Module):
    """ComfyUI's UNet call convention (x, timesteps, context=...) over a diffusers UNet."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, timesteps, context=None, **kwargs):
        return self.unet(x, timesteps, encoder_hidden_states=context).sample


class LdmKeyedModel(BaseModel):
    """BaseModel whose state dict carries the checkpoint's LDM keys ("diffusion_model.<ldm>")."""

    def __init__(self, unet, ldm_to_diffusers, spec):
        super().__init__(UNetCall(unet), model_sampling())
        self.ldm_to_diffusers, self.spec = ldm_to_diffusers, spec

    def state_dict(self, *args, **kwargs):
        weights = self.diffusion_model.unet.state_dict()
        return {f"diffusion_model.{ldm}": weights[name] for ldm, name in self.ldm_to_diffusers.items()}


class ToyCLIP:
    def encode(self, text):
        rows = []
        for word in (text.split() or [""])[:77]:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            rows.append(torch.randn(768, generator=g))
        context = torch.zeros(77, 768)
        context[: len(rows)] = torch.stack(rows)
        return context.unsqueeze(0)


class ToyVAE:
    def encode(self, pixels):  # IMAGE [B, H, W, 3] in [0, 1] -> raw latents [B, 4, H/8, W/8]
        x = pixels.movedim(-1, 1)
        x = torch.cat([x, x.mean(1, keepdim=True)], dim=1) * 2 - 1
        return torch.nn.functional.avg_pool2d(x, 8) / LATENT_SCALE

    def decode(self, latents):  # raw latents -> IMAGE
        x = torch.nn.functional.interpolate(latents[:, :3] * LATENT_SCALE, scale_factor=8, mode="nearest")
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
        names = diffusers_to_ldm({k: k for k in unet.state_dict()}, self.SPEC["layers_per_block"], [False, True])
        unet.load_state_dict({names[k]: v for k, v in ldm.items()})
        unet.requires_grad_(False)
        return (ModelPatcher(LdmKeyedModel(unet, names, self.SPEC)), ToyCLIP(), ToyVAE())


class CLIPTextEncode:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"text": ("STRING", {"multiline": True, "dynamicPrompts": True}), "clip": ("CLIP",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    def encode(self, clip, text):
        return ([[clip.encode(text), {"pooled_output": torch.zeros(1, 768)}]],)


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
        patched = BaseModel(UNetCall(unet), base.model_sampling)
        sigmas = base.model_sampling.sigmas
        schedule = torch.cat([sigmas[torch.linspace(len(sigmas) - 1, 0, steps).round().long()], torch.zeros(1)])
        shape = latent_image["samples"].shape
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * (1 + schedule[0] ** 2).sqrt()
        cond, uncond = positive[0][0].expand(shape[0], -1, -1), negative[0][0].expand(shape[0], -1, -1)
        with torch.no_grad():
            for i in range(steps):
                sigma = schedule[i].expand(shape[0])
                c, u = patched.apply_model(x, sigma, c_crossattn=cond), patched.apply_model(x, sigma, c_crossattn=uncond)
                denoised = u + cfg * (c - u)
                x = x + (x - denoised) / schedule[i] * (schedule[i + 1] - schedule[i])
        return ({"samples": x / LATENT_SCALE},)


def register(spec):
    CheckpointLoaderSimple.SPEC = spec
    for cls in (CheckpointLoaderSimple, CLIPTextEncode, VAEEncode, VAEDecode, EmptyLatentImage, KSampler):
        nodes.NODE_CLASS_MAPPINGS[cls.__name__] = cls
