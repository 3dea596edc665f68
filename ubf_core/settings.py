"""The schema of params files: which keys each section has, and of what type; every params file is checked against it.

The repository's params.yaml is the one reference: it holds every key of every stage with its default value, and
the schema is derived from it (``python -m ubf_core.settings --write`` writes ``ubf_core/params_schema.json``;
``--check`` exits 1 when that file no longer matches params.yaml, tests/test_settings.py runs it). The schema keeps
key paths and types only, never values: defaults live in params.yaml alone. It is a file of its own, not params.yaml
read at run time, so that the params.yaml a person edits is checked too (a misspelt key in it is an error, not a
key that the code silently goes without).

Rules (:func:`check_keys` for each file as read, :func:`check_complete` for the whole, after ``extends:``):

* every key must exist in the reference at the same dotted path; an unknown one is a one-line
  :class:`~ubf_core.errors.UBFInputError` naming the file and the key, with the closest known key of the same
  mapping (``params.yaml: unknown key generator.trian (did you mean generator.train?)``);
* its value must have the reference's type: bool, int (not a bool), float (an int is fine), str, list (of strings,
  or of numbers, when the reference's are), mapping. ``null`` is allowed where the reference's value is null or its
  comment in params.yaml documents null (``resize_to: 64  # ... (null: native size)``);
* the keys of an open map (:data:`OPEN_MAPS`: data sets, class names, a generator's own options) are free; their
  values are checked by the code that reads them;
* a few keys that the code reads are documented in params.yaml only as comments or not at all (:data:`OPTIONAL`):
  they may be given, and need not be;
* every other key must be present: a params file is complete, or starts with ``extends: OTHER.yaml`` and gives only
  what differs (params.long.yaml). A missing key is an error naming it; it never falls back on a default in the
  code, so that what a stage ran with is what its params file (the one DVC tracks) says.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import yaml

from ubf_core.errors import UBFInputError

__all__ = ["OPEN_MAPS", "OPTIONAL", "SCHEMA_FILE", "check_complete", "check_keys", "load_schema", "schema_of"]

SCHEMA_FILE = Path(__file__).with_name("params_schema.json")
REFERENCE = Path(__file__).resolve().parents[1] / "params.yaml"   # the repository's (for --write and --check)

# Mappings whose keys are names the person chooses (each value is checked by the code that reads it).
OPEN_MAPS = {
    "hsi.datasets": "data-set name -> reader options (ubf_core/io/source.py)",
    "synthesis.class_mix": "generator class -> weight",
    "classification.scene_classes": "scene -> class",
    "classification.real_per_class": "HSI class -> real training patches",
    "classification.rgb_to_hsi": "RGB class -> HSI class",
    "generator.options": "the generator implementation's options (ubf_core/generators/<name>.py)",
    "evaluation.generators": "baseline generator name -> its options and train settings",
}

# Keys whose reference value is null: their type when given (params.yaml's comment on each says what they take).
NULL_TYPES = {
    "dask.scheduler_address": "str",
    "synthesis.noise_snr_db": "float",
    "classification.scene_classes": "open map",
}

# Keys the code reads that params.yaml does not set (commented out there, or read with a default where they are
# used): they may be given, and may be left out.
OPTIONAL = {
    "grid.start_nm": "float|null",                  # an explicit grid (overrides the preset): ubf_core/spectral/grid.py
    "grid.stop_nm": "float|null",
    "grid.n_bands": "int|null",
    "grid.fwhm_nm": "float|null",
    "unmixing.cie_path": "str",                     # three_band: render's response files (tasks/unmixing.py)
    "unmixing.camspec_path": "str",
    "unmixing.train.weight_decay": "float",         # ubf_core/unmixing/experiment.py
    "classification.train.weight_decay": "float",   # ubf_core/classification/experiment.py ExperimentSettings
    "classification.train.balance": "str",
    "classification.train.model_options": "open map",
    "classification.train.augment_options": "open map",
    "evaluation.features.device": "str",            # tasks/evaluate.py (auto when absent)
}

_TYPES = ("bool", "int", "float", "str", "list", "list[str]", "list[number]", "map", "open map")
_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "list": "a list",
          "list[str]": "a list of strings", "list[number]": "a list of numbers", "map": "a mapping",
          "open map": "a mapping"}


# ----------------------------------------------------------------------------------------------- the schema

def _type_of(value: Any, key: str) -> str:
    if key in OPEN_MAPS:
        return "open map"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            return "list[str]"
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "list[number]"
        return "list"
    raise ValueError(f"{key}: no schema type for {type(value).__name__} values")


def _key_lines(node: yaml.Node, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(dotted key, 0-based line of the key) of every mapping key of a composed YAML document, open maps not entered."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        if key_node.value == "<<":
            continue
        key = prefix + str(key_node.value)
        yield key, key_node.start_mark.line
        if key not in OPEN_MAPS:
            yield from _key_lines(value_node, key + ".")


def _documents_null(line: str) -> bool:
    """Whether the comment of a params.yaml line mentions null (``# ... (null: native size)``)."""
    _, hash_, comment = line.partition(" #")
    return bool(hash_) and re.search(r"\bnull\b", comment) is not None


def schema_of(reference: str | Path = REFERENCE) -> dict[str, str]:
    """{dotted key: type} of a reference params file, in its order, :data:`OPTIONAL` keys added (marked ``?``).

    A type is one of bool, int, float, str, list, list[str], list[number], map, open map, with ``|null`` where null
    is allowed. Raises ValueError for a reference the schema cannot describe (a null without :data:`NULL_TYPES`).
    """
    text = Path(reference).read_text()
    lines = text.splitlines()
    values = yaml.safe_load(text)
    schema: dict[str, str] = {}
    for key, line in _key_lines(yaml.compose(text)):
        value = values
        for part in key.split("."):
            value = value[part]
        if value is None:
            if key not in NULL_TYPES:
                raise ValueError(f"{reference}: {key} is null: give its type in ubf_core/settings.py NULL_TYPES")
            schema[key] = NULL_TYPES[key] + "|null"
        else:
            schema[key] = _type_of(value, key) + ("|null" if _documents_null(lines[line]) else "")
    for key, kind in OPTIONAL.items():
        parent = key.rpartition(".")[0]
        if key in schema or (parent and parent not in schema):
            raise ValueError(f"ubf_core/settings.py OPTIONAL: {key} is in the reference, or its section is not")
        schema[key + "?"] = kind
    return schema


def _schema_text(schema: dict[str, str]) -> str:
    body = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in schema.items())
    return ('{\n  "about": "the keys of params.yaml and their types; written by `python -m ubf_core.settings '
            '--write` from params.yaml (do not edit)",\n  "keys": {\n' + body + "\n  }\n}\n")


