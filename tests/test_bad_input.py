"""Bad numbers and crafted files end in one clear line, before anything is allocated or written: every numeric
setting from the command line, a config or a checkpoint is checked against its range."""

import json
import struct

import numpy as np
import pytest
import torch
from conftest import fixture_path, refused

from ncsn_fast import load_checkpoint, sample
from ncsn_fast.cli import main
from ncsn_fast.config import ConfigError, config_from_dict, load_ncsnpp_config
from ncsn_fast.errors import CheckpointError

V2 = ("ncsnv2_cifar10_ngf8_checkpoint.pth", "ncsnv2_cifar10_ngf8_config.yml")


@pytest.mark.parametrize("flags,what", [
    (["--seed", "-1"], "seed"), (["--seed", str(1 << 63)], "seed"), (["--seed", "1e3"], "seed"),
    (["--sampler", "cas", "--step-lr", "inf"], "step-lr"), (["--sampler", "edm", "--churn", "nan"], "churn"),
    (["--sampler", "heun", "--sigma-max", "-3"], "sigma-max"), (["-n", "0"], "-n"),
])
def test_bad_numbers_on_the_command_line(tmp_path, capsys, flags, what):
    out = tmp_path / "out"
    code, err = refused(capsys, "sample", *flags, "--out", out, "--quiet")
    assert code == 2 and err.count("\n") == 1 and what in err and not out.exists()


def test_seeds_outside_the_stream_are_refused_by_the_api():
    model, cfg = load_checkpoint(fixture_path(V2[0]), config=fixture_path(V2[1]))
    for seed in (-1, 1 << 63, 1.5):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\^63\)"):
            sample(model, cfg, 1, seed=seed, progress=False)


@pytest.mark.parametrize("section,key,value", [
    ("sampling", "n_steps_each", 0), ("sampling", "step_lr", float("inf")), ("sampling", "step_lr", -1e-5),
    ("data", "image_size", 1 << 20), ("model", "num_classes", 0), ("model", "sigma_begin", float("nan")),
    ("data", "channels", 7),
])
def test_config_numbers_have_ranges(section, key, value):
    raw = config_from_dict(json.loads(json.dumps(_v2_config()))).to_dict()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=rf"{section}\.{key} must be"):
        config_from_dict(raw)


def test_ncsnpp_config_numbers_have_ranges():
    raw = json.loads(fixture_path("ncsnpp/ncsnpp_cifar10_cont_nf8_config.json").read_text())["config"]
    for section, key, value in (("data", "image_size", 10 ** 9), ("model", "nf", 0), ("model", "sigma_max", "50"),
                                ("model", "ch_mult", [1, 2, 10 ** 6])):
        bad = json.loads(json.dumps(raw))
        bad[section][key] = value
        with pytest.raises(ConfigError, match=rf"{section}\.{key} must be"):
            load_ncsnpp_config(bad)


def _v2_config() -> dict:
    from ncsn_fast.config import load_config
    return load_config(fixture_path(V2[1])).to_dict()


def _with_metadata_config(src, dst, text):
    """A copy of a .safetensors file whose metadata 'config' is `text` (the format: 8-byte length, JSON header)."""
    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header["__metadata__"]["config"] = text
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    dst.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n:])


@pytest.mark.parametrize("case", ["int_infinity", "deep_nesting", "huge_image"])
def test_crafted_embedded_configs_are_one_clear_error(tmp_path, case):
    good = tmp_path / "good.safetensors"
    assert main(["convert", str(fixture_path(V2[0])), str(good), "--config", str(fixture_path(V2[1]))]) == 0
    cfg = json.loads(json.dumps(_v2_config()))
    text = {"int_infinity": json.dumps({**cfg, "model": {**cfg["model"], "ngf": float("inf")}}),
            "deep_nesting": "[" * 100_000 + "]" * 100_000,
            "huge_image": json.dumps({**cfg, "data": {**cfg["data"], "image_size": 1 << 30}})}[case]
    bad = tmp_path / "bad.safetensors"
    _with_metadata_config(good, bad, text)
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


def test_numpy_dtype_is_admitted_only_for_scalar_dtypes(tmp_path):
    """score-SDE files need numpy.dtype('f8') to rebuild a NumPy scalar; any other dtype (an object dtype, a
    structured one) is refused, and nothing in the file runs."""
    class ObjectDtype:
        def __reduce__(self):
            return (np.dtype, ("O",))
    npp = fixture_path("ncsnpp/ncsnpp_cifar10_cont_nf8_checkpoint.pth")
    obj = torch.load(npp, weights_only=False)
    obj["extra"] = ObjectDtype()
    torch.save(obj, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"refused to load .*numpy\.dtype\('O'\)"):
        load_checkpoint(tmp_path / "bad.pth")
    load_checkpoint(npp)  # its own numpy.dtype('f8') scalar still loads


def test_a_config_with_no_langevin_steps_is_refused_by_sample(tmp_path, capsys):
    """n_steps_each 0 used to give pure noise with exit 0."""
    raw = _v2_config()
    raw["sampling"]["n_steps_each"] = 0
    import yaml
    (tmp_path / "config.yml").write_text(yaml.safe_dump(raw))
    rc, err = refused(capsys, "sample", "--checkpoint", fixture_path(V2[0]), "--config", tmp_path / "config.yml",
                      "--out", tmp_path / "s", "--quiet")
    assert rc == 2 and err.count("\n") == 1 and "sampling.n_steps_each" in err
    assert not (tmp_path / "s").exists()
