#!/usr/bin/env python
"""The code each DVC stage runs, from its imports: dvc.yaml code dependencies that cannot go stale.

A stage's command (``python -m flows.<stage> [--params FILE]``, or ``python path/to/script.py``) runs one module; that
module imports others, often lazily inside functions. This script follows those imports statically (``ast``, nothing
is imported or run) and collects the stage's *import closure*: every file of a project module the stage may import.
Followed: ``import a.b``, ``from a import b`` (b a submodule or a name), relative imports, imports anywhere (inside
functions, ``if`` and ``try`` blocks: being over-inclusive is correct, a stage must depend on any module it may
import), the ``__init__.py`` of every package on the way (Python runs them), ``importlib.import_module("a.b")`` and
any string literal that names a project module (``"a.b"`` or ``"a.b:Class"``, the registry pattern of
``ubf_core/generators/factory.py``), and f-strings ``f"a.{name}"`` (every module of package ``a``). A project module
is one whose file lies in the stage's working directory (``flows``, ``tasks``, ``ubf_core`` here); third-party
imports are ignored. Imports built from computed names in other ways are not seen: name such a module in a string.

    python infra/stage_deps.py --check    # exit 1, one line per stage and module file its deps do not cover
    python infra/stage_deps.py --print    # per stage, the minimal code deps to paste into dvc.yaml
    python infra/stage_deps.py --cycles   # exit 1, one line per import circle among the project's modules

A dependency folder covers every file under it. ``--print`` writes a folder when every ``.py`` file under a package
folder is in the closure, single files otherwise. ``--check`` also reports a ``--params FILE`` in a command whose
file no ``params:`` entry of the stage names (a change in it would not rerun the stage).

Exit status of ``--check``: 0 when every stage is covered, 1 when some are not, 2 for a dvc.yaml it cannot read.
tests/test_stage_deps.py runs the same check on the repository's dvc.yaml.

The same reading of import statements gives the import graph of the project's modules (:func:`import_graph`:
``ubf_core``, ``tasks``, ``flows`` and the ``infra`` scripts, lazy imports included) and its circles
(:func:`import_cycles`); tests/test_import_graph.py asserts there are none.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

REPO = Path(__file__).resolve().parents[1]

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")          # "a.b.c": a string that may name a module
_IMPORT_CALLS = {"import_module", "__import__"}


class StageDepsError(Exception):
    """dvc.yaml (or a stage command) that this script cannot read; the message names the file and the problem."""


# --------------------------------------------------------------------------------------------------- modules and files

def module_file(root: Path, name: str) -> Path | None:
    """The file of module ``name`` ("a.b.c") under ``root``: ``a/b/c.py`` or ``a/b/c/__init__.py``; None if neither
    exists (a third-party module, or a name that is not a module)."""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        return None
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_name(base.name + ".py").is_file():
        return base.with_name(base.name + ".py")
    return None


def module_name(root: Path, path: Path) -> str:
    """The dotted name of the module in file ``path`` under ``root`` (a package's ``__init__.py``: the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path, package: str) -> set[str]:
    """Every module (dotted names) in the folder of ``package`` and its sub-folders; empty if it is not a package."""
    init = module_file(root, package)
    if init is None or init.name != "__init__.py":
        return set()
    return {module_name(root, p) for p in _python_files(init.parent)}


def _python_files(folder: Path) -> list[Path]:
    """The ``.py`` files under ``folder``, recursively, without caches and hidden folders."""
    return sorted(p for p in folder.rglob("*.py")
                  if not any(part == "__pycache__" or part.startswith(".") for part in p.relative_to(folder).parts))


def _literal_prefix(node: ast.AST) -> str | None:
    """The constant text an f-string or ``"a." + x`` starts with (None for anything else)."""
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            return node.left.value
        return _literal_prefix(node.left)
    return None


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise StageDepsError(f"{path}: cannot parse ({err.msg}, line {err.lineno})") from err


def import_statements(root: Path, path: Path, tree: ast.Module | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """Every import the file ``path`` makes, anywhere in it (inside functions too), as (module, names): absolute
    dotted names, relative imports resolved against the module's own package.

    ``import a.b`` gives ("a.b", ()); ``from a import b, c`` ("a", ("b", "c")) (b and c may be submodules or names
    in a's namespace; ``from a import *`` gives ("a", ("*",))); ``importlib.import_module("a.b")`` /
    ``__import__("a.b")`` ("a.b", ()).
    Project or not: the caller resolves which names are project modules (:func:`module_file`).
    """
    tree = tree or _parse(path)
    own = module_name(root, path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    raise StageDepsError(f"{path}, line {node.lineno}: relative import beyond the top-level package")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((base, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in _IMPORT_CALLS and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((arg.value, ()))
    return found


def imported_names(root: Path, path: Path) -> set[str]:
    """Every module name the file ``path`` may import, anywhere in it, project or not (absolute dotted names).

    The names of :func:`import_statements`, where ``from a import b`` gives "a" and "a.b" (b may be a submodule; a
    name that is not one is dropped later, when no file resolves), and, over-inclusive as a stage's deps must be: a
    string literal "a.b" / "a.b:Class" gives "a.b"; an f-string ``f"a.{x}"`` every module of package "a".
    """
    tree = _parse(path)
    names: set[str] = set()
    for base, members in import_statements(root, path, tree):
        if base:
            names.add(base)
        names.update(f"{base}.{name}" if base else name for name in members if name != "*")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.partition(":")[0]       # "module:attribute" (entry points, registries)
            if _DOTTED.fullmatch(text):
                names.add(text)
        if isinstance(node, (ast.JoinedStr, ast.BinOp)):
            prefix = _literal_prefix(node)
            if prefix and prefix.endswith(".") and all(p.isidentifier() for p in prefix[:-1].split(".")):
                names.update(package_modules(root, prefix[:-1]))
    return names


def import_closure(root: Path, start: Path) -> dict[str, str | None]:
    """Every project file the module in ``start`` may import, directly or not, with the file that imports it.

    root: the folder the command runs in (imports resolve against it, as with ``python -m``). start: the module the
    command runs. Returns {file: importing file} (paths relative to ``root``, POSIX; ``start`` maps to None; a
    package ``__init__.py`` maps to the file whose import ran it), in the order found (breadth first).
    """
    root = root.resolve()
    start = start.resolve()
    found: dict[str, str | None] = {}
    queue: list[Path] = []

    def add(file: Path, by: str | None) -> None:
        rel = file.relative_to(root).as_posix()
        if rel not in found:
            found[rel] = by
            queue.append(file)

    def add_module(name: str, by: str | None) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):          # "a.b.c" runs a/__init__.py, a/b/__init__.py, then a/b/c
            file = module_file(root, ".".join(parts[:i]))
            if file is None:
                return
            add(file, by)

    add_module(module_name(root, start), None)    # its packages' __init__.py run first (python -m a.b: a/__init__.py)
    add(start, None)                               # a script outside any package
    while queue:
        file = queue.pop(0)
        rel = file.relative_to(root).as_posix()
        for name in sorted(imported_names(root, file)):
            add_module(name, rel)
    return found


def import_chain(closure: dict[str, str | None], file: str) -> list[str]:
    """How the stage reaches ``file``: the files from the stage's module to it, each importing the next."""
    chain = [file]
    while closure.get(chain[-1]) is not None and len(chain) <= len(closure):
        chain.append(closure[chain[-1]])
    return chain[::-1]


# --------------------------------------------------------------------------------------------------------- import graph

PACKAGES = ("ubf_core", "tasks", "flows")   # the project's packages, under the repository's root
SCRIPTS = "infra"                           # a folder of scripts that import each other as top-level modules


def import_graph(roots: list[Path], files: list[Path]) -> dict[str, set[str]]:
    """Which project module imports which: {file: the files of the project modules it imports}, one key per file.

    roots: the folders imports resolve against (as on ``sys.path``). A file is named relative to the deepest root
    that holds it; its imports resolve against that root first, then the others in order. Files are POSIX paths
    relative to ``roots[0]``; a module outside ``files`` that an import resolves to is a node all the same.

    An edge is an import of :func:`import_statements` (anywhere in the file: lazy imports inside functions count;
    a string that only names a module, as in a registry, does not). ``from a import b`` is an edge to ``a.b`` when
    b is a submodule, to ``a`` (its ``__init__.py``) when b is a name of a's namespace (or ``*``). Importing ``a.b``
    also runs the ``__init__.py`` of ``a``: an edge too, except where the importer lies in that package (a package
    is in ``sys.modules`` before any module of it runs, so reaching it again on the way to a sibling runs nothing,
    and ``from . import sibling`` in a package whose ``__init__`` imports its modules is no circle). Taking a *name*
    from one's own package does depend on its ``__init__.py`` having defined it already, and stays an edge.
    """
    roots = [r.resolve() for r in roots]

    def key(file: Path) -> str:
        return file.relative_to(roots[0]).as_posix() if file.is_relative_to(roots[0]) else file.as_posix()

    graph: dict[str, set[str]] = {}
    for file in files:
        file = file.resolve()
        own_root = max((r for r in roots if file.is_relative_to(r)), key=lambda r: len(r.parts))
        search = [own_root] + [r for r in roots if r != own_root]
        own = module_name(own_root, file)
        inside = {".".join(own.split(".")[:i]) for i in range(1, own.count(".") + 2)}   # own and its packages

        def find(name: str) -> Path | None:
            return next((f for r in search if (f := module_file(r, name)) is not None), None)

        def prefixes(name: str) -> list[str]:
            parts = name.split(".")
            return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]

        runs: set[str] = set()        # modules the file's imports run (each with its packages)
        reads: set[str] = set()       # modules whose namespace it takes names from
        for base, names in import_statements(own_root, file):
            modules = [name for name in (f"{base}.{n}" if base else n for n in names if n != "*") if find(name)]
            if not names:
                runs.update(prefixes(base))
            elif len(modules) < len(names) and base:
                runs.update(prefixes(base))
                reads.add(base)
            for module in modules:
                runs.update(prefixes(module))
        edges = graph.setdefault(key(file), set())
        for name in runs:
            target = find(name)
            if target is not None and name != own and (name not in inside or name in reads):
                edges.add(key(target))
    return graph


def project_files(repo: Path = REPO) -> tuple[list[Path], list[Path]]:
    """(roots, files) of the project's import graph: the packages of :data:`PACKAGES` under ``repo`` and the
    scripts of :data:`SCRIPTS` (which put their own folder on ``sys.path``)."""
    files = [f for package in PACKAGES if (repo / package).is_dir() for f in _python_files(repo / package)]
    scripts = repo / SCRIPTS
    files += sorted(scripts.glob("*.py")) if scripts.is_dir() else []
    return [repo, scripts], files


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected components of more than one module (each sorted;
    sorted by their first module). Empty when the imports go one way only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:                        # Tarjan; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_path(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One shortest circle through the first of ``members`` (a component of :func:`import_cycles`), as the modules
    from it back to it, each importing the next."""
    start, inside = members[0], set(members)
    came: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for succ in sorted(graph.get(node, ())):
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return path[::-1] + [start]
            if succ in inside and succ not in came:
                came[succ] = node
                queue.append(succ)
    return [start]


# ------------------------------------------------------------------------------------------------------ dvc.yaml stages

@dataclass
class Stage:
    """One stage of dvc.yaml as far as code is concerned.

    root: the folder its command runs in (dvc.yaml's folder joined with ``wdir``). modules: the files the command
    runs (one per ``python`` command). deps: its dependency paths, normalised, relative to ``root``. params_files:
    the files its ``params:`` entries read (params.yaml for plain keys). params_args: files named by ``--params``.
    """

    name: str
    root: Path
    modules: list[Path] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    params_files: set[str] = field(default_factory=set)
    params_args: list[str] = field(default_factory=list)


def _normalise(path: str) -> str:
    """A dep path as a POSIX path relative to the stage's folder, without ``./`` or a trailing slash."""
    return PurePosixPath(os.path.normpath(path.replace("\\", "/"))).as_posix()


def _command_targets(root: Path, cmd: str, where: str) -> tuple[list[Path], list[str]]:
    """(module files, ``--params`` files) of one stage command: ``python -m a.b ...`` or ``python file.py ...``."""
    try:
        words = shlex.split(cmd)
    except ValueError as err:
        raise StageDepsError(f"{where}: cannot split the command {cmd!r} ({err})") from err
    modules, params_args = [], []
    for i, word in enumerate(words):
        if word == "--params" and i + 1 < len(words):
            params_args.append(_normalise(words[i + 1]))
        elif word.startswith("--params="):
            params_args.append(_normalise(word.partition("=")[2]))
    if words and Path(words[0]).name.startswith("python"):
        rest = list(words[1:])
        while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
            option = rest.pop(0)                     # interpreter options: -u, -B, -X dev, -W error, ...
            if option in ("-X", "-W") and rest:
                rest.pop(0)
        if rest[:1] == ["-m"] and len(rest) > 1:
            file = module_file(root, rest[1])
            if file is None:
                raise StageDepsError(f"{where}: `{cmd}`: no module {rest[1]} under {root}")
            if file.name == "__init__.py":           # python -m package runs package/__main__.py
                file = file.parent / "__main__.py"
            modules.append(file)
        elif rest and rest[0].endswith(".py"):
            if not (root / rest[0]).is_file():
                raise StageDepsError(f"{where}: `{cmd}`: no file {rest[0]} under {root}")
            modules.append(root / rest[0])
    return modules, params_args


def load_stages(dvc_file: Path) -> list[Stage]:
    """The stages of ``dvc_file`` (dvc.yaml), in file order, with their commands' modules, deps and params files."""
    try:
        spec = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise StageDepsError(f"{dvc_file}: cannot read ({err})") from err
    stages = []
    for name, body in (spec.get("stages") or {}).items():
        where = f"{dvc_file}, stage {name}"
        if not isinstance(body, dict) or "cmd" not in body:
            raise StageDepsError(f"{where}: no cmd (foreach/matrix stages are not supported)")
        root = (dvc_file.parent / str(body.get("wdir", "."))).resolve()
        stage = Stage(name, root, deps=[_normalise(str(d)) for d in body.get("deps") or []])
        commands = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
        for cmd in commands:
            modules, params_args = _command_targets(root, str(cmd), where)
            stage.modules += modules
            stage.params_args += params_args
        for entry in body.get("params") or []:
            if isinstance(entry, dict):
                stage.params_files.update(_normalise(str(k)) for k in entry)
            else:
                stage.params_files.add("params.yaml")
        stages.append(stage)
    return stages


def stage_closure(stage: Stage) -> dict[str, str | None]:
    """The import closure of all the modules the stage's commands run (see :func:`import_closure`)."""
    closure: dict[str, str | None] = {}
    for module in stage.modules:
        for file, by in import_closure(stage.root, module).items():
            closure.setdefault(file, by)
    return closure


def covered(file: str, deps: list[str]) -> bool:
    """Whether a dep covers ``file``: the same path, or a folder above it (paths relative to the stage's folder)."""
    return any(dep in (".", file) or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def minimal_deps(root: Path, files: set[str]) -> list[str]:
    """The shortest dep list that covers ``files`` and nothing more of the code: the topmost package folders whose
    ``.py`` files are all in ``files``, and the remaining files one by one (paths relative to ``root``, sorted)."""
    root = root.resolve()
    whole: dict[str, bool] = {}

    def is_whole(folder: PurePosixPath) -> bool:
        key = folder.as_posix()
        if key not in whole:
            path = root / key
            whole[key] = (path / "__init__.py").is_file() and all(
                p.relative_to(root).as_posix() in files for p in _python_files(path))
        return whole[key]

    out = set()
    for file in files:
        entry = file
        for folder in reversed(PurePosixPath(file).parents[:-1]):   # the topmost first ("a", then "a/b")
            if is_whole(folder):
                entry = folder.as_posix()
                break
        out.add(entry)
    return sorted(out)


def problems(dvc_file: Path) -> list[str]:
    """One line per uncovered import (``stage: missing dep FILE (imported via a -> b -> FILE)``) and per
    ``--params`` file that no ``params:`` entry names, over every stage of ``dvc_file``; empty when all is covered."""
    lines = []
    for stage in load_stages(dvc_file):
        closure = stage_closure(stage)
        for file in closure:
            if not covered(file, stage.deps):
                chain = " -> ".join(import_chain(closure, file))
                lines.append(f"{stage.name}: missing dep {file} (imported via {chain})")
        for params_file in stage.params_args:
            if params_file not in stage.params_files:
                lines.append(f"{stage.name}: params file {params_file} (--params in cmd) is named by no params: entry")
    return lines


def suggested_deps(dvc_file: Path) -> dict[str, list[str]]:
    """{stage: its minimal code deps (:func:`minimal_deps` of its import closure)} for every stage of ``dvc_file``."""
    return {stage.name: minimal_deps(stage.root, set(stage_closure(stage))) for stage in load_stages(dvc_file)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python infra/stage_deps.py",
        description="Compare each DVC stage's code deps with the project modules its command may import "
                    "(followed statically, lazy imports inside functions included).")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true",
                      help="list each imported module file no dep covers, one line each; exit 1 if there is any")
    mode.add_argument("--print", action="store_true",
                      help="print, per stage, the minimal code deps (folders for whole packages, files otherwise)")
    mode.add_argument("--cycles", action="store_true",
                      help="list each import circle among the project's modules (lazy imports included), one line "
                           "each; exit 1 if there is any")
    parser.add_argument("--dvc-file", type=Path, default=REPO / "dvc.yaml", help="default: dvc.yaml of this checkout")
    args = parser.parse_args(argv)
    try:
        if args.cycles:
            graph = import_graph(*project_files(args.dvc_file.resolve().parent))
            cycles = import_cycles(graph)
            for members in cycles:
                print(f"{' -> '.join(cycle_path(graph, members))}  (circle of {len(members)}: {', '.join(members)})")
            if not cycles:
                print("no import circle among the project's modules")
            return 1 if cycles else 0
        if args.check:
            found = problems(args.dvc_file)
            for line in found:
                print(line)
            if found:
                print(f"{len(found)} uncovered; `python infra/stage_deps.py --print` lists the code deps each stage "
                      "needs", file=sys.stderr)
                return 1
            print(f"every stage of {args.dvc_file} depends on all the project modules it imports")
            return 0
        for name, deps in suggested_deps(args.dvc_file).items():
            print(f"{name}:")
            print("\n".join(f"  - {dep}" for dep in deps))
        return 0
    except StageDepsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
