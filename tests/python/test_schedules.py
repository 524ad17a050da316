"""Noise schedules and sampler steps against diffusers (the reference implementation) and
the fixture values of docs/methods.md §1."""
import json

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

SCHEDULES = [
    ("linear", 1e-4, 0.02),
    ("scaled_linear", 0.00085, 0.012),
    ("squaredcos_cap_v2", 1e-4, 0.02),
]


def native(lethe, name, start, end, prediction="epsilon"):
    config = {"beta_schedule": name, "beta_start": start, "beta_end": end, "prediction_type": prediction}
    return lethe.NoiseSchedule(json.dumps(config))


@pytest.mark.parametrize("name,start,end", SCHEDULES)
def test_betas_and_alphas_cumprod_match_diffusers(lethe, name, start, end):
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name, beta_start=start, beta_end=end)
    ours = native(lethe, name, start, end)
    assert torch.allclose(ours.betas, ref.betas, atol=1e-6, rtol=0)
    assert torch.allclose(ours.alphas_cumprod, ref.alphas_cumprod, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name,start,end,fixture", [
    ("linear", 1e-4, 0.02, (0.99990000, 0.078587, 4.0358e-5)),
    ("scaled_linear", 0.00085, 0.012, (0.99915000, 0.277670, 4.6601e-3)),
    ("squaredcos_cap_v2", 1e-4, 0.02, (0.99995872, 0.493844, 2.4288e-9)),
])
def test_alphas_cumprod_match_reference_table(lethe, name, start, end, fixture):
    abar = native(lethe, name, start, end).alphas_cumprod.double()
    for t, expected in zip((0, 499, 999), fixture):
        assert abar[t].item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 25, 50, 1000])
def test_inference_timesteps_match_diffusers(lethe, spacing, steps):
    ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    ref.set_timesteps(steps)
    offset = 1 if spacing == "leading" else 0
    if spacing == "leading" and steps == 1000:
        offset = 0  # 999 + 1 would leave the schedule
        ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing, steps_offset=0)
        ref.set_timesteps(steps)
    assert lethe.inference_timesteps(1000, steps, spacing, offset) == ref.timesteps.tolist()


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("name,start,end", SCHEDULES)
def test_ddim_step_matches_diffusers(lethe, prediction, eta, name, start, end):
    ref = DDIMScheduler(num_train_timesteps=1000, beta_schedule=name, beta_start=start, beta_end=end,
                        prediction_type=prediction, clip_sample=False, set_alpha_to_one=True)
    ref.set_timesteps(50)
    ours = native(lethe, name, start, end, prediction)
    g = torch.Generator().manual_seed(3)
    for t in (ref.timesteps[0].item(), ref.timesteps[25].item(), ref.timesteps[-1].item()):
        x = torch.randn(2, 3, 8, 8, generator=g)
        out = torch.randn(2, 3, 8, 8, generator=g)
        noise = torch.randn(2, 3, 8, 8, generator=g)
        expected = ref.step(out, t, x, eta=eta, variance_noise=noise).prev_sample
        t_prev = t - 1000 // 50
        got, _ = lethe.ddim_step(ours, out, t, t_prev, x, eta, noise)
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (t, (got - expected).abs().max())


@pytest.mark.parametrize("use_clipped", [False, True])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_step_clip_sample_matches_diffusers(lethe, use_clipped, eta):
    ref = DDIMScheduler(num_train_timesteps=1000, clip_sample=True, clip_sample_range=1.0)
    ref.set_timesteps(10)
    ours = native(lethe, "linear", 1e-4, 0.02)
    x, out, noise = torch.randn(2, 1, 4, 4) * 3, torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    t = ref.timesteps[3].item()
    expected = ref.step(out, t, x, eta=eta, use_clipped_model_output=use_clipped, variance_noise=noise).prev_sample
    got, x0 = lethe.ddim_step(ours, out, t, t - 100, x, eta, noise, 1.0, use_clipped)
    assert x0.abs().max() <= 1.0 and (x / 3).abs().max() > 0.5  # the clip is exercised
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("name,start,end", SCHEDULES)
def test_ddpm_step_matches_diffusers_with_fixed_noise(lethe, variance, prediction, name, start, end):
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name, beta_start=start, beta_end=end,
                        variance_type=variance, prediction_type=prediction, clip_sample=False)
    ours = native(lethe, name, start, end, prediction)
    g = torch.Generator().manual_seed(5)
    for t in (999, 500, 1, 0):
        x = torch.randn(2, 3, 8, 8, generator=g)
        out = torch.randn(2, 3, 8, 8, generator=g)
        # diffusers draws the step noise from the generator; draw the same noise for Lethe.
        noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(t))
        expected = ref.step(out, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        got, _ = lethe.ddpm_step(ours, out, t, t - 1, x, noise, variance)
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (t, (got - expected).abs().max())


def test_add_noise_matches_diffusers(lethe):
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    ours = native(lethe, "scaled_linear", 0.00085, 0.012)
    x0, noise = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    assert torch.allclose(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t), atol=1e-6)
    assert torch.allclose(ours.training_target(x0, noise, t), noise)


