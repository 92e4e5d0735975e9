"""Running a loop of identical device-side steps in CUDA graphs: capture once, replay for the whole run.

A subclass keeps its whole state in static device buffers and defines `_step()` (one network evaluation and
its update, reading everything it needs, step counter included, from device memory). A graph of k
consecutive steps then serves every part of the run: the run is total / k replays of it, plus one-step
replays for a remainder, in one memory pool, with nothing for the host to do between replays.
capture=False runs exactly the same steps eagerly (any device).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch


class CapturedSteps:
    def __init__(self, device: torch.device, steps_per_graph: int = 1, capture: bool = True, warmup: int = 2):
        if capture and device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device (capture=False runs the loop eagerly)")
        if steps_per_graph < 1:
            raise ValueError(f"steps_per_graph must be >= 1, got {steps_per_graph}")
        self.device, self.k, self.capture, self.warmup = device, steps_per_graph, capture, warmup
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}  # steps per graph -> graph

    def _step(self) -> None:
        raise NotImplementedError

    def _steps(self, k: int) -> None:
        for _ in range(k):
            self._step()

    def _graph(self, k: int):
        """The graph of k steps, captured on first use (after warm-up steps; the run resets the state)."""
        if k not in self.graphs:
            pool = next(iter(self.graphs.values())).pool() if self.graphs else None
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: compile Triton kernels, pick cuDNN algorithms
                for _ in range(self.warmup):
                    self._step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self._steps(k)
            self.graphs[k] = graph
        return self.graphs[k]

    def _replay(self, k: int) -> None:
        if self.capture:
            self._graph(k).replay()
        else:
            self._steps(k)

    def _run(self, total: int, reset: Callable[[], None], progress: Callable[[int], object] | None,
             check: Callable[[], None] | None = None) -> None:
        """`total` steps from the state `reset()` sets (called again after any capture's warm-up moved it);
        check() is called whenever the host has waited for the device (every replay, two behind), and at the end.
        Captured and replayed with the state's device current (a capture and its replays run on the current
        device's streams), whichever device the caller had current."""
        with torch.cuda.device(self.device) if self.capture else nullcontext():
            self._run_steps(total, reset, progress, check)

    def _run_steps(self, total, reset, progress, check) -> None:
        k = min(self.k, total)
        chunks = [k] * (total // k) + [1] * (total % k)  # replays of the k-step graph, then one-step ones
        if self.capture:
            for size in sorted(set(chunks), reverse=True):
                reset()
                self._graph(size)
        reset()
        # The host stays at most two replays ahead of the device (the queue stays full), so a progress bar shows
        # work done, not work queued, and a check of the state is at most two replays late.
        done = []
        for size in chunks:
            self._replay(size)
            if self.capture:
                done.append(torch.cuda.Event())
                done[-1].record()
                if len(done) > 2:
                    done.pop(0).synchronize()
                    if check is not None:
                        check()
            elif check is not None:
                check()
            if progress is not None:
                progress(size)
        if check is not None:
            if done:
                done[-1].synchronize()
            check()
