"""The quality bench's report: a markdown table per bed, the targets' lines, and a plot of every measure against
the evaluations per sample (quality.py measures)."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from ..fileio import atomic_write_bytes

TITLES = {"exact": "Exact score (digits mixture, tau 0.05)", "digits": "Built-in digits network: NCSNv2",
          "digits-ncsnpp": "Built-in digits network: NCSN++ (VE, continuous)"}


def markdown(points, header: str, target_lines: list[str]) -> str:
    commits = Counter(p.git for p in points)
    where = ", ".join(f"{c} ({k} point{'s' if k != 1 else ''})" for c, k in commits.items())
    md = [header, "", f"Measured at commit {where}."]
    for bed in dict.fromkeys(p.bed for p in points):
        md += ["", f"### {TITLES.get(bed, bed)}", ""]
        rows = [p for p in points if p.bed == bed]
        if bed == "exact":
            md += ["| sampler | seed | evals / sample | log-density gap (mean, nats) | gap (median) | coverage | "
                   "seconds |", "|---|---:|---:|---:|---:|---:|---:|"]
            md += [f"| {p.label()} | {p.seed} | {p.evals:g} | {p.metrics['log_density_gap']:.3g} | "
                   f"{p.metrics['log_density_gap_median']:.3g} | {p.metrics['coverage']:.3f} | {p.seconds:.1f} |"
                   for p in rows]
            continue
        md += ["| sampler | seed | evals / sample | FD (classifier features) | confident | not a digit | class TV | "
               "seconds |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        md += [f"| {p.label()} | {p.seed} | {p.evals:g} | {p.metrics['fd']:.1f} | "
               f"{100 * p.metrics['confident_share']:.1f} % | {100 * p.metrics['not_a_digit_share']:.1f} % | "
               f"{p.metrics['class_tv']:.3f} | {p.seconds:.1f} |" for p in rows]
    md += ["", "### Targets", "", *[f"- {line}" for line in target_lines]]
    return "\n".join(md) + "\n"


def plot(points, path: Path, beds: dict) -> bool:
    """Every measure of every bed against evaluations per sample (seed 0; a bed's original algorithm as a dashed
    line at its two seeds' mean); beds: bed -> (its original (sampler, options), its measures). False without
    matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [(bed, m, lower, name) for bed in dict.fromkeys(p.bed for p in points) for m, lower, name in beds[bed][1]]
    cols = 3
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    for ax, (bed, metric, lower, name) in zip(axes.flat, panels):
        original, options = beds[bed][0]
        base = [p.value(metric) for p in points if p.bed == bed and p.sampler == original and p.options == options]
        for sampler in dict.fromkeys(p.sampler for p in points if p.bed == bed):
            pts = sorted((p for p in points if p.bed == bed and p.sampler == sampler and p.seed == 0),
                         key=lambda p: p.evals)
            ax.plot([p.evals for p in pts], [p.value(metric) for p in pts], "o-", label=sampler, ms=4)
        if base:
            ax.axhline(sum(base) / len(base), ls="--", color="k", lw=1)
        ax.set_xscale("log")
        if metric in ("fd", "abs_gap"):
            ax.set_yscale("log")
        ax.set_xlabel("network evaluations per sample")
        ax.set_title(f"{TITLES.get(bed, bed).split(':')[-1].strip()}: {name} ({'lower' if lower else 'higher'} "
                     "is better)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True
