"""NCSN++ in the diffusers format, read without diffusers: the fixtures' outputs (diffusers' network, group counts
included), the score-SDE original's for the converted church model, the unet folder alone, .bin weights through
the safe unpickler, older attention names, every command on a folder, and one clear line for a folder that does
not map."""

import json
import shutil

import pytest
import torch
from conftest import FIXTURES

from ncsn_fast import load_checkpoint, sample
from ncsn_fast.cli import main
from ncsn_fast.errors import CheckpointError

D = FIXTURES / "diffusers"
CELEBA, CHURCH = "ncsnpp_celebahq_like_nf8_img64", "ncsnpp_church_noattn_from_scoresde_nf8_img64"


def _io(name):
    return torch.load(D / f"{name}_io.pt", weights_only=True)


def _per_sample_error(out, want):
    """max |out - want| of each sample over that sample's max |want| (scores differ between samples by 1/sigma)."""
    return max(float((o - w).abs().max() / w.abs().max()) for o, w in zip(out, want))


@pytest.mark.parametrize("name", [CELEBA, CHURCH])
def test_outputs_are_diffusers(name):
    """The fixture README's tolerance: within 1e-5 of each sample's max |out| (1 vs 2 threads moves 1.4e-6)."""
    model, cfg, info = load_checkpoint(D / name, return_info=True)
    io = _io(name)
    with torch.no_grad():
        out = model(io["x"], io["sigma"])
    assert info.layout == "diffusers" and cfg["model"]["group_norm"] == "diffusers"
    assert _per_sample_error(out, io["out"]) <= 1e-5


def test_diffusers_group_counts_are_part_of_the_layout():
    """The celebahq-like folder: diffusers' network differs from score-SDE's on the same weights (6 GroupNorms take
    other group counts); with score-SDE's counts the same weights give score-SDE's output."""
    model, cfg = load_checkpoint(D / CELEBA)
    io = _io(CELEBA)
    assert model.group_counts_differ() == len(io["groupnorm_groups_differ"]) == 6
    cfg["model"]["group_norm"] = "score_sde"
    strict, _ = load_checkpoint(D / CELEBA, config=cfg)
    assert strict.group_counts_differ() == 0
    with torch.no_grad():
        out = strict(io["x"], io["sigma"])
    assert _per_sample_error(out, io["out_scoresde"]) <= 1e-5
    assert _per_sample_error(out, io["out"]) > 0.1


def test_the_converted_church_model_is_the_score_sde_network():
    model, _ = load_checkpoint(D / CHURCH)
    io = _io(CHURCH)
    assert model.group_counts_differ() == 0 and io["out_vs_original_code_same_weights"] == 0.0
    with torch.no_grad():
        out = model(io["x"], io["sigma"])
    assert _per_sample_error(out, io["out"]) <= 1e-5  # = the original code's output on these weights


