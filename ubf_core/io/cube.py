"""What a format reader hands over (:class:`RawCube`): the module every reader and :mod:`ubf_core.io.hsi` share.

The readers (:mod:`ubf_core.io.matfile`, :mod:`ubf_core.io.raster`, :mod:`ubf_core.io.cave`) build a RawCube from a
file; :func:`ubf_core.io.hsi.read_hsi` picks the reader for a data set's format and turns its RawCube into the
project's cube convention (:func:`ubf_core.io.hsi.assemble`). The imports go one way: readers → this module,
hsi → readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RawCube:
    """What a format reader hands over: raw values (bands, rows, cols) and what the file says about its bands."""

    data: np.ndarray
    format: str
    variables: dict[str, np.ndarray]          # .mat variables loaded for the spectral specs
    wavelengths: np.ndarray | None = None     # from the file, in ``unit``
    wavelength_unit: str | None = None        # "um" | "nm" | None (not stated)
    wavelength_text: str | None = None
    fwhm: np.ndarray | None = None
    bbl: np.ndarray | None = None             # ENVI-style bad-band list (0 = bad)
    nodata: float | None = None
    scale: float | None = None                # a scale the file declares (ENVI/GDAL), used when the spec has none
    owned: bool = False                       # ``data`` is the reader's own array: it may be converted in place
