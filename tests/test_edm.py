"""reprobook.diffusion.edm against EDM's formulas, diffusers' EDM scheduler, the closed-form
probability-flow ODE of a Gaussian and the Bayes risk of the exact denoiser."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from reprobook.diffusion import (DDPMSchedule, EDMDenoiser, GaussianMixture, ToyDenoiser, ddpm_loss, edm_loss,
                                 euler_sample, exact_edm_denoiser, heun_sample, karras_sigmas, pf_ode_map,
                                 train_ddpm, train_edm)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest


class FixedNet(nn.Module):
    """A parameter-free stand-in for a network: F(u, label) = sin(u) + label, recording its inputs."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, u, label):
        self.calls.append((u.clone(), label.clone()))
        return torch.sin(u) + label.reshape((-1,) + (1,) * (u.ndim - 1))


def test_preconditioning_matches_edm_formulas_and_the_shifted_boundary_is_exact():
    sd, smin, scale = 0.5, 0.002, 3.0
    den = EDMDenoiser(FixedNet(), sd, smin, label_scale=scale).double()
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.3, 2.0, 80.0], dtype=torch.float64)
    out = den(x, sigma)
    for i, s in enumerate(sigma.tolist()):
        c_in, c_skip = 1 / math.sqrt(s**2 + sd**2), sd**2 / (s**2 + sd**2)
        c_out, c_noise = s * sd / math.sqrt(s**2 + sd**2), math.log(s) / 4
        torch.testing.assert_close(out[i], c_skip * x[i] + c_out * (torch.sin(c_in * x[i]) + scale * c_noise))
        # shifted (sampling-time) coefficients
        c_skip_s, c_out_s = sd**2 / ((s - smin) ** 2 + sd**2), (s - smin) * sd / math.sqrt(s**2 + sd**2)
        torch.testing.assert_close(den(x, sigma, shifted=True)[i],
                                   c_skip_s * x[i] + c_out_s * (torch.sin(c_in * x[i]) + scale * c_noise))
    # a scalar sigma broadcasts like one value per row
    torch.testing.assert_close(den(x, 0.3), den(x, torch.full((4,), 0.3, dtype=torch.float64)))
    # f(x, sigma_min) = x bit for bit, in float32 too, and even when the network returns garbage
    x32 = torch.randn(5, 2)
    assert torch.equal(EDMDenoiser(ToyDenoiser(2, 8), sd, smin)(x32, smin, shifted=True), x32)
    nan_net = EDMDenoiser(lambda u, label: torch.full_like(u, float("nan")), sd, smin)
    assert torch.equal(nan_net(x32, torch.full((5,), smin), shifted=True), x32)


def test_preconditioning_and_euler_steps_match_diffusers_edm_euler_scheduler():
    from diffusers import EDMEulerScheduler

    ref = EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, rho=7.0)
    ref.set_timesteps(12)
    np.testing.assert_allclose(karras_sigmas(12).numpy(), ref.sigmas.numpy(), rtol=1e-5, atol=1e-7)
    net = FixedNet()
    den = EDMDenoiser(net, 0.5, 0.002)
    x0 = 80.0 * torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    sample = x0.clone()
    for t in ref.timesteps:  # diffusers' timesteps are c_noise = ln(sigma) / 4
        model_in = ref.scale_model_input(sample, t)
        sample = ref.step(net(model_in, t.expand(6)), t, sample).prev_sample
    ours = euler_sample(den, karras_sigmas(12), x0)
    torch.testing.assert_close(ours, sample, rtol=1e-4, atol=1e-4)


def test_karras_sigmas_endpoints_and_spacing():
    s = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert s.dtype == torch.float64 and len(s) == 19
    assert float(s[0]) == 80.0 and float(s[-2]) == 0.002 and float(s[-1]) == 0.0
    assert torch.all(s[1:] < s[:-1])
    # evenly spaced in sigma^(1/rho)
    root = s[:-1] ** (1 / 7)
    np.testing.assert_allclose(np.diff(root.numpy()), (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 17, rtol=1e-9)
    assert karras_sigmas(1).tolist() == [80.0, 0.0]


def _gaussian_flow(mu, s, x, sigma_from, sigma_to):
    """The probability-flow ODE of N(mu, s^2) data in closed form: x - mu scales like sqrt(s^2 + sigma^2)."""
    return mu + math.sqrt(s**2 + sigma_to**2) / math.sqrt(s**2 + sigma_from**2) * (x - mu)


def test_exact_denoiser_of_one_gaussian_is_the_linear_posterior_mean():
    mu, s = 1.0, 0.3
    den = exact_edm_denoiser(GaussianMixture.isotropic([[mu, -mu]], s))
    x = torch.randn(5, 2, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.1, 1.0, 10.0, 80.0], dtype=torch.float64)
    means = torch.tensor([mu, -mu], dtype=torch.float64)
    expected = means + (s**2 / (s**2 + sigma**2))[:, None] * (x - means)
    torch.testing.assert_close(den(x, sigma), expected)
    assert den(x.float(), 0.5).dtype == torch.float32
    with pytest.raises(ValueError, match="dimension"):
        den(torch.zeros(2, 3), 1.0)


