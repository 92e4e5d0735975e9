"""An NCSN++ checkpoint without its config: the config inferred from the weights for every published layout and
the three fixture networks (which then give the original outputs), and one clear error where it cannot be."""

import json
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES

from ncsn_fast import load_checkpoint
from ncsn_fast.checkpoints import read
from ncsn_fast.checkpoints.ncsnpp_infer import infer_config
from ncsn_fast.cli import main
from ncsn_fast.config import published_ncsnpp_configs as published_configs
from ncsn_fast.errors import CheckpointError
from ncsn_fast.models.ncsnpp import NCSNpp, ve_sigmas

NPP = FIXTURES / "ncsnpp"
VARIANTS = ["ncsnpp_cifar10_cont_nf8", "ncsnpp_cifar10_discrete_nf8", "ncsnpp_church_nf8_img64"]
ARCH = ("nf", "ch_mult", "num_res_blocks", "attn_resolutions", "resblock_type", "progressive", "progressive_input",
        "progressive_combine", "embedding_type", "conditional", "num_scales", "sigma_max", "sigma_min",
        "nonlinearity", "fir", "fir_kernel", "skip_rescale", "scale_by_sigma")


def _meta_state(keys_file: Path) -> tuple[dict, dict]:
    d = json.loads(keys_file.read_text())
    cfg = d["config"]
    state = {k.removeprefix("module."): torch.empty(shape, device="meta") for k, shape, _ in d["state_dict"]}
    state["sigmas"] = ve_sigmas(cfg)
    return state, cfg


@pytest.mark.parametrize("path", sorted((NPP / "keys").glob("*.json")), ids=lambda p: p.stem)
def test_published_layouts_are_recognised(path):
    state, published = _meta_state(path)
    cfg, source, note = infer_config(state, published_configs())
    name = path.stem.removeprefix("score_sde_ve_")
    assert name in source.split("published ")[1].split(" = ") and note == ""
    assert {k: cfg["model"][k] for k in ARCH} == {k: published["model"][k] for k in ARCH}
    assert cfg["data"]["image_size"] == published["data"]["image_size"]
    assert cfg["sampling"] == published["sampling"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_networks_from_their_weights_alone(variant):
    """The inferred config builds the network that gives the original outputs (EMA weights), and agrees with the
    fixture's config on the architecture and the image size."""
    model, cfg, info = load_checkpoint(NPP / f"{variant}_checkpoint.pth", return_info=True)
    true = json.loads((NPP / f"{variant}_config.json").read_text())["config"]
    assert {k: cfg["model"][k] for k in ARCH} == {k: true["model"][k] for k in ARCH}
    assert cfg["data"]["image_size"] == true["data"]["image_size"]
    assert cfg["training"]["continuous"] == true["training"]["continuous"]
    assert info.config_source == "inferred from the weights" and info.config_note.startswith("assumed")
    io = torch.load(NPP / f"{variant}_model_io.pt", weights_only=True)
    want = io["float64_output"]["out_with_float32_sigmas_buffer"] if "discrete" in variant else io["out"]
    with torch.no_grad():
        out = model(io["x"], io["labels"])
    assert (out - want).abs().max() <= 1e-5 * want.abs().max()  # the tolerance of test_ncsnpp's own loads


def test_image_size_given_moves_the_attention():
    state = read(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth").state
    cfg, source, note = infer_config(state, published_configs(), image_size=64)
    assert cfg["data"]["image_size"] == 64 and cfg["model"]["attn_resolutions"] == [32]
    assert note.startswith("assumed") and "attention at 16x16" not in note
    with torch.device("meta"):
        NCSNpp(cfg)


def test_what_cannot_be_inferred_is_one_clear_error():
    state = read(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth").state
    attn = next(k.split(".")[1] for k in state if k.endswith("NIN_3.W"))
    broken = {k: v for k, v in state.items() if not k.startswith(f"all_modules.{attn}.")}
    with pytest.raises(CheckpointError, match="cannot infer the NCSN\\+\\+ config .*give --config"):
        infer_config(broken, published_configs())
    with pytest.raises(CheckpointError, match="no `sigmas` buffer"):
        infer_config({k: v for k, v in state.items() if k != "sigmas"}, published_configs())


@pytest.mark.parametrize("variant", VARIANTS)
def test_info_on_the_checkpoint_alone(variant, capsys):
    assert main(["info", str(NPP / f"{variant}_checkpoint.pth")]) == 0
    text = capsys.readouterr().out
    model, cfg = load_checkpoint(NPP / f"{variant}_checkpoint.pth", NPP / f"{variant}_config.json")
    m = cfg["model"]
    assert "config          inferred from the weights" in text
    assert f"NCSN++ (VE), {'continuous' if m['embedding_type'] == 'fourier' else 'discrete'}" in text
    assert f"ch_mult {tuple(m['ch_mult'])}" in text and f"progressive {m['progressive']} / input " \
           f"{m['progressive_input']}" in text
    assert f"{sum(p.numel() for p in model.parameters()):,}" in text


@pytest.mark.parametrize("options", [
    {"resblock_type": "ddpm", "progressive": "none", "progressive_input": "none"},
    {"resblock_type": "ddpm", "progressive": "residual", "progressive_input": "residual"},
    {"resblock_type": "biggan", "progressive": "output_skip", "progressive_input": "input_skip",
     "progressive_combine": "cat"},
    {"resblock_type": "biggan", "progressive": "residual", "progressive_input": "none", "num_res_blocks": 3,
     "ch_mult": [1, 2, 4]},
], ids=["ddpm", "ddpm_residual", "biggan_cat", "biggan_3_levels"])
def test_unpublished_options_are_found_too(options):
    """Layouts no published config has (DDPM blocks, the residual pyramids, concatenating skips, other depths):
    built on the meta device, recognised from their state_dict alone."""
    import copy
    cfg = copy.deepcopy(published_configs()["cifar10_ncsnpp_continuous"])
    cfg["model"].update(nf=16, **options)
    with torch.device("meta"):
        state = NCSNpp(cfg).state_dict()
    state["sigmas"] = ve_sigmas(cfg)
    got, source, note = infer_config(state, published_configs())
    assert source == "inferred from the weights" and note.startswith("assumed")
    assert {k: got["model"][k] for k in ARCH} == {k: cfg["model"][k] for k in ARCH}
    assert got["data"]["image_size"] == cfg["data"]["image_size"]
