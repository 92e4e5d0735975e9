"""The fused ops: each with its pure-PyTorch reference, backend choice and torch.library registration."""

from ._backends import explain
from .conv3x3 import conv3x3, conv3x3_ref
from .elu import elu, elu_ref
from .group_norm_act import group_norm_act, group_norm_act_ref
from .instance_norm_plus import cond_instance_norm_plus, instance_norm_plus, instance_norm_plus_ref
from .philox import philox_noise, philox_normal, philox_normal_ref, philox_words_ref
from .pool import pool5x5, pool5x5_ref
from .sampler_update import langevin_coefs, sampler_update_, sampler_update_ref

__all__ = [
    "cond_instance_norm_plus", "conv3x3", "conv3x3_ref", "elu", "elu_ref", "explain", "group_norm_act",
    "group_norm_act_ref", "instance_norm_plus", "instance_norm_plus_ref",
    "langevin_coefs", "philox_noise", "philox_normal", "philox_normal_ref", "philox_words_ref", "pool5x5",
    "pool5x5_ref", "sampler_update_", "sampler_update_ref",
]
