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
