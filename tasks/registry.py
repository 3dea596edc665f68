"""MLflow tracking and the model registry: where runs go, logging and loading the models, the champion rule.

Models are logged as MLflow pyfunc models whose artifact is a folder this project saved itself (JSON description +
safetensors weights) and are loaded by downloading that folder and rebuilding the model with ``ubf_core``: nothing
is ever unpickled, and moving a module does not break a registered version.

Default (embedded) store: a SQLite tracking database and file artifacts under ``mlruns/`` in the project folder
(git-ignored), no server. ``MLFLOW_TRACKING_URI`` points everything at a server instead.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ubf_core.errors import UBFInputError

CHAMPION = "champion"
TORCH_REQUIREMENTS = ["torch==2.13.0"]


def configure_tracking(root: str | Path) -> str:
    """Set the tracking URI: $MLFLOW_TRACKING_URI, else ``sqlite:///<root>/mlruns/mlflow.db``. Returns it."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        store = Path(root).resolve() / "mlruns"
        store.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def experiment(name: str, root: str | Path) -> str:
    """The id of experiment ``name``, created if needed (local store: artifacts under mlruns/artifacts/<name>)."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        location = (Path(root).resolve() / "mlruns" / "artifacts" / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def run_name(stage: str, params_hash: str) -> str:
    """The MLflow run name of a stage run: ``<stage>-<first 8 hex digits of its params hash>`` (e.g.
    ``train_unmixing-3f2a9c1e``), so that runs of the same settings share a name. ``params_hash`` is what
    :func:`ubf_core.config.params_hash` gives for the stage's params; an empty stage or hash is a UBFInputError."""
    if not stage or not params_hash:
        raise UBFInputError("run name", f"needs a stage and a params hash, got {stage!r} and {params_hash!r}")
    return f"{stage}-{params_hash[:8]}"


def start_stage_run(stage: str, root: str | Path, params_hash: str):
    """Start the MLflow run of DVC stage ``stage``: tracking set for ``root`` (:func:`configure_tracking`),
    experiment ``ubf-<stage>``, named :func:`run_name`, tagged ``stage`` and ``params_hash``. Returns MLflow's
    ActiveRun, to use as ``with start_stage_run(...) as run:``. Every stage starts its run here."""
    import mlflow

    configure_tracking(root)
    return mlflow.start_run(experiment_id=experiment(f"ubf-{stage}", root), run_name=run_name(stage, params_hash),
                            tags={"stage": stage, "params_hash": params_hash})


def resume_run(run_id: str):
    """Reopen the finished MLflow run ``run_id`` (tracking already configured) to log more into it, as
    ``with resume_run(run_id):``; it ends again on leaving. A stage split into tasks logs into one run this way."""
    import mlflow

    return mlflow.start_run(run_id=run_id)


def metric_name(name: str) -> str:
    """An MLflow metric name for a figure's name: ``/`` (MLflow reads it as a folder) becomes ``_per_``."""
    return name.replace("/", "_per_")


def log_to_run(*, params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
               tags: dict[str, Any] | None = None, files: list[str | Path] = (),
               folders: dict[str, str | Path] | None = None, step: int | None = None) -> None:
    """Log to the active MLflow run, the one way every stage logs: ``params`` (values as text), ``metrics`` (only
    finite real numbers; names through :func:`metric_name`; at ``step`` when given), ``tags``, ``files`` (artifacts
    at the run's root) and ``folders`` (artifact path → local folder, logged whole)."""
    import math

    import mlflow

    if params:
        mlflow.log_params({k: str(v) for k, v in params.items()})
    if metrics:
        finite = {metric_name(k): float(v) for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if finite:
            mlflow.log_metrics(finite, step=step)
    if tags:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})
    for f in files:
        mlflow.log_artifact(str(f))
    for artifact_path, folder in (folders or {}).items():
        mlflow.log_artifacts(str(folder), artifact_path)


def track_stage(stage: str, root: str | Path, params_hash: str, **record: Any) -> str:
    """One MLflow run of stage ``stage`` (:func:`start_stage_run`) holding ``record`` (the keyword arguments of
    :func:`log_to_run`). Returns the run id. Stages that log while they train open the run themselves and call
    :func:`log_to_run` inside it."""
    with start_stage_run(stage, root, params_hash) as run:
        log_to_run(**record)
        return run.info.run_id


