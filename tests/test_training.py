"""Trainer: a step lowers the loss, resume continues exactly, checkpoints keep the original layout."""

import json

import pytest
import torch
import yaml
from conftest import fixture_path, train_cli

from ncsn_fast import load_checkpoint
from ncsn_fast.config import config_from_dict
from ncsn_fast.losses import dsm_loss
from ncsn_fast.training import EMAHelper, Trainer


def _config(family="ncsnv2"):
    raw = {"data": {"dataset": "CIFAR10", "image_size": 8, "channels": 3},
           "model": {"ngf": 4, "num_classes": 6, "sigma_begin": 1.0, "sigma_end": 0.05, "ema": True,
                     "ema_rate": 0.9},
           "optim": {"lr": 1e-3}}
    if family == "ncsnv2":
        raw["model"]["sigma_dist"] = "geometric"
    return config_from_dict(raw)


def _batches(n):
    g = torch.Generator().manual_seed(7)
    return [torch.rand(4, 3, 8, 8, generator=g) for _ in range(n)]


def _fixed_loss(trainer, x):
    with torch.no_grad():
        return dsm_loss(trainer.model, x, trainer.sigmas, generator=torch.Generator().manual_seed(0)).item()


def test_one_step_lowers_the_loss_on_a_fixed_batch(tmp_path):
    trainer = Trainer(_config(), tmp_path)
    x = _batches(1)[0]
    before = _fixed_loss(trainer, x)
    for _ in range(3):  # the same batch: labels and noise are redrawn each step, the objective is the same
        trainer.train_step(x)
    assert _fixed_loss(trainer, x) < before


def test_resume_continues_exactly(tmp_path):
    batches = _batches(6)
    straight = Trainer(_config(), tmp_path / "a")
    losses = [straight.train_step(x).item() for x in batches]
    first = Trainer(_config(), tmp_path / "b")
    resumed_losses = [first.train_step(x).item() for x in batches[:3]]
    first.save()
    second = Trainer.resume(_config(), tmp_path / "b")
    assert second.step == 3
    resumed_losses += [second.train_step(x).item() for x in batches[3:]]
    assert resumed_losses == losses
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_checkpoint_has_the_original_layout_and_loads(tmp_path):
    cfg = _config()
    trainer = Trainer(cfg, tmp_path)
    trainer.train_step(_batches(1)[0])
    path = trainer.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth", "checkpoint_1.pth", "config.yml",
                                                           "trainer_state.pt"]
    state = torch.load(path, weights_only=True)
    assert len(state) == 5 and state[3] == 1 and isinstance(state[1], dict)
    names = [k for k, _, _ in json.loads(fixture_path("keys/ncsnv2_cifar10.json").read_text())["state_dict"]]
    assert list(state[0]) == names  # key names do not depend on ngf: the original's exact list
    assert list(state[4]) == [n for n, _ in trainer.model.named_parameters()]
    model, loaded_cfg, info = load_checkpoint(path, return_info=True)  # config.yml found beside it
    assert info.layout == "ncsnv2" and info.ema_applied and loaded_cfg.model.ngf == 4
    ema = EMAHelper(trainer.model, 0.9)
    ema.load_state_dict(state[4])
    for n, p in model.named_parameters():
        assert torch.equal(p, ema.shadow[n]), n


def test_ema_update_rule():
    model = torch.nn.Linear(2, 1)
    ema = EMAHelper(model, 0.75)
    old = {n: t.clone() for n, t in ema.shadow.items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], 0.25 * model.weight + 0.75 * old["weight"])


