"""Tests of ubf_core.classification: models, augmentation, training, labelled sets, the experiment and its reports."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from ubf_core.classification import (ARMS, PAPER_REFERENCE, LabelledPatches, class_balanced_counts, classic_augment,
                                     evaluate, hsi_labels, labelled_from_scenes, make_classifier, map_rgb_classes,
                                     pick_test_scenes, read_labelled_folder, results_metrics, results_table_markdown,
                                     rgb_sample_counts, run_experiment, scene_class, split_by_scene, train_classifier,
                                     write_labelled_folder)
from ubf_core.errors import UBFInputError

N_BANDS, SIZE = 8, 8
CLASSES = ["airport", "beach", "urban"]
WAVELENGTH = np.linspace(400, 700, N_BANDS)


def toy_patches(n_per_class, seed=0, classes=3, noise=0.05):
    """Patches (n, 8, 8, 8) whose mean spectrum depends on the class, plus spatial texture and noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, N_BANDS)
    spectra = [0.2 + 0.3 * t, 0.5 - 0.3 * t, 0.3 + 0.2 * np.sin(2 * np.pi * t)][:classes]
    xs, ys = [], []
    for k in range(classes):
        n = n_per_class[k] if isinstance(n_per_class, (list, tuple)) else n_per_class
        texture = rng.random((n, 1, SIZE, SIZE)) * 0.3 + 0.85
        x = spectra[k][None, :, None, None] * texture + noise * rng.standard_normal((n, N_BANDS, SIZE, SIZE))
        xs.append(x)
        ys.append(np.full(n, k))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------------ models

@pytest.mark.parametrize("name", ["cnn", "spectral_resnet"])
@pytest.mark.parametrize("hw", [(8, 8), (12, 16)])
def test_models_output_shape(name, hw):
    model = make_classifier(name, N_BANDS, 3, seed=0).eval()
    out = model(torch.rand(5, N_BANDS, *hw))
    assert out.shape == (5, 3) and out.dtype == torch.float32


def test_make_classifier_seed_and_errors():
    a, b = make_classifier("cnn", N_BANDS, 3, seed=1), make_classifier("cnn", N_BANDS, 3, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(UBFInputError, match="unknown classifier 'alexnet'.*cnn"):
        make_classifier("alexnet", N_BANDS, 3)
    with pytest.raises(UBFInputError, match="unknown option 'depth'"):
        make_classifier("cnn", N_BANDS, 3, depth=4)


# ------------------------------------------------------------------------------------------------ augmentation

def test_augment_shape_and_reproducible():
    x = torch.rand(6, N_BANDS, SIZE, SIZE)
    before = x.clone()
    a = classic_augment(x, torch.Generator().manual_seed(3))
    b = classic_augment(x, torch.Generator().manual_seed(3))
    c = classic_augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, before)                       # input untouched
    rect = classic_augment(torch.rand(4, N_BANDS, 6, 10), torch.Generator().manual_seed(0))
    assert rect.shape == (4, N_BANDS, 6, 10)


def test_augment_flips_and_rotations_keep_pixel_spectra():
    x = torch.rand(8, N_BANDS, SIZE, SIZE)
    out = classic_augment(x, torch.Generator().manual_seed(0), {"affine_p": 0.0})
    for i in range(len(x)):                             # a permutation of the same pixels
        a = torch.sort(x[i].reshape(N_BANDS, -1), dim=1).values
        b = torch.sort(out[i].reshape(N_BANDS, -1), dim=1).values
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown augmentation option 'shear'"):
        classic_augment(x, torch.Generator(), {"shear": 1})


# ---------------------------------------------------------------------------------------------------- training

def _fit(seed, x, y, name="cnn", **kw):
    model = make_classifier(name, N_BANDS, 3, seed=seed)
    train_classifier(model, x, y, epochs=kw.pop("epochs", 6), batch_size=16, lr=3e-3, seed=seed, **kw)
    return model


