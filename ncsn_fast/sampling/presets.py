"""`--fast`: per model family, the sampler the quality bed (`ncsn-fast bench quality`, README "Quality against
evaluations") found cheapest at the original algorithm's quality, or nearest to it within 50 evaluations where
none is within its noise floor. The original algorithm stays the default; a family the bed has not measured has
no preset."""

from __future__ import annotations

# family -> (sampler, options), with what the bed measured for it
FAST: dict[str, tuple[str, dict]] = {
    "ncsnv2": ("edm", {"steps": 25}),
    "ncsnpp": ("edm", {"steps": 25}),
}


def fast_preset(family: str) -> tuple[str, dict]:
    """(sampler, options) of the family's preset; ValueError for a family without one."""
    if family not in FAST:
        raise ValueError(f"--fast has no preset for {family} (the quality bed measures NCSNv2 and NCSN++): pick a "
                         "--sampler")
    name, options = FAST[family]
    return name, dict(options)
