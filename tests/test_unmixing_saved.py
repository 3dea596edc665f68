"""A trained unmixing network on disk (``ubf_core.unmixing.saved``): JSON description + safetensors weights, the
same outputs after a round trip, nothing half-written, and one-line errors naming the file for broken folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ubf_core.errors import UBFInputError
from ubf_core.unmixing import UnmixingNet
from ubf_core.unmixing.saved import SAVED_UNMIXING_FILE, UNMIXING_WEIGHTS_FILE, load_unmixing_model, save_unmixing_model

WL = [float(v) for v in np.linspace(400, 700, 7)]
META = {"wavelength_nm": WL, "input_space": {"space": "display", "rgb_to_hsi_scale": 0.4}, "three_band": "render",
        "band_wavelengths_nm": [650.0, 550.0, 450.0], "render_response": "camera:Canon 5D Mark II"}


def trained_looking_net(seed: int = 0, **options) -> UnmixingNet:
    """A small UnmixingNet with every parameter (the zero-initialised bias too) moved off its initial value."""
    torch.manual_seed(seed)
    net = UnmixingNet(4, len(WL), stem=4, widths=(6, 5), **options)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    net.meta = json.loads(json.dumps(META))
    return net


def _outputs(net, x):
    with torch.no_grad():
        return net.eval()(x)


@pytest.mark.parametrize("options", [{}, {"nonnegative_endmembers": False, "bias": False}])
def test_round_trip_gives_the_same_network(tmp_path, options):
    net = trained_looking_net(**options)
    folder = save_unmixing_model(net, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == [SAVED_UNMIXING_FILE, UNMIXING_WEIGHTS_FILE]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]            # no temporary folder left beside it
    rng = torch.get_rng_state()
    loaded = load_unmixing_model(folder)
    assert torch.equal(torch.get_rng_state(), rng)                     # loading draws no random numbers
    assert type(loaded) is UnmixingNet and not loaded.training
    assert loaded.config == net.config and loaded.meta == META
    x = torch.rand(2, 3, 11, 6)
    for got, want in zip(_outputs(loaded, x), _outputs(net, x)):
        assert torch.equal(got, want)
    assert torch.equal(loaded.endmembers(), net.endmembers())


def test_saving_again_replaces_the_folder(tmp_path):
    folder = tmp_path / "model"
    save_unmixing_model(trained_looking_net(0), folder)
    (folder / "stray.txt").write_text("left by someone")
    second = trained_looking_net(1)
    save_unmixing_model(second, folder)
    assert sorted(p.name for p in folder.iterdir()) == [SAVED_UNMIXING_FILE, UNMIXING_WEIGHTS_FILE]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert torch.equal(load_unmixing_model(folder).endmembers(), second.endmembers())


def test_a_model_without_its_wavelength_grid_is_not_saved(tmp_path):
    net = trained_looking_net()
    net.meta = {"wavelength_nm": WL[:-1]}
    with pytest.raises(UBFInputError, match=r"wavelength_nm'\] must list the 7 band wavelengths"):
        save_unmixing_model(net, tmp_path / "model")
    del net.meta
    with pytest.raises(UBFInputError, match="meta must be a dict"):
        save_unmixing_model(net, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []                              # nothing written, not even half


# how to break a saved folder → (the file the error must name, relative to the folder; what it must say)
BROKEN = {
    "no weights": (".", "weights.safetensors missing"),
    "truncated weights": (UNMIXING_WEIGHTS_FILE, "unreadable weights"),
    "no description": (".", "unmixing.json missing"),
    "not JSON": (SAVED_UNMIXING_FILE, "unreadable unmixing model description"),
    "future version": (SAVED_UNMIXING_FILE, "format version 2 unknown: this UBF reads version 1"),
    "other format": (SAVED_UNMIXING_FILE, "format 'ubf-abundance-generator' is not a saved unmixing model"),
    "unknown option": (SAVED_UNMIXING_FILE, "architecture cannot be built: unknown keys ['dropout']"),
    "other architecture": (UNMIXING_WEIGHTS_FILE, "weights do not fit the architecture in unmixing.json: wrong shape"),
}


def _break(folder, case) -> None:
    weights, description_file = folder / UNMIXING_WEIGHTS_FILE, folder / SAVED_UNMIXING_FILE
    description = json.loads(description_file.read_text())
    if case == "no weights":
        weights.unlink()
    elif case == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    elif case == "no description":
        description_file.unlink()
    elif case == "not JSON":
        description_file.write_text("{format: ")
    else:
        if case == "future version":
            description["version"] = 2
        elif case == "other format":
            description["format"] = "ubf-abundance-generator"
        elif case == "unknown option":
            description["config"]["dropout"] = 0.1
        elif case == "other architecture":
            description["config"]["widths"] = [6, 4]       # saved with (6, 5): the last block and head differ
        description_file.write_text(json.dumps(description))


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_folder_is_a_one_line_error_naming_the_file(tmp_path, case):
    folder = save_unmixing_model(trained_looking_net(), tmp_path / "model")
    _break(folder, case)
    name, problem = BROKEN[case]
    where = folder if name == "." else folder / name
    with pytest.raises(UBFInputError) as err:
        load_unmixing_model(folder)
    message = str(err.value)
    assert message.startswith(f"{where}: ") and problem in message and "\n" not in message


def test_a_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(UBFInputError, match=r"nowhere: no such folder"):
        load_unmixing_model(tmp_path / "nowhere")
