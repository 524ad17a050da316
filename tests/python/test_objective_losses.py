"""Every objective's loss formula and gradient against a PyTorch/NumPy reference written
from docs/methods.md, plus the property tests of the engine issue (SISS
importance-weight expectations by Monte Carlo, f-divergences and their slopes against numerical
integration of their definitions)."""
import json
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch


def fft_mask(h, w, cutoff):
    fy = torch.fft.fftfreq(h).view(h, 1)
    fx = torch.fft.fftfreq(w).view(1, w)
    return ((fy**2 + fx**2).sqrt() <= cutoff * 0.5 + 1e-12).float()


def energy_reference(residual, masks=None, lowpass=None):
    r = residual if masks is None else residual * masks
    if lowpass is None:
        return (r**2).flatten(1).sum(1)
    spectrum = torch.fft.fft2(r, norm="ortho")
    return (fft_mask(r.shape[-2], r.shape[-1], lowpass) * spectrum.abs() ** 2).flatten(1).sum(1)


def lowpass_json(cutoff):
    return json.dumps({"filter": "lowpass", "cutoff": cutoff})


def test_frequency_energy_matches_numpy_fft(lethe):
    r = torch.randn(3, 2, 8, 10, dtype=torch.float32)
    for cutoff in (0.25, 0.5, 0.75):
        spectrum = np.fft.fft2(r.numpy().astype(np.float64), norm="ortho")
        fy, fx = np.fft.fftfreq(8)[:, None], np.fft.fftfreq(10)[None, :]
        mask = (np.sqrt(fy**2 + fx**2) <= cutoff * 0.5 + 1e-12)
        expected = (np.abs(spectrum) ** 2 * mask).reshape(3, -1).sum(1)
        got = lethe.frequency_energy(r, lowpass_json(cutoff))
        assert np.allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    # no filter: Parseval, the plain sum of squares
    assert torch.allclose(lethe.frequency_energy(r, "{}"), (r**2).flatten(1).sum(1))


def test_a_time_dependent_cutoff_filters_each_sample_at_its_own_t(lethe):
    """cutoff_end > 0: r(t) = cutoff + (cutoff_end - cutoff) t / (T - 1) per sample; values and
    gradients against the constant-cutoff reference applied sample by sample."""
    g = torch.Generator().manual_seed(7)
    r = torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64).requires_grad_(True)
    tau = torch.tensor([0.0, 0.5, 1.0])
    config = json.dumps({"filter": "lowpass", "cutoff": 0.25, "cutoff_end": 1.0})
    ours = lethe.frequency_energy(r, config, tau)
    expected = torch.cat([energy_reference(r[b:b + 1], lowpass=0.25 + 0.75 * tau[b].item()) for b in range(3)])
    assert torch.allclose(ours, expected.to(ours.dtype), rtol=1e-5, atol=1e-6)
    (g_ours,) = torch.autograd.grad(ours.sum(), r)
    (g_ref,) = torch.autograd.grad(expected.sum(), r)
    assert torch.allclose(g_ours.double(), g_ref, rtol=1e-4, atol=1e-6)
    # The ends are the constant cutoffs; without t it says what it needs.
    assert torch.allclose(ours[2], lethe.frequency_energy(r[2:], lowpass_json(1.0))[0].to(ours.dtype))
    with pytest.raises(lethe.LetheError, match="the cutoff depends on t .cutoff_end = 1.*each sample's t is needed"):
        lethe.frequency_energy(r, config)
    # SISS passes each sample's t through to its forget term.
    p_x, p_a, m, x, a, gamma, sigma, tw, masks = siss_case(4, False)
    tau6 = torch.linspace(0, 1, 6)
    _, forget = lethe.siss_losses(p_x, p_a, m, x, a, gamma, sigma, 0.5, tw, masks, config, "epsilon", tau6)
    per_sample = [lethe.siss_losses(p_x[b:b + 1], p_a[b:b + 1], m[b:b + 1], x[b:b + 1], a[b:b + 1], gamma[b:b + 1],
                                    sigma[b:b + 1], 0.5, tw[b:b + 1], masks[b:b + 1],
                                    lowpass_json(0.25 + 0.75 * tau6[b].item()))[1] for b in range(6)]
    assert forget.item() == pytest.approx(torch.stack(per_sample).mean().item(), rel=1e-5)


