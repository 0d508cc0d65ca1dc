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
                                 {"width": 63}, {"generations": 1}, {"n_train_sweep": (5,)}, {"sigma": 0.0}])
def test_config_errors_are_clear(bad):
    with pytest.raises(ConfigError):
        get_chapter("hallucination").config("cpu", bad)


def test_full_preset_validates():
    cfg = get_chapter("hallucination").config("full")
    assert cfg.width == 128 and cfg.start_tol == 0.0