def test_training_beats_chance_and_is_deterministic():
    x, y = toy_patches([40, 20, 10], seed=0)           # imbalanced
    xt, yt = toy_patches(15, seed=1)
    m1 = _fit(0, x, y)
    m2 = _fit(0, x, y)
    m3 = _fit(1, x, y)
    r1, r2, r3 = (evaluate(m, xt, yt, 3) for m in (m1, m2, m3))
    assert r1["overall"] > 0.8                          # chance is 1/3
    assert len(r1["per_class"]) == 3 and min(r1["per_class"]) > 0.5
    assert r1["overall"] == r2["overall"] and r1["per_class"] == r2["per_class"]
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert any(not torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m3.state_dict().values()))
    assert sum(map(sum, r1["confusion"])) == len(yt)


def test_training_second_model_augment_and_sampler():
    x, y = toy_patches([30, 15, 10], seed=2)
    xt, yt = toy_patches(10, seed=3)
    seen = []
    model = _fit(0, x, y, name="spectral_resnet", augment=True, balance="sampler", epochs=5,
                 progress=lambda e, rec: seen.append(rec))
    assert [r["epoch"] for r in seen] == [1, 2, 3, 4, 5]
    assert evaluate(model, xt, yt, 3)["overall"] > 0.6


def test_evaluate_absent_class_is_nan():
    x, y = toy_patches(5, seed=0)
    model = make_classifier("cnn", N_BANDS, 3, seed=0).eval()
    res = evaluate(model, x[y < 2], y[y < 2], 3)
    assert np.isnan(res["per_class"][2]) and res["support"] == [5, 5, 0]


# --------------------------------------------------------------------------------------------- labelled: scenes

def test_scene_class_rule():
    assert scene_class("abu-airport-1") == "airport"
    assert scene_class("abu-dense-urban-12") == "dense-urban"
    with pytest.raises(UBFInputError, match="airport_1"):
        scene_class("airport_1")


SCENES = ["abu-airport-1", "abu-airport-2", "abu-airport-3", "abu-beach-1", "abu-beach-2",
          "abu-urban-1", "abu-urban-2", "abu-urban-3"]


def test_split_by_scene_never_leaks():
    sources = np.repeat(SCENES, 4)
    for seed in range(6):
        test_scenes = pick_test_scenes(sources, seed=seed)
        assert len(test_scenes) == 3 and sorted({scene_class(s) for s in test_scenes}) == CLASSES
        train, test = split_by_scene(sources, test_scenes)
        assert set(sources[train]).isdisjoint(test_scenes)
        assert set(sources[test]) == set(test_scenes)
        assert len(train) + len(test) == len(sources)
        assert {scene_class(s) for s in sources[train]} == set(CLASSES)   # every class left for training
    assert pick_test_scenes(sources, seed=5) == pick_test_scenes(sources, seed=5)
    with pytest.raises(UBFInputError, match="abu-forest-1.*known scenes"):
        split_by_scene(sources, ["abu-forest-1"])


def test_split_accepts_zarr_string_ids():
    sources = np.array(np.repeat(SCENES, 2), dtype=np.dtypes.StringDType())   # what xarray gives from a Zarr store
    train, test = split_by_scene(sources, ["abu-beach-2"])
    assert len(test) == 2 and len(train) == 14
    data = labelled_from_scenes(np.zeros((16, N_BANDS, 4, 4), np.float32), sources)
    assert data.class_names == CLASSES


def test_pick_test_scenes_needs_two_scenes_per_class():
    with pytest.raises(UBFInputError, match="'beach' has only abu-beach-1"):
        pick_test_scenes(["abu-airport-1", "abu-airport-2", "abu-beach-1"], seed=0)
    mapped = pick_test_scenes(["s1", "s2", "s3", "s4"], mapping={"s1": "a", "s2": "a", "s3": "b", "s4": "b"})
    assert len(mapped) == 2


def test_labelled_from_scenes_classes():
    x = np.zeros((len(SCENES), N_BANDS, 4, 4), np.float32)
    data = labelled_from_scenes(x, SCENES, wavelength=WAVELENGTH)
    assert data.class_names == CLASSES
    assert data.class_counts() == {"airport": 3, "beach": 2, "urban": 3}
    data = labelled_from_scenes(x, SCENES, mapping={"abu-beach-1": "urban", "abu-beach-2": "urban"})
    assert data.class_names == ["airport", "urban"]


