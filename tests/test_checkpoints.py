"""Checkpoints: the original layouts, EMA, our own format, inference, mismatches, refusal of code."""

import os
import pickle
import shutil

import pytest
import torch
from conftest import fixture_path, load_fixture

from ncsn_fast import CheckpointError, load_checkpoint, save_checkpoint
from ncsn_fast.checkpoints import split_checkpoint
from ncsn_fast.config import load_config


def _out(model, variant):
    io = load_fixture(f"{variant}_model_io.pt")
    with torch.no_grad():
        return model(io["x"], io["y"]), io


def test_original_layouts_detected():
    v1 = torch.load(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"), weights_only=True)
    v2 = torch.load(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"), weights_only=True)
    layout, state, ema, _, _ = split_checkpoint(v1)
    assert layout == "ncsn" and ema is None and not any(k.startswith("module.") for k in state)
    layout, state, ema, _, step = split_checkpoint(v2)
    assert layout == "ncsnv2" and step == 1 and set(ema) == set(state) - {"sigmas"}


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
