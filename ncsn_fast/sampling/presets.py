"""`--fast`: per model family, the cheapest sampler the quality bed (`ncsn-fast bench quality`, README "Quality
against evaluations") found within the original algorithm's noise floor by every measure; where none is, the
one nearest to it at <= 50 evaluations. The original algorithm stays the default; a family the bed does not
measure (NCSN v1) has no preset. Each preset carries what the bed measured, printed when it is used.
"""

from __future__ import annotations

# family -> (sampler, options, what the bed measured: 1,000 samples per point, samplers_quality_cpu2t.md)
FAST: dict[str, tuple[str, dict, str]] = {
    "ncsnv2": ("edm-ancestral", {"steps": 28}, "48 evaluations against ald's 501: no sampler is within ald's noise "
               "floor by every measure; this one is nearest (FD 13.5 against 16.8, 79 % confident digits against "
               "91 %, 1.7 % not a digit against 0.25 %) on the built-in NCSNv2"),
    "ncsnpp": ("edm-ancestral", {"steps": 28}, "48 evaluations against pc's 1,000: within pc's noise floor by every "
               "measure on the built-in NCSN++, two seeds (FD 12.9, 12.7 against 13.4; 90 % confident against 91 %)"),
}


def fast_preset(family: str) -> tuple[str, dict, str]:
    """(sampler, options, what the bed measured) of the family's preset; ValueError for a family without one."""
    if family not in FAST:
        raise ValueError(f"--fast has no preset for {family} (the quality bed measures NCSNv2 and NCSN++): pick a "
                         "--sampler")
    name, options, measured = FAST[family]
    return name, dict(options), measured
