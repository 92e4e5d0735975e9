"""NCSN / NCSNv2 training as the originals do it: denoising score matching over the config's ladder (labels,
then noise, as NCSNv2's loss draws them), Adam, EMA, and checkpoints in the original NCSNv2 list layout.

Checkpoint `checkpoint_<step>.pth` (and `checkpoint.pth`, the latest) holds what the original NCSNv2 code
writes and reads: [model.state_dict() with DataParallel's `module.` prefix, optimizer.state_dict(), epoch,
step] + [EMA shadow] when model.ema; config.yml beside it.
"""

from __future__ import annotations

import torch
import yaml

from ..checkpoints import strip_prefix
from ..config import Config
from ..losses import dsm_loss
from ..models import build_model
from .trainer import EMAHelper, Trainer


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    """Adam with the original runners' settings (beta2 0.999)."""
    o = config.optim
    if o.optimizer != "Adam":
        raise ValueError(f"optimizer {o.optimizer!r} is not supported (the published configs use Adam)")
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, betas=(o.beta1, 0.999), amsgrad=o.amsgrad,
                            eps=o.eps)


class NcsnTrainer(Trainer):
    """The NCSN / NCSNv2 family: the config's RefineNet, its sigma ladder, anneal_power-weighted DSM."""

    def build_model(self) -> torch.nn.Module:
        self.sigmas = self.config.sigmas(torch.float32).to(self.device)
        return build_model(self.config)

    def make_optimizer(self) -> torch.optim.Optimizer:
        return make_optimizer(self.config, self.model.parameters())

    def make_ema(self) -> EMAHelper | None:
        m = self.config.model
        return EMAHelper(self.model, m.ema_rate) if m.ema else None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Dequantisation and data transform as the original runners (NCSN v1 always dequantises)."""
        d = self.config.data
        if d.uniform_dequantization:
            x = x / 256.0 * 255.0 + self._draw(torch.rand, x.shape) / 256.0
        if d.gaussian_dequantization:
            x = x + self._draw(torch.randn, x.shape) * 0.01
        if d.rescaled:
            x = 2 * x - 1.0
        elif d.logit_transform:
            lam = 1e-6
            x = lam + (1 - 2 * lam) * x
            x = torch.log(x) - torch.log1p(-x)
        return x

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        # Draw order as in NCSNv2's loss: labels, then noise.
        labels = self._draw(lambda shape, **kw: torch.randint(0, len(self.sigmas), shape, **kw), (x.shape[0],))
        noise = self._draw(torch.randn, x.shape)
        return dsm_loss(self.net, x, self.sigmas, labels=labels, noise=noise,
                        anneal_power=self.config.training.anneal_power)

    def checkpoint_state(self) -> list:
        state = [{f"module.{k}": v.detach().cpu() for k, v in self.model.state_dict().items()},
                 self.optimizer.state_dict(), 0, self.step]
        if self.ema is not None:
            state.append(self.ema.state_dict())
        return state

    def load_checkpoint_state(self, state) -> int:
        self.model.load_state_dict(strip_prefix(state[0]))
        self.optimizer.load_state_dict(state[1])
        if self.ema is not None:
            self.ema.load_state_dict(state[4])
        return state[3]

    def config_bytes(self) -> bytes:
        return yaml.safe_dump(self.config.to_dict(), sort_keys=False).encode()
