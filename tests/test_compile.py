"""The fused ops compose with torch.compile: traced whole (fullgraph=True, no graph breaks), compiled by inductor
around them, same results as eager. (The ops are torch.library custom ops with fake implementations; the
backend choice is decided once while tracing.)"""

import shutil

import pytest
import torch
from conftest import fixture_path, skip_unless_backend

from ncsn_fast import load_checkpoint
from ncsn_fast.models import set_backend
from ncsn_fast.ops import conv3x3, elu, instance_norm_plus, langevin_coefs, pool5x5, sampler_update_

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                reason="torch.compile's CPU code generation needs a C++ compiler")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_ops_fullgraph_equal_eager():
    skip_unless_backend("cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 8, 8, generator=g).to(memory_format=torch.channels_last)
    gamma, alpha, beta = (torch.rand(8, generator=g) + 0.5 for _ in range(3))
    state = torch.randn(2, 3, 8, 8, generator=g)
    coefs, ids, mult = langevin_coefs(0.01, 2.0), torch.tensor([5, 1]), torch.ones(2, 2)
    w, b = torch.randn(8, 8, 3, 3, generator=g) / 9, torch.randn(8, generator=g)

    def chain(x, state, p):
        h = instance_norm_plus(x, gamma, alpha, beta, elu=True, backend="cpu")
        h = pool5x5(h, "max", backend="cpu") * 0.5 + h  # inductor fuses the elementwise part around our ops
        h = elu(h, backend="cpu")
        h = conv3x3(h, w, b, 2, residual=h, divisor=2.0, backend="cpu")  # its weights transformed in the graph
        sampler_update_(state, p, h[:, :3].contiguous(), coefs, mult, seed=7, step=3, sample_ids=ids,
                        backend="cpu")  # annealed Langevin's row
        return h, state

    compiled = torch.compile(chain, fullgraph=True)
    with torch.no_grad():
        h_eager, s_eager = chain(x, state.clone(), torch.zeros_like(state))
        h_comp, s_comp = compiled(x, state.clone(), torch.zeros_like(state))
    assert torch.equal(h_comp, h_eager)
    assert torch.equal(s_comp, s_eager)  # the in-place update (mutates_args) happened, with the same noise


@pytest.mark.slow
def test_fused_model_fullgraph_matches_eager():
    skip_unless_backend("cpu")
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))
    set_backend(model, "cpu").to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.tensor([0, 7])
    with torch.no_grad():
        eager = model(x, y, raw=True)
        compiled = torch.compile(model, fullgraph=True)(x, y, raw=True)
    # float32; inductor may reassociate the elementwise code between the convolutions and our ops
    assert (compiled - eager).abs().max() <= 1e-5 * eager.abs().max()


@pytest.mark.slow
def test_fast_sampler_with_a_compiled_network():
    skip_unless_backend("cpu")
    from ncsn_fast.sampling import Sampler, SamplerSettings
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))
    ids, ald = torch.tensor([3, 8]), SamplerSettings("ald", n_steps_each=1)
    plain = Sampler(model, cfg, ald, seed=5)(ids)
    compiled = Sampler(model, cfg, ald, seed=5, compile_mode="default")(ids)
    # the same loop and noise; inductor may round the network's elementwise code differently (float32)
    assert (compiled - plain).abs().max() <= 1e-5 * plain.abs().max()


