"""`ncsn-fast bench quality`'s bookkeeping: the targets judged against the original's two-seed noise floor on every
measure, and resume keeping exactly the points measured on the same checkpoint."""

import pytest
import torch

from ncsn_fast.bench import quality
from ncsn_fast.bench.quality import Point, targets


def _net(sampler, options, seed, evals, fd, confident, junk, bed="digits"):
    return Point(bed, sampler, options, seed, evals, 1.0,
                 {"fd": fd, "confident_share": confident, "not_a_digit_share": junk, "class_tv": 0.0})


BASE = [_net("ald", {"n_steps_each": 5}, 0, 501, 16.0, 0.90, 0.002),
        _net("ald", {"n_steps_each": 5}, 1, 501, 17.0, 0.92, 0.004)]  # floor: fd <= 17.5, conf >= 0.89, junk <= 0.005


def test_a_target_is_met_only_within_the_floor_on_every_measure():
    inside = _net("edm", {"steps": 25}, 0, 49, 17.4, 0.895, 0.004)
    lines = targets(BASE + [inside])
    assert lines[0].startswith("digits bed, some sampler at <= 50") and ": met — by edm (steps 25) at 49" in lines[0]
    assert lines[1].endswith("edm (steps 25) at 49 evaluations")
    low_confidence = _net("edm", {"steps": 25}, 0, 49, 15.0, 0.85, 0.001)
    lines = targets(BASE + [low_confidence])
    assert ": missed — closest: edm" in lines[0] and "outside on confident_share" in lines[0]
    assert lines[1].endswith(": none")


def test_the_budget_and_the_cheapest_within_the_floor():
    over = _net("cas", {"steps": 100}, 0, 101, 15.0, 0.95, 0.0)
    cheap_bad = _net("heun", {"steps": 9}, 0, 17, 90.0, 0.5, 0.3)
    lines = targets(BASE + [over, cheap_bad])
    assert "missed — closest: heun (steps 9)" in lines[0]  # cas is over the budget of 50
    assert lines[1].endswith("cas (steps 100) at 101 evaluations")
    assert targets(BASE[:1] + [over]) == []  # one seed: no floor, no verdict


def test_resume_keeps_the_points_of_the_same_checkpoint(monkeypatch, tmp_path):
    first = quality.run(torch.device("cpu"), n=4, quick=True, batch_size=4, beds=("exact",), git="abc")
    assert [p.sampler for p in first] == ["ald", "ald", "heun", "pc", "ode", "adaptive"]
    assert all(p.checkpoint_sha256 and p.git == "abc" and p.evals > 0 for p in first)

    def no_run(*args, **kwargs):
        raise AssertionError("a kept point was run again")
    monkeypatch.setattr(quality, "_run_point", no_run)
    again = quality.run(torch.device("cpu"), n=4, quick=True, batch_size=4, beds=("exact",), prior=first, git="new")
    assert again == first
    other = [Point(**{**p.__dict__, "checkpoint_sha256": "0" * 64}) for p in first]
    with pytest.raises(AssertionError, match="run again|kept point"):
        quality.run(torch.device("cpu"), n=4, quick=True, batch_size=4, beds=("exact",), prior=other)
    from ncsn_fast.bench.quality_report import markdown
    md = markdown(first, "header", targets(first, quick=True))
    assert "### Exact score" in md and "commit abc (6 points)" in md and "exact bed, heun at <= 35" in md


def test_fast_presets_are_what_the_committed_bed_measured():
    """--fast's presets are points of the committed results: on NCSN++ the cheapest within pc's floor, both seeds;
    on NCSNv2 (none within ald's) the one the targets name as closest at <= 50 evaluations."""
    import json
    from pathlib import Path

    from ncsn_fast.sampling.presets import FAST
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "samplers_quality_cpu2t.json"
    points = [Point(**p) for p in json.loads(path.read_text())["points"]]
    lines = targets(points)
    for family, bed in (("ncsnv2", "digits"), ("ncsnpp", "digits-ncsnpp")):
        name, options, _ = FAST[family]
        measured = [p for p in points if p.bed == bed and (p.sampler, p.options) == (name, options)]
        assert measured
        label = measured[0].label()
        budget = next(line for line in lines if line.startswith(f"{bed} bed, some sampler"))
        cheapest = next(line for line in lines if line.startswith(f"{bed} bed, the cheapest"))
        if family == "ncsnpp":
            assert ": met — by " + label in budget and cheapest.endswith(label + " at 48 evaluations")
        else:
            assert "missed — closest: " + label in budget and cheapest.endswith(": none")
