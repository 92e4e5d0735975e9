"""Score networks of NCSN (v1) and NCSNv2 with the original parameter names."""

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
           "set_backend"]
