"""The fused ops: each with its pure-PyTorch reference, backend choice and torch.library registration."""

from ._backends import explain
from .langevin_step import langevin_coefs, langevin_step_, langevin_step_ref
from .philox import philox_noise, philox_normal, philox_normal_ref, philox_words_ref

__all__ = ["explain", "langevin_coefs", "langevin_step_", "langevin_step_ref", "philox_noise", "philox_normal",
           "philox_normal_ref", "philox_words_ref"]
