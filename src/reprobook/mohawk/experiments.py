"""Chapter 06's experiments: the teacher, the matrix-fitting study, the three
arms at equal tokens, and the scan-vs-materialized benchmark."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass

import torch

from ..common import progress
from ..models import (load_causal_lm, pack_documents, python_docs_paragraphs, tiny_phi, train_bpe_tokenizer,
                      train_causal_lm)
from .config import Config
from .distill import StageBudget, evaluate, matrix_loss, skip_least_squares, stage_loss, train_stage
from .ssd import SSDMixer, ToeplitzMixer, ssd_materialized, ssd_scan
from .student import attention_shape, decoder_layers, make_student, mixer_layers, trace_teacher


@dataclass
class Setup:
    teacher: torch.nn.Module
    tokenizer: object
    train_rows: torch.Tensor  # [N, context + 1] token ids
    eval_rows: torch.Tensor
    teacher_losses: list[float]  # per training step ([] for a pretrained teacher)


def text_rows(tokenizer, context: int, eval_rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Python's documentation as rows of ``context + 1`` ids, split at random into train and held-out rows."""
    paragraphs = python_docs_paragraphs()
    docs = [tokenizer.encode(p, add_special_tokens=False) for p in paragraphs]
    rows = pack_documents(docs, context, tokenizer.eos_token_id)
    if eval_rows >= len(rows):
        raise ValueError(f"eval_rows ({eval_rows}) must be fewer than the {len(rows)} rows of the corpus")
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    return rows[order[eval_rows:]], rows[order[:eval_rows]]


def make_setup(cfg: Config, device: str = "cpu", seed: int = 0) -> Setup:
    """The teacher (trained here when ``cfg.teacher == "tiny"``, else loaded) and the text rows."""
    if cfg.teacher == "tiny":
        tokenizer = train_bpe_tokenizer(python_docs_paragraphs(), cfg.vocab_size)
        train_rows, eval_rows = text_rows(tokenizer, cfg.context, cfg.eval_rows, seed)
        teacher = tiny_phi(len(tokenizer), d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                           context=cfg.context + 1, seed=seed).to(device)
        losses = train_causal_lm(teacher, train_rows, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                 generator=torch.Generator().manual_seed(seed), desc="teacher")
        teacher.requires_grad_(False)
    else:
        dtype = torch.bfloat16 if cfg.bf16 else torch.float32
        teacher, tokenizer = load_causal_lm(cfg.teacher, device=device, dtype=dtype)
        train_rows, eval_rows = text_rows(tokenizer, cfg.context, cfg.eval_rows, seed)
        losses = []
    return Setup(teacher, tokenizer, train_rows, eval_rows, losses)


# --- The matrix-fitting study ---------------------------------------------------------------------------------

def matrix_families(cfg: Config, teacher) -> dict[str, callable]:
    """Constructors of the fitted mixer families, weakest first (the paper's Table 1 order)."""
    shape = attention_shape(teacher)
    d, h, p = shape.d_model, shape.n_heads, shape.head_dim

    def ssd(state):
        mixer = SSDMixer(d, h, p, state)
        with torch.no_grad():  # every family starts at (about) the zero matrix: D = 0, small B and C
            mixer.D.zero_()
        return mixer

    return {
        "Toeplitz": lambda: ToeplitzMixer(h, cfg.context),
        f"causal low-rank (r={cfg.small_state})": lambda: SSDMixer(d, h, p, cfg.small_state, decay=False, skip=False),
        f"SSD (N={cfg.small_state})": lambda: ssd(cfg.small_state),
        f"SSD (N={cfg.large_state})": lambda: ssd(cfg.large_state),
    }


