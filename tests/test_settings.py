"""Params files are checked against the schema derived from params.yaml (ubf_core/settings.py): unknown keys (with
the closest known one), wrong types and missing keys are one-line errors naming the file and the dotted key, before
a stage does any work; open maps (data sets, class names, a generator's options) take any key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ubf_core.config import load_params
from ubf_core.errors import UBFInputError
from ubf_core.settings import OPEN_MAPS, OPTIONAL, load_schema, main as settings_main, schema_of

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def _write(tmp_path: Path, edit=None, name: str = "params.yaml") -> Path:
    """The repository's params.yaml with ``edit`` applied, written to ``tmp_path/name``."""
    params = copy.deepcopy(BASE)
    if edit:
        edit(params)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _error(path: Path) -> str:
    with pytest.raises(UBFInputError) as err:
        load_params(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}: ")
    return text[len(f"{path}: "):]


def test_the_repository_profiles_validate_and_the_schema_is_current():
    for name in ("params.yaml", "params.paper.yaml", "params.long.yaml"):
        load_params(REPO / name)
    assert settings_main(["--check"]) == 0            # ubf_core/params_schema.json is params.yaml's
    schema, optional = load_schema()
    assert set(OPEN_MAPS) <= set(schema) and optional == set(OPTIONAL)
    assert schema["generator.train"] == "map" and schema["generator.options"] == "open map"
    assert schema["rgb.resize_to"] == "int|null"      # its comment documents null
    assert schema["patch.size"] == "int"


def test_a_misspelt_key_is_named_with_the_closest_known_one(tmp_path):
    path = _write(tmp_path, lambda p: p["generator"].update(trian=p["generator"].pop("train")))
    assert _error(path) == "unknown key generator.trian (did you mean generator.train?)"
    path = _write(tmp_path, lambda p: p["generator"]["train"].update(stpes=p["generator"]["train"].pop("steps")))
    assert _error(path) == "unknown key generator.train.stpes (did you mean generator.train.steps?)"
    path = _write(tmp_path, lambda p: p.update(sed=p.pop("seed")))
    assert _error(path) == "unknown key sed (did you mean seed?)"
    path = _write(tmp_path, lambda p: p["synthesis"].update(zzz=1))     # nothing close: the section's keys
    message = _error(path)
    assert message.startswith("unknown key synthesis.zzz (known in synthesis: n, class_mix, sampler,")


def test_a_wrong_type_names_the_key_and_the_value(tmp_path):
    cases = [
        (lambda p: p["generator"]["train"].update(steps="2OO"),
         "generator.train.steps must be an integer, got '2OO' (str)"),
        (lambda p: p["synthesis"].update(n=1.5), "synthesis.n must be an integer, got 1.5 (float)"),
        (lambda p: p["patch"].update(cover_edges="yes please"),
         "patch.cover_edges must be true or false, got 'yes please' (str)"),
        (lambda p: p["dask"].update(n_workers=True), "dask.n_workers must be an integer, got True (bool)"),
        (lambda p: p["unmixing"].update(widths=[16, "32"]),
         "unmixing.widths must be a list of numbers, got [16, '32'] (list)"),
        (lambda p: p["unmixing"].update(train=5), "unmixing.train must be a mapping, got 5 (int)"),
        (lambda p: p["patch"].update(size=None), "patch.size must be an integer, got null"),
        (lambda p: p["classification"].update(test_scenes="abu-beach-2"),
         "classification.test_scenes must be a list of strings or null, got 'abu-beach-2' (str)"),
    ]
    for edit, message in cases:
        assert _error(_write(tmp_path, edit)) == message
    # an integer where the reference has a float, and null where params.yaml documents it, are fine
    load_params(_write(tmp_path, lambda p: (p["generator"]["train"].update(lr=1, ema_decay=0),
                                            p["rgb"].update(resize_to=None, stride=None),
                                            p["synthesis"].update(noise_snr_db=30, class_mix=None),
                                            p["classification"].update(test_scenes=None))))


def test_open_maps_take_any_key_and_optional_keys_may_be_given(tmp_path):
    def edit(p):
        p["hsi"]["datasets"] = {"my-scene": {"path": "/data/x.mat", "variable": "cube", "anything": [1, 2]}}
        p["generator"]["options"]["attention"] = True                     # params.paper.yaml's DDPM option
        p["classification"]["rgb_to_hsi"]["Farmland"] = "farmland"
        p["classification"]["real_per_class"]["farmland"] = 4
        p["evaluation"]["generators"]["vae"].update(channels=64, levels=3)
        p["synthesis"]["class_mix"] = {"Farmland": 0.5, "Forest": 0.5}
        p["classification"]["scene_classes"] = {"abu-beach-1": "beach"}
        p["grid"].update(start_nm=400.0, stop_nm=700, n_bands=31, fwhm_nm=None)    # override the preset
        p["classification"]["train"]["weight_decay"] = 0.0
        p["evaluation"]["features"]["device"] = "cpu"

    params = load_params(_write(tmp_path, edit))
    assert params["generator"]["options"]["attention"] is True and params["grid"]["n_bands"] == 31


