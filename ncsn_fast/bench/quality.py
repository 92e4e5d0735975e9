"""`ncsn-fast bench quality`: every sampler's quality against the network evaluations it costs, on three beds
(quality_beds.py): the exact score of a digits mixture, and the two built-in digits networks (NCSNv2 and NCSN++).

Each point is one sampler with one setting, run on n samples (same seed and indices for every sampler). Each
bed's original algorithm runs with two seeds, whose spread is the noise floor the targets are judged by:
annealed Langevin (ald, 5 steps per level) on the exact bed and NCSNv2, the score-SDE code's predictor-corrector
at its config's N (500) on NCSN++. Writes benchmarks/results/samplers_quality_<device>.{json,md} and, when
matplotlib is installed, a .png plot (quality_report.py). With resume, a point the results file holds, measured
with the same n on the same checkpoint (its SHA-256), is kept with the commit it was measured at, not run again.
"""

from __future__ import annotations

import json
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
    ("edm-ancestral", {"steps": 14}, (0,)), ("edm-ancestral", {"steps": 28}, (0, 1)),
    *[("euler", {"steps": n}, (0,)) for n in (10, 25, 50)],
    *[("dpmpp-2m", {"steps": n}, (0,)) for n in (10, 20, 35, 50, 100)],
    *[("cas", {"steps": n}, (0,)) for n in (35, 50, 100, 200)],
    *[("pc", {"steps": n}, (0,)) for n in (25, 50, 100)],
    *[("ode", {"rtol": t, "atol": t}, (0,)) for t in (1e-3, 1e-5)],
    *[("adaptive", {"rtol": t}, (0,)) for t in (0.5, 0.2, 0.1, 0.05)],
]
# NCSN++: its original (pc at the config's N) twice, then the samplers near the budget the targets are about,
# with the settings they have on NCSNv2.
NCSNPP_POINTS = [
    ("pc", {"steps": 500}, (0, 1)),
    *[("pc", {"steps": n}, (0,)) for n in (25, 50, 100)],
    *[("heun", {"steps": n}, (0,)) for n in (9, 18, 25)],
    *[("edm", {"steps": n}, (0,)) for n in (9, 18, 25)],
    ("edm-ancestral", {"steps": 14}, (0,)), ("edm-ancestral", {"steps": 28}, (0, 1)),
    ("euler", {"steps": 50}, (0,)),
    *[("dpmpp-2m", {"steps": n}, (0,)) for n in (20, 50)],
    *[("cas", {"steps": n, "step_lr": 2e-5}, (0,)) for n in (50, 100)],  # NCSNv2's config's step: eta 0.2 on both
    ("ode", {"rtol": 1e-3, "atol": 1e-3}, (0,)),
    *[("adaptive", {"rtol": t}, (0,)) for t in (0.5, 0.2, 0.1)],
]
QUICK_POINTS = [("ald", {"n_steps_each": 1}, (0, 1)), ("heun", {"steps": 3}, (0,)), ("pc", {"steps": 5}, (0,)),
                ("ode", {"rtol": 1e-2, "atol": 1e-2}, (0,)), ("adaptive", {"rtol": 0.5}, (0,))]
NCSNPP_QUICK_POINTS = [("pc", {"steps": 5}, (0, 1)), ("heun", {"steps": 3}, (0,)), ("adaptive", {"rtol": 0.5}, (0,))]


@dataclass(frozen=True)
class Bed:
    model: str  # the built-in model whose network (or, for the exact bed, whose noise ladder) it uses
    points: list
    quick_points: list
    original: tuple[str, dict]  # the original algorithm, run with two seeds: the noise floor
    max_evals: int  # the target's budget
    sampler: str | None = None  # the target's sampler (None: any)


