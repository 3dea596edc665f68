"""Great Expectations checks over the prepared stores, and the report a person reads when one fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import get_run_logger, task

from tasks.params import dataset_path, relative, write_json
from ubf_core.config import section
from ubf_core.data.stores import open_store
from ubf_core.data.summary import band_table, patch_table
from ubf_core.errors import UBFInputError
from ubf_core.reporting.preview import save_store_preview
from ubf_core.spectral import SpectralGrid

_UNEXPECTED = {"patch": "unexpected_patches", "band": "unexpected_bands"}
MAX_LISTED = 20  # patches listed per failed expectation in the one-line error (the JSON report lists them all)


class DataValidationError(UBFInputError):
    """A store failed its expectations; the report beside it says which, where and how many."""


def _suite_checks(kind: str, params: dict, n_expected_bands: int) -> list[tuple[str, str, dict]]:
    """(table, expectation class name, kwargs) for a store kind: 'hsi' or 'rgb'."""
    v = section(params, "validation")
    size = int(section(params, "patch")["size"])
    checks = [
        ("patches", "ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("patches", "ExpectColumnValuesToBeBetween", {"column": "n_nan", "min_value": 0, "max_value": 0}),
        ("patches", "ExpectColumnValuesToBeBetween", {"column": "n_inf", "min_value": 0, "max_value": 0}),
        ("patches", "ExpectColumnValuesToBeBetween", {"column": "height", "min_value": size, "max_value": size}),
        ("patches", "ExpectColumnValuesToBeBetween", {"column": "width", "min_value": size, "max_value": size}),
    ]
    if kind == "hsi":
        lo, hi = float(v["reflectance_min"]), float(v["reflectance_max"])
        tol = float(v["wavelength_tolerance_nm"])
        checks += [
            ("patches", "ExpectColumnValuesToBeBetween", {"column": "min", "min_value": lo, "max_value": hi}),
            ("patches", "ExpectColumnValuesToBeBetween", {"column": "max", "min_value": lo, "max_value": hi}),
            ("patches", "ExpectColumnValuesToBeBetween",
             {"column": "n_channels", "min_value": n_expected_bands, "max_value": n_expected_bands}),
            ("bands", "ExpectTableRowCountToEqual", {"value": n_expected_bands}),
            ("bands", "ExpectColumnValuesToNotBeNull", {"column": "wavelength_nm"}),
            ("bands", "ExpectColumnValuesToBeBetween", {"column": "abs_diff_nm", "min_value": 0, "max_value": tol}),
        ]
    else:
        checks += [
            ("patches", "ExpectColumnValuesToBeBetween", {"column": "min", "min_value": 0.0, "max_value": 1.0}),
            ("patches", "ExpectColumnValuesToBeBetween", {"column": "max", "min_value": 0.0, "max_value": 1.0}),
            ("patches", "ExpectColumnValuesToBeBetween", {"column": "n_channels", "min_value": 3, "max_value": 3}),
            ("patches", "ExpectColumnValuesToNotBeNull", {"column": "label"}),
        ]
    return checks


def run_expectations(kind: str, tables: dict, checks: list[tuple[str, str, dict]]) -> list[dict]:
    """Run the checks with Great Expectations (ephemeral context) and return one plain dict per expectation."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas(f"{kind}_store")
    results = []
    for table_name, table in tables.items():
        mine = [(cls, kw) for t, cls, kw in checks if t == table_name]
        if not mine:
            continue
        batch = source.add_dataframe_asset(table_name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{kind}_{table_name}"))
        for cls, kw in mine:
            suite.add_expectation(getattr(gx.expectations, cls)(**kw))
        index_col = "patch" if table_name == "patches" else "band"
        run = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{kind}_{table_name}", data=batch, suite=suite)
        ).run(batch_parameters={"dataframe": table},
              result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [index_col]})
        for r in run.results:
            cfg = r.expectation_config
            idx = [int(row[index_col]) for row in (r.result.get("unexpected_index_list") or [])]
            entry = {"table": table_name, "expectation": cfg.type,
                     "kwargs": {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)},
                     "success": bool(r.success), "unexpected_count": r.result.get("unexpected_count"),
                     "observed_value": r.result.get("observed_value"), _UNEXPECTED[index_col]: idx}
            if table_name == "patches" and idx:
                entry["unexpected_sources"] = sorted(set(table.loc[table["patch"].isin(idx), "source"]))
            results.append(entry)
    return results


