"""The two profiles stay in step: every key of the CPU default exists in the paper-scale profile."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        if prefix == "hsi.datasets.":  # data-set entries differ by design
            continue
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
    return out


def test_paper_profile_has_every_key_of_the_default():
    cpu = yaml.safe_load((REPO / "params.yaml").read_text())
    paper = yaml.safe_load((REPO / "params.paper.yaml").read_text())
    assert _keys(cpu) - _keys(paper) == set()
    assert paper["patch"]["size"] == 256 and paper["unmixing"]["widths"] == [64, 128, 96, 48]
