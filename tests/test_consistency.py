"""reprobook.diffusion.consistency (Easy Consistency Tuning) against hand-computed values,
recorded network calls and the ideal consistency function of a Gaussian."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import reprobook.diffusion.consistency as consistency_module
from reprobook.diffusion import (EDMDenoiser, GaussianMixture, ToyDenoiser, consistency_loss, consistency_sample,
                                 ect_r, ect_stage, exact_edm_denoiser, train_consistency)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest


def _n(t, k=8.0, b=1.0):
    return 1 + k / (1 + math.exp(b * t))  # 1 + k sigmoid(-b t)


def test_ect_stage_starts_at_one():
    assert [ect_stage(i, 25) for i in (0, 24, 25, 49, 50, 199)] == [1, 1, 2, 2, 3, 8]
    with pytest.raises(ValueError, match="stage_len"):
        ect_stage(0, 0)
    with pytest.raises(ValueError, match="iteration"):
        ect_stage(-1, 5)


def test_ect_r_hand_values():
    t = torch.tensor([1.0, 1.0, 4.0, 0.5], dtype=torch.float64)
    stage = [1, 3, 2, 8]
    r = [float(ect_r(t[i:i + 1], stage[i])) for i in range(4)]
    # t = 1, stage 1: n = 3.15 > 2, so r = 0; stage 3: 1 - 3.15/8
    assert r[0] == 0.0
    assert r[1] == pytest.approx(1 - _n(1.0) / 8, rel=1e-12)
    assert r[2] == pytest.approx(4 * (1 - _n(4.0) / 4), rel=1e-12)
    assert r[3] == pytest.approx(0.5 * (1 - _n(0.5) / 256), rel=1e-12)
    # k, b and q enter as written: n(t) = 1 + k sigmoid(-b t) multiplies 1/q^stage
    assert float(ect_r(torch.tensor([2.0], dtype=torch.float64), 2, k=3.0, b=0.5, q=3.0)) == \
        pytest.approx(2 * (1 - _n(2.0, 3.0, 0.5) / 9), rel=1e-12)


def test_ect_r_is_zero_exactly_where_the_gap_covers_t_and_tightens_with_the_stage():
    t = torch.logspace(-3, 2, 400, dtype=torch.float64)
    n = torch.tensor([_n(v) for v in t.tolist()], dtype=torch.float64)
    for stage in (1, 2, 3, 5):
        r = ect_r(t, stage)
        assert torch.equal(r == 0, n / 2**stage >= 1)
        assert torch.all((r >= 0) & (r < t))
    # stage 1 (k = 8, b = 1): r = 0 exactly for t <= ln 7, where 8 sigmoid(-t) >= 1
    r1 = ect_r(t, 1)
    assert torch.equal(r1 == 0, t <= math.log(7))
    # the relative gap (t - r)/t = n(t)/2^stage -> 0: r/t -> 1
    ratios = [float((ect_r(t[-10:], stage) / t[-10:]).min()) for stage in (4, 8, 12, 16)]
    assert ratios == sorted(ratios) and ratios[-1] > 1 - 2e-4
    np.testing.assert_allclose(1 - ect_r(t, 12) / t, n / 2**12, rtol=1e-9)


@pytest.mark.parametrize("bad,match", [(dict(stage=0), "stage"), (dict(q=1.0), "q"), (dict(k=-1.0), "k")])
def test_ect_r_rejects_bad_parameters(bad, match):
    with pytest.raises(ValueError, match=match):
        ect_r(torch.ones(3), **{"stage": 1, **bad})


def _toy_f(x, sigma):
    """A fixed stand-in for a consistency model that must never be asked about sigma = 0."""
    assert torch.all(sigma > 0) and torch.all(torch.isfinite(sigma))
    return torch.tanh(x) * (1 + sigma.reshape(-1, 1, 1)) - 0.1 * sigma.reshape(-1, 1, 1)


def _draws(seed, x0, p_mean, p_std):
    gen = torch.Generator().manual_seed(seed)
    t = torch.exp(torch.randn(len(x0), generator=gen, dtype=x0.dtype) * p_std + p_mean)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    return t, eps


def test_consistency_loss_at_r_zero_is_the_denoising_distance_over_t():
    x0 = torch.randn(6, 2, 3, dtype=torch.float64)
    t, eps = _draws(7, x0, math.log(0.5), 0.0)  # t = 0.5 < ln 7: r = 0 at stage 1
    x_t = x0 + 0.5 * eps
    by_hand = np.mean([float(torch.sqrt(((_toy_f(x_t, t)[i] - x0[i]) ** 2).sum())) / 0.5 for i in range(6)])
    loss = consistency_loss(_toy_f, x0, 1, p_mean=math.log(0.5), p_std=0.0, generator=torch.Generator().manual_seed(7))
    assert float(loss) == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("huber_c", [0.0, 0.03])
def test_consistency_loss_with_a_partner_level_by_hand(huber_c):
    x0 = torch.randn(5, 2, 3, dtype=torch.float64)
    t0, stage = 3.0, 3
    t, eps = _draws(11, x0, math.log(t0), 0.0)
    r = t0 * (1 - _n(t0) / 8)
    f_t = _toy_f(x0 + t0 * eps, t)
    f_r = _toy_f(x0 + r * eps, torch.full((5,), r, dtype=torch.float64))
    sq = ((f_t - f_r) ** 2).flatten(1).sum(1)
    dist = torch.sqrt(sq + huber_c**2) - huber_c
    loss = consistency_loss(_toy_f, x0, stage, p_mean=math.log(t0), p_std=0.0, huber_c=huber_c,
                            generator=torch.Generator().manual_seed(11))
    assert float(loss) == pytest.approx(float((dist / (t0 - r)).mean()), rel=1e-12)


def test_mixed_batches_never_evaluate_the_network_at_sigma_zero():
    class FiniteLabelNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, u, label):
            assert torch.all(torch.isfinite(label)), "the network saw ln(0)"
            return self.lin(u) * label[:, None]

    den = EDMDenoiser(FiniteLabelNet())
    x0 = torch.randn(256, 2)
    gen = torch.Generator().manual_seed(0)
    t = torch.exp(torch.randn(256, generator=gen) * 2.0 - 1.1)
    assert 0 < int((ect_r(t, 2) == 0).sum()) < 256  # both kinds of rows in the batch
    loss = consistency_loss(den, x0, 2, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in den.parameters())


def test_shared_noise_puts_both_points_on_one_noise_direction():
    def recorded_loss(share_noise):
        calls = []

        def f(x, sigma):
            calls.append((x.clone(), sigma.clone()))
            return x * 0.5

        x0 = torch.randn(64, 3, dtype=torch.float64)
        consistency_loss(f, x0, 4, share_noise=share_noise, generator=torch.Generator().manual_seed(2))
        (x_t, t), (x_r, r) = calls
        return (x_t - x0) / t[:, None], (x_r - x0) / r[:, None]

    eps_t, eps_r = recorded_loss(True)
    torch.testing.assert_close(eps_t, eps_r)
    eps_t, eps_r = recorded_loss(False)
    assert (eps_t - eps_r).abs().min() > 0


class DropoutNet(nn.Module):
    """A linear net behind dropout that records each mask it draws."""

    def __init__(self, dim=4, p=0.5):
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self.drop = nn.Dropout(p)
        self.masks = []

    def forward(self, u, label):
        h = self.drop(torch.ones_like(u))
        self.masks.append(h != 0)
        return self.lin(u) * h + label[:, None]


def test_shared_dropout_replays_the_mask_of_the_first_pass():
    for share in (True, False):
        net = DropoutNet()
        den = EDMDenoiser(net).train()
        torch.manual_seed(0)
        consistency_loss(den, torch.randn(128, 4), 3, share_dropout=share, generator=torch.Generator().manual_seed(0))
        first, second = net.masks
        assert torch.equal(first, second) == share
        # The replay leaves the global generator where the first pass left it: the next draw differs.
        assert not torch.equal(net.drop(torch.ones(128, 4)) != 0, first)


def test_with_r_close_to_t_only_shared_noise_and_mask_make_the_pair_consistent():
    # At stage 20, t - r ~ 1e-6 t: with both shared, ||f(x_t) - f(x_r)|| ~ |df/dt| (t - r) and the
    # loss is O(1); with a fresh mask (or fresh noise) the distance stays O(1) and the 1/(t - r)
    # weight blows it up.
    torch.manual_seed(0)
    den = EDMDenoiser(DropoutNet(4, 0.3)).double().train()
    x0 = torch.randn(64, 4, dtype=torch.float64)
    losses = {}
    for share in [(True, True), (False, True), (True, False)]:
        with torch.no_grad():
            losses[share] = float(consistency_loss(den, x0, 20, share_noise=share[0], share_dropout=share[1],
                                                   generator=torch.Generator().manual_seed(1)))
    assert losses[(True, True)] < 100
    assert losses[(False, True)] > 1e3 * losses[(True, True)]
    assert losses[(True, False)] > 1e3 * losses[(True, True)]


def test_consistency_loss_rejects_bad_parameters():
    x0 = torch.randn(4, 2)
    for bad, match in [(dict(stage=0), "stage"), (dict(q=0.5), "q"), (dict(huber_c=-0.1), "huber_c"),
                       (dict(p_std=-1.0), "p_std")]:
        with pytest.raises(ValueError, match=match):
            consistency_loss(_toy_f, x0, **{"stage": 1, **bad})


def test_train_consistency_follows_the_stage_schedule_or_the_fixed_stage(monkeypatch):
    seen = []
    real = consistency_module.consistency_loss

    def spy(denoiser, x0, stage, **kw):
        seen.append(stage)
        return real(denoiser, x0, stage, **kw)

    monkeypatch.setattr(consistency_module, "consistency_loss", spy)
    den = EDMDenoiser(ToyDenoiser(1, 8, 1))
    data = torch.randn(100, 1)
    train_consistency(den, data, steps=7, stage_len=3, batch_size=16)
    assert seen == [1, 1, 1, 2, 2, 2, 3]
    seen.clear()
    train_consistency(den, data, steps=3, stage_len=3, batch_size=16, fixed_stage=8, q=2.0)
    assert seen == [8, 8, 8]


def test_train_consistency_reduces_the_loss_and_is_reproducible():
    data = 0.5 * torch.sign(torch.randn(4000, 1, generator=torch.Generator().manual_seed(0)))
    data = data + 0.05 * torch.randn(4000, 1, generator=torch.Generator().manual_seed(1))

    def held_out(den):
        with torch.no_grad():
            return float(consistency_loss(den, data[:2000], 2, generator=torch.Generator().manual_seed(9)))

    skip_only = held_out(EDMDenoiser(lambda u, label: torch.zeros_like(u)))
    params = []
    for _ in range(2):
        torch.manual_seed(0)
        den = EDMDenoiser(ToyDenoiser(1, 32, 2), label_scale=100.0)
        before = held_out(den)
        losses = train_consistency(den, data, steps=150, stage_len=50, batch_size=256, lr=3e-3, fixed_stage=2)
        assert len(losses) == 150 and not den.training
        # better than the untrained net and than the skip connection alone (F = 0: D = c_skip x)
        assert held_out(den) < 0.8 * min(before, skip_only)
        params.append(torch.cat([p.detach().flatten() for p in den.parameters()]))
    assert torch.equal(params[0], params[1])


def test_train_consistency_rejects_bad_arguments():
    den = EDMDenoiser(ToyDenoiser(1, 8, 1))
    data = torch.randn(10, 1)
    for kwargs, error, match in [
        (dict(fixed_stage=0), ValueError, "fixed_stage"), (dict(stage_len=0), ValueError, "stage_len"),
        (dict(optimizer="sgd"), ValueError, "radam"), (dict(q=1.0), ValueError, "q"),
        (dict(huber_c=-1.0), ValueError, "huber_c"), (dict(stage=3), TypeError, "stage"),
    ]:
        with pytest.raises(error, match=match):
            train_consistency(den, data, **{"steps": 1, "stage_len": 5, "batch_size": 4, **kwargs})
    with pytest.raises(ValueError, match="NaN"):
        train_consistency(den, torch.tensor([[float("nan")]]), steps=1, stage_len=5, batch_size=4)
    with pytest.raises(ValueError, match="empty"):
        train_consistency(den, torch.zeros(0, 1), steps=1, stage_len=5, batch_size=4)


def test_consistency_sample_calls_the_shifted_model_with_fresh_noise():
    calls = []

    def f(x, sigma, shifted=False):
        calls.append((x.clone(), sigma.clone(), shifted))
        return 0.1 * x + 1.0

    out = consistency_sample(f, 5, (2,), sigmas=(80.0, 0.821), generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(5, 2, generator=gen), torch.randn(5, 2, generator=gen)
    (x1, s1, sh1), (x2, s2, sh2) = calls
    assert sh1 and sh2 and torch.equal(s1, torch.full((5,), 80.0)) and torch.equal(s2, torch.full((5,), 0.821))
    torch.testing.assert_close(x1, 80.0 * z1)
    torch.testing.assert_close(x2, (0.1 * x1 + 1.0) + 0.821 * z2)
    torch.testing.assert_close(out, 0.1 * x2 + 1.0)
    for bad in [dict(sigmas=()), dict(sigmas=(1.0, 2.0)), dict(sigmas=(0.0,)), dict(n=0)]:
        with pytest.raises(ValueError):
            consistency_sample(f, **{"n": 2, "sample_shape": (2,), **bad})


def test_one_step_of_the_ideal_consistency_function_samples_the_data_but_one_denoising_step_does_not():
    # For N(mu, s^2) data the probability-flow ODE map to 0 is f*(x, t) = mu + s / sqrt(s^2 + t^2) (x - mu):
    # from x = 80 z it gives N(mu (1 - c), (80 c)^2), c = s / sqrt(s^2 + 80^2), i.e. almost the data.
    mu, s = 1.0, 0.3
    ideal = lambda x, t, shifted: mu + s / torch.sqrt(s**2 + t[:, None] ** 2) * (x - mu)
    x = consistency_sample(ideal, 50_000, (1,), generator=torch.Generator().manual_seed(0))
    c = s / math.sqrt(s**2 + 80**2)
    assert float(x.mean()) == pytest.approx(mu * (1 - c), abs=0.01)
    assert float(x.std()) == pytest.approx(80 * c, rel=0.02)
    # the exact diffusion denoiser in one step returns E[x0 | x_80]: close to the mean, no spread
    den = exact_edm_denoiser(GaussianMixture.isotropic([[mu]], s))
    one = consistency_sample(lambda x, t, shifted: den(x, t), 50_000, (1,), generator=torch.Generator().manual_seed(0))
    assert float(one.std()) < 0.01
