"""The project's imports go one way: no circle among the modules of ubf_core, tasks, flows and the infra scripts
(lazy imports inside functions included, which is how a circle hides), and ubf_core, the library, imports no
orchestration or tracking package. The graph is infra/stage_deps.py's (the resolver the DVC deps check uses)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "infra" / "stage_deps.py"
sys.path.insert(0, str(REPO / "infra"))
import stage_deps  # noqa: E402

ORCHESTRATION = ("prefect", "mlflow", "dvc", "great_expectations")   # tasks/ and flows/ use them, ubf_core must not


def _circles(root: Path) -> list[str]:
    """One line per import circle of the project under ``root``: a shortest circle, then all the modules in it."""
    graph = stage_deps.import_graph(*stage_deps.project_files(root))
    return [f"{' -> '.join(stage_deps.cycle_path(graph, members))} (all in the circle: {', '.join(members)})"
            for members in stage_deps.import_cycles(graph)]


def test_the_project_has_no_import_circle():
    circles = _circles(REPO)
    assert not circles, ("import circles (each module imports the next, lazy imports included); move what both sides "
                         "need into a module that imports neither:\n" + "\n".join(circles))


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))


def test_a_circle_is_reported_even_when_one_side_imports_lazily(tmp_path):
    """The shape of the io circle this test was written for: a reader imports the dispatcher at the top, the
    dispatcher imports the reader inside a function. A second circle runs through a package's __init__."""
    _write(tmp_path, {
        "ubf_core/__init__.py": "",
        "ubf_core/io/__init__.py": "from ubf_core.io.hsi import read\n",
        "ubf_core/io/hsi.py": """\
            from dataclasses import dataclass


            @dataclass
            class Raw:
                data: list


            def read(path):
                from .cave import read_raw   # lazy, to dodge the circle at import time
                return read_raw(path)
            """,
        "ubf_core/io/cave.py": "from ubf_core.io.hsi import Raw\n\n\ndef read_raw(path):\n    return Raw([path])\n",
        "ubf_core/io/rgb.py": "from . import source\n",           # a sibling reached through the package: no circle
        "ubf_core/io/source.py": "import ubf_core.io.rgb as rgb\n",
        "ubf_core/report.py": "from ubf_core import plots\n",
        "ubf_core/plots/__init__.py": "from ubf_core.plots.lines import draw\n\nSTYLE = {}\n",
        "ubf_core/plots/lines.py": "def draw():\n    from ubf_core.plots import STYLE   # a name from its own __init__\n"
                                   "    return STYLE\n",
        "tasks/__init__.py": "",
        "tasks/read.py": "from ubf_core.io import read\n",
    })
    graph = stage_deps.import_graph(*stage_deps.project_files(tmp_path))
    assert graph["ubf_core/io/hsi.py"] == {"ubf_core/io/cave.py"}                 # the lazy import is an edge
    assert graph["ubf_core/io/rgb.py"] == {"ubf_core/io/source.py"}               # not ubf_core/io/__init__.py
    assert graph["tasks/read.py"] == {"ubf_core/__init__.py", "ubf_core/io/__init__.py"}
    assert stage_deps.import_cycles(graph) == [
        ["ubf_core/io/cave.py", "ubf_core/io/hsi.py"],
        ["ubf_core/io/rgb.py", "ubf_core/io/source.py"],
        ["ubf_core/plots/__init__.py", "ubf_core/plots/lines.py"],
    ]
    circles = _circles(tmp_path)
    assert circles[0].startswith("ubf_core/io/cave.py -> ubf_core/io/hsi.py -> ubf_core/io/cave.py"), circles
    run = subprocess.run([sys.executable, str(SCRIPT), "--cycles", "--dvc-file", str(tmp_path / "dvc.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and len(run.stdout.splitlines()) == 3, run.stdout + run.stderr

    # the fix: what both sides need in a module of its own, the dispatcher importing the reader at the top
    _write(tmp_path, {
        "ubf_core/io/cube.py": "from dataclasses import dataclass\n\n\n@dataclass\nclass Raw:\n    data: list\n",
        "ubf_core/io/hsi.py": "from ubf_core.io.cave import read_raw\n\n\ndef read(path):\n    return read_raw(path)\n",
        "ubf_core/io/cave.py": "from ubf_core.io.cube import Raw\n\n\ndef read_raw(path):\n    return Raw([path])\n",
        "ubf_core/io/source.py": "",
        "ubf_core/plots/lines.py": "from ubf_core.plots.style import STYLE\n\n\ndef draw():\n    return STYLE\n",
        "ubf_core/plots/style.py": "STYLE = {}\n",
        "ubf_core/plots/__init__.py": "from ubf_core.plots.lines import draw\nfrom ubf_core.plots.style import STYLE\n",
    })
    assert _circles(tmp_path) == []


def test_the_library_imports_no_orchestration_and_no_pipeline_module():
    """Statically, every import anywhere in ubf_core (lazy ones too); tests/test_classification.py checks at run time
    that importing ubf_core.classification loads none of prefect, mlflow, dvc."""
    roots, files = stage_deps.project_files(REPO)
    found = []
    for file in files:
        rel = file.relative_to(REPO).as_posix()
        if not rel.startswith("ubf_core/"):
            continue
        for module, _ in stage_deps.import_statements(REPO, file):
            top = module.partition(".")[0]
            if top in ORCHESTRATION:
                found.append(f"{rel}: imports {module}")
    graph = stage_deps.import_graph(roots, files)
    found += [f"{file}: imports {target}" for file, targets in sorted(graph.items()) if file.startswith("ubf_core/")
              for target in sorted(targets) if not target.startswith("ubf_core/")]
    assert not found, "ubf_core is the library that tasks/ and flows/ call, it imports neither them nor " \
                      f"{', '.join(ORCHESTRATION)}:\n" + "\n".join(found)
