"""Plain-English verdicts on the realism figures of the evaluate stage, and rows for their tables.

The input is the ``"realism"`` block of ``reports/metrics.json``::

    {"abundance": {"real_vs_real": {metric: value, ...}, "<candidate>": {...}, ...},   # abundance maps
     "hsi": {...same layout...},                                                       # HSI cubes
     "class_fidelity": {"chance": float, "classes": [...], "real_floor": {"accuracy", "per_class"},
                        "<candidate>": {"cas", "cas_per_class", "tstr"}, ...},
     "directions": {metric: "how to read it"}}

``real_vs_real`` (two disjoint real sets of the same size) is the floor every metric is read against: a generator
cannot be expected to do better than real data does against itself. Any metric, any row, any section may be
missing; what is missing is skipped (a missing floor is said). Pure functions: no I/O.
"""

from __future__ import annotations

import math

__all__ = ["FLOOR", "CONTROL_PREFIX", "SECTIONS", "flagged", "control_lines", "MEMORISATION_NN_RATIO", "MEMORISATION_COPY_SHARE", "verdict_lines",
           "metric_table", "table_metrics", "class_fidelity_table", "per_class_table", "column_label",
           "short_direction"]

FLOOR = "real_vs_real"
CONTROL_PREFIX = "control: "    # rows of known-bad sets (pixels shuffled, blurred, copies) that every metric must flag
SECTIONS = {"abundance": "abundance maps", "hsi": "HSI cubes"}
MEMORISATION_NN_RATIO = 0.5     # below: synthetic maps sit much closer to training maps than new real maps do
MEMORISATION_COPY_SHARE = 0.1   # above: more than this share of samples are near-copies of a training map

# metric: (name in a sentence, how a value is judged: "half" = closer to 0.5 is better, "lower", "higher", "one")
_METRICS = {
    "c2st": ("C2ST", "half"),
    "psd_distance": ("radial power-spectrum distance", "lower"),
    "gradient_distance": ("gradient-magnitude distance", "lower"),
    "purity_distance": ("pixel-purity histogram distance", "lower"),
    "nn_ratio": ("nearest-neighbour ratio", "one"),
    "copy_share": ("share of near-copies", "lower"),
}
_SHORT = {"half": "0.5 best", "lower": "lower better", "higher": "higher better", "one": "≈1 best"}
_EXTRA_SHORT = {"cas": "higher better", "tstr": "higher better",
                "accuracy": "higher better", "kid_e3": "lower better", "frechet": "lower better"}
_NOT_A_METRIC = {"n", "c2st_stderr"}


