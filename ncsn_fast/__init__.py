"""ncsn_fast: train and sample Noise Conditional Score Networks (NCSN, NCSNv2, NCSN++) fast.

A checkpoint becomes a denoiser, a sampler becomes a table of rows, one fused update runs the rows, a CUDA graph
replays them: load_checkpoint -> sampling.Denoiser -> sampling.plan -> ops.sampler_update_ -> sampling.GraphedProgram.
"""

from .accelerate import accelerate
from .checkpoints import load_checkpoint, save_checkpoint
from .config import Config, load_config
from .errors import CheckpointError, ConfigError, NcsnError
from .models import build_model
from .sampling import anneal_langevin, anneal_langevin_v1, anneal_langevin_v2, sample
from .version import __version__

__all__ = ["__version__", "CheckpointError", "Config", "ConfigError", "NcsnError", "accelerate", "anneal_langevin",
           "anneal_langevin_v1", "anneal_langevin_v2", "build_model", "load_checkpoint",
           "load_config", "sample", "save_checkpoint"]