def version_description(trained_on: dict[str, Any], params_hash: str, figures: dict[str, float],
                        run_id: str = "") -> str:
    """The description of a registered model version, one item a line: what it was trained on (``trained_on``:
    name → value, e.g. store paths and patch counts), its params hash, its figures (name → value, 4 significant
    digits; the champion metric first by convention) and the training run."""
    lines = ["Trained on: " + "; ".join(f"{k} {v}" for k, v in trained_on.items()),
             f"Params hash: {params_hash}",
             "Figures: " + ", ".join(f"{k} = {float(v):.4g}" for k, v in figures.items())]
    if run_id:
        lines.append(f"Training run (MLflow): {run_id}")
    return "\n".join(lines)


def describe_version(name: str, version: int, description: str, model_description: str) -> None:
    """Set the description of version ``version`` of registered model ``name`` (e.g. from
    :func:`version_description`), and the registered model's own description (what the model is) to
    ``model_description`` when it has none. A version that does not exist is a UBFInputError naming it."""
    import mlflow

    resolve_model_version(f"models:/{name}/{int(version)}")
    client = mlflow.MlflowClient()
    client.update_model_version(name, str(int(version)), description=description)
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=model_description)


def tag_evaluation(name: str, version: int, figures: dict[str, float], run_id: str = "") -> dict[str, str]:
    """Tag version ``version`` of registered model ``name`` with the figures an evaluation found for it: one tag
    ``eval.<figure>`` each (e.g. ``eval.c2st``, ``eval.psd_ratio``, ``eval.cas``; values as text, full precision),
    and ``eval.run_id`` when given. ``eval.*`` tags of an earlier evaluation that this one lacks are removed, so the
    tags are always one evaluation's. A version that does not exist is a UBFInputError naming it. Returns the tags
    set."""
    import mlflow

    current = resolve_model_version(f"models:/{name}/{int(version)}")
    tags = {f"eval.{k}": repr(float(v)) for k, v in figures.items()}
    if run_id:
        tags["eval.run_id"] = run_id
    client = mlflow.MlflowClient()
    for key in current.tags:
        if key.startswith("eval.") and key not in tags:
            client.delete_model_version_tag(name, str(int(version)), key)
    for key, val in tags.items():
        client.set_model_version_tag(name, str(int(version)), key, val)
    return tags


def write_registration(path: str | Path, name: str, reg: dict, run_id: str) -> None:
    """Record which version of ``name`` a training stage registered (``reg`` as :func:`register` returns it).

    The record is the training stage's DVC output, kept out of git: the registry lives in MLflow, outside DVC, so a
    fresh clone, whose committed dvc.lock and metrics would otherwise call the stage up to date, lacks the record
    and reruns the stage that fills its registry.
    """
    from tasks.params import write_json

    write_json(Path(path), {"model_name": name, "model_version": int(reg["version"]),
                            "model_uri": f"models:/{name}/{int(reg['version'])}",
                            "champion_version": int(reg["champion_version"]), "run_id": run_id})


def log_unmixing_model(model, name: str = "model"):
    """Log a trained unmixing network (an ``UnmixingNet`` with its ``meta``) in the active run as an MLflow pyfunc
    model; the folder of :func:`ubf_core.unmixing.saved.save_unmixing_model` travels as its artifact ``unmixing``
    (the fully convolutional encoder takes any H × W, so no input example is fixed). Returns MLflow's ModelInfo."""
    import mlflow.pyfunc

    from tasks.unmixing_model import UNMIXING_ARTIFACT, UnmixingModel
    from ubf_core.unmixing.saved import save_unmixing_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_unmixing_model(model, Path(tmp) / UNMIXING_ARTIFACT)
        return mlflow.pyfunc.log_model(name=name, python_model=UnmixingModel(),
                                       artifacts={UNMIXING_ARTIFACT: str(folder)}, pip_requirements=TORCH_REQUIREMENTS)


