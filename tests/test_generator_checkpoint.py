"""Generator checkpoints (the long profile's) and params files that extend another."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ubf_core.config import load_params
from ubf_core.errors import UBFInputError
from ubf_core.generators import TrainSettings, make_generator
from ubf_core.generators.checkpoint import TRAINED_ON_FILE, load_checkpoint, save_checkpoint

TINY = dict(num_train_timesteps=10, block_out_channels=[8, 8], norm_num_groups=4)


def _maps(n=8, k=3, seed=0):
    a = np.random.default_rng(seed).random((n, k, 8, 8)).astype(np.float32)
    return a / a.sum(axis=1, keepdims=True)


@pytest.fixture()
def saved(tmp_path, one_torch_thread):
    gen = make_generator("ddpm", 3, (8, 8), ["a", "b"], **TINY)
    gen.fit(_maps(), ["a", "b"] * 4, settings=TrainSettings(steps=2, batch_size=4), progress=False)
    E = np.abs(np.random.default_rng(1).normal(size=(6, 3))) + 0.1
    wl = np.linspace(400, 700, 6)
    folder = save_checkpoint(gen, tmp_path / "ck", E, wl, {"steps": 2})
    return gen, folder, E, wl


def test_checkpoint_round_trip_gives_the_same_samples(saved):
    gen, folder, E, wl = saved
    loaded, prov = load_checkpoint(folder, name="ddpm", k=3, size=(8, 8), classes=["a", "b"], options=TINY,
                                   endmembers=E, wavelengths_nm=wl, max_angle_deg=5.0)
    assert prov == {"steps": 2}
    assert np.array_equal(gen.sample(2, seed=3, labels="a", sampler="ddim", steps=3),
                          loaded.sample(2, seed=3, labels="a", sampler="ddim", steps=3))
    assert not list(folder.parent.glob(".ck*"))                     # no temporary folder left behind


@pytest.mark.parametrize("change,match", [
    (dict(k=4), "checkpoint k 3 differs from this run's 4"),
    (dict(size=(16, 16)), r"checkpoint size \(8, 8\) differs"),
    (dict(classes=["a", "c"]), "checkpoint classes"),
    (dict(options={**TINY, "block_out_channels": [8, 16]}), "checkpoint option block_out_channels"),
    (dict(name="vae"), "checkpoint generator ddpm differs"),
])
def test_a_checkpoint_of_another_model_is_refused(saved, change, match):
    _, folder, E, wl = saved
    kw = dict(name="ddpm", k=3, size=(8, 8), classes=["a", "b"], options=TINY, endmembers=E, wavelengths_nm=wl,
              max_angle_deg=5.0)
    with pytest.raises(UBFInputError, match=match) as err:
        load_checkpoint(folder, **{**kw, **change})
    assert str(folder) in str(err.value) and "\n" not in str(err.value)


def test_a_checkpoint_of_other_endmembers_is_refused(saved):
    _, folder, E, wl = saved
    other = E.copy()
    other[:3, 1] *= 3.0                                                 # another spectrum shape for endmember 2
    kw = dict(name="ddpm", k=3, size=(8, 8), classes=["a", "b"], options=TINY, wavelengths_nm=wl, max_angle_deg=5.0)
    with pytest.raises(UBFInputError, match="endmember 2 is .* from this run's"):
        load_checkpoint(folder, endmembers=other, **kw)
    load_checkpoint(folder, endmembers=E * 2.0, **kw)                   # a brightness scale keeps the angle
    (folder / TRAINED_ON_FILE).unlink()
    with pytest.raises(UBFInputError, match="not a generator checkpoint"):
        load_checkpoint(folder, endmembers=E, **kw)


def test_params_file_extends_another(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 1\ngenerator: {name: ddpm, train: {steps: 10, batch_size: 4}}\n")
    (tmp_path / "long.yaml").write_text("extends: base.yaml\ngenerator: {train: {steps: 99}}\n")
    p = load_params(tmp_path / "long.yaml", complete=False)   # a partial base: only the merge is tested here
    assert p == {"seed": 1, "generator": {"name": "ddpm", "train": {"steps": 99, "batch_size": 4}}}
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(UBFInputError, match="cycle"):
        load_params(tmp_path / "loop.yaml")
    (tmp_path / "bad.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(UBFInputError, match="nowhere.yaml: params file not found"):
        load_params(tmp_path / "bad.yaml")


def test_the_long_profile_only_changes_generator_training():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    base, long = load_params(root / "params.yaml"), load_params(root / "params.long.yaml")
    assert {k for k in base if base[k] != long[k]} == {"generator"}
    assert long["generator"]["init_from_checkpoint"] is False and base["generator"]["init_from_checkpoint"] is True
    assert long["generator"]["train"]["steps"] > base["generator"]["train"]["steps"]
    assert json.loads(json.dumps(long["generator"]["options"])) == base["generator"]["options"]


def test_the_stage_refuses_to_overwrite_the_checkpoint_or_start_from_a_missing_one(tmp_path):
    from tasks.generator import initial_generator

    params = {"_root": str(tmp_path), "generator": {"options": TINY, "checkpoint": "ck", "init_from_checkpoint": True}}
    maps, E, wl = _maps(), np.ones((6, 3)), np.linspace(400, 700, 6)
    with pytest.raises(UBFInputError, match="generator.init_from_checkpoint: is on: pretrain_generator trains"):
        initial_generator(params, "ddpm", maps, ["a", "b"], E, wl, pretrain=True)
    with pytest.raises(UBFInputError, match="ck: generator.init_from_checkpoint is on but the checkpoint is missing"):
        initial_generator(params, "ddpm", maps, ["a", "b"], E, wl, pretrain=False)
    params["generator"]["init_from_checkpoint"] = False
    gen, started = initial_generator(params, "ddpm", maps, ["a", "b"], E, wl, pretrain=False)
    assert started is None and gen.k == 3 and gen.classes == ["a", "b"]


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0),
                                        -1, 1)))


def test_the_endmember_angle_tolerance_is_the_given_one(saved):
    """A retrained unmixing model a few degrees away (another CPU) passes at 5°, is refused at 1°."""
    _, folder, E, wl = saved
    nudged = E.copy()
    nudged[0, 0] *= 1.15                                                # endmember 1 a little off
    angle = float(_angles_deg(E, nudged)[0])
    assert 1.0 < angle < 5.0
    kw = dict(name="ddpm", k=3, size=(8, 8), classes=["a", "b"], options=TINY, wavelengths_nm=wl, endmembers=nudged)
    load_checkpoint(folder, max_angle_deg=5.0, **kw)
    with pytest.raises(UBFInputError, match=f"endmember 1 is {angle:.2f}° from this run's, more than 1.0°"):
        load_checkpoint(folder, max_angle_deg=1.0, **kw)
