"""Mock of comfy/model_sampling.py (ComfyUI @ a125cd84, docs/comfyui-contract.md §6): the EPS and
V_PREDICTION parameterisations and the discrete SD schedule (ComfyUI's "linear" is
linspace(sqrt(0.00085), sqrt(0.012))^2 in float64), with sigmas = sqrt((1 - abar) / abar)."""
import torch


def _shaped(sigma, ndim):
    return sigma.view(()) if sigma.nelement() == 1 else sigma.view(sigma.shape[:1] + (1,) * (ndim - 1))


class EPS:
    def calculate_input(self, sigma, noise):
        return noise / (_shaped(sigma, noise.ndim) ** 2 + self.sigma_data ** 2) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * _shaped(sigma, model_output.ndim)


class V_PREDICTION(EPS):
    def calculate_denoised(self, sigma, model_output, model_input):
        s = _shaped(sigma, model_output.ndim)
        d = self.sigma_data
        return model_input * d ** 2 / (s ** 2 + d ** 2) - model_output * s * d / (s ** 2 + d ** 2) ** 0.5


class CONST:
    def calculate_input(self, sigma, noise):
        return noise


class ModelSamplingDiscrete(torch.nn.Module):
    def __init__(self, linear_start=0.00085, linear_end=0.012, timesteps=1000):
        super().__init__()
        betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.register_buffer("sigmas", sigmas.float())
        self.register_buffer("log_sigmas", sigmas.log().float())
        self.sigma_data = 1.0

    def timestep(self, sigma):
        distances = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return distances.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)


def model_sampling(kind=EPS):
    """ModelSamplingDiscrete combined with a parameterisation, as comfy/model_base.py builds it."""
    return type("ModelSampling", (ModelSamplingDiscrete, kind), {})()
