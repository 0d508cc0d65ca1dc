"""QQT laws and fitting against closed forms, direct sums and the released table."""

import numpy as np
import pytest

from reprobook.qqt.experiments import PAPER_TABLE, RELEASED, RELEASED_BUCKET, RELEASED_BUDGETS
from reprobook.qqt.fit import FitPoints, fit_pools
from reprobook.qqt.laws import PoolLaw, epoch_samples, frontier, predicted_error


@pytest.mark.parametrize("form", ["utility", "effective_data"])
def test_released_table_to_two_decimals(form):
    f = frontier(RELEASED[form], RELEASED_BUDGETS, RELEASED_BUCKET, form)
    ours = np.round(100 * f["accuracy"].T, 2)
    np.testing.assert_array_equal(ours, np.array(PAPER_TABLE[form]))


def test_first_epoch_is_the_base_power_law():
    a, b, d, N = 0.03, -0.2, 0.1, 1e6
    for n in [1e3, 5e5, 1e6]:
        assert predicted_error(n, a, [b], [3.0], d, N) == pytest.approx((a * n / 1e5) ** b + d, rel=1e-12)
        assert predicted_error(n, a, [b], [3.0], d, N, "effective_data") == pytest.approx((a * n / 1e5) ** b + d, rel=1e-12)


def test_no_decay_limit_integrates_to_the_power_law_times_floor_factor():
    # tau -> infinity: b_k = b for all k, the epoch ratios telescope to (n / N)^b.
    a, b, d, N, n = 0.03, -0.2, 0.1, 1e6, 7.3e6
    expected = ((a * N / 1e5) ** b + d) * (n / N) ** b
    assert predicted_error(n, a, [b], [1e12], d, N) == pytest.approx(expected, rel=1e-9)


def test_utility_form_against_a_direct_epoch_by_epoch_integration():
    # Integrate dy/dn = b_k y / n numerically (Euler in log n) and compare.
    a, b, tau, d, N, n_end = 0.05, -0.15, 2.5, 0.08, 1e6, 4.5e6
    y = (a * N / 1e5) ** b + d
    grid = np.geomspace(N, n_end, 200001)
    for lo, hi in zip(grid[:-1], grid[1:]):
        k = int(np.floor(lo / N + 1e-12))
        y *= np.exp(b * 0.5 ** (k / tau) * np.log(hi / lo))
    assert predicted_error(n_end, a, [b], [tau], d, N) == pytest.approx(y, rel=1e-4)


def test_effective_data_single_pool_is_the_discounted_sample_count():
    a, b, tau, d, N, n = 0.02, -0.18, 3.0, 0.1, 1e6, 3.4e6
    per_epoch = [1e6, 1e6, 1e6, 0.4e6]
    n_eff = sum(s * 2 ** (-k / tau) for k, s in enumerate(per_epoch))
    assert predicted_error(n, a, [b], [tau], d, N, "effective_data") == pytest.approx((a * n_eff / 1e5) ** b + d, rel=1e-12)


def test_mixture_of_identical_pools_is_one_pool_of_the_combined_size():
    a, b, tau, d, N, n = 0.02, -0.15, 3.0, 0.1, 1e6, 9e6
    for form in ("utility", "effective_data"):
        mixed = predicted_error(n, a, [b, b, b], [tau] * 3, d, N, form, tau_scaling="none")
        single = predicted_error(n, a, [b], [tau], d, 3 * N, form)
        assert mixed == pytest.approx(single, rel=1e-12)
        scaled = predicted_error(n, a, [b, b], [tau] * 2, d, N, form, tau_scaling="pool")
        assert scaled == pytest.approx(predicted_error(n, a, [b], [2 * tau], d, 2 * N, form), rel=1e-12)


def test_mixture_utility_is_the_mean_of_the_decayed_utilities():
    # Two pools, n inside the second combined epoch: y = [(a 2N / 1e5)^mean(b) + d] (n / 2N)^mean(b_1).
    a, d, N = 0.02, 0.1, 1e6
    b, tau = np.array([-0.2, -0.1]), np.array([2.0, 5.0])
    n = 3e6
    b1 = np.mean(b * 0.5 ** (1 / tau))
    expected = ((a * 2 * N / 1e5) ** b.mean() + d) * (n / (2 * N)) ** b1
    assert predicted_error(n, a, b, tau, d, N, tau_scaling="none") == pytest.approx(expected, rel=1e-12)


