"""Teacher and student: swapping a Transformer's attention for SSD mixers, and
reading what the teacher's layers see and do.

Works on transformers' decoder-only models whose layers are
``model.model.layers[i]`` with a ``self_attn`` module (q/k/v projections and
an output projection ``o_proj`` or ``dense``) and an ``input_layernorm``:
Phi (parallel block: attention and MLP read the same normed input, as in
Phi-Mamba) and Llama (sequential block, SmolLM2) are the two the book uses.
Everything but the attention is kept: the student is a copy of the teacher
with its embeddings, norms, MLPs and head, so stage 3's weight transfer is
the copy itself.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import nn

from .ssd import SSDMixer

OUTPUT_PROJECTIONS = ("o_proj", "dense")


def decoder_layers(model) -> nn.ModuleList:
    """The model's decoder layers (``model.model.layers``), with a clear error for other layouts."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList) or not all(hasattr(layer, "self_attn") for layer in layers):
        raise ValueError(f"{type(model).__name__} is not a decoder-only transformers model with "
                         "model.model.layers[i].self_attn (Phi, Llama and their relatives are)")
    return layers


@dataclass(frozen=True)
class AttentionShape:
    d_model: int
    n_heads: int  # query heads: each SSD head pairs with one
    n_kv_heads: int
    head_dim: int


def attention_shape(model) -> AttentionShape:
    cfg = model.config
    n_heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    return AttentionShape(cfg.hidden_size, n_heads, getattr(cfg, "num_key_value_heads", None) or n_heads, head_dim)


def _output_projection(attn: nn.Module) -> nn.Linear:
    for name in OUTPUT_PROJECTIONS:
        if hasattr(attn, name):
            return getattr(attn, name)
    raise ValueError(f"{type(attn).__name__} has none of the output projections {OUTPUT_PROJECTIONS}")


def _per_query_head(weight: torch.Tensor, bias: torch.Tensor | None, shape: AttentionShape):
    """K or V projection rows repeated so that query head h reads its kv group h // (heads / kv heads) (GQA)."""
    rep = shape.n_heads // shape.n_kv_heads
    w = weight.view(shape.n_kv_heads, shape.head_dim, -1).repeat_interleave(rep, 0).flatten(0, 1)
    b = None if bias is None else bias.view(shape.n_kv_heads, shape.head_dim).repeat_interleave(rep, 0).flatten()
    return w, b


