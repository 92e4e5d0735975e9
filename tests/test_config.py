"""Configs: the original YAML files (including Namespace-tagged ones) and the sigma ladder."""

import argparse

import pytest
import torch
import yaml
from conftest import VARIANTS, fixture_path, load_fixture

from ncsn_fast.config import ConfigError, config_from_dict, load_config


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_config_reads(variant):
    cfg = load_config(fixture_path(f"{variant}_config.yml"))
    io = load_fixture(f"{variant}_model_io.pt")
    assert cfg.model.ngf == io["config"]["model"]["ngf"]
    assert cfg.arch == io["model_class"]
    if cfg.family == "ncsn":  # v1 carries no sampling section: the runner's hard-coded defaults
        assert (cfg.sampling.n_steps_each, cfg.sampling.step_lr, cfg.sampling.denoise) == (100, 2e-5, False)
        assert torch.equal(cfg.sigmas(torch.float32), io["sigmas_train_float32"])
        # float64 ladder: NumPy's exp differs by an ulp between versions (fixtures: NumPy 2.4).
        torch.testing.assert_close(cfg.sampling_sigmas(), io["sigmas_sampler_float64"], rtol=4e-16, atol=0)
    else:
        assert cfg.sampling.step_lr == io["config"]["sampling"]["step_lr"]
        assert torch.equal(cfg.sampling_sigmas(), io["sigmas"])  # the float32 buffer, bit for bit


def test_namespace_tagged_yaml_is_read_safely(tmp_path):
    """The original main.py saves yaml.dump(argparse.Namespace): python/object tags, torch.device."""
    raw = yaml.safe_load(fixture_path("ncsnv2_cifar10_ngf8_config.yml").read_text())
    ns = argparse.Namespace(**{k: argparse.Namespace(**v) for k, v in raw.items()})
    text = yaml.dump(ns)
    assert "!!python/object:argparse.Namespace" in text
    text += "device: !!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']\n"
    (tmp_path / "config.yml").write_text(text)
    cfg = load_config(tmp_path / "config.yml")
    assert cfg.arch == "NCSNv2" and cfg.model.num_classes == 232 and cfg.sampling.n_steps_each == 5
    assert not (tmp_path / "pwned").exists()


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yml")
    (tmp_path / "bad.yml").write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yml")
    with pytest.raises(ConfigError, match="no 'model' section"):
        config_from_dict({"data": {}})
    with pytest.raises(ConfigError, match="model.ngf"):
        config_from_dict({"data": {}, "model": {"num_classes": 3, "sigma_begin": 1, "sigma_end": .1}})
    with pytest.raises(ConfigError, match="cannot read"):
        config_from_dict({"data": {"image_size": "big"},
                          "model": {"ngf": 4, "num_classes": 3, "sigma_begin": 1, "sigma_end": .1}})


def test_dataset_picks_ncsnv2_class():
    base = {"model": {"ngf": 4, "num_classes": 3, "sigma_begin": 1, "sigma_end": .1, "sigma_dist": "geometric"}}
    archs = {ds: config_from_dict({**base, "data": {"dataset": ds}}).arch for ds in ("CIFAR10", "LSUN", "FFHQ")}
    assert archs == {"CIFAR10": "NCSNv2", "LSUN": "NCSNv2Deeper", "FFHQ": "NCSNv2Deepest"}


def test_round_trip_through_to_dict():
    cfg = load_config(fixture_path("ncsnv2_church_ngf4_config.yml"))
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg
