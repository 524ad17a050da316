"""Mock of comfy/model_sampling.py (ComfyUI @ a125cd84, docs/comfyui-contract.md §6; the flow-matching
parts as in ComfyUI master of late 2025): the EPS, V_PREDICTION and CONST parameterisations
(calculate_input, calculate_denoised, noise_scaling, inverse_noise_scaling), the discrete SD
schedule (ComfyUI's "linear" is linspace(sqrt(0.00085), sqrt(0.012))^2 in float64, with
sigmas = sqrt((1 - abar) / abar)), and the flow-matching schedules: ModelSamplingDiscreteFlow
(SD3, AuraFlow, Flux-schnell: sigma = time_snr_shift(shift, t / multiplier)) and ModelSamplingFlux
(Flux-dev: sigma = flux_time_shift(shift, 1, t)). Formulas, not copies of the code."""
import math
import types

import torch


def reshape_sigma(sigma, ndim):
    """comfy/model_sampling.py:reshape_sigma: a scalar view of a one-element sigma, else one sigma per
    batch row broadcast over the other ndim - 1 dimensions."""
    return sigma.view(()) if sigma.nelement() == 1 else sigma.view(sigma.shape[:1] + (1,) * (ndim - 1))


_shaped = reshape_sigma  # the mock's earlier name


class EPS:
    def calculate_input(self, sigma, noise):
        return noise / (reshape_sigma(sigma, noise.ndim) ** 2 + self.sigma_data ** 2) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * reshape_sigma(sigma, model_output.ndim)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        """x = latent + sigma·noise (max_denoise: sqrt(1 + sigma²)·noise, the variance-preserving start)."""
        sigma = reshape_sigma(sigma, noise.ndim)
        noise = noise * torch.sqrt(1.0 + sigma ** 2.0) if max_denoise else noise * sigma
        return noise + latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent


class V_PREDICTION(EPS):
    def calculate_denoised(self, sigma, model_output, model_input):
        s = reshape_sigma(sigma, model_output.ndim)
        d = self.sigma_data
        return model_input * d ** 2 / (s ** 2 + d ** 2) - model_output * s * d / (s ** 2 + d ** 2) ** 0.5


class CONST:
    """Rectified flow: x = sigma·noise + (1 - sigma)·x0 and the model predicts the velocity noise - x0."""

    def calculate_input(self, sigma, noise):
        return noise

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * reshape_sigma(sigma, model_output.ndim)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = reshape_sigma(sigma, noise.ndim)
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - reshape_sigma(sigma, latent.ndim))


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


def time_snr_shift(alpha, t):
    """comfy/model_sampling.py:time_snr_shift: alpha·t / (1 + (alpha - 1)·t), t itself when alpha is 1."""
    if alpha == 1.0:
        return t
    return alpha * t / (1 + (alpha - 1) * t)


def flux_time_shift(mu, sigma, t):
    """comfy/model_sampling.py:flux_time_shift: e^mu / (e^mu + (1/t - 1)^sigma)."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)


def _sampling_settings(model_config):
    return model_config.sampling_settings if model_config is not None else {}


class _FlowSigmas(torch.nn.Module):
    """What ComfyUI's two flow samplings share (written out in each there): sigma_min/sigma_max
    over the table and percent_to_sigma = 1 at 0, 0 at 1, else the shifted sigma at u = 1 - percent
    (_shifted(u) is each class's time shift)."""

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return self._shifted(1.0 - percent)


class ModelSamplingDiscreteFlow(_FlowSigmas):
    """comfy/model_sampling.py:ModelSamplingDiscreteFlow (SD3, AuraFlow, Flux-schnell): timesteps
    t = 1..T scaled to (0, multiplier], sigma = time_snr_shift(shift, t / multiplier), and
    timestep(sigma) = sigma·multiplier (a continuous timestep, no table lookup)."""

    def __init__(self, model_config=None):
        super().__init__()
        settings = _sampling_settings(model_config)
        self.set_parameters(shift=settings.get("shift", 1.0), multiplier=settings.get("multiplier", 1000))

    def set_parameters(self, shift=1.0, timesteps=1000, multiplier=1000):
        self.shift = shift
        self.multiplier = multiplier
        ts = self.sigma(torch.arange(1, timesteps + 1, 1) / timesteps * multiplier)
        self.register_buffer("sigmas", ts)

    def timestep(self, sigma):
        return sigma * self.multiplier

    def sigma(self, timestep):
        return time_snr_shift(self.shift, timestep / self.multiplier)

    def _shifted(self, u):
        return time_snr_shift(self.shift, u)


class ModelSamplingFlux(_FlowSigmas):
    """comfy/model_sampling.py:ModelSamplingFlux (Flux-dev): t = 1..T over T, sigma =
    flux_time_shift(shift, 1, t), and timestep(sigma) = sigma (Flux scales by 1000 inside)."""

    def __init__(self, model_config=None):
        super().__init__()
        self.set_parameters(shift=_sampling_settings(model_config).get("shift", 1.15))

    def set_parameters(self, shift=1.15, timesteps=10000):
        self.shift = shift
        ts = self.sigma(torch.arange(1, timesteps + 1, 1) / timesteps)
        self.register_buffer("sigmas", ts)

    def timestep(self, sigma):
        return sigma

    def sigma(self, timestep):
        return flux_time_shift(self.shift, 1.0, timestep)

    def _shifted(self, u):
        return flux_time_shift(self.shift, 1.0, u)


# The sampling class and the supported model's sampling_settings (comfy/supported_models.py) per family.
FLOW_FAMILIES = {
    "sd3": (ModelSamplingDiscreteFlow, {"shift": 3.0, "multiplier": 1000}),
    "flux": (ModelSamplingFlux, {"shift": 1.15}),
}


def flow_sampling(kind="sd3", shift=None):
    """The MODEL's model_sampling of a flow-matching family, built as comfy/model_base.py:model_sampling
    builds it: type("ModelSampling", (sampling class, CONST), {})(model_config). "sd3":
    ModelSamplingDiscreteFlow with shift 3 and multiplier 1000; "flux": ModelSamplingFlux with shift
    1.15. `shift`, when given, overrides the family's."""
    sampling, settings = FLOW_FAMILIES[kind]
    settings = dict(settings)
    if shift is not None:
        settings["shift"] = shift
    model_config = types.SimpleNamespace(sampling_settings=settings)
    return type("ModelSampling", (sampling, CONST), {})(model_config)
