"""`ncsn-fast info`: what a checkpoint holds and how it samples."""

from __future__ import annotations

from .args import CHECKPOINT_HELP, add_checkpoint_args, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="architecture, parameters, noise ladder and sampling settings")
    p.add_argument("checkpoint", nargs="?", help=CHECKPOINT_HELP)
    add_checkpoint_args(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..errors import CheckpointError
    from ..sampling import Denoiser, langevin_schedule, supported

    try:
        model, cfg, info = load_model(args)
    except CheckpointError as e:
        if "no config given" not in str(e):
            raise
        return _bare(args.checkpoint)
    if cfg.family == "ncsnpp":
        return _ncsnpp(model, cfg, info)
    sig = cfg.sampling_sigmas()
    s = cfg.sampling
    alphas, _ = langevin_schedule(sig, s.step_lr)
    evals = len(sig) * s.n_steps_each + int(s.denoise)
    _print(info, info.layout, model,
           architecture=f"{cfg.arch} ({cfg.family}), ngf {cfg.model.ngf}, "
                        f"{cfg.data.channels}x{cfg.data.image_size}x{cfg.data.image_size}",
           levels=f"{len(sig)} {cfg.model.sigma_dist}, sigma {float(sig[0]):g} -> {float(sig[-1]):g}",
           sampling=f"{s.n_steps_each} steps/level, step_lr {s.step_lr:g} (alpha {alphas[0]:.4g} -> "
                    f"{alphas[-1]:.4g}), denoise {s.denoise}: {evals} network evaluations per sample",
           samplers=supported(Denoiser.from_model(model)))
    return 0


def _print(info, layout: str, model, *, architecture: str, levels: str, sampling: str, samplers: dict) -> None:
    """The lines of a loaded checkpoint, whichever family."""
    lines = [
        f"checkpoint      {info.path} ({layout} layout" + (f", step {info.step})" if info.step else ")"),
        f"config          {info.config_source}" + (f" ({info.config_note})" if info.config_note else ""),
        f"architecture    {architecture}",
        f"parameters      {sum(p.numel() for p in model.parameters()):,} ({len(model.state_dict())} state_dict "
        f"entries)",
        "weights         " + ("as the folder holds them" if info.layout == "diffusers" else
                                "EMA" if info.ema_applied else "raw") +
        (" (checkpoint has EMA weights)" if info.has_ema and not info.ema_applied else ""),
        f"noise levels    {levels}",
        f"sampling        {sampling}",
        "samplers        " + ", ".join(name + (f" ({why})" if why else "") for name, why in samplers.items()),
    ]
    print("\n".join(lines))


def _bare(path: str) -> int:
    """A checkpoint without a config: everything its weights tell, and what is missing to sample it."""
    from ..checkpoints import describe_weights

    w = describe_weights(path)
    sig = w["sigmas"]
    lines = [
        f"checkpoint      {path} ({w['layout']} layout" + (f", step {w['step']})" if w["step"] else ")"),
        "config          none found (no --config, none embedded, no config.yml beside the checkpoint)",
        f"architecture    {w['arch']} ({w['family']}), ngf {w['ngf']}, {w['channels']} channels",
        f"parameters      {w['parameters']:,} ({w['entries']} state_dict entries)",
        "weights         " + ("EMA weights present (used by default)" if w["has_ema"] else "no EMA weights"),
        "noise levels    " + (f"{len(sig)}, sigma {float(sig[0]):.6g} -> {float(sig[-1]):.6g} (the sigmas buffer)"
                              if sig is not None else f"{w['num_classes']} (conditional norms); sigma unknown"),
    ]
    lines += [f"unknown         {what}: give {option}" for what, option in w["unknown"]]
    print("\n".join(lines))
    return 0


def _ncsnpp(model, cfg, info) -> int:
    from ..sampling import Denoiser, supported

    m, d, s = cfg["model"], cfg["data"], cfg.get("sampling", {})
    sig = model.sigmas
    kind = "continuous (Gaussian Fourier embedding of sigma)" if model.embedding_type == "fourier" else \
        "discrete (positional embedding of the level)"
    _print(info, info.layout, model,
           architecture=f"NCSN++ (VE), {kind}, nf {m['nf']}, ch_mult {tuple(m['ch_mult'])}, "
                        f"{m['num_res_blocks']} {m['resblock_type']} res blocks per level, attention at "
                        f"{', '.join(map(str, m['attn_resolutions']))}, progressive {m['progressive']} / input "
                        f"{m['progressive_input']} ({m['progressive_combine']}), "
                        f"{d['num_channels']}x{d['image_size']}x{d['image_size']}",
           levels=f"{len(sig)} geometric, sigma {float(sig[0]):g} -> {float(sig[-1]):g}",
           sampling=f"{s.get('predictor', '?')} predictor + {s.get('corrector', '?')} corrector, snr "
                    f"{s.get('snr', '?')}: {len(sig) * (s.get('n_steps_each', 1) + 1)} network evaluations per sample",
           samplers={k: v for k, v in supported(Denoiser.from_ncsnpp(model)).items() if k != "ald"})
    if m.get("group_norm") == "diffusers":
        from ..checkpoints.ncsnpp_infer import published_names
        from ..config import published_ncsnpp_configs
        differ = model.group_counts_differ()
        names = published_names(cfg, published_ncsnpp_configs())
        sched = cfg.get("diffusers_scheduler", {})
        print("diffusers       UNet2DModel with Skip blocks = NCSN++ "
              + (f"(the published {' = '.join(names)})" if names else "(no published config has this layout)")
              + "; GroupNorm groups " + ("as score-SDE's: also the score-SDE network exactly" if not differ else
                                         f"by diffusers' rules, {differ} of them other than score-SDE's")
              + f"; scheduler: sigma {sched.get('sigma_max')} -> {sched.get('sigma_min')}, "
              f"{sched.get('num_train_timesteps')} steps, snr {sched.get('snr')}, "
              f"{sched.get('correct_steps')} corrector step(s)")
    return 0