def test_unet_folder_alone_bin_weights_and_older_attention_names(tmp_path):
    from safetensors.torch import load_file
    io = _io(CELEBA)
    unet = tmp_path / "unet"
    shutil.copytree(D / CELEBA / "unet", unet)
    tensors = load_file(unet / "diffusion_pytorch_model.safetensors")
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for k, v in tensors.items():
        for new, before in old.items():
            k = k.replace(f".{new}.", f".{before}.")
        renamed[k] = v
    torch.save(renamed, unet / "diffusion_pytorch_model.bin")
    model, cfg, info = load_checkpoint(unet, return_info=True)
    assert "ScoreSdeVeScheduler defaults" in info.config_source and cfg["model"]["sigma_max"] == 1348.0
    with torch.no_grad():
        out = model(io["x"], io["sigma"])
    assert _per_sample_error(out, io["out"]) <= 1e-5

    class Exploit:
        def __reduce__(self):
            return (print, ("ran",))
    torch.save({**renamed, "x": Exploit()}, unet / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(unet)


def _edited(tmp_path, change_config=None, change_tensors=None):
    from safetensors.torch import load_file, save_file
    folder = tmp_path / "f"
    shutil.copytree(D / CELEBA, folder)
    cfg_file = folder / "unet" / "config.json"
    if change_config:
        cfg = json.loads(cfg_file.read_text())
        change_config(cfg)
        cfg_file.write_text(json.dumps(cfg))
    if change_tensors:
        path = folder / "unet" / "diffusion_pytorch_model.safetensors"
        tensors = load_file(path)
        change_tensors(tensors)
        save_file(tensors, path)
    return folder


@pytest.mark.parametrize("case,match", [
    ("block", "block type DownBlock2D"), ("embedding", "time_embedding_type 'positional'"),
    ("extra_key", r"down_blocks.0.resnets.0.extra.weight \(resnet block\) is not one"),
    ("missing_module", "lack 1 module"), ("heads", "attention_head_dim 8"),
])
def test_a_folder_that_does_not_map_is_one_clear_line(tmp_path, capsys, case, match):
    if case == "block":
        folder = _edited(tmp_path, lambda c: c["down_block_types"].__setitem__(0, "DownBlock2D"))
    elif case == "embedding":
        folder = _edited(tmp_path, lambda c: c.update(time_embedding_type="positional"))
    elif case == "heads":
        folder = _edited(tmp_path, lambda c: c.update(attention_head_dim=8))
    elif case == "extra_key":
        folder = _edited(tmp_path, change_tensors=lambda t: t.update({"down_blocks.0.resnets.0.extra.weight":
                                                                      torch.zeros(1)}))
    else:
        folder = _edited(tmp_path, change_tensors=lambda t: [t.pop(k) for k in list(t) if k.startswith("conv_in.")])
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(folder)
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", str(folder), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()


def test_every_command_on_a_folder(tmp_path, capsys):
    folder = str(D / CELEBA)
    assert main(["info", folder]) == 0
    text = capsys.readouterr().out
    assert "(diffusers layout)" in text and "6 of them other than score-SDE's" in text and "snr 0.15" in text
    assert main(["sample", "--checkpoint", folder, "-n", "2", "--sampler", "heun", "--steps", "2", "--out",
                 str(tmp_path / "s"), "--quiet"]) == 0
    assert main(["generate", "--checkpoint", folder, "-n", "3", "--sampler", "heun", "--steps", "2", "--out",
                 str(tmp_path / "g"), "--quiet"]) == 0
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert len(manifest["settings"]["checkpoint_sha256"]) == 64
    st = tmp_path / "npp.safetensors"
    assert main(["convert", folder, str(st)]) == 0
    model, cfg = load_checkpoint(folder)
    again, cfg2 = load_checkpoint(st)
    assert again.group_counts_differ() == 6 and cfg2.to_dict() == cfg.to_dict()
    kw = dict(n=2, sampler="heun", steps=2, seed=3, progress=False)
    assert torch.equal(sample(model, **kw), sample(again, **kw))


def test_the_reference_is_diffusers_pipeline(capsys, tmp_path):
    """method='reference' (--reference) on a diffusers folder runs ScoreSdeVePipeline as written: its schedule and
    ladder exactly, its prior draw exactly, its final mean within 1e-5 of max |final_mean| (the fixture README's
    tolerance; 1 vs 2 threads moves it 1.7e-7)."""
    from ncsn_fast.sampling.diffusers_pc import schedule
    model, cfg = load_checkpoint(D / CELEBA)
    run = torch.load(D / f"{CELEBA}_pc.pt", weights_only=True)
    timesteps, sigmas, ladder = schedule(cfg["diffusers_scheduler"], run["num_inference_steps"])
    assert torch.equal(timesteps, run["timesteps"]) and torch.equal(sigmas, run["sigmas"])
    assert torch.equal(ladder, run["discrete_sigmas"])
    x = sample(model, n=run["batch_size"], seed=run["seed"], method="reference", steps=run["num_inference_steps"],
               progress=False)
    assert (x - run["final_mean"]).abs().max() <= 1e-5 * run["final_mean"].abs().max()
    assert main(["sample", "--checkpoint", str(D / CELEBA), "-n", "2", "--steps", "2", "--reference", "--out",
                 str(tmp_path / "r"), "--quiet"]) == 0
    assert "diffusers' ScoreSdeVePipeline (2 steps" in capsys.readouterr().out


def _load_json(path):
    return json.loads(path.read_text())


def test_convert_to_diffusers_round_trips(tmp_path, capsys):
    """A folder read and written back is the same folder (config, scheduler, every tensor by name); ours -> a
    diffusers folder -> ours is bit-identical, from a .safetensors of ours too."""
    from safetensors.torch import load_file
    src = D / CHURCH
    out = tmp_path / "church"
    assert main(["convert", str(src), str(out), "--to", "diffusers"]) == 0
    assert _load_json(out / "unet" / "config.json") == _load_json(src / "unet" / "config.json")
    assert _load_json(out / "scheduler" / "scheduler_config.json") == \
        _load_json(src / "scheduler" / "scheduler_config.json")
    a, b = load_file(out / "unet" / "diffusion_pytorch_model.safetensors"), \
        load_file(src / "unet" / "diffusion_pytorch_model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    for start in (D / CELEBA, tmp_path / "ours.safetensors"):
        if start.suffix == ".safetensors":
            assert main(["convert", str(D / CELEBA), str(start)]) == 0
        back = tmp_path / f"back_{start.stem}"
        assert main(["convert", str(start), str(back), "--to", "diffusers"]) == 0
        first, _ = load_checkpoint(start)
        again, _ = load_checkpoint(back)
        x, y = first.state_dict(), again.state_dict()
        assert list(x) == list(y) and all(torch.equal(x[k], y[k]) for k in x)
        assert [m.num_groups for m in first.modules() if isinstance(m, torch.nn.GroupNorm)] == \
            [m.num_groups for m in again.modules() if isinstance(m, torch.nn.GroupNorm)]


@pytest.mark.parametrize("ckpt,match", [
    ("ncsnpp/ncsnpp_church_nf8_img64_checkpoint.pth", "16 channels cannot take the 32 groups"),
    ("ncsnpp/ncsnpp_cifar10_cont_nf8_checkpoint.pth", "model.progressive is 'none'"),
    ("ncsnv2_church_ngf4_checkpoint.pth", "only NCSN\\+\\+ converts"),
])
def test_what_diffusers_cannot_express_is_refused_and_nothing_written(tmp_path, capsys, ckpt, match):
    import re
    out = tmp_path / "d"
    extra = ["--config", str(FIXTURES / "ncsnv2_church_ngf4_config.yml")] if "ncsnv2" in ckpt else []
    assert main(["convert", str(FIXTURES / ckpt), str(out), "--to", "diffusers", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err) and not out.exists()
    assert not list(tmp_path.iterdir())


class UNet2DModel(torch.nn.Module):
    """A stand-in of diffusers' class: its config and its parameters under its names, loaded strictly from the
    fixture (no forward: accelerate rebuilds the network from config and weights)."""

    def __init__(self, config, names_shapes):
        super().__init__()
        self.config = config
        for name, shape in names_shapes:
            *path, leaf = name.split(".")
            mod = self
            for part in path:
                if not hasattr(mod, part):
                    mod.add_module(part, torch.nn.Module())
                mod = getattr(mod, part)
            mod.register_parameter(leaf, torch.nn.Parameter(torch.empty(shape)))


def test_accelerate_a_diffusers_unet_in_memory():
    from safetensors.torch import load_file

    import ncsn_fast
    folder = D / CELEBA
    weights = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    unet = UNet2DModel(_load_json(folder / "unet" / "config.json"), [(k, v.shape) for k, v in weights.items()])
    unet.load_state_dict(weights, strict=True)
    fast = ncsn_fast.accelerate(unet, scheduler=_load_json(folder / "scheduler" / "scheduler_config.json"))
    io = _io(CELEBA)
    with torch.no_grad():
        out = fast(io["x"], io["sigma"])
    assert _per_sample_error(out, io["out"]) <= 1e-5 and fast.config["model"]["sigma_max"] == 348.0
    loaded, _ = load_checkpoint(folder)
    kw = dict(n=2, sampler="heun", steps=2, seed=1, progress=False)
    assert torch.equal(ncsn_fast.sample(fast, **kw), ncsn_fast.sample(loaded, **kw))
