"""The realism verdicts, the captioned realism figures, and the report section that shows them (tiny, no training)."""

from __future__ import annotations

import base64
import copy
import json

import numpy as np
import pytest
from PIL import Image

from ubf_core.evaluation.figures import (abundance_rows, cubes_to_rgb, endmember_colours, labelled_rows,
                                         rgb_stretch, tile_layout)
from ubf_core.evaluation.verdicts import (class_fidelity_table, column_label, metric_table, per_class_table,
                                          table_metrics, verdict_lines)

REALISM = {
    "abundance": {
        "ddpm": {"n": 128, "c2st": 0.81, "c2st_stderr": 0.03, "psd_distance": 0.12, "gradient_distance": 0.03,
                 "purity_distance": 0.05, "nn_ratio": 0.95, "copy_share": 0.0},
        "real_vs_real": {"n": 128, "c2st": 0.53, "c2st_stderr": 0.03, "psd_distance": 0.05,
                         "gradient_distance": 0.01, "purity_distance": 0.02, "nn_ratio": 0.98, "copy_share": 0.0},
        "vae": {"c2st": 0.95, "psd_distance": 0.30, "nn_ratio": 0.2, "copy_share": 0.4},
        "gan": {"c2st": 0.97, "psd_distance": 0.10},
        "gmm": {"c2st": 1.0},
    },
    "hsi": {"real_vs_real": {"n": 64, "c2st": 0.55, "c2st_stderr": 0.04},
            "ddpm": {"n": 64, "c2st": 0.60, "c2st_stderr": 0.04, "psd_distance": 0.2}},
    "class_fidelity": {"chance": 0.125, "classes": ["Airport", "Beach", "Urban"],
                       "real_floor": {"accuracy": 0.6, "per_class": {"Airport": 0.7, "Beach": 0.5, "Urban": 0.6}},
                       "ddpm": {"cas": 0.4, "cas_per_class": {"Airport": 0.55, "Beach": 0.2, "Urban": 0.45},
                                "tstr": 0.3},
                       "vae": {"cas": 0.25, "cas_per_class": {"Airport": 0.3}, "tstr": 0.5}},
    "directions": {"c2st": "0.5 is ideal: a classifier cannot tell (closer to 0.5 is better)",
                   "psd_distance": "lower is better", "cas": "higher is better"},
}


def _line(lines: list[str], start: str) -> str:
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


# ------------------------------------------------------------------------------------------------ verdicts

def test_verdicts_compare_with_the_floor_and_each_baseline():
    lines = verdict_lines(REALISM, "ddpm")
    c2st = _line(lines, "C2ST on abundance maps")
    assert "0.81 ± 0.03" in c2st and "real-vs-real floor 0.53" in c2st and "worse than the floor by 0.28" in c2st
    assert "better than vae (0.95), gan (0.97), gmm (1.00)" in c2st
    psd = _line(lines, "Radial power-spectrum distance on abundance maps")
    assert "2.4× the floor" in psd and "better than vae (0.3)" in psd and "worse than gan (0.1)" in psd
    assert "gmm" not in psd                      # gmm has no psd_distance: not compared
    # a c2st of 0.45 is as far from 0.5 as 0.55: closer to 0.5 wins, whichever side
    near = copy.deepcopy(REALISM)
    near["abundance"]["ddpm"]["c2st"] = 0.45
    near["abundance"]["gan"]["c2st"] = 0.40
    c2st = _line(verdict_lines(near, "ddpm"), "C2ST on abundance maps")
    assert "within noise of the floor" in c2st and "better than vae (0.95), gan (0.40), gmm (1.00)" in c2st
    near["abundance"]["ddpm"]["c2st"] = 0.52
    assert "as hard to tell from real as real data is from itself" in verdict_lines(near, "ddpm")[0]


