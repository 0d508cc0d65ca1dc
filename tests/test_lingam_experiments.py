"""Chapter 01's experiment plumbing: fixed graphs across n, the knockout
networks and their exact effects, the competitiveness rule, the config."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from reprobook.claims import INCONCLUSIVE
from reprobook.lingam import experiments as ex
from reprobook.lingam.config import Config
from reprobook.lingam.simulate import knockout_network
from reprobook.presets import ConfigError


def test_accuracy_uses_the_same_graph_for_every_n():
    cfg = Config(acc_dims=(6,), acc_ns=(60, 200), acc_seeds=3, n_jobs=1)
    acc = ex.accuracy(cfg, 0, "cpu")
    edges = acc.pivot(index="seed", columns="n", values="edges")
    assert (edges[60] == edges[200]).all()
    assert edges[60].nunique() > 1 or len(edges) == 1  # seeds do differ


def test_knockout_settings_share_the_network():
    base = {"lingam": None, "gaussian": None, "confounded": None}
    for setting in base:
        base[setting] = knockout_network(
            12, np.random.default_rng([1, setting == "gaussian"]), setting,
            base_rng=np.random.default_rng(7), latents=2, latent_children=3,
        )
    B = base["lingam"][0].B
    assert base["gaussian"][0].B.shape == (12, 12)
    np.testing.assert_array_equal(base["gaussian"][0].B, B)
    assert base["gaussian"][0].gaussian.sum() == 6
    sem, obs = base["confounded"]
    assert sem.B.shape == (14, 14)
    np.testing.assert_array_equal(sem.B[:12, :12], B)
    assert (sem.B[:, 12:] != 0).sum() == 6 and not sem.B[12:].any()  # latents are roots
    np.testing.assert_array_equal(obs, np.arange(12))


def test_gaussian_setting_draws_gaussian_noise_where_masked():
    sem, _ = knockout_network(10, np.random.default_rng(0), "gaussian", gaussian_fraction=0.5)
    E = sem.sample_noise(200_000, np.random.default_rng(1)) / sem.noise_scale
    skew = ((E - E.mean(0)) ** 3).mean(0) / E.std(0) ** 3
    assert np.all(np.abs(skew[sem.gaussian]) < 0.05)
    assert np.all(skew[~sem.gaussian] > 1.8)  # exponential noise: skewness 2


def test_exact_effects_of_a_confounded_network_match_simulated_interventions():
    # the truth of the knockout study: T[j, k] of the full SEM, latents included
    sem, obs = knockout_network(6, np.random.default_rng(3), "confounded", latents=2, latent_children=4)
    T = sem.total_effects()[np.ix_(obs, obs)]
    rng = np.random.default_rng(4)
    k, value = 2, 1.5
    B_do = sem.B.copy()
    B_do[obs[k]] = 0.0
    E = sem.sample_noise(400_000, rng)
    E[:, obs[k]] = value
    x = np.linalg.solve(np.eye(sem.d) - B_do, E.T).T[:, obs].mean(0)
    np.testing.assert_allclose(x, T[:, k] * value, atol=0.02)  # observational means are 0


def test_knockout_verdicts_follow_the_stated_rule():
    def frame(lingam, notears):
        rows = [
            {"setting": "s", "seed": i, "method": m, "rmse_exact": v}
            for i, (a, b) in enumerate(zip(lingam, notears))
            for m, v in (("LiNGAM", a), ("NOTEARS", b))
        ]
        return pd.DataFrame(rows)

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, 10)
    better = ex.knockout_verdicts(frame(0.5 * base, base), 0.1).iloc[0]
    assert better.holds is True and better.ratio == pytest.approx(0.5)
    worse = ex.knockout_verdicts(frame(2 * base, base), 0.1).iloc[0]
    assert worse.holds is False and worse.lo > 1.1
    noisy = ex.knockout_verdicts(frame(base * np.exp(np.tile([0.5, -0.5], 5)), base), 0.1).iloc[0]
    assert noisy.holds == INCONCLUSIVE and noisy.lo < 1.1 < noisy.hi


@pytest.mark.parametrize(
    "change, match",
    [
        ({"gene_settings": ("lingam", "nope")}, "gene_settings"),
        ({"gene_settings": ()}, "gene_settings"),
        ({"gene_gaussian_fraction": 0.0}, "gene_gaussian_fraction"),
        ({"gene_latents": 0}, "gene_latents"),
        ({"gene_latent_children": 31}, "gene_latent_children"),
        ({"notears_lambda": -1.0}, "notears_lambda"),
        ({"competitive_margin": -0.1}, "competitive_margin"),
        ({"gene_seeds": 1}, "gene_seeds"),
    ],
)
def test_config_rejects_bad_knockout_fields(change, match):
    with pytest.raises(ConfigError, match=match):
        replace(Config(), **change).validate()
