"""`ncsn-fast generate`: many samples (FID sets), sharded, resumable, multi-process under torchrun."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from pathlib import Path

from ..errors import NcsnError
from ..runlock import RunLock
from .args import (
    CHECKPOINT_HELP,
    add_checkpoint_args,
    add_compile_arg,
    add_sampler_args,
    backend_arg,
    check_out_dir,
    checkpoint_path,
    compile_choice,
    distributed_setup,
    dtype_arg,
    evaluations_line,
    load_model,
    positive_int,
    positive_int_or,
    sampler_settings,
    seed_arg,
)

EXIT_USAGE = 2

def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="many samples (e.g. 50k for FID): PNG files and/or one .npz, sharded, "
                       "resumable, multi-process under torchrun")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    add_checkpoint_args(p)
    p.add_argument("-n", type=positive_int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="output folder (manifest.json, images/, samples.npz, grid.png)")
    p.add_argument("--format", choices=["png", "npz", "both"], default="both",
                   help="a PNG per image, one .npz (uint8 NHWC), or both (default)")
    p.add_argument("--batch-size", default=None, metavar="N|auto",
                   help="samples per batch (does not change the images); 'auto': the largest that fits on the "
                   "GPU; default: the config's sampling batch size")
    p.add_argument("--shard-size", type=positive_int, default=1000,
                   help="images per shard, the unit of work and of resumption (default 1000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="in [0, 2^63)")
    add_sampler_args(p)
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="network precision (the sampler's state stays float32); auto: bfloat16 on a CPU that "
                   "computes it natively (AVX512_BF16 / AMX), float32 elsewhere; the manifest records the one run")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "triton", "cpu", "torch"],
                   help="fused-op backend")
    add_compile_arg(p, auto=True)
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun each process takes its "
                   "LOCAL_RANK's GPU)")
    p.add_argument("--writer-threads", type=positive_int, default=2, help="background PNG/npz writers")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    p.add_argument("--overwrite", action="store_true", help="delete the run in --out and start again (once the new "
                   "run is known to be able to start)")
    p.add_argument("--allow-device-change", action="store_true", help="--resume on another device kind, backend or "
                   "torch version than the run began with (recorded in the manifest; the images then mix numerics)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _batch_size_arg(text: str | None) -> int | str | None:
    if text is None:
        return None
    try:
        return positive_int_or("auto")(text)
    except argparse.ArgumentTypeError as e:
        raise NcsnError(f"--batch-size: {e} or 'auto'") from None


def run(args) -> int:
    from datetime import timedelta

    if args.resume and args.overwrite:
        raise NcsnError("--resume and --overwrite exclude each other")
    batch_arg = _batch_size_arg(args.batch_size)
    _check_sampler(args.sampler, args.batch_mean)  # before anything is written
    out = Path(args.out)
    check_out_dir(out, create=int(os.environ.get("RANK", "0")) == 0)
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


def _check_sampler(name: str | None, batch_mean: bool = False) -> None:
    if name == "ode":
        raise NcsnError("generate promises samples that do not depend on the batch; ode's adaptive steps are "
                        "chosen for a whole batch, so it is for `ncsn-fast sample` only")
    if batch_mean:
        raise NcsnError("generate promises samples that do not depend on the batch; --batch-mean makes each "
                        "corrector step depend on the whole batch, so it is for `ncsn-fast sample` only")


def _generate(args, batch_arg, out: Path) -> int:
    rank, world, device = distributed_setup(args.device)
    lock = RunLock(out, "generate run") if rank == 0 else contextlib.nullcontext()
    try:
        return _generate_locked(args, batch_arg, out, rank, world, device, lock)
    finally:
        if rank == 0:
            lock.__exit__(None, None, None)


def _generate_locked(args, batch_arg, out: Path, rank: int, world: int, device, lock) -> int:
    import dataclasses

    import torch

    from .. import generate as gen
    from ..sampling import Denoiser, Sampler, plan
    from ..version import __version__

    error, complete = None, False
    try:
        lock.__enter__()  # process 0 owns the folder for the run; a second run is refused before anything
        model, cfg, info = load_model(args)
        dtype, why = dtype_arg(args.dtype, device, cfg, quiet=rank != 0)
        sampler_cfg = sampler_settings(args, cfg)
        backend = backend_arg(args.backend, device)
        try:  # planned once, here: a setting the model cannot run is refused before anything is written
            compile_mode = args.compile
            if compile_mode == "auto":  # from the plan's evaluations, before the network is copied (and compiled)
                evals = plan(sampler_cfg, Denoiser.of(model, config=cfg), cfg).evals
                compile_mode = compile_choice(compile_mode, math.ceil(args.n / world), evals)
            sampler = Sampler(model.to(device), cfg, sampler_cfg, seed=args.seed, device=device, dtype=dtype,
                              backend=backend, compile_mode=compile_mode)
        except ValueError as e:
            raise NcsnError(str(e)) from None
        ald = sampler_cfg.name == "ald"
        s = cfg.sampling
        settings = gen.Settings(
            checkpoint_sha256=gen.file_sha256(checkpoint_path(args)), config=cfg.to_dict(), ema=info.ema_applied,
            n=args.n, seed=args.seed, n_steps_each=args.n_steps_each or s.n_steps_each,
            step_lr=args.step_lr if args.step_lr is not None and ald else s.step_lr,
            denoise=s.denoise if args.denoise is None or not ald else args.denoise,
            dtype=str(dtype).removeprefix("torch."),
            format=args.format, shard_size=args.shard_size, sampler=sampler_cfg.to_dict())
        identity = {"device": device.type, "backend": backend, "torch": torch.__version__, "ncsn_fast": __version__,
                    "compile": compile_mode}
        if rank == 0:
            manifest = gen.prepare_output(out, settings, identity, resume=args.resume, overwrite=args.overwrite,
                                          allow_device_change=args.allow_device_change,
                                          need_bytes=gen.bytes_needed(settings, cfg.image_shape))
            gen.remove_stale_temps(out)
            hwc = (cfg.image_shape[1], cfg.image_shape[2], cfg.image_shape[0])
            pngs = (lambda i: gen.png_path(out, i, settings.n)) if settings.format != "npz" else None
            for note in gen.verify_shards(out, settings.n, settings.shard_size, settings.digest(), hwc, pngs):
                print(f"ncsn-fast: note: {note}", file=sys.stderr)
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
              f"{100 * waited / max(wall, 1e-9):.2f} % of the time -> {out}/ ({', '.join(outputs)})\n"
              f"sampler: {sampler.summary}; network in {settings.dtype} ({why})"
              + (f", under torch.compile ({compile_mode})" if compile_mode else ""))
        if sampler.evals is None and made:
            print(evaluations_line(sum(t["evaluations"] for t in per_rank), made,
                                   min(t["evaluations_min"] for t in per_rank if t["images"]),
                                   max(t["evaluations_max"] for t in per_rank)))
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    return 0
