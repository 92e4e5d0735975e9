"""NCSN++ of the score-SDE code (VE): the published configs' layouts, the original outputs, safe loading of its
checkpoints with the EMA list, and sampling through every sampler."""

import json
import pickle
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES

from ncsn_fast import load_checkpoint, sample
from ncsn_fast.config import published_ncsnpp_configs as published_configs
from ncsn_fast.errors import CheckpointError
from ncsn_fast.models.ncsnpp import NCSNpp

NPP = FIXTURES / "ncsnpp"
VARIANTS = ["ncsnpp_cifar10_cont_nf8", "ncsnpp_cifar10_discrete_nf8", "ncsnpp_church_nf8_img64"]


def _load(variant, **kw):
    return load_checkpoint(NPP / f"{variant}_checkpoint.pth", NPP / f"{variant}_config.json", return_info=True, **kw)


@pytest.mark.parametrize("path", sorted((NPP / "keys").glob("*.json")), ids=lambda p: p.stem)
def test_published_layouts(path):
    """Every published VE config: the state_dict in the original order and shapes, the parameter count, the
    parameters the EMA skips; the packaged config by name is that config."""
    d = json.loads(path.read_text())
    with torch.device("meta"):
        model = NCSNpp(d["config"])
    got = [("module." + k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == [(k, s) for k, s, _ in d["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == d["num_params"]
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == d["params_without_grad"]
    assert published_configs()[path.stem.removeprefix("score_sde_ve_")] == d["config"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_outputs_of_the_original(variant):
    io = torch.load(NPP / f"{variant}_model_io.pt", weights_only=True)
    want = io["float64_output"]["out_with_float32_sigmas_buffer"] if "discrete" in variant else io["out"]
    for ema, ref in ((True, want), (False, io["out_raw_weights"].float())):
        model, cfg, info = _load(variant, ema=ema)
        assert info.has_ema and info.ema_applied == ema and info.step == 1
        with torch.no_grad():
            out = model(io["x"], io["labels"])
        assert out.dtype == torch.float32  # the original's discrete model promoted it to float64
        assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    with torch.no_grad():
        one = torch.cat([model(io["x"][i:i + 1], io["labels"][i:i + 1]) for i in range(len(io["x"]))])
    assert (one - io["out_raw_weights"].float()).abs().max() <= 1e-5 * io["out_raw_weights"].abs().max()


def test_safe_loading_refuses_other_globals(tmp_path):
    obj = torch.load(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth", weights_only=False)
    obj["extra"] = Path("/tmp")  # a class that is not a tensor, a number or a NumPy scalar
    bad = tmp_path / "bad.pth"
    torch.save(obj, bad)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(bad, NPP / "ncsnpp_cifar10_cont_nf8_config.json")
    bad.write_bytes(pickle.dumps({"model": 1})[:5])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(bad, NPP / "ncsnpp_cifar10_cont_nf8_config.json")


def test_wrong_or_missing_config_is_one_clear_error():
    with pytest.raises(CheckpointError, match="does not match the config .*published config cifar10_ncsnpp_continuous"):
        load_checkpoint(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth", "cifar10_ncsnpp_continuous")
    with pytest.raises(CheckpointError, match="a published name"):
        load_checkpoint(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth", "no_such_config")


@pytest.mark.parametrize("variant", VARIANTS[:2])
def test_every_sampler_runs_on_ncsnpp(variant):
    """Continuous (any sigma) and discrete (its ladder) NCSN++: the fast table equals the reference, samples do
    not depend on the batch; the default is the predictor-corrector with the config's snr."""
    model, cfg, _ = _load(variant)
    for kw in (dict(sampler="heun", steps=3), dict(sampler="dpmpp-2m", steps=4), dict(sampler="pc", steps=4)):
        fast = sample(model, n=3, progress=False, **kw)
        ref = sample(model, n=3, progress=False, method="reference", rng="philox", **kw)
        assert torch.isfinite(fast).all() and (fast - ref).abs().max() <= 1e-4 * ref.abs().max(), kw
        assert torch.equal(fast, sample(model, n=3, progress=False, batch_size=2, **kw))
    default = sample(model, n=2, progress=False)
    assert default.shape == (2, 3, 32, 32) and torch.equal(
        default, sample(model, n=2, progress=False, sampler="pc", snr=cfg["sampling"]["snr"]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_score_sde_samplers_reproduce_the_original_runs(variant):
    """The score-SDE code's PC (reverse diffusion + Langevin), Euler-Maruyama only, Langevin only and RK45 ODE,
    from the recorded seeds: the recorded samples to 1e-5 of max |final| (the fixture README's tolerance; the
    original moves by up to 1.5e-7 relative between thread counts), the same evaluation counts."""
    from ncsn_fast.sampling.score_sde import VESDE, ode_sampler, pc_sampler
    model, cfg, _ = _load(variant)
    d = torch.load(NPP / f"{variant}_samplers.pt", weights_only=True)
    s = d["sde"]
    sde = VESDE(s["sigma_min"], s["sigma_max"], s["N"])
    assert (sde.discrete_sigmas - s["discrete_sigmas"]).abs().max() <= 1e-7 * s["sigma_max"]
    for name, run in d["runs"].items():
        g = torch.Generator().manual_seed(d["seed"])
        x, nfe = pc_sampler(model, tuple(run["final"].shape), sde, snr=d["snr"], n_steps_each=d["n_steps_each"],
                            predictor=run["predictor"], corrector=run["corrector"], denoise=d["denoise"],
                            eps=d["eps"], continuous=d["continuous"], generator=g)
        assert nfe == run["nfe"]
        assert (x - run["final"]).abs().max() <= 1e-5 * run["final"].abs().max(), name
    x = sample(model, n=4, seed=d["seed"], method="reference", rng="torch", sampler="pc", progress=False)
    assert (x - d["runs"]["pc"]["final"]).abs().max() <= 1e-5 * d["runs"]["pc"]["final"].abs().max()
    if "ode" in d:
        o = d["ode"]
        x, nfe = ode_sampler(model, o["z"], sde, rtol=o["rtol"], atol=o["atol"], method=o["method"], eps=d["eps"],
                             denoise=o["denoise"], continuous=d["continuous"])
        assert nfe == o["nfe"] and (x - o["final"]).abs().max() <= 1e-5 * o["final"].abs().max()
        x = sample(model, n=4, seed=6, method="reference", sampler="ode", rtol=o["rtol"], atol=o["atol"],
                   progress=False)
        assert (x - o["final"]).abs().max() <= 1e-5 * o["final"].abs().max()


def test_cli_on_an_ncsnpp_checkpoint(tmp_path, capsys):
    from ncsn_fast.cli import main
    ckpt, cfg = str(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth"), str(NPP / "ncsnpp_cifar10_cont_nf8_config.json")
    assert main(["info", ckpt, "--config", cfg]) == 0
    text = capsys.readouterr().out
    assert "NCSN++ (VE), continuous" in text and "161,875" in text and "20 geometric, sigma 50 -> 0.01" in text
    assert main(["sample", "--checkpoint", ckpt, "--config", cfg, "-n", "2", "--out", str(tmp_path / "s"),
                 "--quiet"]) == 0
    assert "sampler: pc (20 sigma 50 -> 0.01, snr 0.16" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", ckpt, "--config", cfg, "-n", "3", "--out", str(tmp_path / "g"),
                 "--quiet", "--sampler", "heun", "--steps", "3"]) == 0
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["settings"]["sampler"]["name"] == "heun" and manifest["settings"]["dtype"] == "float32"
    capsys.readouterr()
    assert main(["sample", "--checkpoint", ckpt, "--config", "no_such", "-n", "2", "--out", str(tmp_path / "no"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs its config" in err and err.count("\n") == 1 and not (tmp_path / "no").exists()
    assert main(["sample", "--checkpoint", ckpt, "--config", cfg, "--sampler", "ald", "--out",
                 str(tmp_path / "ald"), "--quiet"]) == 2


def test_cli_batch_mean_keeps_the_original_rule(tmp_path, capsys):
    """--batch-mean: pc's corrector step from the batch means, as the score-SDE code does; the samples are then
    those of the Python API with batch_mean=True (and not the per-sample default's); generate and the other
    samplers refuse it with nothing written."""
    import numpy as np

    from ncsn_fast.cli import main
    from ncsn_fast.sampling.plan import SamplerSettings
    ckpt = str(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth")
    common = ["--checkpoint", ckpt, "-n", "3", "--seed", "5", "--steps", "4", "--quiet"]
    assert main(["sample", *common, "--batch-mean", "--out", str(tmp_path / "m")]) == 0
    assert "batch-mean steps" in capsys.readouterr().out
    assert main(["sample", *common, "--out", str(tmp_path / "p")]) == 0
    got = np.load(tmp_path / "m" / "samples.npz")["arr_0"]
    assert not np.array_equal(got, np.load(tmp_path / "p" / "samples.npz")["arr_0"])
    model, cfg = load_checkpoint(ckpt)
    x = sample(model, n=3, seed=5, sampler=SamplerSettings("pc", steps=4, snr=cfg["sampling"]["snr"],
                                                           batch_mean=True), progress=False)
    want = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    capsys.readouterr()
    for argv in (["generate", *common, "--batch-mean", "--out", str(tmp_path / "g")],
                 ["sample", *common, "--batch-mean", "--sampler", "heun", "--out", str(tmp_path / "h")]):
        assert main(argv) == 2
        assert "--batch-mean" in capsys.readouterr().err
    assert not (tmp_path / "g").exists() and not (tmp_path / "h").exists()


def test_cli_bfloat16_on_request(tmp_path, capsys):
    """auto keeps NCSN++ in float32; --dtype bfloat16 runs the network in bfloat16 (the sigma buffer and the
    Fourier W kept), close to the float32 samples."""
    import numpy as np

    from ncsn_fast.cli import main
    ckpt = str(NPP / "ncsnpp_cifar10_cont_nf8_checkpoint.pth")
    common = ["--checkpoint", ckpt, "-n", "4", "--seed", "2", "--sampler", "heun", "--steps", "6", "--quiet"]
    assert main(["sample", *common, "--out", str(tmp_path / "a")]) == 0
    assert "float32 (auto: NCSN++ in float32)" in capsys.readouterr().out
    assert main(["sample", *common, "--dtype", "bfloat16", "--out", str(tmp_path / "b")]) == 0
    assert "fast path, bfloat16" in capsys.readouterr().out
    a, b = (np.load(tmp_path / d / "samples.npz")["arr_0"].astype(int) for d in "ab")
    assert not np.array_equal(a, b) and np.abs(a - b).mean() < 2
