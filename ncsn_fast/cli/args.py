"""Argument types and helpers shared by the commands: checkpoint loading, output folders, devices, processes."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from ..errors import NcsnError


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def csv(item):
    """An argparse type: a comma-separated list of `item`s, as a tuple."""
    def parse(text: str) -> tuple:
        return tuple(item(t) for t in text.split(",") if t)
    return parse


def positive_int_or(word: str):
    """An argparse type: a positive integer, or `word` itself."""
    def parse(text: str) -> int | str:
        return word if text == word else positive_int(text)
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {value}")
    return value


SEED_LIMIT = 1 << 63


def seed_arg(text: str) -> int:
    """--seed: an integer in [0, 2^63) (the noise stream takes 64 bits; a negative seed would alias another)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"the seed must be in [0, 2^63), got {value}")
    return value


CHECKPOINT_HELP = ("a checkpoint of the original NCSN / NCSNv2 code, of the score-SDE code (NCSN++) or ours (.pth, "
                   ".safetensors); default: the built-in model of --model")


def add_checkpoint_args(p: argparse.ArgumentParser, builtin: bool = True) -> None:
    if builtin:
        from ..digits import BUILTIN_MODELS
        p.add_argument("--model", choices=list(BUILTIN_MODELS), help="a built-in model, instead of --checkpoint: "
                       "digits (NCSNv2, the default) or digits-ncsnpp (NCSN++, VE)")
    p.add_argument("--config", help="the run's config.yml (NCSN / NCSNv2), or for NCSN++ a published config's name "
                   "or a JSON file of the resolved config (default: embedded, or config.yml beside the checkpoint, "
                   "or inferred from the weights)")
    p.add_argument("--image-size", type=positive_int, help="image size, if there is no config")
    p.add_argument("--sigma-begin", type=positive_float, help="largest sigma, if there is no config")
    p.add_argument("--sigma-end", type=positive_float, help="smallest sigma, if there is no config")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA ones")


def builtin_model(args) -> str | None:
    """The built-in model asked for (--model, or digits when there is no checkpoint), or None."""
    if args.checkpoint is None:
        return getattr(args, "model", None) or "digits"
    if getattr(args, "model", None):
        raise NcsnError(f"--model {args.model} and a checkpoint ({args.checkpoint}): give one or the other")
    return None


def checkpoint_path(args) -> str:
    """--checkpoint, or the built-in model's."""
    name = builtin_model(args)
    if name is None:
        return args.checkpoint
    from ..digits import builtin_checkpoint
    return str(builtin_checkpoint(name))


def load_model(args):
    """(model, config, info) of --checkpoint (default: the built-in digits model), whichever format and family
    (ncsn_fast.load_checkpoint)."""
    from ..checkpoints import load_checkpoint
    return load_checkpoint(checkpoint_path(args), config=args.config, ema=not args.no_ema, image_size=args.image_size,
                           sigma_begin=args.sigma_begin, sigma_end=args.sigma_end, return_info=True)


def check_out_dir(out: Path, create: bool = False) -> None:
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


def backend_arg(name: str, device) -> str:
    """--backend resolved for `device` (auto: the first that can run there); NcsnError naming why one cannot."""
    from ..ops._backends import choose
    try:
        return choose(name, device)
    except (RuntimeError, ValueError) as e:
        raise NcsnError(f"--backend {name}: {str(e).splitlines()[0]}") from None


def device_arg(text: str):
    """--device as a torch.device, refusing unknown names and CUDA where there is none."""
    import torch

    try:
        dev = torch.device(text)
    except RuntimeError:
        raise NcsnError(f"--device {text!r} is not a device torch knows") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NcsnError(f"--device {text}: no CUDA device is available")
    return dev


def distributed_setup(device: str):
    """(rank, world size, this process's device); under torchrun joins the process group (NCCL on CUDA,
    gloo on the CPU) and takes the GPU of its LOCAL_RANK."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = device_arg(device)
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


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value}")
    return value


def add_sampler_args(p: argparse.ArgumentParser) -> None:
    """--sampler and its options (sampling/plan.py), ald's --n-steps-each / --step-lr / --denoise among them."""
    from ..sampling.plan import SAMPLERS

    p.add_argument("--sampler", choices=list(SAMPLERS), default=None,
                   help="default: ald (the original annealed Langevin dynamics) for NCSN / NCSNv2, pc for NCSN++; " +
                   "; ".join(f"{k}: {v.split(' (')[0]}" for k, v in SAMPLERS.items() if k != "ald"))
    p.add_argument("--fast", action="store_true", help="the sampler the quality bed found cheapest at the original "
                   "algorithm's quality for this model family (README: Quality against evaluations); the original "
                   "stays the default")
    p.add_argument("--steps", type=positive_int, help="the sampler's N: steps of its schedule (euler, heun, edm, "
                   "edm-ancestral, dpmpp-2m) or noise levels (cas, pc); default: the sampler's own")
    p.add_argument("--sigma-max", type=positive_float, help="the schedule's largest sigma (default: the model's)")
    p.add_argument("--sigma-min", type=positive_float, help="the schedule's smallest sigma (default: the model's)")
    p.add_argument("--rho", type=positive_float, help="EDM's schedule exponent (default 7)")
    p.add_argument("--churn", type=nonnegative_float, help="edm: S_churn (default 80, EDM's for VE networks)")
    p.add_argument("--split", type=nonnegative_float, help="edm-ancestral: the sigma below which its steps are "
                   "ancestral (default 0.1)")
    p.add_argument("--nu", type=nonnegative_float, help="edm-ancestral: the fresh share of the noise in its "
                   "ancestral steps, 0 to 1 (default 1: denoise, then re-noise)")
    p.add_argument("--snr", type=positive_float, help="pc: the corrector's signal-to-noise ratio (default 0.16)")
    p.add_argument("--batch-mean", action="store_true", help="pc: the corrector's step size from the batch means "
                   "of the norms, as the score-SDE code does (a sample then depends on its batch; default: per "
                   "sample)")
    p.add_argument("--n-steps-each", type=positive_int, help="ald: Langevin steps per noise level")
    p.add_argument("--step-lr", type=positive_float, help="ald, cas: step size epsilon")
    p.add_argument("--rtol", "--tol", type=positive_float, dest="rtol",
                   help="adaptive, ode: the relative tolerance (default 0.05 for adaptive, 1e-5 for ode)")
    p.add_argument("--atol", type=positive_float, help="adaptive, ode: the absolute tolerance (default: one 8-bit "
                   "level of the data range for adaptive, 1e-5 for ode)")
    p.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None,
                   help="ald, cas, pc, ode, adaptive: final denoising step (default: the config's for ald, on for the "
                   "others)")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# generate --compile auto compiles when this process's share of the run is at least this many image-evaluations
