"""The variational f-divergence objective's pieces (docs/methods.md §5.2) against references:
each divergence's activation/conjugate pair against the f-GAN formulas written literally, the
variational bound at the optimal critic against the divergence of two Gaussians integrated
numerically (values, and the model-side gradient by the envelope theorem), and the critic
network against PyTorch's own convolutions with nn.utils.spectral_norm."""
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

EPS = 1e-6  # the f-divergence paper's epsilon inside its conjugates

# f-GAN (Nowozin et al. 2016, table 2) as the f-divergence paper's code states them: the output
# activation g_f and the convex conjugate f*, applied in sequence.
LITERAL = {
    "kl": (lambda v: v, lambda t: torch.exp(t - 1.0)),
    "reverse_kl": (lambda v: -torch.exp(-v), lambda t: -1.0 - torch.log(-t + EPS)),
    "hellinger": (lambda v: 1.0 - torch.exp(-v), lambda t: t / (1.0 - t + EPS)),
    "js": (lambda v: math.log(2.0) + torch.nn.functional.logsigmoid(v), lambda t: -torch.log(2.0 - torch.exp(t) + EPS)),
    "chi2": (lambda v: v, lambda t: 0.25 * t**2 + t),
    "tv": (lambda v: 0.5 * torch.tanh(v), lambda t: t),
}

# The generator f of each divergence (D_f(P||Q) = E_Q f(p/q)) and the logits of the optimal
# critic T*(x) = f'(p(x)/q(x)) = g_f(v*), as functions of log u = log p - log q.
GENERATOR = {
    "kl": lambda u: u * np.log(u),
    "reverse_kl": lambda u: -np.log(u),
    "hellinger": lambda u: (np.sqrt(u) - 1.0) ** 2,
    "js": lambda u: u * np.log(u) - (u + 1.0) * np.log((u + 1.0) / 2.0),
    "chi2": lambda u: (u - 1.0) ** 2,
    "tv": lambda u: 0.5 * np.abs(u - 1.0),
}
OPTIMAL_LOGITS = {
    "kl": lambda log_u: 1.0 + log_u,
    "reverse_kl": lambda log_u: log_u,
    "hellinger": lambda log_u: 0.5 * log_u,
    "js": lambda log_u: log_u,
    "chi2": lambda log_u: 2.0 * (torch.exp(log_u) - 1.0),
    "tv": lambda log_u: 40.0 * log_u,  # tanh saturates: T* = sign(u - 1) / 2 up to a thin band at u = 1
}
NAMES = list(LITERAL)

P = (0.0, 1.0)  # mean, std of P (the frozen anchor prediction's role)
Q = (0.7, 1.2)  # of Q (the trained model's); unequal variances so that KL and reverse KL differ


def test_variational_divergences_are_the_six(lethe):
    assert lethe.variational_divergence_names() == ["kl", "reverse_kl", "js", "hellinger", "chi2", "tv"]


@pytest.mark.parametrize("name", NAMES)
def test_pairs_match_the_literal_formulas_values_and_gradients(lethe, name):
    v = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64, requires_grad=True)
    activation, conjugate = LITERAL[name]
    ours_t, ours_c = lethe.critic_activation(v, name), lethe.critic_conjugate(v, name)
    ref_t, ref_c = activation(v), conjugate(activation(v))
    assert torch.allclose(ours_t, ref_t, rtol=1e-12, atol=1e-12)
    assert torch.allclose(ours_c, ref_c, rtol=1e-4, atol=2e-5)  # the literal form carries EPS
    for ours, ref in ((ours_t, ref_t), (ours_c, ref_c)):
        (g_ours,) = torch.autograd.grad(ours.sum(), v)
        (g_ref,) = torch.autograd.grad(ref.sum(), v)
        assert torch.allclose(g_ours, g_ref, rtol=1e-4, atol=2e-5), name


