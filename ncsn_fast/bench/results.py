"""Benchmark results as files: every row as JSON (with the device, versions and git SHA) and a markdown table."""

from __future__ import annotations

import json
from pathlib import Path

from ..fileio import atomic_write_bytes
from ..machine import feature_text


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("" if v is None else (format(v, fmt) if fmt else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


OPS_COLUMNS = [("op", "op", ""), ("shape", "shape", ""), ("backend", "backend", ""), ("ms", "ms (median)", ".4f"),
               ("gbs", "GB/s", ".1f"), ("pct_copy_bw", "% of copy", ".0f"), ("speedup", "vs eager", ".2f")]
SAMPLER_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                   ("ms_per_step", "ms / step", ".2f"), ("evals", "evals / image", ""),
                   ("images_per_s", "images/s (full run)", ".3g"),
                   ("speedup", "vs eager", ".2f"), ("first_call_s", "first call s", ".1f"),
                   ("peak_mem_gb", "peak GB", ".2f")]
NCSNPP_SAMPLER_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                          ("ms_per_step", "ms / evaluation", ".2f"), ("evals", "evaluations timed", ""),
                          ("images_per_s", "images/s (2,000-evaluation run)", ".3g"), ("speedup", "vs eager", ".2f")]
FORWARD_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                   ("ms", "ms / forward", ".2f"), ("images_per_s", "images/s", ".1f"),
                   ("speedup", "vs eager", ".2f"), ("first_call_s", "first call s", ".1f")]


def write_results(name: str, env: dict, sections: dict[str, list[dict]], out_dir: str | Path,
                  command: str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    slug = env.get("gpu") or f"cpu{env['cpu_threads']}t"
    slug = "".join(ch if ch.isalnum() else "-" for ch in slug).strip("-").lower()
    stem = out_dir / f"{name}_{slug}"
    payload = {"command": command, "environment": env, **sections}
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(payload, indent=1).encode())
    md = [f"# {name} benchmark: {env.get('gpu') or env['cpu']} ({env['device']})", "",
          f"`{command}` — {env['timestamp']}, git {env.get('git_sha')}, torch {env['torch']}, "
          f"triton {env.get('triton')}, python {env['python']}, {env['cpu_threads']} CPU threads of {env['cpu']} "
          f"({feature_text(env['cpu_features'])})"
          f"{', malloc tuned' if env.get('malloc_tuning') else ''}"
          + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}, cuDNN TF32 "
             f"{'on' if env.get('cudnn_tf32') else 'off'}" if env.get("gpu") else ""), ""]
    if sections.get("ops"):
        md += ["## Fused ops", "", markdown_table(sections["ops"], OPS_COLUMNS), ""]
    if sections.get("forward"):
        md += ["## Network forward", "", markdown_table(sections["forward"], FORWARD_COLUMNS), ""]
    if sections.get("sampler"):
        md += ["## Annealed Langevin sampler", "", markdown_table(sections["sampler"], SAMPLER_COLUMNS), ""]
    if sections.get("ncsnpp_ops"):
        md += ["## NCSN++ fused ops", "", markdown_table(sections["ncsnpp_ops"], OPS_COLUMNS), ""]
    if sections.get("ncsnpp_forward"):
        md += ["## NCSN++ forward", "", markdown_table(sections["ncsnpp_forward"], FORWARD_COLUMNS), ""]
    if sections.get("ncsnpp_sampler"):
        md += ["## NCSN++ predictor-corrector sampler", "",
               markdown_table(sections["ncsnpp_sampler"], NCSNPP_SAMPLER_COLUMNS), ""]
    atomic_write_bytes(stem.with_suffix(".md"), "\n".join(md).encode())
    return stem.with_suffix(".json"), stem.with_suffix(".md")
