"""Shared test helpers: where the reference fixtures live, and small configs."""

import os
from pathlib import Path

# Triton kernels run on the CPU through the interpreter; this must be set before they are decorated.
os.environ.setdefault("TRITON_INTERPRET", "1")
# dtype 'auto' would pick bfloat16 on CPUs that compute it natively: the suite compares float32 paths, so it
# pins auto to float32 (tests/test_dtype_auto.py checks what auto picks, with this unset).
os.environ.setdefault("NCSN_FAST_AUTO_DTYPE", "float32")

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("NCSN_FAST_FIXTURES", REPO / "tests" / "fixtures"))
VARIANTS = ["ncsn_cifar10_ngf8", "ncsnv2_cifar10_ngf8", "ncsnv2_church_ngf4"]


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():  # the fixtures live in the repository: a missing one is an error, not a skip
        pytest.fail(f"reference fixture {name} not found under {FIXTURES} "
                    "(tests/fixtures is part of the repository; NCSN_FAST_FIXTURES overrides the folder)")
    return path


def load_fixture(name: str):
    return torch.load(fixture_path(name), map_location="cpu", weights_only=True)


def skip_unless_backend(backend: str, device: torch.device | None = None) -> None:
    """Skip the calling test, with the reason, when `backend` cannot run on `device` (default CPU) here."""
    from ncsn_fast.ops._backends import why_not
    reason = why_not(backend, device or torch.device("cpu"))
    if reason:
        pytest.skip(f"{backend}: {reason}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def python_stdout(code: str, **env: str) -> str:
    """What `python -c code` printed, run with `env` added to this process's environment."""
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env},
                          check=True).stdout


def refused(capsys, *args) -> tuple[int, str]:
    """ncsn-fast `args` run by main() in this process (a refusal costs no start of Python and torch): (exit code,
    stderr); argparse's refusals exit by SystemExit. tests/test_cli.py runs the real command for one refusal."""
    from ncsn_fast.cli import main
    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def train_cli(config: Path, out: Path, processes: int = 1, steps: int = 3) -> tuple[dict, list[float]]:
    """`ncsn-fast train --data digits` for `steps` steps in a subprocess, in one process or under torchrun with
    `processes` CPU processes (gloo); (the checkpoint.pth it wrote, the losses of train_log.csv)."""
    import subprocess
    import sys
    launcher = [sys.executable, "-m"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m"]
    cmd = [*launcher, "ncsn_fast.cli", "train", "--config", str(config), "--data", "digits", "--out", str(out),
           "--steps", str(steps), "--log-every", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=out.parent)
    assert res.returncode == 0, res.stderr[-3000:]
    state = torch.load(out / "checkpoint.pth", weights_only=True)
    losses = [float(line.split(",")[1]) for line in (out / "train_log.csv").read_text().splitlines()[1:]]
    return state, losses
