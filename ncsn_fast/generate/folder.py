"""A generation run's folder: its manifest (settings, identity, status), what a resume or an overwrite may do with
it, and the checks made before anything in it is deleted.

A run is identified by its settings (everything that decides the images) and its identity (the device kind, the
fused-op backend and the versions that compute them): `--resume` refuses other settings, and another identity
unless the user allows it (then recorded). `--overwrite` first checks that the new run can start (the command
builds its sampler before it gets here) and that the disk can hold it; it then moves the old run's files aside,
its shard records first and its manifest last, and deletes them: interrupted at any point, what is left is a
run of the old settings with nothing recorded (a resume makes it all again, the same bytes) or nothing of it,
never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NcsnError
from ..fileio import atomic_write_bytes
from ..runlock import LOCK_NAME

MANIFEST = "manifest.json"
# Moved aside in this order: the records first (without them nothing counts as done), the manifest last.
OURS = ("shards", "images", "samples.npz", "grid.png", MANIFEST)
TRASH = ".overwritten-"
SETTING_DEFAULTS = {"sampler": {"name": "ald"}}  # settings runs made before the setting existed had


@dataclass(frozen=True)
class Settings:
    """Everything that decides the images (and their files); a resumed run must match it exactly."""
    checkpoint_sha256: str
    config: dict
    ema: bool
    n: int
    seed: int
    n_steps_each: int
    step_lr: float
    denoise: bool
    dtype: str
    format: str
    shard_size: int
    sampler: dict = field(default_factory=lambda: {"name": "ald"})  # SamplerSettings.to_dict()

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def digest(self) -> str:
        """A short hash of the settings, stamped on every shard so that a shard of another run is never taken."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:32]


def read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        return manifest
    except (OSError, ValueError) as e:
        raise NcsnError(f"{path} is unreadable ({e}); pass --overwrite to start again") from None


def write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode(), durable=True)


def prepare_output(out: Path, settings: Settings, identity: dict, *, resume: bool, overwrite: bool,
                   allow_device_change: bool = False, need_bytes: int = 0) -> dict:
    """Check (and on overwrite, clear) the output folder; return the manifest to start from."""
    if out.exists() and not out.is_dir():
        raise NcsnError(f"--out {out} exists and is not a folder")
    for trash in out.glob(TRASH + "*"):  # an overwrite interrupted while it deleted
        shutil.rmtree(trash, ignore_errors=True)
    old = None if overwrite else read_manifest(out)  # an overwrite takes even an unreadable one away
    ours = [name for name in OURS if (out / name).exists()]
    if overwrite:
        check_space(out, need_bytes, freed=sum(_size(out / name) for name in ours))
        discard_run(out)
    elif old is not None:
        if not resume:
            done = "complete" if old.get("complete") else "unfinished"
            raise NcsnError(f"--out {out} already holds a generation run ({done}): pass --resume to continue it "
                            f"or --overwrite to start again")
        recorded = {**SETTING_DEFAULTS, **old.get("settings", {})}
        diff = [k for k, v in settings.to_dict().items() if recorded.get(k) != v]
        if diff:
            raise NcsnError(f"--out {out} holds a run made with other settings ({', '.join(diff)} differ): "
                            f"--resume needs the same ones; pass --overwrite to start again")
        _check_identity(out, old, identity, allow_device_change)
        return old
    elif ours:
        raise NcsnError(f"--out {out} holds parts of a generation run ({', '.join(ours)}) without its manifest: "
                        f"pass --overwrite to start again")
    elif [p for p in out.iterdir() if p.name != LOCK_NAME] if out.is_dir() else []:
        raise NcsnError(f"--out {out} is not empty and holds no generation run; choose an empty folder")
    if not overwrite:
        check_space(out, need_bytes)
    return {"settings": settings.to_dict(), "identity": identity, "complete": False}


def _check_identity(out: Path, old: dict, identity: dict, allow: bool) -> None:
    """A resume computes the rest of the images as the run began them, or says what differs."""
    recorded = old.get("identity", {})
    diff = [f"{k} {recorded[k]} -> {v}" for k, v in identity.items() if k in recorded and recorded[k] != v]
    if not diff:
        return
    if not allow:
        raise NcsnError(f"--out {out} holds a run computed with another {', '.join(diff)}: its images would mix "
                        f"two numerics; pass --allow-device-change to go on anyway (recorded in the manifest), or "
                        f"--overwrite to start again")
    old.setdefault("identity_changes", []).append({"from": recorded, "to": identity})
    old["identity"] = identity


def discard_run(out: Path) -> None:
    """Move the run's files aside (the manifest last), then delete them."""
    present = [name for name in OURS if (out / name).exists()]
    if not present:
        return
    trash = out / f"{TRASH}{os.getpid()}"
    trash.mkdir(exist_ok=True)
    for name in present:
        os.replace(out / name, trash / name)
    shutil.rmtree(trash)


def check_space(out: Path, need_bytes: int, freed: int = 0) -> None:
    """NcsnError, before anything is deleted or written, if the file system cannot hold the run."""
    if need_bytes <= 0:
        return
    folder = next((p for p in [out, *out.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(folder).free + freed
    if free < need_bytes:
        raise NcsnError(f"--out {out}: the run needs about {need_bytes / 1e6:.0f} MB and {free / 1e6:.0f} MB are "
                        f"free there; free some space or choose another folder")


def bytes_needed(settings: Settings, image_shape: tuple[int, int, int]) -> int:
    """An upper bound of the run's files: per image its raw bytes for the shard record and samples.npz, plus a
    PNG (raw bytes and a file's overhead) when PNGs are written."""
    raw = image_shape[0] * image_shape[1] * image_shape[2]
    per_image = 2 * raw + (raw + 4096 if settings.format in ("png", "both") else 0)
    return settings.n * per_image


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
