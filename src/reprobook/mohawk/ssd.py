"""The discrete SSD (Mamba-2 "state space duality") mixer, Phi-Mamba style.

Per head, with a scalar decay ``alpha_t = exp(-softplus(a_t))`` in (0, 1):

    h_t = alpha_t h_{t-1} + B_t x_t^T        (state: N x P)
    y_t = C_t^T h_t + D x_t

which unrolls to ``y = M x`` with the semiseparable mixing matrix

    M[t, s] = (C_t . B_s) prod_{k=s+1..t} alpha_k   (s <= t),   + D on the diagonal.

Two computations of the same layer: :func:`ssd_matrix` materializes M
(``O(T^2)``; the stage-1 target and the reference), :func:`ssd_scan` runs
the chunked algorithm (quadratic inside chunks of length Q, a recurrence on
states between chunks: ``O(T Q)``). Shapes follow attention: matrices are
``[batch, head, target, source]`` like attention weights ``[b, h, q, k]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SILU_ONE = 1.2784645427610738  # z with silu(z) = z * sigmoid(z) = 1: the gate starts as the identity


def segsum(log_alpha: torch.Tensor, above: float = -math.inf) -> torch.Tensor:
    """Stable segment sums: ``out[..., t, s] = sum_{k=s+1..t} log_alpha[..., k]``
    for ``s <= t`` and ``-inf`` above the diagonal, so ``exp(segsum)`` is the
    causal decay matrix.

    Built as a masked cumulative sum of the per-step values, never as a
    difference of cumulative sums (``cumsum_t - cumsum_s`` cancels
    catastrophically for long sequences and overflows above the diagonal).
    ``above`` replaces the ``-inf``: the chunked scan takes 0 and masks the
    scores itself, as ``exp(-inf)`` is several times slower than ``exp`` of a
    finite value on CPU.
    """
    T = log_alpha.size(-1)
    x = log_alpha[..., None, :].expand(*log_alpha.shape, T)  # x[..., s, k] = log_alpha[k]
    strictly_upper = torch.ones(T, T, dtype=torch.bool, device=log_alpha.device).triu(1)
    x = x.masked_fill(~strictly_upper, 0.0)  # keep k > s only
    # Summed over the last dimension (several times faster than over the one before), then transposed.
    out = x.cumsum(dim=-1).transpose(-1, -2)  # out[t, s] = sum_{s < k <= t}: 0 for s >= t
    if above == 0.0:
        return out
    lower = torch.ones(T, T, dtype=torch.bool, device=log_alpha.device).tril()
    return out.masked_fill(~lower, above)


def _check_ssd_inputs(x, log_alpha, B, C, D):
    if x.dim() != 4 or B.dim() != 4 or C.dim() != 4 or log_alpha.dim() != 3:
        raise ValueError("expected x [b, T, h, p], log_alpha [b, T, h], B and C [b, T, h, n]; got shapes "
                         f"{tuple(x.shape)}, {tuple(log_alpha.shape)}, {tuple(B.shape)}, {tuple(C.shape)}")
    b, T, h, _ = x.shape
    if log_alpha.shape != (b, T, h) or B.shape[:3] != (b, T, h) or C.shape != B.shape:
        raise ValueError(f"inconsistent shapes: x {tuple(x.shape)}, log_alpha {tuple(log_alpha.shape)}, "
                         f"B {tuple(B.shape)}, C {tuple(C.shape)}")
    if D is not None and D.shape != (h,):
        raise ValueError(f"D must have one value per head ({h},), got {tuple(D.shape)}")


def ssd_matrix(log_alpha: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
    """The materialized mixing matrix ``[b, h, T(target), T(source)]``."""
    scores = torch.einsum("bthn,bshn->bhts", C, B)
    M = scores * torch.exp(segsum(log_alpha.transpose(1, 2)))
    if D is not None:
        M = M + torch.diag_embed(D[None, :, None].expand(M.shape[0], -1, M.shape[-1]))
    return M


def ssd_materialized(x, log_alpha, B, C, D=None) -> torch.Tensor:
    """``y = M x`` per head through the materialized matrix; ``x [b, T, h, p] -> y [b, T, h, p]``."""
    _check_ssd_inputs(x, log_alpha, B, C, D)
    return torch.einsum("bhts,bshp->bthp", ssd_matrix(log_alpha, B, C, D), x)


def ssd_scan(x, log_alpha, B, C, D=None, chunk: int = 64) -> torch.Tensor:
    """The same ``y`` as :func:`ssd_materialized`, by the chunked SSD algorithm.

    The sequence is padded to a multiple of ``chunk`` (padding has x = B = C = 0
    and alpha = 1, so it changes nothing before it) and cut into chunks. Inside
    a chunk the output is the small materialized matrix; across chunks a
    state ``[h, n, p]`` is carried by a linear recurrence, so the cost is
    ``O(T * chunk)`` in time and the memory never holds a ``T x T`` matrix.
    """
    _check_ssd_inputs(x, log_alpha, B, C, D)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    b, T, h, p = x.shape
    n = B.shape[-1]
    pad = (-T) % chunk
    if pad:
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        log_alpha = F.pad(log_alpha, (0, 0, 0, pad))
    c = (T + pad) // chunk
    # Chunks laid out [b, c, h, l, *] so that every product below is one matmul batched over (b, c, h);
    # copied once, as each of x, B, C feeds two matmuls that would otherwise copy it each time.
    x, B, C = (t.reshape(b, c, chunk, h, t.shape[-1]).transpose(2, 3).contiguous() for t in (x, B, C))
    la = log_alpha.reshape(b, c, chunk, h).transpose(2, 3)  # [b, c, h, l]

    # 1. Inside each chunk: the diagonal blocks of M, scores C B^T times the decay, times x; tril_ makes
    #    them causal (above the diagonal segsum is 0 here, so the decay is 1).
    y = (C @ B.transpose(-1, -2) * torch.exp(segsum(la, above=0.0))).tril_() @ x  # [b, c, h, l, p]

    # 2. Each chunk's contribution to the state at its end: decay from s to the chunk's end,
    #    sum_{k=s+1..l} log_alpha_k, as a reversed cumulative sum (stable, <= 0), folded into B.
    to_end = la.flip(-1).cumsum(-1).flip(-1) - la
    chunk_states = (B * torch.exp(to_end)[..., None]).transpose(-1, -2) @ x  # [b, c, h, n, p]

    # 3. Carry the state across chunks (linear in the number of chunks).
    chunk_decay = torch.exp(la.sum(-1))  # [b, c, h]: the decay over a whole chunk
    state = x.new_zeros(b, h, n, p)
    states = []
    for k in range(c):
        states.append(state)
        state = torch.addcmul(chunk_states[:, k], state, chunk_decay[:, k, :, None, None])
    states = torch.stack(states, dim=1)  # [b, c, h, n, p]: the state entering each chunk

    # 4. The carried state's contribution inside each chunk: decay from the chunk's start to t, folded into C.
    from_start = torch.exp(la.cumsum(-1))  # [b, c, h, l]
    y = y + (C * from_start[..., None]) @ states
    if D is not None:
        y = y + D[:, None, None] * x
    return y.transpose(2, 3).reshape(b, c * chunk, h, p)[:, :T]


class CausalDepthwiseConv(nn.Module):
    """A short causal depthwise convolution over time, initialized to the identity
    (the last tap is 1, the others 0) so the mixer starts as plain projections."""

    def __init__(self, channels: int, kernel: int = 4):
        super().__init__()
        if kernel < 1:
            raise ValueError(f"kernel must be >= 1, got {kernel}")
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels, padding=kernel - 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0, -1] = 1.0
            self.conv.bias.zero_()

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # [b, T, c] -> [b, T, c]
        T = u.shape[1]
        return self.conv(u.transpose(1, 2))[..., :T].transpose(1, 2)


class SSDMixer(nn.Module):
    """Phi-Mamba's discrete SSD mixer, a drop-in for a multi-head attention module.

    ``n_heads`` heads of width ``head_dim`` (each pairs with one attention
    head), state size ``state_size`` (Phi-Mamba: = head_dim), expand 1, no
    positional encoding. Input projections to x, B, C (then the identity-
    initialized causal conv, no activation), to the gate z (initialized so
    silu(z) = 1) and to the per-head decay logit a; D = 1; output projection.
    ``decay=False`` fixes alpha = 1 and ``skip=False`` drops D: causal linear
    attention, a causal low-rank matrix (the matrix-fitting study's low-rank
    family).

    Called like an attention module (``hidden_states`` plus ignored keyword
    arguments), it returns ``(output, None)``.
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int, state_size: int | None = None, *,
                 conv_kernel: int = 4, bias: bool = False, decay: bool = True, skip: bool = True, chunk: int = 64):
        super().__init__()
        state_size = head_dim if state_size is None else state_size
        if min(d_model, n_heads, head_dim, state_size, chunk) < 1:
            raise ValueError("d_model, n_heads, head_dim, state_size and chunk must be >= 1")
        self.n_heads, self.head_dim, self.state_size, self.chunk, self.decay = n_heads, head_dim, state_size, chunk, decay
        inner = n_heads * head_dim
        self.x_proj = nn.Linear(d_model, inner, bias=bias)
        self.B_proj = nn.Linear(d_model, n_heads * state_size, bias=bias)
        self.C_proj = nn.Linear(d_model, n_heads * state_size, bias=bias)
        self.z_proj = nn.Linear(d_model, inner, bias=True)
        self.a_proj = nn.Linear(d_model, n_heads, bias=True)
        self.x_conv = CausalDepthwiseConv(inner, conv_kernel)
        self.bc_conv = CausalDepthwiseConv(2 * n_heads * state_size, conv_kernel)
        if skip:
            self.D = nn.Parameter(torch.ones(n_heads))
        else:  # no skip term: the matrix is exactly (C B^T) masked by the decay
            self.register_buffer("D", torch.zeros(n_heads))
        self.out_proj = nn.Linear(inner, d_model, bias=bias)
        with torch.no_grad():
            # B and C start small, so the matrix starts near D * I instead of a large random
            # C B^T (whose entries grow like sqrt(state_size)); fitting then converges far faster.
            self.B_proj.weight.mul_(0.1)
            self.C_proj.weight.mul_(0.1)
            self.z_proj.weight.zero_()
            self.z_proj.bias.fill_(SILU_ONE)
            self.a_proj.weight.mul_(0.1)
            # Per-head decay rates softplus(a) spread log-uniformly in [1e-3, 1e-1] (Mamba-2's dt range):
            # some heads remember long, some short.
            rates = torch.logspace(-3, -1, n_heads)
            self.a_proj.bias.copy_(torch.log(torch.expm1(rates)))

    def matrix_parameters(self) -> list[nn.Parameter]:
        """The parameters that shape the mixing matrix (trained in stage 1)."""
        return [*self.B_proj.parameters(), *self.C_proj.parameters(), *self.bc_conv.parameters(),
                *self.a_proj.parameters(), *([self.D] if isinstance(self.D, nn.Parameter) else [])]

    def ssm_inputs(self, u: torch.Tensor):
        """x ``[b, T, h, p]``, log alpha ``[b, T, h]``, B and C ``[b, T, h, n]`` from the mixer's input ``u [b, T, d]``."""
        b, T, _ = u.shape
        h, n = self.n_heads, self.state_size
        x = self.x_conv(self.x_proj(u)).view(b, T, h, self.head_dim)
        B, C = self.bc_conv(torch.cat([self.B_proj(u), self.C_proj(u)], dim=-1)).view(b, T, 2, h, n).unbind(2)
        if self.decay:
            log_alpha = -F.softplus(self.a_proj(u))
        else:
            log_alpha = u.new_zeros(b, T, h)
        return x, log_alpha, B, C

    def matrix(self, u: torch.Tensor) -> torch.Tensor:
        """The mixing matrix ``[b, h, target, source]`` this layer applies to x on input ``u``."""
        _, log_alpha, B, C = self.ssm_inputs(u)
        return ssd_matrix(log_alpha, B, C, self.D)

    def forward(self, hidden_states: torch.Tensor, *args, materialize: bool = False, **kwargs):
        b, T, _ = hidden_states.shape
        x, log_alpha, B, C = self.ssm_inputs(hidden_states)
        if materialize:
            y = ssd_materialized(x, log_alpha, B, C, self.D)
        else:
            y = ssd_scan(x, log_alpha, B, C, self.D, chunk=self.chunk)
        y = y.reshape(b, T, -1) * F.silu(self.z_proj(hidden_states))
        return self.out_proj(y), None


class ToeplitzMixer(nn.Module):
    """An input-independent causal Toeplitz matrix per head, ``M[t, s] = c[t - s]``
    (a long convolution): the matrix-fitting study's weakest family."""

    def __init__(self, n_heads: int, max_len: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.zeros(n_heads, max_len))

    def matrix(self, u: torch.Tensor) -> torch.Tensor:
        b, T, _ = u.shape
        if T > self.kernel.shape[1]:
            raise ValueError(f"sequence length {T} exceeds the Toeplitz kernel's length {self.kernel.shape[1]}")
        lag = torch.arange(T)[:, None] - torch.arange(T)[None, :]
        M = self.kernel[:, lag.clamp(min=0)] * (lag >= 0)
        return M.expand(b, -1, -1, -1)