def test_epoch_samples_partial_last_epoch():
    np.testing.assert_allclose(epoch_samples(2.5e6, 1e6), [1e6, 1e6, 0.5e6])
    np.testing.assert_allclose(epoch_samples(2e6, 1e6), [1e6, 1e6, 0.0])


def test_error_falls_with_compute_and_more_useful_pools_are_better_early():
    law = RELEASED["utility"]
    ns = np.geomspace(1e6, 1e10, 50)
    for i in range(4):
        y = [law.error(n, [i], RELEASED_BUCKET) for n in ns]
        assert np.all(np.diff(y) <= 1e-15)
    early = [law.error(5e6, [i], RELEASED_BUCKET) for i in range(4)]
    assert early == sorted(early)


def test_fit_recovers_known_parameters():
    N = 2000
    true = PoolLaw(3000.0, 0.05, (-0.3, -0.2, -0.12), (3.0, 5.0, 2.0))
    ns = np.array([500, 1000, 2000, 4000, 8000, 16000, 32000.0])
    pools = [FitPoints(f"p{i}", ns, np.array([true.error(n, [i], N) for n in ns])) for i in range(3)]
    res = fit_pools(pools, N)
    assert res.rmse < 1e-6
    np.testing.assert_allclose(res.law.b, true.b, rtol=1e-3)
    np.testing.assert_allclose(res.law.tau, true.tau, rtol=1e-2)
    assert res.law.d == pytest.approx(0.05, abs=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(b=[]), "non-empty"),
        (dict(b=[-0.1, -0.2], tau=[3.0]), "one half-life per pool"),
        (dict(b=[0.1]), "utility b must lie in"),
        (dict(b=[-1.5]), "utility b must lie in"),
        (dict(tau=[0.0]), "half-life tau must be positive"),
        (dict(d=1.2), "d .* must lie in"),
        (dict(pool_size=0), "pool_size must be positive"),
        (dict(b=[-0.1, -0.2], tau=[3.0, 3.0], pool_size=[1e6, 2e6]), "pools of equal size"),
        (dict(b=[-0.1, -0.2], tau=[3.0, 3.0], pool_size=[1e6, 1e6, 1e6]), "one per pool"),
        (dict(n=-5), "samples seen n must be positive"),
        (dict(form="other"), "form must be one of"),
        (dict(tau_scaling="double"), "tau_scaling must be one of"),
    ],
)
def test_law_rejects_bad_parameters(kwargs, message):
    args = dict(n=1e6, a=0.02, b=[-0.1], tau=[3.0], d=0.1, pool_size=1e6)
    args.update(kwargs)
    if "b" in kwargs and "tau" not in kwargs and len(args["b"]) == 0:
        args["tau"] = []
    with pytest.raises(ValueError, match=message):
        predicted_error(**args)


@pytest.mark.parametrize(
    "n, y, message",
    [
        ([], [], "at least 2 fit points"),
        ([1000], [0.5], "at least 2 fit points"),
        ([2000, 1000], [0.5, 0.4], "strictly increasing"),
        ([1000, 1000], [0.5, 0.4], "strictly increasing"),
        ([1000, 2000], [50.0, 40.0], "fractions in \\(0, 1\\)"),
        ([1000, 2000, 3000], [0.5, 0.4], "equal length"),
        ([-1, 2000], [0.5, 0.4], "positive"),
    ],
)
def test_fit_points_reject_bad_data(n, y, message):
    with pytest.raises(ValueError, match=message):
        FitPoints("bucket", n, y)


def test_fit_needs_pools_with_unique_names():
    with pytest.raises(ValueError, match="no pools"):
        fit_pools([], 1000)
    p = FitPoints("a", [1000, 2000], [0.5, 0.4])
    with pytest.raises(ValueError, match="unique"):
        fit_pools([p, p], 1000)


