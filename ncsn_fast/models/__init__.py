"""Score networks of NCSN (v1), NCSNv2 and NCSN++ (score-SDE) with the original parameter names."""

from .ncsnpp import NCSNpp
from .norms import ConditionalInstanceNorm2dPlus, InstanceNorm2dPlus, set_backend
from .refinenet import (
                        MODELS,
                        CondRefineNetDilated,
                        NCSNv2,
                        NCSNv2Deeper,
                        NCSNv2Deepest,
                        RefineNetScore,
                        build_model,
)

__all__ = ["MODELS", "CondRefineNetDilated", "ConditionalInstanceNorm2dPlus", "InstanceNorm2dPlus",
           "NCSNv2", "NCSNv2Deeper", "NCSNv2Deepest", "RefineNetScore", "build_model",
           "NCSNpp", "is_ncsnpp", "set_backend"]


def is_ncsnpp(model) -> bool:
    """Whether `model` is an NCSN++ of the score-SDE code (its own config, labels and denoiser view)."""
    return isinstance(model, NCSNpp)
