"""NCSN++ training (training/score_sde.py): the score-SDE objective as written, its initialisation, EMA and warm-up,
the loss falling on the digits, resume = the uninterrupted run, the score-SDE checkpoint layout read back, and
two torchrun processes = one."""

import json

import pytest
import torch
from conftest import fixture_path, train_cli

from ncsn_fast import load_checkpoint
from ncsn_fast.config import ScoreSdeConfig
from ncsn_fast.errors import CheckpointError
from ncsn_fast.training import EMAHelper, ScoreSdeTrainer, Trainer


def _raw(continuous=True, **optim):
    c = json.loads(fixture_path("ncsnpp/ncsnpp_cifar10_cont_nf8_config.json").read_text())["config"]
    c["data"].update(image_size=8, num_channels=1, random_flip=False)
    c["model"].update(ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4], num_scales=10,
                      sigma_max=5.0, ema_rate=0.9)
    if not continuous:
        c["model"].update(embedding_type="positional", fourier_scale=16)
    c["training"].update(continuous=continuous, batch_size=8, n_iters=3, snapshot_freq=3)
    c["optim"].update({"warmup": 0, "lr": 1e-3, **optim})
    return c


def _config(continuous=True, **optim):
    return ScoreSdeConfig(_raw(continuous, **optim))


def _batches(n, size=8):
    g = torch.Generator().manual_seed(7)
    return [torch.rand(size, 1, 8, 8, generator=g) for _ in range(n)]


def test_the_family_picks_the_trainer(tmp_path):
    t = Trainer(_config(), tmp_path)
    assert isinstance(t, ScoreSdeTrainer) and t.grad_clip == 1.0  # the config's optim.grad_clip
    assert Trainer(_config(), tmp_path, grad_clip=0.5).grad_clip == 0.5


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "discrete"])
def test_the_objective_as_the_score_sde_code_writes_it(tmp_path, continuous):
    t = Trainer(_config(continuous), tmp_path)
    x = _batches(1)[0]
    state = t.generator.get_state()
    got = t.loss(x)
    t.generator.set_state(state)  # the same draws, in the same order, by hand
    with torch.no_grad():
        if continuous:
            u = torch.rand(8, generator=t.generator)
            sigma = 0.01 * (5.0 / 0.01) ** (u * (1 - 1e-5) + 1e-5)
            z = torch.randn(x.shape, generator=t.generator)
            score = t.model(x + sigma.view(-1, 1, 1, 1) * z, sigma)
            want = (0.5 * ((score * sigma.view(-1, 1, 1, 1) + z) ** 2).sum(dim=(1, 2, 3))).mean()
        else:
            labels = torch.randint(0, 10, (8,), generator=t.generator)
            sigma = t.model.sigmas.float()[labels].view(-1, 1, 1, 1)
            noise = torch.randn(x.shape, generator=t.generator) * sigma
            score = t.model(x + noise, labels)
            want = (0.5 * ((score + noise / sigma ** 2) ** 2).sum(dim=(1, 2, 3)) * sigma.flatten() ** 2).mean()
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=0)


def test_initialisation_is_the_score_sde_codes(tmp_path):
    model = Trainer(_config(), tmp_path).model
    params = dict(model.named_parameters())
    near_zero = [n for n in params if n.endswith(("Conv_1.weight", "NIN_3.W"))]
    assert near_zero and all(params[n].abs().max() < 1e-4 for n in near_zero)
    last = max((n for n in params if n.endswith(".weight") and params[n].dim() == 4 and params[n].shape[0] == 1
                and n.count(".") == 2), key=lambda n: int(n.split(".")[1]))
    assert params[last].abs().max() < 1e-4  # the output convolution
    w = params["all_modules.1.weight"]  # the first dense layer: U(-b, b), b^2 = 3 / fan_avg
    bound = (3 / ((w.shape[0] + w.shape[1]) / 2)) ** 0.5
    assert 0.9 * bound < w.abs().max() <= bound
    assert all(float(p.detach().abs().max()) == 0 for n, p in params.items() if n.endswith((".bias", ".b")))


def test_ema_warmup_rule():
    model = torch.nn.Linear(2, 1)
    ema = EMAHelper(model, 0.999, warmup=True)
    old = ema.shadow["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # k = 1: decay min(0.999, 2 / 11)
    d = 2 / 11
    torch.testing.assert_close(ema.shadow["weight"], old - (1 - d) * (old - model.weight))
    assert ema.num_updates == 1


def test_learning_rate_warms_up_from_zero(tmp_path):
    t = Trainer(_config(warmup=4, lr=1e-3), tmp_path)
    lrs = []
    for x in _batches(5, size=2):
        t.train_step(x)
        lrs.append(t.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3])


