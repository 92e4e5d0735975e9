"""The noise stream: z[seed, sample, step, element], a pure function of those four indices.

Philox4x32-10 (Salmon et al., SC'11) keyed by the 64-bit seed (k0 = low word, k1 = high word) with
counter (c0, c1, c2, c3) = (element // 4, sample low word, sample high word, step); lane
element % 4 of the 4 output words is used. Box-Muller turns word pairs (w0, w1), (w2, w3) into
normals: u = ((w >> 8) + 0.5) 2^-24 in (0, 1), r = sqrt(-2 ln u_even), theta = 2 pi u_odd,
z_even = r cos theta, z_odd = r sin theta, all in float32.

Because the counter holds the sample's own index, a sample's noise is the same whatever batch it is
in, however many processes draw it and whichever backend draws it. This file is the PyTorch
reference (vectorised, int64 arithmetic); csrc/philox.h (C++/CUDA) and kernels/philox.py (Triton)
implement the same words bit for bit.
"""

from __future__ import annotations

import torch

from . import _backends

PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments
PHILOX_ROUNDS = 10
MASK32 = 0xFFFFFFFF
TWO_PI = 6.283185307179586


def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit words of the 64-bit product a*b, b holding uint32 values in int64, no overflow."""
    p_lo = (a & 0xFFFF) * b  # < 2^48
    p_hi = (a >> 16) * b  # < 2^48
    hi = (p_hi + (p_lo >> 16)) >> 16
    lo = (p_lo + ((p_hi & 0xFFFF) << 16)) & MASK32
    return hi & MASK32, lo


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = PHILOX_ROUNDS):
    """Philox4x32 on int64 tensors holding uint32 values; returns the four output words."""
    for _ in range(rounds):
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
    return c0, c1, c2, c3


def _seed_words(seed: int) -> tuple[int, int]:
    seed &= (1 << 64) - 1
    return seed & MASK32, seed >> 32


def philox_words_ref(seed: int, step: int, sample_ids: torch.Tensor, numel: int) -> torch.Tensor:
    """The raw uint32 word behind each noise element, as int64 (N, numel)."""
    k0, k1 = _seed_words(int(seed))
    ids = sample_ids.to(torch.int64).reshape(-1, 1)
    e = torch.arange(numel, dtype=torch.int64, device=ids.device).reshape(1, -1)
    c0 = (e >> 2).expand(ids.shape[0], -1)
    c1 = (ids & MASK32).expand_as(c0)
    c2 = ((ids >> 32) & MASK32).expand_as(c0)
    c3 = torch.full_like(c0, int(step) & MASK32)
    words = torch.stack(philox4x32(c0, c1, c2, c3, k0, k1), dim=-1)  # (N, numel, 4)
    return torch.gather(words, -1, (e & 3).expand(ids.shape[0], -1).unsqueeze(-1)).squeeze(-1)


def words_to_uniform(w: torch.Tensor) -> torch.Tensor:
    """uint32 word -> float32 in (0, 1): 24 random bits, centred in their interval (never 0 or 1)."""
    return ((w >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)


# The step index reserved for the initial state x0 ~ U(0, 1) of a sample; Langevin steps count from 0.
INIT_STEP = 0xFFFFFFFF


def philox_uniform_ref(seed: int, step: int, sample_ids: torch.Tensor, numel: int) -> torch.Tensor:
    """Uniforms in (0, 1) (N, numel) float32 from the same words (used for x0 at INIT_STEP)."""
    return words_to_uniform(philox_words_ref(seed, step, sample_ids, numel))


def philox_normal_ref(seed: int, step: int, sample_ids: torch.Tensor, numel: int) -> torch.Tensor:
    """Standard normals z (N, numel), float32: the reference every backend is tested against."""
    k0, k1 = _seed_words(int(seed))
    ids = sample_ids.to(torch.int64).reshape(-1, 1)
    n_blocks = (numel + 3) // 4
    q = torch.arange(n_blocks, dtype=torch.int64, device=ids.device).reshape(1, -1).expand(ids.shape[0], -1)
    w = philox4x32(q, (ids & MASK32).expand_as(q), ((ids >> 32) & MASK32).expand_as(q),
                   torch.full_like(q, int(step) & MASK32), k0, k1)
    u = [words_to_uniform(x) for x in w]
    r01, r23 = torch.sqrt(-2.0 * torch.log(u[0])), torch.sqrt(-2.0 * torch.log(u[2]))
    t01, t23 = u[1] * TWO_PI, u[3] * TWO_PI
    z = torch.stack([r01 * torch.cos(t01), r01 * torch.sin(t01), r23 * torch.cos(t23), r23 * torch.sin(t23)], -1)
    return z.reshape(ids.shape[0], -1)[:, :numel]


# ---------------------------------------------------------------------------------------------
# The public op: backend choice, torch.library registration.

def _as_index_tensor(v, device) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.int64, device=device).reshape(-1)
    if t.numel() != 1:
        raise ValueError(f"seed and step must hold one integer, got shape {tuple(t.shape)}")
    return t


@_backends.fused_op("ncsn_fast::philox_normal", mutates_args=())
def _philox_normal_op(seed: torch.Tensor, step: torch.Tensor, sample_ids: torch.Tensor, numel: int,
                      backend: str) -> torch.Tensor:
    out = torch.empty(sample_ids.shape[0], numel, dtype=torch.float32, device=sample_ids.device)
    if backend == "torch":
        out.copy_(philox_normal_ref(int(seed.item()), int(step.item()), sample_ids, numel))
    elif backend == "cpu":
        ids = sample_ids.contiguous()
        _backends.ext().philox_normal_cpu(out.data_ptr(), ids.data_ptr(), ids.shape[0], numel,
                                          int(seed.item()) & ((1 << 64) - 1), int(step.item()) & MASK32)
    elif backend == "cuda":
        ids = sample_ids.contiguous()
        _backends.ext().philox_cuda(out.data_ptr(), ids.data_ptr(), ids.shape[0], numel, seed.data_ptr(),
                                    step.data_ptr(), False, _backends.stream(out.device))
    elif backend == "triton":
        from ..kernels.philox import philox_triton
        philox_triton(out, sample_ids.contiguous(), seed, step)
    else:
        raise ValueError(f"philox_normal: no {backend!r} implementation")
    return out


@_philox_normal_op.register_fake
def _(seed, step, sample_ids, numel, backend):
    return sample_ids.new_empty((sample_ids.shape[0], numel), dtype=torch.float32)


def philox_normal(seed, step, sample_ids: torch.Tensor, numel: int, backend: str = "auto") -> torch.Tensor:
    """Normals z (N, numel) float32 of samples `sample_ids` (global indices) at Langevin step `step`.

    seed and step may be ints or one-element int64 tensors on the samples' device (read there by the
    kernels, so a CUDA graph can update them between replays).
    """
    if sample_ids.dim() != 1 or sample_ids.dtype != torch.int64:
        raise ValueError(f"sample_ids must be a 1-D int64 tensor, got {sample_ids.dtype} {tuple(sample_ids.shape)}")
    device = sample_ids.device
    chosen = _backends.choose(backend, device)
    return _philox_normal_op(_as_index_tensor(seed, device), _as_index_tensor(step, device), sample_ids,
                             int(numel), chosen)


def philox_noise(seed: int, sample_ids: torch.Tensor, backend: str = "auto"):
    """A NoiseSampler for the samplers: step i draws philox_normal(seed, i, sample_ids) shaped like x."""
    def sample(step: int, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != sample_ids.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but {sample_ids.shape[0]} sample ids were given")
        z = philox_normal(seed, step, sample_ids.to(x.device), x[0].numel(), backend)
        return z.view(x.shape).to(x.dtype)
    return sample
