"""Chapter 04's config, experiment helpers and the full preset's CIFAR-10 code paths."""

import pickle

import numpy as np
import pytest
import torch

from reprobook.chapters import get_chapter
from reprobook.diffusion import EDMDenoiser, ToyDenoiser
from reprobook.ect import cifar
from reprobook.ect import experiments as ex
from reprobook.ect.config import Config
from reprobook.presets import ConfigError


def test_config_errors_say_what_is_valid():
    chapter = get_chapter("ect")
    with pytest.raises(ConfigError, match="toy_checkpoints must be increasing"):
        chapter.config("cpu", {"toy_checkpoints": [500, 250, 2000]})
    with pytest.raises(ConfigError, match="end at toy_tune_steps"):
        chapter.config("cpu", {"toy_checkpoints": [100, 1000]})
    with pytest.raises(ConfigError, match="digits_size must be 8 or 16"):
        chapter.config("cpu", {"digits_size": 12})
    with pytest.raises(ConfigError, match="q > 1"):
        chapter.config("cpu", {"q": 1.0})
    full = chapter.config("full")
    assert full.digits_size == 16 and max(full.toy_checkpoints) == full.toy_tune_steps


def test_ring_mixture_has_unit_scale_spread_and_final_stage():
    cfg = Config()
    mix = ex.ring_mixture(cfg)
    x, _ = mix.sample(20_000, torch.Generator().manual_seed(0))
    assert x.std(0).mean() == pytest.approx(np.sqrt(cfg.toy_radius**2 / 2 + cfg.toy_sigma**2), rel=0.03)
    assert ex.final_stage(2000, 250) == 8 and ex.final_stage(2001, 250) == 9 and ex.final_stage(1, 250) == 1


def test_power_law_fit_recovers_exponent():
    b = np.array([10.0, 20, 40, 80])
    slope, c = ex.power_law_fit(b, 3.0 * b**-0.7)
    assert slope == pytest.approx(-0.7) and c == pytest.approx(3.0)


