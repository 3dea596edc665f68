"""The ``ubf`` command: everything a person does by hand. Run ``ubf --help`` or ``ubf COMMAND --help``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

import tasks  # noqa: F401  (offline/telemetry defaults)
from ubf_core.errors import UBFInputError

PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="params file of the pipeline")


def _fail(err: Exception, code: int = 2) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """UBF: unmixing before fusion — manufacture realistic hyperspectral images.

    The stages (prepare-hsi, prepare-rgb, validate, train-unmixing, infer-abundance) are the ones `dvc repro`
    runs; each is a Prefect flow (ephemeral local Prefect, or the server in PREFECT_API_URL). Parameters come
    from params.yaml; models go to MLflow (local mlruns/, or MLFLOW_TRACKING_URI).
    """


def _run_flow(module: str, name: str, params_path: str) -> None:
    import importlib

    flow_fn = getattr(importlib.import_module(f"flows.{module}"), name)
    from flows._entry import run_stage

    sys.exit(run_stage(flow_fn, flow_fn.__doc__, ["--params", params_path]))


@main.command("prepare-hsi")
@PARAMS_OPTION
def prepare_hsi_cmd(params_path: str) -> None:
    """Read, align to the target grid and patch the HSI scenes of params hsi.datasets into stores.hsi."""
    _run_flow("prepare_hsi", "prepare_hsi", params_path)


@main.command("prepare-rgb")
@PARAMS_OPTION
def prepare_rgb_cmd(params_path: str) -> None:
    """Cut the RGB images of params rgb.path (class = sub-folder) into labelled patches in stores.rgb."""
    _run_flow("prepare_rgb", "prepare_rgb", params_path)


@main.command("validate")
@PARAMS_OPTION
def validate_cmd(params_path: str) -> None:
    """Run the data-quality suite over the stores; write reports/validation.md; exit 1 when a check fails."""
    _run_flow("validate", "validate", params_path)


@main.command("train-unmixing")
@PARAMS_OPTION
def train_unmixing_cmd(params_path: str) -> None:
    """Train the unmixing network on stores.hsi, log it to MLflow and register it (champion rule)."""
    _run_flow("train_unmixing", "train_unmixing", params_path)


@main.command("infer-abundance")
@PARAMS_OPTION
def infer_abundance_cmd(params_path: str) -> None:
    """Map the RGB and HSI stores into abundance space with the model at unmixing.model_uri."""
    _run_flow("infer_abundance", "infer_abundance", params_path)


@main.command("pipeline")
@PARAMS_OPTION
def pipeline_cmd(params_path: str) -> None:
    """Run every stage in order as one Prefect flow (the same stage code as `dvc repro`, without its caching)."""
    _run_flow("pipeline", "pipeline", params_path)


def _spec_for(file: Path, params_path: str, dataset: str | None, overrides: dict) -> tuple[str, dict, Path]:
    """Find the reader options for FILE: a named data set, the data set whose path is FILE, or the overrides."""
    from ubf_core.config import load_params

    root = Path(params_path).resolve().parent
    datasets = {}
    if Path(params_path).is_file():
        datasets = ((load_params(params_path).get("hsi") or {}).get("datasets") or {})
    if dataset:
        if dataset not in datasets:
            raise UBFInputError(params_path, f"no data set '{dataset}' in hsi.datasets; has {sorted(datasets)}")
        return dataset, dict(datasets[dataset]), root
    for name, spec in datasets.items():
        p = Path(spec.get("path", ""))
        if (p if p.is_absolute() else root / p).resolve() == file.resolve():
            spec = {**spec, **overrides}
            return name, spec, root
    return file.stem, {"path": str(file.resolve()), **overrides}, root


@main.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@PARAMS_OPTION
@click.option("--dataset", help="use the reader options of this data set of params hsi.datasets")
@click.option("--variable", help=".mat: the array variable")
@click.option("--layout", type=click.Choice(["HWC", "CHW", "pixel_major"]), help=".mat: array layout")
@click.option("--wavelengths", "wl", help="'linspace:START,STOP,N', 'variable:NAME[:um|nm]' or 'values:a,b,c' (nm)")
@click.option("--scale", type=float, help="DN → reflectance factor")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def info_cmd(file: Path, params_path: str, dataset: str | None, variable: str | None, layout: str | None,
             wl: str | None, scale: float | None, as_json: bool) -> None:
    """Print a data set's shape, dtype, wavelength range, bad bands, NaN share and its cover of the target grid.

    The reader options come from the params.yaml data set whose path is FILE (or --dataset), else from the
    options given here; GeoTIFF, ENVI and CAVE folders describe themselves.
    """
    from ubf_core.config import load_params
    from ubf_core.inspect import describe_cube, format_description
    from ubf_core.io import HSISource, read_hsi, read_mat_variables
    from ubf_core.spectral import REMOTE_SENSING, SpectralGrid

    overrides: dict = {}
    if variable:
        overrides["variable"] = variable
    if layout:
        overrides["layout"] = layout
    if scale is not None:
        overrides["scale"] = scale
    try:
        if wl:
            kind, _, rest = wl.partition(":")
            if kind == "linspace":
                a, b, n = rest.split(",")
                overrides["wavelengths"] = {"linspace": [float(a), float(b), int(n)]}
            elif kind == "variable":
                name, _, unit = rest.partition(":")
                overrides["wavelengths"] = {"variable": name, **({"unit": unit} if unit else {})}
            elif kind == "values":
                overrides["wavelengths"] = {"values": [float(v) for v in rest.split(",")]}
            else:
                raise UBFInputError("--wavelengths", f"unknown form '{wl}'")
        if not file.exists():
            raise UBFInputError(file, "file not found")
        name, spec, root = _spec_for(file, params_path, dataset, overrides)
        grid_p = (load_params(params_path).get("grid") if Path(params_path).is_file() else None) or {}
        grid = SpectralGrid.from_params(grid_p) if grid_p else REMOTE_SENSING
        if file.suffix.lower() == ".mat" and "variable" not in spec:
            variables = read_mat_variables(file)
            cubes = [k for k, (shape, _) in variables.items() if len(shape) == 3]
            if len(cubes) != 1:
                raise UBFInputError(file, "give --variable (and --layout): it holds "
                                    + ", ".join(f"{k} {'×'.join(map(str, s))}" for k, (s, _) in variables.items()))
            spec.setdefault("variable", cubes[0])
            spec.setdefault("layout", "HWC")
        cube = read_hsi(HSISource.from_params(name, spec, root))
        d = describe_cube(cube, grid, float(grid_p.get("coverage_tolerance_nm", 5.0)))
    except UBFInputError as err:
        _fail(err)
    except ValueError as err:
        _fail(UBFInputError(file, str(err)))
    click.echo(json.dumps(d, indent=2) if as_json else format_description(d))


if __name__ == "__main__":
    main()
