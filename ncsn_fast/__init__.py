"""ncsn_fast: train and sample Noise Conditional Score Networks (NCSN, NCSNv2) fast."""

from .accelerate import accelerate
from .checkpoints import load_checkpoint, save_checkpoint
from .config import Config, load_config
from .errors import CheckpointError, ConfigError, NcsnError
from .models import build_model
from .sampling import anneal_langevin, anneal_langevin_v1, anneal_langevin_v2, sample

__version__ = "0.1.0"

__all__ = ["CheckpointError", "Config", "ConfigError", "NcsnError", "accelerate", "anneal_langevin",
           "anneal_langevin_v1", "anneal_langevin_v2", "build_model", "load_checkpoint",
           "load_config", "sample", "save_checkpoint"]
