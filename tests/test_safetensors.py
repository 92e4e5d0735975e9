"""`ncsn-fast convert` and .safetensors checkpoints: round trip, accepted everywhere, bad files refused clearly."""

import json
import struct

import pytest
import torch
from conftest import fixture_path, load_fixture

from ncsn_fast import load_checkpoint
from ncsn_fast.cli import main
from ncsn_fast.errors import CheckpointError

pytest.importorskip("safetensors")
V2 = ("ncsnv2_cifar10_ngf8_checkpoint.pth", "ncsnv2_cifar10_ngf8_config.yml")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("st") / "model.safetensors"
    assert main(["convert", str(fixture_path(V2[0])), str(out), "--config", str(fixture_path(V2[1]))]) == 0
    return out


def test_round_trip_gives_the_original_outputs(converted):
    io = load_fixture("ncsnv2_cifar10_ngf8_model_io.pt")
    model, cfg, info = load_checkpoint(converted, return_info=True)
    assert info.config_source == "embedded in the checkpoint" and info.ema_applied
    with torch.no_grad():
        out = model(io["x"], io["y"])
    assert ((out - io["out"]).abs().max() / io["out"].abs().max()) <= 1e-5  # the EMA weights, as converted
    raw = converted.with_name("raw.safetensors")
    assert main(["convert", str(fixture_path(V2[0])), str(raw), "--config", str(fixture_path(V2[1])),
                 "--no-ema"]) == 0
    model_raw, _ = load_checkpoint(raw)
    with torch.no_grad():
        got = model_raw(io["x"], io["y"])
    assert (got - io["out_raw_weights"]).abs().max() <= 1e-5 * io["out_raw_weights"].abs().max()


def test_accepted_by_info_sample_and_generate(converted, tmp_path, capsys):
    assert main(["info", str(converted)]) == 0
    assert "safetensors, EMA weights" in capsys.readouterr().out
    assert main(["sample", "--checkpoint", str(converted), "-n", "2", "--sampler", "euler", "--steps", "2",
                 "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert main(["generate", "--checkpoint", str(converted), "-n", "2", "--sampler", "euler", "--steps", "2",
                 "--out", str(tmp_path / "g"), "--quiet"]) == 0


def _rewrite_metadata(src, dst, change):
    """A copy of a .safetensors file with its header's metadata changed (the format: 8-byte length, JSON)."""
    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    change(header["__metadata__"])
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    dst.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n:])


@pytest.mark.parametrize("case", ["truncated", "garbage", "wrong_config", "bad_json"])
def test_bad_files_are_refused_with_one_clear_line(converted, tmp_path, capsys, case):
    bad = tmp_path / "bad.safetensors"
    if case == "truncated":
        bad.write_bytes(converted.read_bytes()[:5000])
    elif case == "garbage":
        bad.write_bytes(b"\x00" * 64)
    elif case == "wrong_config":  # the metadata says ngf 16, the tensors are ngf 8
        def ngf16(meta):
            cfg = json.loads(meta["config"])
            cfg["model"]["ngf"] = 16
            meta["config"] = json.dumps(cfg)
        _rewrite_metadata(converted, bad, ngf16)
    else:
        _rewrite_metadata(converted, bad, lambda meta: meta.update(config="{not json"))
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncsn-fast: error:") and err.count("\n") == 1 and not out.exists()
    if case == "wrong_config":
        assert "shape(s) differ" in err


def test_convert_refusals(converted, tmp_path, capsys):
    assert main(["convert", str(fixture_path(V2[0])), str(tmp_path / "m.pt"), "--config",
                 str(fixture_path(V2[1]))]) == 2
    assert main(["convert", str(fixture_path(V2[0])), str(converted), "--config", str(fixture_path(V2[1]))]) == 2
    assert "--overwrite" in capsys.readouterr().err


NPP = "ncsnpp/ncsnpp_cifar10"
FAMILIES = {  # checkpoint, config (None: inferred from the weights)
    "ncsn_v1": ("ncsn_cifar10_ngf8_checkpoint.pth", "ncsn_cifar10_ngf8_config.yml"),
    "ncsnv2": ("ncsnv2_church_ngf4_checkpoint.pth", "ncsnv2_church_ngf4_config.yml"),
    "ncsnpp_continuous": (f"{NPP}_cont_nf8_checkpoint.pth", f"{NPP}_cont_nf8_config.json"),
    "ncsnpp_discrete": (f"{NPP}_discrete_nf8_checkpoint.pth", None),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_convert_round_trips_every_family(family, tmp_path, capsys):
    """convert -> load gives the same network (every tensor, the config) and bit-identical samples; info reads it."""
    from ncsn_fast import sample
    ckpt, config = FAMILIES[family]
    argv = [str(fixture_path(ckpt))] + (["--config", str(fixture_path(config))] if config else [])
    out = tmp_path / "model.safetensors"
    assert main(["convert", argv[0], str(out), *argv[1:]]) == 0
    assert "config: " in capsys.readouterr().out
    model, cfg, info = load_checkpoint(fixture_path(ckpt), config and fixture_path(config), return_info=True)
    again, cfg2, info2 = load_checkpoint(out, return_info=True)
    assert info2.config_source == "embedded in the checkpoint" and info2.ema_applied == info.ema_applied
    assert cfg2.to_dict() == cfg.to_dict() and type(again) is type(model)
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    kw = dict(n=2, sampler="heun", steps=2, seed=3, progress=False)
    assert torch.equal(sample(model, cfg, **kw), sample(again, cfg2, **kw))
    assert main(["info", str(out)]) == 0
    assert f"safetensors, {'EMA' if info.ema_applied else 'raw'} weights" in capsys.readouterr().out
