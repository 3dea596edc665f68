"""The ``ubf`` command: everything a person does by hand. Run ``ubf --help`` or ``ubf COMMAND --help``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

import tasks  # noqa: F401  (offline/telemetry defaults)
from flows.stages import REPO, Stage, StageListError, flow_docstring, read_stages
from ubf_core.errors import UBFInputError


def _fail(err: Exception, code: int = 2) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(code)


def _params_option_check(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A --params file given on the command line must exist (the default params.yaml may be absent: `ubf info`
    then uses the defaults); checked as the option is parsed, before anything else."""
    from click.core import ParameterSource

    if ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT and not Path(value).is_file():
        _fail(UBFInputError(value, "params file not found (--params)"))
    return value


PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="params file of the pipeline",
                             callback=_params_option_check)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """UBF: unmixing before fusion — manufacture realistic hyperspectral images.

    The stage commands are the stages of dvc.yaml, the ones `dvc repro` runs (train_unmixing: train-unmixing);
    each runs its Prefect flow (ephemeral local Prefect, or the server in PREFECT_API_URL). Parameters come from
    params.yaml; models go to MLflow (local mlruns/, or MLFLOW_TRACKING_URI).
    """


def _run_flow(module: str, name: str, params_path: str) -> None:
    import importlib

    flow_fn = getattr(importlib.import_module(f"flows.{module}"), name)
    from flows._entry import run_stage

    sys.exit(run_stage(flow_fn, flow_fn.__doc__, ["--params", params_path]))


@main.command("synthesize")
@PARAMS_OPTION
@click.option("--n", "n", type=int, help="number of HSIs [default: params synthesis.n]")
@click.option("--class", "class_name", help="make all N of this class (one the generator was trained on) "
                                            "[default: params synthesis.class_mix]")
@click.option("--out", help="output Zarr store [default: the synthetic store of catalog.yaml]")
@click.option("--replace", is_flag=True, default=None, help="overwrite an existing store of another configuration")
def synthesize_cmd(params_path: str, n: int | None, class_name: str | None, out: str | None,
                   replace: bool | None) -> None:
    """Generate N new HSIs: the registered generator samples abundance maps, the unmixing model's endmembers mix
    them (Y = E·A). Resumes a stopped run with the same settings; never overwrites another run's store silently.

    Example: ubf synthesize --n 100 --class Farmland --out stores/farmland.zarr
    """
    from flows._entry import run_stage
    from flows.synthesize import synthesize

    def flow_fn(params_path: str) -> dict:
        return synthesize(params_path=params_path, n=n, class_name=class_name, out=out, replace=replace)

    flow_fn.__name__ = "synthesize"
    sys.exit(run_stage(flow_fn, synthesize.__doc__, ["--params", params_path]))


@main.command("pipeline")
@PARAMS_OPTION
def pipeline_cmd(params_path: str) -> None:
    """Run every stage in order as one Prefect flow (the same stage code as `dvc repro`, without its caching)."""
    _run_flow("pipeline", "pipeline", params_path)


def stage_command(stage: Stage, root: Path = REPO) -> click.Command:
    """The command of a dvc.yaml stage: ``ubf <stage-name> [--params FILE]`` runs its flow; the help is the flow's
    docstring (of ``root``/flows/<module>.py, read without importing it)."""
    help_text = flow_docstring(stage.module, root=root)
    if stage.params_file:
        help_text += f"\n\ndvc.yaml runs it with --params {stage.params_file}: give that file."
    if stage.frozen:
        help_text += "\n\nFrozen in dvc.yaml: `dvc repro` and `ubf pipeline` do not run it."

    @click.command(stage.command, help=help_text)
    @PARAMS_OPTION
    def run(params_path: str) -> None:
        _run_flow(stage.module, stage.module, params_path)

    return run


def add_stage_commands(group: click.Group, stages: list[Stage], root: Path = REPO) -> None:
    """A command for each stage that has none yet (those with options of their own, synthesize, are written out
    above); the stages come from dvc.yaml (flows/stages.py), the one list of them."""
    for stage in stages:
        if stage.command not in group.commands:
            group.add_command(stage_command(stage, root))


try:
    add_stage_commands(main, read_stages())
except StageListError as _err:     # e.g. an installed copy without the checkout: the other commands still work
    main.epilog = f"No stage commands: {_err}"


WAVELENGTH_FORMS = "'linspace:START,STOP,N', 'variable:NAME[:um|nm]' (.mat) or 'values:a,b,c' (nm)"