def test_cifar_inputs_missing_are_named(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        cifar.check_inputs(None, str(tmp_path / "edm.pkl"), str(tmp_path))
    message = str(err.value)
    assert "cifar_dir=None" in message and "edm-cifar10-32x32-uncond-vp.pkl" in message and "NVlabs/edm" in message


def test_load_cifar10_reads_the_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        with open(tmp_path / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": data, b"labels": [0] * 4}, f)
    x = cifar.load_cifar10(str(tmp_path))
    assert x.shape == (20, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    first = pickle.load(open(tmp_path / "data_batch_1", "rb"))[b"data"][0].reshape(3, 32, 32)
    np.testing.assert_allclose(x[0].numpy(), first / 127.5 - 1, atol=1e-6)


def test_cifar_tuning_loop_trains_and_keeps_an_ema(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    data = torch.randn(64, 2) * 0.5

    def run(decay):
        torch.manual_seed(0)
        denoiser = EDMDenoiser(ToyDenoiser(2, 16, 1), sigma_data=0.5, sigma_min=0.002, label_scale=100.0)
        start = [p.detach().clone() for p in denoiser.parameters()]
        ema = cifar.tune(denoiser, data, iterations=3, stage_len=1, batch=8, lr=1e-3, ema_decay=decay, device="cpu")
        return start, [p.detach() for p in denoiser.parameters()], list(ema.parameters())

    # Decay 0: the EMA is the trained model; decay 1: it never leaves the pretrained weights.
    start, trained, ema = run(0.0)
    assert all(torch.equal(t, e) for t, e in zip(trained, ema))
    assert any(not torch.equal(s, t) for s, t in zip(start, trained))
    start, trained, ema = run(1.0)
    assert all(torch.equal(s, e) for s, e in zip(start, ema))


def test_digit_metrics_floor_and_run_digits_rows():
    from reprobook.ect.evaluation import DigitClassifier, load_digits_images

    torch.manual_seed(0)
    digits, _ = load_digits_images(8)
    digits = digits[:200]
    classifier = DigitClassifier().eval()
    with torch.no_grad():
        real = classifier.features(digits).double()
    # The training digits scored against themselves: FD 0 and every one a copy of itself.
    same = ex.digit_metrics(digits, classifier, real, digits)
    assert same["FD (classifier features)"] == pytest.approx(0.0, abs=1e-6)
    assert same["near-copies"] == 1.0
    # Noise is farther from the digits than other digits are, and copies nothing.
    other_digits = load_digits_images(8)[0][200:400]
    other = ex.digit_metrics(other_digits, classifier, real, digits)
    noise = ex.digit_metrics(torch.rand_like(digits) * 2 - 1, classifier, real, digits)
    assert noise["FD (classifier features)"] > 10 * other["FD (classifier features)"] > 0
    assert other["near-copies"] == noise["near-copies"] == 0.0

    cfg = Config(digits_pretrain_steps=2, digits_tune_steps=2, digits_stage_len=1, digits_batch=8,
                 n_digit_samples=50, heun_steps=2, unet_widths=(8, 16, 16), mid_grid=(0.2, 1.0))
    rows, seconds = ex.run_digits(cfg, digits, classifier, seed=0)
    labels = [(r["model"], r["sampler"]) for r in rows]
    ablation = ex.DIGIT_ABLATIONS[0][0]
    assert labels == [("training digits (floor)", ""), (ex.TEACHER, "Euler"), (ex.TEACHER, "Euler, EDM grid"),
                      (ex.TEACHER, "Heun, EDM grid"), (ex.TEACHER, "Heun, 2 steps"),
                      (ex.TEACHER, "consistency, 2 steps"), (ex.TEACHER_PLUS, "Heun, 2 steps")] + [
        (m, f"consistency, {k}") for m in (ex.ECT, ex.CT_TUNING, ex.CT_TOTAL, ablation) for k in ("1 step", "2 steps")]
    assert [r["NFE"] for r in rows[1:7]] == [1, 2, 2, 3, 2, 3]
    assert all(r["samples"].shape == (50, 1, 8, 8) for r in rows)
    assert all(np.isfinite(r["FD (classifier features)"]) for r in rows)
    assert all(r["mid"] in cfg.mid_grid for r in rows if r["sampler"] == "consistency, 2 steps")
    assert set(seconds) == {"pretraining", "pretraining, + tuning images", ex.ECT, ex.CT_TUNING, ex.CT_TOTAL, ablation}


def test_train_arms_keeps_the_teacher_at_the_pretraining_budget_and_evaluates_emas():
    """The teacher is the EMA at pretrain_steps of a run continued for tune_steps more (the
    control); it equals a run stopped there. ECT starts from it; CT arms start fresh; every
    returned model is an EMA copy that needs no gradients; the checkpoints come from ECT."""
    cfg = Config(toy_width=16)
    data = ex.ring_mixture(cfg).sample(256, torch.Generator().manual_seed(0))[0].float()
    setting = ex.Setting(lambda s: ex.toy_denoiser(cfg, s), 6, 4, 2, 16, 1e-3, 3e-4)
    seen = []
    models, seconds = ex.train_arms(cfg, setting, data, 0, ablations=ex.TOY_ABLATIONS, checkpoints=(2, 4),
                                    on_checkpoint=lambda it, m: seen.append(it))
    assert seen == [2, 4]
    assert set(models) == {ex.TEACHER, ex.TEACHER_PLUS, ex.ECT, ex.CT_TUNING, ex.CT_TOTAL,
                           *(name for name, _ in ex.TOY_ABLATIONS)}
    assert all(not p.requires_grad for m in models.values() for p in m.parameters())
    # the same pretraining stopped at 6 steps, with its own EMA, gives the teacher bit for bit
    from reprobook.diffusion import ema_model
    alone = setting.make(0)
    ema = ema_model(alone, ex.ema_decay(cfg, setting.stage_len))
    ex.pretrain(alone, data, cfg, steps=6, batch=16, lr=1e-3, seed=0, desc="p", ema=ema)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), models[ex.TEACHER].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(models[ex.TEACHER].parameters(),
                                                       models[ex.TEACHER_PLUS].parameters()))
    assert ex.ema_decay(cfg, 100) ** (cfg.ema_halflife_stages * 100) == pytest.approx(0.5)


def test_two_nfe_samplers_use_two_evaluations_and_tune_mid_picks_the_best_level():
    cfg = Config(mid_grid=(0.1, 0.5, 2.0))
    calls = []

    def counting(x, sigma):
        calls.append(1)
        return torch.zeros_like(x)

    for grid, solver in ex.two_nfe_grids(cfg).values():
        calls.clear()
        ex.ode_sample(counting, cfg, 5, (2,), grid, solver, 0)
        assert len(calls) == 2
    model = ex.toy_denoiser(cfg, 0)
    values = iter([0.3, -1.0, 0.7])  # one score per level of the grid, in order; lower is better

    def score(x):
        assert x.shape == (20, 2)
        return next(values)

    mid, scores = ex.tune_mid(model, cfg, score, 20, (2,), seed=1)
    assert scores == {0.1: 0.3, 0.5: -1.0, 2.0: 0.7} and mid == 0.5


def test_between_modes_counts_off_support_points_on_the_ring_only():
    cfg = Config()
    mix = ex.ring_mixture(cfg)
    r = cfg.toy_radius
    half = np.pi / cfg.toy_modes  # halfway between the first two modes
    points = torch.tensor([[r, 0.0], [r * np.cos(half), r * np.sin(half)], [0.0, 0.0], [2 * r, 0.0]])
    # on a mode; between two modes on the ring; the centre; far outside
    assert ex.between_modes_fraction(points, mix, cfg) == pytest.approx(1 / 4)
    metrics = ex.toy_metrics(points, mix, points, cfg)
    assert metrics["off support"] == pytest.approx(3 / 4) and metrics["sliced W"] == 0


FAKE_EDM_MODULE = '''
import torch


class FakeSongUNet(torch.nn.Module):
    """Stands in for EDM's U-Net: returns its noise label everywhere, so the test can read it."""

    def __init__(self):
        super().__init__()
        self.dropout = torch.nn.Dropout(0.1)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        assert class_labels is None
        return self.scale * noise_labels.reshape(-1, 1, 1, 1).expand_as(x)


class FakeVPPrecond(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.model = FakeSongUNet()
'''


def test_load_edm_denoiser_wraps_the_inner_network_in_ect_preconditioning(tmp_path, monkeypatch):
    import sys

    repo = tmp_path / "edm"
    (repo / "dnnlib").mkdir(parents=True)
    (repo / "torch_utils").mkdir()
    (repo / "fake_edm_networks.py").write_text(FAKE_EDM_MODULE)
    monkeypatch.syspath_prepend(str(repo))
    import fake_edm_networks

    checkpoint = tmp_path / "edm.pkl"
    with open(checkpoint, "wb") as f:
        pickle.dump({"ema": fake_edm_networks.FakeVPPrecond()}, f)
    del sys.modules["fake_edm_networks"]  # the loader must find it through edm_repo

    denoiser = cifar.load_edm_denoiser(str(checkpoint), str(repo), dropout=0.2)
    assert isinstance(denoiser, EDMDenoiser)
    assert [m.p for m in denoiser.modules() if isinstance(m, torch.nn.Dropout)] == [0.2]
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    sigma = torch.tensor([0.01, 1.0, 80.0], dtype=torch.float64)
    denoiser.double()
    out = denoiser(x, sigma)  # training preconditioning: c_skip x + c_out ln(sigma)/4
    s = sigma.reshape(-1, 1, 1, 1)
    expected = 0.25 / (s**2 + 0.25) * x + s * 0.5 / (s**2 + 0.25).sqrt() * torch.log(s) / 4
    torch.testing.assert_close(out, expected)
    # sampling: shifted by 0.003, so f(x, 0.003) = x
    torch.testing.assert_close(denoiser(x, torch.full((3,), 0.003, dtype=torch.float64), shifted=True), x)
