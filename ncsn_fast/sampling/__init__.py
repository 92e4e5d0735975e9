"""Samplers: annealed Langevin dynamics (the default for NCSN / NCSNv2) and the modern ones, each a paper function
(the reference) and a table of fused updates (the fast path, in CUDA graphs on a GPU)."""

from .api import draw, make_sampler, model_score, resolve, sample
from .denoiser import Denoiser
from .langevin import (
    LangevinStats,
    Trajectory,
    ald_program,
    anneal_langevin,
    anneal_langevin_v1,
    anneal_langevin_v2,
    impose_known,
    inpainting_constraint,
    interpolation_noise,
    interpolation_start,
    langevin_schedule,
    sample_ald,
    torch_noise,
)
from .plan import SAMPLERS, Plan, SamplerSettings, plan, supported
from .run import ReferenceSampler, Sampler
from .schedules import geometric_sigmas, karras_sigmas
from .table import GraphedProgram, Program, Row, run_program

__all__ = [
    "SAMPLERS", "Denoiser", "GraphedProgram", "LangevinStats", "Plan", "Program", "ReferenceSampler", "Row",
    "Sampler", "SamplerSettings", "Trajectory", "ald_program", "anneal_langevin", "anneal_langevin_v1",
    "anneal_langevin_v2", "draw", "geometric_sigmas", "impose_known", "inpainting_constraint", "interpolation_noise",
    "interpolation_start", "karras_sigmas", "langevin_schedule", "make_sampler", "model_score", "plan", "resolve",
    "run_program", "sample", "sample_ald", "supported", "torch_noise",
]
