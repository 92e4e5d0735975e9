"""Denoising score matching training (trainer.py), per family: NCSN / NCSNv2 (ncsn.py) and NCSN++ of the score-SDE
code (score_sde.py). `Trainer(config, out_dir, ...)` is the config's family's trainer."""

from .ncsn import NcsnTrainer, make_optimizer
from .score_sde import ScoreSdeTrainer
from .trainer import EMAHelper, Trainer

__all__ = ["EMAHelper", "NcsnTrainer", "ScoreSdeTrainer", "Trainer", "make_optimizer"]
