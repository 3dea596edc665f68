"""The evaluation suite over candidate sets, its figures, and the HTML report (tiny data, real computations)."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.evaluation.figures import plot_metric_bars, plot_spectral_profiles, side_by_side
from ubf_core.evaluation.suite import Candidate, SuiteSettings, check_grid, evaluate_candidates
from ubf_core.metrics.features import train_feature_net
from ubf_core.reporting.html_report import Report

C, S = 12, 8
WL = np.linspace(400, 700, C)


def _scenes(seed: int, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Two kinds of smooth scenes (a bright rising and a dark falling spectrum in spatial halves)."""
    rng = np.random.default_rng(seed)
    rising, falling = np.linspace(0.1, 0.6, C), np.linspace(0.5, 0.05, C)
    cubes, labels = [], []
    for i in range(n):
        k = i % 2
        cube = np.empty((C, S, S), np.float32)
        cube[:, :, : S // 2] = (rising if k == 0 else falling)[:, None, None]
        cube[:, :, S // 2:] = (falling if k == 0 else rising)[:, None, None] * 0.8
        cubes.append(cube + rng.normal(0, 0.01, cube.shape).astype(np.float32))
        labels.append(k)
    return np.stack(cubes), np.array(labels)


@pytest.fixture(scope="module")
def trained():
    real, labels = _scenes(0, 16)
    return real, train_feature_net(real, labels, epochs=3, batch_size=8, seed=0, dim=8, width=8)


def test_a_copy_of_the_heldout_set_scores_best(trained):
    real, net = trained
    heldout, _ = _scenes(1)
    noise = np.random.default_rng(2).uniform(0, 0.6, heldout.shape).astype(np.float32)
    a = np.random.default_rng(3).dirichlet(np.ones(3), size=(len(heldout), S, S)).transpose(0, 3, 1, 2)
    table = evaluate_candidates({"copy": Candidate(heldout.copy(), a.astype(np.float32)), "noise": Candidate(noise)},
                                heldout, net, training_abundances=a, settings=SuiteSettings(kid_subsets=5))
    copy, noise_row = table["copy"], table["noise"]
    assert copy["F_p"] == pytest.approx(1.0, abs=1e-5) and copy["D_b"] == pytest.approx(1.0, abs=1e-5)
    assert copy["precision"] == 1.0 and copy["recall"] == 1.0
    assert noise_row["frechet"] > 100 * abs(copy["frechet"])
    assert noise_row["F_p"] < copy["F_p"] and noise_row["D_b"] < copy["D_b"]
    assert copy["abundance_hist_distance"] == pytest.approx(0.0, abs=1e-9)
    assert copy["sum_to_one_max"] < 1e-5 and "sum_to_one_max" not in noise_row
    assert copy["n"] == len(heldout)


def test_too_few_samples_name_the_minimum(trained):
    real, net = trained
    with pytest.raises(UBFInputError, match="at least 4"):
        evaluate_candidates({"tiny": Candidate(real[:2])}, real, net, None, SuiteSettings(pr_k=3))
    with pytest.raises(UBFInputError, match="held-out real set.*at least 4"):
        evaluate_candidates({"ok": Candidate(real)}, real[:3], net, None, SuiteSettings(pr_k=3))


def test_a_store_on_another_wavelength_grid_is_refused():
    check_grid("same", WL.copy(), WL)
    with pytest.raises(UBFInputError, match=r"synthetic\.zarr: wavelength grid 400–700 nm × 11 differs"):
        check_grid("synthetic.zarr", np.linspace(400, 700, 11), WL)
    with pytest.raises(UBFInputError, match="differs"):
        check_grid("shifted.zarr", WL + 5.0, WL)


def test_figures_and_report_are_written_and_self_contained(tmp_path, trained):
    real, _ = trained
    sets = {"real": real, "flat": np.full_like(real, 0.2)}
    side_by_side(sets, WL, tmp_path / "pairs.png", n=4)
    plot_spectral_profiles(sets, WL, tmp_path / "profiles.png", n_pixels=3, region=4, seed=0)
    plot_metric_bars({"a": {"F_p": 0.9}, "b": {"F_p": 0.8}}, ["F_p"], tmp_path / "bars.png")
    for name in ("pairs.png", "profiles.png", "bars.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    page = (Report("t <&>").heading("metrics").table([{"set": "a", "F_p": 0.123456, "n": 3}])
            .image(tmp_path / "pairs.png", "pairs").image(tmp_path / "missing.png").text("note", note=True)
            .write(tmp_path / "out" / "report.html"))
    text = page.read_text()
    assert "<title>t &lt;&amp;&gt;</title>" in text and "<td>0.1235</td><td>3</td>" in text
    embedded = text.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(embedded) == (tmp_path / "pairs.png").read_bytes()
    assert "picture not available: missing.png" in text and "http" not in text


def _hsi_store(root, sources):
    import xarray as xr

    n = len(sources)
    ds = xr.Dataset({"reflectance": (("patch", "wavelength", "y", "x"), np.full((n, C, S, S), 0.2, np.float32))},
                    coords={"wavelength": WL, "source": ("patch", np.array(sources, dtype=object).astype(str))})
    ds.to_zarr(root / "stores" / "hsi.zarr", mode="w", consolidated=False)   # where catalog.yaml puts hsi
    return {"_root": str(root), "seed": 0}


def test_heldout_and_test_scene_errors_name_the_problem(tmp_path):
    from tasks.classify import real_sets
    from tasks.evaluate import real_split

    params = _hsi_store(tmp_path, ["abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2", "jasper"])
    params["heldout_sources"] = ["abu-beach-2", "nowhere"]
    with pytest.raises(UBFInputError, match=r"heldout_sources \['nowhere'\] are not scenes of"):
        real_split(params)
    params["heldout_sources"] = ["abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2", "jasper"]
    with pytest.raises(UBFInputError, match="some, not all"):
        real_split(params)
    params["heldout_sources"] = ["abu-beach-2"]
    train, sources, heldout, wl = real_split(params)
    assert len(heldout) == 1 and "abu-beach-2" not in sources and np.allclose(wl, WL)

    params["classification"] = {"test_scenes": ["abu-beach-2", "abu-urban-2"], "real_per_class": {"forest": 1}}
    with pytest.raises(UBFInputError, match=r"real_per_class names \['forest'\]; the classes are \['beach', 'urban'\]"):
        real_sets(params)
    params["classification"]["real_per_class"] = {"beach": 1}
    train, test, scenes = real_sets(params)   # jasper does not follow <set>-<class>-<n>: not labelled
    assert scenes == ["abu-beach-2", "abu-urban-2"] and train.class_counts() == {"beach": 1, "urban": 1}
    assert set(map(str, test.sources)) == {"abu-beach-2", "abu-urban-2"}


def test_matching_draw_mirrors_the_class_mix_without_repeats():
    from ubf_core.evaluation.realism_suite import matching_draw

    labels = np.array(["a"] * 5 + ["b"] * 3)
    want = ["b", "a", "b", "a", None]
    idx = matching_draw(labels, want, np.random.default_rng(0), "maps")
    assert [labels[i] for i in idx[:4]] == ["b", "a", "b", "a"] and len(set(idx)) == len(idx)
    with pytest.raises(UBFInputError, match="maps: too few real maps of class 'b': the comparison needs 4"):
        matching_draw(labels, ["b"] * 4, np.random.default_rng(0), "maps")


def test_fcls_maps_recover_the_abundances_of_a_mixture():
    from ubf_core.unmixing.baseline import fcls_maps

    rng = np.random.default_rng(0)
    E = np.abs(rng.normal(size=(C, 3))).astype(np.float32) + 0.05
    a = rng.random((2, 3, 4, 4)).astype(np.float32)
    a /= a.sum(axis=1, keepdims=True)
    cubes = np.einsum("ck,nkhw->nchw", E, a)
    np.testing.assert_allclose(fcls_maps(cubes, E), a, atol=1e-3)


def test_one_per_class_takes_the_classes_in_turn():
    from ubf_core.evaluation.realism_suite import one_per_class

    assert one_per_class(["a", "a", "a", "b", "c", "c"], 5) == [0, 3, 4, 1, 5]
