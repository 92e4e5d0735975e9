"""Models: exact state_dict layout of every published config; fixture outputs of the original code."""

import json

import pytest
import torch
from conftest import FIXTURES, VARIANTS, fixture_path, load_fixture, skip_unless_backend

from ncsn_fast import load_checkpoint
from ncsn_fast.config import config_from_dict
from ncsn_fast.models import build_model, set_backend

KEY_FILES = sorted(p.name for p in FIXTURES.glob("keys/*.json")) or ["ncsnv2_cifar10.json"]


@pytest.mark.parametrize("name", KEY_FILES)
def test_published_config_state_dict_layout(name):
    spec = json.loads(fixture_path(f"keys/{name}").read_text())
    cfg = config_from_dict(spec["config"])
    assert spec["model_class"].startswith(cfg.arch + " ")
    with torch.device("meta"):
        model = build_model(cfg)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    theirs = [(k.removeprefix("module."), shape) for k, shape, _ in spec["state_dict"]]
    assert ours == theirs  # same names, shapes and order
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"]
    if spec.get("ema_shadow"):  # the EMA shadow holds exactly the parameters
        assert [n for n, _ in model.named_parameters()] == [n for n, _, _ in spec["ema_shadow"]]


def _load_variant(variant, ema=True):
    return load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"),
                           config=fixture_path(f"{variant}_config.yml"), ema=ema)


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_outputs(variant):
    io = load_fixture(f"{variant}_model_io.pt")
    model, cfg = _load_variant(variant)
    assert cfg.arch == io["model_class"] and not model.training
    with torch.no_grad():
        out = model(io["x"], io["y"])
        out0 = model(io["x"], torch.zeros_like(io["y"]))
    # fp32 forward, different conv rounding per batch size/threads: 1e-5 of the output scale.
    assert _rel_err(out, io["out"]) <= 1e-5
    assert _rel_err(out0, io["out_all_labels_0"]) <= 1e-5
    if "out_raw_weights" in io:  # NCSNv2: the EMA weights were applied, and ema=False gives the raw ones
        assert _rel_err(out, io["out_raw_weights"]) > 1e-3
        raw, _ = _load_variant(variant, ema=False)
        with torch.no_grad():
            assert _rel_err(raw(io["x"], io["y"]), io["out_raw_weights"]) <= 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_activations_single_sample(variant):
    """Per-block outputs for one sample, to localise any divergence from the original."""
    io = load_fixture(f"{variant}_model_io.pt")
    model, _ = _load_variant(variant)
    acts, hooks = {}, []
    for name in io["activations_batch0"]:
        mod = getattr(model, name, None)
        if mod is None:
            continue
        mod = mod[-1] if isinstance(mod, torch.nn.ModuleList) else mod
        hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o)))
    with torch.no_grad():
        model(io["x"][:1], io["y"][:1])
    assert {"begin_conv", "res1", "refine1", "normalizer", "end_conv"} <= set(acts)
    for name, ref in io["activations_batch0"].items():
        if name in acts:
            assert _rel_err(acts[name], ref) <= 1e-5, name


# fuse_elu None (the default) is the elu op on CPU tensors (layers._Fusable): "elu_op" runs that path
@pytest.mark.parametrize("fuse_elu", [False, True], ids=["", "elu_op"])
@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_ops_give_fixture_outputs(variant, backend, fuse_elu):
    skip_unless_backend(backend)
    io = load_fixture(f"{variant}_model_io.pt")
    model, _ = _load_variant(variant)
    with torch.no_grad():
        ref = model(io["x"], io["y"])
        set_backend(model, backend, fuse_elu=fuse_elu)
        fused = model(io["x"], io["y"])
    assert not torch.equal(fused, ref)  # the fused op did run
    assert _rel_err(fused, io["out"]) <= 1e-5
    assert _rel_err(fused, ref) <= 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_winograd_convolutions_give_fixture_outputs(variant):
    """channels_last on the CPU backend: the 3x3 convolutions run the conv3x3 op (Winograd, with the residual
    adds and the RCUs' ELUs in its pass); the outputs stay within 1e-5 of the original code's."""
    skip_unless_backend("cpu")
    from ncsn_fast.models.conv import Conv2d
    io = load_fixture(f"{variant}_model_io.pt")
    model, _ = _load_variant(variant)
    set_backend(model, "cpu").to(memory_format=torch.channels_last)
    with torch.no_grad():
        fused = model(io["x"].to(memory_format=torch.channels_last), io["y"])
    ran = [m for m in model.modules() if isinstance(m, Conv2d) and m._winograd is not None]
    assert len(ran) >= 10
    assert _rel_err(fused, io["out"]) <= 1e-5


@pytest.mark.parametrize("fuse_elu,calls", [(None, True), (False, False), (True, True)])
def test_elu_op_by_default_on_the_cpu(monkeypatch, fuse_elu, calls):
    """fuse_elu None (set_backend's default) runs the blocks' other ELUs as the elu op on the CPU (measured
    faster there, slower on a GPU)."""
    import ncsn_fast.models.layers as layers
    seen = []
    real = layers.elu
    monkeypatch.setattr(layers, "elu", lambda x, backend: seen.append(x.device.type) or real(x, backend=backend))
    model, cfg = _load_variant("ncsnv2_cifar10_ngf8")
    set_backend(model, "cpu", fuse_elu=fuse_elu)
    with torch.no_grad():
        model(torch.rand(2, *cfg.image_shape), torch.tensor([0, 3]))
    assert bool(seen) == calls and set(seen) <= {"cpu"}


def test_ncsnv2_label_enters_only_through_sigma():
    model, cfg = _load_variant("ncsnv2_cifar10_ngf8")
    x = torch.rand(2, *cfg.image_shape)
    with torch.no_grad():
        a = model(x, torch.tensor([0, 0]))
        b = model(x, torch.tensor([5, 100]))
    sig = model.sigmas
    torch.testing.assert_close(b, a * (sig[0] / sig[[5, 100]]).view(2, 1, 1, 1), rtol=1e-5, atol=1e-6)


def test_models_train_with_autograd():
    cfg = config_from_dict({"data": {"image_size": 8, "channels": 1},
                            "model": {"ngf": 4, "num_classes": 3, "sigma_begin": 1, "sigma_end": 0.1}})
    model = set_backend(build_model(cfg), "auto")  # under autograd the reference runs regardless
    out = model(torch.rand(2, 1, 8, 8), torch.tensor([0, 2]))
    out.square().sum().backward()
    assert out.shape == (2, 1, 8, 8)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_initialisation_draws_as_torch_and_nothing_on_meta():
    """models/init.py: the same draws as torch.randn / normal_ / nn.Embedding's initialisation (the networks
    built from a seed are unchanged), and on the meta device no draw at all."""
    from ncsn_fast.models.init import normal_, randn
    for n in (7, 1000):  # normal_ draws sizes below 16 one by one, larger ones vectorised
        torch.manual_seed(0)
        want = torch.randn(n) * 3.0
        torch.manual_seed(0)
        assert torch.equal(randn(n, scale=3.0), want)
    torch.manual_seed(0)
    want = torch.nn.Embedding(10, 6).weight.detach()
    torch.manual_seed(0)
    assert torch.equal(randn(10, 6), want)
    state = torch.random.get_rng_state()
    with torch.device("meta"):
        assert randn(4).is_meta and normal_(torch.empty(3), 1, 0.02).is_meta
    assert torch.equal(torch.random.get_rng_state(), state)