def test_memorisation_is_flagged_and_copying_denied_otherwise():
    lines = verdict_lines(REALISM, "ddpm")
    assert "no sign of copying" in _line(lines, "Nearest-neighbour ratio on abundance maps")
    assert "no sign of copying" in _line(lines, "Share of near-copies")
    vae = verdict_lines(REALISM, "vae")
    assert "looks like copies of the training set" in _line(vae, "Nearest-neighbour ratio on abundance maps")
    assert "looks like copies of the training set" in _line(vae, "Share of near-copies")
    only_share = copy.deepcopy(REALISM)
    only_share["abundance"]["vae"]["nn_ratio"] = 1.0   # not copied by one measure, copied by the other
    vae = verdict_lines(only_share, "vae")
    assert "no sign of copying" in _line(vae, "Nearest-neighbour ratio")
    assert "looks like copies" in _line(vae, "Share of near-copies")


def test_missing_metrics_are_skipped_and_a_missing_floor_is_said():
    lines = verdict_lines(REALISM, "ddpm")
    hsi = [line for line in lines if "HSI cubes" in line]
    assert len(hsi) == 2                        # c2st and psd only: no gradient/purity/memorisation lines
    assert "no floor measured" in _line(hsi, "Radial power-spectrum distance on HSI cubes")
    assert "real-vs-real floor 0.55" in _line(hsi, "C2ST on HSI cubes")
    gmm = verdict_lines(REALISM, "gmm")
    assert [line.split(":")[0] for line in gmm if "abundance" in line] == ["C2ST on abundance maps"]
    assert "No realism figures for gmm on HSI cubes." in gmm and "No class-fidelity figures for gmm." in gmm
    assert verdict_lines({}, "ddpm") == [] and verdict_lines(None, "ddpm") == []


def test_class_fidelity_verdicts_and_tables():
    lines = verdict_lines(REALISM, "ddpm")
    cas = _line(lines, "Classification accuracy score")
    assert "0.4 (higher is better)" in cas and "from 0.2 (Beach) to 0.55 (Airport)" in cas
    assert "real data (train and test on real) 0.6" in cas and "chance 0.125" in cas
    assert "0.2 below real data" in cas and "better than vae (0.25)" in cas
    tstr = _line(lines, "TSTR")
    assert "0.3" in tstr and "worse than vae (0.5)" in tstr

    rows = class_fidelity_table(REALISM["class_fidelity"])
    assert [r["set"] for r in rows] == ["real (train and test on real)", "ddpm", "vae"]
    assert rows[1]["worst class"] == "Beach 0.2" and rows[1]["best class"] == "Airport 0.55"
    per = per_class_table(REALISM["class_fidelity"])
    assert [r["class"] for r in per] == ["Airport", "Beach", "Urban"] and per[1] == {
        "class": "Beach", "real": 0.5, "ddpm": 0.2, "vae": None}


def test_metric_table_puts_the_floor_first():
    rows = metric_table(REALISM["abundance"])
    assert [r["set"] for r in rows] == ["real_vs_real", "ddpm", "vae", "gan", "gmm"]
    assert rows[0]["c2st"] == 0.53 and metric_table(None) == []
    assert table_metrics(rows)[:3] == ["n", "c2st", "c2st_stderr"]
    assert column_label("c2st") == "c2st (0.5 best)" and column_label("psd_distance") == "psd_distance (lower better)"
    assert column_label("new_metric", {"new_metric": "higher is better"}) == "new_metric (higher better)"
    assert column_label("n") == "n"


# ------------------------------------------------------------------------------------------------ figures

WL = np.linspace(400, 1000, 25)


