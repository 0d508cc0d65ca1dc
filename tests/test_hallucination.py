"""Chapter 03's parts: the metric against brute force, the shapes counter, filtering, config errors."""

import numpy as np
import pytest
import torch

from reprobook.chapters import get_chapter
from reprobook.diffusion import GaussianMixture, Samples
from reprobook.hallucination import experiments as ex
from reprobook.hallucination.config import Config
from reprobook.hallucination.metrics import (auroc, chance_toward_a_neighbour, operating_point, out_of_support,
                                             toward_a_neighbour, trajectory_variance)
from reprobook.hallucination.shapes import classify_samples, count_shapes, is_hallucination, render_shapes, strip_bounds
from reprobook.presets import ConfigError


def test_trajectory_variance_is_numpys_population_variance_over_the_window():
    traj = torch.randn(30, 7, 2, dtype=torch.float64)
    expected = np.var(traj.numpy()[-10:], axis=0).mean(axis=1)
    np.testing.assert_allclose(trajectory_variance(traj, 10), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 10"):
        trajectory_variance(traj[:5], 10)


def test_auroc_is_the_probability_a_hallucination_scores_higher():
    rng = np.random.default_rng(0)
    hal = rng.normal(size=300) + np.r_[np.zeros(250), np.ones(50)]
    lab = np.r_[np.zeros(250, bool), np.ones(50, bool)]
    pos, neg = hal[lab], hal[~lab]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auroc(hal, lab) == pytest.approx(brute, abs=1e-12)
    assert np.isnan(auroc(hal, np.zeros(300, bool)))


def test_operating_point_keeps_the_requested_fraction():
    hal = np.r_[np.arange(100.0), 1000 + np.arange(10.0), 50.5]
    lab = np.r_[np.zeros(100, bool), np.ones(11, bool)]
    op = operating_point(hal, lab, 0.9)
    assert op["kept_in_support"] == pytest.approx(0.91)  # quantile "higher" keeps ranks 0..90
    assert op["removed_hallucinations"] == pytest.approx(10 / 11)
    with pytest.raises(ValueError, match="no in-support"):
        operating_point(hal[lab], lab[lab], 0.9)


def test_out_of_support_rule_on_the_grid():
    gm = ex.grid_2d(0.05)
    mid = (gm.means[0] + gm.means[1]) / 2  # halfway between neighbours: far out of support
    near = gm.means[3] + gm.stds[0] * torch.tensor([3.0, 0.0], dtype=torch.float64)
    assert out_of_support(torch.stack([mid, near, gm.means[7]]), gm, 4.0).tolist() == [True, False, False]


def test_toward_a_neighbour_on_grid_and_diamond():
    for rotate in (False, True):
        gm = ex.grid_2d(0.05, rotate)
        centre = gm.means.norm(dim=1).argmin()  # the middle mode: four nearest neighbours
        spacing = torch.cdist(gm.means, gm.means).masked_fill(torch.eye(25, dtype=torch.bool), 9).min()
        angles = torch.tensor([0.0, 10.0, 30.0, 45.0, 80.0, 90.0, 180.0, 235.0]) + (45.0 if rotate else 0.0)
        rad = torch.deg2rad(angles).double()
        pts = gm.means[centre] + 0.3 * spacing * torch.stack([rad.cos(), rad.sin()], 1)
        # Within 22.5 degrees of an axis of the (rotated) lattice: toward a neighbour.
        assert toward_a_neighbour(pts, gm).tolist() == [True, True, False, False, True, True, True, False]
    # A corner mode has two neighbours: pointing outward is toward none of them.
    gm = ex.grid_2d(0.05)
    corner = gm.means.sum(1).argmax()
    spacing = float(gm.means[:, 0].unique().diff().min())
    out = gm.means[corner] + torch.tensor([0.1 * spacing, 0.0], dtype=torch.float64)
    back = gm.means[corner] - torch.tensor([0.1 * spacing, 0.0], dtype=torch.float64)
    assert toward_a_neighbour(torch.stack([out, back]), gm).tolist() == [False, True]
    # Chance level for random directions: 4 neighbours x 45 degrees of 360 at the centre mode.
    centre_pts = gm.means[12].repeat(400, 1) + 0.01
    assert chance_toward_a_neighbour(centre_pts, gm, draws=200) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="two dimensions"):
        toward_a_neighbour(torch.zeros(1, 1), ex.mixture_1d([1.0, 2.0], 0.05))


