"""Prefect task of the report stage: one self-contained HTML page a person reads to judge a run."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task

from tasks.params import dataset_path, params_file_hash, resolve
from tasks.registry import track_stage
from ubf_core.data.stores import open_store
from ubf_core.evaluation.verdicts import (class_fidelity_table, column_label, control_lines, metric_table,
                                          per_class_table, table_metrics, verdict_lines)
from ubf_core.reporting.html_report import Report

GENERATION_COLUMNS = ["set", "n", "F_p", "D_b", "D_b/F_p", "frechet", "kid_e3", "precision", "recall",
                      "abundance_hist_distance", "sum_to_one_max", "role"]
# how to read each generation column (table headers and the note under the table)
GENERATION_DIRECTIONS = {"F_p": "higher is better", "D_b": "higher is better",
                         "frechet": "lower is better",
                         "kid_e3": "lower is better", "kid": "lower is better", "precision": "higher is better",
                         "recall": "higher is better", "abundance_hist_distance": "lower is better",
                         "sum_to_one_max": "lower is better"}
FLOOR_ROLE = "floor: two disjoint real sets of the same size"
REALISM_SECTIONS = {"abundance": "Abundance maps (k endmembers) against the maps of held-out real RGB images",
                    "hsi": "HSI cubes against held-out real HSI patches"}


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


def _header(column: str, directions: dict) -> str:
    """``column`` with a short reading hint, e.g. "F_p (higher better)"."""
    hint = directions.get(column, "").replace(" is ", " ")
    return f"{column} ({hint})" if hint else column


def registered_candidate(metrics: dict) -> str:
    """The candidate that is the synthetic store (its role starts with "the synthetic store"); "ddpm" if none."""
    for name, role in (metrics.get("roles") or {}).items():
        if str(role).startswith("the synthetic store"):
            return name
    return "ddpm"


def add_realism(r: Report, metrics: dict, figures: Path) -> None:
    """The section "Realism: can a classifier tell?": verdicts for the registered generator, the metric tables
    (real-vs-real floor first, directions in the headers), class fidelity, and the realism pictures."""
    r.heading("Realism: can a classifier tell?")
    realism = metrics.get("realism")
    if not isinstance(realism, dict) or not realism:
        r.text("No realism figures yet: run the evaluate stage.", note=True)
        return
    candidate = registered_candidate(metrics)
    directions = realism.get("directions") or {}
    r.text(f"Verdicts for {candidate} (the registered generator behind the synthetic store), each against the "
           f"real-vs-real floor (two disjoint real sets of the same size) and the baselines:")
    for line in verdict_lines(realism, candidate) or [f"No realism figures for {candidate}."]:
        r.text(line)
    controls = control_lines(realism.get("abundance"))
    if controls:
        r.text("Can the metrics fail? Known-bad sets made from real maps of this run (rows 'control: …'); each "
               "must be flagged (C2ST above the floor by 3 standard errors, a distance above twice the floor, "
               "memorisation thresholds):", note=True)
        for line in controls:
            r.text(line, note=True)
    roles = metrics.get("roles") or {}
    for key, caption in REALISM_SECTIONS.items():
        rows = metric_table(realism.get(key))
        if not rows:
            continue
        cols = table_metrics(rows)
        labels = {m: column_label(m, directions) for m in cols}
        r.table([{"set": row["set"], **{labels[m]: row.get(m) for m in cols},
                  "role": FLOOR_ROLE if row["set"] == "real_vs_real" else roles.get(row["set"], "")}
                 for row in rows], ["set", *labels.values(), "role"], caption=caption)
    cf = realism.get("class_fidelity")
    if isinstance(cf, dict):
        rows = class_fidelity_table(cf)
        if rows:
            r.table([{"set": row["set"], column_label("cas", directions): row.get("cas"),
                      column_label("tstr", directions): row.get("tstr"), "worst class": row["worst class"],
                      "best class": row["best class"]} for row in rows],
                    caption="Class fidelity: CAS = a classifier trained on real maps labels the samples (the real "
                            "row: the same classifier on held-out real maps, what a perfect generator reaches); "
                            "TSTR = trained on the samples, tested on held-out real maps"
                            + (f"; chance {cf['chance']:.3g}" if isinstance(cf.get("chance"), (int, float)) else ""))
        per_class = per_class_table(cf)
        if per_class and len(per_class[0]) > 1:
            r.table(per_class, caption="CAS per class (the real column: trained and tested on real)")
    if directions:
        r.text("How to read them: " + "; ".join(f"{m}: {d}" for m, d in directions.items()) + ".", note=True)
    caption = ("Rows: held-out real, synthetic (registered), baselines; one colour stretch for all rows; captions "
               "give class or source scene")
    for name, what in (("realism_samples.png", "HSI patches at 650/550/450 nm"),
                       ("realism_abundances.png", "abundance maps in false colour (pixel = Σ abundance × "
                                                  "endmember colour; legend below)")):
        if (figures / name).is_file():
            r.image(figures / name, f"{caption}. {what[0].upper() + what[1:]}.")


UNMIXING_ROWS = {"least_squares_1": "least squares, 3 bands + offset", "least_squares_2": "least squares, 2nd order",
                 "mean_spectrum": "mean training spectrum"}


def add_unmixing_table(r: Report, network: dict, unmixing: dict) -> None:
    """The network, VCA+FCLS and the baselines from the network's 3 inputs (reports/unmixing.json ``baselines``),
    pooled over the validation scenes; PSNR and SAD° without the input bands in two more columns."""
    compared = unmixing.get("baselines") or {}
    rows = [{"model": "network", **{k.removeprefix("val_"): v for k, v in network.items()}},
            {"model": "VCA+FCLS (all bands)",
             **{k.removeprefix("vca_fcls_"): v for k, v in (unmixing.get("vca_fcls") or {}).items()}}]
    rows += [{"model": label, **compared[name]["pooled"]} for name, label in UNMIXING_ROWS.items() if name in compared]
    if compared:
        for row, name in zip(rows, ["network", "vca_fcls", *(n for n in UNMIXING_ROWS if n in compared)]):
            without = (compared.get(name) or {}).get("pooled_without_inputs") or {}
            row["psnr w/o input bands"] = without.get("psnr")
            row["sad_deg w/o input bands"] = without.get("sad_deg")
    r.table(rows)
    if compared:
        bands = compared.get("input_bands") or {}
        r.text("Pooled over the validation scenes' patches. Least squares (features 1, b1..b3; 2nd order adds their "
               "squares and products) and the mean spectrum are fitted on the training scenes' pixels and see the "
               "network's own 3 inputs. PSNR caps each band at 100 dB; " + (
                   f"w/o input bands: the {len(bands.get('indices', []))} selected input bands"
                   + (f" ({', '.join(f'{w:g}' for w in bands['wavelengths_nm'])} nm)" if bands.get("wavelengths_nm")
                      else "") + " left out, which least squares reproduces exactly." if bands.get("excluded") else
                   "the inputs are rendered, not bands of the cube, so w/o input bands equals all bands."), note=True)


def build_report(params: dict) -> Report:
    """Assemble the report from what the stages wrote: reports/*.json, the evaluation figures, store provenance."""
    figures = dataset_path(params, "evaluation_figures")
    metrics = _read_json(dataset_path(params, "evaluation_metrics")) or {}
    classification = _read_json(dataset_path(params, "classification_metrics")) or {}
    cls_table = dataset_path(params, "classification_table")
    unmixing = _read_json(dataset_path(params, "unmixing_metrics")) or {}

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
    add_realism(r, metrics, figures)

    r.heading("Endmembers and abundances")
    r.image(figures / "endmembers.png", "Endmember spectra of the unmixing model (reflectance against wavelength).")
    r.image(figures / "synthetic_abundances.png", "Abundance maps of synthetic samples: one row per sample, one "
                                                  "column per endmember (0 black – 1 white).")

    r.heading("Generation metrics against the held-out real scenes")
    roles = metrics.get("roles") or {}
    rows = [{"set": name, **row, "role": roles.get(name, "")} for name, row in (metrics.get("generation") or {}).items()]
    if rows:
        columns = list(GENERATION_COLUMNS)
        if not any("kid_e3" in row for row in rows) and any("kid" in row for row in rows):
            columns[columns.index("kid_e3")] = "kid"   # a metrics.json written before KID was reported ×10³
        r.table([{_header(c, GENERATION_DIRECTIONS): row.get(c) for c in columns} for row in rows],
                [_header(c, GENERATION_DIRECTIONS) for c in columns])
        r.image(figures / "metrics.png")
    else:
        r.text("No evaluation metrics yet: run the evaluate stage.", note=True)
    r.text("F_p: point fidelity, D_b: block diversity (HUD; best cosine match per generated pixel / 4×4 block; "
           "higher is better, at most 1); D_b/F_p: their ratio; frechet, kid_e3 (KID ×10³): "
           "distances between features of a network trained here on the real training patches (lower is better); "
           "precision, recall: k-NN manifolds (Kynkäänniemi et al. 2019; higher is better); "
           "abundance_hist_distance: to the generator's training maps (lower is better, 0 = same distribution); "
           "sum_to_one_max: largest deviation of an abundance sum from 1 (lower is better).", note=True)
    rec = metrics.get("reconstruction") or unmixing.get("network")
    if rec:
        r.heading("Unmixing reconstruction (validation scenes, from 3 bands)")
        add_unmixing_table(r, rec, unmixing)

    r.heading("Downstream classification")
    if cls_table.is_file():
        add_markdown(r, cls_table.read_text())
    else:
        r.text("No classification results yet: run the classify stage.", note=True)

    r.heading("Provenance")
    prov = dict(metrics.get("provenance") or {})
    hsi = open_store(dataset_path(params, "hsi")) if dataset_path(params, "hsi").exists() else None
    r.table([{"item": k, "value": v} for k, v in
             {**prov, "params hash (whole params.yaml)": params_file_hash(params),
              "evaluation run (MLflow)": metrics.get("run_id"),
              "classification run (MLflow)": classification.get("run_id")}.items()])
    if hsi is not None:
        r.table([{"scene": s, "sha256": c} for s, c in (hsi.attrs.get("source_checksums") or {}).items()],
                caption="Raw data checksums (HSI scenes)")
    return r


@task(name="report")
def report_task(params: dict) -> dict:
    """Write the HTML report (catalogue: ``report``) and log it to MLflow."""
    path = build_report(params).write(dataset_path(params, "report"))
    track_stage("report", resolve(params, "."), params_file_hash(params), files=[path])
    get_run_logger().info("report: %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return {"report": str(path)}
