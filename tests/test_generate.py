"""`ncsn-fast generate`: images independent of batch size, process count and restarts; layout; refusals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import refused
from PIL import Image

from ncsn_fast import build_model, save_checkpoint
from ncsn_fast.cli import main
from ncsn_fast.config import config_from_dict

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A small random NCSNv2 (ngf 4, 1x8x8, 8 levels) in our format: seconds per run, real code paths."""
    raw = {"data": {"dataset": "DIGITS", "image_size": 8, "channels": 1},
           "model": {"ngf": 4, "num_classes": 8, "sigma_begin": 3.0, "sigma_end": 0.05, "ema": False,
                     "sigma_dist": "geometric"},
           "sampling": {"batch_size": 4, "n_steps_each": 2, "step_lr": 1e-4, "denoise": True}}
    cfg = config_from_dict(raw)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(path, build_model(cfg), cfg)
    return path


def _run(ckpt, out, *extra, n=10):
    return main(["generate", "--checkpoint", str(ckpt), "-n", str(n), "--out", str(out), "--quiet",
                 "--shard-size", "4", *extra])


def _pngs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "images").rglob("*.png"))}


def _cli(ckpt, out, *extra, launcher=(sys.executable, "-m"), n=10, **popen):
    cmd = [*launcher, "ncsn_fast.cli", "generate", "--checkpoint", str(ckpt), "-n", str(n), "--out", str(out),
           "--quiet", "--shard-size", "2", *extra]
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def test_batch_size_invariance_and_layout(tiny_checkpoint, tmp_path):
    assert _run(tiny_checkpoint, tmp_path / "b10", "--batch-size", "10") == 0
    assert _run(tiny_checkpoint, tmp_path / "b3", "--batch-size", "3") == 0
    a, b = _pngs(tmp_path / "b10"), _pngs(tmp_path / "b3")
    assert list(a) == [f"images/00/{i:06d}.png" for i in range(10)]
    assert a == b  # byte for byte
    for out in ("b10", "b3"):
        with np.load(tmp_path / out / "samples.npz") as z:
            assert list(z.keys()) == ["arr_0"]
            arr = z["arr_0"]
        assert arr.dtype == np.uint8 and arr.shape == (10, 8, 8, 1)  # N, H, W, C as FID tools read it
        for i in (0, 9):  # the npz holds what the PNGs hold
            assert np.array_equal(np.asarray(Image.open(tmp_path / out / f"images/00/{i:06d}.png")), arr[i, ..., 0])
    manifest = json.loads((tmp_path / "b3" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["settings"]["n"] == 10 and manifest["settings"]["seed"] == 0
    assert len(manifest["settings"]["checkpoint_sha256"]) == 64 and manifest["timing"]["batch_size"] == 3
    assert (tmp_path / "b3" / "grid.png").is_file() and not (tmp_path / "b3" / "shards").exists()
    # another seed gives other images
    assert _run(tiny_checkpoint, tmp_path / "s1", "--seed", "1", "--format", "png") == 0
    assert _pngs(tmp_path / "s1") != a and not (tmp_path / "s1" / "samples.npz").exists()


def test_npz_only_and_a_finished_run_is_left_alone(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "o"
    assert _run(tiny_checkpoint, out, "--format", "npz", "--batch-size", "auto", n=5) == 0
    assert not (out / "images").exists()
    assert json.loads((out / "manifest.json").read_text())["timing"]["batch_size"] == 4  # CPU: the config's
    before = (out / "samples.npz").read_bytes()
    capsys.readouterr()
    assert _run(tiny_checkpoint, out, "--format", "npz", "--resume", n=5) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "samples.npz").read_bytes() == before


@pytest.mark.parametrize("case", ["n0", "unwritable", "other_settings", "existing_no_flag", "foreign_files",
                                  "bad_batch", "bad_checkpoint"])
def test_refusals_exit_2_with_one_line(tiny_checkpoint, tmp_path, capsys, case):
    out = tmp_path / "o"
    args = ["generate", "--checkpoint", str(tiny_checkpoint), "-n", "4", "--out", str(out), "--quiet"]
    if case == "n0":
        args[4] = "0"
    elif case == "unwritable":
        if os.geteuid() == 0:
            args[6] = "/proc/ncsn_fast_out"  # root may write anywhere writable; /proc is not
        else:
            (tmp_path / "ro").mkdir(mode=0o500)
            args[6] = str(tmp_path / "ro" / "o")
    elif case in ("other_settings", "existing_no_flag"):
        assert main(args) == 0
        capsys.readouterr()
        args += ["--seed", "5", "--resume"] if case == "other_settings" else []
    elif case == "foreign_files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "bad_batch":
        args += ["--batch-size", "lots"]
    elif case == "bad_checkpoint":
        (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
        args[2] = str(tmp_path / "junk.pth")
    code, err = refused(capsys, *args)
    assert code == 2, err
    assert err.startswith("ncsn-fast") and err.count("\n") == 1, err
    if case == "other_settings":
        assert "seed differ" in err
    if case == "foreign_files":
        assert (out / "notes.txt").read_text() == "mine" and sorted(os.listdir(out)) == ["notes.txt"]


def test_two_processes_make_the_same_images(tiny_checkpoint, tmp_path):
    assert _run(tiny_checkpoint, tmp_path / "one") == 0
    proc = _cli(tiny_checkpoint, tmp_path / "two", "--batch-size", "2", launcher=TORCHRUN)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert _pngs(tmp_path / "two") == _pngs(tmp_path / "one")
    assert (tmp_path / "two" / "samples.npz").read_bytes() == (tmp_path / "one" / "samples.npz").read_bytes()
    timing = json.loads((tmp_path / "two" / "manifest.json").read_text())["timing"]
    assert timing["processes"] == 2 and sorted(t["images"] for t in timing["per_process"]) == [4, 6]
    # a finished run resumed under torchrun: nothing redone by any process; other settings: one error line
    proc = _cli(tiny_checkpoint, tmp_path / "two", "--batch-size", "2", "--resume", launcher=TORCHRUN)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "nothing to do" in out, err[-3000:]
    proc = _cli(tiny_checkpoint, tmp_path / "two", "--seed", "3", "--resume", launcher=TORCHRUN)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and err.count("ncsn-fast: error: ") == 1 and "seed differ" in err
    assert _pngs(tmp_path / "two") == _pngs(tmp_path / "one")


def test_kill_9_then_resume_equals_an_uninterrupted_run(tiny_checkpoint, tmp_path):
    n = 40
    assert _run(tiny_checkpoint, tmp_path / "whole", "--batch-size", "2", n=n) == 0
    out = tmp_path / "killed"
    proc = _cli(tiny_checkpoint, out, "--batch-size", "1", n=n, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "shards").glob("shard_*.npz"))) < 2:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-run: some shards recorded, the current one half written
    proc.wait()
    recorded = len(list((out / "shards").glob("shard_*.npz")))
    assert 2 <= recorded < n // 2, recorded
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "-n", str(n), "--out", str(out), "--quiet",
                 "--shard-size", "2", "--batch-size", "3", "--resume"]) == 0
    pngs = _pngs(out)
    assert len(pngs) == n and pngs == _pngs(tmp_path / "whole")
    assert (out / "samples.npz").read_bytes() == (tmp_path / "whole" / "samples.npz").read_bytes()
    assert not list(out.rglob("*.tmp"))