def siss_reference(p_x, p_a, m, x, a, gamma, sigma, lam, time_weight, masks, lowpass, prediction_type="epsilon"):
    """docs/methods.md §2.1 in the repository's weight form, then §3's low-pass on l_a; the target
    of each x_0 = y from the noise that makes m: eps, the velocity gamma eps - sigma y (diffusers'
    get_velocity), y itself, or the flow-matching velocity eps - y (x_t = (1 - s) y + s eps)."""
    dims = tuple(range(1, m.dim()))
    eps_x, eps_a = (m - gamma * x) / sigma, (m - gamma * a) / sigma
    if prediction_type == "v_prediction":
        eps_x, eps_a = gamma * eps_x - sigma * x, gamma * eps_a - sigma * a
    elif prediction_type == "sample":
        eps_x, eps_a = x, a
    elif prediction_type == "flow":
        eps_x, eps_a = eps_x - x, eps_a - a
    var = 2 * sigma.flatten() ** 2
    d_x = ((m - gamma * x) ** 2).sum(dims).double() / var
    d_a = ((m - gamma * a) ** 2).sum(dims).double() / var
    delta = d_x - d_a
    w_x = (1 / ((1 - lam) + lam * torch.exp(delta))).float()
    w_a = (1 / ((1 - lam) * torch.exp(-delta) + lam)).float()
    l_x = (w_x * ((p_x - eps_x) ** 2).sum(dims)).mean()
    l_a = (w_a * time_weight * energy_reference(p_a - eps_a, masks, lowpass)).mean()
    return l_x, l_a


def siss_case(seed, same_prediction, flow=False):
    g = torch.Generator().manual_seed(seed)
    shape = (6, 2, 8, 8)
    x, a, eps = (torch.randn(*shape, generator=g) * 0.5 for _ in range(3))
    abar = torch.rand(6, generator=g).clamp(0.2, 0.95).view(6, 1, 1, 1)
    gamma, sigma = abar.sqrt(), (1 - abar).sqrt()
    if flow:  # rectified flow: x_t = (1 - s) x_0 + s eps, q(x_t | x_0) = N((1 - s) x_0, s^2 I)
        s = 1 - abar
        gamma, sigma = 1 - s, s
    pick = torch.rand(6, generator=g).view(6, 1, 1, 1) < 0.5
    m = torch.where(pick, gamma * a + sigma * eps, gamma * x + sigma * eps)
    p_x = torch.randn(*shape, generator=g).requires_grad_(True)
    p_a = p_x if same_prediction else torch.randn(*shape, generator=g).requires_grad_(True)
    time_weight = torch.tensor([1.0, 0.0, 1.0, 2.0, 0.5, 1.0])
    masks = (torch.rand(6, 1, 8, 8, generator=g) > 0.3).float()
    return p_x, p_a, m, x, a, gamma, sigma, time_weight, masks


@pytest.mark.parametrize("same_prediction", [True, False])
@pytest.mark.parametrize("lowpass", [None, 0.5])
def test_siss_losses_and_gradients_match_reference(lethe, same_prediction, lowpass):
    p_x, p_a, m, x, a, gamma, sigma, tw, masks = siss_case(3, same_prediction)
    freq = lowpass_json(lowpass) if lowpass else "{}"
    ours = lethe.siss_losses(p_x, p_a, m, x, a, gamma, sigma, 0.5, tw, masks, freq)
    ref = siss_reference(p_x, p_a, m, x, a, gamma, sigma, 0.5, tw, masks, lowpass)
    for got, expected in zip(ours, ref):
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)
        leaves = [p_x] if same_prediction else [p_x, p_a]
        g_ours = torch.autograd.grad(got, leaves, retain_graph=True, allow_unused=True)
        g_ref = torch.autograd.grad(expected, leaves, retain_graph=True, allow_unused=True)
        for go, gr in zip(g_ours, g_ref):
            if gr is None:
                assert go is None or go.abs().max() == 0
            else:
                assert torch.allclose(go, gr, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample", "flow"])
def test_siss_losses_train_the_target_of_the_models_parameterisation(lethe, prediction_type):
    """A v-prediction, x_0 or flow-matching model is trained on its own target, not on eps: values and
    gradients against the textbook velocity (flow: eps - x_0 with weights from N((1 - s) x_0, s^2 I)),
    and different from the eps loss on the same batch."""
    p_x, p_a, m, x, a, gamma, sigma, tw, masks = siss_case(5, False, flow=prediction_type == "flow")
    ours = lethe.siss_losses(p_x, p_a, m, x, a, gamma, sigma, 0.5, tw, masks, "{}", prediction_type)
    ref = siss_reference(p_x, p_a, m, x, a, gamma, sigma, 0.5, tw, masks, None, prediction_type)
    eps_loss = lethe.siss_losses(p_x, p_a, m, x, a, gamma, sigma, 0.5, tw, masks, "{}")
    for got, expected, other in zip(ours, ref, eps_loss):
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)
        assert got.item() != pytest.approx(other.item(), rel=1e-3)
        g_ours = torch.autograd.grad(got, [p_x, p_a], retain_graph=True, allow_unused=True)
        g_ref = torch.autograd.grad(expected, [p_x, p_a], retain_graph=True, allow_unused=True)
        for go, gr in zip(g_ours, g_ref):
            if gr is None:
                assert go is None or go.abs().max() == 0
            else:
                assert torch.allclose(go, gr, rtol=1e-5, atol=1e-5)
    with pytest.raises(lethe.LetheError, match="SISS: unknown prediction type 'edm'; known: epsilon, v_prediction, sample, flow"):
        lethe.siss_losses(p_x, p_a, m, x, a, gamma, sigma, 0.5, tw, masks, "{}", "edm")


