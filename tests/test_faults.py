"""Nothing lost, nothing mixed: generation and training under faults, each case asserting the final bytes or the one
line it ends with. (Kill -9 and resume, and two processes, are in test_generate.py.)"""

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ncsn_fast import build_model, save_checkpoint
from ncsn_fast.cli import main
from ncsn_fast.config import config_from_dict
from ncsn_fast.runlock import LOCK_NAME, RunLock

RAW = {"data": {"dataset": "DIGITS", "image_size": 8, "channels": 1},
       "model": {"ngf": 4, "num_classes": 8, "sigma_begin": 3.0, "sigma_end": 0.05, "ema": False,
                 "sigma_dist": "geometric"},
       "sampling": {"batch_size": 4, "n_steps_each": 2, "step_lr": 1e-4, "denoise": True}}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    cfg = config_from_dict(RAW)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(path, build_model(cfg), cfg)
    return path


@pytest.fixture(scope="module")
def whole(ckpt, tmp_path_factory):
    """An uninterrupted run: the bytes every faulty run must end with."""
    out = tmp_path_factory.mktemp("whole") / "run"
    assert _gen(ckpt, out) == 0
    return out


def _gen(ckpt, out, *extra, n=10):
    return main(["generate", "--checkpoint", str(ckpt), "-n", str(n), "--out", str(out), "--quiet",
                 "--shard-size", "4", *extra])


def _files(out: Path) -> dict[str, bytes]:
    names = [p for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"]
    return {str(p.relative_to(out)): p.read_bytes() for p in names}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("ncsn-fast: error")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_second_run_in_a_locked_folder_touches_nothing(ckpt, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    with RunLock(out, "generate run"):
        assert _gen(ckpt, out) == 2
        line = _one_line(capsys)
        assert "in use by another generate run" in line and f"pid {os.getpid()}" in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "mine.txt"]
    assert not (out / LOCK_NAME).exists()  # released cleanly: no lock file left
    with RunLock(out, "training run"):
        assert main(["train", "--config", str(_config_file(tmp_path)), "--data", "digits", "--out", str(out),
                     "--steps", "1", "--quiet"]) == 2
        assert "in use by another" in _one_line(capsys)


def test_a_stale_lock_is_named_and_taken_over(ckpt, whole, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"host": "gone", "pid": 999999, "started": "then", "command": "x"}))
    assert _gen(ckpt, out) == 0
    assert "stale lock" in capsys.readouterr().err and "pid 999999 on gone" not in _files(out)
    assert _files(out) == _files(whole) and not (out / LOCK_NAME).exists()


def _unfinished(whole: Path, out: Path) -> None:
    """The run `whole` as it stood before its end: an unfinished manifest, its shard records, no npz or grid."""
    from ncsn_fast.generate.folder import Settings
    from ncsn_fast.generate.shards import write_shard
    manifest = json.loads((whole / "manifest.json").read_text())
    settings = Settings(**manifest["settings"])
    shutil.copytree(whole / "images", out / "images")
    with np.load(whole / "samples.npz") as z:
        images = z["arr_0"]
    for k in range(3):
        ids = range(4 * k, min(4 * k + 4, 10))
        write_shard(out, k, ids, images[ids.start: ids.stop], settings.digest(), [])
    manifest = {k: v for k, v in manifest.items() if k in ("settings", "identity")}
    (out / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))


@pytest.mark.parametrize("fault", ["corrupted", "truncated", "empty", "foreign", "wrong_indices"])
def test_a_bad_shard_record_is_named_and_made_again(ckpt, whole, tmp_path, capsys, fault):
    out = tmp_path / "o"
    _unfinished(whole, out)
    shard = out / "shards" / "shard_000001.npz"
    if fault == "corrupted":  # one image byte flipped: the record reads, its checksum does not match
        with np.load(shard) as z:
            fields = {k: z[k] for k in z.files}
        fields["images"][0, 0, 0, 0] ^= 1
        np.savez(shard, **fields)
    elif fault == "truncated":
        shard.write_bytes(shard.read_bytes()[:300])
    elif fault == "empty":
        shard.write_bytes(b"")
    else:
        with np.load(shard) as z:
            fields = {k: z[k] for k in z.files}
        if fault == "foreign":
            fields["run"] = np.array("0" * 32)
        else:
            fields["first"] = np.int64(8)
        np.savez(shard, **fields)
    assert _gen(ckpt, out, "--resume") == 0
    err = capsys.readouterr().err
    assert "shards/shard_000001.npz" in err and "made again" in err and "Traceback" not in err
    assert _files(out) == _files(whole)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["sha256"] for s in manifest["shards"]] == [s["sha256"] for s in
                                                         json.loads((whole / "manifest.json").read_text())["shards"]]