def _one_line(store: Path, failed: list[dict], report: Path) -> str:
    parts = []
    for f in failed:
        what = f["expectation"] + (f"({f['kwargs'].get('column')})" if f["kwargs"].get("column") else "")
        idx = f.get("unexpected_patches") or f.get("unexpected_bands") or []
        listed = ", ".join(map(str, idx[:MAX_LISTED])) + (" …" if len(idx) > MAX_LISTED else "")
        unit = "patches" if f["table"] == "patches" else "bands"
        parts.append(f"{what}: {f['unexpected_count'] or 0} {unit}" + (f" [{listed}]" if listed else "")
                     if f["unexpected_count"] is not None else f"{what}: observed {f['observed_value']}")
    return f"{len(failed)} expectation(s) failed — " + "; ".join(parts) + f" (report: {report})"


@task(name="validate-store")
def validate_store(params: dict, kind: str) -> dict:
    """Check one store ('hsi' or 'rgb'); write ``<store>.validation.json`` beside it; return the summary."""
    log = get_run_logger()
    store_path = dataset_path(params, kind)
    report_path = dataset_path(params, f"{kind}_validation")
    ds = open_store(store_path)
    var = "reflectance" if kind == "hsi" else "rgb"
    grid = SpectralGrid.from_params(section(params, "grid"))
    tables = {"patches": patch_table(ds, var)}
    if kind == "hsi":
        tables["bands"] = band_table(ds, grid.centres)
    results = run_expectations(kind, tables, _suite_checks(kind, params, grid.n_bands))
    failed = [r for r in results if not r["success"]]
    summary = {"store": relative(params, store_path), "kind": kind, "success": not failed, "n_patches": int(ds.sizes["patch"]),
               "n_expectations": len(results), "n_failed": len(failed), "results": results}
    write_json(report_path, summary)
    if failed:
        summary["error"] = _one_line(store_path, failed, report_path)
        log.error("%s: %s", store_path, summary["error"])
    else:
        log.info("%s: all %d expectations met (%d patches)", store_path, len(results), summary["n_patches"])
    return summary


@task(name="write-store-preview")
def write_preview(params: dict, kind: str) -> str:
    """A PNG mosaic of patches of one store, beside the validation report; returns its file name."""
    path = dataset_path(params, f"{kind}_preview")      # beside the Markdown report, which links it by name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_store_preview(open_store(dataset_path(params, kind)), path)
    return path.name


def markdown_report(summaries: list[dict]) -> str:
    """The validation report as Markdown: one table per store, failed expectations first, and its preview."""
    lines = ["# Data validation report", ""]
    for s in summaries:
        status = "PASSED" if s["success"] else f"FAILED ({s['n_failed']} of {s['n_expectations']} expectations)"
        lines += [f"## {s['store']} — {status}", "", f"{s['n_patches']} patches."
                  + (f" Some of them: ![{s['kind']} patches]({s['preview']})" if s.get("preview") else ""), "",
                  "| expectation | column | result | unexpected | which |", "|---|---|---|---|---|"]
        for r in sorted(s["results"], key=lambda r: r["success"]):
            idx = r.get("unexpected_patches") or r.get("unexpected_bands") or []
            which = ", ".join(map(str, idx[:MAX_LISTED])) + (" …" if len(idx) > MAX_LISTED else "")
            if r.get("unexpected_sources"):
                which += f" (sources: {', '.join(r['unexpected_sources'])})"
            lines.append(f"| {r['expectation']} | {r['kwargs'].get('column', '')} | "
                         f"{'ok' if r['success'] else '**failed**'} | {r['unexpected_count'] or 0} | {which} |")
        lines.append("")
    return "\n".join(lines)


def metrics(summaries: list[dict]) -> dict:
    """The figures `dvc metrics show` displays: per store, patches, expectations met and failed."""
    return {s["kind"]: {"success": int(s["success"]), "n_patches": s["n_patches"],
                        "n_expectations": s["n_expectations"], "n_failed": s["n_failed"]} for s in summaries}


@task(name="write-validation-report")
def write_report(params: dict, summaries: list[dict]) -> Path:
    """Write the metrics (catalogue: validation_report, JSON) and the Markdown report (validation_table),
    atomically."""
    path = dataset_path(params, "validation_report")
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in [(path, json.dumps(metrics(summaries), indent=2)),
                         (dataset_path(params, "validation_table"), markdown_report(summaries))]:
        tmp = target.with_name("." + target.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    return path