# What a command-line user does instead of a params.yaml setting the readers ask for (UBFInputError.key); keys
# missing here have no option: the file then needs a data-set entry in params (hsi.datasets) and --dataset NAME.
CLI_REMEDY = {
    "wavelengths": f"give --wavelengths ({WAVELENGTH_FORMS})",
    "variable": "give --variable (and --layout)",
    "layout": "give --layout",
    "scale": "give --scale",
}


def _load_params_if_any(params_path: str) -> dict:
    """params.yaml, or {} when the default one is absent (an explicit --params that is absent stopped earlier)."""
    from ubf_core.config import load_params

    return load_params(params_path) if Path(params_path).is_file() else {}


def _number_text(x: float) -> str:
    """1e-4 rather than 0.0001: how a person types a scale factor."""
    mantissa, exponent = f"{x:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}" if abs(int(exponent)) >= 3 else f"{x:g}"


def _parse_wavelengths(text: str) -> dict:
    """--wavelengths as a params `wavelengths:` mapping; a malformed value names the option and the forms."""
    import math

    def bad(problem: str) -> UBFInputError:
        return UBFInputError("--wavelengths", f"{text!r}: {problem}; accepted forms: {WAVELENGTH_FORMS}")

    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ("linspace", "variable", "values"):
        raise bad("unknown form")
    if kind == "linspace":
        parts = [p.strip() for p in rest.split(",")]
        if len(parts) != 3:
            raise bad(f"linspace needs three values START,STOP,N, got {len(parts)}")
        try:
            start, stop = float(parts[0]), float(parts[1])
        except ValueError:
            raise bad("START and STOP must be numbers (nm)") from None
        try:
            n = int(parts[2])
        except ValueError:
            raise bad(f"N (the band count) must be a whole number, got {parts[2]!r}") from None
        if not (math.isfinite(start) and math.isfinite(stop)) or start <= 0 or stop <= 0:
            raise bad("START and STOP must be finite wavelengths > 0 nm")
        if n < 1:
            raise bad(f"N (the band count) must be at least 1, got {n}")
        return {"linspace": [start, stop, n]}
    if kind == "variable":
        name, _, unit = rest.partition(":")
        if not name.strip():
            raise bad("no variable name")
        unit = unit.strip().lower()
        if unit and unit not in ("um", "µm", "nm"):
            raise bad(f"the unit must be um or nm, got {unit!r}")
        return {"variable": name.strip(), **({"unit": unit} if unit else {})}
    try:
        values = [float(v) for v in rest.split(",")]
    except ValueError:
        raise bad("values must be numbers (nm) separated by commas") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise bad("values must be finite wavelengths > 0 nm")
    return {"values": values}


def _reader_overrides(variable: str | None, layout: str | None, wl: str | None, scale: float | None) -> dict:
    """The reader options given on the command line as params keys; malformed ones are refused here (cheap)."""
    import math

    overrides: dict = {}
    if variable:
        overrides["variable"] = variable
    if layout:
        overrides["layout"] = layout
    if scale is not None:
        if not math.isfinite(scale) or scale <= 0:
            raise UBFInputError("--scale", f"{scale:g}: the DN → reflectance factor must be a number > 0 "
                                           f"(e.g. 1e-4 for reflectance × 10000)")
        overrides["scale"] = scale
    if wl:
        overrides["wavelengths"] = _parse_wavelengths(wl)
    return overrides


def _spec_for(file: Path, params: dict, params_path: str, dataset: str | None,
              overrides: dict) -> tuple[str, dict, bool]:
    """The reader options for FILE: (data-set name, spec, whether they come from a params data-set entry).

    --dataset NAME: NAME's options, FILE's path; else the data set whose path is FILE; else the command line only.
    Options given on the command line override those of the data set.
    """
    root = Path(params_path).resolve().parent
    datasets = (params.get("hsi") or {}).get("datasets") or {}

    def same_file(spec: dict) -> bool:
        p = Path(str(spec.get("path") or ""))
        return bool(str(p)) and (p if p.is_absolute() else root / p).resolve() == file.resolve()

    if dataset:
        if dataset not in datasets:
            raise UBFInputError(params_path, f"no data set '{dataset}' in hsi.datasets; has {sorted(datasets)}")
        spec = datasets[dataset]
        if not isinstance(spec, dict):
            raise UBFInputError(dataset, f"the data-set entry must be a mapping of keys, got {type(spec).__name__}")
        name = dataset if same_file(spec) else f"{file.stem} (reader settings of {dataset})"
        return name, {**spec, "path": str(file.resolve()), **overrides}, True
    for name, spec in datasets.items():
        if isinstance(spec, dict) and same_file(spec):
            return name, {**spec, **overrides}, True
    return file.stem, {"path": str(file.resolve()), **overrides}, False