def _fmt(value: float) -> str:
    """A figure as a person reads it: 3 significant digits from 0.1 up, 2 below."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 0.1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _c2st_fmt(value: float) -> str:
    return f"{float(value):.2f}"


def _number(row: dict | None, key: str) -> float | None:
    """``row[key]`` as a finite float, or None when absent, null or NaN."""
    if not isinstance(row, dict) or row.get(key) is None:
        return None
    try:
        v = float(row[key])
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _badness(value: float, rule: str) -> float:
    """Lower is better, whatever the metric: distance from the ideal."""
    if rule == "half":
        return abs(value - 0.5)
    if rule == "one":
        return abs(value - 1.0)
    if rule == "higher":
        return -value
    return value


def short_direction(metric: str, directions: dict | None = None) -> str:
    """A few words on how to read ``metric`` for a table header ("lower better", "0.5 best"); "" if unknown."""
    if metric in _METRICS:
        return _SHORT[_METRICS[metric][1]]
    if metric in _EXTRA_SHORT:
        return _EXTRA_SHORT[metric]
    text = str((directions or {}).get(metric, "")).lower()
    for words, short in (("lower is better", "lower better"), ("higher is better", "higher better"),
                         ("0.5 is ideal", "0.5 best"), ("about 1", "≈1 best")):
        if words in text:
            return short
    return ""


def column_label(metric: str, directions: dict | None = None) -> str:
    """A table header: the metric with its direction, e.g. ``"c2st (0.5 best)"``."""
    hint = short_direction(metric, directions)
    return f"{metric} ({hint})" if hint else metric


def _baselines(section: dict, candidate: str, metric: str, rule: str, value: float, fmt) -> str:
    """"better than vae (0.95), gan (0.97); worse than gmm (0.50)" over the other rows of the section."""
    better, worse, tied = [], [], []
    for name, row in section.items():
        if name in (FLOOR, candidate) or name.startswith(CONTROL_PREFIX) or not isinstance(row, dict):
            continue
        other = _number(row, metric)
        if other is None:
            continue
        mine, theirs = _badness(value, rule), _badness(other, rule)
        (better if mine < theirs else worse if mine > theirs else tied).append(f"{name} ({fmt(other)})")
    parts = []
    if better:
        parts.append("better than " + ", ".join(better))
    if worse:
        parts.append("worse than " + ", ".join(worse))
    if tied:
        parts.append("level with " + ", ".join(tied))
    return "; ".join(parts) if parts else "no baseline to compare with"


def _c2st_line(section: dict, candidate: str, where: str) -> str | None:
    row, floor = section.get(candidate) or {}, section.get(FLOOR)
    acc = _number(row, "c2st")
    if acc is None:
        return None
    se = _number(row, "c2st_stderr")
    head = f"C2ST on {where}: {_c2st_fmt(acc)}" + (f" ± {_c2st_fmt(se)}" if se is not None else "")
    head += " (0.5 = a classifier cannot tell real from synthetic, 1.0 = it always can)"
    f_acc = _number(floor, "c2st")
    if f_acc is None:
        judged = "no floor measured"
    else:
        gap = abs(acc - 0.5) - abs(f_acc - 0.5)
        f_se = _number(floor, "c2st_stderr")
        noise = 2 * math.hypot(se or 0.0, f_se or 0.0)
        if gap <= 0:
            verdict = "as hard to tell from real as real data is from itself"
        elif noise > 0 and gap <= noise:
            verdict = f"within noise of the floor (+{_c2st_fmt(gap)}, two standard errors {_c2st_fmt(noise)})"
        else:
            verdict = f"worse than the floor by {_c2st_fmt(gap)}"
        judged = f"real-vs-real floor {_c2st_fmt(f_acc)}; {verdict}"
    return f"{head}; {judged}; {_baselines(section, candidate, 'c2st', 'half', acc, _c2st_fmt)}."


def _distance_line(section: dict, candidate: str, metric: str, where: str) -> str | None:
    value = _number(section.get(candidate), metric)
    if value is None:
        return None
    name, _ = _METRICS[metric]
    floor = _number(section.get(FLOOR), metric)
    if floor is None:
        judged = "no floor measured"
    elif floor > 0:
        ratio = value / floor
        judged = (f"real-vs-real floor {_fmt(floor)}; "
                  + (f"{ratio:.1f}× the floor" if ratio < 10 else f"{ratio:.0f}× the floor")
                  + (" (at the floor)" if ratio <= 1.0 else ""))
    else:
        judged = f"real-vs-real floor {_fmt(floor)}" + ("; at the floor" if value <= floor else "; above a zero floor")
    return (f"{name[0].upper() + name[1:]} on {where}: {_fmt(value)} (lower is better); {judged}; "
            f"{_baselines(section, candidate, metric, 'lower', value, _fmt)}.")


def _memorisation_line(section: dict, candidate: str, metric: str, where: str) -> str | None:
    row = section.get(candidate)
    value = _number(row, metric)
    if value is None:
        return None
    floor = _number(section.get(FLOOR), metric)
    floor_text = f"real-vs-real floor {_fmt(floor)}" if floor is not None else "no floor measured"
    if metric == "nn_ratio":
        head = (f"Nearest-neighbour ratio on {where}: {_fmt(value)} (distance of a sample to its nearest training "
                f"map over that of new real data; about 1 = as novel as new real data, near 0 = copies)")
        copied = value < MEMORISATION_NN_RATIO
        why = f"nn_ratio below {MEMORISATION_NN_RATIO}"
        rule = "one"
    else:
        head = (f"Share of near-copies of a training map on {where}: {_fmt(value)} "
                f"({value * 100:.0f}% of samples; lower is better)")
        copied = value > MEMORISATION_COPY_SHARE
        why = f"more than {MEMORISATION_COPY_SHARE * 100:.0f}% near-copies"
        rule = "lower"
    verdict = f"looks like copies of the training set ({why})" if copied else "no sign of copying"
    return f"{head}; {floor_text}; {verdict}; {_baselines(section, candidate, metric, rule, value, _fmt)}."


def _class_lines(cf: dict, candidate: str) -> list[str]:
    row = cf.get(candidate)
    if not isinstance(row, dict):
        return []
    chance = _number(cf, "chance")
    floor = _number(cf.get("real_floor"), "accuracy")
    refs = []
    refs.append(f"real data (train and test on real) {_fmt(floor)}" if floor is not None else "no floor measured")
    if chance is not None:
        refs.append(f"chance {_fmt(chance)}")
    lines = []
    cas = _number(row, "cas")
    if cas is not None:
        per = {k: float(v) for k, v in (row.get("cas_per_class") or {}).items()
               if v is not None and math.isfinite(float(v))}
        spread = ""
        if per:
            lo, hi = min(per, key=per.get), max(per, key=per.get)
            spread = f"; per class from {_fmt(per[lo])} ({lo}) to {_fmt(per[hi])} ({hi})"
        where = []
        if floor is not None:
            gap = cas - floor
            where.append(f"{_fmt(abs(gap))} {'below' if gap < 0 else 'above'} real data" if gap
                         else "level with real data")
        if chance is not None:
            where.append("no better than chance" if cas <= chance else f"{_fmt(cas - chance)} above chance")
        lines.append(f"Classification accuracy score (CAS: a classifier trained on real maps labels the {candidate} "
                     f"samples; do they show their class?): {_fmt(cas)} (higher is better){spread}; {'; '.join(refs)}"
                     + (f"; {', '.join(where)}" if where else "")
                     + f"; {_baselines(_class_rows(cf), candidate, 'cas', 'higher', cas, _fmt)}.")
    tstr = _number(row, "tstr")
    if tstr is not None:
        tail = "" if chance is None else ("; no better than chance" if tstr <= chance
                                          else f"; {_fmt(tstr - chance)} above chance")
        lines.append(f"TSTR (a classifier trained on the {candidate} samples, tested on held-out real maps): "
                     f"{_fmt(tstr)} (higher is better: the samples carry what separates the real classes); {'; '.join(refs)}{tail}; "
                     f"{_baselines(_class_rows(cf), candidate, 'tstr', 'higher', tstr, _fmt)}.")
    return lines


def _class_rows(cf: dict) -> dict:
    """The candidate rows of the class-fidelity block (dicts other than the real floor)."""
    return {k: v for k, v in cf.items() if isinstance(v, dict) and k not in ("real_floor", FLOOR)}


def verdict_lines(realism: dict | None, candidate: str) -> list[str]:
    """One plain-English line per metric measured for ``candidate`` (e.g. ``"ddpm"``): its value, the
    real-vs-real floor (ratio to it for distances), whether it beats each baseline, and a memorisation flag
    (``nn_ratio`` < 0.5 or ``copy_share`` > 0.1). Sections without a row for ``candidate`` say so in one line;
    missing metrics are skipped."""
    realism = realism or {}
    lines: list[str] = []
    for key, where in SECTIONS.items():
        section = realism.get(key)
        if not isinstance(section, dict):
            continue
        if not isinstance(section.get(candidate), dict):
            lines.append(f"No realism figures for {candidate} on {where}.")
            continue
        for metric, (_, rule) in _METRICS.items():
            if metric == "c2st":
                line = _c2st_line(section, candidate, where)
            elif metric in ("nn_ratio", "copy_share"):
                line = _memorisation_line(section, candidate, metric, where)
            else:
                line = _distance_line(section, candidate, metric, where)
            if line:
                lines.append(line)
    cf = realism.get("class_fidelity")
    if isinstance(cf, dict):
        lines += _class_lines(cf, candidate) or [f"No class-fidelity figures for {candidate}."]
    return lines


def flagged(row: dict, floor: dict, metric: str) -> bool | None:
    """Does ``metric`` of ``row`` say "not real"? C2ST: above the floor by more than 3 combined standard errors;
    distances: above twice the floor; memorisation: the copy thresholds. None when a figure is missing."""
    value, base = _number(row, metric), _number(floor, metric)
    if value is None:
        return None
    if metric == "nn_ratio":
        return value < MEMORISATION_NN_RATIO
    if metric == "copy_share":
        return value > MEMORISATION_COPY_SHARE
    if base is None:
        return None
    if metric == "c2st":
        se = math.hypot(_number(row, "c2st_stderr") or 0.0, _number(floor, "c2st_stderr") or 0.0)
        return abs(value - 0.5) > abs(base - 0.5) + 3 * se
    return value > 2 * base


def control_lines(section: dict | None) -> list[str]:
    """One line per negative control of a realism section: which metrics flagged it (on the run's own data).
    A control that no metric flags means the metrics cannot be trusted on this data."""
    section = section or {}
    floor = section.get(FLOOR) or {}
    lines = []
    for name, row in section.items():
        if not name.startswith(CONTROL_PREFIX) or not isinstance(row, dict):
            continue
        seen = {m: flagged(row, floor, m) for m in _METRICS}
        yes = [m for m, f in seen.items() if f]
        no = [m for m, f in seen.items() if f is False]
        lines.append(f"Negative control '{name[len(CONTROL_PREFIX):]}': flagged by {', '.join(yes) or 'no metric'}"
                     + (f"; not by {', '.join(no)}" if no else "") + ".")
    return lines


def metric_table(realism_section: dict | None) -> list[dict]:
    """Rows ``{"set": name, metric: value, ...}`` of one realism section (``"abundance"`` or ``"hsi"``),
    the real-vs-real floor first, then the candidates in their recorded order."""
    section = {k: v for k, v in (realism_section or {}).items() if isinstance(v, dict)}
    order = ([FLOOR] if FLOOR in section else []) + [k for k in section if k != FLOOR]
    return [{"set": name, **section[name]} for name in order]


def table_metrics(rows: list[dict]) -> list[str]:
    """The metric columns present in ``rows``: the known ones in a fixed order (``n``, ``c2st``,
    ``c2st_stderr``, distances, memorisation), then any others in first-seen order."""
    seen = list(dict.fromkeys(c for row in rows for c in row if c != "set"))
    known = ["n", "c2st", "c2st_stderr", *[m for m in _METRICS if m != "c2st"]]
    return [m for m in known if m in seen] + [m for m in seen if m not in known]


def class_fidelity_table(cf: dict | None) -> list[dict]:
    """Rows ``{"set", "cas", "tstr", "worst class", "best class"}``: real data first (its accuracy in the
    ``cas`` column: trained and tested on real), then each candidate."""
    cf = cf or {}
    rows = []

    def extremes(per: dict | None) -> tuple[str, str]:
        per = {k: float(v) for k, v in (per or {}).items() if v is not None}
        if not per:
            return "", ""
        lo, hi = min(per, key=per.get), max(per, key=per.get)
        return f"{lo} {_fmt(per[lo])}", f"{hi} {_fmt(per[hi])}"

    floor = cf.get("real_floor")
    if isinstance(floor, dict):
        worst, best = extremes(floor.get("per_class"))
        rows.append({"set": "real (train and test on real)", "cas": _number(floor, "accuracy"),
                     "worst class": worst, "best class": best})
    for name, row in _class_rows(cf).items():
        worst, best = extremes(row.get("cas_per_class"))
        rows.append({"set": name, "cas": _number(row, "cas"), "tstr": _number(row, "tstr"),
                     "worst class": worst, "best class": best})
    return rows


def per_class_table(cf: dict | None) -> list[dict]:
    """Rows ``{"class", "real", <candidate>: CAS of that class, ...}`` over ``cf["classes"]`` (or every class
    that appears)."""
    cf = cf or {}
    columns = {}
    if isinstance(cf.get("real_floor"), dict):
        columns["real"] = cf["real_floor"].get("per_class") or {}
    for name, row in _class_rows(cf).items():
        columns[name] = row.get("cas_per_class") or {}
    classes = list(cf.get("classes") or dict.fromkeys(c for per in columns.values() for c in per))
    return [{"class": c, **{name: _number(per, c) for name, per in columns.items()}} for c in classes]