def _cubes(seed: int, n: int = 5, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.5, (n, len(WL), size, size)).astype(np.float32)


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_labelled_rows_share_one_stretch(tmp_path):
    real = _cubes(0)
    caps = [f"class {i}" for i in range(len(real))]
    one = labelled_rows({"held-out real": (real, caps)}, WL, tmp_path / "one.png", n=4, scale=2)
    rows = {"held-out real": (real, caps), "copy": (real.copy(), caps), "brighter": (real * 2, caps)}
    three = labelled_rows(rows, WL, tmp_path / "three.png", n=4, scale=2)
    a, b = _png(one), _png(three)
    assert b.shape[0] > a.shape[0] and b.shape[1] == a.shape[1]
    assert not list(tmp_path.glob(".*"))             # no temporary file left behind

    layout = tile_layout(list(rows), 4, 8, 8, 2)
    assert (layout.height, layout.width) == b.shape[:2]

    def tile(name, j):
        x0, y0, x1, y1 = layout.boxes[name][j]
        return b[y0:y1, x0:x1]

    stretch = rgb_stretch(real, WL)
    expected = cubes_to_rgb(real[[0]], WL, stretch)[0].repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(tile("held-out real", 0), expected)   # tiles sit where the layout says
    for j in range(4):
        np.testing.assert_array_equal(tile("copy", j), tile("held-out real", j))
        # one stretch for all rows: twice the reflectance renders brighter (a stretch per row would hide it)
        assert tile("brighter", j).astype(int).mean() > tile("held-out real", j).astype(int).mean() + 20

    # an explicit stretch is used as given: a stretch far above the data renders black
    labelled_rows({"dark": (real, caps)}, WL, tmp_path / "dark.png", n=4, scale=2,
                  stretch=np.array([[5.0] * 3, [6.0] * 3]))
    x0, y0, x1, y1 = tile_layout(["dark"], 4, 8, 8, 2).boxes["dark"][0]
    assert _png(tmp_path / "dark.png")[y0:y1, x0:x1].max() == 0

    with pytest.raises(ValueError, match="3 captions for 5 tiles"):
        labelled_rows({"bad": (real, caps[:3])}, WL, tmp_path / "bad.png")


def test_abundance_rows_colour_pure_pixels_by_endmember(tmp_path):
    k, n, s = 3, 4, 6
    pure = np.zeros((n, k, s, s), np.float32)
    for i in range(n):
        pure[i, i % k] = 1.0
    mixed = np.full((n, k, s, s), 1 / k, np.float32)
    rows = {"held-out real": (pure, ["a", "b", "c", "d"]), "synthetic": (mixed, ["x"] * n)}
    path = abundance_rows(rows, tmp_path / "abu.png", n=n, scale=2)
    img = _png(path)
    layout = tile_layout(list(rows), n, s, s, 2)
    assert img.shape[1] == layout.width and img.shape[0] > layout.legend_top   # the legend sits under the grid
    colours = (endmember_colours(k) * 255).round().astype(np.uint8)
    for i in range(n):
        x0, y0, x1, y1 = layout.boxes["held-out real"][i]
        assert (img[y0:y1, x0:x1] == colours[i % k]).all()
    x0, y0, x1, y1 = layout.boxes["synthetic"][0]
    blend = np.round(endmember_colours(k).mean(axis=0) * 255)
    assert np.abs(img[y0:y1, x0:x1].astype(float) - blend).max() <= 1
    assert len({tuple(c) for c in colours}) == k                                  # distinct colours
    with pytest.raises(ValueError, match="different numbers of endmembers"):
        abundance_rows({"a": (pure, []), "b": (pure[:, :2], [])}, tmp_path / "bad.png")


# ------------------------------------------------------------------------------------------------ report

def _project(tmp_path, metrics: dict, pictures: bool = True) -> dict:
    (tmp_path / "reports" / "evaluation").mkdir(parents=True)
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(metrics))
    if pictures:
        real = _cubes(0)
        labelled_rows({"held-out real": (real, ["Beach"] * 5), "hud": (real, ["Beach"] * 5)}, WL,
                      tmp_path / "reports" / "evaluation" / "realism_samples.png", n=2)
    return {"_root": str(tmp_path)}     # the stores and reports where catalog.yaml puts them