def _image_folder(root, n=5):
    from PIL import Image
    g = torch.Generator().manual_seed(1)
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        arr = (torch.rand(12, 10, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(root / ("sub" if i % 2 else ".") / f"{i}.png")
    return root


def test_batches_are_a_function_of_the_step(tmp_path):
    from ncsn_fast.data import ImageFolder, batch_at, batch_indices
    data = ImageFolder(_image_folder(tmp_path / "imgs"), 8, 3)
    assert len(data) == 5 and data[0].shape == (3, 8, 8) and 0 <= data[0].min() and data[0].max() <= 1
    idx = [i for s in range(5) for i in batch_indices(5, s, 2, seed=3)]  # 10 draws = 2 epochs
    assert sorted(idx[:5]) == list(range(5)) and sorted(idx[5:]) == list(range(5))
    assert torch.equal(batch_at(data, 3, 2, seed=3), batch_at(data, 3, 2, seed=3))


def test_train_cli_resume_equals_straight_run(tmp_path):
    from ncsn_fast.cli import main
    imgs = _image_folder(tmp_path / "imgs")
    cfg_path = tmp_path / "config.yml"
    cfg_path.write_text(fixture_path("ncsnv2_cifar10_ngf8_config.yml").read_text().replace("ngf: 8", "ngf: 4")
                        .replace("image_size: 32", "image_size: 8").replace("num_classes: 232", "num_classes: 6"))
    common = ["--config", str(cfg_path), "--data", str(imgs), "--batch-size", "3", "--quiet"]
    assert main(["train", *common, "--out", str(tmp_path / "a"), "--steps", "4"]) == 0
    assert main(["train", *common, "--out", str(tmp_path / "b"), "--steps", "2"]) == 0
    assert main(["train", *common, "--out", str(tmp_path / "b"), "--steps", "2"]) == 2  # refuses to overwrite
    assert main(["train", *common, "--out", str(tmp_path / "b"), "--steps", "4", "--resume"]) == 0
    a = torch.load(tmp_path / "a" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pth", weights_only=True)
    assert a[3] == b[3] == 4
    for k in a[0]:
        assert torch.equal(a[0][k], b[0][k]), k
    assert main(["train", *common, "--out", str(tmp_path / "c"), "--data", str(tmp_path / "nope")]) == 2


def _digits_config_file(tmp_path):
    raw = {"data": {"dataset": "DIGITS", "image_size": 8, "channels": 1, "random_flip": True},
           "model": {"ngf": 4, "num_classes": 6, "sigma_begin": 1.0, "sigma_end": 0.05, "ema": True,
                     "ema_rate": 0.9, "sigma_dist": "geometric"},
           "training": {"batch_size": 8, "n_iters": 3, "snapshot_freq": 3},
           "optim": {"lr": 1e-3}}
    path = tmp_path / "digits.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_two_process_torchrun_matches_one_process(tmp_path):
    """torchrun, 2 CPU processes (gloo), 4 images each, against one process with the global batch of 8:
    the same loss sequence and the same weights, up to the rounding of the gradient all-reduce."""
    config = _digits_config_file(tmp_path)
    one, one_losses = train_cli(config, tmp_path / "one")
    two, two_losses = train_cli(config, tmp_path / "two", processes=2)
    assert len(one_losses) == 3
    assert two_losses == pytest.approx(one_losses, rel=1e-5)
    assert one[3] == two[3] == 3  # step
    for part in (0, 4):  # weights and EMA shadow
        assert one[part].keys() == two[part].keys()
        for k in one[part]:
            torch.testing.assert_close(two[part][k], one[part][k], rtol=1e-4, atol=1e-6, msg=k)


def test_batch_shards_make_up_the_global_batch():
    from ncsn_fast.data import batch_at
    from ncsn_fast.digits import DigitsDataset

    data = DigitsDataset(8)
    for step in (0, 5, 200):  # 200 * 12 > 1347: crosses an epoch boundary
        whole = batch_at(data, step, 12, seed=3)
        parts = [batch_at(data, step, 12, seed=3, shard=(r, 3)) for r in range(3)]
        assert torch.equal(torch.cat(parts), whole)
    with pytest.raises(Exception, match="does not split evenly"):
        batch_at(data, 0, 10, shard=(0, 3))


def test_cli_training_writes_log_grids_and_refuses_to_clobber(tmp_path, capsys):
    from ncsn_fast.cli import main
    args = ["train", "--config", str(_digits_config_file(tmp_path)), "--data", "digits", "--out", str(tmp_path / "r"),
            "--steps", "2", "--log-every", "1", "--sample-every", "2", "--quiet"]
    assert main(args) == 0
    log = (tmp_path / "r" / "train_log.csv").read_text().splitlines()
    assert log[0] == "step,loss,seconds" and [int(line.split(",")[0]) for line in log[1:]] == [1, 2]
    assert (tmp_path / "r" / "samples_2.png").is_file()
    capsys.readouterr()
    assert main(args) == 2  # the run exists: --resume or another folder
    assert "--resume" in capsys.readouterr().err
    assert main([*args[:-7], "--steps", "3", "--log-every", "1", "--resume", "--quiet"]) == 0
    steps = [int(line.split(",")[0]) for line in (tmp_path / "r" / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3]