def _copy_linear(dst: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    dst.weight.copy_(weight)
    if dst.bias is not None:
        dst.bias.copy_(bias if bias is not None else torch.zeros_like(dst.bias))


def mixer_for(attn: nn.Module, shape: AttentionShape, *, state_size: int | None = None, chunk: int = 64,
              init: str = "random", decay: bool = True) -> SSDMixer:
    """An SSD mixer shaped like ``attn`` (one SSD head per query head, head dim = the attention's).

    ``init="random"``: fresh projections (the paper's weight transfer copies
    everything but the mixer). ``init="attention"``: x, B, C and the output
    projection start from the attention's V, K, Q and O (needs state size =
    head dim), so the student starts as causal linear attention.
    """
    if init not in ("random", "attention"):
        raise ValueError(f"init must be 'random' or 'attention', got {init!r}")
    has_bias = attn.q_proj.bias is not None
    mixer = SSDMixer(shape.d_model, shape.n_heads, shape.head_dim, state_size, bias=has_bias, chunk=chunk, decay=decay)
    ref = attn.q_proj.weight
    mixer.to(device=ref.device, dtype=ref.dtype)
    if init == "attention":
        if mixer.state_size != shape.head_dim:
            raise ValueError(f"init='attention' needs state_size = head_dim ({shape.head_dim}), got {mixer.state_size}")
        with torch.no_grad():
            _copy_linear(mixer.x_proj, *_per_query_head(attn.v_proj.weight, attn.v_proj.bias, shape))
            _copy_linear(mixer.B_proj, *_per_query_head(attn.k_proj.weight, attn.k_proj.bias, shape))
            _copy_linear(mixer.C_proj, attn.q_proj.weight * shape.head_dim ** -0.5,
                         None if attn.q_proj.bias is None else attn.q_proj.bias * shape.head_dim ** -0.5)
            out = _output_projection(attn)
            _copy_linear(mixer.out_proj, out.weight, out.bias)
    return mixer


def make_student(teacher, *, keep_attention: tuple[int, ...] = (), state_size: int | None = None, chunk: int = 64,
                 init: str = "random", decay: bool = True):
    """A copy of ``teacher`` with every layer's attention replaced by an SSD
    mixer, except the layers in ``keep_attention`` (a hybrid). All of the
    student's parameters are trainable; the stages choose what trains."""
    layers = decoder_layers(teacher)
    bad = [i for i in keep_attention if not 0 <= i < len(layers)]
    if bad:
        raise ValueError(f"keep_attention has layers {bad} outside 0..{len(layers) - 1}")
    shape = attention_shape(teacher)
    student = copy.deepcopy(teacher)
    for i, layer in enumerate(decoder_layers(student)):
        if i not in keep_attention:
            layer.self_attn = mixer_for(layer.self_attn, shape, state_size=state_size, chunk=chunk, init=init,
                                        decay=decay)
    student.requires_grad_(True)
    return student


def mixer_layers(student) -> list[int]:
    """Indices of the student's layers whose mixer is an SSD mixer."""
    return [i for i, layer in enumerate(decoder_layers(student)) if isinstance(layer.self_attn, SSDMixer)]


@dataclass
class TeacherTrace:
    """What each teacher layer saw and did on one batch (all detached).

    ``inputs[l]``: the residual stream entering layer l (before its norm);
    ``attention[l]``: its attention matrices ``[b, h, target, source]``;
    ``outputs[l]``: the residual stream leaving it; ``logits``: the output.
    """

    inputs: dict[int, torch.Tensor]
    attention: dict[int, torch.Tensor]
    outputs: dict[int, torch.Tensor]
    logits: torch.Tensor


@contextlib.contextmanager
def _eager_attention(model):
    """Attention weights exist only on the eager path (SDPA / flash return none)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


@torch.no_grad()
def trace_teacher(teacher, input_ids: torch.Tensor, layers: list[int] | None = None, *, attention: bool = True,
                  io: bool = True) -> TeacherTrace:
    """Run the teacher once, recording per layer its input, attention matrix and output.

    Hooks capture the layer's input (``hidden_states[-1]`` of transformers is
    after the final norm, not the last layer's input). Memory is
    ``T^2 x heads x len(layers)`` for the matrices: pass fewer layers for long T.
    """
    all_layers = decoder_layers(teacher)
    layers = list(range(len(all_layers))) if layers is None else list(layers)
    inputs, attn, outputs, handles = {}, {}, {}, []

    def on_layer_input(i):
        def hook(module, args, kwargs):
            inputs[i] = (args[0] if args else kwargs["hidden_states"]).detach()
        return hook

    def on_layer_output(i):
        def hook(module, args, kwargs, output):
            outputs[i] = (output[0] if isinstance(output, tuple) else output).detach()
        return hook

    def on_attention(i):
        def hook(module, args, output):
            attn[i] = output[1].detach()
        return hook

    for i in layers:
        if io:
            handles.append(all_layers[i].register_forward_pre_hook(on_layer_input(i), with_kwargs=True))
            handles.append(all_layers[i].register_forward_hook(on_layer_output(i), with_kwargs=True))
        if attention:
            handles.append(all_layers[i].self_attn.register_forward_hook(on_attention(i)))
    try:
        with _eager_attention(teacher) if attention else contextlib.nullcontext():
            logits = teacher(input_ids=input_ids, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()
    return TeacherTrace(inputs, attn, outputs, logits.detach())


def layer_forward(layer: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """One student decoder layer on its own (no mask, no positions: SSD mixers need neither)."""
    out = layer(hidden_states, attention_mask=None, position_ids=None, position_embeddings=None, use_cache=False)
    return out[0] if isinstance(out, tuple) else out


def mixer_matrix(layer: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """The student layer's mixing matrix on the residual stream ``hidden_states`` (its own norm applied first)."""
    return layer.self_attn.matrix(layer.input_layernorm(hidden_states))
