"""Which backends can run an op on given tensors, and why not: one place, asked per call.

Backends in priority order: 'triton', 'cuda' (ncsn_fast._C built with nvcc), 'cpu' (ncsn_fast._C,
C++/OpenMP), 'torch' (the pure-PyTorch reference, always available). `auto` takes the first that
can run; `explain()` lists why each earlier one could not. Triton comes first on a GPU because it measured
faster there: on an H200 the sampler's graphed step took 1.29 / 3.00 / 14.9 ms at batch 1 / 16 / 128 with
the Triton kernels against 1.66 / 4.12 / 20.2 ms with the CUDA ones (benchmarks/results/
sampler-cifar10_nvidia-h200.md); on the CPU `auto` never picks Triton's interpreter.
"""

from __future__ import annotations

import importlib
import inspect
import os
from functools import cache, wraps

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

BACKENDS = ("triton", "cuda", "cpu", "torch")


@cache
def _ext():
    try:
        return importlib.import_module("ncsn_fast._C"), None
    except ImportError as e:
        return None, f"the C++ extension ncsn_fast._C is not built ({e})"


@cache
def _triton():
    try:
        import triton  # noqa: F401
        return True, None
    except ImportError:
        return False, "triton is not installed"


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def why_not(backend: str, device: torch.device) -> str | None:
    """None if `backend` can run on tensors of `device`, else the reason it cannot."""
    if backend == "torch":
        return None
    if backend == "cpu":
        if device.type != "cpu":
            return f"tensors are on {device}, not the CPU"
        return _ext()[1]
    if backend == "triton":
        ok, reason = _triton()
        if not ok:
            return reason
        if device.type == "cpu" and not interpreting():
            return "tensors are on the CPU (Triton runs there only with TRITON_INTERPRET=1)"
        if device.type not in ("cpu", "cuda"):
            return f"tensors are on {device}"
        return None
    if backend == "cuda":
        if device.type != "cuda":
            return f"tensors are on {device}, not a CUDA device"
        ext, reason = _ext()
        if ext is None:
            return reason
        if not getattr(ext, "has_cuda", lambda: False)():
            return "ncsn_fast._C was built without CUDA (nvcc not found at build time)"
        return None
    raise ValueError(f"unknown backend {backend!r}; choose from {('auto',) + BACKENDS}")


def constant_under_compile(fn):
    """`torch.compiler.assume_constant_result` (under torch.compile: called once while tracing, not traced into)
    without its import of torch._dynamo, which takes ~3 s and would slow every command's start: the decorator
    only sets this flag (torch 2.4 to 2.13; tests/test_compile.py checks that it still does)."""
    fn._dynamo_marked_constant = True
    return fn


@constant_under_compile
def choose(backend: str, device: torch.device, supported: tuple[str, ...] = BACKENDS) -> str:
    """Resolve 'auto' (first of `supported` that can run) or check an explicit choice."""
    if backend == "auto":
        for b in supported:
            if _why_not_auto(b, device) is None:
                return b
        raise RuntimeError(explain(device, supported))
    if backend not in supported:
        raise ValueError(f"backend {backend!r} not supported by this op; choose from {('auto',) + supported}")
    reason = why_not(backend, device)
    if reason is not None:
        raise RuntimeError(f"backend {backend!r} cannot run: {reason}")
    return backend


def _why_not_auto(backend: str, device: torch.device) -> str | None:
    """As why_not, but `auto` never picks the Triton interpreter: it is for tests and debugging."""
    if backend == "triton" and device.type == "cpu":
        return "tensors are on the CPU (auto does not pick the Triton interpreter; ask for backend='triton')"
    return why_not(backend, device)


def explain(device: torch.device, supported: tuple[str, ...] = BACKENDS) -> str:
    """One line per backend: what `auto` would do on `device` and why."""
    lines = []
    for b in supported:
        reason = _why_not_auto(b, device)
        lines.append(f"{b}: {'available' if reason is None else reason}")
    return "; ".join(lines)


def ext():
    return _ext()[0]


def stream(device: torch.device) -> int:
    """The current CUDA stream of `device` as an integer handle for the C++ launchers."""
    return torch.cuda.current_stream(device).cuda_stream


PLAIN = (torch.Tensor, torch.nn.Parameter)  # tensor types whose calls skip the dispatcher (no __torch_function__)


def _plain_eager(args) -> bool:
    """Whether a call can skip torch.library's dispatch: not traced (torch.compile, export, jit), no torch_function
    or dispatch mode (make_fx, FakeTensorMode, functionalization), no torch.func transform (vmap's tensors have no
    storage; the dispatcher's batching fallback loops over them), plain tensors, none of them recorded by autograd
    (the ops have no autograd formula: through the dispatcher a backward through them raises, as before)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._are_functorch_transforms_active():
        return False
    if _get_current_dispatch_mode() is not None or torch._C._is_torch_function_mode_enabled():
        return False
    grad = torch.is_grad_enabled()
    for a in args:  # a loop, not any(generator): this runs at every op call
        if isinstance(a, torch.Tensor) and (type(a) not in PLAIN or (grad and a.requires_grad)):
            return False
    return True


def on_device_of_first_arg(fn):
    """fn run with its first argument's CUDA device current, when another one is: our launchers (C++ and Triton)
    launch on the current device, and an op's Python body gets no device guard from the dispatcher (ATen's
    kernels do). Every op's first argument is a tensor on the op's device. One check (~0.1 us) otherwise."""
    @wraps(fn)
    def body(*args):
        t = args[0]
        if t.is_cuda and t.device.index != torch.cuda.current_device():
            with torch.cuda.device(t.device):
                return fn(*args)
        return fn(*args)
    return body


class FusedOp:
    """A torch.library custom op (`name`, body `fn`) whose plain eager calls run `fn` directly: the dispatcher adds
    ~20 us a call (an 8x8 ELU by elu(): 31-38 us with it, 15-18 without; PyTorch's own 5 us), and its first call
    imports torch._dynamo (2.45 s at a process's first op). Traced calls (torch.compile, export, fake tensors) and
    calls under autograd go through the registered op, so compiled graphs hold it as before. What else the
    dispatcher did, a plain call does too: under torch.profiler it is recorded under the op's name
    (record_function), and the arguments it writes in place get their version counters bumped."""

    def __init__(self, name: str, fn, mutates_args=()):
        self.name, self.fn = name, on_device_of_first_arg(fn)
        self.op = torch.library.custom_op(name, self.fn, mutates_args=mutates_args)
        params = list(inspect.signature(fn).parameters)
        self.mutated = tuple(params.index(a) for a in mutates_args)  # positions of the arguments written in place

    def register_fake(self, fake):
        return self.op.register_fake(fake)

    def __call__(self, *args):
        if not _plain_eager(args):
            return self.op(*args)
        if torch._C._autograd._profiler_enabled():  # ~65 ns; profiles name the op, as before
            with torch.profiler.record_function(self.name):
                out = self.fn(*args)
        else:
            out = self.fn(*args)
        if self.mutated:  # as the dispatcher does: autograd then sees a saved tensor changed (~0.5 us)
            torch.autograd.graph.increment_version([args[i] for i in self.mutated])
        return out


def fused_op(name: str, mutates_args=()):
    """Decorator: FusedOp(name, the function)."""
    return lambda fn: FusedOp(name, fn, mutates_args)