# (images x network evaluations per image): a cold compile (about a minute on a CPU) is then a small part of it.
AUTO_COMPILE_IMAGE_EVALS = 1_000_000


def add_compile_arg(p, auto: bool = False) -> None:
    modes = COMPILE_MODES + (("auto",) if auto else ())
    p.add_argument("--compile", nargs="?", const="default", default=None, choices=modes, metavar="MODE",
                   help="the fast path's network under torch.compile in MODE (" + ", ".join(modes) + "; default "
                   "'default'), inside our fused updates and graphs; inductor's caches kept in "
                   "~/.cache/ncsn_fast/inductor ($TORCHINDUCTOR_CACHE_DIR), so a second run compiles from them. "
                   "Samples move by float rounding" + (f"; auto: when this process makes at least "
                   f"{AUTO_COMPILE_IMAGE_EVALS:,} image-evaluations" if auto else ""))


def compile_choice(mode: str | None, images: int, evals: int | None) -> str | None:
    """--compile's mode for a run of `images` images at `evals` evaluations each (None: adaptive); auto: 'default'
    for a long run, else none."""
    if mode != "auto":
        return mode
    return "default" if evals is not None and images * evals >= AUTO_COMPILE_IMAGE_EVALS else None


def evaluations_line(total: int, images: int, lo: int, hi: int) -> str:
    """What an adaptive sampler spent: per sample (mean, range) and in all."""
    return (f"network evaluations per sample: mean {total / images:.1f} (min {lo}, max {hi}); {total} in all for "
            f"{images} samples")


def sampler_settings(args, cfg):
    """The SamplerSettings of the command line (no --sampler: ald, or for an NCSN++ the score-SDE code's pc with
    its config's snr; --fast: the family's preset, sampling/presets.py); a flag of a sampler that does not take
    it is refused by name (sampling.plan.OPTIONS)."""
    from ..sampling.plan import OPTIONS, SamplerSettings, takers

    flags = {"steps": args.steps, "sigma_max": args.sigma_max, "sigma_min": args.sigma_min, "rho": args.rho,
             "churn": args.churn, "split": args.split, "nu": args.nu, "snr": args.snr,
             "batch_mean": args.batch_mean or None,
             "n_steps_each": args.n_steps_each, "step_lr": args.step_lr, "rtol": args.rtol, "atol": args.atol,
             "denoise": args.denoise}
    given = {k: v for k, v in flags.items() if v is not None}
    if getattr(args, "fast", False):
        from ..sampling.presets import fast_preset
        if args.sampler is not None:
            raise NcsnError(f"--fast picks the sampler: give --sampler {args.sampler} or --fast, not both")
        try:
            name, preset, measured = fast_preset(cfg.family)
        except ValueError as e:
            raise NcsnError(str(e)) from None
        given = {**preset, **given}
        if not getattr(args, "quiet", False):
            import sys
            flags_text = " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in preset.items())
            print(f"--fast: --sampler {name} {flags_text} ({measured})", file=sys.stderr)
    else:
        name = args.sampler or ("pc" if cfg.family == "ncsnpp" else "ald")
    def flag(option: str) -> str:
        return "--[no-]denoise" if option == "denoise" else "--" + option.replace("_", "-")
    for option in given:
        if option not in OPTIONS[name]:
            raise NcsnError(f"{flag(option)} is an option of {', '.join(takers(option))}, not of {name}, which takes "
                            f"{', '.join(flag(o) for o in OPTIONS[name] if o in flags)}")
    if args.sampler is None and name == "pc" and args.snr is None and getattr(cfg.sampling, "snr", None) is not None:
        given["snr"] = cfg.sampling.snr
    try:
        return SamplerSettings(name, **given)
    except ValueError as e:
        raise NcsnError(str(e)) from None


def dtype_arg(text: str, device, cfg, quiet: bool = False):
    """--dtype resolved for `device` and the model of config `cfg`: (torch dtype, why); a warning line on stderr
    where it will be slow. For an NCSN++ auto is float32 (its bfloat16 outputs are ~1 % off; given on request)."""
    import sys

    import torch

    from ..machine import resolve_dtype
    if cfg.family == "ncsnpp" and text == "auto":
        return torch.float32, "auto: NCSN++ in float32"
    try:
        dtype, why, warning = resolve_dtype(text, device)
    except ValueError as e:
        raise NcsnError(str(e)) from None
    if warning and not quiet:
        print(f"ncsn-fast: warning: {warning}", file=sys.stderr)
    return dtype, why
