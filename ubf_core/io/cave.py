"""CAVE-style scenes: one grayscale PNG per band, ``<anything>_NN.png`` (NN = band number), in one folder.

The CAVE layout on disk is ``<scene>_ms/<scene>_ms/<scene>_ms_NN.png``; either the outer or the inner folder may be
given. Files that do not end in ``_NN.png`` (e.g. ``<scene>_RGB.bmp``) are ignored. Band images are 16-bit or 8-bit
grayscale; an RGB/RGBA band image gives its first channel. Defaults: wavelengths linspace(400, 700, 31) when there
are 31 bands (a folder of another band count without ``wavelengths:`` in the spec is refused, naming the count and
the missing band numbers); scale 1/65535 (16-bit) or 1/255 (8-bit) unless the spec sets ``scale``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ubf_core.errors import UBFInputError, describe_error
from ubf_core.io.cube import RawCube
from ubf_core.io.source import HSISource

_BAND = re.compile(r"_(\d+)\.png$", re.IGNORECASE)
CAVE_BANDS = 31  # 400-700 nm every 10 nm, band images numbered 01..31


def _band_files(folder: Path) -> list[tuple[int, Path]]:
    return [(int(m.group(1)), p) for p in folder.iterdir() if p.is_file() and (m := _BAND.search(p.name))]


def find_cave_bands(folder: Path) -> tuple[Path, list[Path]]:
    """The folder that holds the band PNGs (the given one or its only sub-folder that has them) and the files."""
    if not folder.exists():
        raise UBFInputError(folder, "folder not found")
    if not folder.is_dir():
        raise UBFInputError(folder, "is a file; a CAVE scene is a folder of <name>_NN.png band images")
    bands = _band_files(folder)
    if not bands:
        inner = [d for d in sorted(folder.iterdir()) if d.is_dir() and _band_files(d)]
        if len(inner) != 1:
            raise UBFInputError(folder, "no band images (<name>_NN.png) in the folder" if not inner else
                                f"band images in {len(inner)} sub-folders ({', '.join(d.name for d in inner)}); "
                                f"give one scene folder")
        folder, bands = inner[0], _band_files(inner[0])
    bands.sort()
    numbers = [n for n, _ in bands]
    if len(set(numbers)) != len(numbers):
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        raise UBFInputError(folder, f"band number {dup[0]} appears twice "
                                    f"({', '.join(p.name for n, p in bands if n == dup[0])})")
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise UBFInputError(folder, f"band images {numbers[0]}..{numbers[-1]} lack number "
                                    f"{', '.join(map(str, missing[:5]))}")
    return folder, [p for _, p in bands]


def _read_band(path: Path) -> tuple[np.ndarray, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA"):
                im = im.getchannel(0)
            elif mode == "P":
                raise UBFInputError(path, "palette image (mode P); a CAVE band must be grayscale")
            arr = np.asarray(im)
    except UBFInputError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow raises many types for damaged files
        raise UBFInputError(path, f"not a readable PNG band image ({describe_error(err)})") from None
    if arr.ndim != 2:
        raise UBFInputError(path, f"band image has shape {arr.shape}, expected a single channel")
    if mode.startswith("I;16") or (mode == "I" and arr.size and 0 <= arr.min() and arr.max() <= 65535):
        return arr.astype(np.uint16, copy=False), 16
    if arr.dtype == np.uint8:
        return arr, 8
    raise UBFInputError(path, f"unsupported band image mode {mode} (expected 8- or 16-bit grayscale)")


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 31]`` → ``"1-3, 31"``."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _band_count_problem(files: list[Path]) -> str:
    """Why a folder of band images is not a CAVE scene of 31 bands: how many were found and which are missing."""
    numbers = [int(_BAND.search(f.name).group(1)) for f in files]
    found = (f"{len(files)} band images ({files[0].name} .. {files[-1].name})" if len(files) > 1 else
             f"1 band image ({files[0].name})")
    text = f"{found} where a CAVE scene has {CAVE_BANDS} (400-700 nm every 10 nm)"
    missing = sorted(set(range(1, CAVE_BANDS + 1)) - set(numbers))
    if missing and len(files) < CAVE_BANDS:
        text += f": band{'s' if len(missing) > 1 else ''} {_ranges(missing)} {'are' if len(missing) > 1 else 'is'} " \
                f"missing"
    return text


def read_cave_raw(source: HSISource) -> RawCube:
    folder, files = find_cave_bands(Path(source.path))
    if len(files) != CAVE_BANDS and source.wavelengths is None:
        raise UBFInputError(folder, _band_count_problem(files), "give `wavelengths:` for another set of bands",
                            key="wavelengths")
    first, depth = _read_band(files[0])
    data = np.empty((len(files), *first.shape), dtype=first.dtype)
    data[0] = first
    for i, f in enumerate(files[1:], 1):
        arr, d = _read_band(f)
        if arr.shape != first.shape:
            raise UBFInputError(f, f"band image is {arr.shape[1]}×{arr.shape[0]}, the first band "
                                   f"({files[0].name}) is {first.shape[1]}×{first.shape[0]}")
        if d != depth:
            raise UBFInputError(f, f"band image is {d}-bit, the first band ({files[0].name}) is {depth}-bit")
        data[i] = arr
    raw = RawCube(data=data, format="cave", variables={}, scale=1.0 / (65535.0 if depth == 16 else 255.0))
    if len(files) == CAVE_BANDS:
        raw.wavelengths = np.linspace(400.0, 700.0, 31)
        raw.wavelength_unit = "nm"
        raw.wavelength_text = "CAVE default linspace(400, 700, 31)"
    return raw
