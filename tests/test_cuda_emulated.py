"""The CUDA kernels and launchers of csrc/*.cu, run on the CPU through a stand-in for the CUDA runtime.

nvcc compiles the CUDA sources in every build, but only a GPU runs them. Here g++ compiles the same files
against tests/cuda_emu/cuda_runtime.h (each CUDA thread a fiber; __syncthreads and warp shuffles are barriers
between them), after each `kernel<<<grid, block, smem, stream>>>(args)` is rewritten into an emulated launch,
so the kernels' index arithmetic, grid-stride loops, layouts, dtypes, warp and block reductions and the
launchers' grid sizes are checked against the PyTorch references without a GPU. Device maths (cosf, expm1f,
...) is the host's libm here, so normals are compared to 1e-6 as across the other backends.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ncsn_fast.ops import (
    group_norm_act_ref,
    instance_norm_plus_ref,
    langevin_coefs,
    philox_normal_ref,
    pool5x5_ref,
)
from ncsn_fast.ops.philox import philox_words_ref
from ncsn_fast.ops.sampler_update import sampler_update_ref

REPO = Path(__file__).resolve().parents[1]
CSRC = REPO / "csrc"
EMU = Path(__file__).with_name("cuda_emu")
CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None, reason="needs a C++ compiler to build the emulated CUDA sources")
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
MAX_ROWS = 3

SHIM = r"""
#include "ops_cuda.h"
using namespace ncsn;
extern "C" {
int emu_philox(void* out, const int64_t* ids, int64_t n, int64_t numel, const int64_t* seed, const int64_t* step,
               int words) { return philox_cuda(out, ids, n, numel, seed, step, words != 0, 0); }
int emu_sampler_update(float* x, float* p, const void* h, int dtype, const int64_t* ids, int64_t n, int64_t channels,
                       int64_t hw, int channels_last, const int64_t* seed, const int64_t* step, const float* coefs,
                       const float* mult) {
  return sampler_update_cuda(x, p, h, dtype, ids, n, channels, hw, channels_last != 0, seed, step, coefs, mult, 0);
}
int emu_instance_norm_plus(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                           int channels_last, const float* gamma, const float* alpha, const float* beta,
                           int64_t param_stride, int elu, float* work) {
  return instance_norm_plus_cuda(x, out, dtype, n, channels, hw, channels_last != 0, gamma, alpha, beta,
                                 param_stride, elu != 0, work, 0);
}
int emu_pool5x5(const void* x, void* out, int dtype, int is_max, int64_t n, int64_t channels, int64_t height,
                int64_t width, int channels_last) {
  return pool5x5_cuda(x, out, dtype, is_max != 0, n, channels, height, width, channels_last != 0, 0);
}
int emu_elu(const void* x, void* out, int dtype, int64_t numel) { return elu_cuda(x, out, dtype, numel, 0); }
int emu_group_norm_act(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                       int channels_last, int64_t groups, float eps, const float* weight, const float* bias,
                       const float* add, int silu, float* work) {
  return group_norm_act_cuda(x, out, dtype, n, channels, hw, channels_last != 0, groups, eps, weight, bias, add,
                             silu != 0, work, 0);
}
}
"""


def _matching(src: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(src)):
        depth += {"(": 1, ")": -1}.get(src[i], 0)
        if depth == 0:
            return i
    raise ValueError("unbalanced parentheses")


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


def rewrite_launches(src: str) -> str:
    """`kernel<<<grid, block[, smem, stream]>>>(args)` -> `::cuda_emu::launch(dim3(grid), dim3(block), [&] {...})`."""
    out, i = [], 0
    while (j := src.find("<<<", i)) >= 0:
        name = re.search(r"([A-Za-z_]\w*(?:<[^<>;(){}]*>)?)\s*$", src[i:j])
        k = src.index(">>>", j)
        config = _split_top(src[j + 3:k])
        p = k + 3
        q = _matching(src, p)
        out.append(src[i:i + name.start(1)])
        call = f"{name.group(1)}{src[p:q + 1]}"
        out.append(f"::cuda_emu::launch(dim3({config[0]}), dim3({config[1]}), [&] {{ {call}; }})")
        i = q + 1
    out.append(src[i:])
    return "".join(out)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    build = tmp_path_factory.mktemp("cuda_emu")
    sources = []
    for cu in sorted(CSRC.glob("*.cu")):
        path = build / (cu.stem + "_emu.cpp")
        path.write_text(rewrite_launches(cu.read_text()))
        sources.append(str(path))
    (build / "shim.cpp").write_text(SHIM)
    lib = build / "libcuda_emu.so"
    # gridDim.y limited to 3 rows (CUDA: 65535), launcher and emulator alike: batches of 4+ exercise the chunking;
    # grid-stride launchers start one block, so their loops run several times on these shapes
    limit = [f"-DNCSN_MAX_GRID_Y={MAX_ROWS}", f"-DCUDA_EMU_MAX_GRID_Y={MAX_ROWS}", "-DNCSN_MAX_STRIDE_BLOCKS=1"]
    cmd = [CXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-w", *limit, f"-I{EMU}", f"-I{CSRC}", *sources,
           str(build / "shim.cpp"), "-o", str(lib)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return ctypes.CDLL(str(lib))


def _p(t: torch.Tensor | None):
    return ctypes.c_void_p(t.data_ptr() if t is not None else 0)


I64 = ctypes.c_int64


def test_every_launch_is_rewritten():
    for cu in CSRC.glob("*.cu"):
        assert "<<<" not in rewrite_launches(cu.read_text()), cu.name
    assert rewrite_launches("k<true><<<g, 256, 0, s>>>(a, f(b, c));") == \
        "::cuda_emu::launch(dim3(g), dim3(256), [&] { k<true>(a, f(b, c)); });"


def test_philox(emu):
    ids = torch.tensor([0, 5, 2 ** 32 - 1, 2 ** 32 + 3])  # across the 32-bit sample boundary
    numel = 75  # not a multiple of 4: the last group is partial
    seed, step = torch.tensor([2 ** 40 + 3]), torch.tensor([17])
    words = torch.empty(4, numel, dtype=torch.int64)
    assert emu.emu_philox(_p(words), _p(ids), I64(4), I64(numel), _p(seed), _p(step), 1) == 0
    assert torch.equal(words, philox_words_ref(2 ** 40 + 3, 17, ids, numel))
    z = torch.empty(4, numel)
    assert emu.emu_philox(_p(z), _p(ids), I64(4), I64(numel), _p(seed), _p(step), 0) == 0
    assert (z - philox_normal_ref(2 ** 40 + 3, 17, ids, numel)).abs().max() <= 1e-6


@pytest.mark.parametrize("dtype", DTYPE_CODES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("shape", [(3, 3, 5, 7), (2, 3, 32, 32)], ids=["odd", "cifar"])
def test_langevin_row(emu, dtype, channels_last, shape):
    """Annealed Langevin's row of the sampler update: x + (a c) h + b z, p left as it was."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g) * 3
    h = torch.randn(shape, generator=g).to(dtype)
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    n, c = shape[:2]
    hw = shape[2] * shape[3]
    ids = torch.arange(10, 10 + n)
    coefs = langevin_coefs(step_size=0.37, score_scale=1 / 0.2)
    x, p, mult = x0.clone(), torch.zeros(shape), torch.ones(n, 2)
    seed, step = torch.tensor([1234]), torch.tensor([77])
    assert emu.emu_sampler_update(_p(x), _p(p), _p(h), DTYPE_CODES[dtype], _p(ids), I64(n), I64(c), I64(hw),
                                  int(channels_last), _p(seed), _p(step), _p(coefs), _p(mult)) == 0
    z = philox_normal_ref(1234, 77, ids, x0[0].numel()).view_as(x0)
    ref = (x0 + coefs[1] * h.float()) + coefs[3] * z
    tol = coefs[3].item() * 1e-6 + 4 * torch.finfo(torch.float32).eps * (x0.abs() + 2 * 1.85 * h.float().abs()).max()
    assert (x - ref).abs().max() <= tol
    assert not p.any()


