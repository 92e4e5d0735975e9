"""The built-in digits: data, the shipped model, the classifier that judges its samples."""

import torch

from ncsn_fast import load_checkpoint
from ncsn_fast.cli import main
from ncsn_fast.digits import builtin_checkpoint, load_digits
from ncsn_fast.quality import accuracy, junk, load_classifier, score_digits, train_classifier


def test_splits_are_disjoint_and_complete():
    x, y = load_digits("all", 8)
    tr, ytr = load_digits("train", 8)
    ho, yho = load_digits("heldout", 8)
    assert x.shape == (1797, 1, 8, 8) and (len(tr), len(ho)) == (1347, 450)
    assert torch.equal(x[torch.arange(1797) % 4 != 0], tr) and torch.equal(y[torch.arange(1797) % 4 == 0], yho)
    assert x.min() == 0 and x.max() == 1 and set(y.tolist()) == set(range(10))
    x16, _ = load_digits("train", 16)
    assert x16.shape == (1347, 1, 16, 16) and 0 <= x16.min() and x16.max() <= 1


def test_shipped_classifier_knows_digits_from_junk():
    net = load_classifier()
    assert accuracy(net, "train") >= 0.93  # digits it never saw (it was trained on the held-out quarter)
    real = score_digits(load_digits("train", 16)[0], net)
    assert real["confident_share"] >= 0.85 and min(real["histogram"]) >= 100
    g = torch.Generator().manual_seed(1)
    assert score_digits(torch.rand(200, 1, 16, 16, generator=g), net)["confident_share"] == 0.0
    assert score_digits(torch.zeros(4, 1, 16, 16), net)["not_a_digit_share"] == 1.0
    assert score_digits(junk(load_digits("train", 16)[0], 200, g), net)["confident_share"] <= 0.05


def test_classifier_training_reaches_the_shipped_accuracy():
    assert accuracy(train_classifier(steps=400), "train") >= 0.9


def test_builtin_model_loads_and_samples(tmp_path, capsys):
    path = builtin_checkpoint()
    assert path.stat().st_size <= 5e6
    model, cfg = load_checkpoint(path)
    assert (cfg.arch, cfg.data.image_size, cfg.data.channels) == ("NCSNv2", 16, 1)
    assert main(["sample", "-n", "6", "--n-steps-each", "1", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "built-in digits model" in out and "digit classifier:" in out
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "samples.npz").is_file()
