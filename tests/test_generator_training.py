"""How generators are trained: settings from params, the lr schedule, the weight EMA, dihedral augmentation,
held-out RGB images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ubf_core.errors import UBFInputError
from ubf_core.generators.training import TrainSettings, WeightEMA, dihedral, lr_factor
from ubf_core.generators.training_data import heldout_images


def test_settings_from_params_reject_unknown_and_bad_values():
    s = TrainSettings.from_params({"steps": 10, "batch_size": 4, "device": "auto"})
    assert s.steps == 10 and s.batch_size == 4
    with pytest.raises(UBFInputError, match=r"generator.train: unknown key\(s\) \['epochs'\]"):
        TrainSettings.from_params({"epochs": 3})
    with pytest.raises(UBFInputError, match="steps must be an integer ≥ 0"):
        TrainSettings(steps=-1)
    with pytest.raises(UBFInputError, match="decay must be one of"):
        TrainSettings(decay="linear")
    with pytest.raises(UBFInputError, match="ema_decay"):
        TrainSettings(ema_decay=1.0)


def test_lr_warms_up_then_decays_to_the_floor():
    s = TrainSettings(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(i, s) for i in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:10], factors[1:10]))        # rising during warm-up
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))        # falling after
    assert factors[-1] == pytest.approx(0.1)
    assert lr_factor(50, TrainSettings(steps=100, decay="constant")) == 1.0


def test_ema_follows_the_weights_slowly_and_is_copied_in():
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.zero_()
    ema = WeightEMA({"net": net}, decay=0.9)
    for _ in range(200):
        with torch.no_grad():
            net.weight.fill_(1.0)
        ema.update()
    ema.copy_to()
    assert 0.99 < float(net.weight[0, 0]) <= 1.0                  # converged to the constant weights
    with torch.no_grad():
        net.weight.zero_()
    ema = WeightEMA({"net": net}, decay=0.9)
    for _ in range(100):
        ema.update()                                              # the average settles at 0
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update()
    ema.copy_to()
    assert float(net.weight[0, 0]) == pytest.approx(0.1, abs=1e-6)   # one step moves it by 1 - d only


def test_dihedral_maps_each_map_to_one_of_its_eight_symmetries():
    x = torch.arange(2 * 16 * 2 * 3 * 3, dtype=torch.float32).reshape(32, 2, 3, 3)
    out = dihedral(x, torch.Generator().manual_seed(0))
    seen = set()
    for a, b in zip(x, out):
        options = [a, a.flip(-1), a.flip(-2), a.flip(-1).flip(-2)]
        options += [o.transpose(-1, -2) for o in options]
        hit = [i for i, o in enumerate(options) if torch.equal(o, b)]
        assert hit, "not a symmetry of the input map"
        seen.add(hit[0])
    assert len(seen) >= 4                                          # not always the same transform
    again = dihedral(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                                 # seeded


def test_heldout_images_take_whole_images_per_class():
    sources = np.repeat([f"c{c}/img{i}.jpg" for c in range(2) for i in range(5)], 3)    # 3 patches per image
    labels = np.repeat(["A"] * 5 + ["B"] * 5, 3)
    out = heldout_images(sources, labels, 2, seed=0)
    assert out.sum() == 2 * 2 * 3
    for cls in ("A", "B"):
        assert len(set(sources[out & (labels == cls)])) == 2
    for s in set(sources):                                        # never part of an image
        assert len(set(out[sources == s])) == 1
    assert np.array_equal(out, heldout_images(sources, labels, 2, seed=0))
    assert not heldout_images(sources, labels, 0).any()
    with pytest.raises(UBFInputError, match="class 'A' has 5 images; holding out 5"):
        heldout_images(sources, labels, 5)