def test_v_target_matches_diffusers(lethe):
    ref = DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction")
    ours = native(lethe, "linear", 1e-4, 0.02, "v_prediction")
    x0, noise, t = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4), torch.tensor([3, 300, 900])
    assert torch.allclose(ours.training_target(x0, noise, t), ref.get_velocity(x0, noise, t), atol=1e-6)


def test_flow_schedule_matches_diffusers_flow_matching(lethe):
    """A flow-matching table (SD3's, shift 3) against diffusers' FlowMatchEulerDiscreteScheduler: the
    same sigmas (diffusers lists them from the noisiest), x_t = scale_noise(x_0, t, eps) =
    s eps + (1 - s) x_0, the velocity target eps - x_0 of diffusers' SD3 training script, and
    (x_0, eps) read back from the velocity."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    ref = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    sigmas = ref.sigmas.flip(0)                                   # [1000] increasing
    u = torch.arange(1, 1001, dtype=torch.float64) / 1000
    assert torch.allclose(sigmas.double(), 3 * u / (1 + 2 * u), atol=1e-6)
    ours = lethe.NoiseSchedule.from_flow_sigmas(sigmas)
    assert ours.prediction_type == "flow"
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(4, 16, 8, 8, generator=g), torch.randn(4, 16, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = ours.add_noise(x0, eps, t)
    for i, step in enumerate(t.tolist()):
        expected = ref.scale_noise(x0[i : i + 1], ref.timesteps[999 - step : 1000 - step], eps[i : i + 1])
        assert torch.allclose(x_t[i : i + 1], expected, atol=1e-5)
    assert torch.equal(ours.training_target(x0, eps, t), eps - x0)
    x0_hat, eps_hat = ours.split_prediction(x_t, eps - x0, t)
    assert torch.allclose(x0_hat, x0, atol=1e-5) and torch.allclose(eps_hat, eps, atol=1e-5)
    with pytest.raises(lethe.LetheError, match="expected flow sigmas increasing inside"):
        lethe.NoiseSchedule.from_flow_sigmas(ref.sigmas)


def test_logit_normal_timesteps_follow_diffusers_sd3_training_density(lethe):
    """SD3's training draws u with diffusers' compute_density_for_timestep_sampling("logit_normal")
    and takes index floor(u T) (train_dreambooth_sd3.py); Lethe's P(t) is that index's law and its
    draws follow it, inside a window too. Auto picks it for flow schedules, uniform for DDPM."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    flow = lethe.NoiseSchedule.from_flow_sigmas(torch.arange(1, 1001, dtype=torch.float32) / 1000)
    kind, probabilities, draws = lethe.timestep_distribution(flow, count=400000, seed=1)
    assert kind == "logit_normal" and lethe.timestep_distribution(lethe.NoiseSchedule())[0] == "uniform"
    u = compute_density_for_timestep_sampling("logit_normal", 400000, logit_mean=0.0, logit_std=1.0,
                                              generator=torch.Generator().manual_seed(0))
    reference = torch.bincount((u * 1000).long(), minlength=1000).double() / 400000  # diffusers' indices
    bins = lambda p: p.view(50, 20).sum(1)  # noqa: E731 (20 timesteps a bin)
    assert torch.allclose(bins(probabilities), bins(reference), atol=3e-3), (bins(probabilities) - bins(reference)).abs().max()
    ours = torch.bincount(draws, minlength=1000).double() / 400000
    assert torch.allclose(bins(ours), bins(probabilities), atol=3e-3)
    _, window, inside = lethe.timestep_distribution(flow, '{"kind": "logit_normal"}', count=1000, t_min=800, seed=2)
    assert int(inside.min()) >= 800 and window[:800].sum() == 0
    assert window[800:].sum().item() == pytest.approx(1.0)
    assert window[900].item() == pytest.approx(probabilities[900].item() / probabilities[800:].sum().item(), rel=1e-9)