# --------------------------------------------------------------------------------------------- labelled: folder

def _folder_set():
    x, y = toy_patches([3, 2, 4], seed=5)
    return LabelledPatches(x, y, CLASSES, [f"p{i}" for i in range(len(y))], WAVELENGTH)


def test_folder_round_trip(tmp_path):
    data = _folder_set()
    write_labelled_folder(tmp_path / "set", data)
    back = read_labelled_folder(tmp_path / "set")
    assert back.class_names == CLASSES
    np.testing.assert_array_equal(back.x, data.x)
    np.testing.assert_array_equal(back.y, data.y)
    np.testing.assert_allclose(back.wavelength, WAVELENGTH)
    assert back.sources[0] == "airport/airport_00000"
    sub = read_labelled_folder(tmp_path / "set", class_names=["urban", "beach"])
    assert sub.class_names == ["urban", "beach"] and sub.class_counts() == {"urban": 4, "beach": 2}


def test_folder_json_wavelengths_and_geotiff(tmp_path):
    import xarray as xr

    from ubf_core.io import write_geotiff

    root = tmp_path / "set"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "wavelengths.json").write_text(json.dumps({"wavelength_nm": WAVELENGTH.tolist()}))
    x, _ = toy_patches(1, seed=0, classes=2)
    np.save(root / "a" / "p0.npy", x[0])
    cube = xr.DataArray(x[1], dims=("wavelength", "y", "x"), coords={"wavelength": WAVELENGTH}, name="reflectance")
    write_geotiff(cube, root / "b" / "p0.tif")
    back = read_labelled_folder(root)
    assert back.class_names == ["a", "b"]
    np.testing.assert_allclose(back.x, x, rtol=1e-6)


def test_folder_errors(tmp_path):
    data = _folder_set()
    root = write_labelled_folder(tmp_path / "set", data)
    (root / "forest").mkdir()
    with pytest.raises(UBFInputError, match=r"forest: class folder 'forest' holds no patch files"):
        read_labelled_folder(root)
    (root / "forest").rmdir()
    bad = root / "beach" / "beach_00009.npy"
    np.save(bad, np.zeros((N_BANDS, 4, 4), np.float32))
    with pytest.raises(UBFInputError, match=r"beach_00009\.npy: patch has shape 8×4×4, expected 8×8×8") as err:
        read_labelled_folder(root)
    assert "\n" not in str(err.value)
    bad.unlink()
    (root / "wavelengths.txt").unlink()
    with pytest.raises(UBFInputError, match=r"wavelengths\.txt: wavelength file missing"):
        read_labelled_folder(root)
    (root / "wavelengths.txt").write_text("400\n500\n")
    with pytest.raises(UBFInputError, match=r"2 wavelengths but the patch airport_00000\.npy has 8 bands"):
        read_labelled_folder(root)


# ------------------------------------------------------------------------------------------------ experiment

def test_class_balanced_counts():
    assert class_balanced_counts({"a": 10, "b": 40, "c": 60}, 50) == {"a": 40, "b": 10, "c": 0}
    assert class_balanced_counts([10, 40], 50, mode="fixed") == [50, 50]


RGB = ["Airport", "Beach", "DenseResidential", "MediumResidential", "Commercial", "Industrial", "Forest"]
MAPPING = {"Airport": "airport", "Beach": "beach", "DenseResidential": "urban", "MediumResidential": "urban",
           "Commercial": "urban", "Industrial": "urban"}


def test_map_rgb_classes():
    feeds = map_rgb_classes(MAPPING, RGB, CLASSES)
    assert feeds == {"airport": ["Airport"], "beach": ["Beach"],
                     "urban": ["DenseResidential", "MediumResidential", "Commercial", "Industrial"]}
    with pytest.raises(UBFInputError, match=r"RGB class 'Harbour' does not exist.*known RGB classes: Airport"):
        map_rgb_classes({**MAPPING, "Harbour": "urban"}, RGB, CLASSES)
    with pytest.raises(UBFInputError, match=r"HSI class 'urbn' does not exist \(did you mean 'urban'\?\).*airport"):
        map_rgb_classes({"Airport": "urbn"}, RGB, CLASSES)


