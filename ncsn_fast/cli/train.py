"""`ncsn-fast train`: denoising score matching on a folder of images, one process or many (torchrun)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ..errors import NcsnError
from ..runlock import RunLock
from .args import check_out_dir, distributed_setup, positive_float, positive_int, seed_arg


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="denoising score matching on a folder of images")
    p.add_argument("--config", required=True, help="an original NCSN/NCSNv2 config.yml (or one we wrote), or an "
                   "NCSN++ config of the score-SDE code: a published one's name (e.g. cifar10_ncsnpp_continuous) or "
                   "a JSON file of the resolved config")
    p.add_argument("--data", required=True,
                   help="folder of images (png/jpg, searched recursively), or 'digits' for the built-in digits")
    p.add_argument("--out", required=True, help="run folder: checkpoints, config.yml, trainer state")
    p.add_argument("--steps", type=positive_int, help="train until this step (default: the config's n_iters)")
    p.add_argument("--batch-size", type=positive_int, help="default: the config's training batch size")
    p.add_argument("--save-every", type=positive_int, help="default: the config's snapshot_freq")
    p.add_argument("--seed", type=seed_arg, default=0, help="in [0, 2^63)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    p.add_argument("--grad-clip", type=positive_float, help="clip the gradient norm to this value (NCSN++: "
                   "default the config's optim.grad_clip)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--sample-every", type=positive_int,
                   help="write samples_<step>.png (6x6 grid, EMA weights; NCSN / NCSNv2: 1 Langevin step per level, "
                   "NCSN++: edm, 18 steps) this often")
    p.add_argument("--log-every", type=positive_int, default=100,
                   help="append the mean loss of every this many steps to train_log.csv (default 100)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


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


def run(args) -> int:
    from ..data import ImageFolder
    from ..digits import DigitsDataset

    cfg = _load_config(args.config)
    if args.data == "digits" and not Path("digits").is_dir():
        data = DigitsDataset(cfg.data.image_size, cfg.data.channels, split="train")
    else:
        data = ImageFolder(args.data, cfg.data.image_size, cfg.data.channels)
    out = Path(args.out)
    check_out_dir(out)
    rank, world, device = distributed_setup(args.device)
    with RunLock(out, "training run") if rank == 0 else contextlib.nullcontext():  # the folder is this run's
        return _train(args, cfg, data, out, rank, world, device)


def _train(args, cfg, data, out: Path, rank: int, world: int, device) -> int:
    import torch
    from tqdm.auto import tqdm

    from ..data import batch_at
    from ..training import Trainer

    if not args.resume and (out / "checkpoint.pth").exists():
        raise NcsnError(f"--out {out} already holds a run: pass --resume to continue it, or another folder")
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


def _load_config(text: str):
    """An NCSN / NCSNv2 config.yml, or an NCSN++ config (a published name or a JSON file)."""
    from ..config import load_config, load_ncsnpp_config, published_ncsnpp_configs
    if text.endswith(".json") or text in published_ncsnpp_configs():
        return load_ncsnpp_config(text)[0]
    return load_config(text)


def _training_grid(trainer, out: Path) -> None:
    """samples_<step>.png: a 6x6 grid from the EMA weights (the fast sampler: 1 Langevin step per level, or for
    an NCSN++ edm in 18 steps; heun on a discrete one, which knows only its ladder's sigma)."""
    from ..images import inverse_data_transform, make_grid, save_png, to_uint8_nhwc
    from ..sampling import sample

    model = trainer.ema_model()
    if trainer.config.family == "ncsnpp":
        kw = {"sampler": "edm" if trainer.continuous else "heun", "steps": 18}
    else:
        kw = {"n_steps_each": 1}
    x = sample(model, trainer.config, 36, seed=0, device=trainer.device, progress=False, **kw)
    save_png(out / f"samples_{trainer.step}.png", make_grid(to_uint8_nhwc(inverse_data_transform(x, trainer.config))))