def test_siss_weights_are_a_partition_of_unity(lethe):
    p_x, p_a, m, x, a, gamma, sigma, *_ = siss_case(5, True)
    for lam in (0.1, 0.5, 0.9):
        w_x, w_a = lethe.siss_weights(m, x, a, gamma, sigma, lam)
        assert torch.allclose((1 - lam) * w_x + lam * w_a, torch.ones(6), atol=1e-6)


def test_siss_weights_never_nan_at_small_t(lethe):
    x, a = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4) * 3
    gamma, sigma = torch.ones(2, 1, 1, 1), torch.full((2, 1, 1, 1), 1e-4)  # t ~ 0: Delta is astronomically large
    m = gamma * x + sigma * torch.randn(2, 1, 4, 4)
    w_x, w_a = lethe.siss_weights(m, x, a, gamma, sigma, 0.5)
    assert torch.isfinite(w_x).all() and torch.isfinite(w_a).all()
    assert torch.allclose(w_x, torch.full((2,), 2.0)) and torch.allclose(w_a, torch.zeros(2))


def test_siss_importance_weights_have_the_stated_expectation(lethe):
    """E_{m ~ q_lambda}[w_x f(m)] = E_{m ~ q(.|x)}[f(m)] and likewise for a (docs/methods.md §2.1)."""
    g = torch.Generator().manual_seed(7)
    n, lam = 200_000, 0.3
    x = torch.tensor([0.4, -0.2, 0.1, 0.3]).view(1, 4, 1, 1)
    a = torch.tensor([-0.3, 0.5, 0.2, -0.1]).view(1, 4, 1, 1)
    abar = 0.6
    gamma, sigma = torch.full((n, 1, 1, 1), math.sqrt(abar)), torch.full((n, 1, 1, 1), math.sqrt(1 - abar))
    eps = torch.randn(n, 4, 1, 1, generator=g)
    from_a = (torch.rand(n, 1, 1, 1, generator=g) < lam)
    m = torch.where(from_a, gamma * a + sigma * eps, gamma * x + sigma * eps)
    w_x, w_a = lethe.siss_weights(m, x.expand(n, -1, -1, -1), a.expand(n, -1, -1, -1), gamma, sigma, lam)
    assert w_x.double().mean().item() == pytest.approx(1.0, abs=0.01)
    assert w_a.double().mean().item() == pytest.approx(1.0, abs=0.02)
    first_moment_x = (w_x.view(n, 1) * m.view(n, 4)).double().mean(0)
    first_moment_a = (w_a.view(n, 1) * m.view(n, 4)).double().mean(0)
    assert torch.allclose(first_moment_x, (math.sqrt(abar) * x).view(4).double(), atol=0.01)
    assert torch.allclose(first_moment_a, (math.sqrt(abar) * a).view(4).double(), atol=0.02)


def test_siss_combine_rescales_the_forget_gradient_to_the_scaling_norm(lethe):
    g_x = [torch.randn(3, 4), torch.randn(5)]
    g_a = [torch.randn(3, 4), torch.randn(5)]
    out, norm_x, norm_a = lethe.siss_combine(g_x, g_a, 5.0)
    flat_a = torch.cat([t.flatten() for t in g_a])
    assert norm_a == pytest.approx(flat_a.norm().item(), rel=1e-6)
    for o, x_, a_ in zip(out, g_x, g_a):
        assert torch.allclose(o, x_ - 5.0 / flat_a.norm() * a_, atol=1e-6)
    zero, _, _ = lethe.siss_combine(g_x, [torch.zeros(3, 4), torch.zeros(5)], 5.0)
    assert all(torch.equal(o, x_) for o, x_ in zip(zero, g_x))  # nothing in the window: no rescale


