"""infra/stage_deps.py: every DVC stage depends on every project module its command may import (so that editing one
reruns the stage), and the checker itself finds a missing dep, lazy imports inside functions included."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "infra" / "stage_deps.py"
sys.path.insert(0, str(REPO / "infra"))
import stage_deps  # noqa: E402


def test_every_stage_depends_on_the_modules_it_imports():
    found = stage_deps.problems(REPO / "dvc.yaml")
    assert not found, ("dvc.yaml: stages that import project modules their deps do not cover (a change there would "
                       "leave `dvc repro` up to date over the old code's results); `python infra/stage_deps.py "
                       "--print` lists the code deps to write:\n" + "\n".join(found))


@pytest.mark.parametrize("stage, module", [
    ("train_generator", "ubf_core/metrics/distribution.py"),       # via tasks/generator.py
    ("evaluate", "ubf_core/metrics/distribution.py"),              # via ubf_core/evaluation/suite.py
    ("train_unmixing", "ubf_core/spectral/resample.py"),   # via ubf_core/unmixing/inputs.py and ubf_core/spectral
    ("train_generator", "ubf_core/generators/ddpm.py"),    # named as a string in ubf_core/generators/factory.py
    ("pretrain_generator", "flows/pretrain_generator.py"),  # `--params params.long.yaml` after the module
])
def test_the_closure_sees_indirect_lazy_and_named_imports(stage, module):
    """The stale deps of the issue, found from the repository's own code (so the check above is not vacuous)."""
    stages = {s.name: s for s in stage_deps.load_stages(REPO / "dvc.yaml")}
    assert module in stage_deps.stage_closure(stages[stage])


def _fake_project(root: Path, deps: list[str]) -> Path:
    """flows/a.py imports (inside a function) tasks.b, which imports ubf_core.x relatively and from ubf_core a
    submodule; one stage `python -m flows.a --params p.yaml` with ``deps``. Returns the dvc.yaml path."""
    files = {
        "flows/__init__.py": "",
        "flows/a.py": """\
            import sys


            def main():
                from tasks.b import run   # lazy: only when the flow runs
                return run()


            if __name__ == "__main__":
                sys.exit(main())
            """,
        "tasks/__init__.py": "",
        "tasks/b.py": "import numpy\n\nimport ubf_core.x\n\n\ndef run():\n    return ubf_core.x.f()\n",
        "ubf_core/__init__.py": "",
        "ubf_core/x.py": "from . import y\n\n\ndef f():\n    return y.g()\n",
        "ubf_core/y.py": "def g():\n    return 0\n",
        "ubf_core/unused.py": "import ubf_core.x\n",
        "p.yaml": "k: 1\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    dvc_file = root / "dvc.yaml"
    dep_lines = "\n".join(f"      - {d}" for d in deps)
    dvc_file.write_text(f"stages:\n  a:\n    cmd: python -m flows.a --params p.yaml\n    deps:\n{dep_lines}\n"
                        "    params:\n      - p.yaml:\n          - k\n")
    return dvc_file


def _check(dvc_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--dvc-file", str(dvc_file)],
                          capture_output=True, text=True, timeout=60)


def test_the_checker_reports_a_missing_dep_and_passes_once_it_is_added(tmp_path):
    deps = ["flows", "tasks", "ubf_core/__init__.py", "ubf_core/y.py"]
    dvc_file = _fake_project(tmp_path, deps)

    found = stage_deps.problems(dvc_file)
    assert len(found) == 1 and found[0].startswith("a: missing dep ubf_core/x.py"), found
    assert "flows/a.py -> tasks/b.py -> ubf_core/x.py" in found[0]     # how the stage reaches it
    run = _check(dvc_file)
    assert run.returncode == 1 and run.stdout.splitlines() == found, run.stdout + run.stderr

    _fake_project(tmp_path, deps + ["ubf_core/x.py"])
    assert stage_deps.problems(dvc_file) == []
    run = _check(dvc_file)
    assert run.returncode == 0, run.stdout + run.stderr


def test_print_writes_folders_for_whole_packages_and_files_otherwise(tmp_path):
    dvc_file = _fake_project(tmp_path, ["flows"])
    whole_flows = ["flows", "tasks", "ubf_core/__init__.py", "ubf_core/x.py", "ubf_core/y.py"]
    assert stage_deps.suggested_deps(dvc_file) == {"a": whole_flows}     # ubf_core/unused.py is not imported
    (tmp_path / "flows" / "b.py").write_text("")                         # flows is no longer used as a whole
    assert stage_deps.suggested_deps(dvc_file) == {"a": ["flows/__init__.py", "flows/a.py"] + whole_flows[1:]}


def test_a_params_file_of_the_command_must_be_a_params_entry(tmp_path):
    dvc_file = _fake_project(tmp_path, ["flows", "tasks", "ubf_core"])
    dvc_file.write_text(dvc_file.read_text().replace("p.yaml:", "params.yaml:"))
    assert stage_deps.problems(dvc_file) == [
        "a: params file p.yaml (--params in cmd) is named by no params: entry"]


def test_a_command_naming_a_missing_module_is_an_error(tmp_path):
    dvc_file = _fake_project(tmp_path, ["flows"])
    dvc_file.write_text(dvc_file.read_text().replace("flows.a", "flows.nope"))
    with pytest.raises(stage_deps.StageDepsError, match="no module flows.nope"):
        stage_deps.problems(dvc_file)
    run = _check(dvc_file)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "flows.nope" in run.stderr