@lru_cache(maxsize=1)
def load_schema() -> tuple[dict[str, str], frozenset[str]]:
    """({dotted key: type} of every allowed key, the optional ones) from :data:`SCHEMA_FILE`."""
    keys = json.loads(SCHEMA_FILE.read_text())["keys"]
    schema = {k.rstrip("?"): v for k, v in keys.items()}
    return schema, frozenset(k.rstrip("?") for k in keys if k.endswith("?"))


# ----------------------------------------------------------------------------------------------- checking

def _matches(value: Any, kind: str) -> bool:
    base, _, null = kind.partition("|")
    if value is None:
        return bool(null)
    if base == "bool":
        return isinstance(value, bool)
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "str":
        return isinstance(value, str)
    if base in ("map", "open map"):
        return isinstance(value, dict)
    if not isinstance(value, list):
        return False
    if base == "list[str]":
        return all(isinstance(v, str) for v in value)
    if base == "list[number]":
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return True


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _suggestion(key: str, schema: dict[str, str]) -> str:
    """`` (did you mean K?)`` with the closest key of the same mapping, else `` (known here: ...)``."""
    parent, _, leaf = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in schema if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {parent + '.' if parent else ''}{close[0]}?)"
    return f" (known {'in ' + parent if parent else 'sections'}: {', '.join(siblings)})"


def check_keys(params: dict, where: str | Path) -> None:
    """Every key of ``params`` (one file as read, ``extends`` removed) is a key of the schema, with a value of its
    type; the first one that is not raises a one-line UBFInputError naming ``where`` and the dotted key."""
    schema, _ = load_schema()

    def walk(mapping: dict, prefix: str) -> None:
        for name, value in mapping.items():
            key = prefix + str(name)
            kind = schema.get(key)
            if kind is None:
                raise UBFInputError(where, f"unknown key {key}" + _suggestion(key, schema))
            if not _matches(value, kind):
                base, _, null = kind.partition("|")
                got = "null" if value is None else f"{_shown(value)} ({type(value).__name__})"
                raise UBFInputError(where, f"{key} must be {_WORDS[base]}{' or null' if null else ''}, got {got}")
            if isinstance(value, dict) and kind.partition("|")[0] == "map":
                walk(value, key + ".")

    walk(params, "")


def check_complete(params: dict, where: str | Path) -> None:
    """Every key of the schema but the optional ones is in ``params`` (a whole params file, ``extends:`` merged);
    the first missing one raises a one-line UBFInputError naming ``where`` and the key (and how many more)."""
    schema, optional = load_schema()
    missing: list[str] = []
    for key in schema:
        if key in optional or any(key.startswith(m + ".") for m in missing):
            continue
        value, present = params, True
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                present = False
                break
            value = value[part]
        parent = key.rpartition(".")[0]
        if not present and (not parent or parent not in missing):
            missing.append(key)
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:4])}{', ...' if len(missing) > 4 else ''})" \
            if len(missing) > 1 else ""
        raise UBFInputError(where, f"missing key {missing[0]}{more}; a params file gives every key of the "
                                   f"repository's params.yaml, or starts with 'extends: params.yaml' (its path from "
                                   f"this file's folder) and gives only what differs")


# ----------------------------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """``--write``: write :data:`SCHEMA_FILE` from params.yaml; ``--check``: exit 1 when it differs from it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ubf_core.settings", description=main.__doc__)
    parser.add_argument("--reference", default=str(REFERENCE), help="the reference params file (params.yaml)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = _schema_text(schema_of(args.reference))
    if args.write:
        SCHEMA_FILE.write_text(text)
        load_schema.cache_clear()
        return 0
    if not SCHEMA_FILE.is_file() or SCHEMA_FILE.read_text() != text:
        print(f"{SCHEMA_FILE}: does not match {args.reference}; run python -m ubf_core.settings --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
