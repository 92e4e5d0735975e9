"""ncsn_fast.accelerate on networks built from (stand-ins of) the original classes, local changes included."""

import warnings

import pytest
import torch
from conftest import fixture_path, load_fixture
from originals import CondRefineNetDilated, NCSNv2, namespace

import ncsn_fast
from ncsn_fast import load_checkpoint
from ncsn_fast.accelerate import accelerate
from ncsn_fast.checkpoints import strip_prefix
from ncsn_fast.config import read_yaml

CLASSES = {"ncsn_cifar10_ngf8": CondRefineNetDilated, "ncsnv2_cifar10_ngf8": NCSNv2}


def original(variant, **kw):
    """The stand-in built from the run's config.yml with the checkpoint's weights (EMA where it has them), as
    the original runners load it."""
    net = CLASSES[variant](namespace(read_yaml(fixture_path(f"{variant}_config.yml"))), **kw)
    states = torch.load(fixture_path(f"{variant}_checkpoint.pth"), weights_only=True)
    net.load_state_dict(strip_prefix(states[0]), strict=not kw)
    if len(states) >= 5:
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name in states[4]:
                    p.copy_(states[4][name])
    return net.eval()


@pytest.mark.parametrize("variant", CLASSES)
def test_same_outputs_with_every_part_fused(variant):
    net = original(variant)
    io = load_fixture(f"{variant}_model_io.pt")
    with torch.no_grad():
        want = net(io["x"], io["y"])
    assert (want - io["out"]).abs().max() <= 1e-5 * io["out"].abs().max()  # the stand-in is the original
    fast, report = accelerate(net, report=True, backend="cpu")
    with torch.no_grad():
        got = fast(io["x"], io["y"])
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    n_norms = sum(type(m).__name__.endswith("InstanceNorm2dPlus") for m in net.modules())
    assert len(report.norms) == n_norms and not report.kept
    assert len(report.pools) == 4 * 2 // 2  # one pooling per CRP block, four refine blocks
    patched = ("ResidualBlock", "ConditionalResidualBlock", "CondRCUBlock", "MSFBlock", "CondMSFBlock")
    assert len(report.pairs) == sum(type(m).__name__ in patched for m in net.modules())
    assert len(report.pairs) >= 8 + 3  # 8 residual blocks, 3 MSF blocks (and v1's RCU blocks)
    assert type(next(m for m in net.modules() if "InstanceNorm" in type(m).__name__)).__module__ == "originals"


@pytest.mark.parametrize("variant", CLASSES)
def test_the_user_module_is_left_as_it_was(variant):
    net = original(variant)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    accelerate(net, backend="cpu")
    assert all(type(m).__module__ in ("originals", "torch.nn.modules.conv", "torch.nn.modules.container",
                                      "torch.nn.modules.activation", "torch.nn.modules.pooling",
                                      "torch.nn.modules.instancenorm", "torch.nn.modules.sparse")
               for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("variant", CLASSES)
def test_samples_like_our_own_network(variant):
    fast = accelerate(original(variant), backend="cpu")
    ours, cfg = load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"), config=fixture_path(f"{variant}_config.yml"))
    for kw in (dict(sampler="heun", steps=3), dict(n_steps_each=1)):
        a = ncsn_fast.sample(fast, n=2, progress=False, **kw)
        b = ncsn_fast.sample(ours, cfg, n=2, progress=False, **kw)
        assert (a - b).abs().max() <= 1e-4 * b.abs().max(), kw
    x = ncsn_fast.sample(fast, n=2, sampler="dpmpp-2m", steps=3, dtype=torch.bfloat16, progress=False)
    assert torch.isfinite(x).all()


def test_unknown_layers_are_kept_and_listed():
    extra = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Identity())
    net = original("ncsnv2_cifar10_ngf8", extra=extra)
    io = load_fixture("ncsnv2_cifar10_ngf8_model_io.pt")
    fast, report = accelerate(net, report=True, backend="cpu")
    assert ("extra.0", "Dropout") in report.kept and ("extra.1", "Identity") in report.kept
    assert "kept as it is: extra.0 (Dropout)" in str(report)
    with torch.no_grad():
        got, want = fast(io["x"], io["y"]), net(io["x"], io["y"])
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        accelerate(net, backend="cpu")
    assert any("extra.0 (Dropout)" in str(w.message) for w in caught)


def test_not_a_score_network():
    with pytest.raises(ValueError, match="not a score network"):
        accelerate(torch.nn.Conv2d(3, 3, 3))
    with pytest.raises(ValueError, match="it holds one"):
        accelerate(torch.nn.Sequential(original("ncsnv2_cifar10_ngf8")))
    with pytest.raises(TypeError):
        accelerate("model")


class _ConfigDict(dict):
    """ml_collections' ConfigDict as the score-SDE code keeps it on its network: to_dict() gives plain dicts."""

    def to_dict(self):
        return dict(self)


def _score_sde_ncsnpp(variant):
    """A stand-in for the score-SDE code's NCSNpp: a class of that name holding `config`, the `sigmas` buffer and
    `all_modules` in the original layout (the checkpoint's EMA weights), and its own forward."""
    npp = fixture_path("ncsnpp")
    ours, cfg = load_checkpoint(npp / f"{variant}_checkpoint.pth", npp / f"{variant}_config.json")

    class NCSNpp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = _ConfigDict(cfg)
            self.register_buffer("sigmas", ours.sigmas.clone())
            self.all_modules = ours.all_modules

        def forward(self, x, labels):
            return ours(x, labels)
    return NCSNpp().eval()


@pytest.mark.parametrize("variant", ["ncsnpp_cifar10_cont_nf8", "ncsnpp_church_nf8_img64"])
def test_score_sde_ncsnpp_rebuilt_as_ours(variant):
    """accelerate() of an NCSN++ in memory: ours, fused, the original's outputs; ncsn_fast.sample takes it."""
    import copy

    from ncsn_fast.models import is_ncsnpp, set_backend
    net = _score_sde_ncsnpp(variant)
    fast, rep = accelerate(net, report=True, backend="cpu")
    assert is_ncsnpp(fast) and fast.all_modules[1].weight is not net.all_modules[1].weight
    assert len(rep.pairs) > 5 and not rep.kept
    io = torch.load(fixture_path("ncsnpp") / f"{variant}_model_io.pt", weights_only=True)
    with torch.no_grad():
        out = fast(io["x"], io["labels"])
        assert (out - io["out"]).abs().max() <= 1e-5 * io["out"].abs().max()
        unfused = set_backend(copy.deepcopy(fast), "torch")  # the same weights, exactly
        assert torch.equal(net(io["x"], io["labels"]), unfused(io["x"], io["labels"]))
    x = ncsn_fast.sample(fast, n=2, sampler="heun", steps=3, progress=False)
    assert x.shape == (2, *io["x"].shape[1:]) and torch.isfinite(x).all()
    net.config = _ConfigDict({k: v for k, v in net.config.items() if k != "model"})
    with pytest.raises(ValueError, match="needs its `config`"):
        accelerate(net)