def test_a_missing_key_is_an_error_unless_the_file_extends_a_complete_one(tmp_path):
    path = _write(tmp_path, lambda p: p["synthesis"].update(export={}))
    message = _error(path)
    assert message.startswith("missing key synthesis.export.n (and 1 more: synthesis.export.format); ")
    assert "extends: params.yaml" in message
    assert _error(_write(tmp_path, lambda p: p.pop("classification"))).startswith("missing key classification; ")
    # an optional key may be left out (params.yaml itself gives no grid.start_nm)
    assert "start_nm" not in BASE["grid"]

    # a partial file that extends the complete one: its own keys are checked, and name it
    _write(tmp_path)
    (tmp_path / "long.yaml").write_text("extends: params.yaml\ngenerator: {train: {steps: 7}}\n")
    assert load_params(tmp_path / "long.yaml")["generator"]["train"] == {**BASE["generator"]["train"], "steps": 7}
    (tmp_path / "typo.yaml").write_text("extends: params.yaml\ngenerator: {trian: {steps: 7}}\n")
    with pytest.raises(UBFInputError, match=r"^\S*typo.yaml: unknown key generator.trian \(did you mean "
                                            r"generator.train\?\)$"):
        load_params(tmp_path / "typo.yaml")


def test_a_stage_stops_on_a_misspelt_key_before_any_work(tmp_path, capsys):
    from flows._entry import run_stage
    from tasks.params import load_stage_params

    path = _write(tmp_path, lambda p: p["unmixing"]["train"].update(epoch=p["unmixing"]["train"].pop("epochs")))
    expected = f"{path}: unknown key unmixing.train.epoch (did you mean unmixing.train.epochs?)"
    with pytest.raises(UBFInputError) as err:
        load_stage_params.fn(str(path))                # what every stage flow calls first
    assert str(err.value) == expected

    ran = []

    def flow_fn(params_path: str) -> None:             # a stage command: its flow never starts
        ran.append(params_path)

    assert run_stage(flow_fn, "a stage", ["--params", str(path)]) == 2
    assert ran == [] and capsys.readouterr().err.strip().splitlines()[-1] == f"error: {expected}"


def test_the_ubf_command_checks_its_params_file(tmp_path):
    from click.testing import CliRunner

    from flows.cli import main

    path = _write(tmp_path, lambda p: p["grid"].update(coverage_tolerance=5.0))
    res = CliRunner().invoke(main, ["info", str(REPO / "data/hsi/samson.mat"), "--params", str(path)])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (f"error: {path}: unknown key grid.coverage_tolerance (did you "
                                                   f"mean grid.coverage_tolerance_nm?)")


def test_the_schema_comes_from_the_reference(tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_text("seed: 0\nnew_section:\n  size: 4          # (null: the default size)\n  names: [a, b]\n"
                   "grid: {preset: natural}\nunmixing: {train: {epochs: 1}}\nclassification: {train: {lr: 0.1}}\n"
                   "evaluation: {features: {dim: 1}}\n")
    schema = schema_of(ref)
    assert schema["new_section"] == "map" and schema["new_section.size"] == "int|null"
    assert schema["new_section.names"] == "list[str]" and schema["seed"] == "int"
    assert "grid.start_nm?" in schema                   # the optional keys join their sections
    ref.write_text(ref.read_text() + "other: null\n")
    with pytest.raises(ValueError, match="other is null: give its type"):
        schema_of(ref)


def _missing_keys(dvc: dict, params_files: dict[str, dict]) -> list[str]:
    """The ``stage: file: key`` entries of dvc.yaml's ``params:`` lists that their params file does not have."""
    missing = []
    for stage, spec in dvc["stages"].items():
        for entry in spec.get("params", []):
            pairs = entry.items() if isinstance(entry, dict) else [("params.yaml", [entry])]
            for file, keys in pairs:
                for key in keys:
                    node = params_files[file]
                    for part in key.split("."):
                        node = node.get(part) if isinstance(node, dict) else None
                    if node is None:
                        missing.append(f"{stage}: {file}: {key}")
    return missing


def test_every_param_dvc_yaml_tracks_is_in_its_params_file():
    # dvc repro stops with "Parameters ... are missing" before any stage runs when a tracked key leaves params.yaml
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    files = {name: yaml.safe_load((REPO / name).read_text()) for name in ("params.yaml", "params.long.yaml")}
    assert _missing_keys(dvc, files) == []
    dvc["stages"]["validate"]["params"].append("stores.hsi")     # a key the catalogue replaced
    assert _missing_keys(dvc, files) == ["validate: params.yaml: stores.hsi"]