def test_report_renders_the_realism_section(tmp_path):
    from tasks.report import build_report

    realism = copy.deepcopy(REALISM)
    for section in ("abundance", "hsi", "class_fidelity"):   # the registered generator is "hud" here, not ddpm
        realism[section]["hud"] = realism[section].pop("ddpm")
    metrics = {"roles": {"hud": "the synthetic store (ubf-generator v3, registered)", "vae": "baseline: vae"},
               "generation": {"hud": {"n": 64.0, "F_p": 0.99, "kid_e3": 7.05}},
               "realism": realism}
    html = build_report(_project(tmp_path, metrics)).html()
    samples, realism_at, endmembers = (html.index(h) for h in (
        "Real and synthetic samples", "Realism: can a classifier tell?", "Endmembers and abundances"))
    assert samples < realism_at < endmembers
    part = html[realism_at:endmembers]
    assert "Verdicts for hud" in part and "worse than the floor by 0.28" in part
    assert "c2st (0.5 best)" in part and "psd_distance (lower better)" in part and "cas (higher better)" in part
    assert part.index("<td>real_vs_real</td>") < part.index("<td>hud</td>")
    assert "floor: two disjoint real sets" in part and "baseline: vae" in part
    assert "HSI cubes against held-out real HSI patches" in part and "CAS per class" in part
    assert "one colour stretch for all rows; captions give class or source scene" in part
    embedded = part.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(embedded) == (tmp_path / "reports/evaluation/realism_samples.png").read_bytes()
    assert "picture not available: realism_abundances.png" not in html   # an absent picture is just left out
    assert "<th>kid_e3 (lower better)</th>" in html and "<th>F_p (higher better)</th>" in html
    assert "<td>7.05</td>" in html


def test_report_without_realism_says_to_run_evaluate(tmp_path):
    from tasks.report import build_report, registered_candidate

    html = build_report(_project(tmp_path, {"generation": {"ddpm": {"kid": 7049.6}}}, pictures=False)).html()
    part = html[html.index("Realism: can a classifier tell?"):html.index("Endmembers and abundances")]
    assert "No realism figures yet: run the evaluate stage." in part
    assert "<th>kid (lower better)</th>" in html              # an older metrics.json keeps its KID column
    assert registered_candidate({}) == "ddpm"


def test_control_lines_say_which_metric_flagged_each_known_bad_set():
    from ubf_core.evaluation.verdicts import control_lines, verdict_lines

    section = {"real_vs_real": {"c2st": 0.52, "c2st_stderr": 0.04, "psd_distance": 0.05, "gradient_distance": 0.01},
               "ddpm": {"c2st": 0.7, "c2st_stderr": 0.04, "psd_distance": 0.2},
               "control: blurred": {"c2st": 0.99, "c2st_stderr": 0.01, "psd_distance": 0.9,
                                    "gradient_distance": 0.012, "nn_ratio": 0.9, "copy_share": 0.0},
               "control: copies": {"c2st": 0.5, "c2st_stderr": 0.04, "psd_distance": 0.05, "nn_ratio": 0.0,
                                   "copy_share": 1.0}}
    lines = control_lines(section)
    assert lines[0] == ("Negative control 'blurred': flagged by c2st, psd_distance; "
                        "not by gradient_distance, nn_ratio, copy_share.")
    assert lines[1].startswith("Negative control 'copies': flagged by nn_ratio, copy_share; not by c2st")
    verdicts = " ".join(verdict_lines({"abundance": section}, "ddpm"))
    assert "control" not in verdicts                       # controls are not baselines a generator beats


# ------------------------------------------------------------------------------------------------ headline figures

def test_headline_figures_of_a_candidate():
    """What the evaluate stage tags the registered generator with: C2ST, PSD distance over the real-vs-real floor,
    the HSI C2ST, CAS and TSTR; a figure without its floor is left out, an unknown candidate is an error."""
    from ubf_core.errors import UBFInputError
    from ubf_core.evaluation.realism_suite import headline_figures

    got = headline_figures(REALISM, "ddpm")
    assert got == pytest.approx({"c2st": 0.81, "c2st_stderr": 0.03, "psd_ratio": 0.12 / 0.05, "hsi_c2st": 0.60,
                                 "cas": 0.4, "tstr": 0.3})
    assert "hsi_psd_ratio" not in got                  # the HSI floor row has no psd_distance
    assert headline_figures(REALISM, "gmm") == {"c2st": 1.0}
    zero_floor = copy.deepcopy(REALISM)
    zero_floor["abundance"]["real_vs_real"]["psd_distance"] = 0.0
    assert "psd_ratio" not in headline_figures(zero_floor, "ddpm")
    with pytest.raises(UBFInputError) as err:
        headline_figures(REALISM, "flow")
    assert "no row for 'flow'" in str(err.value) and "\n" not in str(err.value)