BEDS = {
    "exact": Bed("digits", POINTS, QUICK_POINTS, ("ald", {"n_steps_each": 5}), 35, "heun"),
    "digits": Bed("digits", POINTS, QUICK_POINTS, ("ald", {"n_steps_each": 5}), 50),
    "digits-ncsnpp": Bed("digits-ncsnpp", NCSNPP_POINTS, NCSNPP_QUICK_POINTS, ("pc", {"steps": 500}), 50),
}
QUICK_ORIGINAL = {"ald": {"n_steps_each": 1}, "pc": {"steps": 5}}  # --quick's stand-ins for the originals
# A bed's measures: (key, lower is better, name). The exact bed's: the size of the log-density gap.
MEASURES = {"exact": (("abs_gap", True, "|log-density gap|"),),
            "network": (("fd", True, "FD"), ("confident_share", False, "confident share"),
                        ("not_a_digit_share", True, "not-a-digit share"))}


@dataclass
class Point:
    bed: str
    sampler: str
    options: dict
    seed: int
    evals: float
    seconds: float
    metrics: dict = field(default_factory=dict)
    checkpoint_sha256: str | None = None
    git: str | None = None  # the commit it was measured at

    def label(self) -> str:
        opts = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.options.items())
        return f"{self.sampler} ({opts})" if opts else self.sampler

    def key(self) -> str:
        return json.dumps([self.bed, self.sampler, self.options, self.seed, self.checkpoint_sha256], sort_keys=True)

    def value(self, metric: str) -> float:
        return abs(self.metrics["log_density_gap"]) if metric == "abs_gap" else self.metrics[metric]


def measures(bed: str):
    return MEASURES["exact" if bed == "exact" else "network"]


def _run_point(bed: str, sampler: str, options: dict, seed: int, n: int, model, cfg, mixture, device,
               batch_size: int) -> tuple[torch.Tensor, float, float]:
    """(samples in [0, 1] image space on the CPU, evaluations per sample (an adaptive sampler's: the mean of its
    samples'), seconds)."""
    from ..images import inverse_data_transform
    from ..ops.philox import philox_noise
    from ..sampling import Denoiser, Sampler, SamplerSettings, plan

    t0 = time.perf_counter()
    if bed != "exact":  # the fast path, batch after batch, counting the evaluations it reports
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


def run(device: torch.device, n: int = 1000, quick: bool = False, batch_size: int = 500, flush=None,
        beds=tuple(BEDS), prior: list[Point] = (), git: str | None = None) -> list[Point]:
    """Every point of every bed; a point of `prior` with the same key (bed, sampler, options, seed, checkpoint
    digest) is kept as it is."""
    from ..checkpoints import load_checkpoint
    from ..digits import builtin_checkpoint
    from ..generate.loop import file_sha256
    from ..quality import load_classifier
    from .quality_beds import DigitsJudge, DigitsMixture

    kept = {p.key(): p for p in prior}
    mixture = DigitsMixture()
    exact = mixture.sample(n, torch.Generator().manual_seed(1234))
    judge = DigitsJudge(load_classifier())
    points: list[Point] = []
    for bed in beds:
        spec = BEDS[bed]
        path = builtin_checkpoint(spec.model)
        digest = file_sha256(path)
        model, cfg = load_checkpoint(path)
        model = model.to(device)
        for sampler, options, seeds in (spec.quick_points if quick else spec.points):
            for seed in seeds:
                point = Point(bed, sampler, options, seed, 0.0, 0.0, checkpoint_sha256=digest, git=git)
                if point.key() in kept:
                    points.append(kept[point.key()])
                    continue
                x, point.evals, point.seconds = _run_point(bed, sampler, options, seed, n, model, cfg, mixture,
                                                           device, batch_size)
                point.metrics = mixture.judge(x, exact) if bed == "exact" else judge(x)
                points.append(point)
                if flush is not None:
                    flush(points)
    return points