def test_overwrite_of_a_run_missing_its_manifest_leaves_nothing_of_it(ckpt, whole, tmp_path, capsys):
    """The manifest gone (by hand, or an old overwrite interrupted after it): --overwrite still removes the old
    shards and images, so the new run's files are all its own."""
    out = tmp_path / "o"
    _unfinished(whole, out)
    (out / "manifest.json").unlink()
    assert _gen(ckpt, out) == 2 and "without its manifest" in _one_line(capsys)
    fresh = tmp_path / "fresh"
    assert _gen(ckpt, fresh, "--seed", "5") == 0
    assert _gen(ckpt, out, "--seed", "5", "--overwrite") == 0
    assert _files(out) == _files(fresh)


def test_an_interrupted_overwrite_leaves_one_run_or_none(ckpt, whole, tmp_path):
    """Moved aside with the manifest last: interrupted after moving the images, the folder holds the old run's
    manifest and shards (a smaller run of the old settings) and the trash, which the next run clears."""
    out = tmp_path / "o"
    _unfinished(whole, out)
    trash = out / ".overwritten-12345"
    trash.mkdir()
    os.replace(out / "images", trash / "images")
    assert _gen(ckpt, out, "--resume") == 0
    assert _files(out) == _files(whole) and not trash.exists()


def test_overwrite_checks_the_new_run_before_deleting_the_old(ckpt, whole, tmp_path, capsys):
    out = tmp_path / "o"
    shutil.copytree(whole, out)
    before = _files(out)
    assert _gen(ckpt, out, "--overwrite", "--backend", "cuda") == 2
    assert "--backend cuda" in _one_line(capsys)
    assert _gen(ckpt, out, "--overwrite", "--sampler", "heun", "--n-steps-each", "3") == 2
    _one_line(capsys)
    assert _files(out) == before


def test_a_run_that_does_not_fit_on_the_disk_is_refused_before_it_starts(ckpt, tmp_path, capsys, monkeypatch):
    import ncsn_fast.generate.folder as folder
    monkeypatch.setattr(folder.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 ** 9, 10 ** 9, 1000))
    assert _gen(ckpt, tmp_path / "o") == 2
    assert "MB are free" in _one_line(capsys) and not (tmp_path / "o" / "manifest.json").exists()


def test_disk_full_while_writing_is_one_line_and_resume_finishes(ckpt, whole, tmp_path, capsys, monkeypatch):
    import ncsn_fast.generate.loop as loop
    real, calls = loop.atomic_write_bytes, []

    def full_at_the_sixth_png(path, data, durable=False):
        calls.append(path)
        if len(calls) == 6:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, durable)
    monkeypatch.setattr(loop, "atomic_write_bytes", full_at_the_sixth_png)
    out = tmp_path / "o"
    assert _gen(ckpt, out) == 2
    line = _one_line(capsys)
    assert "the disk is full" in line and "--resume" in line
    monkeypatch.setattr(loop, "atomic_write_bytes", real)
    assert _gen(ckpt, out, "--resume") == 0
    assert _files(out) == _files(whole)


