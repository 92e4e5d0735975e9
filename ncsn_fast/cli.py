"""The `ncsn-fast` command: sample | generate | info | train | bench | demo.

Bad input ends with one line `ncsn-fast: error: ...` on stderr and exit status 2; outputs are
written only once everything has succeeded, each file atomically, so a failed run leaves nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path

import yaml

from .errors import NcsnError
from .hostmem import tune_cpu_allocator

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line instead of usage + message
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _csv(item):
    """An argparse type: a comma-separated list of `item`s, as a tuple."""
    def parse(text: str) -> tuple:
        return tuple(item(t) for t in text.split(",") if t)
    return parse


def _positive_int_or(word: str):
    """An argparse type: a positive integer, or `word` itself."""
    def parse(text: str) -> int | str:
        return word if text == word else _positive_int(text)
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _add_checkpoint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="the run's config.yml (default: embedded, or config.yml beside "
                   "the checkpoint, or inferred from the weights)")
    p.add_argument("--image-size", type=_positive_int, help="image size, if there is no config")
    p.add_argument("--sigma-begin", type=_positive_float, help="largest sigma, if there is no config")
    p.add_argument("--sigma-end", type=_positive_float, help="smallest sigma, if there is no config")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA ones")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ncsn-fast", description="Train and sample Noise Conditional Score Networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("sample", help="draw samples from a checkpoint (default: the built-in digits model): "
                       "a PNG grid and an .npz")
    p.add_argument("--checkpoint", help="checkpoint.pth of the original code, or ours (default: the built-in "
                   "digits model, whose samples are then scored by a digit classifier)")
    _add_checkpoint_args(p)
    p.add_argument("-n", type=_positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples", help="output folder (samples.png, samples.npz, config.yml; "
                   "default ./samples)")
    p.add_argument("--batch-size", type=_positive_int, help="default: the config's sampling batch size")
    p.add_argument("--n-steps-each", type=_positive_int, help="Langevin steps per noise level")
    p.add_argument("--step-lr", type=_positive_float, help="step size epsilon")
    p.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None,
                   help="final denoising step (default: the config's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference", action="store_true",
                   help="the original algorithm, eager, torch RNG in the original order (reproduces the original "
                   "code's samples for a seed); default: the fast path (fused ops, CUDA graphs on a GPU)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="network precision on the fast path (the Langevin state stays float32)")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "triton", "cpu", "torch"],
                   help="fused-op backend on the fast path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("generate", help="many samples (e.g. 50k for FID): PNG files and/or one .npz, sharded, "
                       "resumable, multi-process under torchrun")
    p.add_argument("--checkpoint", help="checkpoint.pth of the original code, or ours (default: the built-in "
                   "digits model)")
    _add_checkpoint_args(p)
    p.add_argument("-n", type=_positive_int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="output folder (manifest.json, images/, samples.npz, grid.png)")
    p.add_argument("--format", choices=["png", "npz", "both"], default="both",
                   help="a PNG per image, one .npz (uint8 NHWC), or both (default)")
    p.add_argument("--batch-size", default=None, metavar="N|auto",
                   help="samples per batch (does not change the images); 'auto': the largest that fits on the "
                   "GPU; default: the config's sampling batch size")
    p.add_argument("--shard-size", type=_positive_int, default=1000,
                   help="images per shard, the unit of work and of resumption (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-steps-each", type=_positive_int, help="Langevin steps per noise level")
    p.add_argument("--step-lr", type=_positive_float, help="step size epsilon")
    p.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None,
                   help="final denoising step (default: the config's)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="network precision (the Langevin state stays float32)")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "triton", "cpu", "torch"],
                   help="fused-op backend")
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun each process takes its "
                   "LOCAL_RANK's GPU)")
    p.add_argument("--writer-threads", type=_positive_int, default=2, help="background PNG/npz writers")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    p.add_argument("--overwrite", action="store_true", help="delete the run in --out and start again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("info", help="architecture, parameters, noise ladder and sampling settings")
    p.add_argument("checkpoint", nargs="?", help="checkpoint.pth (default: the built-in digits model)")
    _add_checkpoint_args(p)

    p = sub.add_parser("train", help="denoising score matching on a folder of images")
    p.add_argument("--config", required=True, help="an original NCSN/NCSNv2 config.yml (or one we wrote)")
    p.add_argument("--data", required=True,
                   help="folder of images (png/jpg, searched recursively), or 'digits' for the built-in digits")
    p.add_argument("--out", required=True, help="run folder: checkpoints, config.yml, trainer state")
    p.add_argument("--steps", type=_positive_int, help="train until this step (default: the config's n_iters)")
    p.add_argument("--batch-size", type=_positive_int, help="default: the config's training batch size")
    p.add_argument("--save-every", type=_positive_int, help="default: the config's snapshot_freq")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    p.add_argument("--grad-clip", type=_positive_float, help="clip the gradient norm to this value")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--sample-every", type=_positive_int,
                   help="write samples_<step>.png (6x6 grid, EMA weights, 1 Langevin step per level) this often")
    p.add_argument("--log-every", type=_positive_int, default=100,
                   help="append the mean loss of every this many steps to train_log.csv (default 100)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("bench", help="time the fused ops, the network forward and the sampler against eager PyTorch "
                                      "and torch.compile; writes JSON + markdown")
    p.add_argument("suite", nargs="?", choices=["ops", "forward", "sampler", "all"], default="all")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (a smoke test)")
    p.add_argument("--compile", nargs="*", default=[], metavar="MODE",
                   help="also time torch.compile of the network in these modes (default, max-autotune, ...)")
    p.add_argument("--models", type=_csv(str), default=None, metavar="M[,M]",
                   help="sampler suite: only these configs (cifar10, celeba); the results file is named after them")
    p.add_argument("--batches", type=_csv(_positive_int_or("max")), default=None, metavar="B[,B]",
                   help="sampler suite: these batch sizes instead of the built-in ones; 'max': the largest "
                        "power of two that fits in GPU memory")

    p = sub.add_parser("demo", help="the NCSN paper's 2-D Gaussian mixture with its exact score")
    p.add_argument("--out", default="demo", help="output folder (default ./demo)")
    p.add_argument("-n", type=_positive_int, default=6000)
    p.add_argument("--seed", type=int, default=0)
    return parser


def _load(args):
    from .checkpoints import load_checkpoint
    if args.checkpoint is None:
        from .digits import builtin_checkpoint
        args.checkpoint = str(builtin_checkpoint())
    return load_checkpoint(args.checkpoint, config=args.config, ema=not args.no_ema,
                           image_size=args.image_size, sigma_begin=args.sigma_begin,
                           sigma_end=args.sigma_end, return_info=True)


def _check_out_dir(out: Path, create: bool = False) -> None:
    """Fail early on an output folder that cannot be written; with create, make it and try a file in it."""
    if out.exists() and not out.is_dir():
        raise NcsnError(f"--out {out} exists and is not a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise NcsnError(f"--out {out}: no permission to write in {parent}")
    if create:
        import tempfile
        try:
            out.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=out):
                pass
        except OSError as e:
            raise NcsnError(f"--out {out}: cannot write there ({e.strerror or e})") from None


def cmd_sample(args) -> int:
    import torch

    from .fileio import atomic_write_bytes
    from .images import (
        inverse_data_transform,
        make_grid,
        save_npz,
        save_png,
        to_uint8_nhwc,
    )
    from .sampling import sample

    out = Path(args.out)
    _check_out_dir(out)
    device = _device(args.device)
    builtin = args.checkpoint is None
    model, cfg, info = _load(args)
    model = model.to(device)
    t0 = time.perf_counter()
    x = sample(model, cfg, args.n, seed=args.seed, batch_size=args.batch_size,
               n_steps_each=args.n_steps_each, step_lr=args.step_lr, denoise=args.denoise,
               device=device, progress=not args.quiet, method="reference" if args.reference else "fast",
               dtype=getattr(torch, args.dtype), backend=args.backend)
    seconds = time.perf_counter() - t0
    images = to_uint8_nhwc(inverse_data_transform(x, cfg))
    save_npz(out / "samples.npz", images)
    save_png(out / "samples.png", make_grid(images))
    atomic_write_bytes(out / "config.yml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    path = "reference path" if args.reference else f"fast path, {args.dtype}"
    what = "the built-in digits model" if builtin else info.config_source
    print(f"{args.n} samples of {cfg.arch} ({what}, {path}) in {seconds:.1f} s -> "
          f"{out / 'samples.png'}, {out / 'samples.npz'} (uint8 {tuple(images.shape)})")
    if builtin:
        from .quality import describe, score_digits
        print(describe(score_digits(torch.from_numpy(images))))
    return 0


def _batch_size_arg(text: str | None) -> int | str | None:
    if text is None:
        return None
    try:
        return _positive_int_or("auto")(text)
    except argparse.ArgumentTypeError as e:
        raise NcsnError(f"--batch-size: {e} or 'auto'") from None


def cmd_generate(args) -> int:
    from datetime import timedelta

    if args.resume and args.overwrite:
        raise NcsnError("--resume and --overwrite exclude each other")
    batch_arg = _batch_size_arg(args.batch_size)
    out = Path(args.out)
    _check_out_dir(out, create=int(os.environ.get("RANK", "0")) == 0)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return _generate(args, batch_arg, out)
    import torch.distributed as dist
    if not dist.is_initialized():  # only small control messages cross processes: gloo, also next to GPUs
        dist.init_process_group("gloo", timeout=timedelta(days=7))
    try:
        return _generate(args, batch_arg, out)
    finally:
        # On every path (early returns and errors too) leave together, then close the group: a process that
        # closed its side while another still read a broadcast made that one abort. A process that failed
        # alone gives up waiting after a minute (and torchrun then stops the others).
        try:
            dist.monitored_barrier(timeout=timedelta(minutes=1))
        except RuntimeError:
            pass
        dist.destroy_process_group()


def _generate(args, batch_arg, out: Path) -> int:
    import dataclasses

    import torch

    from . import generate as gen
    from .sampling import FastSampler

    rank, world, device = _distributed_setup(args.device)
    error, complete = None, False
    try:
        model, cfg, info = _load(args)
        s = cfg.sampling
        settings = gen.Settings(
            checkpoint_sha256=gen.file_sha256(args.checkpoint), config=cfg.to_dict(), ema=info.ema_applied,
            n=args.n, seed=args.seed, n_steps_each=args.n_steps_each or s.n_steps_each,
            step_lr=args.step_lr if args.step_lr is not None else s.step_lr,
            denoise=s.denoise if args.denoise is None else args.denoise, dtype=args.dtype, format=args.format,
            shard_size=args.shard_size)
        if rank == 0:
            manifest = gen.prepare_output(out, settings, resume=args.resume, overwrite=args.overwrite)
            gen.remove_stale_temps(out)
            complete = bool(manifest.get("complete"))
            if not complete:
                gen.write_manifest(out, manifest)
    except NcsnError as e:
        error = e
    if world > 1:  # every process stops with process 0's error, or learns whether there is work left
        import torch.distributed as dist
        box = [str(error) if error else None, complete]
        dist.broadcast_object_list(box, src=0)
        if box[0] and error is None:
            error = NcsnError(box[0])
        complete = box[1]
    if error is not None:
        if rank != 0:  # process 0 says it, once
            return EXIT_USAGE
        raise error
    if complete:
        if rank == 0:
            print(f"{out} already holds all {args.n} images (manifest.json: complete); nothing to do")
        return 0

    def make_sampler():
        return FastSampler(model, cfg, seed=settings.seed, n_steps_each=settings.n_steps_each,
                           step_lr=settings.step_lr, denoise=settings.denoise, device=device,
                           dtype=getattr(torch, args.dtype), backend=args.backend)

    model = model.to(device)
    sampler = make_sampler()
    cap = min(4096, math.ceil(args.n / world))
    batch_size = (gen.auto_batch_size(sampler, cfg, device, cap) if batch_arg == "auto"
                  else min(batch_arg or s.batch_size, cap))
    timing = gen.generate(sampler, cfg, out, settings, batch_size=batch_size, rank=rank, world_size=world,
                          progress=not args.quiet, writer_threads=args.writer_threads)
    per_rank = [dataclasses.asdict(timing)]
    if world > 1:
        import torch.distributed as dist
        per_rank = [None] * world
        dist.all_gather_object(per_rank, dataclasses.asdict(timing))
    if rank == 0:
        wall = max(t["seconds"] for t in per_rank)
        made = sum(t["images"] for t in per_rank)
        waited = sum(t["waiting_on_writer_seconds"] for t in per_rank) / world
        summary = {"seconds": round(wall, 3), "images_this_run": made,
                   "images_per_second": round(made / max(wall, 1e-9), 3),
                   "waiting_on_writer_share": round(waited / max(wall, 1e-9), 5),
                   "batch_size": batch_size, "processes": world, "device": str(device),
                   "per_process": per_rank, **gen.environment()}
        gen.finish(out, cfg, settings, manifest, summary)
        outputs = [name for name, on in (("images/", args.format != "npz"), ("samples.npz", args.format != "png"),
                                         ("grid.png", True)) if on]
        print(f"{args.n} images of {cfg.arch} ({made} made now) in {wall:.1f} s, {made / max(wall, 1e-9):.1f} img/s, "
              f"batch {batch_size} x {world} process{'es' if world > 1 else ''}; device waited on writing "
              f"{100 * waited / max(wall, 1e-9):.2f} % of the time -> {out}/ ({', '.join(outputs)})")
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    return 0


def cmd_info(args) -> int:
    from .sampling import langevin_schedule

    model, cfg, info = _load(args)
    n_params = sum(p.numel() for p in model.parameters())
    sig = cfg.sampling_sigmas()
    s = cfg.sampling
    alphas, _ = langevin_schedule(sig, s.step_lr)
    evals = len(sig) * s.n_steps_each + int(s.denoise)
    lines = [
        f"checkpoint      {info.path} ({info.layout} layout" + (f", step {info.step})" if info.step else ")"),
        f"config          {info.config_source}",
        f"architecture    {cfg.arch} ({cfg.family}), ngf {cfg.model.ngf}, "
        f"{cfg.data.channels}x{cfg.data.image_size}x{cfg.data.image_size}",
        f"parameters      {n_params:,} ({len(model.state_dict())} state_dict entries)",
        "weights         " + ("EMA" if info.ema_applied else "raw") +
        (" (checkpoint has EMA weights)" if info.has_ema and not info.ema_applied else ""),
        f"noise levels    {len(sig)} {cfg.model.sigma_dist}, sigma {float(sig[0]):g} -> {float(sig[-1]):g}",
        f"sampling        {s.n_steps_each} steps/level, step_lr {s.step_lr:g} (alpha {alphas[0]:.4g} -> "
        f"{alphas[-1]:.4g}), denoise {s.denoise}: {evals} network evaluations per sample",
    ]
    print("\n".join(lines))
    return 0


def cmd_demo(args) -> int:
    import torch

    from .images import save_png, scatter_plot
    from .toy import GaussianMixture2D, run_toy

    out = Path(args.out)
    _check_out_dir(out)
    mix = GaussianMixture2D()
    t0 = time.perf_counter()
    data = mix.sample(args.n, torch.Generator().manual_seed(args.seed))
    annealed = run_toy(args.n, args.seed, annealed=True, mixture=mix)
    plain = run_toy(args.n, args.seed, annealed=False, mixture=mix)
    seconds = time.perf_counter() - t0
    fa, fp, fd = mix.mode_fraction(annealed), mix.mode_fraction(plain), mix.mode_fraction(data)
    img = scatter_plot([(f"data: {fd:.3f} in (-5,-5)", data.numpy()),
                        (f"annealed Langevin: {fa:.3f}", annealed.numpy()),
                        (f"plain Langevin: {fp:.3f}", plain.numpy())])
    save_png(out / "gmm_langevin.png", img)
    print(f"2-D Gaussian mixture, weights 0.2 / 0.8, {args.n} samples, {seconds:.1f} s\n"
          f"share in the (-5,-5) mode: data {fd:.3f}, annealed Langevin {fa:.3f}, plain Langevin {fp:.3f}\n"
          f"plot: {out / 'gmm_langevin.png'}")
    return 0


class TrainLog:
    """train_log.csv: step, mean loss over the last `every` steps, seconds since the (re)start."""

    def __init__(self, path: Path, step: int, every: int):
        self.path, self.every, self.t0 = path, every, time.perf_counter()
        self.losses: list[float] = []
        lines = path.read_text().splitlines() if path.exists() else ["step,loss,seconds"]
        keep = [ln for ln in lines[1:] if int(ln.split(",")[0]) <= step]  # a resumed run rewrites what followed
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([lines[0], *keep]) + "\n")

    def add(self, step: int, loss: float) -> None:
        self.losses.append(loss)
        if step % self.every == 0:
            with self.path.open("a") as f:
                f.write(f"{step},{sum(self.losses) / len(self.losses):.6g},{time.perf_counter() - self.t0:.1f}\n")
            self.losses.clear()


def cmd_train(args) -> int:
    import torch
    from tqdm.auto import tqdm

    from .config import load_config
    from .data import ImageFolder, batch_at
    from .digits import DigitsDataset
    from .training import Trainer

    cfg = load_config(args.config)
    if args.data == "digits" and not Path("digits").is_dir():
        data = DigitsDataset(cfg.data.image_size, cfg.data.channels, split="train")
    else:
        data = ImageFolder(args.data, cfg.data.image_size, cfg.data.channels)
    out = Path(args.out)
    _check_out_dir(out)
    if not args.resume and (out / "checkpoint.pth").exists():
        raise NcsnError(f"--out {out} already holds a run: pass --resume to continue it, or another folder")
    rank, world, device = _distributed_setup(args.device)
    kw = dict(device=device, seed=args.seed, amp=args.amp, grad_clip=args.grad_clip, distributed=world > 1)
    trainer = Trainer.resume(cfg, out, **kw) if args.resume else Trainer(cfg, out, **kw)
    steps = args.steps or cfg.training.n_iters
    batch = args.batch_size or cfg.training.batch_size
    save_every = args.save_every or cfg.training.snapshot_freq
    t0, start = time.perf_counter(), trainer.step
    log = TrainLog(out / "train_log.csv", trainer.step, every=args.log_every) if rank == 0 else None
    with tqdm(total=steps, initial=trainer.step, desc="train", unit="step", disable=args.quiet or rank) as bar:
        while trainer.step < steps:
            loss = trainer.train_step(batch_at(data, trainer.step, batch, args.seed, cfg.data.random_flip,
                                               shard=(rank, world)))
            if not torch.isfinite(loss):
                raise NcsnError(f"loss became {loss.item()} at step {trainer.step}; last saved checkpoint kept "
                                f"(try --grad-clip or a smaller optim.lr)")
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4g}")
            if log is not None:
                log.add(trainer.step, loss.item())
            if trainer.step % save_every == 0 or trainer.step == steps:
                trainer.save()
            if args.sample_every and trainer.step % args.sample_every == 0 and rank == 0:
                _training_grid(trainer, out)
    rate = (trainer.step - start) / max(time.perf_counter() - t0, 1e-9)
    if rank == 0:
        print(f"trained {cfg.arch} to step {trainer.step} ({rate:.2f} steps/s"
              + (f", {world} processes" if world > 1 else "") + f") on {len(data)} images -> "
              f"{out / 'checkpoint.pth'}")
    if world > 1:
        import torch.distributed as dist
        dist.barrier()  # leave together (rank 0 has just written the checkpoint)
        dist.destroy_process_group()
    return 0


def _training_grid(trainer, out: Path) -> None:
    """samples_<step>.png: a 6x6 grid from the EMA weights (the fast sampler, 1 step per level)."""
    from .images import inverse_data_transform, make_grid, save_png, to_uint8_nhwc
    from .sampling import sample

    model = trainer.ema_model()
    x = sample(model, trainer.config, 36, seed=0, n_steps_each=1, device=trainer.device, progress=False)
    save_png(out / f"samples_{trainer.step}.png", make_grid(to_uint8_nhwc(inverse_data_transform(x, trainer.config))))


def _device(text: str):
    """--device as a torch.device, refusing unknown names and CUDA where there is none."""
    import torch

    try:
        dev = torch.device(text)
    except RuntimeError:
        raise NcsnError(f"--device {text!r} is not a device torch knows") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NcsnError(f"--device {text}: no CUDA device is available")
    return dev


def _distributed_setup(device: str):
    """(rank, world size, this process's device); under torchrun joins the process group (NCCL on CUDA,
    gloo on the CPU) and takes the GPU of its LOCAL_RANK."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = _device(device)
    if world == 1:
        return 0, 1, dev
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), dev


def cmd_bench(args) -> int:
    from . import bench

    _device(args.device)
    command = "ncsn-fast " + shlex.join(args.argv)
    try:
        json_path, md_path = bench.run(args.suite, args.device, args.out, args.quick, tuple(args.compile), command,
                                       args.models, args.batches)
    except ValueError as e:
        raise NcsnError(str(e)) from None
    print(md_path.read_text())
    print(f"results: {json_path}, {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line, recorded with results
    tune_cpu_allocator()  # CPU runs: reuse freed activation memory instead of faulting in fresh pages
    handler = {"sample": cmd_sample, "info": cmd_info, "demo": cmd_demo, "bench": cmd_bench,
               "train": cmd_train, "generate": cmd_generate}[args.command]
    try:
        return handler(args)
    except (NcsnError, FloatingPointError) as e:
        print(f"ncsn-fast: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ncsn-fast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