def _cli_worded(err: UBFInputError, file: Path, name: str, from_params: bool) -> UBFInputError:
    """A reader error for a command-line user: the option to give instead of the params key, FILE for its name."""
    if from_params:
        return err  # the params entry is what needs the change
    where = str(file) if err.where == name else err.where
    if err.key is None:
        return err if where == err.where else UBFInputError(where, err.problem)
    remedy = CLI_REMEDY.get(err.key) or (f"the command line has no option for that: describe the file in params "
                                         f"hsi.datasets ({err.fix}) and give --dataset NAME")
    return UBFInputError(where, err.detail, remedy)


def reader_options(fn):
    """The options that tell how to read an HSI file that params.yaml does not describe."""
    for opt in reversed([
        click.option("--dataset", help="read FILE with the reader settings (variable, layout, wavelengths, scale "
                                       "...) of this data set of params hsi.datasets; the options below override "
                                       "them"),
        click.option("--variable", help=".mat: the array variable"),
        click.option("--layout", type=click.Choice(["HWC", "CHW", "pixel_major"]), help=".mat: array layout"),
        click.option("--wavelengths", "wl",
                     help="'linspace:START,STOP,N', 'variable:NAME[:um|nm]' or 'values:a,b,c' (nm)"),
        click.option("--scale", type=float, help="DN → reflectance factor (e.g. 1e-4 for reflectance × 10000)"),
    ]):
        fn = opt(fn)
    return fn


def _read_cube(file: Path, params: dict, params_path: str, dataset: str | None, overrides: dict,
               rgb_hint: str):
    """Read FILE as an HSI cube with the reader options of params.yaml or of the command line.

    ``rgb_hint``: what to tell a person whose FILE turns out to be an RGB image.
    """
    from ubf_core.io import HSISource, read_hsi, read_mat_variables
    from ubf_core.io.rgb import is_rgb_image

    name, spec, from_params = _spec_for(file, params, params_path, dataset, overrides)
    try:
        if file.suffix.lower() == ".mat" and "variable" not in spec:
            variables = read_mat_variables(file)
            cubes = [k for k, (shape, _) in variables.items() if len(shape) == 3]
            if len(cubes) != 1:
                raise UBFInputError(file, "give --variable (and --layout): it holds "
                                    + ", ".join(f"{k} {'×'.join(map(str, s))}" for k, (s, _) in variables.items()))
            spec.setdefault("variable", cubes[0])
            spec.setdefault("layout", "HWC")
        root = Path(params_path).resolve().parent
        return read_hsi(HSISource.from_params(name, spec, root))
    except UBFInputError as err:
        if file.is_file() and is_rgb_image(file):
            raise UBFInputError(file, f"an RGB image, not a hyperspectral cube; {rgb_hint}") from None
        raise _cli_worded(err, file, name, from_params) from None


@main.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@PARAMS_OPTION
@reader_options
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def info_cmd(file: Path, params_path: str, dataset: str | None, variable: str | None, layout: str | None,
             wl: str | None, scale: float | None, as_json: bool) -> None:
    """Print a data set's shape, dtype, wavelength range, bad bands, NaN share and its cover of the target grid.

    The reader options come from the params.yaml data set whose path is FILE, or from --dataset NAME (NAME's
    options, FILE's data), and the options given here override them; GeoTIFF, ENVI and CAVE folders describe
    themselves. An RGB image goes to `ubf unmix`.
    """
    try:
        overrides = _reader_overrides(variable, layout, wl, scale)
        if not file.exists():
            raise UBFInputError(file, "file not found")
        params = _load_params_if_any(params_path)
        cube = _read_cube(file, params, params_path, dataset, overrides,
                          rgb_hint=f"`ubf unmix {file}` maps an RGB image to abundances")
        from ubf_core.data.inspect import describe_cube, format_description
        from ubf_core.spectral import REMOTE_SENSING, SpectralGrid

        grid_p = params.get("grid") or {}
        grid = SpectralGrid.from_params(grid_p) if grid_p else REMOTE_SENSING
        d = describe_cube(cube, grid, float(grid_p.get("coverage_tolerance_nm", 5.0)))
    except UBFInputError as err:
        _fail(err)
    except ValueError as err:
        _fail(UBFInputError(file, str(err)))
    click.echo(json.dumps(d, indent=2) if as_json else format_description(d))