@pytest.mark.parametrize("dtype", DTYPE_CODES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("shape", [(3, 3, 5, 7), (2, 3, 32, 32)], ids=["odd", "cifar"])
def test_sampler_update(emu, dtype, channels_last, shape):
    g = torch.Generator().manual_seed(0)
    x0, p0 = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g)
    h = torch.randn(shape, generator=g).to(dtype)
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    n, c = shape[:2]
    hw = shape[2] * shape[3]
    ids = torch.arange(10, 10 + n)
    coefs = torch.tensor([0.9, -0.37, 0.25, 0.6, 1.0, 0.8, -0.5, 0.2])
    mult = 0.5 + torch.rand(n, 2, generator=g)
    x, p = x0.clone(), p0.clone()
    seed, step = torch.tensor([1234]), torch.tensor([77])
    assert emu.emu_sampler_update(_p(x), _p(p), _p(h), DTYPE_CODES[dtype], _p(ids), I64(n), I64(c), I64(hw),
                                  int(channels_last), _p(seed), _p(step), _p(coefs), _p(mult)) == 0
    z = philox_normal_ref(1234, 77, ids, x0[0].numel())
    ref_x, ref_p = sampler_update_ref(x0, p0, h, coefs, mult, z)
    big = (x0.abs() + h.float().abs() * mult.max() + p0.abs()).max()
    tol = 0.6 * mult[:, 1].max() * 1e-6 + 6 * torch.finfo(torch.float32).eps * big
    assert (x - ref_x).abs().max() <= tol
    assert (p - ref_p).abs().max() <= tol


