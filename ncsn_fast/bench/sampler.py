"""The sampler suite of `ncsn-fast bench`: annealed Langevin per step (the original algorithm eager, under
torch.compile, and ours: its table of fused updates, graphed or not, float32 / bfloat16), and the other samplers'
full runs on our fast path, on the same model, batch and device."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import torch

from ..ops._backends import why_not
from .forward import published_ncsnv2
from .timing import time_fn


def _ours_variants(gpu: bool, k: int) -> list[tuple[str, torch.dtype, str, bool, int]]:
    """(name, network dtype, backend, CUDA graph, steps per graph) of our sampler rows. On a GPU: both backends
    with and without graphs, and one graph of a step against one graph holding all k timed steps (the
    whole-run form: the host then launches one graph for the run)."""
    if not gpu:
        return [(f"ours {str(dt).removeprefix('torch.')}", dt, "auto", False, 1)
                for dt in (torch.float32, torch.bfloat16)]  # bf16 pays on CPUs with AVX512-BF16/AMX too
    rows = []
    for backend in ("triton", "cuda"):  # the faster first (the one `auto` picks)
        if why_not(backend, torch.device("cuda")) is None:
            rows += [(f"ours float32, {backend}, no graph", torch.float32, backend, False, 1),
                     (f"ours float32, {backend}, graph of 1 step", torch.float32, backend, True, 1)]
    best = rows[0][2] if rows else "auto"
    return rows + [(f"ours float32, {best}, one graph of {k} steps", torch.float32, best, True, k),
                   (f"ours bfloat16, {best}, graph of 1 step", torch.bfloat16, best, True, 1),
                   (f"ours bfloat16, {best}, one graph of {k} steps", torch.bfloat16, best, True, k)]


SAMPLER_MODELS = {"cifar10": ("CIFAR-10", "CIFAR10"), "celeba": ("CelebA 64", "CELEBA")}


def bench_sampler(device: torch.device, quick: bool = False, compile_modes: tuple[str, ...] = (),
                  models: tuple[str, ...] | None = None, batches: tuple[int | str, ...] | None = None,
                  rows: list[dict] | None = None, flush: Callable[[], None] = lambda: None,
                  samplers: tuple[str, ...] | None = None, variants: tuple[str, ...] | None = None) -> list[dict]:
    """Annealed Langevin per step, NCSNv2 CIFAR-10 and CelebA-64 configs (random weights), same model, batch and
    device: the original algorithm in eager PyTorch, the same with torch.compile, and ours (fused; on CUDA
    both backends, graphed or not; float32 and bfloat16). Each runner is built once (its first call,
    compilation or capture included, is reported), then K steps of the real ladder are timed; images/s is
    for the config's full run (CIFAR-10: 232 levels x 5 steps + denoise = 1161 network evaluations; CelebA:
    2501). models / batches narrow the cases (e.g. to fit a time limit); batch 'max' is the largest
    power of two that fits (largest_batch). samplers: other samplers (default steps) timed over a whole run
    on our fast path (default heun and dpmpp-2m; none with quick); their 'vs eager' compares images/s with
    the original algorithm's. variants: which rows to time, of reference, compile, ours, samplers (all)."""
    from ..models import build_model

    gpu = device.type == "cuda"
    samplers = (() if quick else DEFAULT_SAMPLERS) if samplers is None else samplers
    variants = set(VARIANTS if variants is None else variants)
    if variants - set(VARIANTS):
        raise ValueError(f"unknown variant(s) {sorted(variants - set(VARIANTS))}: choose from {VARIANTS}")
    if quick:
        cases, k, repeat = [("cifar10", 8, 2)], 2, 1
    elif gpu:
        cases = [("cifar10", 128, b) for b in (1, 16, 128, 512)] + [("celeba", 128, b) for b in (1, 16, 128)]
        k, repeat = 20, 3
    else:
        cases, k, repeat = [("cifar10", 32, 16)], 4, 2
    if models:
        unknown = set(models) - set(SAMPLER_MODELS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}: choose from {sorted(SAMPLER_MODELS)}")
        cases = [c for c in cases if c[0] in models]
    if batches:
        ngf = {m: n for m, n, _ in cases}
        cases = [(m, ngf[m], b) for m in dict.fromkeys(m for m, _, _ in cases) for b in batches]
    rows = [] if rows is None else rows
    for model_key, ngf, batch in cases:
        data_name, dataset = SAMPLER_MODELS[model_key]
        cfg = published_ncsnv2(dataset, ngf)
        evals = cfg.model.num_classes * cfg.sampling.n_steps_each + int(cfg.sampling.denoise)
        size = cfg.data.image_size
        sig = cfg.sampling_sigmas()[:k]  # K steps: the first K levels, one step each
        step_lr = cfg.sampling.step_lr
        torch.manual_seed(0)
        model = build_model(cfg).to(device).eval()
        label = batch
        if batch == "max":
            batch = largest_batch(model, cfg, device)
            label = f"{batch} (max)"
        x0 = torch.rand(batch, 3, size, size, device=device)
        ids = torch.arange(batch)
        # (name, make runner, evaluations per image, steps per timed call)
        runners = [("reference (eager, original algorithm)", partial(_reference_steps, model, x0, sig, step_lr),
                    evals, k)]
        if "compile" in variants:
            for mode in compile_modes:
                runners.append((f"reference + torch.compile ({mode})",
                                partial(_compiled_reference_steps, model, mode, x0, sig, step_lr), evals, k))
        if "ours" in variants:
            for name, dtype, backend, graph, per_graph in _ours_variants(gpu, k):
                runners.append((name, partial(_fast_steps, model, cfg, device, dtype, x0, ids, k, step_lr, backend,
                                              graph, per_graph), evals, k))
        # Both together: our loop and ops around a compiled network body (reduce-overhead's own CUDA graphs
        # cannot nest in ours, so on a GPU that mode is not combined).
        for mode in compile_modes if "compile" in variants and "ours" in variants else ():
            if gpu and mode == "reduce-overhead":
                continue
            graph_note = ", graph of 1 step" if gpu else ""
            runners.append((f"ours float32 + torch.compile ({mode}){graph_note}",
                            partial(_fast_steps, model, cfg, device, torch.float32, x0, ids, k, step_lr, "auto", None,
                                    1, mode), evals, k))
        if "samplers" in variants:
            for name in samplers:
                run_evals = _sampler_evals(model, cfg, name)
                runners.append((f"{name} ({run_evals} evals/image), ours float32{', graphed' if gpu else ''}",
                                partial(_sampler_run, model, cfg, device, batch, name), run_evals, run_evals))
        if "reference" not in variants:
            runners = runners[1:]
        base = None  # images/s of the first row (the original algorithm, eager, unless left out)
        for name, make, run_evals, steps in runners:
            if gpu:
                torch.cuda.synchronize(device)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            run = make()  # builds the runner and makes its first call
            if gpu:
                torch.cuda.synchronize(device)
            first = time.perf_counter() - t0
            t = time_fn(run, device, warmup=0, repeat=repeat)
            ms_step = t["ms"] / steps
            images_per_s = batch / (ms_step * run_evals * 1e-3)
            base = base or images_per_s
            rows.append({"model": f"NCSNv2 {data_name} ngf {ngf}", "batch": label, "variant": name,
                         "ms_per_step": ms_step, "evals": run_evals,
                         "images_per_s": images_per_s, "speedup": images_per_s / base,
                         "first_call_s": first,
                         "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 1e9 if gpu else None})
            del run
        flush()  # the results so far, in case a time limit stops the run
    return rows


DEFAULT_SAMPLERS = ("heun", "dpmpp-2m")
VARIANTS = ("reference", "compile", "ours", "samplers")


def _sampler_evals(model, cfg, name: str) -> int:
    from ..sampling import Denoiser, SamplerSettings, plan
    return plan(SamplerSettings(name), Denoiser.from_model(model), cfg).evals


def _sampler_run(model, cfg, device, batch, name):
    """A whole run of sampler `name` (its default steps) on our fast path, graphed on a GPU."""
    from ..sampling import Sampler, SamplerSettings
    fs = Sampler(model, cfg, SamplerSettings(name), device=device)
    ids = torch.arange(batch)
    run = partial(fs, ids, None, fs.initial_state(ids))  # the start drawn once: the timing is the sampler's
    run()
    return run


def largest_batch(model: torch.nn.Module, cfg, device: torch.device, cap: int = 8192) -> int:
    """The largest power-of-two batch whose eager evaluation of `model` (the most memory-hungry runner) peaks
    under 80 % of the GPU's memory, as `generate --batch-size auto` picks; on the CPU the config's batch."""
    from ..generate import auto_batch_size

    @torch.no_grad()
    def probe(b: int) -> None:  # zeros: memory does not depend on the values, and the RNG stays untouched
        model(torch.zeros(b, *cfg.image_shape, device=device), torch.zeros(b, dtype=torch.long, device=device))
    return auto_batch_size(SimpleNamespace(probe=probe), cfg, device, cap)


def _reference_steps(model, x0, sig, step_lr):
    from ..sampling import model_score
    run = partial(anneal_langevin_steps, model_score(model), x0, sig, step_lr)
    run()
    return run


def _compiled_reference_steps(model, mode, x0, sig, step_lr):
    torch._dynamo.reset()
    compiled = torch.compile(model, mode=None if mode == "default" else mode)
    return _reference_steps(compiled, x0, sig, step_lr)


def anneal_langevin_steps(score, x0, sig, step_lr):
    from ..sampling import anneal_langevin, torch_noise
    with torch.no_grad():
        return anneal_langevin(score, x0, sig, n_steps_each=1, step_lr=step_lr, noise=torch_noise())


def _fast_steps(model, cfg, device, dtype, x0, ids, k, step_lr, backend="auto", graph=None, steps_per_graph=1,
                compile_mode=None):
    """K steps of annealed Langevin's table (one step on each of K levels, no denoising) on our fast path."""
    from ..sampling import Sampler, SamplerSettings
    if compile_mode is not None:
        torch._dynamo.reset()
    short = cfg.replace(model=dataclasses.replace(cfg.model, num_classes=k))
    runner = Sampler(model, short, SamplerSettings("ald", n_steps_each=1, step_lr=step_lr, denoise=False),
                     device=device, dtype=dtype, backend=backend, graph=graph, steps_per_graph=steps_per_graph,
                     compile_mode=compile_mode)
    # the ladder of `short` is not the first K levels of cfg, but the cost per step does not depend on sigma
    run = partial(runner, ids, None, x0)
    run()
    return run