def test_heun_and_euler_converge_to_the_closed_form_ode_map_at_orders_two_and_one():
    mu, s = 1.0, 0.3
    den = exact_edm_denoiser(GaussianMixture.isotropic([[mu]], s))
    x = torch.linspace(-150, 150, 9, dtype=torch.float64)[:, None]
    target = _gaussian_flow(mu, s, x, 80.0, 0.002)
    errors = {}
    for n in (16, 32, 64):
        grid = karras_sigmas(n)[:-1]  # stop at sigma_min: no final jump to 0
        errors[n] = [float((solve(den, grid, x) - target).abs().max()) for solve in (euler_sample, heun_sample)]
    for coarse, fine in ((16, 32), (32, 64)):
        euler_ratio, heun_ratio = errors[coarse][0] / errors[fine][0], errors[coarse][1] / errors[fine][1]
        assert 1.6 < euler_ratio < 2.6, errors  # first order: halving the step halves the error
        assert heun_ratio > 3.3, errors  # second order: a quarter
    assert errors[64][1] < errors[64][0] / 8
    # the whole way to 0 (the last step is Euler: D(x, sigma_min)) with many steps
    full = heun_sample(den, karras_sigmas(256), x)
    torch.testing.assert_close(full, _gaussian_flow(mu, s, x, 80.0, 0.0), rtol=0, atol=2e-4)


def test_pf_ode_map_per_row_starting_levels():
    mu, s = -0.5, 0.4
    den = exact_edm_denoiser(GaussianMixture.isotropic([[mu]], s))
    x = torch.tensor([[3.0], [0.2], [-1.0], [2.0], [5.0]], dtype=torch.float64)
    start = torch.tensor([80.0, 2.0, 0.3, 0.002, 0.001], dtype=torch.float64)
    out = pf_ode_map(den, x, start, n_steps=256)
    expected = torch.cat([_gaussian_flow(mu, s, x[i], float(start[i]), 0.0) for i in range(5)])[:, None]
    torch.testing.assert_close(out[:3], expected[:3], rtol=0, atol=1e-5)
    # at or below sigma_min: exactly one denoising step, off the true map by O(sigma^2 / s^2)
    torch.testing.assert_close(out[3:], den(x[3:], start[3:]))
    torch.testing.assert_close(out[3:], expected[3:], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="sigma_from"):
        pf_ode_map(den, x, torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0]))


def test_heun_samples_of_a_two_mode_mixture_follow_its_density():
    gm = GaussianMixture.isotropic([[-1.0], [0.8]], 0.25, [0.3, 0.7])
    z = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = heun_sample(exact_edm_denoiser(gm), karras_sigmas(32), 80.0 * z)

    def mixture_cdf(u):
        return 0.3 * stats.norm.cdf(u, -1.0, 0.25) + 0.7 * stats.norm.cdf(u, 0.8, 0.25)

    assert stats.kstest(x[:, 0].numpy(), mixture_cdf).pvalue > 0.01
    # ...while one Euler step collapses everything onto the posterior mean at sigma_max, the data mean
    one = euler_sample(exact_edm_denoiser(gm), karras_sigmas(1), 80.0 * z)
    assert float(one.std()) < 0.05 and float(one.mean()) == pytest.approx(0.3 * -1.0 + 0.7 * 0.8, abs=0.02)


def test_edm_loss_of_the_exact_denoiser_is_the_bayes_risk():
    # x0 ~ N(mu, s^2 I): E||x0 - E[x0|x_sigma]||^2 per dimension is s^2 sigma^2 / (s^2 + sigma^2).
    mu, s, sd, sigma = 0.4, 0.3, 0.5, 0.7
    gm = GaussianMixture.isotropic([[mu, mu, mu]], s)
    den = exact_edm_denoiser(gm)
    x0, _ = gm.sample(200_000, torch.Generator().manual_seed(0))
    gen = lambda: torch.Generator().manual_seed(1)
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    risk = weight * s**2 * sigma**2 / (s**2 + sigma**2)
    loss = float(edm_loss(den, x0, p_mean=math.log(sigma), p_std=0.0, generator=gen(), sigma_data=sd))
    assert loss == pytest.approx(risk, rel=0.01)
    worse = float(edm_loss(lambda x, t: den(x, t) + 0.05, x0, math.log(sigma), 0.0, gen(), sigma_data=sd))
    assert worse > loss * 1.01
    # with sigma_data = s the weight makes the risk exactly 1 at every sigma, whatever its distribution
    assert float(edm_loss(den, x0, -1.2, 1.2, gen(), sigma_data=s)) == pytest.approx(1.0, rel=0.01)