def test_headline_figures_read_the_metrics_json_the_evaluate_stage_writes():
    """The keys match the realism table of the committed reports/metrics.json (written by a real run)."""
    from pathlib import Path

    from ubf_core.evaluation.realism_suite import headline_figures

    metrics = json.loads((Path(__file__).resolve().parents[1] / "reports" / "metrics.json").read_text())
    realism = metrics["realism"]
    got = headline_figures(realism, "ddpm")
    abundance = realism["abundance"]
    assert got["c2st"] == abundance["ddpm"]["c2st"]
    assert got["psd_ratio"] == pytest.approx(abundance["ddpm"]["psd_distance"]
                                             / abundance["real_vs_real"]["psd_distance"])
    assert got["hsi_psd_ratio"] == pytest.approx(realism["hsi"]["ddpm"]["psd_distance"]
                                                 / realism["hsi"]["real_vs_real"]["psd_distance"])
    assert got["cas"] == realism["class_fidelity"]["ddpm"]["cas"]


def test_report_shows_the_unmixing_baselines_as_rows(tmp_path):
    """reports/unmixing.json's baselines: rows of the unmixing table, with the figures without the input bands."""
    from tasks.report import build_report

    project = _project(tmp_path, {}, pictures=False)
    fig = {"rmse": 0.01, "psnr": 48.52, "ssim": 0.99, "sad_deg": 4.01, "ergas": 5.0}
    unmixing = {"network": {"val_loss": 0.02, "val_rmse": 0.023, "val_psnr": 32.92, "val_ssim": 0.947,
                            "val_sad_deg": 5.17, "val_ergas": 22.5},
                "vca_fcls": {"vca_fcls_rmse": 0.058, "vca_fcls_psnr": 26.09, "vca_fcls_ssim": 0.776,
                             "vca_fcls_sad_deg": 10.96, "vca_fcls_ergas": 58.2},
                "baselines": {"input_bands": {"indices": [49, 29, 10], "excluded": True,
                                              "wavelengths_nm": [651.4, 548.0, 449.7]},
                              **{name: {"pooled": {**fig, "psnr": p}, "pooled_without_inputs": {**fig, "psnr": q}}
                                 for name, p, q in (("network", 32.92, 32.91), ("vca_fcls", 26.09, 26.11),
                                                    ("least_squares_1", 48.52, 45.76),
                                                    ("least_squares_2", 47.77, 44.98),
                                                    ("mean_spectrum", 23.89, 23.9))}}}
    (tmp_path / "reports" / "unmixing.json").write_text(json.dumps(unmixing))
    html = build_report(project).html()
    part = html[html.index("Unmixing reconstruction"):html.index("Downstream classification")]
    assert "<th>psnr w/o input bands</th>" in part and "<th>sad_deg w/o input bands</th>" in part
    rows = part.split("<tr>")[2:]
    assert [r.split("</td>")[0].removeprefix("<td>") for r in rows] == [
        "network", "VCA+FCLS (all bands)", "least squares, 3 bands + offset", "least squares, 2nd order",
        "mean training spectrum"]
    assert "<td>48.52</td>" in rows[2] and "<td>45.76</td>" in rows[2] and "<td>32.91</td>" in rows[0]
    assert "651.4, 548, 449.7 nm" in part
    # an unmixing.json written before the baselines: the two rows as before, no empty columns
    (tmp_path / "reports" / "unmixing.json").write_text(json.dumps({k: unmixing[k] for k in ("network", "vca_fcls")}))
    part = build_report(project).html()
    part = part[part.index("Unmixing reconstruction"):part.index("Downstream classification")]
    assert part.count("<tr>") == 3 and "w/o input bands" not in part
