"""The `ubf` command and the stage entry points, as a person runs them (subprocesses, exit codes, one-line errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.stages import read_stages

REPO = Path(__file__).resolve().parents[1]
UBF = [sys.executable, "-m", "flows.cli"]


def run(args, cwd=REPO, env=None, timeout=300):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("sub", [[], ["info"], ["unmix"], ["pipeline"]]
                         + [[stage.command] for stage in read_stages()])    # a command per stage of dvc.yaml
def test_every_command_has_help(sub):
    res = run(UBF + sub + ["--help"])
    assert res.returncode == 0 and "Usage:" in res.stdout
    assert "--params" in res.stdout or sub in ([], )


def test_info_on_an_embedded_scene():
    res = run(UBF + ["info", "data/hsi/salton_sea_roi.mat"])
    assert res.returncode == 0, res.stderr
    assert "salton-sea" in res.stdout and "43 bands × 51 × 56" in res.stdout
    assert "59 covered, fully covered" in res.stdout and "fwhm" in res.stdout


def test_info_reports_the_uncovered_range(shared_data):
    res = run(UBF + ["info", str(shared_data / "hsi/pavia_u_downsampled.mat"), "--variable", "I1",
                     "--wavelengths", "variable:wl:um", "--json"])
    assert res.returncode == 0, res.stderr
    d = yaml.safe_load(res.stdout)
    assert d["wavelength_nm"][0] == pytest.approx(430.0)
    assert d["grid_uncovered_nm"][0][0] == pytest.approx(398.0) and d["grid_uncovered_nm"][0][1] < 430


@pytest.mark.parametrize("args, problem", [
    (["info", "no_such_file.mat"], "no_such_file.mat: file not found"),
    (["info", "README.md", "--variable", "x"], "README.md"),
    (["info", "data/hsi/samson.mat", "--variable", "nope", "--wavelengths", "linspace:401,760,115"], "nope"),
])
def test_info_bad_input_is_one_line_and_exit_2(args, problem):
    res = run(UBF + args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and problem in lines[0]


def test_stage_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, shared_data):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["hsi"]["datasets"] = {"pavia-u": {"path": str(shared_data / "hsi/pavia_u_downsampled.mat"),
                                             "variable": "I1", "wavelengths": {"variable": "wl", "unit": "um"},
                                             "units": "reflectance"}}
    params["dask"].update(processes=False, n_workers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    res = run([sys.executable, "-m", "flows.prepare_hsi", "--params", str(tmp_path / "params.yaml")],
              env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pavia-u: ") and "not covered" in last and "430" in last
    assert not (tmp_path / "stores").exists() or not any((tmp_path / "stores").iterdir())


# ------------------------------------------------------------------------------ defects a new user hit (issue item 6)

def _one_line_error(res, *parts):
    """Exit 2, one line on stderr starting with 'error: ' and holding every part; nothing on stdout."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert not res.stdout.strip()
    return lines[0]


def test_info_dataset_gives_the_reader_settings_and_reads_file(tmp_path):
    """--dataset NAME takes NAME's reader settings but reads FILE; options given beside it override them."""
    res = run(UBF + ["info", "data/hsi/abu/abu-beach-1.mat", "--dataset", "abu-airport-1", "--json"])
    assert res.returncode == 0, res.stderr
    d = yaml.safe_load(res.stdout)
    assert Path(d["path"]) == REPO / "data/hsi/abu/abu-beach-1.mat"
    assert d["shape"] == {"bands": 42, "height": 150, "width": 150}        # beach-1, not airport-1 (100 x 100)
    assert "abu-beach-1" in d["source"] and d["scale"] == pytest.approx(1e-4)
    assert "aviris_wavelengths" in d["wavelength_source"]

    scene = tmp_path / "my_scene.mat"
    scene.write_bytes((REPO / "data/hsi/samson.mat").read_bytes())
    res = run(UBF + ["info", str(scene), "--dataset", "samson", "--wavelengths", "linspace:410,770,115", "--json"])
    assert res.returncode == 0, res.stderr
    d = yaml.safe_load(res.stdout)
    assert Path(d["path"]) == scene and d["wavelength_nm"] == pytest.approx([410.0, 770.0])
    _one_line_error(run(UBF + ["info", str(scene), "--dataset", "samson", "--variable", "nope"]),
                    "my_scene.mat", "'nope'")