def fit_matrices(teacher, rows: torch.Tensor, held_out: torch.Tensor, families: dict, layers: list[int], *,
                 steps: int, lr: float, batch: int, seed: int = 0, examples: dict | None = None) -> dict[str, list[float]]:
    """Fit each family's mixing matrix to the teacher's attention matrices, layer by layer
    (Adam on the stage-1 loss, the mixer reading the layer's normed input),
    and score the fit by the Frobenius distance on the fitted rows and on held-out rows.
    Returns ``{"held-out": {family: [distance per layer]}, "train": ..., "start": ...}``
    ("start": held-out, before fitting); the Frobenius norm of the attention itself
    (the distance of the zero matrix) is under ``"zero matrix"``.
    ``examples``, when given, receives ``{layer: {name: matrix}}`` for the first
    held-out row's first head (the teacher's under ``"attention"``)."""
    device = next(teacher.parameters()).device
    out = {split: {"zero matrix": [], **{name: [] for name in families}} for split in ("held-out", "train", "start")}
    all_layers = decoder_layers(teacher)
    bar = progress(total=len(layers) * len(families), desc="matrix fits")
    for layer in layers:
        norm = all_layers[layer].input_layernorm
        train = trace_teacher(teacher, rows.to(device), [layer])
        test = trace_teacher(teacher, held_out.to(device), [layer])
        u_train, a_train = norm(train.inputs[layer]).float(), train.attention[layer].float()
        u_test, a_test = norm(test.inputs[layer]).float(), test.attention[layer].float()
        out["held-out"]["zero matrix"].append(matrix_loss(a_test, torch.zeros_like(a_test)).item())
        out["start"]["zero matrix"].append(out["held-out"]["zero matrix"][-1])
        out["train"]["zero matrix"].append(matrix_loss(a_train, torch.zeros_like(a_train)).item())
        if examples is not None:
            examples[layer] = {"attention": a_test[0, 0].cpu()}
        for name, build in families.items():
            torch.manual_seed(seed)
            mixer = build().to(device)
            with torch.no_grad():
                out["start"][name].append(matrix_loss(a_test, mixer.matrix(u_test)).item())
            opt = torch.optim.Adam(mixer.parameters(), lr=lr)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(steps):
                idx = torch.randint(len(u_train), (batch,), generator=gen)
                loss = matrix_loss(a_train[idx], mixer.matrix(u_train[idx]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                fitted = mixer.matrix(u_test)
                out["held-out"][name].append(matrix_loss(a_test, fitted).item())
                out["train"][name].append(matrix_loss(a_train, mixer.matrix(u_train)).item())
                if examples is not None:
                    examples[layer][name] = fitted[0, 0].cpu()
            bar.update()
    bar.close()
    return out


# --- The arms ------------------------------------------------------------------------------------------------

def arm_budgets(arm: str, cfg: Config) -> list[StageBudget]:
    """The stages of ``arm`` and their token budgets; every arm spends ``cfg.total_tokens``
    (stage 3 gets what stages 1-2 leave, in whole updates)."""
    stages = [int(s) for s in arm.split(" ")[0].split("+")]
    budgets, spent = [], 0
    for stage, fraction in ((1, cfg.stage1_fraction), (2, cfg.stage2_fraction)):
        if stage in stages:
            per = cfg.tokens_per_update_12
            tokens = int(fraction * cfg.total_tokens) // per * per
            if tokens:
                lr = cfg.lr_1 if stage == 1 else cfg.lr_12
                budgets.append(StageBudget(stage, tokens, per, cfg.micro_batch, lr))
                spent += tokens
    per = cfg.tokens_per_update_3
    lr_3 = cfg.lr_12 if arm.endswith("(lr_12)") else cfg.lr_3
    budgets.append(StageBudget(3, (cfg.total_tokens - spent) // per * per, per, cfg.micro_batch, lr_3))
    return budgets


def run_arm(setup: Setup, cfg: Config, arm: str, seed: int, *, checkpoint_dir=None) -> dict:
    """Distil a student from the teacher through the arm's stages; evaluate it on the held-out rows."""
    torch.manual_seed(seed)
    student = make_student(setup.teacher, keep_attention=cfg.keep_attention, state_size=cfg.student_state,
                           chunk=cfg.chunk, init=cfg.mixer_init)
    torch.nn.Module.float(student)  # fp32 master weights (the teacher may be bf16; autocast does the rest).
    # (nn.Module.float directly: transformers refuses .float() on a model loaded from a quantized GGUF.)
    generator = torch.Generator().manual_seed(seed)
    autocast = torch.bfloat16 if cfg.bf16 else None
    logs, start = [], time.perf_counter()
    inputs = setup.train_rows[:, :-1]
    stage1 = {}
    for budget in arm_budgets(arm, cfg):
        if budget.stage == 1:
            stage1 = start_stage1(student, setup.teacher, inputs[:cfg.skip_init_rows], cfg.skip_init)
        ckpt = None if checkpoint_dir is None else checkpoint_dir / f"arm{arm}-seed{seed}-stage{budget.stage}.pt"
        log = train_stage(student, setup.teacher, inputs, budget, generator=generator, warmup=cfg.warmup,
                          decay=cfg.decay, autocast_dtype=autocast, checkpoint=ckpt,
                          checkpoint_every=cfg.checkpoint_every, desc=f"arm {arm} seed {seed}: stage {budget.stage}")
        logs.append({"stage": log.stage, "updates": log.updates, "tokens": log.tokens, "losses": log.losses})
        if budget.stage == 1:  # where stage 1 left each layer, on the held-out rows
            after = evaluate(student, setup.teacher, setup.eval_rows, micro_batch=cfg.micro_batch)
            stage1.update(matrix_distance=after["matrix_distance"], attention_norm=after["attention_norm"])
    metrics = evaluate(student, setup.teacher, setup.eval_rows, micro_batch=cfg.micro_batch)
    return {"arm": arm, "seed": seed, "tokens": sum(x["tokens"] for x in logs), "stages": logs, "stage1": stage1,
            "seconds": time.perf_counter() - start, **metrics}


@torch.no_grad()
def start_stage1(student, teacher, rows: torch.Tensor, skip_init: str) -> dict:
    """Set D for stage 1 (``"least-squares"``, ``"zero"``, or ``"one"``: the official start) and
    return the stage-1 loss on ``rows`` with the official D = 1 and with the chosen D."""
    official = stage_loss(1, student, teacher, rows).item()
    if skip_init == "least-squares":
        skip_least_squares(student, teacher, rows)
    elif skip_init == "zero":
        for i in mixer_layers(student):
            decoder_layers(student)[i].self_attn.D.zero_()
    elif skip_init != "one":
        raise ValueError(f"skip_init must be 'least-squares', 'zero' or 'one', got {skip_init!r}")
    return {"skip_init": skip_init, "loss_official_start": official, "loss_start": stage_loss(1, student, teacher, rows).item()}


def run_arms(setup: Setup, cfg: Config, *, checkpoint_dir=None) -> list[dict]:
    return [run_arm(setup, cfg, arm, seed, checkpoint_dir=checkpoint_dir) for seed in cfg.seeds for arm in cfg.arms]


# --- Scan vs materialized --------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence file descriptor 2 for a moment: the profiler's C++ backend logs its start and
    stop (with timestamps) there, which a notebook kernel would capture as output."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_mb(fn, device: str = "cpu") -> float:
    """Peak memory allocated while ``fn()`` runs, in MiB above what was allocated before:
    CUDA's allocator statistics on a GPU; on the CPU, torch's profiler's
    allocation records replayed in time order."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    deltas = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                    for e in prof.events())
    current = peak = 0
    for _, delta in deltas:
        current += delta
        peak = max(peak, current)
    return peak / 2**20


def _best_time(fn, repeats: int, device: str) -> float:
    best = math.inf
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def scan_benchmark(lengths, *, n_heads: int = 4, head_dim: int = 32, state_size: int = 32, chunk: int = 64,
                   repeats: int = 3, device: str = "cpu", seed: int = 0) -> list[dict]:
    """Forward time (best of ``repeats``) and peak memory of one SSD layer's
    ``y = M x`` by the chunked scan and by the materialized matrix, per length;
    plus the largest difference between the two outputs."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for T in progress(lengths, desc="scan vs materialized"):
        x = torch.randn(1, T, n_heads, head_dim, generator=gen).to(device)
        B, C = (torch.randn(1, T, n_heads, state_size, generator=gen).to(device) / state_size ** 0.5 for _ in range(2))
        log_alpha = -torch.nn.functional.softplus(torch.randn(1, T, n_heads, generator=gen)).to(device)
        scan = lambda: ssd_scan(x, log_alpha, B, C, chunk=chunk)  # noqa: E731
        full = lambda: ssd_materialized(x, log_alpha, B, C)  # noqa: E731
        scan(), full()  # warm-up
        rows.append({"T": T, "scan_s": _best_time(scan, repeats, device), "materialized_s": _best_time(full, repeats, device),
                     "scan_mb": peak_memory_mb(scan, device), "materialized_mb": peak_memory_mb(full, device),
                     "max_abs_diff": (scan() - full()).abs().max().item()})
    return rows


# --- Everything, for the long and full presets --------------------------------------------------------------------

def study_record(cfg: Config, setup: Setup, fit_layers: list[int], fits: dict, arms: list[dict], bench: list[dict],
                 *, seed: int, device: str) -> dict:
    """The three experiments' results as one JSON-able dict (what ``results/mohawk/<preset>.json`` holds)."""
    return {"teacher": cfg.teacher, "seed": seed, "device": device, "attention_shape": vars(attention_shape(setup.teacher)),
            "teacher_params": sum(p.numel() for p in setup.teacher.parameters()),
            "train_rows": len(setup.train_rows), "eval_rows": len(setup.eval_rows), "fit_layers": fit_layers,
            "matrix_fits": fits, "arms": arms, "scan_benchmark": bench}


def run_study(cfg: Config, *, seed: int = 0, device: str = "cpu", checkpoint_dir=None) -> dict:
    """The chapter's three experiments on ``cfg.teacher`` in one call (for scripts: the GPU check, torchrun)."""
    start = time.perf_counter()
    setup = make_setup(cfg, device, seed)
    shape = attention_shape(setup.teacher)
    layers = list(cfg.fit_layers) or list(range(len(decoder_layers(setup.teacher))))
    fits = fit_matrices(setup.teacher, setup.train_rows[:cfg.fit_rows, :-1], setup.eval_rows[:, :-1],
                        matrix_families(cfg, setup.teacher), layers, steps=cfg.fit_steps, lr=cfg.fit_lr,
                        batch=cfg.fit_batch, seed=seed)
    arms = run_arms(setup, cfg, checkpoint_dir=checkpoint_dir)
    bench = scan_benchmark(cfg.bench_lengths, n_heads=shape.n_heads, head_dim=shape.head_dim,
                           state_size=shape.head_dim, chunk=cfg.chunk, repeats=cfg.bench_repeats, device=device,
                           seed=seed)
    record = study_record(cfg, setup, layers, fits, arms, bench, seed=seed, device=device)
    return {**record, "seconds": time.perf_counter() - start}
