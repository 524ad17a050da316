"""Mock of comfy/model_base.py's BaseModel forward (ComfyUI @ a125cd84, docs/comfyui-contract.md §5-§6):
apply_model(x, sigma, c_crossattn=...) scales x to the UNet's input, converts sigma to the
timestep index, runs diffusion_model(xc, t, context=...) and returns the denoised x0."""
import torch


class BaseModel(torch.nn.Module):
    def __init__(self, diffusion_model, model_sampling, latent_scale=0.18215):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.model_sampling = model_sampling
        self.latent_scale = latent_scale

    def get_dtype(self):
        return next(self.diffusion_model.parameters()).dtype

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        sigma = t
        xc = self.model_sampling.calculate_input(sigma, x)
        dtype = self.get_dtype()
        xc = xc.to(dtype)
        timestep = self.model_sampling.timestep(t).float()
        context = c_crossattn.to(xc.device, dtype) if c_crossattn is not None else None
        model_output = self.diffusion_model(xc, timestep, context=context).float()
        return self.model_sampling.calculate_denoised(sigma, model_output, x)

    def process_latent_in(self, latent):
        return latent * self.latent_scale
