"""The ncsn-fast command: sample, info, demo, and one clear line for bad input with no output left."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import fixture_path, refused
from PIL import Image

from ncsn_fast.cli import main
from ncsn_fast.machine import ISA_CAPS


def run(*args):
    return subprocess.run([sys.executable, "-m", "ncsn_fast.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_sample_writes_grid_npz_config(tmp_path):
    out = tmp_path / "out"
    rc = main(["sample", "--checkpoint", str(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth")),
               "--config", str(fixture_path("ncsn_cifar10_ngf8_config.yml")), "-n", "5", "--batch-size", "3",
               "--n-steps-each", "1", "--seed", "3", "--out", str(out), "--quiet"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.yml", "samples.npz", "samples.png"]
    arr = np.load(out / "samples.npz")["arr_0"]
    assert arr.dtype == np.uint8 and arr.shape == (5, 32, 32, 3)
    grid = np.asarray(Image.open(out / "samples.png"))
    assert grid.shape == (2 + 2 * 34, 2 + 3 * 34, 3)
    assert np.array_equal(grid[2:34, 2:34], arr[0])


def test_info(capsys):
    assert main(["info", str(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth")),
                 "--config", str(fixture_path("ncsnv2_cifar10_ngf8_config.yml"))]) == 0
    text = capsys.readouterr().out
    assert "NCSNv2 (ncsnv2), ngf 8" in text and "232 geometric, sigma 50 -> 0.01" in text
    assert "1161 network evaluations" in text and "EMA" in text


@pytest.mark.parametrize("case", ["missing", "wrong_config", "negative_n", "no_config", "out_is_file"])
def test_bad_input_one_line_exit_2_no_output(tmp_path, capsys, case):
    ckpt = fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth")
    out = tmp_path / "out"
    args = {"missing": ["--checkpoint", tmp_path / "nope.pth"],
            "wrong_config": ["--checkpoint", ckpt, "--config", fixture_path("ncsn_cifar10_ngf8_config.yml")],
            "negative_n": ["--checkpoint", ckpt, "-n", "-3"],
            "no_config": ["--checkpoint", ckpt],
            "out_is_file": ["--checkpoint", ckpt]}[case]
    if case == "out_is_file":
        out.write_text("x")
    rc, err = refused(capsys, "sample", *args, "--out", out)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "error:" in lines[0], err
    assert "Traceback" not in err
    if case != "out_is_file":
        assert not out.exists()


def test_a_refusal_is_one_line_from_the_command_itself(tmp_path):
    """The installed command's process: exit status 2, one line on stderr, no traceback, nothing written."""
    out = tmp_path / "out"
    r = run("sample", "--checkpoint", fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
            "--config", fixture_path("ncsn_cifar10_ngf8_config.yml"), "--out", out)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("ncsn-fast: error: "), r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_demo(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "-n", "2000"]) == 0
    text = capsys.readouterr().out
    assert "annealed Langevin" in text
    img = Image.open(tmp_path / "gmm_langevin.png")
    assert img.size[0] > img.size[1] > 100