def test_diamond_is_the_grid_rotated_and_scaled():
    grid, diamond = ex.grid_2d(0.05), ex.grid_2d(0.05, rotate=True)
    np.testing.assert_allclose(torch.cdist(grid.means, grid.means).sort(1).values,
                               torch.cdist(diamond.means, diamond.means).sort(1).values, atol=1e-12)
    assert float(grid.means.abs().max()) == pytest.approx(4 / np.sqrt(8.0025))
    # The data are scaled to unit standard deviation per axis.
    x = ex.training_data(grid, 100_000, 0)
    np.testing.assert_allclose(x.std(0), [1, 1], rtol=0.01)


def test_rendered_shapes_are_counted_exactly():
    rng = np.random.default_rng(1)
    imgs, present = render_shapes(300, 16, 24, rng)
    counts, merged, smeared = count_shapes(imgs)
    np.testing.assert_array_equal(counts, present.astype(int))
    assert not merged.any() and not smeared.any() and not is_hallucination(imgs).any()
    # A 4 x 7 block, no taller than a shape but larger than 1.6 squares: two shapes merged sideways.
    wide = -np.ones((1, 1, 16, 24), np.float32)
    wide[0, 0, 4:8, 0:7] = 1
    assert count_shapes(wide)[1][0, 0] and is_hallucination(wide)[0]
    assert imgs.min() >= -1 and imgs.max() <= 1


def test_two_shapes_in_a_strip_or_a_merged_blob_are_hallucinations():
    # Two separate 4x4 blocks, one above the other, in the triangle strip.
    pair = -np.ones((1, 1, 16, 24), np.float32)
    pair[0, 0, 2:6, 2:6] = 1
    pair[0, 0, 10:14, 2:6] = 1
    counts, merged, _ = count_shapes(pair)
    assert counts[0].tolist() == [2, 0, 0] and not merged.any() and is_hallucination(pair)[0]
    # A speck below the minimum area is not a shape.
    speck = pair.copy()
    speck[0, 0, 10:14, 2:6] = -1
    speck[0, 0, 12, 3] = 1
    assert count_shapes(speck)[0][0].tolist() == [1, 0, 0] and not is_hallucination(speck)[0]
    # Two squares (4 px wide) stacked into one bar 10 px tall, taller than 1.5 diameters: merged.
    blob = -np.ones((1, 1, 16, 24), np.float32)
    lo, hi = strip_bounds(24)[1]
    blob[0, 0, 3:13, lo + 2:hi - 2] = 1
    assert count_shapes(blob)[1][0, 1] and is_hallucination(blob)[0]
    # A strip turned grey-white is a smear: the sample failed, it is not a hallucination.
    smear = blob.copy()
    smear[0, 0, :, :8] = 0.5
    hallucinated, failed = classify_samples(smear)
    assert count_shapes(smear)[2][0].tolist() == [True, False, False] and failed[0] and not hallucinated[0]


def test_select_keeps_the_lowest_variance_samples():
    cfg = Config(hal_window=2)
    traj = torch.zeros(2, 5, 1)
    traj[0, :, 0] = torch.tensor([0.0, 5.0, 0.1, 3.0, 0.2])  # variance grows with the jump
    s = Samples(torch.arange(5.0)[:, None], traj)
    assert ex.select(s, 3, "variance", cfg, 0)[:, 0].tolist() == [0.0, 2.0, 4.0]
    assert ex.select(s, 2, "none", cfg, 0)[:, 0].tolist() == [0.0, 1.0]
    assert sorted(ex.select(s, 5, "random", cfg, 0)[:, 0].tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="valid filters"):
        ex.select(s, 2, "best", cfg, 0)
    with pytest.raises(ValueError, match="cannot keep"):
        ex.select(s, 6, "none", cfg, 0)


def test_chain_start_is_where_the_signal_is_gone():
    cfg = Config()
    sch = ex.ddpm_schedule(cfg)
    start = ex.chain_start(cfg, sch)
    assert float(sch.signal_scale(torch.tensor(start - 1))) < 1e-4 <= float(sch.signal_scale(torch.tensor(start - 2)))
    assert ex.chain_start(Config(start_tol=0.0), sch) == 1000


