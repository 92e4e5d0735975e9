"""GPU-only checks (marked `gpu`, skipped without CUDA): every GPU backend against the reference at real
sizes, CUDA-graph replays drawing fresh noise, and the fixture models with fused norms on the device.
Run them with scripts/gpu_check.sh (TRITON_INTERPRET=0, so Triton compiles for the GPU)."""

import pytest
import torch
from conftest import VARIANTS, fixture_path, load_fixture, skip_unless_backend

from ncsn_fast import load_checkpoint
from ncsn_fast.models import set_backend
from ncsn_fast.ops import (
    elu,
    group_norm_act,
    group_norm_act_ref,
    instance_norm_plus,
    instance_norm_plus_ref,
    langevin_coefs,
    philox_normal,
    philox_normal_ref,
    philox_words_ref,
    pool5x5,
    pool5x5_ref,
    sampler_update_,
)
from ncsn_fast.ops._backends import ext

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
DEV = torch.device("cuda")
GPU_BACKENDS = ["cuda", "triton"]



@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_philox_words_and_normals(backend):
    skip_unless_backend(backend, DEV)
    ids = torch.arange(2 ** 32 - 64, 2 ** 32 + 64, device=DEV)  # crosses the 32-bit sample boundary
    numel = 3 * 32 * 32
    ref_words = philox_words_ref(2 ** 40 + 3, 17, ids.cpu(), numel)
    if backend == "cuda":
        words = torch.empty(ids.shape[0], numel, dtype=torch.int64, device=DEV)
        seed, step = torch.tensor([2 ** 40 + 3], device=DEV), torch.tensor([17], device=DEV)
        ext().philox_cuda(words.data_ptr(), ids.data_ptr(), ids.shape[0], numel, seed.data_ptr(), step.data_ptr(),
                          True, torch.cuda.current_stream().cuda_stream)
    else:
        from ncsn_fast.kernels.philox import philox_triton
        words = torch.empty(ids.shape[0], numel, dtype=torch.int64, device=DEV)
        philox_triton(words, ids, torch.tensor([2 ** 40 + 3], device=DEV), torch.tensor([17], device=DEV), words=True)
    assert torch.equal(words.cpu(), ref_words)
    z = philox_normal(2 ** 40 + 3, 17, ids, numel, backend=backend)
    assert (z.cpu() - philox_normal_ref(2 ** 40 + 3, 17, ids.cpu(), numel)).abs().max() <= 1e-6


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_langevin_row_real_size(backend, dtype, channels_last):
    """Annealed Langevin's row of the sampler update at a real size: x + (a c) h + b z, p left as it was."""
    skip_unless_backend(backend, DEV)
    g = torch.Generator().manual_seed(0)
    x0, h = torch.randn(128, 3, 32, 32, generator=g), torch.randn(128, 3, 32, 32, generator=g).to(dtype)
    ids, coefs = torch.arange(128), langevin_coefs(0.3, 1 / 0.05)
    hd = h.to(DEV)
    if channels_last:
        hd = hd.to(memory_format=torch.channels_last)
    x, p = x0.to(DEV), torch.zeros(x0.shape, device=DEV)
    sampler_update_(x, p, hd, coefs.to(DEV), torch.ones(128, 2, device=DEV), seed=5, step=9, sample_ids=ids.to(DEV),
                    backend=backend)
    z = philox_normal_ref(5, 9, ids, 3072).view(x0.shape)
    ref = (x0 + coefs[1] * h.float()) + coefs[3] * z
    scale = (x0.abs() + 20 * h.float().abs()).max()
    assert (x.cpu() - ref).abs().max() <= coefs[3] * 1e-6 + 8 * torch.finfo(torch.float32).eps * scale
    assert not p.any()


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("shape", [(8, 128, 32, 32), (8, 256, 16, 16), (2, 512, 8, 8), (4, 8, 64, 64)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_instance_norm_plus_real_size(backend, shape, dtype, channels_last):
    skip_unless_backend(backend, DEV)
    g = torch.Generator().manual_seed(1)
    n, c = shape[:2]
    x = (torch.randn(shape, generator=g) + 0.5).to(dtype)
    gamma, alpha, beta = 1 + 0.2 * torch.randn(c, generator=g), 1 + 0.2 * torch.randn(c, generator=g), \
        0.2 * torch.randn(c, generator=g)
    xd = x.to(DEV)
    if channels_last:
        xd = xd.to(memory_format=torch.channels_last)
    out = instance_norm_plus(xd, gamma.to(DEV), alpha.to(DEV), beta.to(DEV), elu=True, backend=backend)
    ref64 = instance_norm_plus_ref(x.double(), gamma.double(), alpha.double(), beta.double(), elu=True)
    ref = instance_norm_plus_ref(x.float(), gamma, alpha, beta, elu=True).to(dtype)
    atol = 4 * torch.finfo(dtype).eps * ref64.abs().max() + 1e-5 * ref64.abs().max()
    assert (out.cpu().double() - ref64).abs().max() <= 2 * (ref.double() - ref64).abs().max() + atol


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("shape", [(8, 128, 32, 32, 32), (8, 256, 16, 16, 32), (2, 16, 256, 256, 4)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_group_norm_act_real_size(backend, shape, dtype, channels_last):
    """NCSN++'s norms at CIFAR-10 sizes and a 256-pixel level, with the embedding add and the SiLU."""
    skip_unless_backend(backend, DEV)
    g = torch.Generator().manual_seed(2)
    n, c, hh, ww, groups = shape
    x = (torch.randn(n, c, hh, ww, generator=g) + 0.5).to(dtype)
    weight, bias = 1 + 0.3 * torch.randn(c, generator=g), 0.3 * torch.randn(c, generator=g)
    add = 0.5 * torch.randn(n, c, generator=g)
    xd = x.to(DEV)
    if channels_last:
        xd = xd.to(memory_format=torch.channels_last)
    out = group_norm_act(xd, weight.to(DEV), bias.to(DEV), groups, 1e-6, add.to(DEV), True, backend=backend)
    ref64 = group_norm_act_ref(x.double(), weight.double(), bias.double(), groups, 1e-6, add.double())
    ref = group_norm_act_ref(x.float(), weight, bias, groups, 1e-6, add).to(dtype)
    atol = 4 * torch.finfo(dtype).eps * ref64.abs().max() + 1e-5 * ref64.abs().max()
    assert (out.cpu().double() - ref64).abs().max() <= 2 * (ref.double() - ref64).abs().max() + atol


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_graph_replay_draws_fresh_noise(backend):
    """Seed and step live in device memory: one captured step replays with new noise every time."""
    skip_unless_backend(backend, DEV)
    n, ids = 16, torch.arange(16, device=DEV)
    x = torch.zeros(n, 3, 8, 8, device=DEV)
    h = torch.zeros_like(x)
    seed, step = torch.tensor([7], device=DEV), torch.tensor([0], device=DEV)
    coefs = langevin_coefs(0.0, 1.0, 1.0, device=DEV)  # x <- x + z
    p, mult = torch.zeros_like(x), torch.ones(n, 2, device=DEV)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm up (compiles Triton) outside the capture
        sampler_update_(x, p, h, coefs, mult, seed=seed, step=step, sample_ids=ids, backend=backend)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        sampler_update_(x, p, h, coefs, mult, seed=seed, step=step, sample_ids=ids, backend=backend)
    draws = []
    for t in range(3):
        x.zero_()
        step.fill_(t)
        graph.replay()
        draws.append(x.clone())
    torch.cuda.synchronize()
    for t, got in enumerate(draws):
        assert (got.cpu().reshape(n, -1) - philox_normal_ref(7, t, ids.cpu(), 192)).abs().max() <= 1e-6
    assert not torch.equal(draws[0], draws[1])


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_models_fused_on_gpu(variant, backend):
    skip_unless_backend(backend, DEV)
    io = load_fixture(f"{variant}_model_io.pt")
    model, _ = load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"),
                               config=fixture_path(f"{variant}_config.yml"), device=DEV)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    set_backend(model, backend)
    with torch.no_grad():
        out = model(io["x"].to(DEV), io["y"].to(DEV)).cpu()
    assert ((out - io["out"]).abs().max() / io["out"].abs().max()) <= 1e-5


@pytest.mark.parametrize("steps_per_graph", [1, 5, 10_000])
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_graphed_loop_equals_fused_loop(backend, steps_per_graph):
    """Annealed Langevin's table from a graph of one step replayed L*T + 1 times, of 5 steps (plus one-step
    remainders), or of the whole run, gives the un-graphed fused loop's samples (same stream)."""
    skip_unless_backend(backend, DEV)
    from ncsn_fast.ops.philox import INIT_STEP, philox_uniform_ref
    from ncsn_fast.sampling import Denoiser, GraphedProgram, ald_program, run_program
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"), device=DEV)
    set_backend(model, backend)
    ids = torch.arange(4, device=DEV)
    x0 = philox_uniform_ref(1, INIT_STEP, ids.cpu(), 3072).view(4, 3, 32, 32).to(DEV)
    sig = cfg.sampling_sigmas()[::10]  # levels 0..len-1 of the network, at these sigma
    prog = ald_program(sig, n_steps_each=2, step_lr=cfg.sampling.step_lr, denoise=True)
    den = Denoiser.from_model(model)
    fused = run_program(prog, den, x0, seed=1, sample_ids=ids, backend=backend)
    loop = GraphedProgram(den, 4, (3, 32, 32), DEV, backend=backend, steps_per_graph=steps_per_graph)
    counted = []
    graphed = loop(prog, x0, seed=1, sample_ids=ids, progress=counted.append)
    assert (graphed - fused).abs().max() <= 1e-5 * fused.abs().max()
    assert sum(counted) == len(sig) * 2 + 1 and int(loop.r) == len(sig) * 2 + 1
    assert torch.equal(loop(prog, x0, seed=1, sample_ids=ids), graphed)  # replays again from a reset state


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_sample_on_gpu_matches_cpu_reference(dtype):
    from ncsn_fast.sampling import sample
    torch.backends.cudnn.allow_tf32 = False
    model, cfg = load_checkpoint(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsn_cifar10_ngf8_config.yml"))
    ref = sample(model, cfg, 6, seed=3, n_steps_each=2, progress=False, method="reference", rng="philox")
    fast = sample(model.to(DEV), cfg, 6, seed=3, batch_size=4, n_steps_each=2, progress=False, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 2 ** -7  # fp32: conv rounding on another device; bf16: 8 bits
    assert torch.isfinite(fast).all() and (fast - ref).abs().max() <= tol * ref.abs().max()


def test_gpu_samples_do_not_depend_on_the_batch_size():
    """What `ncsn-fast generate` promises on a GPU: sample i is the same whatever the batch (and graph) size."""
    from ncsn_fast.sampling import sample
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))
    model = model.to(DEV)
    a = sample(model, cfg, 10, seed=4, batch_size=10, n_steps_each=1, progress=False)
    b = sample(model, cfg, 10, seed=4, batch_size=3, n_steps_each=1, progress=False)
    assert torch.equal(a, b), (a - b).abs().max().item()


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_pool_and_elu_real_size(backend, dtype, channels_last):
    x = torch.randn(64, 128, 32, 32, device=DEV).to(dtype)
    x.view(-1)[::1013] = float("nan")
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out, ref = pool5x5(x, "max", backend=backend), pool5x5_ref(x, "max")
    assert torch.equal(out.isnan(), ref.isnan()) and torch.equal(out.nan_to_num(0.0), ref.nan_to_num(0.0))
    y = x.nan_to_num(0.0)
    avg, ref = pool5x5(y, "avg", backend=backend).float(), pool5x5_ref(y.float(), "avg")
    tol = 8 * 2 ** -24 if dtype == torch.float32 else 2 ** -8  # 25 float32 adds; one rounding to bf16
    assert ((avg - ref).abs() <= tol * ref.abs() + 1e-6).all()
    e, ref = elu(y, backend=backend).float(), torch.nn.functional.elu(y.float())
    assert ((e - ref).abs() <= (4 * 2 ** -24 if dtype == torch.float32 else 2 ** -8) * ref.abs() + 2 ** -23).all()


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_sampler_update_real_size(backend, dtype, channels_last):
    from ncsn_fast.ops.sampler_update import sampler_update_, sampler_update_ref
    skip_unless_backend(backend, DEV)
    g = torch.Generator().manual_seed(0)
    shape = (128, 3, 32, 32)
    x0, p0 = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    h = torch.randn(shape, generator=g).to(dtype)
    coefs = torch.tensor([0.9, -0.37, 0.25, 0.6, 1.0, 0.8, -0.5, 0.2])
    mult, ids = 0.5 + torch.rand(128, 2, generator=g), torch.arange(128)
    hd = h.to(DEV)
    if channels_last:
        hd = hd.to(memory_format=torch.channels_last)
    x, p = x0.to(DEV), p0.to(DEV)
    sampler_update_(x, p, hd, coefs.to(DEV), mult.to(DEV), seed=5, step=9, sample_ids=ids.to(DEV), backend=backend)
    ref_x, ref_p = sampler_update_ref(x0, p0, h, coefs, mult, philox_normal_ref(5, 9, ids, 3072))
    big = (x0.abs() + 1.5 * h.float().abs() + p0.abs()).max()
    assert (x.cpu() - ref_x).abs().max() <= 0.9 * 1e-6 + 6 * torch.finfo(torch.float32).eps * big
    assert (p.cpu() - ref_p).abs().max() <= 6 * torch.finfo(torch.float32).eps * big


@pytest.mark.parametrize("steps_per_graph", [1, 4, 10_000])
@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("name", ["heun", "edm-ancestral", "pc"])
def test_graphed_program_equals_fused_loop(name, backend, steps_per_graph):
    """A sampler table replayed from CUDA graphs of 1 step, 4 steps (plus one-step remainders) or the whole run
    gives the un-graphed fused loop's samples (same stream); a second run replays from a reset state."""
    skip_unless_backend(backend, DEV)
    from ncsn_fast.sampling import Denoiser, GraphedProgram, SamplerSettings, plan, run_program
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"), device=DEV)
    set_backend(model, backend)
    den = Denoiser.from_model(model)
    p = plan(SamplerSettings(name, steps=5), den, cfg)
    ids = torch.arange(4, device=DEV)
    x0 = p.program.initial_state(den, 1, ids, cfg.image_shape, DEV)
    fused = run_program(p.program, den, x0, seed=1, sample_ids=ids, backend=backend)
    loop = GraphedProgram(den, 4, cfg.image_shape, DEV, backend=backend, steps_per_graph=steps_per_graph)
    counted = []
    graphed = loop(p.program, x0, seed=1, sample_ids=ids, progress=counted.append)
    assert (graphed - fused).abs().max() <= 1e-5 * fused.abs().max()
    assert sum(counted) == p.program.evals and int(loop.r) == p.program.evals
    assert torch.equal(loop(p.program, x0, seed=1, sample_ids=ids), graphed)


@pytest.mark.parametrize("name", ["heun", "edm-ancestral", "dpmpp-2m", "pc"])
def test_other_samplers_on_gpu_match_cpu_reference_and_batch(name):
    from ncsn_fast.sampling import sample
    torch.backends.cudnn.allow_tf32 = False
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))
    ref = sample(model, cfg, 6, sampler=name, steps=4, seed=3, progress=False, method="reference", rng="philox")
    gpu_model = model.to(DEV)
    fast = sample(gpu_model, cfg, 6, sampler=name, steps=4, seed=3, batch_size=6, progress=False)
    assert torch.isfinite(fast).all() and (fast - ref).abs().max() <= 1e-4 * ref.abs().max()
    other = sample(gpu_model, cfg, 6, sampler=name, steps=4, seed=3, batch_size=4, progress=False)
    assert torch.equal(fast, other)


NCSNPP = ["ncsnpp_cifar10_cont_nf8", "ncsnpp_cifar10_discrete_nf8", "ncsnpp_church_nf8_img64"]


def _ncsnpp(variant):
    from ncsn_fast import load_checkpoint
    npp = fixture_path("ncsnpp")
    model, _ = load_checkpoint(npp / f"{variant}_checkpoint.pth", npp / f"{variant}_config.json")
    io = torch.load(npp / f"{variant}_model_io.pt", weights_only=True)
    want = io["float64_output"]["out_with_float32_sigmas_buffer"] if "discrete" in variant else io["out"]
    return model, io, want


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("variant", NCSNPP)
def test_ncsnpp_fused_on_gpu_gives_the_original_outputs(variant, backend):
    """The NCSN++ fast copy on the GPU (group_norm_act, SDPA attention, channels_last) against the original's
    outputs (TF32 off: float32 convolutions)."""
    from ncsn_fast.models.fast_copy import fast_copy
    skip_unless_backend(backend, DEV)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model, io, want = _ncsnpp(variant)
    fast = fast_copy(model, DEV, torch.float32, True, backend)
    with torch.no_grad():
        out = fast(io["x"].to(DEV).to(memory_format=torch.channels_last), io["labels"].to(DEV)).cpu()
    assert (out - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("name", ["pc", "heun"])
def test_ncsnpp_sampling_on_gpu_matches_cpu_and_batch(name):
    """NCSN++ through the graphed table on the GPU: the CPU reference's samples, whatever the batch; the
    score-SDE code's own pc_sampler runs there too."""
    from ncsn_fast.sampling import sample
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model, _, _ = _ncsnpp("ncsnpp_cifar10_cont_nf8")
    ref = sample(model, n=6, sampler=name, steps=4, seed=3, progress=False, method="reference", rng="philox")
    gpu_model = model.to(DEV)
    fast = sample(gpu_model, n=6, sampler=name, steps=4, seed=3, batch_size=6, progress=False, device=DEV)
    assert torch.isfinite(fast).all() and (fast - ref).abs().max() <= 1e-4 * ref.abs().max()
    assert torch.equal(fast, sample(gpu_model, n=6, sampler=name, steps=4, seed=3, batch_size=4, progress=False,
                                    device=DEV))
    x = sample(gpu_model, n=2, seed=1, method="reference", rng="torch", sampler="pc", steps=3, progress=False)
    assert torch.isfinite(x).all() and x.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bf16-autocast"])
def test_ncsnpp_training_on_gpu_learns(tmp_path, amp):
    """The score-SDE trainer on the GPU: finite losses that fall on the digits, a checkpoint that loads."""
    import json

    from ncsn_fast.config import ScoreSdeConfig
    from ncsn_fast.data import batch_at
    from ncsn_fast.digits import DigitsDataset
    from ncsn_fast.training import Trainer
    raw = json.loads(fixture_path("ncsnpp/ncsnpp_cifar10_cont_nf8_config.json").read_text())["config"]
    raw["data"].update(image_size=16, num_channels=1, random_flip=False)
    raw["model"].update(ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8], sigma_max=9.0)
    raw["optim"].update(warmup=0, lr=2e-3)
    t = Trainer(ScoreSdeConfig(raw), tmp_path, device=DEV, amp=amp)
    data = DigitsDataset(16, 1)
    losses = [t.train_step(batch_at(data, step, 64, seed=1)).item() for step in range(60)]
    assert all(map(lambda v: v == v and abs(v) < float("inf"), losses))
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])
    model, cfg = load_checkpoint(t.save())
    assert cfg.family == "ncsnpp" and sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second CUDA device")
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_ops_on_a_device_that_is_not_current(backend):
    """Tensors on cuda:1 while cuda:0 is current: each op launches on its tensors' device (no set_device)."""
    skip_unless_backend(backend, DEV)
    dev = torch.device("cuda", 1)
    assert torch.cuda.current_device() == 0
    x = torch.randn(4, 8, 16, 16)
    out, ref = elu(x.to(dev), backend=backend), torch.nn.functional.elu(x)
    assert out.device == dev and ((out.cpu() - ref).abs() <= 4 * 2 ** -24 * ref.abs() + 2 ** -23).all()
    ids = torch.arange(4, device=dev)
    z = philox_normal(7, 3, ids, 3 * 16 * 16, backend=backend)
    assert (z.cpu() - philox_normal_ref(7, 3, ids.cpu(), 3 * 16 * 16)).abs().max() <= 1e-6
    # a graphed sampler there too (capture and replay need that device current)
    from ncsn_fast.sampling import Denoiser, GraphedProgram, SamplerSettings, plan, run_program
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"), device=dev)
    den = Denoiser.from_model(set_backend(model, backend))
    prog = plan(SamplerSettings("heun", steps=3), den, cfg).program
    x0 = prog.initial_state(den, 1, ids, cfg.image_shape, dev)
    fused = run_program(prog, den, x0, seed=1, sample_ids=ids, backend=backend)
    graphed = GraphedProgram(den, 4, cfg.image_shape, dev, backend=backend)(prog, x0, seed=1, sample_ids=ids)
    assert graphed.device == dev and (graphed - fused).abs().max() <= 1e-5 * fused.abs().max()
    assert torch.cuda.current_device() == 0
