"""Denoising score matching training, what every family shares: the step (bf16 autocast, gradient clipping, the
optimizer, the EMA), DistributedDataParallel, the random draws, atomic checkpoints and exact resume. A family
(ncsn.py: NCSN / NCSNv2; score_sde.py: NCSN++ of the score-SDE code) gives its network, optimizer, EMA, data
transform, objective and checkpoint layout; `Trainer(config, ...)` picks it from the config.

Multi-process (torchrun + DistributedDataParallel): rank r of W is given its shard of the global batch
(`data.batch_at(..., shard=(r, W))`). Every random draw (noise levels, noise, dequantisation) is made for the whole
global batch from a generator seeded alike on every rank, and each rank keeps its rows; DDP averages the
gradients of the per-shard mean losses, which is the gradient of the global mean. So W processes train the same
model as one process with the global batch (up to the rounding of the gradient all-reduce). Only rank 0 writes.

The checkpoint files hold what the original code writes and reads; the trainer's own state (the random
generator) goes to `trainer_state.pt` beside them, so they stay loadable by the original code. Writes are atomic.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
import torch.distributed as dist

from ..checkpoints import atomic_torch_save
from ..errors import CheckpointError
from ..fileio import atomic_write_bytes


class EMAHelper:
    """Exponential moving average of the parameters that train: shadow <- (1 - mu) p + mu shadow (NCSNv2's
    EMAHelper); warmup=True: the score-SDE code's, with mu capped by (1 + k) / (10 + k) at the k-th update and the
    update written shadow <- shadow - (1 - mu) (shadow - p)."""

    def __init__(self, model: torch.nn.Module, mu: float, warmup: bool = False):
        self.mu, self.warmup, self.num_updates = mu, warmup, 0
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        mu = self.mu
        if self.warmup:
            self.num_updates += 1
            mu = min(mu, (1 + self.num_updates) / (10 + self.num_updates))
        for n, p in model.named_parameters():
            if n in self.shadow:
                if self.warmup:
                    self.shadow[n].sub_((1.0 - mu) * (self.shadow[n] - p.detach()))
                else:
                    self.shadow[n].copy_((1.0 - mu) * p.detach() + mu * self.shadow[n])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.detach().cpu().clone() for n, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for n, t in self.shadow.items():
            t.copy_(state[n])


class Trainer:
    """DSM training of the config's network; call `train_step(x)` with batches of images in [0, 1].
    Trainer(config, ...) is the family's trainer (NcsnTrainer or ScoreSdeTrainer)."""

    config_name = "config.yml"  # the config file written beside the checkpoints
    family: str | None = None  # a subclass's config family; the one with None takes the rest
    _families: dict[str | None, type[Trainer]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Trainer._families[cls.family] = cls

    def __new__(cls, config, *args, **kwargs):
        if cls is Trainer:
            family = getattr(config, "family", None)
            cls = Trainer._families.get(family) or Trainer._families[None]
        return super().__new__(cls)

    def __init__(self, config, out_dir: str | Path, *, device: str | torch.device = "cpu", seed: int = 0,
                 amp: bool = False, grad_clip: float | None = None, distributed: bool = False):
        self.config, self.out_dir = config, Path(out_dir)
        self.device = torch.device(device)
        self.amp, self.grad_clip = amp, grad_clip
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        torch.manual_seed(seed)  # the initial weights, alike on every rank
        self.model = self.build_model().to(self.device).train()
        self.net = self.model  # what the loss calls: the DDP wrapper when distributed
        if distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = self.make_optimizer()
        self.ema = self.make_ema()
        self.generator = torch.Generator(self.device).manual_seed(seed + 1)  # levels, noise, dequantisation
        self.step = 0
        self.saved_step: int | None = None  # the step of checkpoint.pth on disk

    # The family's part.
    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def make_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    def make_ema(self) -> EMAHelper | None:
        raise NotImplementedError

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the network's data space (dequantised as the original does)."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The objective on prepared data (its draws from `_draw`), averaged over this rank's rows."""
        raise NotImplementedError

    def before_step(self) -> None:
        """Called before each optimizer step (a learning-rate warm-up)."""

    def checkpoint_state(self):
        """What the checkpoint file holds, in the original code's layout."""
        raise NotImplementedError

    def load_checkpoint_state(self, state) -> int:
        """Weights, optimizer and EMA from a checkpoint_state(); returns its step."""
        raise NotImplementedError

    def config_bytes(self) -> bytes:
        raise NotImplementedError

    # Shared.
    def _draw(self, fn, shape: tuple[int, ...], **kwargs) -> torch.Tensor:
        """fn(global shape) from the shared generator, then this rank's rows (all of them in one process)."""
        n = shape[0]
        full = fn((n * self.world_size, *shape[1:]), device=self.device, generator=self.generator, **kwargs)
        return full[self.rank * n:(self.rank + 1) * n]

    def train_step(self, x: torch.Tensor) -> torch.Tensor:
        """One optimizer step on batch x (this rank's shard); returns the loss of the global batch (a device
        tensor: no host sync here)."""
        x = self.prepare(x.to(self.device, torch.float32))
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp
                    else contextlib.nullcontext())
        with autocast:
            loss = self.loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.before_step()
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
        """checkpoint_<step>.pth + checkpoint.pth (the original layout), the config, trainer_state.pt.
        Rank 0 writes; the other ranks only return the path. trainer_state.pt comes first and holds the generator
        of this step and of the step checkpoint.pth holds until it is replaced, so a kill between any two writes
        leaves a pair that resumes (each write atomic and durable)."""
        state = self.checkpoint_state()
        path = self.out_dir / f"checkpoint_{self.step}.pth"
        if self.rank != 0:
            return path
        generators = {self.step: self.generator.get_state()}
        if self.saved_step is not None and self.saved_step != self.step:
            generators[self.saved_step] = self._saved_generator
        atomic_write_bytes(self.out_dir / self.config_name, self.config_bytes())
        atomic_torch_save({"generators": generators}, self.out_dir / "trainer_state.pt", durable=True)
        atomic_torch_save(state, path, durable=True)
        atomic_torch_save(state, self.out_dir / "checkpoint.pth", durable=True)
        self.saved_step, self._saved_generator = self.step, generators[self.step]
        return path

    @classmethod
    def resume(cls, config, out_dir: str | Path, **kwargs) -> Trainer:
        """A trainer continuing exactly where the last save in out_dir left off."""
        out_dir = Path(out_dir)
        trainer = cls(config, out_dir, **kwargs)
        ckpt, extra = out_dir / "checkpoint.pth", out_dir / "trainer_state.pt"
        if not ckpt.is_file() or not extra.is_file():
            raise CheckpointError(f"nothing to resume in {out_dir}: checkpoint.pth and trainer_state.pt are needed")
        step = trainer.load_checkpoint_state(torch.load(ckpt, map_location="cpu", weights_only=True))
        own = torch.load(extra, map_location="cpu", weights_only=True)
        generators = own.get("generators") or {own.get("step"): own.get("generator")}  # older runs: one step
        if step not in generators:
            raise CheckpointError(f"{extra} holds steps {sorted(generators)} but {ckpt} is from step {step}")
        trainer.step = trainer.saved_step = step
        trainer._saved_generator = generators[step]
        trainer.generator.set_state(generators[step])
        return trainer