@pytest.mark.parametrize("bad", [{"start_tol": 1.5}, {"hal_window": 1}, {"keep_in_support": 1.0},
                                 {"width": 63}, {"generations": 1}, {"n_train_sweep": (5,)}, {"sigma": 0.0},
                                 {"hallucination_sigmas": 3.0}, {"n_train_sweep": (100, 1000)},
                                 {"spacing_sweep": (2.0, 3.0)}, {"sweep_seeds": 1}, {"hal_windows": (1, 5)},
                                 {"recursive_filters": ("none", "random")}, {"recursive_steps": 0}])
def test_config_errors_are_clear(bad):
    with pytest.raises(ConfigError):
        get_chapter("hallucination").config("cpu", bad)


def test_full_preset_validates():
    cfg = get_chapter("hallucination").config("full")
    assert cfg.width == 128 and cfg.start_tol == 0.0


def test_bands_in_1d_and_2d():
    from reprobook.hallucination.metrics import AMBIGUOUS, BETWEEN, BEYOND, IN_SUPPORT, label_samples

    gm = ex.mixture_1d([1.0, 2.0, 3.0], 0.05)
    x = torch.tensor([2.0, 2.25, 1.5, 3.5, 0.8, 3.35, 3.15, 0.79])[:, None]
    # d in sigmas: 0, 5, 10, 10 (past the last mode by 10), 4, 7 (past it by 7), 3, 4.2
    assert label_samples(x, gm, 4, 6).tolist() == [IN_SUPPORT, AMBIGUOUS, BETWEEN, BEYOND, IN_SUPPORT,
                                                   BEYOND, IN_SUPPORT, AMBIGUOUS]
    grid = ex.grid_2d(0.05)
    s = float(grid.stds[0])
    corner = grid.means.sum(1).argmax()  # (+h, +h)
    pts = torch.stack([
        (grid.means[0] + grid.means[1]) / 2,  # between neighbours
        grid.means[corner] + torch.tensor([10 * s, 0.0], dtype=torch.float64),  # outward from the edge
        grid.means[12] + torch.tensor([5 * s, 0.0], dtype=torch.float64),  # the dropped band
        grid.means[corner] - torch.tensor([3 * s, 3 * s], dtype=torch.float64),  # 4.24 s, inward: ambiguous
    ])
    assert label_samples(pts, grid, 4, 6).tolist() == [BETWEEN, BEYOND, AMBIGUOUS, AMBIGUOUS]
    with pytest.raises(ValueError, match="inner <= outer"):
        label_samples(pts, grid, 6, 4)