def test_resume_on_another_device_or_backend_is_refused_unless_allowed(ckpt, whole, tmp_path, capsys):
    out = tmp_path / "o"
    _unfinished(whole, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["identity"]["device"] = "cuda"
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert _gen(ckpt, out, "--resume") == 2
    assert "device cuda -> cpu" in _one_line(capsys)
    assert _gen(ckpt, out, "--resume", "--allow-device-change") == 0
    recorded = json.loads((out / "manifest.json").read_text())
    assert recorded["identity"]["device"] == "cpu" and recorded["identity_changes"][0]["from"]["device"] == "cuda"


def test_nan_from_the_network_ends_the_run_at_its_step(tmp_path, capsys):
    cfg = config_from_dict(RAW)
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.end_conv.bias.fill_(float("nan"))
    path = tmp_path / "nan.pth"
    save_checkpoint(path, model, cfg)
    assert _gen(path, tmp_path / "o") == 2
    line = _one_line(capsys)
    assert "became NaN or inf at level 0 of 8" in line and "step 1 of 2" in line and "step_lr" in line


def test_a_diverging_function_is_stopped_at_the_row_it_diverged(tmp_path):
    """The table's watch names the row within a few rows (every row on the CPU), on the fused loop and on the
    device-state loop a CUDA graph replays."""
    from ncsn_fast import sample
    from ncsn_fast.sampling import Denoiser, GraphedProgram, SamplerSettings, plan

    def score(x, sigma):  # finite above sigma 0.5, NaN below
        out = -x / (sigma.view(-1, 1, 1, 1) ** 2 + 1)
        return torch.where(sigma.view(-1, 1, 1, 1) < 0.5, out * float("nan"), out)
    kw = dict(n=3, sigmas=torch.logspace(0.5, -2, 6), shape=(1, 4, 4), progress=False)
    with pytest.raises(FloatingPointError, match=r"sample 0 \(and 2 more\) became NaN or inf at level 2 of 6 "
                                                 r"\(sigma = 0.3162\), step 1 of 2: step_lr 0.01 may be too large"):
        sample(score, sampler="ald", n_steps_each=2, step_lr=0.01, **kw)
    with pytest.raises(FloatingPointError, match=r"at step 8 of 19 \(sigma = 0.4254\): the heun sampler's"):
        sample(score, sampler="heun", steps=10, **kw)
    den = Denoiser.from_function(score, 0.01, 3.2)
    p = plan(SamplerSettings("heun", steps=10), den)
    loop = GraphedProgram(den, 3, (1, 4, 4), "cpu", capture=False)
    with pytest.raises(FloatingPointError, match=r"at step 8 of 19"):
        loop(p.program, p.initial_state(den, 0, torch.arange(3), (1, 4, 4), "cpu"), seed=0, sample_ids=torch.arange(3))


def _config_file(tmp_path: Path) -> Path:
    import yaml
    raw = {"data": {"dataset": "DIGITS", "image_size": 8, "channels": 1},
           "model": {"ngf": 4, "num_classes": 4, "sigma_begin": 3.0, "sigma_end": 0.05, "ema": True,
                     "ema_rate": 0.9, "sigma_dist": "geometric"},
           "training": {"batch_size": 4, "n_iters": 4, "snapshot_freq": 2}, "optim": {"lr": 1e-3}}
    path = tmp_path / "train.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_training_killed_between_its_writes_resumes(tmp_path, monkeypatch):
    """trainer_state.pt first (with the step checkpoint.pth still holds), then the checkpoints: a kill after any
    of these writes leaves a folder that resumes, and the run then ends as an uninterrupted one."""
    from ncsn_fast import training
    from ncsn_fast.config import load_config
    from ncsn_fast.training import trainer as writer
    cfg = load_config(_config_file(tmp_path))
    batches = [torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    straight = training.Trainer(cfg, tmp_path / "a")
    for x in batches:
        straight.train_step(x)
    real = writer.atomic_torch_save
    for kill_after in (1, 2):  # writes of the second save: trainer_state, checkpoint_<step>, checkpoint.pth
        out = tmp_path / f"b{kill_after}"
        t = training.Trainer(cfg, out)
        for x in batches[:2]:
            t.train_step(x)
        t.save()
        for x in batches[2:3]:
            t.train_step(x)
        writes = []

        def killed(obj, path, durable=False, writes=writes, kill_after=kill_after):
            if len(writes) == kill_after:
                raise KeyboardInterrupt  # the process dies here
            writes.append(path)
            return real(obj, path, durable)
        monkeypatch.setattr(writer, "atomic_torch_save", killed)
        with pytest.raises(KeyboardInterrupt):
            t.save()
        monkeypatch.setattr(writer, "atomic_torch_save", real)
        again = training.Trainer.resume(cfg, out)
        assert again.step == 2
        for x in batches[2:]:
            again.train_step(x)
        for (k, a), (_, b) in zip(straight.model.state_dict().items(), again.model.state_dict().items()):
            assert torch.equal(a, b), k


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_bytes(ckpt, tmp_path):
    """20 runs, each killed at a random moment (before, during or after shards), then resumed: every folder ends
    with exactly the bytes of a run never interrupted."""
    import random
    import signal
    import subprocess
    import sys
    import time
    n, whole = 24, tmp_path / "whole"
    assert _gen(ckpt, whole, "--shard-size", "2", "--batch-size", "1", n=n) == 0
    rng = random.Random(0)
    for trial in range(20):
        out = tmp_path / f"t{trial}"
        cmd = [sys.executable, "-m", "ncsn_fast.cli", "generate", "--checkpoint", str(ckpt), "-n", str(n), "--out",
               str(out), "--quiet", "--shard-size", "2", "--batch-size", "1"]
        proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.5, 6.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        resume = ["--resume"] if (out / "manifest.json").exists() else []
        assert _gen(ckpt, out, "--shard-size", "2", "--batch-size", "3", *resume, n=n) == 0, trial
        assert _files(out) == _files(whole), trial
        assert not list(out.rglob("*.tmp")) and not (out / LOCK_NAME).exists()