def test_students_learn_and_repetition_is_counted():
    import torch

    from reprobook.qqt.study import make_web_pool, stream_indices, train_students

    rng = np.random.default_rng(0)
    pool = np.arange(10, 20)
    s = stream_indices(pool, 35, rng)
    assert len(s) == 35 and sorted(s[:10]) == list(pool) and sorted(s[10:20]) == list(pool)
    web = make_web_pool(5000, 2, rng, quality_beta=(5.0, 1.0))
    errs = train_students(web, web.buckets, np.array([32, 3200]), 2, rng, batch=32)
    assert errs.shape == (2, 2, 2)
    assert np.all(errs[..., 1] < errs[..., 0])  # training helps
    with pytest.raises(ValueError, match="multiples of batch"):
        train_students(web, web.buckets, np.array([30, 60]), 1, rng, batch=32)
    torch.set_num_threads(2)


def test_vmap_students_equal_one_by_one_autograd_students():
    from reprobook.qqt.study import make_web_pool, train_students

    web = make_web_pool(3000, 2, np.random.default_rng(1))
    ck = np.array([64, 640, 1600])
    fast = train_students(web, web.buckets, ck, 2, np.random.default_rng(7), batch=32, weight_decay=0.01)
    slow = train_students(web, web.buckets, ck, 2, np.random.default_rng(7), batch=32, weight_decay=0.01,
                          vectorized=False)
    # Same initialization, data streams and updates; float rounding may flip a test prediction or two.
    np.testing.assert_allclose(fast, slow, atol=2 / len(web.y_test))


def test_pool_size_per_pool_when_equal():
    one = predicted_error(5e6, 0.02, [-0.1, -0.2], [3.0, 4.0], 0.1, 1e6)
    per_pool = predicted_error(5e6, 0.02, [-0.1, -0.2], [3.0, 4.0], 0.1, [1e6, 1e6])
    assert one == per_pool


def test_effective_data_fit_recovers_known_parameters_and_predict_grid_matches_the_law():
    from reprobook.qqt.fit import predict_grid

    N = 2000
    true = PoolLaw(500.0, 0.08, (-0.35, -0.2), (2.0, 6.0))
    ns = np.array([1000, 2000, 4000, 8000, 16000, 32000, 64000.0])
    pools = [FitPoints(f"p{i}", ns, np.array([true.error(n, [i], N, "effective_data") for n in ns]))
             for i in range(2)]
    # the grid predictions are the law's, point by point, for either form
    for form in ("utility", "effective_data"):
        grid = predict_grid(pools[0], N, 500.0, 0.08, np.array([-0.35, -0.1]), np.array([2.0, 4.0]), form)
        direct = [[predicted_error(n, 500.0, [b], [t], 0.08, N, form) for n in ns] for b, t in [(-0.35, 2.0), (-0.1, 4.0)]]
        np.testing.assert_allclose(grid, direct, rtol=1e-10)
    res = fit_pools(pools, N, form="effective_data")
    assert res.form == "effective_data" and res.rmse < 1e-5
    np.testing.assert_allclose(res.law.b, true.b, rtol=1e-2)
    np.testing.assert_allclose(res.law.tau, true.tau, rtol=2e-2)
    assert res.law.d == pytest.approx(0.08, abs=2e-3)


def test_fit_with_a_and_d_held_fixed():
    N = 2000
    true = PoolLaw(3000.0, 0.05, (-0.25,), (4.0,))
    ns = np.array([500, 1000, 2000, 4000, 8000, 16000.0])
    pool = FitPoints("p", ns, np.array([true.error(n, [0], N) for n in ns]))
    res = fit_pools([pool], N, fixed_a=3000.0, fixed_d=0.05)
    assert (res.law.a, res.law.d) == (3000.0, 0.05)
    assert res.law.b[0] == pytest.approx(-0.25, rel=1e-3) and res.law.tau[0] == pytest.approx(4.0, rel=1e-2)
    # held at a wrong d, the same points give a different utility: a and d really are held
    assert fit_pools([pool], N, fixed_a=3000.0, fixed_d=0.0).law.b[0] != pytest.approx(-0.25, rel=1e-2)
    with pytest.raises(ValueError, match="fixed_a must be positive"):
        fit_pools([pool], N, fixed_a=-1.0)
    with pytest.raises(ValueError, match="fixed_d must lie in"):
        fit_pools([pool], N, fixed_d=1.5)
    with pytest.raises(ValueError, match="form must be one of"):
        fit_pools([pool], N, form="other")