@pytest.mark.parametrize("dtype", DTYPE_CODES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("shape", [(3, 5, 7, 3), (2, 4, 20, 20)], ids=["under_a_block", "over_a_block"])
@pytest.mark.parametrize("cond,elu", [(False, False), (False, True), (True, True)], ids=["in", "in_elu", "cin_elu"])
def test_instance_norm_plus(emu, dtype, channels_last, shape, cond, elu):
    g = torch.Generator().manual_seed(1)
    n, c, hh, ww = shape
    x = (torch.randn(shape, generator=g) * 2 + 3).to(dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ps = (n, c) if cond else (c,)
    gamma, alpha = 1 + 0.2 * torch.randn(ps, generator=g), 1 + 0.2 * torch.randn(ps, generator=g)
    beta = 0.2 * torch.randn(ps, generator=g)
    out, work = torch.empty_like(x), torch.empty(3 * n * c)
    assert emu.emu_instance_norm_plus(_p(x), _p(out), DTYPE_CODES[dtype], I64(n), I64(c), I64(hh * ww),
                                      int(channels_last), _p(gamma), _p(alpha), _p(beta), I64(c if cond else 0),
                                      int(elu), _p(work)) == 0
    ref64 = instance_norm_plus_ref(x.double(), gamma.double(), alpha.double(), beta.double(), elu)
    ref = instance_norm_plus_ref(x.float(), gamma, alpha, beta, elu).to(dtype)
    mu = x.double().mean(dim=(2, 3))
    amplify = (mu.abs().amax(1) / mu.std(dim=1)).max()
    scale = (x.double().std() * gamma.abs().max() + gamma.abs().max() * alpha.abs().max() * 3).item()
    atol = 8 * 2 ** -23 * amplify * (gamma * alpha).abs().max() + 2 * torch.finfo(dtype).eps * scale
    assert (out.double() - ref64).abs().max() <= 2 * (ref.double() - ref64).abs().max() + atol


@pytest.mark.parametrize("dtype", DTYPE_CODES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("shape", [(3, 6, 5, 3, 3), (2, 16, 12, 12, 4)], ids=["under_a_block", "over_a_block"])
@pytest.mark.parametrize("with_add,silu", [(False, False), (True, True)], ids=["gn", "add_gn_silu"])
def test_group_norm_act(emu, dtype, channels_last, shape, with_add, silu):
    g = torch.Generator().manual_seed(4)
    n, c, hh, ww, groups = shape
    x = (torch.randn(n, c, hh, ww, generator=g) * 2 + 3).to(dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    weight, bias = 1 + 0.3 * torch.randn(c, generator=g), 0.3 * torch.randn(c, generator=g)
    add = 0.5 * torch.randn(n, c, generator=g) if with_add else None
    out, work = torch.empty_like(x), torch.empty(2 * n * groups)
    assert emu.emu_group_norm_act(_p(x), _p(out), DTYPE_CODES[dtype], I64(n), I64(c), I64(hh * ww),
                                  int(channels_last), I64(groups), ctypes.c_float(1e-6), _p(weight), _p(bias),
                                  _p(add), int(silu), _p(work)) == 0
    ref64 = group_norm_act_ref(x.double(), weight.double(), bias.double(), groups, 1e-6,
                               None if add is None else add.double(), silu)
    ref = group_norm_act_ref(x.float(), weight, bias, groups, 1e-6, add, silu).to(dtype)
    scale = (x.double().abs().max() / x.double().std() * weight.abs().max()).item()
    atol = 16 * 2 ** -23 * scale + 2 * torch.finfo(dtype).eps * max(scale, 1.0)
    assert (out.double() - ref64).abs().max() <= 2 * (ref.double() - ref64).abs().max() + atol


@pytest.mark.parametrize("dtype", DTYPE_CODES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool5x5(emu, dtype, channels_last, mode):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 9, 11, generator=g).to(dtype)  # 594 outputs: 3 passes of a 256-thread block
    if mode == "max":
        x.view(-1)[::17] = float("nan")
        x.view(-1)[5] = float("inf")
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out = torch.empty_like(x)
    assert emu.emu_pool5x5(_p(x), _p(out), DTYPE_CODES[dtype], int(mode == "max"), I64(2), I64(3), I64(9), I64(11),
                           int(channels_last)) == 0
    ref = pool5x5_ref(x, mode)
    if mode == "max":  # bit-identical, NaN and inf included
        assert torch.equal(out.isnan(), ref.isnan()) and torch.equal(out.nan_to_num(0.0), ref.nan_to_num(0.0))
    else:
        ref = pool5x5_ref(x.float(), mode)
        tol = 8 * 2 ** -24 if dtype == torch.float32 else 2 ** -8
        assert ((out.float() - ref).abs() <= tol * ref.abs() + 1e-6).all()


@pytest.mark.parametrize("dtype", DTYPE_CODES, ids=str)
def test_elu(emu, dtype):
    x = torch.cat([torch.linspace(-30, 5, 997), torch.tensor([float("nan"), float("-inf"), float("inf"), 0.0])])
    x = x.to(dtype)
    out = torch.empty_like(x)
    assert emu.emu_elu(_p(x), _p(out), DTYPE_CODES[dtype], I64(x.numel())) == 0
    ref = F.elu(x.float())
    assert torch.equal(out.isnan(), ref.isnan())
    inf = ref.isinf()
    assert torch.equal(out.float()[inf], ref[inf])  # -inf -> -1 is finite; +inf stays
    ok = torch.isfinite(ref)
    tol = 4 * 2 ** -24 if dtype == torch.float32 else 2 ** -8
    assert ((out.float()[ok] - ref[ok]).abs() <= tol * ref[ok].abs() + 2 ** -23).all()


def test_batches_over_the_grid_limit_are_chunked(emu):
    """The batch sits on the grid's y axis, at most 65535 rows on a GPU (3 in this build): bigger batches are
    launched in chunks, each sample still drawing its own noise."""
    n, numel = 3 * MAX_ROWS + 1, 10
    x0, h, ids = torch.randn(n, numel), torch.randn(n, numel), torch.arange(100, 100 + n)
    seed, step = torch.tensor([5]), torch.tensor([2])
    z = philox_normal_ref(5, 2, ids, numel)
    x, p, mult = x0.clone(), torch.zeros(n, numel), 1 + torch.rand(n, 2)
    coefs8 = torch.tensor([1.0, 0.5, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert emu.emu_sampler_update(_p(x), _p(p), _p(h), 0, _p(ids), I64(n), I64(1), I64(numel), 0, _p(seed), _p(step),
                                  _p(coefs8), _p(mult)) == 0
    ref_x, ref_p = sampler_update_ref(x0, torch.zeros(n, numel), h, coefs8, mult, z)
    torch.testing.assert_close(x, ref_x, rtol=0, atol=1e-5)
    torch.testing.assert_close(p, ref_p, rtol=0, atol=1e-6)
    words = torch.empty(n, numel, dtype=torch.int64)
    assert emu.emu_philox(_p(words), _p(ids), I64(n), I64(numel), _p(seed), _p(step), 1) == 0
    assert torch.equal(words, philox_words_ref(5, 2, ids, numel))