def test_erasediff_combine_matches_reference(lethe):
    g_x = [torch.tensor([1.0, 0.0])]
    g_a = [torch.tensor([-1.0, 1.0])]  # <g_x, g_a> = -1, |g_a|^2 = 2: factor = eta + 0.5
    out, factor = lethe.erasediff_combine(g_x, g_a, 1e-3)
    assert factor == pytest.approx(0.501)
    assert torch.allclose(out[0], g_x[0] + 0.501 * g_a[0])
    out, factor = lethe.erasediff_combine(g_x, [torch.tensor([1.0, 0.0])], 1e-3)  # aligned: no correction
    assert factor == 0.0 and torch.equal(out[0], g_x[0])


def test_npo_loss_and_gradient_match_reference(lethe):
    g = torch.Generator().manual_seed(2)
    error = (torch.rand(8, generator=g) * 0.2).requires_grad_(True)
    reference = torch.rand(8, generator=g) * 0.2
    beta, beta_k = 0.1, 2500.0
    ours = lethe.npo_loss(error, reference, beta, beta_k)
    # L = -(2/beta) log sigmoid(beta k (e_theta - e_ref))  (docs/methods.md §4.2)
    expected = (-(2 / beta) * torch.nn.functional.logsigmoid(beta_k * (error - reference))).mean()
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)
    (g_ours,) = torch.autograd.grad(ours, error)
    # gradient = -2k sigmoid(-beta k (e - e_ref)) / B with k = beta_k / beta
    k = beta_k / beta
    g_closed = -2 * k * torch.sigmoid(-beta_k * (error - reference)).detach() / 8
    assert torch.allclose(g_ours, g_closed, rtol=1e-5)


def test_dpo_loss_and_gradient_match_reference(lethe):
    g = torch.Generator().manual_seed(3)
    e_w, e_l = (torch.rand(5, generator=g) * 0.1).requires_grad_(True), (torch.rand(5, generator=g) * 0.1).requires_grad_(True)
    r_w, r_l = torch.rand(5, generator=g) * 0.1, torch.rand(5, generator=g) * 0.1
    beta = 50.0
    loss, accuracy = lethe.dpo_loss(e_w, e_l, r_w, r_l, beta)
    z = -(beta / 2) * ((e_w - e_l) - (r_w - r_l))
    expected = -torch.nn.functional.logsigmoid(z).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert accuracy == pytest.approx((z > 0).float().mean().item())
    grads = torch.autograd.grad(loss, [e_w, e_l], retain_graph=True)
    ref = torch.autograd.grad(expected, [e_w, e_l])
    for a, b in zip(grads, ref):
        assert torch.allclose(a, b, rtol=1e-5)


def js_direct(d2):
    """Jensen-Shannon divergence between N(0,1) and N(sqrt(D2),1), integrated numerically."""
    mu = math.sqrt(d2)
    p = lambda v: scipy.stats.norm.pdf(v)
    q = lambda v: scipy.stats.norm.pdf(v, mu)
    def integrand(v):
        m = 0.5 * (p(v) + q(v))
        out = 0.0
        if p(v) > 0:
            out += 0.5 * p(v) * math.log(p(v) / m)
        if q(v) > 0:
            out += 0.5 * q(v) * math.log(q(v) / m)
        return out
    return scipy.integrate.quad(integrand, -12, 12 + mu, limit=200)[0]


def gaussian_f_divergence(name, d2, alpha=0.5):
    """D_f(N(0,1) || N(sqrt(d2),1)) by numerical integration of its definition (scipy), the
    reference for the closed forms: KL = D2/2; Hellinger = int (sqrt p - sqrt q)^2;
    chi2 = int p^2/q - 1; alpha = (1 - int p^a q^(1-a)) / (a (1-a))."""
    mu = math.sqrt(d2)
    p = lambda v: scipy.stats.norm.pdf(v)  # noqa: E731
    q = lambda v: scipy.stats.norm.pdf(v, mu)  # noqa: E731
    integrands = {
        "kl": lambda v: p(v) * (scipy.stats.norm.logpdf(v) - scipy.stats.norm.logpdf(v, mu)),
        "reverse_kl": lambda v: q(v) * (scipy.stats.norm.logpdf(v, mu) - scipy.stats.norm.logpdf(v)),
        "hellinger": lambda v: (math.sqrt(p(v)) - math.sqrt(q(v))) ** 2,
        "chi2": lambda v: math.exp(2 * scipy.stats.norm.logpdf(v) - scipy.stats.norm.logpdf(v, mu)),
        "alpha": lambda v: p(v) ** alpha * q(v) ** (1 - alpha),
    }
    value = scipy.integrate.quad(integrands[name], -14, 14 + 2 * mu, limit=400, epsabs=1e-13)[0]
    if name == "chi2":
        return value - 1
    if name == "alpha":
        return (1 - value) / (alpha * (1 - alpha))
    return value


