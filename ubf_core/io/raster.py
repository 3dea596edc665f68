"""GeoTIFF (rasterio) and ENVI (own header parser, numpy) cubes: reading raw values and writing float32 cubes.

Written files carry the band centres (nm), fwhm (nm) and bad-band list so that :func:`ubf_core.io.read_hsi` reads
back the same coordinates: GeoTIFF as band tags ``wavelength``, ``fwhm``, ``bbl`` and ``wavelength_units`` (plus
band descriptions ``"<nm> nm"``), ENVI as the header's ``wavelength``, ``fwhm``, ``bbl`` and ``wavelength units``.
Files are written under a temporary name in the target folder and renamed at the end.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ubf_core.errors import UBFInputError, describe_error
from ubf_core.io.cube import RawCube
from ubf_core.io.source import ENVI_DATA_SUFFIXES, UNIT_NAMES

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DESCRIPTION = re.compile(rf"^\s*({_NUMBER})\s*(nm|um|µm|micrometers?|nanometers?)?\s*$", re.IGNORECASE)


def _unit_name(where: Path, text: str | None) -> str | None:
    """"um" | "nm" | None (not stated / ENVI "Unknown"); other units raise."""
    if text is None or not str(text).strip() or str(text).strip().lower() in ("unknown", "none"):
        return None
    unit = UNIT_NAMES.get(str(text).strip().lower())
    if unit is None:
        raise UBFInputError(where, f"wavelength units {text!r} are not supported (use Micrometers or Nanometers)")
    return unit


def _envi_list(text: str) -> list[str]:
    return [v.strip() for v in text.strip().strip("{}").split(",") if v.strip()]


def _floats(where: Path, items: list[str], what: str) -> np.ndarray:
    try:
        return np.asarray([float(v) for v in items], dtype=np.float64)
    except ValueError:
        raise UBFInputError(where, f"{what} holds a value that is not a number: {items[:5]}") from None


def _lookup(tags: dict, key: str) -> str | None:
    for k, v in tags.items():
        if k.lower() == key:
            return v
    return None


# ------------------------------------------------------------------------------------------------------- GeoTIFF

def read_geotiff_raw(path: Path, rows: tuple[int, int] | None = None) -> RawCube:
    """Raw bands of a GeoTIFF (only rows ``[start, stop)`` when given) plus the band centres, fwhm, bad-band list,
    nodata and scale it declares."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                window = None if rows is None else Window(0, rows[0], ds.width, rows[1] - rows[0])
                data = ds.read(window=window)
                band_tags = [ds.tags(i) for i in range(1, ds.count + 1)]
                tags = ds.tags()
                envi = ds.tags(ns="ENVI")
                descriptions = list(ds.descriptions)
                nodata = ds.nodata
                scales, offsets = list(ds.scales), list(ds.offsets)
                driver = ds.driver
    except UBFInputError:
        raise
    except Exception as err:  # noqa: BLE001 - rasterio/GDAL raise many types for damaged files
        raise UBFInputError(path, f"cannot read the GeoTIFF, not a raster or damaged ({describe_error(err)})") from None
    if driver != "GTiff":
        raise UBFInputError(path, f"not a GeoTIFF (GDAL reads it as {driver})")
    raw = RawCube(data=data, format="geotiff", variables={}, nodata=None if nodata is None else float(nodata),
                  owned=True)
    n = data.shape[0]

    units_text = (_lookup(band_tags[0], "wavelength_units") if band_tags else None) or \
        _lookup(tags, "wavelength_units") or _lookup(envi, "wavelength_units") or _lookup(envi, "wavelength units")
    has = [_lookup(t, "wavelength") is not None for t in band_tags]
    if any(has):
        if not all(has):
            raise UBFInputError(path, f"band tag 'wavelength' is on {sum(has)} of {n} bands")
        raw.wavelengths = _floats(path, [_lookup(t, "wavelength") for t in band_tags], "band tag 'wavelength'")
        raw.wavelength_text = "GeoTIFF band tags wavelength"
        raw.wavelength_unit = _unit_name(path, units_text)
    elif _lookup(envi, "wavelength"):
        raw.wavelengths = _floats(path, _envi_list(_lookup(envi, "wavelength")), "ENVI metadata 'wavelength'")
        raw.wavelength_text = "GeoTIFF ENVI metadata wavelength"
        raw.wavelength_unit = _unit_name(path, units_text)
    elif descriptions and all(d and _DESCRIPTION.match(d) for d in descriptions):
        matches = [_DESCRIPTION.match(d) for d in descriptions]
        raw.wavelengths = np.asarray([float(m.group(1)) for m in matches])
        raw.wavelength_text = "GeoTIFF band descriptions"
        stated = {m.group(2).lower() for m in matches if m.group(2)}
        raw.wavelength_unit = _unit_name(path, stated.pop() if len(stated) == 1 else units_text)
    if all(_lookup(t, "fwhm") is not None for t in band_tags) and band_tags:
        raw.fwhm = _floats(path, [_lookup(t, "fwhm") for t in band_tags], "band tag 'fwhm'")
    elif _lookup(envi, "fwhm"):
        raw.fwhm = _floats(path, _envi_list(_lookup(envi, "fwhm")), "ENVI metadata 'fwhm'")
    if all(_lookup(t, "bbl") is not None for t in band_tags) and band_tags:
        raw.bbl = _floats(path, [_lookup(t, "bbl") for t in band_tags], "band tag 'bbl'")
    elif _lookup(envi, "bbl"):
        raw.bbl = _floats(path, _envi_list(_lookup(envi, "bbl")), "ENVI metadata 'bbl'")
    if any(o not in (0, None) for o in offsets):
        raise UBFInputError(path, f"the GeoTIFF declares band offsets {sorted(set(offsets))}; only a scale factor "
                                  f"(DN × scale) is supported")
    declared = {s for s in scales if s not in (None, 1.0)}
    if len(declared) > 1:
        raise UBFInputError(path, f"the GeoTIFF declares different scale factors per band {sorted(declared)}")
    if declared:
        raw.scale = float(declared.pop())
    return raw


