"""Checkpoints: the original layouts, EMA, our own format, inference, mismatches, refusal of code."""

import os
import pickle
import shutil

import pytest
import torch
from conftest import fixture_path, load_fixture

from ncsn_fast import CheckpointError, load_checkpoint, save_checkpoint
from ncsn_fast.checkpoints import read
from ncsn_fast.config import load_config


def _out(model, variant):
    io = load_fixture(f"{variant}_model_io.pt")
    with torch.no_grad():
        return model(io["x"], io["y"]), io


def test_original_layouts_detected():
    v1 = read(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"))
    v2 = read(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"))
    assert v1.layout == "ncsn" and v1.ema is None and not any(k.startswith("module.") for k in v1.state)
    assert v2.layout == "ncsnv2" and v2.step == 1 and set(v2.ema) == set(v2.state) - {"sigmas"}


def test_config_beside_checkpoint_is_found(tmp_path):
    shutil.copy(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"), tmp_path / "checkpoint_1.pth")
    shutil.copy(fixture_path("ncsnv2_cifar10_ngf8_config.yml"), tmp_path / "config.yml")
    model, cfg, info = load_checkpoint(tmp_path / "checkpoint_1.pth", return_info=True)
    assert info.config_source.endswith("config.yml") and info.ema_applied
    out, io = _out(model, "ncsnv2_cifar10_ngf8")
    torch.testing.assert_close(out, io["out"], rtol=1e-5, atol=1e-5 * io["out"].abs().max().item())


def test_bare_and_unprefixed_state_dict(tmp_path):
    model, cfg = load_checkpoint(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsn_cifar10_ngf8_config.yml"))
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    again, _ = load_checkpoint(tmp_path / "bare.pth", config=cfg)
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_our_format_round_trip(tmp_path):
    model, cfg = load_checkpoint(fixture_path("ncsnv2_church_ngf4_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_church_ngf4_config.yml"))
    save_checkpoint(tmp_path / "ours.pt", model, cfg, step=7)
    assert [p.name for p in tmp_path.iterdir()] == ["ours.pt"]  # no temp file left behind
    again, cfg2, info = load_checkpoint(tmp_path / "ours.pt", return_info=True)
    assert cfg2 == cfg and info.layout == "ncsn_fast" and info.step == 7
    assert info.config_source == "embedded in the checkpoint"
    a, _ = _out(model, "ncsnv2_church_ngf4")
    b, _ = _out(again, "ncsnv2_church_ngf4")
    assert torch.equal(a, b)


def test_infer_architecture_without_config():
    # NCSNv2: everything but the image size is in the weights (the sigmas buffer gives the ladder).
    model, cfg = load_checkpoint(fixture_path("ncsnv2_church_ngf4_checkpoint.pth"), image_size=64)
    ref = load_config(fixture_path("ncsnv2_church_ngf4_config.yml"))
    assert (cfg.arch, cfg.model.ngf, cfg.model.num_classes, cfg.data.channels) == (
        ref.arch, ref.model.ngf, ref.model.num_classes, ref.data.channels)
    assert torch.equal(cfg.sampling_sigmas(), ref.sampling_sigmas())
    out, io = _out(model, "ncsnv2_church_ngf4")
    assert ((out - io["out"]).abs().max() / io["out"].abs().max()) <= 1e-5
    # NCSN v1 has no sigmas buffer: the error says which options to pass.
    with pytest.raises(CheckpointError, match=r"--image-size and --sigma-begin and --sigma-end"):
        load_checkpoint(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"))
    _, cfg1 = load_checkpoint(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"), image_size=32,
                              sigma_begin=1.0, sigma_end=0.01)
    assert cfg1.arch == "CondRefineNetDilated" and cfg1.model.num_classes == 10 and cfg1.model.ngf == 8


def test_mismatch_names_keys_and_shapes():
    with pytest.raises(CheckpointError, match=r"sigmas: checkpoint \(232,\) vs config \(788,\)"):
        load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                        config=fixture_path("ncsnv2_church_ngf4_config.yml"))
    with pytest.raises(CheckpointError, match="NCSNv2 network but the config describes NCSN v1"):
        load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                        config=fixture_path("ncsn_cifar10_ngf8_config.yml"))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    state = torch.load(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"), weights_only=True)
    torch.save([state[0], state[1], _Exploit(marker)], tmp_path / "evil.pth")
    with open(tmp_path / "evil_pickle.pth", "wb") as f:
        pickle.dump(_Exploit(marker), f)
    for name in ("evil.pth", "evil_pickle.pth"):
        with pytest.raises(CheckpointError, match="refused to load"):
            load_checkpoint(tmp_path / name, config=fixture_path("ncsn_cifar10_ngf8_config.yml"))
    assert not marker.exists()


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read|refused"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save({"epoch": 3}, tmp_path / "dict.pth")
    with pytest.raises(CheckpointError, match="not an NCSN/NCSNv2 checkpoint"):
        load_checkpoint(tmp_path / "dict.pth")


EVERY_FIXTURE = ["ncsn_cifar10_ngf8", "ncsnv2_cifar10_ngf8", "ncsnv2_church_ngf4", "ncsnpp/ncsnpp_cifar10_cont_nf8",
                 "ncsnpp/ncsnpp_cifar10_discrete_nf8", "ncsnpp/ncsnpp_church_nf8_img64"]


@pytest.mark.parametrize("variant", EVERY_FIXTURE)
def test_one_loader_opens_every_family_unpickling_once(variant, monkeypatch):
    """ncsn_fast.load_checkpoint reads the original NCSN / NCSNv2 files and the score-SDE NCSN++ files alike (the
    config given, then embedded / beside / inferred where the weights tell enough), each file unpickled once."""
    import ncsn_fast.checkpoints.safe_load as safe_load
    calls = []
    real = torch.load
    monkeypatch.setattr(safe_load.torch, "load", lambda *a, **kw: calls.append(a[0]) or real(*a, **kw))
    ext = ".json" if variant.startswith("ncsnpp") else ".yml"
    model, cfg, info = load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"),
                                       config=fixture_path(f"{variant}_config{ext}"), return_info=True)
    v1 = variant == "ncsn_cifar10_ngf8"  # its layout [state_dict, optimizer] has no step, no EMA
    assert len(calls) == 1 and info.step == (None if v1 else 1) and info.ema_applied == info.has_ema == (not v1)
    assert cfg.family == ("ncsnpp" if variant.startswith("ncsnpp") else variant.split("_")[0])
    io = load_fixture(f"{variant}_model_io.pt")
    x, labels = io["x"], io["labels"] if "labels" in io else io["y"]
    want = io["float64_output"]["out_with_float32_sigmas_buffer"] if "discrete" in variant else io["out"]
    with torch.no_grad():
        out = model(x, labels)
    assert (out - want).abs().max() <= 1e-5 * want.abs().max()
    if not v1:  # NCSN v1's weights do not tell its sigma: it needs the config
        calls.clear()
        _, cfg2 = load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"), image_size=cfg.image_shape[-1])
        assert len(calls) == 1 and cfg2.family == cfg.family


def test_a_file_that_is_no_checkpoint_says_what_it_holds(tmp_path):
    torch.save({"epoch": 3, "lr": torch.tensor(1.0)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"is not a checkpoint ncsn_fast reads.*a dict with keys epoch, lr"):
        load_checkpoint(tmp_path / "other.pth")


def test_loading_imports_neither_torch_dynamo_nor_sympy():
    """Each loader builds the network on the meta device for its shapes; PyTorch's meta normal_, randn and
    arithmetic import torch._dynamo (~2 s) and sympy: the networks' initialisation skips them there
    (models/init.py), so a load takes a fraction of a second (2.6-3.1 s before, measured). The last load infers
    its config from the weights (several networks built on meta)."""
    from conftest import python_stdout
    loads = [(str(fixture_path(f"{v}_checkpoint.pth")),
              str(fixture_path(f"{v}_config{'.json' if v.startswith('ncsnpp') else '.yml'}")))
             for v in EVERY_FIXTURE] + [(str(fixture_path("diffusers/ncsnpp_celebahq_like_nf8_img64")), None),
                                        (str(fixture_path("ncsnpp/ncsnpp_church_nf8_img64_checkpoint.pth")), None)]
    code = ("import sys; from ncsn_fast import load_checkpoint\n"
            f"for p, c in {loads!r}: load_checkpoint(p, config=c)\n"
            "print(sorted({m for m in sys.modules if m.startswith(('torch._dynamo', 'sympy'))})[:3])")
    assert python_stdout(code).strip() == "[]"