# lethe's divergences take the per-sample mean squared error e of two equal-variance Gaussian
# predictions and tau: D2 = 2 e / tau; "mse" is tau times KL, i.e. e itself.
@pytest.mark.parametrize("tau", [1.0, 0.05, 3.0])
@pytest.mark.parametrize("name", ["mse", "kl", "reverse_kl", "hellinger", "chi2", "alpha"])
def test_f_divergences_match_their_integral_definitions(lethe, name, tau):
    error = torch.tensor([0.0, 0.003, 0.02, 0.1, 0.4], dtype=torch.float64)
    got = lethe.f_divergence(error.float(), name, tau)
    for e, value in zip(error.tolist(), got.tolist()):
        if name == "mse":
            expected = tau * gaussian_f_divergence("kl", 2 * e / tau)
        else:
            expected = gaussian_f_divergence(name, 2 * e / tau)
        assert value == pytest.approx(expected, rel=2e-5, abs=1e-6), (name, tau, e)


def test_js_matches_direct_integration(lethe):
    for q in (0.01, 0.1, 0.5, 2.0):
        got = lethe.f_divergence(torch.tensor([q]), "js", 1.0).item()
        assert got == pytest.approx(js_direct(2 * q), rel=1e-4, abs=1e-7), q


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "hellinger", "chi2", "alpha"])
def test_f_divergence_gradients_match_the_integrals_slope(lethe, name):
    """d D / d e from autograd against a central difference of the integral reference."""
    reference = js_direct if name == "js" else (lambda d2: gaussian_f_divergence(name, d2))
    h = 1e-4
    for e in (0.01, 0.1, 0.5):
        x = torch.tensor([e], dtype=torch.float32, requires_grad=True)
        (g,) = torch.autograd.grad(lethe.f_divergence(x, name, 1.0).sum(), x)
        slope = (reference(2 * (e + h)) - reference(2 * (e - h))) / (2 * h)
        assert g.item() == pytest.approx(slope, rel=2e-3), (name, e)


def test_js_slope_near_zero_is_a_quarter(lethe):
    q = torch.tensor([1e-3], requires_grad=True)
    (g,) = torch.autograd.grad(lethe.f_divergence(q, "js").sum(), q)
    assert g.item() == pytest.approx(0.25, rel=0.02)  # JS ~ D2/8 = q/4 near 0


def test_chi2_continues_linearly_past_its_knee(lethe):
    """exp(2q) - 1 up to 2q = 20, then the tangent there: value and slope continuous, the
    slope finite and non-zero far beyond (no overflow, no dead gradient)."""
    q = torch.tensor([9.999, 10.0, 10.001, 50.0, 1e4], dtype=torch.float64, requires_grad=True)
    value = lethe.f_divergence(q, "chi2", 1.0)
    (slope,) = torch.autograd.grad(value.sum(), q)
    knee = math.exp(20.0)
    assert value[0].item() == pytest.approx(math.exp(19.998) - 1, rel=1e-12)
    assert value[2].item() == pytest.approx(knee * (1 + 0.002) - 1, rel=1e-12)
    assert value[3].item() == pytest.approx(knee * 81 - 1, rel=1e-12)
    assert slope[0].item() == pytest.approx(2 * math.exp(19.998), rel=1e-12)
    assert slope[2:].tolist() == pytest.approx([2 * knee] * 3, rel=1e-12)
    assert torch.isfinite(lethe.f_divergence(torch.tensor([1e20]), "chi2", 1.0)).all()


def test_unknown_divergence_lists_the_known_ones(lethe):
    with pytest.raises(lethe.LetheError, match="known: mse, kl, reverse_kl, js"):
        lethe.f_divergence(torch.ones(1), "jensen")


def test_objective_registry_and_configs(lethe):
    names = lethe.objective_names()
    for expected in ["siss", "siss_no_is", "neggrad", "naive_deletion", "erasediff", "npo", "dpo", "f_divergence", "denoise"]:
        assert expected in names
    assert json.loads(lethe.objective_config("siss"))["lambda"] == 0.5
    with pytest.raises(lethe.LetheError, match="unknown key 'lamda'"):
        lethe.objective_config("siss", json.dumps({"lamda": 0.3}))
    with pytest.raises(lethe.LetheError, match=r"lambda: expected in \(0, 1\)"):
        lethe.objective_config("siss", json.dumps({"lambda": 1.5}))
