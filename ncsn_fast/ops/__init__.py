"""The fused ops: each with its pure-PyTorch reference, backend choice and torch.library registration."""

from ._backends import explain
from .philox import philox_noise, philox_normal, philox_normal_ref, philox_words_ref

__all__ = ["explain", "philox_noise", "philox_normal", "philox_normal_ref", "philox_words_ref"]
