"""`ncsn-fast bench quality`: every sampler's quality against the network evaluations it costs, on two beds
(quality_beds.py): the exact score of a digits mixture, and the built-in digits network.

Each point is one sampler with one setting, run on n samples (same seed and indices for every sampler);
annealed Langevin (ald) runs with two seeds, whose spread is the noise floor the targets are judged by.
Writes benchmarks/results/samplers_quality_<device>.{json,md} and, when matplotlib is installed, a .png
plot of quality against evaluations per sample and wall time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..fileio import atomic_write_bytes

# (sampler, options, seeds): ald's options override the config; steps pick the others' schedules.
POINTS = [
    ("ald", {"n_steps_each": 5}, (0, 1)), ("ald", {"n_steps_each": 2}, (0,)), ("ald", {"n_steps_each": 1}, (0,)),
    *[("heun", {"steps": n}, (0,)) for n in (5, 9, 18, 25, 50)],
    *[("edm", {"steps": n}, (0,)) for n in (9, 18, 25)],
    *[("euler", {"steps": n}, (0,)) for n in (10, 25, 50)],
    *[("dpmpp-2m", {"steps": n}, (0,)) for n in (10, 20, 35, 50, 100)],
    *[("cas", {"steps": n}, (0,)) for n in (35, 50, 100, 200)],
    *[("pc", {"steps": n}, (0,)) for n in (25, 50, 100)],
    *[("ode", {"rtol": t, "atol": t}, (0,)) for t in (1e-3, 1e-5)],
    *[("adaptive", {"rtol": t}, (0,)) for t in (0.5, 0.2, 0.1, 0.05)],
]
QUICK_POINTS = [("ald", {"n_steps_each": 1}, (0, 1)), ("heun", {"steps": 3}, (0,)), ("pc", {"steps": 5}, (0,)),
                ("ode", {"rtol": 1e-2, "atol": 1e-2}, (0,)), ("adaptive", {"rtol": 0.5}, (0,))]


@dataclass
class Point:
    bed: str
    sampler: str
    options: dict
    seed: int
    evals: float
    seconds: float
    metrics: dict = field(default_factory=dict)

    def label(self) -> str:
        opts = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.options.items())
        return f"{self.sampler} ({opts})" if opts else self.sampler


def _run_point(bed: str, sampler: str, options: dict, seed: int, n: int, model, cfg, mixture, device,
               batch_size: int) -> tuple[torch.Tensor, float, float]:
    """(samples in [0, 1] image space on the CPU, evaluations per sample (an adaptive sampler's: the mean of its
    samples'), seconds)."""
    from ..images import inverse_data_transform
    from ..ops.philox import philox_noise
    from ..sampling import Denoiser, Sampler, SamplerSettings, plan

    t0 = time.perf_counter()
    if bed == "network":  # the fast path, batch after batch, counting the evaluations it reports
        fs = Sampler(model, cfg, SamplerSettings(sampler, **options), seed=seed, device=device)
        ticks, outs = [0], []

        def count(k: int) -> None:
            ticks[0] += k
        starts = range(0, n, batch_size)
        for b0 in starts:
            outs.append(fs(torch.arange(b0, min(n, b0 + batch_size)), count).float().cpu())
        x = inverse_data_transform(torch.cat(outs), cfg)
        evals = float(torch.cat(fs.sample_evals).float().mean()) if fs.sample_evals else ticks[0] / len(starts)
        return x, evals, time.perf_counter() - t0
    # The exact bed: the reference samplers on the mixture's score (the score costs next to nothing). Annealed
    # Langevin runs on the network's ladder, with its config's step size and final denoising.
    ids = torch.arange(n)
    sig = cfg.sigmas(torch.float64)
    den = Denoiser.from_function(mixture.score, float(sig[-1]), float(sig[0]), centre=0.5, name="the digits mixture",
                                 levels=sig)
    p = plan(SamplerSettings(sampler, **({"denoise": True} if sampler == "ald" else {}), **options), den, cfg)
    x0 = p.initial_state(den, seed, ids, mixture.shape, "cpu", reference=True)
    ticks = [0]

    def count(k: int) -> None:
        ticks[0] += k
    counts = []
    x = p.reference(den, x0, noise=philox_noise(seed, ids), progress=count,
                    **({"counts": counts.append} if p.program is None else {}))
    evals = float(counts[0].float().mean()) if counts else ticks[0]
    return x, evals, time.perf_counter() - t0


def run(device: torch.device, n: int = 1000, quick: bool = False, batch_size: int = 500,
        flush=None) -> list[Point]:
    from ..checkpoints import load_checkpoint
    from ..digits import builtin_checkpoint
    from ..quality import load_classifier
    from .quality_beds import DigitsJudge, DigitsMixture

    model, cfg = load_checkpoint(builtin_checkpoint())
    model = model.to(device)
    mixture = DigitsMixture()
    exact = mixture.sample(n, torch.Generator().manual_seed(1234))
    judge = DigitsJudge(load_classifier())
    points: list[Point] = []
    for bed in ("exact", "network"):
        for sampler, options, seeds in (QUICK_POINTS if quick else POINTS):
            for seed in seeds:
                x, evals, seconds = _run_point(bed, sampler, options, seed, n, model, cfg, mixture, device,
                                               batch_size)
                metrics = mixture.judge(x, exact) if bed == "exact" else judge(x)
                points.append(Point(bed, sampler, options, seed, evals, seconds, metrics))
                if flush is not None:
                    flush(points)
    return points


def targets(points: list[Point]) -> list[str]:
    """The two targets, met or missed (and by how much), judged against ald's two-seed noise floor: on the network,
    some sampler at <= 50 evaluations with an FD within it; on the exact score, heun at <= 35 evaluations with
    a |log-density gap| within it (the gap's size: samples denser than exact draws are wrong too)."""
    lines = []
    def value(p: Point, metric: str) -> float:
        return abs(p.metrics["log_density_gap"]) if metric == "abs_gap" else p.metrics[metric]
    for bed, metric, better, sampler, max_evals in (("network", "fd", "lower", None, 50),
                                                     ("exact", "abs_gap", "lower", "heun", 35)):
        ald = [value(p, metric) for p in points if p.bed == bed and p.sampler == "ald"
               and p.options.get("n_steps_each") == 5]
        if len(ald) < 2:
            continue
        mean, floor = sum(ald) / len(ald), max(ald) - min(ald)
        bound = mean + floor if better == "lower" else mean - floor
        cands = [p for p in points if p.bed == bed and p.sampler != "ald" and p.evals <= max_evals
                 and (sampler is None or p.sampler == sampler)]
        if not cands:
            continue
        best = min(cands, key=lambda p: value(p, metric) * (1 if better == "lower" else -1))
        v = value(best, metric)
        met = v <= bound if better == "lower" else v >= bound
        who = f"{sampler} at <= {max_evals}" if sampler else f"some sampler at <= {max_evals}"
        lines.append(f"{bed} bed, {who} evaluations within ald's noise floor ({metric} {bound:.4g}: ald "
                     f"{mean:.4g} +- {floor:.3g}): {'met' if met else 'missed'} by {best.label()} at "
                     f"{best.evals:g} evaluations, {metric} {v:.4g}"
                     + ("" if met else f" ({abs(v - bound):.3g} {'above' if better == 'lower' else 'below'})"))
    return lines


def markdown(points: list[Point], header: str) -> str:
    md = [header, "", "### Exact score (digits mixture, tau 0.05)", "",
          "| sampler | seed | evals / sample | log-density gap (mean, nats) | gap (median) | coverage | seconds |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for p in (p for p in points if p.bed == "exact"):
        m = p.metrics
        md.append(f"| {p.label()} | {p.seed} | {p.evals:g} | {m['log_density_gap']:.3g} | "
                  f"{m['log_density_gap_median']:.3g} | {m['coverage']:.3f} | {p.seconds:.1f} |")
    md += ["", "### Built-in digits network", "",
           "| sampler | seed | evals / sample | FD (classifier features) | confident | not a digit | class TV | "
           "seconds |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in (p for p in points if p.bed == "network"):
        m = p.metrics
        md.append(f"| {p.label()} | {p.seed} | {p.evals:g} | {m['fd']:.1f} | {100 * m['confident_share']:.1f} % | "
                  f"{100 * m['not_a_digit_share']:.1f} % | {m['class_tv']:.3f} | {p.seconds:.1f} |")
    md += ["", "### Targets", "", *[f"- {line}" for line in targets(points)]]
    return "\n".join(md) + "\n"


def plot(points: list[Point], path: Path) -> bool:
    """quality against evaluations (both beds) and against seconds (network); False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [("exact", "abs_gap", "evals", "exact score: |log-density gap| to exact draws (nats, lower is better)"),
              ("network", "fd", "evals", "digits network: FD to held-out digits (lower is better)"),
              ("network", "confident_share", "evals", "digits network: confident share (higher is better)"),
              ("network", "fd", "seconds", "digits network: FD against wall seconds")]

    def value(p: Point, metric: str) -> float:
        return abs(p.metrics["log_density_gap"]) if metric == "abs_gap" else p.metrics[metric]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, (bed, metric, xkey, title) in zip(axes.flat, panels):
        for sampler in dict.fromkeys(p.sampler for p in points):
            pts = sorted((p for p in points if p.bed == bed and p.sampler == sampler and p.seed == 0),
                         key=lambda p: getattr(p, xkey))
            if pts:
                ax.plot([getattr(p, xkey) for p in pts], [value(p, metric) for p in pts], "o-", label=sampler)
        ax.set_xscale("log")
        if metric != "confident_share":
            ax.set_yscale("log")
        ax.set_xlabel("network evaluations per sample" if xkey == "evals" else "seconds (whole run)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def run_and_write(device: torch.device, out_dir: str | Path, n: int = 1000, quick: bool = False,
                  command: str = "") -> list[Path]:
    """Run every point, writing the results after each (a stopped run keeps what it measured)."""
    import dataclasses
    import json

    from ..machine import feature_text
    from .timing import environment

    env = environment(device)
    name = "samplers_quality" + ("_quick" if quick else "")
    slug = "".join(ch if ch.isalnum() else "-" for ch in (env.get("gpu") or f"cpu{env['cpu_threads']}t")).lower()
    stem = Path(out_dir) / f"{name}_{slug}"
    header = (f"Samplers' quality against network evaluations, {n} samples per point: `{command}` — "
              f"{env['timestamp']}, git {env.get('git_sha')}, {env.get('gpu') or env['cpu']} "
              f"({feature_text(env['cpu_features'])}), torch {env['torch']}, "
              f"{env['cpu_threads']} CPU threads. Seconds: the whole run of the point on this machine.")

    def flush(points):
        payload = {"command": command, "environment": env, "n": n,
                   "points": [dataclasses.asdict(p) for p in points], "targets": targets(points)}
        atomic_write_bytes(stem.with_suffix(".json"), json.dumps(payload, indent=1).encode())
        atomic_write_bytes(stem.with_suffix(".md"), markdown(points, header).encode())

    points = run(device, n, quick, flush=flush)
    flush(points)
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    if plot(points, stem.with_suffix(".png")):
        paths.append(stem.with_suffix(".png"))
    return paths