def test_rgb_counts_and_labels():
    feeds = map_rgb_classes(MAPPING, RGB, CLASSES)
    counts = rgb_sample_counts({"airport": 3, "beach": 0, "urban": 10}, feeds)
    assert counts == {"Airport": 3, "Beach": 0, "DenseResidential": 3, "MediumResidential": 3, "Commercial": 2,
                      "Industrial": 2}
    with pytest.raises(UBFInputError, match="'beach' needs 2 synthetic patches but no RGB class"):
        rgb_sample_counts({"beach": 2}, {"beach": []})
    y, keep = hsi_labels(["Industrial", "Forest", "Beach"], feeds, CLASSES)
    assert y.tolist() == [2, 1] and keep.tolist() == [True, False, True]


def test_run_experiment_and_reports():
    x, y = toy_patches([12, 6, 4], seed=0)
    real = LabelledPatches(x, y, CLASSES, ["r"] * len(y), WAVELENGTH)
    xt, yt = toy_patches(6, seed=1)
    test = LabelledPatches(xt, yt, CLASSES, ["t"] * len(yt), WAVELENGTH)
    xs, ys = toy_patches(12, seed=2)
    order = [2, 0, 1]                                      # synthetic classes in another order: matched by name
    syn = LabelledPatches(xs, np.array([order.index(k) for k in ys]), [CLASSES[k] for k in order],
                          ["s"] * len(ys), WAVELENGTH)
    records = []
    result = run_experiment(real, test, syn, seeds=[0, 1], progress=records.append,
                            settings={"epochs": 2, "batch_size": 8, "n_per_class": 12})
    assert len(result.runs) == len(records) == 3 * 2 * 2
    assert set(result.summary) == {(a, m) for a in ARMS for m in ("cnn", "spectral_resnet")}
    syn_runs = [r for r in result.runs if r["arm"] == "synthetic"]
    assert all(r["train_counts"] == [12, 12, 12] for r in syn_runs)   # topped up to N per class
    s = result.summary[("real", "cnn")]
    assert s["n_seeds"] == 2 and len(s["per_class_mean"]) == 3 and 0 <= s["oa_mean"] <= 1 and s["oa_std"] >= 0

    table = results_table_markdown(result)
    assert table.startswith("| arm | model | OA mean ± std (%)")
    for arm in ARMS:
        assert f"| {arm} | cnn |" in table and f"| {arm} | spectral_resnet |" in table
    assert "89.5 %" in table and "92.7 %" in table and "94.3 %" in table and "another data set" in table
    assert PAPER_REFERENCE in table
    assert "89.5" not in results_table_markdown(result, paper_reference=None)

    metrics = results_metrics(result)
    assert set(metrics) >= {"cnn/real/oa_mean", "spectral_resnet/synthetic/aa_std", "cnn/augment/per_class/beach_mean"}
    json.dumps(metrics)


def test_run_experiment_errors():
    x, y = toy_patches(3, seed=0)
    with pytest.raises(UBFInputError, match="synthetic arm needs a synthetic set"):
        run_experiment((x, y), (x, y), None, seeds=[0])
    with pytest.raises(UBFInputError, match="unknown arm 'mixup'"):
        run_experiment((x, y), (x, y), None, arms=["mixup"], seeds=[0])
    with pytest.raises(UBFInputError, match="class 'airport' needs 10 synthetic patches, the set holds 3"):
        run_experiment(LabelledPatches(x, y, CLASSES, ["r"] * len(y)), (x, y), (x, y), arms=["synthetic"],
                       seeds=[0], settings={"n_per_class": 13, "epochs": 1})
    with pytest.raises(UBFInputError, match="unknown key 'epoch'"):
        run_experiment((x, y), (x, y), arms=["real"], seeds=[0], settings={"epoch": 1})


def test_library_imports_no_orchestration():
    import subprocess

    code = ("import sys, ubf_core.classification; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'mlflow', 'dvc')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
