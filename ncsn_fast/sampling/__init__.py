"""Annealed Langevin samplers: pure functions of any `score(x, level)`."""

from .api import model_score, sample
from .langevin import (
                       LangevinStats,
                       Trajectory,
                       anneal_langevin,
                       anneal_langevin_v1,
                       anneal_langevin_v2,
                       langevin_schedule,
                       torch_noise,
)

__all__ = ["LangevinStats", "Trajectory", "anneal_langevin", "anneal_langevin_v1",
           "anneal_langevin_v2", "langevin_schedule", "model_score", "sample", "torch_noise"]
