"""Rebuild the small embedded sample in ``data/`` from the shared public data (run once by a maintainer).

Usage: ``python infra/make_embedded_sample.py SHARED_DATA_DIR``

What it copies (citations in data/README.md):
- hsi/abu/*.mat: the eight ABU scenes, bands cut to the first ``N_AVIRIS_BANDS`` (AVIRIS bands 1..42, 366-760 nm),
  DN values unchanged, saved compressed;
- hsi/jasper_ridge_r198.mat: the first 42 kept bands (AVIRIS bands 4..45), with SlectBands, nRow, nCol, maxValue;
- hsi/salton_sea_roi.mat: I, wl, bbl and the header's fwhm, bands up to 760 nm;
- hsi/samson.mat: SamSon as float32, bands up to 760 nm (the first 115 of linspace(401, 889, 156));
- rgb/aid/<class>/: ``N_IMAGES_PER_CLASS`` JPEGs (byte-identical copies) of the classes in ``AID_CLASSES``;
- spectra/: the CIE 1931 colour-matching functions, the camera sensitivity database, the AVIRIS band table and the
  USGS spectral library resampled to AVIRIS (whole, byte-identical: 0.4 MB).
The selection is deterministic (sorted file names).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import scipy.io as sio

N_AVIRIS_BANDS = 42
N_IMAGES_PER_CLASS = 30
AID_CLASSES = ["Airport", "Beach", "Commercial", "DenseResidential", "Farmland", "Forest", "Industrial",
               "MediumResidential"]


def main(shared: Path, out: Path) -> None:
    (out / "hsi" / "abu").mkdir(parents=True, exist_ok=True)
    for src in sorted((shared / "hsi" / "abu").glob("*.mat")):
        d = sio.loadmat(src)
        sio.savemat(out / "hsi" / "abu" / src.name,
                    {"data": d["data"][:, :, :N_AVIRIS_BANDS], "map": d["map"]}, do_compression=True)
    d = sio.loadmat(shared / "hsi" / "jasper_ridge_r198.mat")
    sio.savemat(out / "hsi" / "jasper_ridge_r198.mat",
                {"Y": d["Y"][:N_AVIRIS_BANDS], "SlectBands": d["SlectBands"][:N_AVIRIS_BANDS],
                 "nRow": d["nRow"], "nCol": d["nCol"], "maxValue": d["maxValue"]}, do_compression=True)
    d = sio.loadmat(shared / "hsi" / "salton_sea_roi.mat")
    keep = d["wl"].ravel() * 1000.0 <= 760.0
    fwhm = np.asarray(d["params"][0, 0]["fwhm"], dtype=float).ravel()
    sio.savemat(out / "hsi" / "salton_sea_roi.mat",
                {"I": d["I"][:, :, keep].astype(np.float32), "wl": d["wl"][:, keep], "bbl": d["bbl"][:, keep],
                 "fwhm": fwhm[keep][None, :]}, do_compression=True)
    d = sio.loadmat(shared / "hsi" / "samson.mat")
    keep = np.linspace(401.0, 889.0, 156) <= 760.0  # samson's wavelengths are not stored: linspace(401, 889, 156)
    sio.savemat(out / "hsi" / "samson.mat", {"SamSon": d["SamSon"][:, :, keep].astype(np.float32)},
                do_compression=True)
    for cls in AID_CLASSES:
        dst = out / "rgb" / "aid" / cls
        dst.mkdir(parents=True, exist_ok=True)
        files = sorted((shared / "rgb" / "aid" / cls).glob("*.jpg"), key=lambda p: p.name)[:N_IMAGES_PER_CLASS]
        for f in files:
            shutil.copyfile(f, dst / f.name)
    (out / "spectra").mkdir(parents=True, exist_ok=True)
    for name in ["ciexyz31_1.csv", "camspec_database.txt", "aviris_wavelengths.mat",
                 "usgs_1995_library.mat"]:
        shutil.copyfile(shared / "spectra" / name, out / "spectra" / name)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(__file__).resolve().parents[1] / "data")
