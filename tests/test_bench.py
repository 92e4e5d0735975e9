"""The benchmark command runs end to end on the CPU and writes a valid results file (no timing asserted)."""

import json

from ncsn_fast.cli import main


def test_bench_quick_writes_results(tmp_path, capsys):
    assert main(["bench", "all", "--quick", "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".md")
    data = json.loads((tmp_path / files[0]).read_text())
    env = data["environment"]
    assert env["torch"] and env["device"] == "cpu" and "timestamp" in env
    # the CPU's model and the features that decide the fastest path travel with every result
    assert env["cpu"] and set(env["cpu_features"]) == {"capability", "avx2", "avx512", "avx512_bf16", "amx"}
    ops = {(r["op"], r["backend"]) for r in data["ops"]}
    assert ("langevin row (sampler_update_)", "cpu") in ops and ("instance_norm_plus+elu", "eager torch") in ops
    assert all(r["ms"] > 0 for r in data["ops"] if "ms" in r)
    variants = {r["variant"] for r in data["forward"]}
    assert {"eager (PyTorch ops, as the original)", "fused ops", "fused ops + channels_last, bf16"} <= variants
    assert all(r["tflops"] > 0 for r in data["forward"])  # one FLOP count per case, each row's rate
    sampler = {r["variant"]: r for r in data["sampler"]}
    assert {"reference (eager, original algorithm)", "ours float32"} <= set(sampler)
    assert all(r["ms_per_step"] > 0 and r["images_per_s"] > 0 for r in sampler.values())
    text = (tmp_path / files[1]).read_text()
    assert "| op | shape | backend |" in text and "## Annealed Langevin sampler" in text
    assert f"CPU threads of {env['cpu']} (" in text
    assert "results:" in capsys.readouterr().out


def test_bench_sampler_narrowed_cases(tmp_path, capsys):
    """--batches replaces the built-in batch sizes, and the results file is named after the narrowing, so that
    runs split to fit a time limit do not overwrite each other; a bad model name is one clear error."""
    argv = ["bench", "sampler", "--quick", "--batches", "2,max", "--models", "cifar10", "--out", str(tmp_path)]
    assert main(argv) == 0
    (path,) = tmp_path.glob("sampler-cifar10-b2-max-quick_*.json")
    data = json.loads(path.read_text())
    # 'max' on the CPU: the config's sampling batch (on a GPU the largest power of two that fits)
    assert [r["batch"] for r in data["sampler"]][::3] == [2, "100 (max)"]
    assert data["command"] == "ncsn-fast " + " ".join(argv)
    capsys.readouterr()
    assert main(["bench", "sampler", "--quick", "--models", "imagenet", "--out", str(tmp_path)]) == 2
    assert "unknown model(s) ['imagenet']" in capsys.readouterr().err


def test_an_interrupted_run_keeps_the_cases_it_finished(tmp_path, monkeypatch, capsys):
    """Results are written after every case, so a run stopped by a time limit keeps what it measured."""
    from ncsn_fast.bench import sampler as bench

    real = bench._fast_steps

    def stop_at_batch_3(model, cfg, device, dtype, x0, *args, **kw):
        if x0.shape[0] == 3:
            raise KeyboardInterrupt
        return real(model, cfg, device, dtype, x0, *args, **kw)

    monkeypatch.setattr(bench, "_fast_steps", stop_at_batch_3)
    assert main(["bench", "sampler", "--quick", "--batches", "2,3", "--out", str(tmp_path)]) == 130
    (path,) = tmp_path.glob("sampler-b2-3-quick_*.json")
    rows = json.loads(path.read_text())["sampler"]
    assert {r["batch"] for r in rows} == {2} and len(rows) == 3  # batch 2 complete: reference + ours fp32, bf16


def test_cpu_features_follow_pytorch(monkeypatch):
    import torch

    from ncsn_fast import machine
    machine.cpu_features.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    try:
        f = machine.cpu_features()
        assert f["avx512_bf16"] is False and f["amx"] is True
        assert "amx" in machine.feature_text(f) and "avx512_bf16" not in machine.feature_text(f)
    finally:
        machine.cpu_features.cache_clear()
    assert machine.feature_text({"avx2": False}) == "no AVX2"


def test_bench_ncsnpp_quick_writes_its_sections(tmp_path, capsys):
    assert main(["bench", "ncsnpp", "--quick", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("ncsnpp-quick_*.json")
    data = json.loads(path.read_text())
    assert {r["backend"] for r in data["ncsnpp_ops"] if r["op"] == "add+group_norm+silu"} >= {"eager torch", "cpu"}
    variants = {r["variant"] for r in data["ncsnpp_forward"]}
    assert {"eager (PyTorch ops, as the score-SDE code)", "ours: fused ops + channels_last, bf16"} <= variants
    sampler = {r["variant"]: r for r in data["ncsnpp_sampler"]}
    assert len(sampler) == 2 and all(r["ms_per_step"] > 0 and r["evals"] == 4 for r in sampler.values())
    text = path.with_suffix(".md").read_text()
    assert "## NCSN++ forward" in text and "## NCSN++ predictor-corrector sampler" in text


def test_rows_carry_their_ratio_to_the_strongest_compile_mode():
    """vs best compile = the fastest torch.compile mode of the original network (per model and batch) / the row's
    time; ours under compile is not a peer."""
    from ncsn_fast.bench.results import add_compile_ratio, compile_note

    rows = [{"model": "m", "batch": 8, "variant": "eager", "ms": 100.0},
            {"model": "m", "batch": 8, "variant": "torch.compile (default)", "ms": 60.0},
            {"model": "m", "batch": 8, "variant": "torch.compile (max-autotune)", "ms": 50.0},
            {"model": "m", "batch": 8, "variant": "ours + torch.compile (default)", "ms": 40.0},
            {"model": "m", "batch": 1, "variant": "eager", "ms": 10.0}]
    add_compile_ratio(rows, "ms")
    assert [r.get("vs_compile") for r in rows] == [0.5, 50 / 60, 1.0, 1.25, None]
    assert rows[3]["best_compile"] == "torch.compile (max-autotune)"
    assert compile_note(rows)[0].endswith("(m, batch 8: torch.compile (max-autotune))")


def test_forward_flops_and_share_of_peak():
    """A convolution's FLOPs are 2 per multiply-add; the share of peak comes from the GPU's dense figure."""
    import torch

    from ncsn_fast.bench.peak import add_throughput, dense_peak_tflops, forward_flops

    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    assert forward_flops(conv, torch.rand(2, 4, 16, 16)) == 2 * 2 * 8 * 4 * 9 * 16 * 16
    assert dense_peak_tflops("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989.0
    assert dense_peak_tflops("NVIDIA H100 PCIe", torch.bfloat16) == 756.0
    assert dense_peak_tflops("AMD EPYC", torch.float32) is None and dense_peak_tflops(None, torch.float32) is None
    row = add_throughput({"ms": 2.0}, 989 * 10 ** 9, "NVIDIA H200", torch.bfloat16)
    assert abs(row["tflops"] - 494.5) < 1e-9 and abs(row["pct_peak"] - 50.0) < 1e-9
    assert "pct_peak" not in add_throughput({"ms": 2.0}, 10 ** 9, None, torch.float32)


def test_rows_compared_are_timed_in_turns():
    """time_interleaved calls each function once per round, in turns, warm-up rounds first."""
    import torch

    from ncsn_fast.bench.timing import time_interleaved
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    times = time_interleaved(fns, torch.device("cpu"), warmup=1, repeat=3)
    assert order == ["a", "b", "c"] * 4
    assert set(times) == {"a", "b", "c"} and all(t["repeat"] == 3 and t["ms"] >= 0 for t in times.values())


def test_cpu_kind_names_isa_caps(monkeypatch):
    """A run with ISA caps (an older CPU kind emulated) is filed under its own kind, its caps in the header."""
    from ncsn_fast import machine
    for k in machine.ISA_CAPS:
        monkeypatch.delenv(k, raising=False)
    features = {"avx2": True, "avx512": False}
    assert machine.isa_caps() == {} and machine.cpu_kind(features, {}, 2) == "cpu2t-avx2"
    monkeypatch.setenv("NCSN_FAST_CPU_ISA", "baseline")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    caps = machine.isa_caps()
    assert list(caps) == ["ATEN_CPU_CAPABILITY", "NCSN_FAST_CPU_ISA"]
    assert machine.cpu_kind(features, caps, 2) == "cpu2t-avx2-capped-default-baseline"
    assert machine.caps_text(caps) == ", capped: ATEN_CPU_CAPABILITY=default, NCSN_FAST_CPU_ISA=baseline"
