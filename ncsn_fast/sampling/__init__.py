"""Samplers: annealed Langevin dynamics (the default) and the modern ones (samplers.py); references, fast paths."""

from .api import FastSampler, model_score, sample
from .denoiser import Denoiser
from .fast import GraphedLangevin, anneal_langevin_fused, model_raw_score
from .langevin import (
    LangevinStats,
    Trajectory,
    anneal_langevin,
    anneal_langevin_v1,
    anneal_langevin_v2,
    impose_known,
    inpainting_constraint,
    interpolation_noise,
    interpolation_start,
    langevin_schedule,
    torch_noise,
)
from .program import GraphedProgram, Program, Row, run_program
from .runner import ProgramSampler
from .samplers import SAMPLERS, SamplerSettings, plan
from .schedules import geometric_sigmas, karras_sigmas

__all__ = [
    "SAMPLERS", "Denoiser", "FastSampler", "GraphedLangevin", "GraphedProgram", "LangevinStats", "Program",
    "ProgramSampler", "Row", "SamplerSettings", "Trajectory", "anneal_langevin", "anneal_langevin_fused",
    "anneal_langevin_v1", "anneal_langevin_v2", "geometric_sigmas", "impose_known", "inpainting_constraint",
    "interpolation_noise", "interpolation_start", "karras_sigmas", "langevin_schedule", "model_raw_score",
    "model_score", "plan", "run_program", "sample", "torch_noise",
]
