"""The data catalogue (catalog.yaml, ubf_core/catalog.py): names resolve to paths, an unknown name is a one-line
error with the close name, and dvc.yaml's outs and data deps agree with the catalogue (each entry the out of exactly
the stage it names; every data path in dvc.yaml an entry or under one)."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import yaml

from ubf_core.catalog import NOT_STAGES, Catalog
from ubf_core.errors import UBFInputError

REPO = Path(__file__).resolve().parents[1]
CODE_ROOTS = ("flows", "tasks", "ubf_core", "infra", "benchmarks")   # code deps: infra/stage_deps.py checks them
CONFIG_FILES = ("catalog.yaml",)


def _path_of(entry) -> str:
    return next(iter(entry)) if isinstance(entry, dict) else str(entry)


def _norm(path: str) -> str:
    return str(PurePosixPath(path.rstrip("/")))


def disagreements(catalog: Catalog, dvc_yaml: Path) -> list[str]:
    """One line per place where dvc.yaml and the catalogue disagree (empty: they agree)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    by_path = {_norm(d.path): d for d in catalog.entries.values()}
    problems, produced = [], {}
    for stage, s in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for o in s.get(kind, []):
                p = _norm(_path_of(o))
                d = by_path.get(p)
                if d is None:
                    problems.append(f"{stage}: out {p} is no catalogue entry")
                    continue
                produced.setdefault(d.name, []).append(stage)
                if d.stage != stage:
                    problems.append(f"{stage}: out {p} is '{d.name}', whose catalogue stage is {d.stage}")
        for dep in s.get("deps", []):
            p = _norm(_path_of(dep))
            if p.split("/")[0] in CODE_ROOTS or p in CONFIG_FILES:
                continue
            if not any(p == q or p.startswith(q + "/") for q in by_path):
                problems.append(f"{stage}: dep {p} is neither a catalogue entry nor under one")
    for d in catalog.entries.values():
        stages_of = produced.get(d.name, [])
        if d.stage in NOT_STAGES:
            if stages_of:
                problems.append(f"'{d.name}' ({d.stage}) is an out of {', '.join(stages_of)}")
        elif stages_of != [d.stage]:
            problems.append(f"'{d.name}' should be an out of exactly stage {d.stage}, "
                            f"is of {', '.join(stages_of) or 'none'}")
    return problems


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(REPO / "catalog.yaml")


def test_dvc_yaml_agrees_with_the_catalogue(catalog):
    assert disagreements(catalog, REPO / "dvc.yaml") == []


@pytest.mark.parametrize("edit, expected", [
    (lambda st: st["prepare_hsi"]["outs"].__setitem__(0, "stores/hsi2.zarr"), "out stores/hsi2.zarr is no catalogue"),
    (lambda st: st["evaluate"]["deps"].append("stores/unknown.zarr"), "dep stores/unknown.zarr is neither"),
    (lambda st: st["classify"]["outs"].append("stores/hsi.zarr"), "catalogue stage is prepare_hsi"),
    (lambda st: st["report"].pop("outs"), "'report' should be an out of exactly stage report, is of none"),
])
def test_a_wrong_dvc_yaml_disagrees(tmp_path, catalog, edit, expected):
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    edit(dvc["stages"])
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    found = disagreements(catalog, tmp_path / "dvc.yaml")
    assert any(expected in line for line in found), found


def test_a_catalogue_entry_missing_from_dvc_yaml_disagrees(tmp_path):
    raw = yaml.safe_load((REPO / "catalog.yaml").read_text())
    raw["extra"] = {"path": "reports/extra.json", "kind": "json", "stage": "evaluate"}
    found = disagreements(Catalog.from_dict(raw, REPO), REPO / "dvc.yaml")
    assert found == ["'extra' should be an out of exactly stage evaluate, is of none"]


def test_names_resolve_against_the_catalogue_folder(tmp_path, catalog):
    assert catalog.path("hsi") == REPO / "stores" / "hsi.zarr"
    assert catalog.dims("hsi") == {"reflectance": ("patch", "wavelength", "y", "x")}
    shutil.copy(REPO / "catalog.yaml", tmp_path / "catalog.yaml")
    assert Catalog.load(tmp_path / "catalog.yaml").path("report") == tmp_path / "reports" / "report.html"
    assert Catalog.load(REPO / "catalog.yaml", root=tmp_path).path("hsi") == tmp_path / "stores" / "hsi.zarr"


def test_an_unknown_name_is_one_line_with_the_close_name(catalog):
    with pytest.raises(UBFInputError, match=r"^catalog.yaml: no dataset 'abundance_hs' .*did you mean 'abundance_hsi'"):
        catalog.path("abundance_hs")


@pytest.mark.parametrize("entry, expected", [
    ({"path": "a.zarr", "kind": "zarr"}, "needs path, kind and stage"),
    ({"path": "a.zarr", "kind": "parquet", "stage": "x"}, "kind 'parquet' unknown"),
    ({"path": "a.json", "kind": "json", "stage": "x", "dims": {"a": ["x"]}}, "dims are for zarr stores"),
])
def test_a_malformed_entry_is_one_line(entry, expected):
    with pytest.raises(UBFInputError, match=expected):
        Catalog.from_dict({"a": entry}, REPO)


def test_zarr_dims_match_the_stores_the_code_writes(tmp_path, catalog):
    """The abundance, endmember and synthesis stores as ubf_core writes them have the dims the catalogue gives
    (the HSI and RGB stores, written from per-scene parts by the prepare stages, are not checked here); the
    abundance and endmember stores as a model with every decoder option writes them (brightness, transmission), the
    synthesis store as a generator with the brightness channel writes it."""
    import xarray as xr

    from ubf_core.data.stores import open_store, write_store
    from ubf_core.synthesis.job import SynthesisJob
    from ubf_core.synthesis.store import create_store
    from ubf_core.unmixing.abundance_store import abundance_dataset, endmember_dataset

    wl = np.linspace(400, 700, 4)
    like = xr.Dataset(coords={"source": ("patch", np.array(["a", "b"]))})
    written = {
        "abundance_hsi": write_store(abundance_dataset(np.zeros((2, 3, 4, 4)), like, {}, np.ones((2, 4, 4))),
                                     tmp_path / "a.zarr"),
        "endmembers": write_store(endmember_dataset(np.zeros((4, 3)), wl, {}, np.ones((1, 4)), ["aviris"]),
                                  tmp_path / "e.zarr", dim="endmember"),
    }
    job = SynthesisJob(labels=np.array(["", ""]), seed=0, size=(4, 4), endmembers=np.zeros((4, 3)),
                       wavelengths_nm=wl, brightness=True, generated_brightness=True)
    create_store(tmp_path / "s.zarr", job, block_size=2, k=3, attrs={})
    written["synthetic"] = tmp_path / "s.zarr"
    for name, path in written.items():
        ds = open_store(path)
        assert {var: ds[var].dims for var in catalog.dims(name)} == catalog.dims(name), name
    for same_as, name in (("abundance_hsi", "abundance_rgb"), ("synthetic", "synthetic_classify")):
        assert catalog.dims(name) == catalog.dims(same_as)
