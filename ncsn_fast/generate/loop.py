"""Many samples from one checkpoint: sharded, resumable, multi-process, written in the background.

Sample i is a pure function of (checkpoint, settings, seed, i) (see `sampling.Sampler`), so the images
do not depend on the batch size, on the number of processes or on restarts. Indices 0..n-1 are cut into
shards of `shard_size`; process r of W takes shards r, r+W, ...; a finished shard is recorded by
`shards/shard_<k>.npz` (shards.py: verified, durable), written after its PNGs. A restart redoes only shards
without a good record (a PNG of an unfinished shard is rewritten atomically with the same bytes), so a run killed
at any moment and resumed ends with exactly n images, equal to an uninterrupted run. No process waits on another
until the end, when process 0 joins the records into `samples.npz` (streamed, memory stays flat), draws the grid,
completes `manifest.json` and removes the records.

Output folder:
    manifest.json            settings, identity, checkpoint hash, versions, status, shard checksums, timing
    images/00/000000.png     one PNG per image, folders of 10,000 (format png or both)
    samples.npz              arr_0: uint8 (n, H, W, C), as FID tools read it (format npz or both)
    grid.png                 the first (up to) 64 images
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shutil
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..errors import NcsnError
from ..fileio import atomic_write_bytes
from ..images import inverse_data_transform, make_grid, png_bytes, to_uint8_nhwc
from .folder import Settings, write_manifest
from .shards import collect, recorded_shards, shard_range, shard_records, write_npz_streaming, write_shard

PER_FOLDER = 10_000


@dataclass
class Timing:
    seconds: float = 0.0
    sampling_seconds: float = 0.0  # the device computing
    waiting_on_writer_seconds: float = 0.0  # the device idle because the writer queue was full
    final_flush_seconds: float = 0.0  # after the last batch, waiting for the last files
    images: int = 0  # made by this process in this run
    rss_mb: list = field(default_factory=list)  # the process's resident memory after each shard (MB)
    peak_rss_mb: float = 0.0
    # Network evaluations per sample of this process's images (adaptive samplers choose them per sample).
    evaluations: int = 0
    evaluations_min: int = 0
    evaluations_max: int = 0


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a checkpoint file, or of a checkpoint folder's files (their paths and bytes, in order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def png_path(out: Path, i: int, n: int) -> Path:
    width = max(6, len(str(n - 1)))
    return out / "images" / f"{i // PER_FOLDER:02d}" / f"{i:0{width}d}.png"


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def versions() -> dict:
    from ..version import __version__
    v = {"ncsn_fast": __version__, "torch": torch.__version__, "numpy": np.__version__,
         "python": platform.python_version()}
    if torch.cuda.is_available():
        v["cuda"] = torch.version.cuda
        v["gpu"] = torch.cuda.get_device_name()
    return v


def remove_stale_temps(out: Path) -> None:
    """Temp files of writes a killed run left half done (the atomic writes' `.name.*.tmp`)."""
    for tmp in [*out.glob(".*.tmp"), *(out / "images").rglob(".*.tmp"), *(out / "shards").glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)


class Writer:
    """PNG encoding and writing on background threads, with a bounded queue so memory stays flat; the time
    the caller spends blocked on a full queue is counted (the device idle because of the disk)."""

    def __init__(self, threads: int = 2, max_pending: int = 8):
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="ncsn-writer")
        self.pending: deque[Future] = deque()
        self.max_pending = max_pending
        self.waited = 0.0

    def submit(self, fn, *args) -> Future:
        while len(self.pending) >= self.max_pending:
            t0 = time.perf_counter()
            self.pending.popleft().result()
            self.waited += time.perf_counter() - t0
        fut = self.pool.submit(fn, *args)
        self.pending.append(fut)
        return fut

    def flush(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        self.flush()
        self.pool.shutdown()


def _write_pngs(out: Path, ids: range, images: np.ndarray, n: int) -> None:
    for i, img in zip(ids, images):
        atomic_write_bytes(png_path(out, i, n), png_bytes(img))


def auto_batch_size(sampler, config: Config, device: torch.device, cap: int, headroom: float = 0.8) -> int:
    """On a GPU, the largest power-of-two batch (<= cap) whose network evaluation peaks below `headroom` of
    the device memory (the rest for the Langevin state, graphs and the allocator); on the CPU the config's
    sampling batch size (memory is not what limits it there)."""
    if device.type != "cuda":
        return max(1, min(cap, config.sampling.batch_size))
    total = torch.cuda.get_device_properties(device).total_memory
    best, b = 0, 1
    while b <= cap:
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            sampler.probe(b)
            torch.cuda.synchronize(device)
            if torch.cuda.max_memory_allocated(device) > headroom * total:
                break
            best, b = b, b * 2
        except torch.cuda.OutOfMemoryError:
            break
    torch.cuda.empty_cache()
    if best == 0:
        raise NcsnError("--batch-size auto: not even one sample fits in GPU memory")
    return best


def generate(sampler, config: Config, out: Path, settings: Settings, *, batch_size: int, rank: int = 0,
             world_size: int = 1, progress: bool = True, writer_threads: int = 2) -> Timing:
    """This process's shards of the run in `out` (already prepared by `prepare_output` on rank 0)."""
    from tqdm.auto import tqdm

    n, shard_size, digest = settings.n, settings.shard_size, settings.digest()
    n_shards = math.ceil(n / shard_size)
    want_png = settings.format in ("png", "both")
    done = recorded_shards(out)  # verified by process 0 before the run (verify_shards)
    mine = [k for k in range(rank, n_shards, world_size) if k not in done]
    timing = Timing()
    writer = Writer(writer_threads)
    t_start = time.perf_counter()
    show = progress and rank == 0
    made: dict[int, int] = {}  # this run's images per shard of this process

    def total_done() -> int:  # every process's recorded shards + this one's shards in progress
        rec = recorded_shards(out)
        return (sum(len(shard_range(j, n, shard_size)) for j in rec)
                + sum(v for k, v in made.items() if k not in rec))

    bar = tqdm(total=n, initial=total_done(), desc="generate", unit="img", disable=not show, smoothing=0.05)
    last_poll = time.perf_counter()
    try:
        for k in mine:
            ids = shard_range(k, n, shard_size)
            shard_images, png_futures = [], []
            for start in range(ids.start, ids.stop, batch_size):
                batch = range(start, min(start + batch_size, ids.stop))
                t0 = time.perf_counter()
                x = sampler(torch.arange(batch.start, batch.stop))
                images = to_uint8_nhwc(inverse_data_transform(x, config))  # waits for the device
                timing.sampling_seconds += time.perf_counter() - t0
                shard_images.append(images)
                if want_png:
                    png_futures.append(writer.submit(_write_pngs, out, batch, images, n))
                timing.images += len(batch)
                made[k] = made.get(k, 0) + len(batch)
                bar.update(len(batch))
                if show and world_size > 1 and time.perf_counter() - last_poll > 2.0:
                    last_poll = time.perf_counter()  # the other processes' finished shards count too
                    bar.n = total_done()
                    bar.refresh()
            writer.submit(write_shard, out, k, ids, np.concatenate(shard_images), digest, png_futures)
            timing.rss_mb.append(round(rss_mb(), 1))
        t0 = time.perf_counter()
        writer.flush()
        timing.final_flush_seconds = time.perf_counter() - t0
    finally:
        writer.close()
        timing.waiting_on_writer_seconds = writer.waited
    if show and world_size > 1:  # process 0 shows the others' progress until all shards are recorded
        while len(recorded_shards(out)) < n_shards:
            bar.n = total_done()
            bar.refresh()
            time.sleep(0.5)
        bar.n = n
        bar.refresh()
    bar.close()
    timing.seconds = time.perf_counter() - t_start
    counts = torch.cat(sampler.sample_evals) if getattr(sampler, "sample_evals", None) else \
        torch.full((timing.images,), sampler.evals or 0)
    if len(counts):
        timing.evaluations, timing.evaluations_min, timing.evaluations_max = (int(counts.sum()), int(counts.min()),
                                                                             int(counts.max()))
    timing.peak_rss_mb = max([rss_mb(), *timing.rss_mb])
    return timing


def finish(out: Path, config: Config, settings: Settings, manifest: dict, timing: dict) -> None:
    """Process 0, once every shard is recorded: samples.npz, grid.png, the completed manifest (with every shard's
    checksum), each record verified as it is read."""
    n, shard_size, digest = settings.n, settings.shard_size, settings.digest()
    n_shards = math.ceil(n / shard_size)
    hwc = (config.image_shape[1], config.image_shape[2], config.image_shape[0])
    missing = set(range(n_shards)) - recorded_shards(out)
    if missing:
        raise NcsnError(f"{len(missing)} shards of {out} are not recorded (first: {min(missing)}); run again "
                        f"with --resume")
    if settings.format in ("npz", "both"):
        records = write_npz_streaming(out / "samples.npz", out, n, shard_size, digest, hwc)
    else:
        records = shard_records(out, n, shard_size, digest, hwc)
    grid = []
    for _, images in collect(out, n, shard_size, digest, hwc):
        grid.append(images[: 64 - sum(len(g) for g in grid)])
        if sum(len(g) for g in grid) >= 64:
            break
    atomic_write_bytes(out / "grid.png", png_bytes(make_grid(np.concatenate(grid))))
    manifest.update(complete=True, shards=records, timing=timing)
    write_manifest(out, manifest)
    shutil.rmtree(out / "shards", ignore_errors=True)


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def environment() -> dict:
    return {"versions": versions(), "command": command_line(), "host_cpus": os.cpu_count()}