def test_sample_with_another_sampler_names_it_and_its_evaluations(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["sample", "--checkpoint", str(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth")),
               "--config", str(fixture_path("ncsnv2_cifar10_ngf8_config.yml")), "-n", "3", "--sampler", "heun",
               "--steps", "4", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "sampler: heun (4 sigma 50 -> 0.01, rho 7): 7 network evaluations per sample" in text
    assert np.load(out / "samples.npz")["arr_0"].shape == (3, 32, 32, 3)


def test_the_built_in_ncsnpp_with_the_fast_preset(tmp_path, capsys):
    from ncsn_fast.sampling.presets import FAST
    out = tmp_path / "out"
    rc = main(["sample", "--model", "digits-ncsnpp", "--fast", "--steps", "40", "-n", "4", "--out", str(out),
               "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "4 samples of NCSNpp (the built-in digits-ncsnpp model" in text
    assert f"sampler: {FAST['ncsnpp'][0]} (40 " in text and "digit classifier:" in text  # the preset, --steps on top
    assert np.load(out / "samples.npz")["arr_0"].shape == (4, 16, 16, 1)
    assert main(["info", "--model", "digits-ncsnpp"]) == 0
    assert "NCSN++" in capsys.readouterr().out


def test_info_lists_the_samplers_a_checkpoint_supports(capsys):
    assert main(["info", str(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth")),
                 "--config", str(fixture_path("ncsn_cifar10_ngf8_config.yml"))]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("samplers")][0]
    assert "heun (sigma from the ladder)" in line and "ode" not in line


@pytest.mark.parametrize("case", ["unknown", "steps0", "negative_churn", "off_ladder", "churn_on_v1", "ald_option",
                                  "n_steps_each", "steps_on_ode", "tol_on_heun", "fast_and_sampler", "fast_on_v1",
                                  "model_and_checkpoint", "cas_without_step_lr"])
def test_bad_sampler_settings_exit_2_no_output(tmp_path, capsys, case):
    v1 = ["--checkpoint", fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"),
          "--config", fixture_path("ncsn_cifar10_ngf8_config.yml")]
    args = {"unknown": ["--sampler", "magic"], "steps0": ["--sampler", "heun", "--steps", "0"],
            "negative_churn": ["--sampler", "edm", "--churn", "-2"],
            "off_ladder": [*v1, "--sampler", "heun", "--sigma-max", "0.77"],
            "churn_on_v1": [*v1, "--sampler", "edm"], "ald_option": ["--steps", "10"],
            "n_steps_each": ["--sampler", "pc", "--n-steps-each", "3"],
            "steps_on_ode": ["--sampler", "ode", "--steps", "4"],
            "tol_on_heun": ["--sampler", "heun", "--tol", "0.1"], "fast_and_sampler": ["--fast", "--sampler", "heun"],
            "fast_on_v1": [*v1, "--fast"], "model_and_checkpoint": [*v1, "--model", "digits-ncsnpp"],
            "cas_without_step_lr": ["--model", "digits-ncsnpp", "--sampler", "cas"]}[case]
    out = tmp_path / "out"
    rc, err = refused(capsys, "sample", *args, "--out", out, "--quiet")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "error:" in lines[0], err
    assert not out.exists()


@pytest.mark.parametrize("variant", ["ncsnv2_cifar10_ngf8", "ncsn_cifar10_ngf8"])
def test_info_on_a_bare_checkpoint_reports_what_the_weights_tell(tmp_path, capsys, variant):
    import torch

    from ncsn_fast import load_checkpoint
    obj = torch.load(fixture_path(f"{variant}_checkpoint.pth"), weights_only=True)
    bare = tmp_path / "checkpoint.pth"
    torch.save(obj, bare)
    assert main(["info", str(bare)]) == 0
    text = capsys.readouterr().out
    model, cfg = load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"),
                                 config=fixture_path(f"{variant}_config.yml"))
    assert f"{cfg.arch} ({cfg.family}), ngf 8, 3 channels" in text
    assert f"parameters      {sum(p.numel() for p in model.parameters()):,}" in text
    assert "unknown         the image size: give --image-size" in text
    if cfg.family == "ncsnv2":
        assert "232, sigma 50 -> 0.01 (the sigmas buffer)" in text and "EMA weights present" in text
    else:
        assert "the sigma ladder: give --sigma-begin and --sigma-end" in text
    rc, err = refused(capsys, "sample", "--checkpoint", bare, "--out", tmp_path / "out", "--quiet")
    assert rc == 2 and "--image-size" in err and not (tmp_path / "out").exists()  # sampling still needs them


def test_distributed_setup_takes_the_gpu_of_local_rank(monkeypatch):
    """Under torchrun on CUDA each process selects the GPU of its LOCAL_RANK before joining NCCL (simulated: this
    machine has no GPU, so the calls into CUDA and the process group are recorded, not made)."""
    import torch
    import torch.distributed as dist

    from ncsn_fast.cli.args import distributed_setup

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    rank, world, dev = distributed_setup("cuda")
    assert (rank, world, dev) == (1, 2, torch.device("cuda", 1))
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "nccl")]


def test_compile_flag_hands_the_network_to_torch_compile(tmp_path, monkeypatch, capsys):
    """--compile reaches torch.compile with its mode (recorded here, the network left as it is), says so, and keeps
    inductor's caches on disk; generate records the mode in its manifest; --compile auto compiles long runs only;
    the reference path refuses it."""
    import json

    import torch

    from ncsn_fast.cli.args import AUTO_COMPILE_IMAGE_EVALS, compile_choice
    modes = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: modes.append(mode) or model)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    for cap in ISA_CAPS:
        monkeypatch.delenv(cap, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    quick = ["--sampler", "euler", "--steps", "2", "-n", "2", "--quiet"]
    assert main(["sample", *quick, "--compile", "--out", str(tmp_path / "s")]) == 0
    assert modes == [None] and ", torch.compile default)" in capsys.readouterr().out
    import os
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "ncsn_fast" / "inductor")
    assert main(["generate", *quick, "--compile", "max-autotune", "--out", str(tmp_path / "g")]) == 0
    assert modes == [None, "max-autotune"]
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["identity"]["compile"] == "max-autotune"
    capsys.readouterr()
    assert main(["generate", *quick, "--out", str(tmp_path / "g"), "--resume"]) == 2  # without it: refused
    assert "compile max-autotune -> None" in capsys.readouterr().err
    assert main(["generate", *quick, "--compile", "auto", "--out", str(tmp_path / "a")]) == 0
    assert len(modes) == 2  # 2 images x 2 evaluations: too short to compile
    images = -(-AUTO_COMPILE_IMAGE_EVALS // 48)  # the fewest images of 48 evaluations that make it long
    assert compile_choice("auto", images, 48) == "default" and compile_choice("auto", images - 1, 48) is None
    assert compile_choice("auto", 10 ** 9, None) is None  # adaptive: its evaluations are not known ahead
    capsys.readouterr()
    assert main(["sample", *quick, "--compile", "--reference", "--out", str(tmp_path / "r")]) == 2
    assert "reference runs eager" in capsys.readouterr().err


def test_compile_cache_of_its_own_per_isa_caps(tmp_path, monkeypatch):
    """Inductor's cache does not key on ISA caps: a capped process keeps its compiled code in a folder of its own."""
    from ncsn_fast.models.fast_copy import keep_compile_cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for cap in ISA_CAPS:
        monkeypatch.delenv(cap, raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert keep_compile_cache() == str(tmp_path / "ncsn_fast" / "inductor-default-sse41")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))  # the user's choice stands
    assert keep_compile_cache() == str(tmp_path / "mine")