def geotiff_shape(path: Path) -> tuple[int, int, int, int]:
    """(bands, rows, cols, bytes per value) of a GeoTIFF, from its header."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return ds.count, ds.height, ds.width, max(np.dtype(d).itemsize for d in ds.dtypes)
    except Exception as err:  # noqa: BLE001 - rasterio/GDAL raise many types for damaged files
        raise UBFInputError(path, f"cannot read the GeoTIFF, not a raster or damaged ({describe_error(err)})") from None


def _check_cube(cube, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    if not isinstance(cube, xr.DataArray):
        raise UBFInputError(path, f"expected an xarray.DataArray cube to write, got {type(cube).__name__}")
    if set(cube.dims) != {"wavelength", "y", "x"}:
        raise UBFInputError(path, f"the cube to write has dims {cube.dims}, expected ('wavelength', 'y', 'x')")
    if "wavelength" not in cube.coords:
        raise UBFInputError(path, "the cube to write has no wavelength coordinate")
    cube = cube.transpose("wavelength", "y", "x")
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    if not np.all(np.isfinite(wl)) or np.any(wl <= 0):
        raise UBFInputError(path, "the cube's wavelengths must be finite and > 0 nm")
    fwhm = np.asarray(cube["fwhm"].values, dtype=np.float64) if "fwhm" in cube.coords else None
    bad = (np.asarray(cube["bad_band"].values, dtype=bool) if "bad_band" in cube.coords
           else np.zeros(wl.size, dtype=bool))
    if not path.parent.is_dir():
        raise UBFInputError(path, f"the folder {path.parent} does not exist")
    return np.asarray(cube.values, dtype=np.float32), wl, fwhm, bad


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def write_geotiff(cube: xr.DataArray, path: str | Path) -> Path:
    """Write a (wavelength, y, x) cube as a float32 GeoTIFF with wavelength/fwhm (nm) and bbl band tags."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    path = Path(path)
    data, wl, fwhm, bad = _check_cube(cube, path)
    tmp = _tmp(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                               count=data.shape[0], dtype="float32", compress="deflate", predictor=3,
                               tiled=data.shape[1] >= 256 and data.shape[2] >= 256) as ds:
                ds.write(data)
                ds.update_tags(wavelength_units="Nanometers", source=str(cube.attrs.get("source", "")))
                for i in range(data.shape[0]):
                    tags = {"wavelength": repr(float(wl[i])), "wavelength_units": "Nanometers",
                            "bbl": "0" if bad[i] else "1"}
                    if fwhm is not None:
                        tags["fwhm"] = repr(float(fwhm[i]))
                    ds.update_tags(i + 1, **tags)
                    ds.set_band_description(i + 1, f"{float(wl[i])!r} nm")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------------------- ENVI

_ENVI_DTYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}


