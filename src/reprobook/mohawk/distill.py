"""MOHAWK's three stages: their losses, one training loop for all of them
(token budgets, gradient accumulation, warmup-stable-decay), and the
student-vs-teacher evaluation.

1. Matrix orientation: per layer, the Frobenius distance between the
   teacher's attention matrix and the student mixer's materialized matrix on
   the same input; only the parameters that shape the matrix train.
2. Hidden-state alignment: per layer, the per-token L2 distance between the
   teacher block's output and the student block's output on the same input;
   the mixers train, everything else is frozen (copied from the teacher).
3. Knowledge distillation: end to end, cross-entropy of the student's
   next-token distribution to the teacher's.

The losses are unsquared norms, as in the paper. Budgets are in tokens; an
update holds ``tokens_per_update`` tokens (gradient accumulation over
micro-batches), and under ``torch.distributed`` every process contributes
its own micro-batches and the gradients are averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..common import progress
from .student import decoder_layers, layer_forward, mixer_layers, mixer_matrix, trace_teacher

STAGES = (1, 2, 3)


def matrix_loss(teacher_matrix: torch.Tensor, student_matrix: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of the difference per (batch, head), averaged; matrices ``[b, h, target, source]``."""
    if teacher_matrix.shape != student_matrix.shape:
        raise ValueError(f"matrix shapes differ: teacher {tuple(teacher_matrix.shape)}, "
                         f"student {tuple(student_matrix.shape)} (both must be [batch, head, target, source])")
    return torch.linalg.matrix_norm(teacher_matrix - student_matrix, ord="fro").mean()


def hidden_loss(teacher_hidden: torch.Tensor, student_hidden: torch.Tensor) -> torch.Tensor:
    """L2 norm of the difference per token, averaged; hidden states ``[b, T, d]``."""
    if teacher_hidden.shape != student_hidden.shape:
        raise ValueError(f"hidden-state shapes differ: {tuple(teacher_hidden.shape)} vs {tuple(student_hidden.shape)}")
    return (teacher_hidden - student_hidden).norm(dim=-1).mean()