def test_compiled_conv_keeps_its_transformed_weights_and_follows_an_in_place_change():
    """Under torch.compile our Conv2d hands the op the weights transformed before tracing (no transform per call);
    a weight changed in place afterwards is caught by the op (its version moved) and transformed again."""
    skip_unless_backend("cpu")
    from ncsn_fast.models.conv import Conv2d, prepare_convs
    from ncsn_fast.ops.conv3x3 import conv3x3_ref
    conv = Conv2d(8, 16, 3, padding=1).eval()
    set_backend(conv, "cpu")
    prepare_convs(conv)
    kept = conv._winograd[1]
    x = torch.randn(2, 8, 12, 12).to(memory_format=torch.channels_last)
    compiled = torch.compile(conv, fullgraph=True)
    with torch.no_grad():
        first = compiled(x)
        assert conv._winograd[1] is kept
        torch.testing.assert_close(first, conv3x3_ref(x, conv.weight, conv.bias, 1), rtol=0, atol=1e-4)
        conv.weight.mul_(-1)
        second = compiled(x)
    torch.testing.assert_close(second, conv3x3_ref(x, conv.weight, conv.bias, 1), rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_ncsnpp_traces_whole(backend):
    """NCSN++ (the original's code path and ours) is one graph for torch.compile: a graph break (once: the skip
    rescaling's NumPy sqrt 2 reaching a branch) splits it per block, which then recompile per shape past
    dynamo's limit and run eager, so compile's figures would be understated. Dynamo alone (backend 'eager'),
    without a warning of ours (it warned once of tracing through the FIR filter's cache)."""
    import warnings

    from ncsn_fast.bench.ncsnpp import ncsnpp_model
    model, _, _ = ncsnpp_model(True, torch.device("cpu"))
    set_backend(model, backend)
    fmt = torch.channels_last if backend == "auto" else torch.contiguous_format
    x, sigma = torch.rand(2, 3, 32, 32).to(memory_format=fmt), torch.full((2,), 5.0)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eager = model(x, sigma)
        traced = torch.compile(model, backend="eager", fullgraph=True)(x, sigma)
    assert (traced - eager).abs().max() <= 1e-5 * eager.abs().max()
    assert [str(w.message) for w in caught if "ncsn" in str(w.message) or "ncsn_fast" in w.filename] == []


def test_backend_choice_is_marked_constant_as_torch_marks_it():
    """ops._backends marks `choose` itself (importing torch._dynamo for the decorator would cost every command
    ~3 s at start): the mark must be what torch.compiler.assume_constant_result sets."""
    from ncsn_fast.ops._backends import constant_under_compile

    def ours():
        pass

    def torchs():
        pass

    constant_under_compile(ours)
    torch.compiler.assume_constant_result(torchs)
    assert vars(torchs) and vars(ours) == vars(torchs)


def test_the_command_line_and_eager_ops_start_without_torch_dynamo():
    """torch.library's dispatcher imports torch._dynamo (~2.5 s) at a process's first custom-op call: plain eager
    calls skip it (ops._backends.FusedOp), so neither the command line nor a first forward waits for that. Under
    torch.profiler they still appear under their names (as the dispatcher recorded them)."""
    from conftest import python_stdout
    code = ("import sys, torch, ncsn_fast.cli; from ncsn_fast.ops import elu, conv3x3\n"
            "x = torch.randn(1, 8, 8, 8).contiguous(memory_format=torch.channels_last)\n"
            "w = torch.nn.Parameter(torch.randn(8, 8, 3, 3))  # a module's weights\n"
            "with torch.no_grad(): y = conv3x3(elu(x, backend='cpu'), w, backend='cpu')\n"
            "print([m for m in sys.modules if m.startswith('torch._dynamo')])\n"
            "with torch.no_grad(), torch.profiler.profile() as prof: conv3x3(elu(x, backend='cpu'), w, backend='cpu')\n"
            "print(sorted(e.key for e in prof.key_averages() if e.key.startswith('ncsn_fast::')))")
    lines = [line for line in python_stdout(code).splitlines() if line.startswith("[")]  # not the profiler's own
    assert lines == ["[]", "['ncsn_fast::conv3x3', 'ncsn_fast::elu', 'ncsn_fast::winograd_weights']"]


def test_traced_and_autograd_calls_go_through_the_registered_op():
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ncsn_fast.ops._backends import _plain_eager
    with FakeTensorMode():  # the body would read a fake tensor's data pointer: the op's fake implementation runs
        x = torch.empty(2, 8, 4, 4)
        y = elu(instance_norm_plus(x, torch.ones(8), torch.ones(8), torch.zeros(8), backend="cpu"), backend="cpu")
    assert y.shape == (2, 8, 4, 4) and type(y) is not torch.Tensor
    leaf = torch.ones(3, requires_grad=True)
    assert not _plain_eager((leaf,)) and _plain_eager((leaf.detach(),))
    with torch.no_grad():
        assert _plain_eager((leaf,))
    x = torch.randn(3, 2, 8, 4, 4)  # vmap's batched tensors: the dispatcher's batching fallback runs the op per item
    ref = torch.nn.functional.elu(x)
    y = torch.func.vmap(lambda t: elu(t, backend="cpu"))(x)
    assert ((y - ref).abs() <= 4 * 2 ** -24 * ref.abs() + 2 ** -23).all()  # test_elu.py's bound


def test_an_op_runs_on_its_tensors_cuda_device(monkeypatch):
    """Our launchers launch on the current CUDA device and a custom op's Python body gets no device guard: the body
    makes its first tensor's device current when another one is (tests/test_gpu.py runs it on a second GPU)."""
    from types import SimpleNamespace

    from ncsn_fast.ops._backends import on_device_of_first_arg
    entered = []

    class Device:  # torch.cuda.device, recorded
        def __init__(self, d):
            self.d = d

        def __enter__(self):
            entered.append(self.d)

        def __exit__(self, *exc):
            entered.append("exit")

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device", Device)
    body = on_device_of_first_arg(lambda t, k: (k, list(entered)))
    on1, on0 = (SimpleNamespace(is_cuda=True, device=torch.device("cuda", i)) for i in (1, 0))
    assert body(on1, "a") == ("a", [torch.device("cuda", 1)]) and entered[-1] == "exit"
    entered.clear()
    assert body(on0, "b") == ("b", []) and body(torch.ones(1), "c") == ("c", []) and entered == []
