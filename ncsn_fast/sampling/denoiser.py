"""One view of every score model for the samplers: D(x, sigma) = x + sigma^2 s(x, sigma), and the sigma it supports.

A sampler sees a model only through this view; the model's kind (NCSN, NCSNv2, NCSN++, a user's function) ends
here. Two kinds of model exist:
- continuous: the network does not see a label (NCSNv2, whose score is raw(x) / sigma; a continuous NCSN++; a
  score function of the user's), so any sigma in its trained range works;
- ladder-only: the network is conditioned on a level index (NCSN v1's conditional norms exist only at its
  ladder's sigma_i; a discrete NCSN++), so samplers must pick their sigma from the ladder, and any other sigma
  is refused.
Annealed Langevin runs on the model's own levels (`levels`, `level_scales`, `level_score`): the ladder in the
precision its original sampler computed steps in, and the score as the original network computes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..images import data_transform

# net(x, sigma (N,) float32, level (N,) int64) -> raw output h; the score is scale(sigma) * h.
Net = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# How far above the largest trained sigma a continuous model may be evaluated: EDM's churn raises sigma by
# at most a factor 1 + gamma_max = sqrt(2).
ABOVE_TOP = math.sqrt(2.0)
LADDER_RTOL = 1e-6  # a sigma within this relative distance of a ladder value is that value


class Denoiser:
    """D(x, sigma) = x + sigma^2 s(x, sigma) for a score network, with the sigma it may be evaluated at.

    net(x, sigma, level) returns the raw output h with s = scale(sigma) h: scale = 1 / sigma when
    `inv_sigma` (NCSNv2, whose network output is divided by sigma), else 1. `ladder` holds the trained
    sigma_1 > ... > sigma_L (float64). `centre` is the middle of the data range in model space, where the
    Gaussian start N(centre, sigma_max^2 I) of the ODE-style samplers is put.

    For annealed Langevin: `levels` is the ladder it iterates (default: `ladder`; for our networks the config's
    sampling ladder in the precision the original computed its steps in), `level_scales` the float32 score scale
    c_i of each level as the network applies it (default 1 / sigma_i or 1), `level_score(x, i)` the score at
    level i as the original network computes it (default scale * raw), `to_model_space` maps its uniform start
    in [0, 1] to model space (the originals' data_transform; default the identity).
    """

    def __init__(self, net: Net, ladder: Sequence[float] | torch.Tensor, *, continuous: bool,
                 inv_sigma: bool = False, centre: float = 0.0, name: str = "model",
                 levels: torch.Tensor | Sequence[float] | None = None, level_scales: torch.Tensor | None = None,
                 level_score: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
                 to_model_space: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.net, self.continuous, self.inv_sigma, self.centre, self.name = net, continuous, inv_sigma, centre, name
        self.ladder = torch.as_tensor(ladder, dtype=torch.float64).flatten()
        if len(self.ladder) < 1 or not bool((self.ladder > 0).all()):
            raise ValueError("the sigma ladder must hold positive values")
        if len(self.ladder) > 1 and not bool((self.ladder[1:] < self.ladder[:-1]).all()):
            raise ValueError("the sigma ladder must be decreasing (largest sigma first)")
        self.levels = self.ladder if levels is None else torch.as_tensor(levels).flatten()
        self.level_scales = (torch.tensor([self.scale(float(s)) for s in self.levels], dtype=torch.float32)
                             if level_scales is None else torch.as_tensor(level_scales, dtype=torch.float32))
        self._level_score = level_score
        self.to_model_space = to_model_space or (lambda u: u)

    @property
    def sigma_max(self) -> float:
        return float(self.ladder[0])

    @property
    def sigma_min(self) -> float:
        return float(self.ladder[-1])

    def scale(self, sigma: float) -> float:
        """c with s = c h at this sigma."""
        return 1.0 / sigma if self.inv_sigma else 1.0

    def level(self, sigma: float) -> int:
        """The ladder index of sigma (ladder-only models: exactly a ladder value; else the nearest one)."""
        i = int((self.ladder.log() - math.log(sigma)).abs().argmin())
        if not self.continuous and abs(float(self.ladder[i]) - sigma) > LADDER_RTOL * sigma:
            raise ValueError(self._off_ladder(sigma))
        return i

    def check(self, sigmas: Sequence[float], what: str = "the schedule") -> None:
        """ValueError, with the reason, unless every sigma of `sigmas` can be evaluated (0 is skipped)."""
        for s in (float(v) for v in sigmas):
            if s == 0.0:
                continue
            if not math.isfinite(s) or s < 0:
                raise ValueError(f"{what} holds sigma = {s}; sigmas must be positive and finite")
            if self.continuous:
                lo, hi = self.sigma_min * (1 - LADDER_RTOL), self.sigma_max * ABOVE_TOP * (1 + LADDER_RTOL)
                if not lo <= s <= hi:
                    raise ValueError(f"{what} needs sigma = {s:.6g}, outside what {self.name} supports "
                                     f"[{self.sigma_min:.6g}, sqrt(2) x {self.sigma_max:.6g}] (its trained "
                                     f"sigma range; EDM's churn may go up to sqrt(2) above it)")
            else:
                self.level(s)

    def _off_ladder(self, sigma: float) -> str:
        i = int((self.ladder.log() - math.log(sigma)).abs().argmin())
        near = ", ".join(f"{float(v):.6g}" for v in self.ladder[max(i - 1, 0): i + 2])
        return (f"sigma = {sigma:.6g} is not on the ladder of {self.name}, whose network knows only its "
                f"{len(self.ladder)} trained sigma_i (nearest: {near}); samplers on it take their sigma from "
                f"the ladder, so settings that need other sigma (churn, a sigma range off the ladder) are refused")

    def raw(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """The network's raw output at one sigma, or (continuous models) at one sigma per sample ((N,) tensor)."""
        n = x.shape[0]
        if isinstance(sigma, torch.Tensor):
            if not self.continuous:
                raise ValueError(f"{self.name} knows only its ladder's sigma; a sigma per sample needs a "
                                 f"continuous model")
            sig = sigma.to(device=x.device, dtype=torch.float32).reshape(n)
            lev = (self.ladder.to(x.device).log()[None] - sig.double().log()[:, None]).abs().argmin(1)
            return self.net(x, sig, lev)
        sig = torch.full((n,), sigma, dtype=torch.float32, device=x.device)
        lev = torch.full((n,), self.level(sigma), dtype=torch.long, device=x.device)
        return self.net(x, sig, lev)

    def score(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """s(x, sigma), float32; sigma one float or (continuous models) an (N,) tensor of one per sample."""
        if isinstance(sigma, torch.Tensor):
            h = self.raw(x, sigma).float()
            if not self.inv_sigma:
                return h
            return h / sigma.to(device=x.device, dtype=torch.float32).view(-1, *([1] * (x.dim() - 1)))
        return self.raw(x, sigma).float() * self.scale(sigma)

    def level_score(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """The score at the model's Langevin level `level` (an index into `levels`), as its network computes it."""
        if self._level_score is not None:
            return self._level_score(x, level)
        return self.score(x, float(self.levels[level]))

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """D(x, sigma) = x + sigma^2 s(x, sigma), float32."""
        return x + sigma ** 2 * self.score(x, sigma)

    @classmethod
    def from_model(cls, model: torch.nn.Module, dtype: torch.dtype | None = None,
                   channels_last: bool = False, config=None) -> Denoiser:
        """The view of one of our networks (NCSN v1: ladder-only; NCSNv2: continuous, score = raw / sigma).
        dtype / channels_last: how x is handed to the network (the fast path's copy of it); config: the sampling
        settings to use (annealed Langevin's levels), default the network's own."""
        cfg = config if config is not None else model.config
        fmt = torch.channels_last if channels_last else torch.contiguous_format

        def net(x, sigma, level):
            return model(x.to(dtype=dtype or x.dtype, memory_format=fmt), level, raw=True)

        def level_score(x, level):  # the network's own score, 1/sigma applied inside it (NCSNv2)
            labels = torch.full((x.shape[0],), level, dtype=torch.long, device=x.device)
            return model(x.to(dtype=dtype or x.dtype, memory_format=fmt), labels)
        centre = 0.0 if (cfg.data.logit_transform or cfg.data.rescaled) else 0.5
        conditional = cfg.family == "ncsn"
        levels = cfg.sampling_sigmas()
        return cls(net, cfg.sigmas(torch.float64), continuous=not conditional, inv_sigma=not conditional,
                   centre=centre, name=f"{cfg.arch} ({'NCSN v1' if conditional else 'NCSNv2'})", levels=levels,
                   level_scales=model.score_scales()[: len(levels)], level_score=level_score,
                   to_model_space=lambda u: data_transform(u, cfg))

    @classmethod
    def from_ncsnpp(cls, model: torch.nn.Module, dtype: torch.dtype | None = None,
                    channels_last: bool = False, config=None) -> Denoiser:
        """The view of an NCSN++ of the score-SDE code: continuous (its Gaussian Fourier embedding takes sigma)
        or ladder-only (its positional embedding takes the level index into its `sigmas`). dtype /
        channels_last: how x is handed to the network (the fast path's copy of it)."""
        cfg = model.config
        if not cfg["model"].get("scale_by_sigma", False):
            raise ValueError("NCSN++ without scale_by_sigma (not a VE score network) is not supported")
        continuous = model.embedding_type == "fourier"
        fmt = torch.channels_last if channels_last else torch.contiguous_format

        def net(x, sigma, level):
            return model(x.to(dtype=dtype or x.dtype, memory_format=fmt), sigma if continuous else level)
        name = f"NCSN++ ({'continuous' if continuous else 'discrete'}, {cfg['data'].get('dataset', '?')})"
        centered = bool(cfg["data"].get("centered"))
        return cls(net, model.sigmas.detach().double().cpu(), continuous=continuous, inv_sigma=False,
                   centre=0.0 if centered else 0.5, name=name,
                   to_model_space=(lambda u: 2 * u - 1.0) if centered else None)

    @classmethod
    def of(cls, model: torch.nn.Module, dtype: torch.dtype | None = None, channels_last: bool = False,
           config=None) -> Denoiser:
        """from_ncsnpp or from_model, whichever family `model` is."""
        from ..models import is_ncsnpp
        if is_ncsnpp(model):
            return cls.from_ncsnpp(model, dtype, channels_last)
        return cls.from_model(model, dtype, channels_last, config)

    @classmethod
    def from_function(cls, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sigma_min: float,
                      sigma_max: float, *, kind: str = "score", centre: float = 0.0,
                      name: str = "the score function", levels=None) -> Denoiser:
        """A plain callable fn(x, sigma) with sigma an (N,) float32 tensor: a score s(x, sigma) (kind='score')
        or a denoiser D(x, sigma) (kind='denoiser'); any sigma in [sigma_min, sigma_max] is valid. levels: the
        noise levels annealed Langevin iterates (default: sigma_max, sigma_min)."""
        if kind not in ("score", "denoiser"):
            raise ValueError(f"kind must be 'score' or 'denoiser', got {kind!r}")
        if not 0 < sigma_min <= sigma_max:
            raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")

        def net(x, sigma, level):
            out = fn(x, sigma)
            if out.shape != x.shape:
                raise ValueError(f"{name} returned shape {tuple(out.shape)} for x of shape {tuple(x.shape)}")
            if kind == "score":
                return out
            s2 = sigma.view(-1, *([1] * (x.dim() - 1))).to(out.dtype) ** 2
            return (out - x) / s2
        ladder = [sigma_max] if sigma_max == sigma_min else [sigma_max, sigma_min]
        return cls(net, ladder, continuous=True, inv_sigma=False, centre=centre, name=name, levels=levels)