def test_train_edm_approaches_the_bayes_risk():
    mu, s, sd = 1.0, 0.3, 0.5
    gen = torch.Generator().manual_seed(0)
    sigma = torch.exp(torch.randn(400_000, generator=gen, dtype=torch.float64) * 1.2 - 1.2)
    risk = float(((sigma**2 + sd**2) / (sigma * sd) ** 2 * s**2 * sigma**2 / (s**2 + sigma**2)).mean())
    torch.manual_seed(0)
    den = EDMDenoiser(ToyDenoiser(1, 32, 2), sd, label_scale=100.0)
    data = mu + s * torch.randn(5000, 1, generator=gen)
    with torch.no_grad():
        untrained = float(edm_loss(den, data, generator=torch.Generator().manual_seed(1)))
    losses = train_edm(den, data, steps=300, batch_size=512, lr=3e-3, p_mean=-1.2, p_std=1.2)
    assert len(losses) == 300 and not den.training
    assert untrained > 1.5 * risk
    # the Bayes risk is a floor no denoiser beats in expectation; the trained one gets close
    assert 0.97 * risk < np.mean(losses[-60:]) < 1.08 * risk


def test_train_ddpm_through_the_shared_loop_is_bitwise_the_original_loop():
    schedule = DDPMSchedule.linear(1000, 1e-3, 0.2)
    data = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))

    def original(model):  # train_ddpm as it was before the loop was shared
        gen = torch.Generator().manual_seed(4)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 40)
        model.train()
        losses = []
        for _ in range(40):
            idx = torch.randint(0, len(data), (64,), generator=gen)
            loss = ddpm_loss(model, data[idx], schedule, gen, 400)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        return losses

    runs = []
    for train in (original, lambda m: train_ddpm(m, data, schedule, steps=40, batch_size=64, cosine_decay=True,
                                                 max_step=400, seed=4)):
        torch.manual_seed(1)
        model = ToyDenoiser(2, 16, 2)
        runs.append((train(model), torch.cat([p.detach().flatten() for p in model.parameters()])))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_on_step_runs_in_eval_mode_and_training_resumes():
    den = EDMDenoiser(ToyDenoiser(1, 8, 1))
    seen = []
    train_edm(den, torch.randn(50, 1), steps=4, batch_size=8, on_step=lambda i: seen.append((i, den.training)))
    assert seen == [(1, False), (2, False), (3, False), (4, False)] and not den.training


def test_edm_arguments_are_checked():
    for bad in [dict(n_steps=0), dict(sigma_min=0.0), dict(sigma_min=1.0, sigma_max=1.0), dict(rho=0.0)]:
        with pytest.raises(ValueError):
            karras_sigmas(**{"n_steps": 5, **bad})
    with pytest.raises(ValueError, match="sigma_data"):
        EDMDenoiser(ToyDenoiser(1, 8), sigma_data=0.0)
    den = EDMDenoiser(ToyDenoiser(1, 8))
    with pytest.raises(ValueError, match="shape"):
        den(torch.zeros(3, 1), torch.ones(2))
    x = torch.zeros(3, 1)
    with pytest.raises(ValueError, match="increase"):
        heun_sample(den, torch.tensor([1.0, 2.0, 0.0]), x)
    with pytest.raises(ValueError, match="last level may be 0"):
        euler_sample(den, torch.tensor([2.0, 0.0, 0.0]), x)
    with pytest.raises(ValueError, match="p_std"):
        edm_loss(den, x, p_std=-1.0)
    with pytest.raises(ValueError, match="sigma_data"):
        edm_loss(lambda x, s: x, x)
    with pytest.raises(ValueError, match="NaN"):
        train_edm(den, torch.tensor([[0.0], [float("inf")]]), steps=1, batch_size=2)
    with pytest.raises(ValueError, match="empty"):
        train_edm(den, torch.zeros(0, 1), steps=1, batch_size=2)
    with pytest.raises(ValueError, match="steps"):
        train_edm(den, torch.zeros(3, 1), steps=0, batch_size=2)
