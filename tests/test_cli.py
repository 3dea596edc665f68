"""The `ubf` command and the stage entry points, as a person runs them (subprocesses, exit codes, one-line errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
UBF = [sys.executable, "-m", "flows.cli"]


def run(args, cwd=REPO, env=None, timeout=300):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("sub", [[], ["info"], ["prepare-hsi"], ["prepare-rgb"], ["validate"], ["pipeline"],
                                 ["train-unmixing"], ["infer-abundance"], ["unmix"], ["train-generator"],
                                 ["synthesize"]])
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
                                             "variable": "I1", "wavelengths": {"variable": "wl", "unit": "um"}}}
    params["dask"].update(processes=False, n_workers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    res = run([sys.executable, "-m", "flows.prepare_hsi", "--params", str(tmp_path / "params.yaml")],
              env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: pavia-u: ") and "not covered" in last and "430" in last
    assert not (tmp_path / "stores").exists() or not any((tmp_path / "stores").iterdir())
