"""The pipeline's stages, read from dvc.yaml: the one list of them.

dvc.yaml's ``stages:``, in file order, are the stages; each command is ``python -m flows.<module> [--params FILE]``
and runs the flow function ``<module>`` of ``flows/<module>.py``. What else names the stages derives from this list:
the ``pipeline`` flow (flows/pipeline.py), the ``ubf`` stage commands (flows/cli.py) and the Prefect deployments
(infra/prefect.yaml, written by ``python infra/deployments.py``; tests/test_infra.py checks it is up to date).
A new stage is one entry in dvc.yaml and its flow file.

Nothing here imports a flow: reading the list costs one YAML read (the flows' docstrings are read with ``ast``).
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from flows._entry import flow_description

REPO = Path(__file__).resolve().parents[1]
DVC_FILE = REPO / "dvc.yaml"


class StageListError(Exception):
    """dvc.yaml cannot give the stage list (missing, unreadable, or a stage that runs no flow); the message says
    which file and stage."""


@dataclass(frozen=True)
class Stage:
    """One stage of dvc.yaml."""

    name: str                   # the stage's name in dvc.yaml
    module: str                 # its command runs ``python -m flows.<module>``, the flow function ``<module>``
    frozen: bool = False        # ``frozen: true``: `dvc repro` does not run it (and neither does the pipeline flow)
    params_file: str | None = None   # the ``--params FILE`` of its command; None: the pipeline's params file

    @property
    def command(self) -> str:
        """The ``ubf`` command that runs it: the name with dashes (train_unmixing → train-unmixing)."""
        return self.name.replace("_", "-")

    @property
    def entrypoint(self) -> str:
        """The flow as Prefect names it: ``flows/<module>.py:<module>``."""
        return f"flows/{self.module}.py:{self.module}"

    @property
    def in_pipeline(self) -> bool:
        """Whether the ``pipeline`` flow runs it: the stages `dvc repro` runs with the pipeline's params file, i.e.
        not frozen and without a params file of its own (the long profile's pretrain_generator is neither)."""
        return not self.frozen and self.params_file is None


def _module_of(cmd: object, where: str) -> tuple[str, str | None]:
    """(flow module, ``--params`` file or None) of a stage command ``python -m flows.<module> [--params FILE]``."""
    try:
        words = shlex.split(cmd) if isinstance(cmd, str) else []
    except ValueError:
        words = []
    if len(words) < 3 or not Path(words[0]).name.startswith("python") or words[1] != "-m" \
            or not words[2].startswith("flows.") or not words[2][len("flows."):].isidentifier():
        raise StageListError(f"{where}: the command must be `python -m flows.<module> [--params FILE]` (the stage's "
                             f"Prefect flow), got {cmd!r}")
    rest, params_file = words[3:], None
    while rest:
        word = rest.pop(0)
        if word == "--params" and rest:
            params_file = rest.pop(0)
        elif word.startswith("--params="):
            params_file = word.partition("=")[2]
        else:
            raise StageListError(f"{where}: the command takes only --params FILE, got {word!r} in {cmd!r}")
    return words[2][len("flows."):], params_file


@lru_cache(maxsize=8)
def _read(dvc_file: Path, mtime_ns: int) -> tuple[Stage, ...]:
    try:
        spec = yaml.load(dvc_file.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as err:
        raise StageListError(f"{dvc_file}: cannot read the stage list ({err})") from err
    stages = (spec or {}).get("stages") if isinstance(spec, dict) else None
    if not isinstance(stages, dict) or not stages:
        raise StageListError(f"{dvc_file}: no `stages:` mapping")
    found = []
    for name, body in stages.items():
        where = f"{dvc_file}, stage {name}"
        if not isinstance(body, dict) or "cmd" not in body:
            raise StageListError(f"{where}: no cmd (foreach/matrix stages are not supported)")
        module, params_file = _module_of(body["cmd"], where)
        found.append(Stage(str(name), module, bool(body.get("frozen", False)), params_file))
    return tuple(found)


def read_stages(dvc_file: Path | str = DVC_FILE) -> list[Stage]:
    """Every stage of ``dvc_file`` in file order (frozen ones included); raises :class:`StageListError`."""
    path = Path(dvc_file).resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise StageListError(f"{path}: cannot read the stage list ({err.strerror or err})") from err
    return list(_read(path, mtime))


def pipeline_stages(dvc_file: Path | str = DVC_FILE) -> list[Stage]:
    """The stages the ``pipeline`` flow runs, in dvc.yaml order (see :attr:`Stage.in_pipeline`)."""
    return [stage for stage in read_stages(dvc_file) if stage.in_pipeline]


def flow_docstring(module: str, function: str | None = None, root: Path = REPO) -> str:
    """The docstring of the flow function ``function`` (default: ``module``) of ``flows/<module>.py``, read without
    importing it, without its ``Args:`` section; raises :class:`StageListError` when there is no such function."""
    path = root / "flows" / f"{module}.py"
    function = function or module
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError) as err:
        raise StageListError(f"{path}: cannot read the flow {function} ({err})") from err
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            return flow_description(ast.get_docstring(node))
    raise StageListError(f"{path}: no function {function} (a stage's flow is the function named after its module)")
