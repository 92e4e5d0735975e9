"""Denoising score matching training: Adam and EMA as in the originals, bf16 autocast, gradient clipping,
checkpoints in the original NCSNv2 list layout with the config beside them, exact resume.

Checkpoint `checkpoint_<step>.pth` (and `checkpoint.pth`, the latest) holds what the original NCSNv2 code
writes and reads: [model.state_dict() with DataParallel's `module.` prefix, optimizer.state_dict(), epoch,
step] + [EMA shadow] when model.ema. The trainer's own state (the random generator) goes to
`trainer_state.pt` beside it, so the list stays loadable by the original code. Writes are atomic.

Multi-process (torchrun + DistributedDataParallel): rank r of W is given its shard of the global batch
(`data.batch_at(..., shard=(r, W))`). Every random draw (labels, noise, dequantisation) is made for the whole
global batch from a generator seeded alike on every rank, and each rank keeps its rows; DDP averages the
gradients of the per-shard mean losses, which is the gradient of the global mean. So W processes train
the same model as one process with the global batch (up to the rounding of the gradient all-reduce).
Only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from .checkpoints import atomic_torch_save, strip_prefix
from .config import Config
from .errors import CheckpointError
from .fileio import atomic_write_bytes
from .losses import dsm_loss
from .models import build_model


class EMAHelper:
    """Exponential moving average of the parameters: shadow <- (1 - mu) p + mu shadow (NCSNv2's EMAHelper)."""

    def __init__(self, model: torch.nn.Module, mu: float):
        self.mu = mu
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].copy_((1.0 - self.mu) * p.detach() + self.mu * self.shadow[n])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.detach().cpu().clone() for n, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for n, t in self.shadow.items():
            t.copy_(state[n])


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    """Adam with the original runners' settings (beta2 0.999)."""
    o = config.optim
    if o.optimizer != "Adam":
        raise ValueError(f"optimizer {o.optimizer!r} is not supported (the published configs use Adam)")
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, betas=(o.beta1, 0.999), amsgrad=o.amsgrad,
                            eps=o.eps)


class Trainer:
    """DSM training of the config's network; call `train_step(x)` with batches of images in [0, 1]."""

    def __init__(self, config: Config, out_dir: str | Path, *, device: str | torch.device = "cpu", seed: int = 0,
                 amp: bool = False, grad_clip: float | None = None, distributed: bool = False):
        self.config, self.out_dir = config, Path(out_dir)
        self.device = torch.device(device)
        self.amp, self.grad_clip = amp, grad_clip
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        torch.manual_seed(seed)  # the initial weights, alike on every rank
        self.model = build_model(config).to(self.device).train()
        self.net = self.model  # what the loss calls: the DDP wrapper when distributed
        if distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(config, self.model.parameters())
        self.ema = EMAHelper(self.model, config.model.ema_rate) if config.model.ema else None
        self.sigmas = config.sigmas(torch.float32).to(self.device)
        self.generator = torch.Generator(self.device).manual_seed(seed + 1)  # labels, noise, dequantisation
        self.step = 0
        self.saved_step: int | None = None  # the step of checkpoint.pth on disk

    def _draw(self, fn, shape: tuple[int, ...], **kwargs) -> torch.Tensor:
        """fn(global shape) from the shared generator, then this rank's rows (all of them in one process)."""
        n = shape[0]
        full = fn((n * self.world_size, *shape[1:]), device=self.device, generator=self.generator, **kwargs)
        return full[self.rank * n:(self.rank + 1) * n]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Dequantisation and data transform as the original runners (NCSN v1 always dequantises)."""
        x = x.to(self.device, torch.float32)
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

    def train_step(self, x: torch.Tensor) -> torch.Tensor:
        """One optimizer step on batch x (this rank's shard); returns the loss of the global batch (a device
        tensor: no host sync here)."""
        x = self.prepare(x)
        # Draw order as in NCSNv2's loss: labels, then noise.
        labels = self._draw(lambda shape, **kw: torch.randint(0, len(self.sigmas), shape, **kw), (x.shape[0],))
        noise = self._draw(torch.randn, x.shape)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp
                    else contextlib.nullcontext())
        with autocast:
            loss = dsm_loss(self.net, x, self.sigmas, labels=labels, noise=noise,
                            anneal_power=self.config.training.anneal_power)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        loss = loss.detach()
        if self.world_size > 1:
            dist.all_reduce(loss)
            loss /= self.world_size
        return loss

    def ema_model(self) -> torch.nn.Module:
        """A copy of the network in eval mode with the EMA weights (the raw ones without EMA)."""
        model = copy.deepcopy(self.model).eval()
        if self.ema is not None:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, t in self.ema.shadow.items():
                    params[name].copy_(t)
        return model

    def save(self) -> Path:
        """checkpoint_<step>.pth + checkpoint.pth (original list layout), config.yml, trainer_state.pt.
        Rank 0 writes; the other ranks only return the path. trainer_state.pt comes first and holds the generator
        of this step and of the step checkpoint.pth holds until it is replaced, so a kill between any two writes
        leaves a pair that resumes (each write atomic and durable)."""
        state = [{f"module.{k}": v.detach().cpu() for k, v in self.model.state_dict().items()},
                 self.optimizer.state_dict(), 0, self.step]
        if self.ema is not None:
            state.append(self.ema.state_dict())
        path = self.out_dir / f"checkpoint_{self.step}.pth"
        if self.rank != 0:
            return path
        generators = {self.step: self.generator.get_state()}
        if self.saved_step is not None and self.saved_step != self.step:
            generators[self.saved_step] = self._saved_generator
        atomic_write_bytes(self.out_dir / "config.yml", yaml.safe_dump(self.config.to_dict(), sort_keys=False).encode())
        atomic_torch_save({"generators": generators}, self.out_dir / "trainer_state.pt", durable=True)
        atomic_torch_save(state, path, durable=True)
        atomic_torch_save(state, self.out_dir / "checkpoint.pth", durable=True)
        self.saved_step, self._saved_generator = self.step, generators[self.step]
        return path

    @classmethod
    def resume(cls, config: Config, out_dir: str | Path, **kwargs) -> Trainer:
        """A trainer continuing exactly where the last save in out_dir left off."""
        out_dir = Path(out_dir)
        trainer = cls(config, out_dir, **kwargs)
        ckpt, extra = out_dir / "checkpoint.pth", out_dir / "trainer_state.pt"
        if not ckpt.is_file() or not extra.is_file():
            raise CheckpointError(f"nothing to resume in {out_dir}: checkpoint.pth and trainer_state.pt are needed")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        trainer.model.load_state_dict(strip_prefix(state[0]))
        trainer.optimizer.load_state_dict(state[1])
        if trainer.ema is not None:
            trainer.ema.load_state_dict(state[4])
        own = torch.load(extra, map_location="cpu", weights_only=True)
        generators = own.get("generators") or {own.get("step"): own.get("generator")}  # older runs: one step
        if state[3] not in generators:
            raise CheckpointError(f"{extra} holds steps {sorted(generators)} but {ckpt} is from step {state[3]}")
        trainer.step = trainer.saved_step = state[3]
        trainer._saved_generator = generators[state[3]]
        trainer.generator.set_state(generators[state[3]])
        return trainer