def test_fresh_samples_have_the_buckets_quality_and_are_new():
    from reprobook.qqt.study import make_web_pool

    rng = np.random.default_rng(3)
    web = make_web_pool(20000, 4, rng)
    top = web.buckets[0]
    ext, idx = web.with_fresh_like(top, 30000, rng)
    assert len(ext.y) == len(web.y) + 30000 and np.array_equal(idx, np.arange(len(web.y), len(ext.y)))
    np.testing.assert_array_equal(ext.X[: len(web.y)], web.X)  # the pool itself is unchanged
    # same corruption rate as the bucket (binomial se ~ 0.007 for the bucket of 2000), worse buckets differ
    assert abs(ext.corruption_rate(idx) - web.corruption_rate(top)) < 0.03
    assert ext.corruption_rate(idx) < web.corruption_rate(web.buckets[3]) - 0.1
    # clean labels are the teacher's on new inputs
    assert ext.corruption_rate(idx) == pytest.approx(np.mean(1 - ext.quality[idx]) * 0.9, abs=0.02)
    with pytest.raises(ValueError, match="m >= 1"):
        web.with_fresh_like(top, 0, rng)


def test_init_seed_starts_every_pool_from_the_same_weights():
    from reprobook.qqt.study import make_web_pool, train_students

    web = make_web_pool(3000, 3, np.random.default_rng(1))
    ck = np.array([32])
    # lr = 0: the error at the checkpoint is the initial network's
    shared = train_students(web, web.buckets, ck, 3, np.random.default_rng(2), lr=0.0, init_seed=11)
    assert np.all(shared[0] == shared[1]) and np.all(shared[0] == shared[2])
    assert len(set(shared[0, :, 0])) > 1  # seeds differ
    again = train_students(web, web.buckets[:1], ck, 3, np.random.default_rng(9), lr=0.0, init_seed=11)
    np.testing.assert_array_equal(again[0], shared[0])  # and the same in another call
    independent = train_students(web, web.buckets, ck, 3, np.random.default_rng(2), lr=0.0)
    assert not np.all(independent[0] == independent[1])


def test_half_life_against_fresh_data_recovers_a_known_decay():
    from reprobook.qqt.experiments import _half_life

    N = 1000
    ck = np.geomspace(300, 40000, 25)
    mask = ck >= 600
    fresh = 0.15 + 0.8 * (ck / 300) ** -0.5  # a curve with a floor: the student's limit

    def discounted(n, tau):
        return np.sum(epoch_samples(n, N) * 0.5 ** (np.arange(int(n // N) + 1) / tau))

    repeated = np.interp(np.log([discounted(n, 3.0) for n in ck]), np.log(ck), fresh)
    grid = np.geomspace(0.5, 200, 400)
    assert _half_life(ck, N, repeated, fresh, mask, grid) == pytest.approx(3.0, rel=0.03)
    # no repetition cost: the repeated curve is the fresh one, no finite half-life fits better
    assert _half_life(ck, N, fresh, fresh, mask, grid) == np.inf


def test_measured_crossover_brackets_the_sign_change():
    import pandas as pd

    from reprobook.qqt.experiments import measured_crossover

    signs = ["top better", "top better", "within noise", "mixture better", "within noise", "mixture better"]
    table = pd.DataFrame({"k": 2, "passes": [0.25, 1, 2, 4, 8, 16], "sign": signs})
    assert measured_crossover(table, 2) == (1.0, 4.0)
    assert measured_crossover(table.assign(sign="within noise"), 2) == (None, None)
    assert measured_crossover(table.assign(sign="top better"), 2) == (16.0, None)
