"""The two profiles stay in step: every key of the CPU default exists in the paper-scale profile."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        if prefix in ("hsi.datasets.", "synthesis.class_mix."):  # data sets and class choices differ by design
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


def test_unmixing_settings_come_from_params_and_refuse_nonsense():
    import pytest

    from ubf_core.errors import UBFInputError
    from ubf_core.unmixing.experiment import UnmixingSettings

    u = yaml.safe_load((REPO / "params.yaml").read_text())["unmixing"]
    s = UnmixingSettings.from_params(u, seed=7)
    assert s.widths == tuple(u["widths"]) and s.k == u["k"] and s.stem == u["stem"]
    assert s.train.epochs == u["train"]["epochs"] and s.train.seed == 7
    assert (s.alpha, s.beta) == (u["loss"]["alpha"], u["loss"]["beta"])
    with pytest.raises(UBFInputError, match="unmixing.k = 1"):
        UnmixingSettings.from_params({**u, "k": 1})
    with pytest.raises(UBFInputError, match="init_endmembers 'nfindr'"):
        UnmixingSettings.from_params({**u, "init_endmembers": "nfindr"})
