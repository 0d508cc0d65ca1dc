"""reprobook.diffusion against closed forms, quadrature, finite differences and diffusers."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from reprobook.diffusion import (DDPMSchedule, GaussianMixture, ToyDenoiser, UNetDenoiser, ancestral_sample,
                                 ancestral_step, ddpm_loss, predicted_x0, train_ddpm)

TOY = DDPMSchedule.linear(1000, 1e-3, 0.2)


def test_schedule_products_and_pure_noise_step():
    b = np.linspace(1e-3, 0.2, 1000)
    np.testing.assert_allclose(TOY.alpha_bars.numpy(), np.cumprod(1 - b), rtol=1e-12)
    t = TOY.first_pure_noise_step(1e-3)
    assert math.sqrt(np.prod(1 - b[: t + 1])) < 1e-3 <= math.sqrt(np.prod(1 - b[:t]))
    # about 64% of the steps of this schedule are pure noise (the spec says ~70%)
    assert 0.6 < (TOY.alpha_bars.sqrt() < 1e-3).double().mean() < 0.7


@pytest.mark.parametrize("bad", [dict(steps=1), dict(beta_start=0.0), dict(beta_start=0.3, beta_end=0.2),
                                 dict(beta_end=1.0)])
def test_schedule_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        DDPMSchedule.linear(**{"steps": 10, **bad})


def test_ancestral_step_matches_diffusers_ddpm_scheduler():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-3, beta_end=0.2, beta_schedule="linear",
                        variance_type="fixed_large", clip_sample=False, prediction_type="epsilon")
    ref.set_timesteps(1000)
    ours = DDPMSchedule(ref.betas.double())  # diffusers builds its betas in float32
    gen = torch.Generator().manual_seed(0)
    # diffusers computes in float32, where 1/sqrt(alpha_bar) overflows beyond t ~ 550 on this
    # schedule; compare where its arithmetic is finite (our chains start at t = 419).
    for t in [419, 300, 60, 9, 1, 0]:
        x, eps = torch.randn(64, 3, generator=gen), torch.randn(64, 3, generator=gen)
        out = ref.step(eps, t, x, generator=torch.Generator().manual_seed(t))
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t)) if t > 0 else None
        np.testing.assert_allclose(ancestral_step(ours, x, eps, t, noise), out.prev_sample, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(predicted_x0(ours, x, eps, t), out.pred_original_sample, rtol=1e-4, atol=1e-4)


def _mixture_1d():
    return GaussianMixture.isotropic([[-1.0], [0.5], [2.0]], 0.3, [0.2, 0.5, 0.3])


@pytest.mark.parametrize("a,sigma", [(1.0, 0.05), (0.8, 0.6), (0.1, 0.99), (1.0, 2.5)])
def test_posterior_mean_matches_quadrature(a, sigma):
    gm = _mixture_1d()
    x0_density = lambda u: float(torch.exp(gm.log_prob(torch.tensor([[u]], dtype=torch.float64))))
    for xt in [-1.3, 0.0, 0.9, 2.4]:
        lik = lambda u: stats.norm.pdf(xt, a * u, sigma) * x0_density(u)
        num = integrate.quad(lambda u: u * lik(u), -6, 8, points=[-1, 0.5, 2], limit=200)[0]
        den = integrate.quad(lik, -6, 8, points=[-1, 0.5, 2], limit=200)[0]
        ours = float(gm.posterior_mean(torch.tensor([[xt]]), a, sigma))
        assert ours == pytest.approx(num / den, rel=1e-6, abs=1e-8)


def test_posterior_mean_obeys_tweedie_in_2d():
    # a E[x0 | x_t] = x_t + sigma^2 grad log p_t(x_t), p_t the mixture of (a mu_k, a^2 s^2 + sigma^2).
    gm = GaussianMixture.isotropic([[0, 0], [1, 0.5], [-0.5, 1.5]], 0.2)
    a, sigma = 0.7, 0.5
    noised = GaussianMixture(gm.means * a, (a**2 * gm.stds**2 + sigma**2).sqrt(), gm.weights)
    x = torch.tensor([[0.3, 0.2], [-0.4, 1.0], [1.5, -0.2]], dtype=torch.float64)
    h = 1e-5
    grad = torch.stack([(noised.log_prob(x + h * e) - noised.log_prob(x - h * e)) / (2 * h)
                        for e in torch.eye(2, dtype=torch.float64)], 1)
    np.testing.assert_allclose(a * gm.posterior_mean(x, a, sigma), x + sigma**2 * grad, rtol=1e-7, atol=1e-8)


def test_log_prob_matches_scipy():
    gm = GaussianMixture.isotropic([[0, 0], [1, 0.5]], 0.3, [0.4, 0.6])
    x = torch.randn(5, 2, dtype=torch.float64)
    ref = np.log(0.4 * stats.multivariate_normal.pdf(x, [0, 0], 0.09) + 0.6 * stats.multivariate_normal.pdf(x, [1, 0.5], 0.09))
    np.testing.assert_allclose(gm.log_prob(x), ref, rtol=1e-10)


def test_single_gaussian_posterior_mean_is_the_linear_closed_form():
    mu, s, a, sigma = 1.5, 0.4, 0.6, 0.8
    gm = GaussianMixture.isotropic([[mu]], s)
    x = torch.linspace(-3, 3, 7)[:, None].double()
    expected = mu + a * s**2 / (a**2 * s**2 + sigma**2) * (x - a * mu)
    np.testing.assert_allclose(gm.posterior_mean(x, a, sigma), expected, rtol=1e-12)


def test_ddpm_loss_of_the_exact_denoiser_is_the_closed_form_minimum():
    # Data N(0, s^2): the best possible loss at t is Var(eps | x_t) = a^2 s^2 / (a^2 s^2 + sigma^2).
    s = 0.5
    gm = GaussianMixture.isotropic([[0.0]], s)
    schedule = DDPMSchedule.linear(200, 1e-3, 0.05)
    a2 = schedule.alpha_bars
    optimum = float((a2 * s**2 / (a2 * s**2 + 1 - a2)).mean())
    x0 = torch.randn(400_000, 1, generator=torch.Generator().manual_seed(0)).double() * s
    loss = float(ddpm_loss(gm.eps_model(schedule), x0, schedule, torch.Generator().manual_seed(1)))
    assert loss == pytest.approx(optimum, rel=0.02)
    worse = float(ddpm_loss(lambda x, t: 0.9 * gm.eps_model(schedule)(x, t), x0, schedule, torch.Generator().manual_seed(1)))
    assert worse > loss * 1.005


def test_sampler_with_the_exact_gaussian_denoiser_matches_the_linear_recursion():
    # For Gaussian data the exact eps-model is affine in x_t, so the chain is x_{t-1} = c x_t + d + sqrt(beta) z
    # and the final mean and variance follow a scalar recursion.
    mu, s = 1.0, 0.3
    schedule = DDPMSchedule.linear(300, 1e-3, 0.06)
    gm = GaussianMixture.isotropic([[mu]], s)
    m, v = 0.0, 1.0
    for t in range(schedule.steps - 1, -1, -1):
        ab, beta = float(schedule.alpha_bars[t]), float(schedule.betas[t])
        a, sig = math.sqrt(ab), math.sqrt(1 - ab)
        k = (1 - a * a * s * s / (a * a * s * s + sig * sig)) / sig  # eps = k (x - a mu)
        c = (1 - beta / sig * k) / math.sqrt(1 - beta)
        d = (beta / sig * k * a * mu) / math.sqrt(1 - beta)
        m, v = c * m + d, c * c * v + (beta if t > 0 else 0.0)
    out = ancestral_sample(gm.eps_model(schedule), schedule, 100_000, (1,), keep_last=5, seed=3)
    assert float(out.x.mean()) == pytest.approx(m, abs=4 * math.sqrt(v / 1e5))
    assert float(out.x.var()) == pytest.approx(v, rel=0.02)
    # The last x0-prediction (t = 0) is the sample itself.
    np.testing.assert_allclose(out.x0_trajectory[-1], out.x, rtol=1e-5, atol=1e-6)
    assert out.x0_trajectory.shape == (5, 100_000, 1)


def test_sampler_chunks_and_seeds_are_reproducible_and_arguments_checked():
    gm = _mixture_1d()
    model = gm.eps_model(TOY)
    a = ancestral_sample(model, TOY, 50, (1,), start_step=400, seed=1)
    b = ancestral_sample(model, TOY, 50, (1,), start_step=400, seed=1)
    torch.testing.assert_close(a.x, b.x)
    assert ancestral_sample(model, TOY, 50, (1,), start_step=400, batch_size=20, seed=1).x.shape == (50, 1)
    for bad in [dict(start_step=0), dict(start_step=1001), dict(keep_last=401, start_step=400), dict(n=0)]:
        with pytest.raises(ValueError):
            ancestral_sample(model, TOY, **{"n": 5, "sample_shape": (1,), **bad})


def test_starting_late_in_the_pure_noise_region_changes_nothing_measurable():
    gm = _mixture_1d()
    model = gm.eps_model(TOY)
    start = TOY.first_pure_noise_step(1e-4) + 1
    full = ancestral_sample(model, TOY, 20_000, (1,), seed=5).x
    late = ancestral_sample(model, TOY, 20_000, (1,), start_step=start, seed=6).x
    assert stats.ks_2samp(full[:, 0].numpy(), late[:, 0].numpy()).pvalue > 0.01


def test_toy_denoiser_learns_the_gaussian_optimum_and_weight_sharing_shares():
    shared, separate = ToyDenoiser(1, 32, 3, True), ToyDenoiser(1, 32, 3, False)
    n_block = sum(p.numel() for p in separate.blocks[0].parameters())
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters()) == 2 * n_block
    assert shared.blocks[0] is shared.blocks[2]
    s = 0.5
    schedule = DDPMSchedule.linear(100, 1e-3, 0.1)
    a2 = schedule.alpha_bars
    optimum = float((a2 * s**2 / (a2 * s**2 + 1 - a2)).mean())
    torch.manual_seed(0)
    data = torch.randn(20_000, 1) * s
    losses = train_ddpm(shared, data, schedule, steps=400, batch_size=512, lr=3e-3)
    late = np.mean(losses[-100:])
    # the optimum is the Bayes risk: no predictor beats it in expectation, a trained one gets close
    assert 0.95 * optimum < late < 1.1 * optimum


def test_training_rejects_bad_data():
    model = ToyDenoiser(1, 8)
    with pytest.raises(ValueError, match="NaN"):
        train_ddpm(model, torch.tensor([[0.0], [float("nan")]]), TOY, steps=1, batch_size=2)
    with pytest.raises(ValueError, match="empty"):
        train_ddpm(model, torch.zeros(0, 1), TOY, steps=1, batch_size=2)
    with pytest.raises(ValueError, match="steps"):
        train_ddpm(model, torch.zeros(3, 1), TOY, steps=0, batch_size=2)


def test_unet_denoiser_shapes_and_size_check():
    net = UNetDenoiser(16, 1, (8, 16))
    x = torch.randn(2, 1, 16, 24)
    assert net(x, torch.tensor([3, 500])).shape == x.shape
    with pytest.raises(ValueError, match="divisible"):
        UNetDenoiser(18, 1, (8, 16, 16))


def test_mixture_rejects_bad_parameters():
    with pytest.raises(ValueError, match="std"):
        GaussianMixture.isotropic([[0.0]], 0.0)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture.isotropic([[0.0], [1.0]], 1.0, [0.5, 0.6])


def test_a_diverging_chain_is_an_error_not_nan():
    # A model whose noise predictions point the wrong way: every step of the steep schedule
    # multiplies x by (1 + beta_t / sqrt(1 - alpha_bar_t)) / sqrt(alpha_t), about 1.2 late in the
    # chain, and float32 overflows long before t = 0.
    schedule = DDPMSchedule.linear(1000, 1e-3, 0.2)
    with pytest.raises(FloatingPointError, match="not finite"):
        ancestral_sample(lambda x, t: -x, schedule, 8, (2,))


def test_toy_training_is_bitwise_reproducible_on_two_threads():
    # nbval compares the chapter's printed numbers across runs: training must not depend on
    # the order in which threads sum gradients.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        schedule = DDPMSchedule.linear(1000, 1e-3, 0.2)
        data = torch.randn(5000, 1)
        params = []
        for _ in range(2):
            torch.manual_seed(0)
            model = ToyDenoiser(1, 64, 3, True)
            train_ddpm(model, data, schedule, steps=150, batch_size=1024, max_step=420)
            params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        assert torch.equal(params[0], params[1])
    finally:
        torch.set_num_threads(threads)


def test_ema_in_the_shared_loop_matches_the_hand_recursion_and_changes_nothing_else():
    """A scalar weight w with loss w * 1 under SGD: w_k = w_0 - k lr; the EMA by hand is
    e_1 = w_1, e_k = d e_(k-1) + (1 - d) w_k."""
    from reprobook.diffusion import ema_decay_for_halflife, ema_model, train_minibatches

    def run(with_ema: bool):
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.constant_(model.weight, 2.0)
        ema = ema_model(model, 0.9) if with_ema else None
        seen = []
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def on_step(step):
            if ema is not None:
                seen.append(ema.module.weight.item())

        losses = train_minibatches(model, torch.zeros(4, 1), lambda batch, gen, _: model.weight.sum(), opt,
                                   steps=5, batch_size=2, on_step=on_step, ema=ema)
        return model, ema, seen, losses

    model, ema, seen, losses = run(True)
    weights = [2.0 - 0.1 * k for k in range(1, 6)]
    expected = [weights[0]]
    for w in weights[1:]:
        expected.append(0.9 * expected[-1] + 0.1 * w)
    assert seen == pytest.approx(expected, abs=1e-6)  # updated before on_step sees it
    assert model.weight.item() == pytest.approx(weights[-1], abs=1e-6)
    assert ema(torch.ones(1, 1)).item() == pytest.approx(expected[-1], abs=1e-6)  # callable like the model
    assert not ema.module.weight.requires_grad
    plain, _, _, plain_losses = run(False)  # the training itself is the same without an EMA
    assert plain_losses == losses and torch.equal(plain.weight, model.weight)
    assert ema_decay_for_halflife(10) ** 10 == pytest.approx(0.5)
    with pytest.raises(ValueError, match="decay must be in"):
        ema_model(model, 1.0)