def register(model_uri: str, name: str, metric: str, value: float, higher_is_better: bool,
             tags: dict[str, Any] | None = None, measured_on: dict[str, Any] | None = None) -> dict:
    """Register ``model_uri`` as a new version of ``name``; move the ``champion`` alias to it only when its
    ``metric`` beats the current champion's (the first version becomes champion).

    ``measured_on``: tags saying what ``metric`` was measured on (e.g. the validation scenes). They are set on the
    version like ``tags``; a champion whose tags differ was scored on other data, so its figure does not compare
    and the new version takes the alias.

    Returns {"version", "champion_version", "promoted", "previous_champion", "previous_value", "reason"}.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    mv = mlflow.register_model(model_uri, name)
    measured_on = {k: str(v) for k, v in (measured_on or {}).items()}
    for key, val in {f"metric.{metric}": value, **(tags or {}), **measured_on}.items():
        client.set_model_version_tag(name, mv.version, key, str(val))
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    previous = float(current.tags[f"metric.{metric}"]) if current and f"metric.{metric}" in current.tags else None
    other_data = current is not None and any(current.tags.get(k) != v for k, v in measured_on.items())
    if previous is None:
        better, reason = True, "first version"
    elif other_data:
        better, reason = True, f"the champion's {metric} was measured on other data ({', '.join(measured_on)})"
    else:
        better = value > previous if higher_is_better else value < previous
        reason = f"{metric} {value:.4g} vs champion {previous:.4g}"
    if better:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
    return {"version": int(mv.version), "champion_version": int(mv.version if better else current.version),
            "promoted": better, "previous_champion": int(current.version) if current else None,
            "previous_value": previous, "reason": reason}


def resolve_model_version(uri: str):
    """The registry entry behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; a UBFInputError naming the
    URI when it points nowhere (checked before any work starts)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        raise UBFInputError(uri, "expected a registry URI models:/NAME@ALIAS or models:/NAME/VERSION")
    ref = uri[len("models:/"):]
    client = mlflow.MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, _, version = ref.partition("/")
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise UBFInputError(uri, f"no such registered model version in {mlflow.get_tracking_uri()} "
                                 f"({str(err).splitlines()[0]})") from None


def _download_model(uri: str, dst: str | Path) -> Path:
    """Download the files of the registered version behind ``uri`` into ``dst`` (after :func:`resolve_model_version`
    has checked that it exists); returns the downloaded model's folder.

    MLflow's per-file progress bar is off for the download (unless $MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR asks for
    it): the models are a few small files, and a bar on stderr would break the one-line errors of ``ubf unmix``.
    """
    import mlflow.artifacts

    resolve_model_version(uri)
    switch = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(switch)
    os.environ[switch] = before or "false"
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    finally:
        if before is None:
            os.environ.pop(switch, None)


def _pytorch_flavour(root: Path) -> bool:
    """Whether the downloaded model under ``root`` is an MLflow pytorch-flavour model (a pickled module), judged
    from its MLmodel file (YAML) and file names only: nothing is unpickled."""
    import yaml

    for mlmodel in root.rglob("MLmodel"):
        try:
            description = yaml.safe_load(mlmodel.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(description, dict) and "pytorch" in (description.get("flavors") or {}):
            return True
    return any(root.rglob("model.pth"))


def load_registered_unmixing_model(uri: str):
    """The registered unmixing network behind ``uri`` (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``): its
    artifacts are downloaded and the network rebuilt by :func:`ubf_core.unmixing.saved.load_unmixing_model` (CPU,
    eval mode, with its ``meta``); nothing is unpickled. A version in the old pickle format (MLflow's pytorch
    flavour) or without a complete saved model is a one-line UBFInputError naming ``uri``."""
    from ubf_core.unmixing.saved import SAVED_UNMIXING_FILE, load_unmixing_model

    with tempfile.TemporaryDirectory() as tmp:
        root = _download_model(uri, tmp)
        found = sorted(root.rglob(SAVED_UNMIXING_FILE))
        if not found:
            if _pytorch_flavour(root):
                raise UBFInputError(uri, "registered in the old pickle format (MLflow pytorch flavour), which UBF no "
                                         "longer loads: retrain and register it again with "
                                         "`dvc repro -f train_unmixing`")
            raise UBFInputError(uri, f"the registered model holds no saved unmixing model ({SAVED_UNMIXING_FILE} "
                                     f"missing)")
        try:
            return load_unmixing_model(found[0].parent)
        except UBFInputError as err:  # name the registered version, not the temporary download
            where = Path(err.where)
            inside = where.relative_to(root) if where.is_relative_to(root) else where
            raise UBFInputError(uri, f"{inside}: {err.problem}") from None


def log_generator(folder: str | Path, name: str = "generator"):
    """Log a saved abundance generator (the folder of ``AbundanceGenerator.save``) as an MLflow pyfunc model
    in the active run; the folder travels as the model's artifact ``generator``."""
    import mlflow.pyfunc

    from tasks.generator_model import GeneratorModel

    return mlflow.pyfunc.log_model(name=name, python_model=GeneratorModel(),
                                   artifacts={"generator": str(folder)}, pip_requirements=TORCH_REQUIREMENTS)


def download_generator(uri: str, dst: str | Path) -> Path:
    """Download the registered generator behind ``uri`` into ``dst``; returns its saved-generator folder."""
    root = _download_model(uri, dst)
    found = sorted(root.rglob("generator.json"))
    if not found:
        raise UBFInputError(uri, "the registered model holds no saved generator (generator.json missing)")
    return found[0].parent
