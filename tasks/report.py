"""Prefect task of the report stage: one self-contained HTML page a person reads to judge a run."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task

from tasks.params import resolve
from tasks.registry import configure_tracking, experiment
from ubf_core.config import params_hash, section
from ubf_core.data.stores import open_store
from ubf_core.report import Report

GENERATION_COLUMNS = ["set", "n", "F_p", "D_b", "D_b/F_p", "frechet", "kid", "precision", "recall",
                      "abundance_hist_distance", "sum_to_one_max", "role"]


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def add_markdown(r: Report, text: str) -> None:
    """The markdown the classify stage writes, as report blocks: ``|`` rows become one table, ``#`` lines
    headings, ``>`` lines notes, other lines paragraphs."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    table_done = False
    for line in text.splitlines():
        if line.startswith("|"):
            if not table_done and len(rows) > 2:
                header = [c.strip() for c in rows[0].strip("|").split("|")]
                r.table([dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in rows[2:]],
                        header)
            table_done = True
        elif line.startswith("#"):
            continue  # the section has its own heading
        elif line.startswith(">"):
            r.text(line.lstrip("> ").replace("**", ""), note=True)
        elif line.strip():
            r.text(line.replace("`", ""))


def build_report(params: dict) -> Report:
    """Assemble the report from what the stages wrote: reports/*.json, the evaluation figures, store provenance."""
    ev, stores = section(params, "evaluation"), section(params, "stores")
    figures = resolve(params, ev.get("figures", "reports/evaluation"))
    metrics = _read_json(resolve(params, ev.get("metrics", "reports/metrics.json"))) or {}
    cls_section = params.get("classification") or {}
    classification = _read_json(resolve(params, cls_section.get("metrics", "reports/classification.json"))) or {}
    cls_table = resolve(params, cls_section.get("table", "reports/classification.md"))
    unmixing = _read_json(resolve(params, section(params, "unmixing").get("metrics", "reports/unmixing.json"))) or {}

    r = Report("UBF synthetic hyperspectral images: what the run made and how good it is")
    r.text(f"Held-out real scenes (no generator or classifier learned from them): "
           f"{', '.join(metrics.get('heldout_sources', [])) or 'not recorded'}; "
           f"{metrics.get('n_heldout', '?')} held-out patches, {metrics.get('n_real_train', '?')} real training "
           f"patches. Synthetic store: {metrics.get('synthetic_store', '?')}.")

    r.heading("Real and synthetic samples")
    r.image(figures / "real_vs_synthetic.png", "Rows: held-out real patches, real training patches, the synthetic "
                                              "store, the other generators, the pixel GMM; rendered at "
                                              "650/550/450 nm, one stretch per row.")
    r.image(figures / "spectral_profiles.png", "Spectral profiles: random pixels (top) and 6×6 regions, mean with "
                                              "min–max envelope (bottom), as MSF-Diff Fig. 11.")
    r.heading("Endmembers and abundances")
    r.image(figures / "endmembers.png", "Endmember spectra of the unmixing model (reflectance against wavelength).")
    r.image(figures / "synthetic_abundances.png", "Abundance maps of synthetic samples: one row per sample, one "
                                                  "column per endmember (0 black – 1 white).")

    r.heading("Generation metrics against the held-out real scenes")
    roles = metrics.get("roles") or {}
    rows = [{"set": name, **row, "role": roles.get(name, "")} for name, row in (metrics.get("generation") or {}).items()]
    if rows:
        r.table(rows, GENERATION_COLUMNS)
        r.image(figures / "metrics.png")
    else:
        r.text("No evaluation metrics yet: run the evaluate stage.", note=True)
    r.text("F_p: point fidelity, D_b: block diversity (HUD; best cosine match per generated pixel / 4×4 block, "
           "higher is closer to real); frechet, kid: distances between features of a network trained here on the "
           "real training patches (lower is better); precision/recall: k-NN manifolds (Kynkäänniemi et al. 2019); "
           "abundance_hist_distance: to the generator's training maps (0 = same distribution).", note=True)
    rec = metrics.get("reconstruction") or unmixing.get("network")
    if rec:
        r.heading("Unmixing reconstruction (validation scenes, from 3 bands)")
        r.table([{"model": "network", **{k.removeprefix("val_"): v for k, v in rec.items()}},
                 {"model": "VCA+FCLS (all bands)",
                  **{k.removeprefix("vca_fcls_"): v for k, v in (unmixing.get("vca_fcls") or {}).items()}}])

    r.heading("Downstream classification")
    if cls_table.is_file():
        add_markdown(r, cls_table.read_text())
    else:
        r.text("No classification results yet: run the classify stage.", note=True)

    r.heading("Provenance")
    prov = dict(metrics.get("provenance") or {})
    hsi = open_store(resolve(params, stores["hsi"])) if resolve(params, stores["hsi"]).exists() else None
    r.table([{"item": k, "value": v} for k, v in
             {**prov, "params hash (whole params.yaml)": params_hash({k: v for k, v in params.items()
                                                                      if not k.startswith("_")}),
              "evaluation run (MLflow)": metrics.get("run_id"),
              "classification run (MLflow)": classification.get("run_id")}.items()])
    if hsi is not None:
        r.table([{"scene": s, "sha256": c} for s, c in (hsi.attrs.get("source_checksums") or {}).items()],
                caption="Raw data checksums (HSI scenes)")
    return r


@task(name="report")
def report_task(params: dict) -> dict:
    """Write the HTML report (``evaluation.report``) and log it to MLflow."""
    import mlflow

    path = build_report(params).write(resolve(params, section(params, "evaluation").get("report",
                                                                                        "reports/report.html")))
    configure_tracking(resolve(params, "."))
    with mlflow.start_run(experiment_id=experiment("ubf-report", resolve(params, "."))):
        mlflow.log_artifact(str(path))
    get_run_logger().info("report: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return {"report": str(path)}
