"""Text conditioning in reprobook.diffusion (conditional EDM training with caption dropout,
classifier-free guidance) and the small text-to-image generator of reprobook.t2i."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from reprobook.diffusion import (EDMDenoiser, ToyDenoiser, edm_loss, euler_sample, guided, heun_sample, karras_sigmas,
                                 log_normal_sigmas, train_edm, train_minibatches)
from reprobook.models.clip import ClipTokenizer, tiny_clip
from reprobook.t2i import TextConditionedUNet, build_text_to_image, train_text_to_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: see conftest


class CondNet(nn.Module):
    """A small conditional network ``F(u, label, cond)``, nonlinear in all three, recording the conditions."""

    def __init__(self, dim: int = 3):
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self.conds = []

    def forward(self, u, label, cond=None):
        if cond is not None:
            self.conds.append(cond.detach().clone())
        out = torch.tanh(self.lin(u)) + label[:, None]
        return out if cond is None else out * torch.sigmoid(cond) + cond**2


@pytest.fixture(scope="module")
def clip():
    tok = ClipTokenizer(encode=lambda s: [ord(c) % 200 + 3 for c in s], context_length=16, bos_id=0, eos_id=1,
                        pad_id=2)
    return tiny_clip(tok, 256)


def flat_colours(size: int, n_each: int):
    red = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1).expand(3, size, size)
    blue = torch.tensor([0.1, 0.1, 0.9]).view(3, 1, 1).expand(3, size, size)
    return torch.stack([red, blue] * n_each), ["a red square", "a blue square"] * n_each


# --- reprobook.diffusion: conditioning leaves the unconditional path bit for bit as it was ---

def test_unconditional_train_edm_is_bitwise_the_original_loop():
    data = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))

    def original(den):  # train_edm as it was before conditioning: the same draws, the same operations
        gen = torch.Generator().manual_seed(3)
        opt = torch.optim.Adam(den.parameters(), lr=1e-3)
        den.train()
        losses = []
        for _ in range(25):
            idx = torch.randint(0, len(data), (32,), generator=gen)
            x0 = data[idx]
            sigma = torch.exp(torch.randn(32, generator=gen) * 1.2 - 1.2)
            eps = torch.randn(x0.shape, generator=gen)
            sd = den.sigma_data
            c_skip, c_out = sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt()
            c_in, c_noise = 1 / (sigma**2 + sd**2).sqrt(), sigma.log() / 4
            x = x0 + sigma[:, None] * eps
            estimate = c_skip[:, None] * x + c_out[:, None] * den.net(c_in[:, None] * x, c_noise * den.label_scale)
            weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
            loss = torch.mean(weight * ((estimate - x0) ** 2).flatten(1).mean(1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        den.eval()
        return losses

    runs = []
    for train in (original, lambda den: train_edm(den, data, steps=25, batch_size=32, seed=3)):
        torch.manual_seed(1)
        den = EDMDenoiser(ToyDenoiser(2, 16, 2), 0.5, label_scale=100.0)
        runs.append((train(den), torch.cat([p.detach().flatten() for p in den.parameters()])))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_denoiser_and_loss_pass_the_condition_and_draw_the_same_numbers():
    net = CondNet()
    den = EDMDenoiser(net, 0.5, label_scale=2.0)
    x0, cond = torch.randn(5, 3), torch.randn(5, 3)
    sigma = torch.tensor([0.1, 0.5, 1.0, 3.0, 40.0])
    c_skip, c_out, c_in, c_noise = den.preconditioning(sigma)
    expected = c_skip[:, None] * x0 + c_out[:, None] * net(c_in[:, None] * x0, c_noise * 2.0, cond)
    assert torch.equal(den(x0, sigma, cond=cond), expected)
    assert torch.equal(den(x0, sigma), c_skip[:, None] * x0 + c_out[:, None] * net(c_in[:, None] * x0, c_noise * 2.0))
    # the loss with a condition makes the same draws (sigma, then eps) as without
    seen = []
    recorder = EDMDenoiser(CondNet(), 0.5)
    recorder.forward = lambda x, s, cond=None: seen.append((x, s, cond)) or x
    edm_loss(recorder, x0, generator=torch.Generator().manual_seed(7))
    edm_loss(recorder, x0, generator=torch.Generator().manual_seed(7), cond=cond)
    assert torch.equal(seen[0][0], seen[1][0]) and torch.equal(seen[0][1], seen[1][1])
    assert seen[0][2] is None and seen[1][2] is cond


def test_train_minibatches_passes_the_batchs_own_condition_rows():
    data = torch.arange(40.0)[:, None]
    conditions = 100 + torch.arange(40.0)[:, None]
    model = nn.Linear(1, 1)
    pairs = []

    def batch_loss(batch, gen, step, cond):
        pairs.append((batch.clone(), cond.clone()))
        return model(batch).mean()

    train_minibatches(model, data, batch_loss, torch.optim.SGD(model.parameters(), lr=0.0), steps=3, batch_size=8,
                      conditions=conditions)
    assert len(pairs) == 3 and all(torch.equal(cond, batch + 100) for batch, cond in pairs)
    with pytest.raises(ValueError, match="one row per data row"):
        train_minibatches(model, data, batch_loss, torch.optim.SGD(model.parameters(), lr=0.0), steps=1,
                          batch_size=8, conditions=conditions[:5])


def test_caption_dropout_draws_after_the_indices_at_the_given_rate():
    n, steps, batch, rate, seed = 30, 40, 50, 0.25, 5
    data = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
    conditions = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    null = torch.full((3,), -7.0)
    net = CondNet()
    train_edm(EDMDenoiser(net), data, steps=steps, batch_size=batch, seed=seed, conditions=conditions,
              null_condition=null, cond_dropout=rate)
    # replay the generator: indices, one uniform per row for the dropout, then the loss's sigma and eps
    gen = torch.Generator().manual_seed(seed)
    dropped = []
    for step in range(steps):
        idx = torch.randint(0, n, (batch,), generator=gen)
        drop = torch.rand(batch, generator=gen) < rate
        log_normal_sigmas(batch, -1.2, 1.2, gen)
        torch.randn((batch, 3), generator=gen)
        assert torch.equal(net.conds[step], torch.where(drop[:, None], null, conditions[idx]))
        dropped.append(drop)
    fraction = float(torch.cat(dropped).float().mean())
    assert abs(fraction - rate) < 4 * math.sqrt(rate * (1 - rate) / (steps * batch))


def test_conditional_training_arguments_are_checked():
    den, data, conds = EDMDenoiser(CondNet()), torch.randn(10, 3), torch.randn(10, 3)
    for bad, match in [(dict(cond_dropout=1.0, null_condition=torch.zeros(3)), r"\[0, 1\)"),
                       (dict(cond_dropout=-0.1, null_condition=torch.zeros(3)), r"\[0, 1\)"),
                       (dict(cond_dropout=0.1), "null_condition"),
                       (dict(cond_dropout=0.1, null_condition=torch.zeros(4)), "shape"),
                       (dict(conditions=conds[:4]), "one row per data row")]:
        with pytest.raises(ValueError, match=match):
            train_edm(den, data, steps=1, batch_size=2, **{"conditions": conds, **bad})
    with pytest.raises(ValueError, match="need conditions"):
        train_edm(den, data, steps=1, batch_size=2, null_condition=torch.zeros(3), cond_dropout=0.1)
    with pytest.raises(ValueError, match="NaN"):
        train_edm(den, data, steps=1, batch_size=2, conditions=torch.full((10, 3), math.nan))


# --- classifier-free guidance ---

def test_guidance_is_the_cfg_combination_in_one_batched_call():
    torch.manual_seed(0)
    den = EDMDenoiser(CondNet()).double()
    x, sigma = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0.2, 1.0, 5.0, 30.0], dtype=torch.float64)
    cond, null = torch.randn(4, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    with torch.no_grad():
        conditional = den(x, sigma, cond=cond)
        unconditional = den(x, sigma, cond=null.expand(4, 3))
        assert torch.equal(guided(den, cond, null, 1.0)(x, sigma), conditional)
        assert torch.equal(guided(den, cond, null, 0.0)(x, sigma), unconditional)
        for w in (0.5, 2.0, 7.5):
            torch.testing.assert_close(guided(den, cond, null, w)(x, sigma),
                                       unconditional + w * (conditional - unconditional), rtol=1e-12, atol=1e-12)
        # linear in the scale: equal steps in w are equal steps in the estimate
        g2, g3, g4 = (guided(den, cond, null, w)(x, sigma) for w in (2.0, 3.0, 4.0))
        torch.testing.assert_close(g4 - g3, g3 - g2, rtol=1e-10, atol=1e-10)
        # one call of the wrapped denoiser on [x; x] with [cond; null]; a per-row null works alike
        den.net.conds.clear()
        per_row = guided(den, cond, null.expand(4, 3).clone(), 3.0)(x, 2.0)
        assert len(den.net.conds) == 1 and torch.equal(den.net.conds[0], torch.cat([cond, null.expand(4, 3)]))
        torch.testing.assert_close(per_row, guided(den, cond, null, 3.0)(x, 2.0), rtol=0, atol=0)


def test_guided_denoiser_runs_in_the_samplers_and_scale_one_is_the_conditional_sampler():
    torch.manual_seed(0)
    den = EDMDenoiser(CondNet())
    cond, null = torch.randn(4, 3), torch.zeros(3)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    sigmas = karras_sigmas(4)
    with torch.no_grad():
        for sample in (heun_sample, euler_sample):
            assert torch.equal(sample(guided(den, cond, null, 1.0), sigmas, 80 * z),
                               sample(lambda x, s: den(x, s, cond=cond), sigmas, 80 * z))
            assert torch.isfinite(sample(guided(den, cond, null, 4.0), sigmas, 80 * z)).all()


def test_guidance_arguments_are_checked():
    den, cond = EDMDenoiser(CondNet()), torch.zeros(4, 3)
    for scale in (-0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="0: unconditional, 1: conditional"):
            guided(den, cond, torch.zeros(3), scale)
    with pytest.raises(ValueError, match="null_cond must have shape"):
        guided(den, cond, torch.zeros(2), 2.0)
    with pytest.raises(ValueError, match="rows"):
        guided(den, cond, torch.zeros(3), 2.0)(torch.zeros(3, 3), 1.0)


# --- reprobook.t2i ---

@pytest.mark.parametrize("conditioning", ["pooled", "cross-attention"])
def test_unet_output_has_the_image_shape_and_depends_on_the_token_states(conditioning):
    torch.manual_seed(0)
    net = TextConditionedUNet(8, 32, widths=(8, 16), conditioning=conditioning).eval()
    x, label = torch.randn(2, 3, 8, 8), torch.tensor([0.3, -1.0])
    states = torch.randn(2, 5, 32)
    with torch.no_grad():
        out = net(x, label, states)
        other = net(x, label, states + torch.randn(2, 5, 32))
        row_changed = net(x, label, torch.cat([states[:1], torch.randn(1, 5, 32)]))
    assert out.shape == (2, 3, 8, 8) and torch.isfinite(out).all()
    assert (out - other).abs().amax((1, 2, 3)).min() > 1e-4
    # each row reads its own states only
    torch.testing.assert_close(row_changed[0], out[0], rtol=1e-5, atol=1e-5)
    assert (row_changed[1] - out[1]).abs().max() > 1e-4


def test_unet_arguments_are_checked():
    with pytest.raises(ValueError, match="pooled, cross-attention"):
        TextConditionedUNet(8, 32, conditioning="concat")
    with pytest.raises(ValueError, match="divisible"):
        TextConditionedUNet(10, 32, widths=(8, 16, 16))
    with pytest.raises(ValueError, match="heads"):
        TextConditionedUNet(8, 30, widths=(8, 16))
    net = TextConditionedUNet(8, 32, widths=(8, 16))
    with pytest.raises(ValueError, match="states must have shape"):
        net(torch.zeros(2, 3, 8, 8), torch.zeros(2), torch.zeros(2, 5, 16))


def test_states_of_texts_and_ids_agree_and_the_null_is_the_empty_caption(clip):
    gen = build_text_to_image(clip, 8, widths=(8, 16))
    clip.model.train()
    states = gen.states(["a red square", ""])
    assert clip.model.training  # the text tower's mode is restored
    clip.model.eval()
    width = clip.model.transformer.width
    assert states.shape == (2, 16, width) and not states.requires_grad
    assert torch.equal(gen.states(clip.tokenizer(["a red square", ""])), states)
    assert torch.equal(gen.null_states(), states[1:])
    with torch.no_grad():
        assert torch.equal(states, clip.token_states(clip.tokenizer(["a red square", ""])))


def test_build_is_seeded_and_leaves_the_global_random_state_alone(clip):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = build_text_to_image(clip, 8, widths=(8, 16), seed=4), build_text_to_image(clip, 8, widths=(8, 16), seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    c = build_text_to_image(clip, 8, widths=(8, 16), seed=5)
    flat = [torch.cat([p.detach().flatten() for p in g.denoiser.parameters()]) for g in (a, b, c)]
    assert torch.equal(flat[0], flat[1]) and not torch.equal(flat[0], flat[2])
    assert a.denoiser.sigma_data == 0.5 and a.image_size == 8


def test_generate_depends_only_on_each_prompt_and_seed(clip):
    gen = build_text_to_image(clip, 8, widths=(8, 16))
    prompts, seeds = ["a red square", "a blue square", "a red square"], [3, 4, 5]
    images = gen.generate(prompts, seeds, steps=3)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(gen.generate(prompts, seeds, steps=3), images)
    # reordered, in other batches: the same image per (prompt, seed), up to the rounding of batched kernels
    again = gen.generate(prompts[::-1], seeds[::-1], steps=3, batch_size=2)
    torch.testing.assert_close(again, images.flip(0), rtol=0, atol=2e-4)
    alone = gen.generate(prompts[1:2], seeds[1:2], steps=3)
    torch.testing.assert_close(alone[0], images[1], rtol=0, atol=2e-4)
    # another seed or another prompt is another image
    assert (gen.generate(prompts[:1], [6], steps=3) - images[0]).abs().max() > 1e-3
    assert (images[0] - gen.generate(["a green square"], [3], steps=3)[0]).abs().max() > 1e-4


def test_guidance_one_is_the_conditional_sampler_and_zero_the_empty_caption(clip):
    gen = build_text_to_image(clip, 8, widths=(8, 16))
    prompts, seeds = ["a red square", "a blue square"], [1, 2]
    z = torch.stack([torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in seeds])
    states = gen.states(prompts)
    with torch.no_grad():
        by_hand = heun_sample(lambda x, s: gen.denoiser(x, s, cond=states), karras_sigmas(4), 80 * z)
    assert torch.equal(gen.generate(prompts, seeds, guidance=1.0, steps=4), ((by_hand + 1) / 2).clamp(0, 1))
    assert torch.equal(gen.generate(prompts[:1], [9], guidance=0.0, steps=4),
                       gen.generate([""], [9], guidance=1.0, steps=4))


def test_generate_arguments_are_checked(clip):
    gen = build_text_to_image(clip, 8, widths=(8, 16))
    for kwargs, match in [(dict(guidance=-1.0), "guidance"), (dict(guidance=math.nan), "guidance"),
                          (dict(steps=0), "steps"), (dict(seeds=[1, 2]), "one seed per prompt"),
                          (dict(prompts=[], seeds=[]), "no prompts"), (dict(prompts="a"), "not one string")]:
        with pytest.raises(ValueError, match=match):
            gen.generate(**{"prompts": ["a"], "seeds": [1], **kwargs})
    with pytest.raises(ValueError, match="over the context"):
        gen.generate(["a caption far too long for sixteen tokens"], [1])


def test_training_arguments_are_checked(clip):
    gen = build_text_to_image(clip, 8, widths=(8, 16))
    images, captions = flat_colours(8, 2)
    for bad_images, match in [(images * 2, r"\[0, 1\]"), (images[:, :, :4], "shape"),
                              (torch.full_like(images, math.nan), "finite"),
                              ((images * 255).to(torch.uint8), "float"), (images[:0], "no images")]:
        with pytest.raises(ValueError, match=match):
            train_text_to_image(gen, bad_images, captions[:len(bad_images)], steps=1, batch_size=2)
    with pytest.raises(ValueError, match="one caption per image"):
        train_text_to_image(gen, images, captions[:3], steps=1, batch_size=2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        train_text_to_image(gen, images, captions, steps=1, batch_size=2, cond_dropout=1.0)


def test_a_short_training_run_makes_the_colour_follow_the_caption(clip):
    gen = build_text_to_image(clip, 16, widths=(16, 32), seed=1)
    images, captions = flat_colours(16, 8)
    # A flat image's colour is decided at high noise: p_mean = -0.6 trains there more than EDM's -1.2
    losses = train_text_to_image(gen, images.numpy(), captions, steps=150, batch_size=16, seed=1, p_mean=-0.6)
    assert len(losses) == 150 and np.isfinite(losses).all() and not gen.denoiser.training
    assert np.mean(losses[-20:]) < 0.4 * np.mean(losses[:10])
    out = gen.generate(["a red square", "a blue square"] * 2, [0, 1, 2, 3], guidance=3.0, steps=10)
    red_minus_blue = (out[:, 0] - out[:, 2]).mean((1, 2))
    assert (red_minus_blue[0::2] > 0.4).all() and (red_minus_blue[1::2] < -0.4).all()