def targets(points: list[Point], quick: bool = False) -> list[str]:
    """Each bed's target, met or missed (and by what), judged against its original algorithm's two-seed noise
    floor, mean +- spread on every measure: some sampler (the exact bed: heun) at the bed's budget within it by
    every measure; then the cheapest sampler within it at any count."""
    lines = []
    for bed, spec in BEDS.items():
        name, options = spec.original
        options = QUICK_ORIGINAL.get(name, options) if quick else options
        base = [p for p in points if p.bed == bed and p.sampler == name and p.options == options]
        if len(base) < 2:
            continue
        bounds = {}
        for metric, lower, _ in measures(bed):
            v = [p.value(metric) for p in base]
            mean, floor = sum(v) / len(v), max(v) - min(v)
            bounds[metric] = (mean + floor if lower else mean - floor, lower, mean, floor)

        def misses(p: Point, bounds=bounds) -> list[str]:
            return [m for m, (b, lower, *_) in bounds.items() if (p.value(m) > b if lower else p.value(m) < b)]
        others = [p for p in points if p.bed == bed and not (p.sampler == name and p.options == options)]
        cands = [p for p in others if p.evals <= spec.max_evals and spec.sampler in (None, p.sampler)]
        floor_text = ", ".join(f"{m} {'<=' if lower else '>='} {b:.4g} ({mean:.4g} +- {fl:.3g})"
                               for m, (b, lower, mean, fl) in bounds.items())
        who = f"{spec.sampler or 'some sampler'} at <= {spec.max_evals} evaluations"
        head = f"{bed} bed, {who} within {base[0].label()}'s noise floor ({floor_text})"
        first = measures(bed)[0][0]
        if cands:
            best = min(cands, key=lambda p: (len(misses(p)), p.value(first)))
            got = ", ".join(f"{m} {best.value(m):.4g}" for m in bounds)
            miss = misses(best)
            lines.append(f"{head}: {'met' if not miss else 'missed'} — {'by' if not miss else 'closest:'} "
                         f"{best.label()} at {best.evals:g} evaluations, {got}"
                         + (f" (outside on {', '.join(miss)})" if miss else ""))
        within = sorted((p for p in others if not misses(p)), key=lambda p: p.evals)
        lines.append(f"{bed} bed, the cheapest sampler within that floor by every measure: "
                     + (f"{within[0].label()} at {within[0].evals:g} evaluations" if within else "none"))
    return lines


def run_and_write(device: torch.device, out_dir: str | Path, n: int = 1000, quick: bool = False,
                  command: str = "", beds=tuple(BEDS), resume: bool = False) -> list[Path]:
    """Run every point, writing the results after each (a stopped run keeps what it measured; with resume, a
    later run takes it up)."""
    import dataclasses

    from ..machine import feature_text
    from .quality_report import markdown, plot
    from .timing import environment

    env = environment(device)
    name = "samplers_quality" + ("_quick" if quick else "")
    slug = "".join(ch if ch.isalnum() else "-" for ch in (env.get("gpu") or f"cpu{env['cpu_threads']}t")).lower()
    stem = Path(out_dir) / f"{name}_{slug}"
    prior: list[Point] = []
    if resume and stem.with_suffix(".json").exists():
        old = json.loads(stem.with_suffix(".json").read_text())
        if old.get("n") == n:
            prior = [Point(**p) for p in old["points"] if p.get("checkpoint_sha256")]
    header = (f"Samplers' quality against network evaluations, {n} samples per point: `{command}` — "
              f"{env['timestamp']}, {env.get('gpu') or env['cpu']} ({feature_text(env['cpu_features'])}), "
              f"torch {env['torch']}, {env['cpu_threads']} CPU threads. Seconds: the whole run of the point on "
              f"this machine.")

    def flush(points):
        payload = {"command": command, "environment": env, "n": n,
                   "points": [dataclasses.asdict(p) for p in points], "targets": targets(points, quick)}
        atomic_write_bytes(stem.with_suffix(".json"), json.dumps(payload, indent=1).encode())
        atomic_write_bytes(stem.with_suffix(".md"), markdown(points, header, targets(points, quick)).encode())

    points = run(device, n, quick, flush=flush, beds=beds, prior=prior, git=env.get("git_sha"))
    flush(points)
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    if plot(points, stem.with_suffix(".png"), {bed: (BEDS[bed].original, measures(bed)) for bed in BEDS}):
        paths.append(stem.with_suffix(".png"))
    return paths