def test_writer_queue_is_bounded_and_its_wait_is_counted():
    """Memory stays flat: at most max_pending writes are in flight; the caller's wait for room is measured."""
    import threading

    from ncsn_fast.generate import Writer

    gate, running, peak = threading.Event(), [0], [0]
    lock = threading.Lock()

    def slow():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(5)
        with lock:
            running[0] -= 1

    writer = Writer(threads=4, max_pending=2)
    writer.submit(slow)
    writer.submit(slow)
    assert len(writer.pending) == 2 and writer.waited == 0.0
    threading.Timer(0.2, gate.set).start()
    writer.submit(slow)  # blocks until the oldest write is done
    assert writer.waited >= 0.1 and len(writer.pending) <= 2
    writer.close()
    assert peak[0] <= 3 and not writer.pending


def test_another_sampler_is_recorded_and_resume_needs_the_same(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "o"
    assert _run(tiny_checkpoint, out, "--sampler", "dpmpp-2m", "--steps", "5", "--batch-size", "3") == 0
    assert "sampler: dpmpp-2m" in capsys.readouterr().out
    sampler = json.loads((out / "manifest.json").read_text())["settings"]["sampler"]
    assert sampler["name"] == "dpmpp-2m" and sampler["steps"] == 5
    other = tmp_path / "o2"
    assert _run(tiny_checkpoint, other, "--sampler", "dpmpp-2m", "--steps", "5", "--batch-size", "10") == 0
    assert np.array_equal(np.load(out / "samples.npz")["arr_0"], np.load(other / "samples.npz")["arr_0"])
    capsys.readouterr()
    assert _run(tiny_checkpoint, out, "--sampler", "dpmpp-2m", "--steps", "6", "--resume") == 2
    assert "sampler differ" in capsys.readouterr().err
    assert _run(tiny_checkpoint, tmp_path / "o3", "--sampler", "ode") == 2
    assert "ode" in capsys.readouterr().err and not (tmp_path / "o3").exists()


def test_ncsnpp_under_torchrun_makes_the_same_images(tmp_path):
    """An NCSN++ checkpoint of the score-SDE code alone (config inferred), its default pc sampler with per-sample
    corrector steps: two processes with batches of 2 write the images one process writes with batches of 6."""
    from conftest import fixture_path
    ckpt = fixture_path("ncsnpp") / "ncsnpp_cifar10_cont_nf8_checkpoint.pth"
    assert _run(ckpt, tmp_path / "one", "--steps", "3", n=6) == 0
    proc = _cli(ckpt, tmp_path / "two", "--steps", "3", "--batch-size", "2", launcher=TORCHRUN, n=6)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert _pngs(tmp_path / "two") == _pngs(tmp_path / "one") and len(_pngs(tmp_path / "one")) == 6
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["settings"]["sampler"]["name"] == "pc" and manifest["timing"]["processes"] == 2