@pytest.mark.parametrize("value", ["linspace:400,700", "linspace:400,700,x", "linspace:400,700,0",
                                   "linspace:400,inf,31", "values:", "values:450,abc", "variable:", "variable:wl:mm",
                                   "table:x.csv", "400,700,31"])
def test_malformed_wavelengths_option_is_named(value):
    line = _one_line_error(run(UBF + ["info", "data/hsi/samson.mat", "--wavelengths", value]),
                           "--wavelengths", repr(value), "linspace:START,STOP,N", "values:a,b,c")
    assert "unpack" not in line and "samson.mat" not in line


def test_scale_option_must_be_a_positive_number():
    _one_line_error(run(UBF + ["info", "data/hsi/samson.mat", "--scale", "0"]), "--scale", "> 0")


@pytest.mark.parametrize("command", [["info", "data/hsi/samson.mat"], ["unmix", "data/rgb/aid/Beach/beach_1.jpg"]])
def test_missing_params_file_is_an_error(tmp_path, command):
    _one_line_error(run(UBF + command + ["--params", str(tmp_path / "nope.yaml"), *(
        ["--out", str(tmp_path / "out")] if command[0] == "unmix" else [])]), "nope.yaml", "params file not found")
    assert list(tmp_path.iterdir()) == []


def test_reader_hints_name_the_options_on_the_command_line(tmp_path):
    """A file that params.yaml does not describe: the hints name command-line options, not params keys."""
    scene = tmp_path / "samson_copy.mat"
    scene.write_bytes((REPO / "data/hsi/samson.mat").read_bytes())
    line = _one_line_error(run(UBF + ["info", str(scene), "--variable", "SamSon"]),
                           "samson_copy.mat", "wavelengths missing", "--wavelengths")
    assert "`wavelengths:`" not in line

    salton = tmp_path / "salton_copy.mat"      # AVIRIS: overlapping spectrometers, wavelengths not increasing
    salton.write_bytes((REPO / "data/hsi/salton_sea_roi.mat").read_bytes())
    line = _one_line_error(run(UBF + ["info", str(salton), "--variable", "I", "--wavelengths", "variable:wl:um"]),
                           "salton_copy.mat", "not in increasing order", "--dataset", "hsi.datasets")
    assert "sort: true" in line and not line.rstrip().endswith("to reorder the bands")

    odd = tmp_path / "cube.h5"
    odd.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    _one_line_error(run(UBF + ["info", str(odd)]), "cube.h5", "--dataset", ".mat")

    # the same file described in params: the params wording is the right advice there
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["hsi"]["datasets"] = {"copy": {"path": str(scene), "variable": "SamSon"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _one_line_error(run(UBF + ["info", str(scene), "--params", str(tmp_path / "params.yaml")]),
                    "wavelengths missing", "'copy'", "`wavelengths:`")


def test_an_rgb_image_given_to_info_is_pointed_to_unmix(tmp_path):
    from PIL import Image

    jpg = REPO / "data/rgb/aid/Beach/beach_1.jpg"
    with Image.open(jpg) as im:
        im.convert("RGB").save(tmp_path / "beach.png")
        im.convert("RGB").save(tmp_path / "beach.tif")
    for image in (jpg, tmp_path / "beach.png", tmp_path / "beach.tif"):
        _one_line_error(run(UBF + ["info", str(image)]), image.name, "RGB image", "ubf unmix")


def test_cave_folder_missing_its_last_band_counts_the_bands(tmp_path, shared_data):
    scene = tmp_path / "balloons_ms"
    scene.mkdir()
    for band in sorted((shared_data / "natural/cave/balloons_ms/balloons_ms").glob("*_ms_*.png"))[:30]:
        (scene / band.name).write_bytes(band.read_bytes())
    line = _one_line_error(run(UBF + ["info", str(scene)]), "balloons_ms", "30 band images", "31", "--wavelengths")
    assert "wavelengths missing" not in line
    (scene / "balloons_ms_31.png").write_bytes(
        (shared_data / "natural/cave/balloons_ms/balloons_ms/balloons_ms_31.png").read_bytes())
    res = run(UBF + ["info", str(scene), "--json"])
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(res.stdout)["shape"]["bands"] == 31
