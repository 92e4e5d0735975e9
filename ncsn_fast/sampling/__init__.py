"""Annealed Langevin samplers: pure functions of any `score(x, level)`; the reference and the fast path."""

from .api import FastSampler, model_score, sample
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

__all__ = [
    "FastSampler", "GraphedLangevin", "LangevinStats", "Trajectory", "anneal_langevin", "anneal_langevin_fused",
    "anneal_langevin_v1", "anneal_langevin_v2", "impose_known", "inpainting_constraint", "interpolation_noise",
    "interpolation_start", "langevin_schedule",
    "model_raw_score", "model_score", "sample", "torch_noise",
]
