"""The generator's training set (RGB, HSI or both mixed) and conditional training with maps of no class."""

from __future__ import annotations

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.generators.training_data import training_set


def _maps(n, k=3, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(k), size=(n, size, size)).transpose(0, 3, 1, 2).astype(np.float32)


def test_sources_and_the_mixing_ratio():
    rgb, hsi = _maps(30), _maps(12, seed=1)
    labels = np.array(["Beach", "Forest"] * 15, dtype=object)
    maps, labs = training_set("rgb", rgb, labels, hsi)
    assert len(maps) == 30 and labs[:2] == ["Beach", "Forest"]
    maps, labs = training_set("hsi", rgb, labels, hsi)
    assert len(maps) == 12 and labs == [None] * 12
    maps, labs = training_set("both", rgb, labels, hsi, hsi_share=0.25, seed=3)
    assert len(maps) == 40  # all 30 RGB maps and 10 HSI maps: a share of 0.25
    assert labs.count(None) == 10 and len(labs) - labs.count(None) == 30
    again, _ = training_set("both", rgb, labels, hsi, hsi_share=0.25, seed=3)
    np.testing.assert_array_equal(maps, again)
    maps, labs = training_set("both", rgb, labels, hsi, hsi_share=0.5, seed=3)
    assert labs.count(None) == 12 and len(labs) == 24  # the scarcer HSI side sets the size


@pytest.mark.parametrize("args, match", [
    (("pixels", _maps(4), ["A"] * 4, _maps(4)), "'pixels' unknown"),
    (("both", _maps(4), ["A"] * 4, _maps(4), 1.0), "strictly between 0 and 1"),
    (("both", _maps(4), ["A"] * 4, _maps(4, k=4)), "differ in k or size"),
    (("hsi", _maps(4), ["A"] * 4, None), "the HSI store is empty"),
])
def test_bad_training_sets_are_refused(args, match):
    with pytest.raises(UBFInputError, match=match):
        training_set(*args)


def test_a_conditional_model_trains_on_maps_without_class():
    from ubf_core.generators import TrainSettings, make_generator

    gen = make_generator("vae", 3, (8, 8), ["Beach", "Forest"])
    history = gen.fit(_maps(8), ["Beach", None, "Forest", None, "Beach", "Forest", None, None],
                      TrainSettings(steps=2, batch_size=4), progress=False)
    assert np.isfinite(history[0]["loss"])
    with pytest.raises(UBFInputError, match="'Desert' is not one the model was trained on"):
        gen.fit(_maps(2), ["Desert", None], TrainSettings(steps=1), progress=False)