def gaussian_divergence(name, q_mean):
    """D_f(P || Q) by numerical integration of E_Q f(p/q) (scipy)."""
    p = scipy.stats.norm(*P)
    q = scipy.stats.norm(q_mean, Q[1])

    def integrand(x):
        return q.pdf(x) * GENERATOR[name](math.exp(p.logpdf(x) - q.logpdf(x)))

    return scipy.integrate.quad(integrand, -14, 14, points=[0.0, q_mean], limit=400, epsabs=1e-12)[0]


def stratified(mean, std, n=400_000):
    """Samples at the normal's quantiles (i + 1/2) / n: Monte Carlo without its noise."""
    z = torch.from_numpy(scipy.stats.norm.ppf((np.arange(n) + 0.5) / n))
    return mean + std * z


def log_ratio(x, q_mean):
    def log_normal(x, mean, std):
        return -0.5 * ((x - mean) / std) ** 2 - math.log(std)

    return log_normal(x, *P) - log_normal(x, q_mean, Q[1])


def as_logits(v):
    return v.view(-1, 1, 1, 1)  # [N, 1, 1, 1]: one patch per sample


@pytest.mark.parametrize("name", NAMES)
def test_the_bound_at_the_optimal_critic_is_the_divergence(lethe, name):
    """sup_T E_P[T] - E_Q[f*(T)] = D_f(P||Q), attained at T* = f'(p/q): -critic_loss there."""
    x_p, x_q = stratified(*P), stratified(*Q)
    v_p = OPTIMAL_LOGITS[name](log_ratio(x_p, Q[0]))
    v_q = OPTIMAL_LOGITS[name](log_ratio(x_q, Q[0]))
    ones = torch.ones(x_p.numel(), 1, 1, 1, dtype=torch.float64)
    bound = -lethe.critic_loss(as_logits(v_p), as_logits(v_q), ones, name).item()
    assert bound == pytest.approx(gaussian_divergence(name, Q[0]), rel=2e-3, abs=2e-4), name
    # A critic away from the optimum gives less (it is a lower bound).
    worse = -lethe.critic_loss(as_logits(0.5 * v_p), as_logits(0.5 * v_q), ones, name).item()
    assert worse < bound


@pytest.mark.parametrize("name", [n for n in NAMES if n != "tv"])  # tv's T* is flat: its slope lives on a set of measure 0
def test_the_generator_gradient_is_the_divergences_slope(lethe, name):
    """d/d mu_Q of the generator loss -E_Q f*(T*(x_q)) with the critic held fixed equals
    d D_f / d mu_Q (the envelope theorem), against a central difference of the integral."""
    mean = torch.tensor(Q[0], dtype=torch.float64, requires_grad=True)
    x_q = mean + Q[1] * stratified(0.0, 1.0)
    v_q = OPTIMAL_LOGITS[name](log_ratio(x_q, Q[0]))  # T* of the current Q, as a fixed function of x
    loss = lethe.generator_loss(as_logits(v_q), name).mean()
    (slope,) = torch.autograd.grad(loss, mean)
    h = 1e-4
    expected = (gaussian_divergence(name, Q[0] + h) - gaussian_divergence(name, Q[0] - h)) / (2 * h)
    assert slope.item() == pytest.approx(expected, rel=3e-3), name


def test_critic_loss_is_a_masked_mean_over_patches(lethe):
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 1, 3, 3, generator=g), torch.randn(2, 1, 3, 3, generator=g)
    mask = torch.zeros(2, 1, 12, 12)
    mask[0, :, :8, :] = 1.0  # nearest resize to 3x3: rows 0 and 1 of sample 0
    gap = lethe.critic_conjugate(fake, "js") - lethe.critic_activation(real, "js")
    expected = gap[0, :, :2, :].sum() / (6 + EPS)
    assert lethe.critic_loss(real, fake, mask, "js").item() == pytest.approx(expected.item(), rel=1e-6)
    assert lethe.generator_loss(fake, "js").tolist() == pytest.approx(
        (-lethe.critic_conjugate(fake, "js")).flatten(1).mean(1).tolist())


