"""NCSN++ training as the score-SDE code does it (Song et al. 2021, the VE SDE), checkpoints in its layout.

Continuous (training.continuous, the published *_continuous configs): t ~ U(eps, 1), eps = 1e-5, per sample,
sigma = sigma_min (sigma_max / sigma_min)^t (log-uniform), z ~ N(0, I), x~ = x + sigma z and

    loss = mean_batch reduce(|s(x~, sigma) sigma + z|^2)          (= sigma^2-weighted denoising score matching)

the network given sigma itself. Discrete (the SMLD objective): a level i ~ U{0..N-1} of the N geometric
sigma_i, the network given i, loss = mean_batch reduce(|s(x~, i) + z / sigma_i|^2) sigma_i^2. reduce: the sum over
pixels halved, or the mean over them (training.reduce_mean). Adam (beta2 0.999) with a linear warm-up of the
learning rate over optim.warmup steps (zero at step 0, as the original), gradient norm clipped to
optim.grad_clip, the EMA with its (1 + k) / (10 + k) warm-up; weights initialised as the original does.

Checkpoint `checkpoint_<step>.pth` (and `checkpoint.pth`) holds what the score-SDE code saves and restores:
{'optimizer', 'model' (DataParallel's `module.` names), 'ema': {'decay', 'num_updates', 'shadow_params'},
'step'}; config.json beside it (the resolved config), which the loader reads.
"""

from __future__ import annotations

import json

import torch

from ..checkpoints import strip_prefix
from ..errors import CheckpointError, ConfigError
from ..models.ncsnpp import NCSNpp
from .trainer import EMAHelper, Trainer

EPS = 1e-5  # the smallest t drawn (the score-SDE code's training eps)


class ScoreSdeTrainer(Trainer):
    """The NCSN++ family of the score-SDE code (VE SDE only: every NCSN++ we load is one)."""

    family = "ncsnpp"
    config_name = "config.json"

    def __init__(self, config, out_dir, *, grad_clip: float | None = None, **kwargs):
        optim = config.get("optim", {})
        if grad_clip is None and optim.get("grad_clip", -1) >= 0:
            grad_clip = optim["grad_clip"]
        super().__init__(config, out_dir, grad_clip=grad_clip, **kwargs)

    def build_model(self) -> torch.nn.Module:
        train = self.config.get("training", {})
        if train.get("sde", "vesde") != "vesde" or train.get("likelihood_weighting", False):
            raise ConfigError("NCSN++ training here is the VE SDE's denoising score matching (training.sde vesde, no "
                             "likelihood weighting)")
        model = NCSNpp(self.config)
        model.init_as_score_sde()
        self.continuous = bool(train.get("continuous", True))
        if self.continuous != (model.embedding_type == "fourier"):
            raise ConfigError(f"training.continuous {self.continuous} needs the "
                             f"{'fourier' if self.continuous else 'positional'} embedding, not "
                             f"{model.embedding_type}")
        self.reduce_mean = bool(train.get("reduce_mean", False))
        m = self.config["model"]
        self.sigma_min, self.sigma_max = float(m["sigma_min"]), float(m["sigma_max"])
        return model

    def make_optimizer(self) -> torch.optim.Optimizer:
        o = self.config.get("optim", {})
        if o.get("optimizer", "Adam") != "Adam":
            raise ConfigError(f"optimizer {o['optimizer']!r} is not supported (the published configs use Adam)")
        self.lr, self.warmup = float(o.get("lr", 2e-4)), int(o.get("warmup", 0))
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, betas=(o.get("beta1", 0.9), 0.999),
                                eps=o.get("eps", 1e-8), weight_decay=o.get("weight_decay", 0.0))

    def make_ema(self) -> EMAHelper:
        return EMAHelper(self.model, self.config["model"].get("ema_rate", 0.999), warmup=True)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The score-SDE data pipeline's dequantisation and scaler: [0, 1], or [-1, 1] when data.centered."""
        d = self.config["data"]
        if d.get("uniform_dequantization", False):
            x = (self._draw(torch.rand, x.shape) + x * 255.0) / 256.0
        return 2 * x - 1.0 if d.get("centered", False) else x

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        view = (n, *([1] * (x.dim() - 1)))
        if self.continuous:
            t = self._draw(torch.rand, (n,)) * (1.0 - EPS) + EPS
            sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
            z = self._draw(torch.randn, x.shape)
            score = self.net(x + sigma.view(view) * z, sigma)
            losses = self._reduce(torch.square(score * sigma.view(view) + z))
        else:
            sigmas = self.model.sigmas.to(torch.float32)
            labels = self._draw(lambda shape, **kw: torch.randint(0, len(sigmas), shape, **kw), (n,))
            sigma = sigmas[labels]
            noise = self._draw(torch.randn, x.shape) * sigma.view(view)
            score = self.net(x + noise, labels)
            losses = self._reduce(torch.square(score + noise / sigma.view(view) ** 2)) * sigma ** 2
        return losses.mean()

    def _reduce(self, per_pixel: torch.Tensor) -> torch.Tensor:
        flat = per_pixel.reshape(per_pixel.shape[0], -1)
        return flat.mean(dim=-1) if self.reduce_mean else 0.5 * flat.sum(dim=-1)

    def before_step(self) -> None:
        if self.warmup > 0:  # the learning rate at this step (the step count before it is taken)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * min(self.step / self.warmup, 1.0)

    def checkpoint_state(self) -> dict:
        shadow = [t.detach().cpu().clone() for t in self.ema.shadow.values()]
        return {"optimizer": self.optimizer.state_dict(),
                "model": {f"module.{k}": v.detach().cpu() for k, v in self.model.state_dict().items()},
                "ema": {"decay": self.ema.mu, "num_updates": self.ema.num_updates, "shadow_params": shadow},
                "step": self.step}

    def load_checkpoint_state(self, state) -> int:
        self.model.load_state_dict(strip_prefix(state["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        ema = state["ema"]
        if len(ema["shadow_params"]) != len(self.ema.shadow):
            raise CheckpointError(f"the checkpoint's EMA holds {len(ema['shadow_params'])} tensors, the network trains "
                             f"{len(self.ema.shadow)}")
        self.ema.load_state_dict(dict(zip(self.ema.shadow, ema["shadow_params"])))
        self.ema.num_updates = int(ema["num_updates"])
        return int(state["step"])

    def config_bytes(self) -> bytes:
        return json.dumps(self.config.to_dict(), indent=1).encode()

