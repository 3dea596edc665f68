"""The encoder's input space: 3-band inputs from HSI patches and the RGB images brought to meet them."""

from pathlib import Path

import numpy as np
import pytest

from ubf_core.errors import UBFInputError
from ubf_core.spectral import load_cie1931
from ubf_core.spectral.rendering import srgb_encode
from ubf_core.unmixing.inputs import InputSpace, band_indices, srgb_decode, three_band

SPECTRA = Path(__file__).resolve().parents[1] / "data" / "spectra"
WL = np.linspace(398, 698, 59)


def test_srgb_decode_inverts_the_encoding():
    v = np.linspace(0, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(srgb_decode(srgb_encode(v)), v, atol=1e-5)
    assert srgb_decode(np.array([0.5]))[0] == pytest.approx(0.214, abs=1e-3)  # mid-grey is ~21% linear


def test_select_takes_the_nearest_bands():
    assert list(band_indices(WL, (650, 550, 450))) == [int(np.argmin(abs(WL - t))) for t in (650, 550, 450)]
    x = np.random.default_rng(0).random((2, 59, 4, 4), dtype=np.float32)
    out = three_band(x, WL, "select")
    np.testing.assert_array_equal(out[:, 0], x[:, band_indices(WL, (650,))[0]])


def test_render_of_flat_patches_is_neutral_and_of_the_same_value():
    x = np.full((2, 59, 3, 3), 0.25, dtype=np.float32)
    x[1] = 0.5
    out = three_band(x, WL, "render", response=load_cie1931(SPECTRA / "ciexyz31_1.csv"))
    assert out.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(out[0], 0.25, atol=2e-3)
    np.testing.assert_allclose(out[1], 0.5, atol=2e-3)
    with pytest.raises(UBFInputError, match="response"):
        three_band(x, WL, "render")


def test_input_space_matches_brightness_of_the_two_sources():
    rng = np.random.default_rng(1)
    hsi = rng.uniform(0.02, 0.3, (10, 3, 8, 8)).astype(np.float32)
    rgb = rng.uniform(0.2, 0.9, (10, 3, 8, 8)).astype(np.float32)
    lin = InputSpace.fit("linear", hsi, rgb)
    assert lin.from_rgb(rgb).mean() == pytest.approx(hsi.mean(), rel=1e-4)
    np.testing.assert_array_equal(lin.from_hsi(hsi), hsi)
    disp = InputSpace.fit("display", hsi, rgb)
    np.testing.assert_array_equal(disp.from_rgb(rgb), rgb)
    assert srgb_decode(disp.from_hsi(hsi)).mean() == pytest.approx(srgb_decode(rgb).mean(), rel=0.05)
    with pytest.raises(UBFInputError, match="unknown"):
        InputSpace("gamma")