def read_envi_header(path: Path) -> dict[str, str]:
    """The ``key = value`` pairs of an ENVI header (keys lower-case, ``{...}`` values may span lines)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise UBFInputError(path, f"cannot read the ENVI header ({describe_error(err)})") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "ENVI":
        raise UBFInputError(path, "not an ENVI header (the first line must be 'ENVI')")
    header: dict[str, str] = {}
    i = 1
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        if "=" not in line:
            raise UBFInputError(path, f"line {i}: expected 'key = value', got {line.strip()[:60]!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        if value.startswith("{"):
            while "}" not in value and i < len(lines):
                value += " " + lines[i].strip()
                i += 1
            if "}" not in value:
                raise UBFInputError(path, f"the value of {key!r} opens '{{' but never closes it")
        header[key.lower()] = value
    return header


def _envi_pair(path: Path) -> tuple[Path, Path]:
    """(header, data file) for a path naming either."""
    if path.suffix.lower() == ".hdr":
        header = path
        for suffix in (*ENVI_DATA_SUFFIXES, ""):
            cand = path.with_suffix(suffix)
            if cand != path and cand.is_file():
                return header, cand
        raise UBFInputError(path, f"no ENVI data file beside the header (looked for {path.stem} with "
                                  f"{', '.join(ENVI_DATA_SUFFIXES)} or no suffix)")
    for cand in (path.with_suffix(".hdr"), Path(str(path) + ".hdr")):
        if cand.is_file():
            return cand, path
    raise UBFInputError(path, f"no ENVI header beside the data file (looked for {path.with_suffix('.hdr').name})")


def _envi_layout(path: Path) -> dict:
    """What an ENVI header says about its data file: header and data paths, the header's keys, samples, lines,
    bands, dtype, header offset and interleave (checked against the data file's size)."""
    header_path, data_path = _envi_pair(path)
    h = read_envi_header(header_path)

    def integer(key: str, default: int | None = None) -> int:
        if key not in h:
            if default is None:
                raise UBFInputError(header_path, f"the ENVI header has no {key!r}")
            return default
        try:
            return int(h[key])
        except ValueError:
            raise UBFInputError(header_path, f"{key!r} must be an integer, got {h[key]!r}") from None

    samples, lines, bands = integer("samples"), integer("lines"), integer("bands")
    code, offset, order = integer("data type"), integer("header offset", 0), integer("byte order", 0)
    file_type = h.get("file type", "ENVI Standard")
    if "standard" not in file_type.lower():
        raise UBFInputError(header_path, f"file type {file_type!r} is not an image cube (ENVI Standard)")
    if code not in _ENVI_DTYPES:
        raise UBFInputError(header_path, f"data type {code} is not supported (complex or unknown)")
    dtype = np.dtype(("<" if order == 0 else ">") + _ENVI_DTYPES[code])
    interleave = h.get("interleave", "bsq").strip().lower()
    if interleave not in ("bsq", "bil", "bip"):
        raise UBFInputError(header_path, f"unknown interleave {interleave!r} (expected bsq, bil or bip)")
    count = samples * lines * bands
    need = offset + count * dtype.itemsize
    size = data_path.stat().st_size
    if size < need:
        raise UBFInputError(data_path, f"truncated: the header describes {need} bytes ({bands} bands of {lines}×"
                                       f"{samples} {dtype.name}), the file has {size}")
    return {"header_path": header_path, "data_path": data_path, "header": h, "samples": samples, "lines": lines,
            "bands": bands, "dtype": dtype, "offset": offset, "interleave": interleave}


def envi_shape(path: Path) -> tuple[int, int, int, int]:
    """(bands, rows, cols, bytes per value) of an ENVI cube, from its header."""
    lay = _envi_layout(path)
    return lay["bands"], lay["lines"], lay["samples"], lay["dtype"].itemsize


def read_envi_raw(path: Path, rows: tuple[int, int] | None = None) -> tuple[RawCube, Path]:
    """Raw bands of an ENVI file (BSQ/BIL/BIP; only rows ``[start, stop)`` when given) plus what its header says;
    returns the cube and the header path."""
    lay = _envi_layout(path)
    header_path, data_path, h = lay["header_path"], lay["data_path"], lay["header"]
    samples, lines, bands, dtype, offset = lay["samples"], lay["lines"], lay["bands"], lay["dtype"], lay["offset"]
    interleave = lay["interleave"]
    count = samples * lines * bands
    native = dtype.newbyteorder("=")
    if rows is not None:   # read the rows' bytes alone: one run per band (BSQ), or one run (BIL, BIP)
        r0, r1 = rows
        n = r1 - r0
        item = dtype.itemsize
        try:
            with open(data_path, "rb") as fh:
                if interleave == "bsq":
                    block = np.empty((bands, n, samples), dtype=dtype)
                    for b in range(bands):
                        fh.seek(offset + (b * lines + r0) * samples * item)
                        _read_exact(fh, block[b], data_path)
                    data = block
                else:
                    shape = (n, bands, samples) if interleave == "bil" else (n, samples, bands)
                    block = np.empty(shape, dtype=dtype)
                    fh.seek(offset + r0 * samples * bands * item)
                    _read_exact(fh, block, data_path)
                    data = block.transpose(1, 0, 2) if interleave == "bil" else block.transpose(2, 0, 1)
        except UBFInputError:
            raise
        except Exception as err:  # noqa: BLE001
            raise UBFInputError(data_path, f"cannot read the ENVI data ({describe_error(err)})") from None
        data = np.ascontiguousarray(data, dtype=native)
        return _envi_cube(data, h, header_path), header_path
    try:
        flat = np.fromfile(data_path, dtype=dtype, count=count, offset=offset)
    except Exception as err:  # noqa: BLE001
        raise UBFInputError(data_path, f"cannot read the ENVI data ({describe_error(err)})") from None
    if interleave == "bsq":
        data = flat.reshape(bands, lines, samples)
    elif interleave == "bil":
        data = flat.reshape(lines, bands, samples).transpose(1, 0, 2)
    else:
        data = flat.reshape(lines, samples, bands).transpose(2, 0, 1)
    return _envi_cube(data.astype(native, copy=False), h, header_path), header_path


def _read_exact(fh, out: np.ndarray, path: Path) -> None:
    """Fill the C-contiguous array ``out`` from the file's current position."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = fh.readinto(view)
    if got != view.nbytes:
        raise UBFInputError(path, f"truncated: read {got} of {view.nbytes} bytes")


def _envi_cube(data: np.ndarray, h: dict[str, str], header_path: Path) -> RawCube:
    """A RawCube of ENVI values (a private array) and what the header ``h`` says about the bands."""
    raw = RawCube(data=data, format="envi", variables={}, owned=True)
    if "wavelength" in h:
        raw.wavelengths = _floats(header_path, _envi_list(h["wavelength"]), "'wavelength'")
        raw.wavelength_text = "ENVI header wavelength"
    elif "band names" in h:
        names = _envi_list(h["band names"])
        matches = [_DESCRIPTION.match(n) for n in names]
        if names and all(matches):
            raw.wavelengths = np.asarray([float(m.group(1)) for m in matches])
            raw.wavelength_text = "ENVI band names"
    raw.wavelength_unit = _unit_name(header_path, h.get("wavelength units"))
    if "fwhm" in h:
        raw.fwhm = _floats(header_path, _envi_list(h["fwhm"]), "'fwhm'")
    if "bbl" in h:
        raw.bbl = _floats(header_path, _envi_list(h["bbl"]), "'bbl'")
    if "data ignore value" in h:
        raw.nodata = _floats(header_path, [h["data ignore value"]], "'data ignore value'")[0]
    if "reflectance scale factor" in h:
        factor = _floats(header_path, [h["reflectance scale factor"]], "'reflectance scale factor'")[0]
        if factor <= 0:
            raise UBFInputError(header_path, f"'reflectance scale factor' must be > 0, got {factor:g}")
        raw.scale = 1.0 / factor
    return raw


def write_envi(cube: xr.DataArray, path: str | Path) -> Path:
    """Write a (wavelength, y, x) cube as ENVI float32 BSQ (``<stem>.img`` + ``<stem>.hdr``); returns the header.

    ``path`` may name the header, the data file or the stem. The data file is renamed into place first, the header
    last, so a header always describes a complete data file.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".hdr", *ENVI_DATA_SUFFIXES) else path
    header_path, data_path = stem.with_name(stem.name + ".hdr"), stem.with_name(stem.name + ".img")
    data, wl, fwhm, bad = _check_cube(cube, header_path)
    n, rows, cols = data.shape

    def envi_list(values) -> str:
        return "{" + ", ".join(values) + "}"

    label = re.sub(r"[{},\n]", " ", str(cube.attrs.get("source", ""))).strip()
    lines = ["ENVI", f"description = {{UBF reflectance cube {label}}}",
             f"samples = {cols}", f"lines = {rows}", f"bands = {n}", "header offset = 0",
             "file type = ENVI Standard", "data type = 4", "interleave = bsq", "byte order = 0",
             "wavelength units = Nanometers",
             "band names = " + envi_list(f"{float(w)!r} nm" for w in wl),
             "wavelength = " + envi_list(repr(float(w)) for w in wl)]
    if fwhm is not None:
        lines.append("fwhm = " + envi_list(repr(float(f)) for f in fwhm))
    lines.append("bbl = " + envi_list("0" if b else "1" for b in bad))
    tmp_data, tmp_header = _tmp(data_path), _tmp(header_path)
    try:
        data.astype("<f4", copy=False).tofile(tmp_data)
        tmp_header.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp_data, data_path)
        os.replace(tmp_header, header_path)
    except BaseException:
        tmp_data.unlink(missing_ok=True)
        tmp_header.unlink(missing_ok=True)
        raise
    return header_path