def test_outside_hull_is_the_distance_to_the_square_off_its_corners():
    from reprobook.hallucination.metrics import outside_hull_in_sigmas

    grid = ex.grid_2d(0.05)
    s, h = float(grid.stds[0]), float(grid.means.max())
    x = (torch.rand(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5) * 4 * h
    ax, ay = x[:, 0].abs() - h, x[:, 1].abs() - h
    inside = (ax <= 0) & (ay <= 0)
    outside_dist = torch.sqrt(ax.clamp(min=0) ** 2 + ay.clamp(min=0) ** 2)
    signed = torch.where(inside, torch.maximum(ax, ay), outside_dist) / s
    ours = torch.from_numpy(outside_hull_in_sigmas(x, grid))
    corner = (ax > 0) & (ay > 0)
    np.testing.assert_allclose(ours[~corner], signed[~corner], atol=1e-9)
    assert (ours[corner] <= signed[corner] + 1e-9).all() and (ours[corner] > 0).all()


def test_binomial_interval_is_wilsons():
    from reprobook.hallucination.metrics import binomial_interval

    k, n, z = 7, 120, 1.959963984540054
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert binomial_interval(k, n) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert binomial_interval(0, 100)[0] == pytest.approx(0, abs=1e-12) and binomial_interval(0, 100)[1] > 0.03
    with pytest.raises(ValueError, match="count <= n"):
        binomial_interval(5, 3)


def test_window_choice_prefers_the_window_late_deciders_do_not_enter():
    from reprobook.hallucination.metrics import BETWEEN, IN_SUPPORT, choose_window, detection_by_window

    rng = np.random.default_rng(0)
    n_in, n_hal = 400, 40
    traj = torch.from_numpy(rng.normal(0, 0.01, (20, n_in + n_hal, 1)))
    traj[-3:, n_in:, 0] += torch.from_numpy(rng.normal(0, 1, (3, n_hal)))  # hallucinations swing at the end
    traj[-10:-3, :40, 0] += torch.linspace(3, 0, 7, dtype=torch.float64)[:, None]  # late deciders: 10% of in-support
    labels = np.r_[np.full(n_in, IN_SUPPORT), np.full(n_hal, BETWEEN)]
    rows = detection_by_window(traj, labels, (3, 5, 10), keep_in_support=0.96)
    by_k = {r["window"]: r for r in rows}
    assert by_k[3]["removed"] == 1.0 and by_k[3]["AUROC"] == 1.0
    assert by_k[10]["removed"] < 0.5  # the late deciders set the threshold
    assert choose_window(rows) == 3


def test_mode_width_of_true_samples_is_the_truncated_gaussian_value():
    from scipy import stats

    cfg = Config()
    gm = ex.mixture_1d([1.0, 2.0, 3.0], cfg.sigma)
    x = ex.training_data(gm, 300_000, 0)
    truncated = np.sqrt(1 - 2 * 4 * stats.norm.pdf(4) / (1 - 2 * stats.norm.sf(4)))
    assert ex.mode_width(x, gm, cfg) == pytest.approx(truncated, abs=3e-3)


def test_hal_ranks_interpolated_samples_first_under_a_smooth_denoiser():
    """A controlled smooth denoiser: the exact E[x0 | x_t] of the 1D mixture, averaged over a
    Gaussian blur of its input (width 0.12 in data units), which turns each jump into a ramp.
    Sampling with it puts some samples between the modes; Hal must rank them above the
    in-support ones (this would have caught a metric on the wrong steps or on x_t)."""
    from reprobook.diffusion import ancestral_sample
    from reprobook.hallucination.metrics import detection_by_window

    cfg = Config()
    sch = ex.ddpm_schedule(cfg)
    gm = ex.mixture_1d([1.0, 2.0, 3.0], cfg.sigma)
    nodes, weights = np.polynomial.hermite_e.hermegauss(12)
    nodes, weights = torch.tensor(nodes), torch.tensor(weights / weights.sum())

    def eps(x_t, t):
        a, s = sch.signal_scale(t).double(), sch.noise_std(t).double()
        q = len(nodes)
        blurred = (x_t.double()[:, None, :] + 0.12 * a[:, None, None] * nodes[None, :, None]).reshape(-1, 1)
        x0 = gm.posterior_mean(blurred, a.repeat_interleave(q), s.repeat_interleave(q)).reshape(len(x_t), q)
        x0 = (x0 * weights).sum(1, keepdim=True)
        return ((x_t.double() - a[:, None] * x0) / s[:, None]).float()

    smp = ancestral_sample(eps, sch, 8000, (1,), keep_last=20, start_step=ex.chain_start(cfg, sch), seed=0)
    labels = ex.labels(smp.x, gm, cfg)
    rows = detection_by_window(smp.x0_trajectory, labels, (10, 20), cfg.keep_in_support)
    assert all(r["n_hallucinated"] >= 20 for r in rows)
    assert all(r["AUROC"] > 0.9 for r in rows), rows


def test_auroc_standard_error_matches_the_spread_over_repeated_draws():
    """Hanley and McNeil's formula is exact for exponential scores: compare it with the spread of
    the AUROC over many simulated data sets."""
    from reprobook.hallucination.metrics import auroc_standard_error

    rng = np.random.default_rng(0)
    n_pos, n_neg, scale = 40, 300, 3.0  # positives' scores 3x larger: AUROC = 3 / 4
    lab = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    areas = [auroc(np.r_[rng.exponential(scale, n_pos), rng.exponential(1.0, n_neg)], lab) for _ in range(2000)]
    assert np.mean(areas) == pytest.approx(0.75, abs=0.005)
    assert auroc_standard_error(0.75, n_pos, n_neg) == pytest.approx(np.std(areas), rel=0.08)
    with pytest.raises(ValueError, match="both classes"):
        auroc_standard_error(0.7, 0, 10)