def test_the_loss_falls_on_the_digits(tmp_path):
    from ncsn_fast.data import batch_at
    from ncsn_fast.digits import DigitsDataset
    data = DigitsDataset(8, 1)
    t = Trainer(_config(lr=2e-3), tmp_path, seed=3)
    fixed = batch_at(data, 0, 64, seed=9)

    def objective():
        state = t.generator.get_state()
        t.generator.manual_seed(123)
        with torch.no_grad():
            value = float(t.loss(t.prepare(fixed)))
        t.generator.set_state(state)
        return value
    before = objective()
    for step in range(40):
        t.train_step(batch_at(data, step, 32, seed=1))
    assert objective() < 0.7 * before


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "discrete"])
def test_resume_continues_exactly_and_the_layout_reads_back(tmp_path, continuous):
    batches = _batches(6)
    straight = Trainer(_config(continuous, warmup=3), tmp_path / "a")
    losses = [straight.train_step(x).item() for x in batches]
    first = Trainer(_config(continuous, warmup=3), tmp_path / "b")
    resumed = [first.train_step(x).item() for x in batches[:3]]
    path = first.save()
    second = Trainer.resume(_config(continuous, warmup=3), tmp_path / "b")
    assert second.step == 3 and second.ema.num_updates == 3
    resumed += [second.train_step(x).item() for x in batches[3:]]
    assert resumed == losses
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), k
    # The score-SDE code's layout, with config.json beside it; the loader applies the EMA.
    state = torch.load(path, weights_only=True)
    assert sorted(state) == ["ema", "model", "optimizer", "step"] and state["step"] == 3
    assert list(state["model"]) == [f"module.{k}" for k in first.model.state_dict()]
    assert state["ema"]["num_updates"] == 3 and state["ema"]["decay"] == 0.9
    model, cfg, info = load_checkpoint(path, return_info=True)
    assert info.layout == "score-SDE" and info.ema_applied and info.config_source.endswith("config.json")
    assert cfg["training"]["continuous"] == continuous
    trained = [p for p in model.parameters() if p.requires_grad]
    assert len(trained) == len(state["ema"]["shadow_params"])
    for p, s in zip(trained, state["ema"]["shadow_params"]):
        assert torch.equal(p, s)


def test_two_process_torchrun_matches_one_process(tmp_path):
    """torchrun, 2 CPU processes (gloo), 4 images each, against one process with the global batch of 8."""
    config = tmp_path / "digits_ncsnpp.json"
    config.write_text(json.dumps(_raw()))
    one, one_losses = train_cli(config, tmp_path / "one")
    two, two_losses = train_cli(config, tmp_path / "two", processes=2)
    assert len(one_losses) == 3 and two_losses == pytest.approx(one_losses, rel=1e-5)
    assert one["step"] == two["step"] == 3
    for k in one["model"]:
        torch.testing.assert_close(two["model"][k], one["model"][k], rtol=1e-4, atol=1e-6, msg=k)
    for a, b in zip(one["ema"]["shadow_params"], two["ema"]["shadow_params"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_our_format_keeps_the_ema_by_name(tmp_path):
    """What scripts/make_digits_model.py writes for an NCSN++: raw weights and the EMA shadow by name."""
    from ncsn_fast import save_checkpoint
    t = Trainer(_config(), tmp_path)
    for x in _batches(2):
        t.train_step(x)
    shadow = dict(t.ema.shadow)
    path = tmp_path / "ours.pth"
    save_checkpoint(path, t.model, t.config, ema_state=shadow, step=t.step)
    ema_model, cfg, info = load_checkpoint(path, return_info=True)
    raw_model = load_checkpoint(path, ema=False)[0]
    assert info.ema_applied and cfg.family == "ncsnpp"
    named = dict(ema_model.named_parameters())
    assert all(torch.equal(named[n], s) for n, s in shadow.items())
    assert any(not torch.equal(named[n], p) for n, p in raw_model.named_parameters() if n in shadow)
    torch.save({"ncsn_fast": 1, "config": cfg.to_dict(), "state_dict": t.model.state_dict(),
                "ema": {**shadow, "extra.weight": torch.zeros(1)}, "step": 2}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="EMA does not match.*extra.weight"):
        load_checkpoint(tmp_path / "bad.pth")


def test_training_after_sampling_in_one_process(tmp_path):
    """Sampling (inference mode) first must leave nothing behind that training cannot differentiate through."""
    from ncsn_fast.sampling import sample
    t = Trainer(_config(), tmp_path)
    sample(t.model.eval(), n=2, sampler="heun", steps=2, progress=False)
    t.model.train()
    assert torch.isfinite(t.train_step(_batches(1)[0]))
