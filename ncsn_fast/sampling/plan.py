"""The samplers by name: settings (checked here, once), defaults, the schedule each one runs on a given model, and
its plan: a reference run (its paper's function) and, when it has fixed steps, its table of rows for the fused
loop (table.py). `ald` (the original annealed Langevin dynamics, with the checkpoint's own settings) is the
default for NCSN / NCSNv2 and a table like the others.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from .adaptive import sample_adaptive
from .ancestral import edm_ancestral_program, sample_edm_ancestral
from .cas import cas_program, sample_cas
from .denoiser import Denoiser
from .dpm_solver import dpmpp_2m_program, sample_dpmpp_2m
from .edm import euler_program, heun_program, sample_euler, sample_heun
from .langevin import ald_program, sample_ald
from .ode import sample_ode
from .pc import pc_program, sample_pc
from .schedules import fit_to_model, geometric_sigmas, karras_sigmas
from .table import Program

SAMPLERS = {
    "ald": "annealed Langevin dynamics (Song & Ermon 2019, 2020): the original algorithm, the config's settings",
    "cas": "consistent annealed sampling (Jolicoeur-Martineau et al. 2021): one step per level",
    "euler": "EDM's deterministic sampler with Euler steps (Karras et al. 2022, Algorithm 1)",
    "heun": "EDM's deterministic sampler with Heun steps (Karras et al. 2022, Algorithm 1): 2N - 1 evaluations",
    "edm": "EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): Heun steps with churn",
    "edm-ancestral": "EDM's stochastic sampler, full churn, down to --split; Euler-ancestral steps below it",
    "dpmpp-2m": "DPM-Solver++(2M) (Lu et al. 2022): second order, one evaluation per step",
    "pc": "predictor-corrector of score SDEs (Song et al. 2021): reverse diffusion + Langevin corrector",
    "ode": "the probability-flow ODE with adaptive RK45 (Song et al. 2021), a reference (not graph-captured)",
    "adaptive": "the adaptive-step SDE solver (Jolicoeur-Martineau et al. 2021): steps per sample chosen to --rtol",
}
# The options each sampler takes (SamplerSettings' fields; the command line refuses the others by flag).
SCHEDULE = ("steps", "sigma_max", "sigma_min", "rho")
OPTIONS = {
    "ald": ("n_steps_each", "step_lr", "denoise"),
    "cas": ("steps", "sigma_max", "sigma_min", "step_lr", "denoise"),
    "euler": SCHEDULE, "heun": SCHEDULE, "dpmpp-2m": SCHEDULE,
    "edm-ancestral": (*SCHEDULE, "split", "nu"),
    "edm": (*SCHEDULE, "churn", "s_tmin", "s_tmax", "s_noise"),
    "pc": ("steps", "sigma_max", "sigma_min", "snr", "n_corrector", "batch_mean", "denoise"),
    "ode": ("sigma_max", "sigma_min", "rtol", "atol", "denoise"),
    "adaptive": ("sigma_max", "sigma_min", "rtol", "atol", "denoise"),
}


def takers(option: str) -> list[str]:
    """The samplers that take `option`."""
    return [name for name, opts in OPTIONS.items() if option in opts]


# EDM's stochastic settings for its VE CIFAR-10 network (Karras et al. 2022, Table 5).
EDM_CHURN = {"churn": 80.0, "s_tmin": 0.05, "s_tmax": 1.0, "s_noise": 1.007}
# edm-ancestral: ancestral steps that re-noise fully below sigma 0.1 (the quality bed's point, README).
ANCESTRAL = {"split": 0.1, "nu": 1.0}
DEFAULT_STEPS = {"euler": 50, "heun": 18, "edm": 18, "dpmpp-2m": 20, "edm-ancestral": 28}
# ode: the score-SDE code's tolerances; adaptive: Jolicoeur-Martineau et al.'s middle eps_rel, and eps_abs one 8-bit
# level of the data range (see _data_level).
DEFAULT_RTOL = {"ode": 1e-5, "adaptive": 0.05}


@dataclass(frozen=True)
class SamplerSettings:
    """What a sampler needs; None: the sampler's default (see `plan`; ald's come from the config)."""
    name: str = "ald"
    n_steps_each: int | None = None  # ald: Langevin steps per level (default: the config's)
    steps: int | None = None  # N: levels (cas, pc) or steps of the schedule (euler, heun, edm, dpmpp-2m)
    sigma_max: float | None = None  # the schedule's range (default: the model's trained range)
    sigma_min: float | None = None
    rho: float = 7.0  # EDM's schedule exponent
    churn: float | None = None  # edm: S_churn (default EDM's 80; heun and euler have none)
    s_tmin: float | None = None
    s_tmax: float | None = None
    s_noise: float | None = None
    snr: float = 0.16  # pc: the corrector's signal-to-noise ratio (score-SDE's CIFAR-10 value)
    n_corrector: int = 1  # pc: Langevin corrector steps per level
    split: float | None = None  # edm-ancestral: the sigma below which steps are ancestral (default ANCESTRAL's)
    nu: float | None = None  # edm-ancestral: the fresh share of the noise in those steps (default ANCESTRAL's)
    batch_mean: bool = False  # pc: the corrector step from batch means (the original; batch-dependent)
    step_lr: float | None = None  # ald: its step; cas: eta = step_lr / sigma_N^2 (default: the config's step_lr)
    denoise: bool | None = None  # ald, cas, pc, ode, adaptive: the final denoising step (default: the config's for
    # ald, on)
    rtol: float | None = None  # ode (default 1e-5), adaptive (default 0.05)
    atol: float | None = None  # ode (default 1e-5), adaptive (default: one 8-bit level of the data range)

    def __post_init__(self):
        if self.name not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.name!r}; choose from {', '.join(SAMPLERS)}")
        if self.n_steps_each is not None:
            if self.name != "ald":
                raise ValueError(f"n_steps_each sets annealed Langevin (ald); {self.name} takes steps=")
            if self.n_steps_each < 1:
                raise ValueError(f"n_steps_each must be >= 1, got {self.n_steps_each}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.churn is not None and self.churn < 0:
            raise ValueError(f"churn must be >= 0, got {self.churn}")
        if self.churn and self.name != "edm":
            raise ValueError(f"churn applies to the edm sampler only, not {self.name}")
        for name in ("split", "nu"):
            if getattr(self, name) is not None and self.name != "edm-ancestral":
                raise ValueError(f"{name} applies to the edm-ancestral sampler only, not {self.name}")
        if self.nu is not None and not 0 <= self.nu <= 1:
            raise ValueError(f"nu must lie in [0, 1], got {self.nu}")
        if self.split is not None and not (self.split >= 0 and math.isfinite(self.split)):
            raise ValueError(f"split must be a finite sigma >= 0, got {self.split}")
        for name in ("sigma_max", "sigma_min", "step_lr", "s_noise", "rtol", "atol", "rho", "snr"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive finite number, got {v}")
        if not self.rho > 0 or not self.snr > 0 or self.n_corrector < 0:
            raise ValueError(f"need rho > 0, snr > 0 and n_corrector >= 0, got {self.rho}, {self.snr}, "
                             f"{self.n_corrector}")

    def to_dict(self) -> dict:
        """The settings that decide the samples (for manifests); ald's live in the config and its flags (a
        manifest records them apart)."""
        if self.name == "ald":
            return {"name": "ald"}
        return dataclasses.asdict(self)


@dataclass
class Plan:
    name: str
    sigmas: torch.Tensor  # the schedule run (float64; ald: the model's levels in their own precision)
    reference: Callable  # reference(denoiser, x, noise=, progress=) -> x, the sampler's paper function
    program: Program | None  # the table of a fixed-step sampler (None: ode, adaptive)
    start_sigma: float
    evals: int | None  # network evaluations per sample (None: adaptive)
    summary: str

    def initial_state(self, denoiser: Denoiser, seed: int, ids: torch.Tensor, shape: tuple[int, ...], device,
                      generator: torch.Generator | None = None, reference: bool = False) -> torch.Tensor:
        """x_T of samples `ids` (see Program.initial_state); ode and adaptive start as the Gaussian-start tables
        do."""
        program = self.program or Program([], self.start_sigma)
        return program.initial_state(denoiser, seed, ids, shape, device, generator, reference)


def plan(settings: SamplerSettings, denoiser: Denoiser, config=None) -> Plan:
    """The schedule and runs of `settings` on this model; ValueError with the reason if it cannot run here."""
    s, name = settings, settings.name
    if name == "ald":
        return _plan_ald(s, denoiser, config)
    hi = s.sigma_max if s.sigma_max is not None else denoiser.sigma_max
    lo = s.sigma_min if s.sigma_min is not None else denoiser.sigma_min
    if lo > hi:
        raise ValueError(f"sigma_min ({lo:g}) must not exceed sigma_max ({hi:g})")
    what = f"the {name} schedule"
    if not denoiser.continuous:  # a range the user names must lie on the ladder; the points between are snapped
        for v in (s.sigma_max, s.sigma_min):
            if v is not None:
                if not denoiser.sigma_min * (1 - 1e-6) <= v <= denoiser.sigma_max * (1 + 1e-6):
                    raise ValueError(f"sigma {v:g} is beyond the ladder of {denoiser.name} "
                                     f"({denoiser.sigma_min:.6g} .. {denoiser.sigma_max:.6g})")
                denoiser.level(v)
    if name in ("ode", "adaptive"):
        if not denoiser.continuous:
            raise ValueError(f"{name} integrates through every sigma; {denoiser.name} knows only its ladder's sigma "
                             f"(use pc, cas or a ladder schedule of euler/heun/dpmpp-2m)")
        denoiser.check([hi, lo], what)
        if lo == hi:
            raise ValueError(f"{name} needs sigma_min < sigma_max")
        sig = torch.tensor([hi, lo], dtype=torch.float64)
        rtol = s.rtol if s.rtol is not None else DEFAULT_RTOL[name]
        atol = s.atol if s.atol is not None else (1e-5 if name == "ode" else _data_level(denoiser))
        if name == "ode":
            ref = partial(sample_ode, sigmas=sig, rtol=rtol, atol=atol, denoise=_on(s.denoise))
            detail = "RK45"
        else:
            ref = partial(sample_adaptive, sigmas=sig, rtol=rtol, atol=atol, denoise=_on(s.denoise))
            detail = "improved Euler SDE steps, 2 evaluations each"
        return Plan(name, sig, ref, None, hi, None,
                    f"{name} ({detail}, rtol {rtol:g}, atol {atol:.3g}), sigma {hi:g} -> {lo:g}: evaluations chosen "
                    f"by the solver")
    steps = s.steps or _default_steps(name, denoiser, config)
    if name in ("euler", "heun", "edm", "dpmpp-2m", "edm-ancestral"):
        sig = fit_to_model(karras_sigmas(steps, lo, hi, s.rho), denoiser, what)
        if name == "edm-ancestral":
            knobs = _ancestral_knobs(s)
            prog, ref = edm_ancestral_program(sig, **knobs), partial(sample_edm_ancestral, **knobs)
            denoiser.check([row.sigma for row in prog.rows], f"the {name} schedule with churn")
        elif name == "euler":
            prog, ref = euler_program(sig), sample_euler
        elif name == "dpmpp-2m":
            prog, ref = dpmpp_2m_program(sig), sample_dpmpp_2m
        else:
            knobs = _churn_knobs(s) if name == "edm" else {}
            prog = heun_program(sig, **knobs)
            denoiser.check([row.sigma for row in prog.rows], f"the {name} schedule with churn")
            ref = partial(sample_heun, **knobs)
        detail = f"rho {s.rho:g}" + (", churn {churn:g}, S_tmin {s_tmin:g}, S_tmax {s_tmax:g}, S_noise {s_noise:g}"
                                     .format(**_churn_knobs(s)) if name == "edm" else "")
        if name == "edm-ancestral":
            detail += ", churn gamma sqrt(2) - 1 down to sigma {split:g}, ancestral steps (nu {nu:g}) below".format(
                **_ancestral_knobs(s))
    else:  # cas, pc: geometric levels
        sig = fit_to_model(geometric_sigmas(steps, lo, hi), denoiser, what)
        if name == "cas":
            step_lr = s.step_lr if s.step_lr is not None else _config_step_lr(config)
            eta = step_lr / float(sig[-1]) ** 2
            prog = cas_program(sig, eta, _on(s.denoise))
            ref = partial(sample_cas, eta=eta, denoise=_on(s.denoise))
            detail = f"eta {eta:.4g} (step_lr {step_lr:g})"
        else:
            prog = pc_program(sig, s.snr, s.n_corrector, _on(s.denoise), s.batch_mean)
            ref = partial(sample_pc, snr=s.snr, n_corrector=s.n_corrector, denoise=_on(s.denoise),
                          batch_mean=s.batch_mean)
            detail = f"snr {s.snr:g}, {s.n_corrector} corrector step(s)"
            detail += ", batch-mean steps" if s.batch_mean else ""
    positive = sig[sig > 0]
    summary = (f"{name} ({len(positive)} sigma {float(positive[0]):.4g} -> {float(positive[-1]):.4g}, {detail}): "
               f"{prog.evals} network evaluations per sample")
    return Plan(name, sig, partial(ref, sigmas=sig), prog, float(sig[0]), prog.evals, summary)


def _plan_ald(s: SamplerSettings, denoiser: Denoiser, config) -> Plan:
    """Annealed Langevin on the model's own levels, with the config's settings where `s` leaves them open."""
    if getattr(config, "family", None) == "ncsnpp":
        raise ValueError("annealed Langevin (ald) needs an NCSN / NCSNv2 config; an NCSN++ samples with pc (its "
                         "default) or any other sampler")
    sampling = getattr(config, "sampling", None)
    t = s.n_steps_each or (sampling.n_steps_each if sampling else None)
    step_lr = s.step_lr if s.step_lr is not None else (sampling.step_lr if sampling else None)
    if t is None or step_lr is None:
        raise ValueError("ald on a function needs n_steps_each= and step_lr= (there is no config)")
    denoise = s.denoise if s.denoise is not None else bool(sampling.denoise if sampling else False)
    levels = denoiser.levels
    prog = ald_program(levels, n_steps_each=t, step_lr=step_lr, denoise=denoise)
    # NCSN v1 draws the noise before the score call, NCSNv2 after it.
    ref = partial(sample_ald, sigmas=levels, n_steps_each=t, step_lr=step_lr, denoise=denoise,
                  noise_first=getattr(config, "family", None) == "ncsn")
    summary = (f"ald ({len(levels)} levels x {t} steps{' + denoising' if denoise else ''}): "
               f"{prog.evals} network evaluations per sample")
    return Plan("ald", levels, ref, prog, float(levels[0]), prog.evals, summary)


def _data_level(denoiser: Denoiser) -> float:
    """One 8-bit level of the data range in model space: 1/255 for [0, 1] data, 2/255 for [-1, 1]."""
    ends = denoiser.to_model_space(torch.tensor([0.0, 1.0]))
    width = float(ends[1] - ends[0])
    return abs(width) / 255 if math.isfinite(width) and width != 0 else 1 / 255


def _on(flag: bool | None) -> bool:
    return True if flag is None else flag


def _ancestral_knobs(s: SamplerSettings) -> dict:
    return {k: (getattr(s, k) if getattr(s, k) is not None else v) for k, v in ANCESTRAL.items()}


def _churn_knobs(s: SamplerSettings) -> dict:
    return {k: (getattr(s, k) if getattr(s, k) is not None else v) for k, v in EDM_CHURN.items()}


def _config_step_lr(config) -> float:
    step_lr = getattr(getattr(config, "sampling", None), "step_lr", None)
    if step_lr is None:  # no config, or one without annealed Langevin's step (NCSN++)
        raise ValueError("cas needs step_lr (eta = step_lr / sigma_N^2, --step-lr): the model's config gives none")
    return step_lr


def _default_steps(name: str, denoiser: Denoiser, config) -> int:
    if name in DEFAULT_STEPS:
        return DEFAULT_STEPS[name]
    levels = len(denoiser.ladder)
    if name == "cas" and denoiser.continuous and config is not None:
        # The paper's: the ladder's range in (L - 1) T + 1 geometric levels (T Langevin steps per level).
        return (levels - 1) * config.sampling.n_steps_each + 1
    return levels


def supported(denoiser: Denoiser) -> dict[str, str]:
    """The samplers this model can run, with what limits them on it."""
    if denoiser.continuous:
        return {name: "" for name in SAMPLERS}
    ladder = "sigma from the ladder"
    return {"ald": "", "cas": ladder, "euler": ladder, "heun": ladder, "edm": "with --churn 0 only: heun",
            "dpmpp-2m": ladder, "pc": ladder}