RGB_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@main.command("unmix")
@click.argument("file", type=click.Path(path_type=Path))
@PARAMS_OPTION
@click.option("--model-uri", help="registry URI of the unmixing model [default: params unmixing.model_uri, "
                                  "models:/ubf-unmixing@champion]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="output folder [default: FILE's name + '.unmix' beside FILE]")
@click.option("--kind", type=click.Choice(["auto", "rgb", "hsi"]), default="auto", show_default=True,
              help="auto: .jpg/.jpeg/.png/.bmp/.webp are RGB images, anything else an HSI")
@reader_options
def unmix_cmd(file: Path, params_path: str, model_uri: str | None, out_dir: Path | None, kind: str,
              dataset: str | None, variable: str | None, layout: str | None, wl: str | None,
              scale: float | None) -> None:
    """Unmix one RGB image or HSI with a registered model (the champion by default).

    Writes OUT/abundance.zarr (abundance (endmember, y, x) on the simplex, with the model's endmembers
    (wavelength, endmember) in reflectance) and OUT/preview.png (the input beside its abundance maps). An HSI is
    first resampled to the model's wavelength grid; its reader options come as for `ubf info` (--dataset NAME:
    NAME's reader settings for FILE). An HSI whose values are clearly not reflectance (digital numbers read
    without --scale) is refused.
    """
    from ubf_core.config import load_params

    try:
        # cheap checks first: the input, the params and the reader options, before torch, MLflow and the model
        overrides = _reader_overrides(variable, layout, wl, scale)
        if not file.exists():
            raise UBFInputError(file, "file not found")
        params = load_params(params_path)
        is_rgb = kind == "rgb" or (kind == "auto" and file.suffix.lower() in RGB_SUFFIXES)
        if is_rgb:
            from ubf_core.io import read_rgb

            image = read_rgb(file)
        else:
            from ubf_core.data.inspect import not_reflectance

            cube = _read_cube(file, params, params_path, dataset, overrides,
                              rgb_hint="give --kind rgb to unmix it as one")
            reflectance_max = float(params["validation"]["reflectance_max"])
            problem = not_reflectance(cube, reflectance_max)
            if problem is not None:
                raise UBFInputError(file, f"{problem.describe()}; give the DN → reflectance factor, e.g. --scale "
                                          f"{_number_text(problem.suggested_scale)}")

        from tasks.registry import configure_tracking, load_registered_unmixing_model, resolve_model_version
        from tasks.unmixing import model_response
        from ubf_core.data.stores import write_store
        from ubf_core.reporting.preview import hsi_patches_to_rgb
        from ubf_core.spectral import SpectralGrid, resample_to_grid
        from ubf_core.unmixing.abundance_store import unmix_dataset
        from ubf_core.unmixing.figures import unmix_preview
        from ubf_core.unmixing.inference import model_grid, unmix_hsi_cube, unmix_rgb_image

        params = {**params, "_root": str(Path(params_path).resolve().parent)}
        uri = model_uri or str(params["unmixing"]["model_uri"])
        configure_tracking(Path(params_path).resolve().parent)
        version = resolve_model_version(uri)
        model = load_registered_unmixing_model(uri)
        if is_rgb:
            abundance, brightness = unmix_rgb_image(model, image, file, with_brightness=True)
        else:
            wl_model = model_grid(model)
            grid = SpectralGrid(float(wl_model[0]), float(wl_model[-1]), len(wl_model))
            tolerance = float(params["grid"]["coverage_tolerance_nm"])
            aligned = resample_to_grid(cube, grid, tolerance_nm=tolerance, max_nan_fraction=1.0, name=str(file))
            abundance, brightness = unmix_hsi_cube(model, aligned, model_response(params, model),
                                                   with_brightness=True)
            image = hsi_patches_to_rgb(aligned.expand_dims("patch"))[0]
        out_dir = out_dir or file.with_name(file.name + ".unmix")
        out_dir.mkdir(parents=True, exist_ok=True)
        ds = unmix_dataset(abundance, model.endmembers().detach().numpy(), model_grid(model),
                           {"input": file.name, "kind": "rgb" if is_rgb else "hsi", "model_uri": uri,
                            "model_name": version.name, "model_version": int(version.version),
                            "model_run_id": version.run_id or "",
                            **({"endmember_names": json.dumps(model.meta["endmember_names"])}
                               if "endmember_names" in model.meta else {})}, brightness)
        write_store(ds, out_dir / "abundance.zarr", dim="endmember")
        unmix_preview(image, abundance, out_dir / "preview.png",
                      f"{file.name} — {version.name} v{version.version}")
    except UBFInputError as err:
        _fail(err)
    except ValueError as err:
        _fail(UBFInputError(file, str(err)))
    click.echo(f"{file.name}: {abundance.shape[0]} abundance maps of {abundance.shape[1]}×{abundance.shape[2]} "
               f"pixels ({version.name} v{version.version}) → {out_dir / 'abundance.zarr'}, {out_dir / 'preview.png'}")


if __name__ == "__main__":
    main()