def distillation_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's softmax to the teacher's, per token, averaged
    (= KL(teacher || student) + the teacher's entropy, which has no gradient)."""
    teacher_probs = teacher_logits.float().softmax(-1)
    return -(teacher_probs * student_logits.float().log_softmax(-1)).sum(-1).mean()


def kl_to_teacher(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Mean per-token KL(teacher || student) in nats."""
    t = teacher_logits.float().log_softmax(-1)
    return (t.exp() * (t - student_logits.float().log_softmax(-1))).sum(-1).mean()


def wsd_factor(update: int, total: int, warmup: float = 0.1, decay: float = 0.2) -> float:
    """Warmup-stable-decay: linear warmup over the first ``warmup`` fraction of
    the updates, flat, then linear decay to 0 over the last ``decay`` fraction."""
    if not (0 <= warmup and 0 <= decay and warmup + decay <= 1):
        raise ValueError(f"need warmup, decay >= 0 and warmup + decay <= 1, got {warmup}, {decay}")
    n_warm, n_decay = math.ceil(warmup * total), math.ceil(decay * total)
    if update < n_warm:
        return (update + 1) / n_warm
    if update >= total - n_decay:
        return max(0.0, (total - update) / n_decay)
    return 1.0


def stage_parameters(student, stage: int) -> list[torch.nn.Parameter]:
    """What trains in each stage: 1, the mixers' matrix parameters; 2, the mixers; 3, everything."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage == 3:
        return list(student.parameters())
    layers = decoder_layers(student)
    mixers = [layers[i].self_attn for i in mixer_layers(student)]
    if stage == 1:
        return [p for m in mixers for p in m.matrix_parameters()]
    return [p for m in mixers for p in m.parameters()]


def stage_loss(stage: int, student, teacher, input_ids: torch.Tensor) -> torch.Tensor:
    """The stage's loss on one micro-batch, averaged over the student's SSD layers (stages 1-2)."""
    layers = mixer_layers(student)
    if stage == 3:
        with torch.no_grad():
            teacher_logits = teacher(input_ids=input_ids, use_cache=False).logits
        return distillation_loss(teacher_logits, student(input_ids=input_ids, use_cache=False).logits)
    trace = trace_teacher(teacher, input_ids, layers, attention=stage == 1, io=True)
    student_layers = decoder_layers(student)
    losses = []
    for i in layers:
        if stage == 1:
            losses.append(matrix_loss(trace.attention[i], mixer_matrix(student_layers[i], trace.inputs[i])))
        else:
            losses.append(hidden_loss(trace.outputs[i], layer_forward(student_layers[i], trace.inputs[i])))
    return torch.stack(losses).mean()


def decay_groups(params: list[torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on matrices (and convolution kernels) only; none on
    vectors, which are D, biases, norm scales and the decay logits' bias (decaying them pulls
    D and the norms towards 0, which is not a regularizer but a change of the function)."""
    matrices = [p for p in params if p.ndim >= 2]
    vectors = [p for p in params if p.ndim < 2]
    return [{"params": matrices, "weight_decay": weight_decay}, {"params": vectors, "weight_decay": 0.0}]


@torch.no_grad()
def skip_least_squares(student, teacher, input_ids: torch.Tensor) -> list[torch.Tensor]:
    """Set every SSD mixer's skip D to its least-squares value given the rest of its matrix.

    The matrix is ``M = M0 + diag(D_h)`` per head, ``M0`` the decay-masked ``C B^T``. Minimizing
    ``sum_b ||A_bh - M0_bh - D_h I||_F^2`` over ``D_h`` gives the mean over rows and tokens of the
    diagonal of ``A - M0``. The official code starts D at 1; a stage 1 of a few hundred thousand
    tokens barely moves it, so stage 1 would start (and stay) farther from attention than the
    zero matrix. Returns the new D per layer.
    """
    layers = mixer_layers(student)
    trace = trace_teacher(teacher, input_ids, layers, attention=True, io=True)
    student_layers = decoder_layers(student)
    new = []
    for i in layers:
        mixer = student_layers[i].self_attn
        if not isinstance(mixer.D, torch.nn.Parameter):
            raise ValueError(f"layer {i}'s mixer has no trainable skip D")
        saved = mixer.D.detach().clone()
        mixer.D.zero_()
        without_skip = mixer_matrix(student_layers[i], trace.inputs[i].to(saved.dtype))
        residual = trace.attention[i].to(saved.dtype) - without_skip  # [b, h, T, T]
        mixer.D.copy_(residual.diagonal(dim1=-2, dim2=-1).mean(dim=(0, 2)))
        new.append(mixer.D.detach().clone())
    return new


@dataclass(frozen=True)
class StageBudget:
    stage: int
    tokens: int  # the stage's token budget (rounded down to whole updates)
    tokens_per_update: int
    micro_batch: int  # rows per forward/backward
    lr: float


@dataclass
class StageLog:
    stage: int
    updates: int
    tokens: int  # tokens actually consumed (all processes)
    losses: list[float] = field(default_factory=list)  # per update
    lrs: list[float] = field(default_factory=list)


def _world():
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train_stage(student, teacher, rows: torch.Tensor, budget: StageBudget, *, generator: torch.Generator,
                warmup: float = 0.1, decay: float = 0.2, weight_decay: float = 0.1, clip: float = 1.0,
                autocast_dtype: torch.dtype | None = None, checkpoint: Path | None = None,
                checkpoint_every: int = 0, desc: str | None = None) -> StageLog:
    """Train ``student`` on one stage for ``budget.tokens`` tokens of ``rows`` (token ids ``[N, T]``).

    AdamW (0.9, 0.95) with a warmup-stable-decay schedule and gradient
    clipping; micro-batches drawn at random (with replacement) from ``rows``.
    ``checkpoint``: a file written every ``checkpoint_every`` updates and read
    back when it exists (resume: the same stage continues where it stopped).
    """
    rank, world = _world()
    T = rows.shape[1]
    rows_per_update = budget.tokens_per_update // T
    if budget.tokens_per_update % (T * budget.micro_batch * world):
        raise ValueError(f"tokens_per_update ({budget.tokens_per_update}) must be a multiple of context x micro_batch x "
                         f"processes ({T} x {budget.micro_batch} x {world})")
    accumulation = rows_per_update // (budget.micro_batch * world)
    updates = budget.tokens // (rows_per_update * T)
    if updates < 1:
        raise ValueError(f"stage {budget.stage}: a budget of {budget.tokens} tokens is less than one update "
                         f"({rows_per_update * T} tokens)")
    device = next(student.parameters()).device
    params = stage_parameters(student, budget.stage)
    student.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(decay_groups(params, weight_decay), lr=budget.lr, betas=(0.9, 0.95))
    log = StageLog(budget.stage, updates, 0)
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["stage"] == budget.stage:
            student.load_state_dict(state["student"])
            opt.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            log, start = state["log"], state["update"]
    student.train()
    teacher.eval()
    bar = progress(total=updates, initial=start, desc=desc or f"stage {budget.stage}", disable=rank != 0)
    for update in range(start, updates):
        lr = budget.lr * wsd_factor(update, updates, warmup, decay)
        for group in opt.param_groups:
            group["lr"] = lr
        total = 0.0
        for _ in range(accumulation):
            idx = torch.randint(len(rows), (budget.micro_batch * world,), generator=generator)[rank::world]
            batch = rows[idx].to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = stage_loss(budget.stage, student, teacher, batch) / accumulation
            loss.backward()
            total += float(loss.detach())
        if world > 1:
            for p in params:
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= world
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        log.losses.append(total)
        log.lrs.append(lr)
        log.tokens += rows_per_update * T
        bar.update()
        bar.set_postfix(loss=f"{total:.3g}")
        if checkpoint is not None and checkpoint_every and (update + 1) % checkpoint_every == 0 and rank == 0:
            torch.save({"stage": budget.stage, "update": update + 1, "student": student.state_dict(),
                        "optimizer": opt.state_dict(), "generator": generator.get_state(), "log": log}, checkpoint)
    bar.close()
    student.eval()
    student.requires_grad_(True)
    return log


@torch.no_grad()
def evaluate(student, teacher, rows: torch.Tensor, *, micro_batch: int = 8) -> dict:
    """Student vs teacher on held-out rows ``[N, T + 1]`` (inputs and next-token labels).

    Perplexities of both, mean KL(teacher || student), top-1 agreement, and per
    SSD layer the stage-1 distance (attention vs mixer matrix) and the stage-2
    distance (block outputs), both on the teacher's inputs.
    """
    device, dtype = next(student.parameters()).device, next(student.parameters()).dtype
    layers = mixer_layers(student)
    student_layers = decoder_layers(student)
    sums = {"teacher_nll": 0.0, "student_nll": 0.0, "kl": 0.0, "agree": 0.0}
    matrix_d = torch.zeros(len(layers))
    attention_norm = torch.zeros(len(layers))  # the zero matrix's distance
    hidden_d = torch.zeros(len(layers))
    n_batches, n_tokens = 0, 0
    student.eval()
    for batch in rows.split(micro_batch):
        batch = batch.to(device)
        inputs, labels = batch[:, :-1], batch[:, 1:]
        trace = trace_teacher(teacher, inputs, layers, attention=True, io=True)
        s_logits = student(input_ids=inputs, use_cache=False).logits.float()
        t_logits = trace.logits.float()
        n = labels.numel()
        sums["teacher_nll"] += F.cross_entropy(t_logits.flatten(0, 1), labels.flatten(), reduction="sum").item()
        sums["student_nll"] += F.cross_entropy(s_logits.flatten(0, 1), labels.flatten(), reduction="sum").item()
        sums["kl"] += kl_to_teacher(t_logits, s_logits).item() * n
        sums["agree"] += (t_logits.argmax(-1) == s_logits.argmax(-1)).float().sum().item()
        for j, i in enumerate(layers):
            # In the student's precision (a bf16 teacher feeds an fp32 student).
            u, attn, out = (t[i].to(dtype) for t in (trace.inputs, trace.attention, trace.outputs))
            matrix_d[j] += matrix_loss(attn, mixer_matrix(student_layers[i], u)).item()
            attention_norm[j] += matrix_loss(attn, torch.zeros_like(attn)).item()
            hidden_d[j] += hidden_loss(out, layer_forward(student_layers[i], u)).item()
        n_batches += 1
        n_tokens += n
    return {"teacher_ppl": math.exp(sums["teacher_nll"] / n_tokens), "student_ppl": math.exp(sums["student_nll"] / n_tokens),
            "kl": sums["kl"] / n_tokens, "agreement": sums["agree"] / n_tokens, "layers": layers,
            "matrix_distance": (matrix_d / n_batches).tolist(), "attention_norm": (attention_norm / n_batches).tolist(),
            "hidden_distance": (hidden_d / n_batches).tolist()}
