"""Benchmark results as files: every row as JSON (with the device, versions and git SHA) and a markdown table."""

from __future__ import annotations

import json
from pathlib import Path

from ..fileio import atomic_write_bytes
from ..machine import caps_text, cpu_kind, feature_text


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format); a column no row has a value for is left out (e.g. % of peak on a CPU)."""
    columns = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("" if v is None else (format(v, fmt) if fmt else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def is_compile_peer(variant: str) -> bool:
    """A row of torch.compile on the original network (what a user gets by typing it), not ours under it."""
    return "torch.compile (" in variant and not variant.startswith(("ours", "fused ops"))


def add_compile_ratio(rows: list[dict], key: str) -> None:
    """Per (model, batch): every row's 'vs_compile' = the strongest peer compile mode's time / its time (> 1:
    faster than every torch.compile mode measured in the same run), and 'best_compile' that mode's row."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("model"), r.get("batch")), []).append(r)
    for group in groups.values():
        peers = [r for r in group if is_compile_peer(r.get("variant", "")) and r.get(key)]
        if not peers:
            continue
        best = min(peers, key=lambda r: r[key])
        for r in group:
            if r.get(key):
                r["vs_compile"], r["best_compile"] = best[key] / r[key], best["variant"]


def compile_note(rows: list[dict]) -> list[str]:
    """The line under a table that says what 'vs best compile' compares with, or none."""
    best = {(r["model"], r["batch"]): r["best_compile"] for r in rows if r.get("best_compile")}
    if not best:
        return []
    return ["vs best compile: against the fastest torch.compile mode of the original network in this run (" +
            "; ".join(f"{m}, batch {b}: {v}" for (m, b), v in best.items()) + ")", ""]


OPS_COLUMNS = [("op", "op", ""), ("shape", "shape", ""), ("backend", "backend", ""), ("ms", "ms (median)", ".4f"),
               ("gbs", "GB/s", ".1f"), ("pct_copy_bw", "% of copy", ".0f"), ("speedup", "vs eager", ".2f")]
SAMPLER_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                   ("ms_per_step", "ms / step", ".2f"), ("evals", "evals / image", ""),
                   ("images_per_s", "images/s (full run)", ".3g"),
                   ("speedup", "vs eager", ".2f"), ("vs_compile", "vs best compile", ".2f"),
                   ("first_call_s", "first call s", ".1f"), ("peak_mem_gb", "peak GB", ".2f")]
NCSNPP_SAMPLER_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                          ("ms_per_step", "ms / evaluation", ".2f"), ("evals", "evaluations timed", ""),
                          ("images_per_s", "images/s (2,000-evaluation run)", ".3g"), ("speedup", "vs eager", ".2f"),
                          ("vs_compile", "vs best compile", ".2f")]
FORWARD_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                   ("ms", "ms / forward", ".2f"), ("images_per_s", "images/s", ".1f"), ("tflops", "TFLOP/s", ".3g"),
                   ("pct_peak", "% of dense peak", ".1f"),
                   ("speedup", "vs eager", ".2f"), ("vs_compile", "vs best compile", ".2f"),
                   ("first_call_s", "first call s", ".1f")]

SECTIONS = [("ops", "Fused ops", OPS_COLUMNS), ("forward", "Network forward", FORWARD_COLUMNS),
            ("sampler", "Annealed Langevin sampler", SAMPLER_COLUMNS), ("ncsnpp_ops", "NCSN++ fused ops", OPS_COLUMNS),
            ("ncsnpp_forward", "NCSN++ forward", FORWARD_COLUMNS),
            ("ncsnpp_sampler", "NCSN++ predictor-corrector sampler", NCSNPP_SAMPLER_COLUMNS)]


def write_results(name: str, env: dict, sections: dict[str, list[dict]], out_dir: str | Path,
                  command: str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    # one file per machine kind: the GPU's name, or the CPU's threads, best instruction set and caps (the kinds
    # the tables compare, e.g. cpu2t-avx2 and cpu2t-avx512-bf16)
    caps = env.get("cpu_caps") or {}
    slug = env.get("gpu") or cpu_kind(env["cpu_features"], caps, env["cpu_threads"])
    slug = "".join(ch if ch.isalnum() else "-" for ch in slug).strip("-").lower()
    stem = out_dir / f"{name}_{slug}"
    for section, key in (("forward", "ms"), ("ncsnpp_forward", "ms"), ("sampler", "ms_per_step"),
                         ("ncsnpp_sampler", "ms_per_step")):
        add_compile_ratio(sections.get(section) or [], key)
    payload = {"command": command, "environment": env, **sections}
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(payload, indent=1).encode())
    kind = env.get("gpu") or f"{env['cpu']} ({feature_text(env['cpu_features'])}{caps_text(caps)})"
    md = [f"# {name} benchmark: {kind} ({env['device']})", "",
          f"`{command}` — {env['timestamp']}, git {env.get('git_sha')}, torch {env['torch']}, "
          f"triton {env.get('triton')}, python {env['python']}, {env['cpu_threads']} CPU threads of {env['cpu']} "
          f"({feature_text(env['cpu_features'])}{caps_text(caps)})"
          f"{', malloc tuned' if env.get('malloc_tuning') else ''}"
          + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}, cuDNN TF32 "
             f"{'on' if env.get('cudnn_tf32') else 'off'}" if env.get("gpu") else ""), ""]
    for section, title, columns in SECTIONS:
        if sections.get(section):
            md += [f"## {title}", "", markdown_table(sections[section], columns), "", *compile_note(sections[section])]
    atomic_write_bytes(stem.with_suffix(".md"), "\n".join(md).encode())
    return stem.with_suffix(".json"), stem.with_suffix(".md")