def test_an_unknown_divergence_lists_the_variational_ones(lethe):
    with pytest.raises(lethe.LetheError, match="unknown 'mse'; known: kl, reverse_kl, js, hellinger, chi2, tv"):
        lethe.critic_conjugate(torch.zeros(1), "mse")


def reference_critic(input_channels, channels, layers):
    """The critic as docs/methods.md §5.2 describes it, in PyTorch modules."""
    sn, conv = torch.nn.utils.spectral_norm, torch.nn.Conv2d
    modules, width = [], channels
    modules += [sn(conv(input_channels, channels, 4, 2, 1)), torch.nn.LeakyReLU(0.2)]
    for n in range(1, layers + 1):
        out = channels * min(2**n, 8)
        modules += [sn(conv(width, out, 4, 2 if n < layers else 1, 1)), torch.nn.LeakyReLU(0.2)]
        width = out
    modules.append(conv(width, 1, 4, 1, 1))
    return torch.nn.Sequential(*modules)


def load_reference(reference, state):
    convs = [m for m in reference if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len({k.split(".")[0] for k in state})
    with torch.no_grad():
        for i, m in enumerate(convs):
            m.bias.copy_(state[f"{i}.bias"])
            if hasattr(m, "weight_orig"):
                m.weight_orig.copy_(state[f"{i}.weight"])
                m.weight_u.copy_(state[f"{i}.u"])
                m.weight_v.copy_(state[f"{i}.v"])
            else:
                m.weight.copy_(state[f"{i}.weight"])
    return convs


def test_the_critic_matches_pytorch_spectral_norm_convolutions(lethe):
    g = torch.Generator().manual_seed(1)
    x, mask = torch.randn(2, 3, 32, 32, generator=g), (torch.rand(2, 1, 32, 32, generator=g) > 0.3).float()
    critic = lethe.PatchCritic(4, channels=8, layers=3, seed=5)
    reference = reference_critic(4, 8, 3)
    convs = load_reference(reference, critic.state())
    reference.train()
    for _ in range(2):  # each training forward takes one power iteration, in both
        ours = critic.forward(x, mask, True)
        ref = reference(torch.cat([x, mask], 1))
        assert ours.shape == ref.shape == (2, 1, 2, 2)
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)
    state = critic.state()
    for i, m in enumerate(convs[:-1]):
        assert torch.allclose(state[f"{i}.u"], m.weight_u, atol=1e-6)
        assert torch.allclose(state[f"{i}.v"], m.weight_v, atol=1e-6)
    # Gradients reach the weights through W / sigma(W) in a training forward.
    weights = critic.parameters()
    (ours.square().sum()).backward()
    (ref.square().sum()).backward()
    for i, m in enumerate(convs):
        ref_grad = (m.weight_orig if hasattr(m, "weight_orig") else m.weight).grad
        assert torch.allclose(weights[2 * i].grad, ref_grad, rtol=1e-4, atol=1e-6), i
        assert torch.allclose(weights[2 * i + 1].grad, m.bias.grad, rtol=1e-4, atol=1e-6), i
    # A frozen forward is the eval-mode one: stored u, v; gradients reach the input only.
    reference.eval()
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = critic.forward(x_ours, mask, False)
    ref = reference(torch.cat([x_ref, mask], 1))
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)
    ours.sum().backward()
    ref.sum().backward()
    assert torch.allclose(x_ours.grad, x_ref.grad, rtol=1e-4, atol=1e-7)
    assert torch.allclose(critic.state()["0.u"], convs[0].weight_u)  # no update


def test_a_too_small_input_names_the_critic_layers(lethe):
    critic = lethe.PatchCritic(2, channels=4, layers=3)
    with pytest.raises(lethe.LetheError, match="needs at least 24x24.*fewer critic_layers"):
        critic.forward(torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8), True)
