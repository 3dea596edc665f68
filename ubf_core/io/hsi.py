"""Read one hyperspectral data set into the project's cube convention (:func:`read_hsi`).

The cube is an ``xarray.DataArray`` named ``"reflectance"``, dims ``("wavelength", "y", "x")``, float32, values =
raw values × scale; coordinates ``wavelength`` (nm, float64), ``fwhm`` (nm, only where known) and ``bad_band``
(bool); attrs ``source``, ``path``, ``format``, ``stored_dtype``, ``scale``, ``wavelength_source``, ``sorted_bands``. Non-finite
values and the ``nodata`` sentinel become NaN; nothing is dropped or renormalised.

Each format has its reader (:mod:`ubf_core.io.matfile`, :mod:`ubf_core.io.raster`, :mod:`ubf_core.io.cave`), which
returns a :class:`~ubf_core.io.cube.RawCube`; :func:`read_hsi` picks the reader and :func:`assemble` applies the data
set's spec to what it read. The readers do not import this module.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from ubf_core.errors import UBFInputError, describe_error
from ubf_core.io.cave import read_cave_raw
from ubf_core.io.cube import RawCube
from ubf_core.io.matfile import load_mat_arrays, read_mat_raw, read_mat_variables
from ubf_core.io.raster import envi_shape, geotiff_shape, read_envi_raw, read_geotiff_raw
from ubf_core.io.source import AxisSpec, HSISource

_UNIT_TEXT = {"um": "µm", "nm": "nm"}


# ---------------------------------------------------------------------------------------------------------- values

def _sentinel(dtype: np.dtype, nodata: float):
    """``nodata`` as a value of ``dtype``, or None when no value of that type can equal it."""
    if dtype.kind == "f":
        return dtype.type(nodata)
    if dtype.kind in "iu" and float(nodata).is_integer():
        info = np.iinfo(dtype)
        if info.min <= nodata <= info.max:
            return dtype.type(int(nodata))
    return None


def to_reflectance(raw: np.ndarray, scale: float, nodata: float | list[float] | None = None,
                   in_place: bool = False) -> np.ndarray:
    """float32 copy of ``raw × scale`` (computed per band in float64); non-finite values and ``nodata`` → NaN.

    ``nodata`` (one value or several) is compared with the raw values, before scaling. ``in_place``: ``raw`` is a
    private array that may be overwritten; when it is float32 and C-contiguous it is converted in place and
    returned (no copy of the cube).
    """
    if nodata is None:
        nodata = []
    elif not isinstance(nodata, (list, tuple)):
        nodata = [nodata]
    sentinels = [s for s in (_sentinel(raw.dtype, v) for v in nodata) if s is not None]
    reuse = (in_place and raw.dtype == np.float32 and raw.flags.c_contiguous and raw.flags.writeable)
    out = raw if reuse else np.empty(raw.shape, dtype=np.float32)
    finite = np.empty(raw.shape[1:], dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(raw.shape[0]):   # band by band: the temporaries stay small
            band, dst = raw[i], out[i]
            nodata_mask = [band == sentinel for sentinel in sentinels]   # before ``band`` may be overwritten
            if scale != 1.0:
                dst[...] = band.astype(np.float64) * scale
            elif dst is not band:
                dst[...] = band
            for mask in nodata_mask:
                dst[mask] = np.nan
            np.isfinite(dst, out=finite)   # ±inf (given, or from the scale) becomes NaN
            if not finite.all():
                dst[~finite] = np.nan
    return out


# -------------------------------------------------------------------------------------------------- spectral axis

def _vector(where: Path, name: str, arr: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if sum(s > 1 for s in arr.shape) > 1:
        raise UBFInputError(where, f"{what} {name!r} has shape {'×'.join(map(str, arr.shape))}; "
                                   f"expected a vector (one non-singleton axis)")
    return arr.reshape(-1)


def _read_text_table(path: Path, column: int) -> np.ndarray:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise UBFInputError(path, f"cannot read the band table ({describe_error(err)})") from None
    values: list[float] = []
    started = False
    for lineno, line in enumerate(lines, 1):
        fields = [f for f in re.split(r"[\s,;]+", line.strip()) if f]
        if not fields:
            continue
        try:
            values.append(float(fields[column]))
            started = True
        except (ValueError, IndexError):
            if started:
                raise UBFInputError(path, f"line {lineno}: no number in column {column} ({line.strip()[:60]!r})")
    if not values:
        raise UBFInputError(path, f"no numbers in column {column}: not a band table")
    return np.asarray(values, dtype=np.float64)


def _read_table(spec: AxisSpec, dataset: str) -> np.ndarray:
    path = spec.table
    purpose = f"the {spec.key} table of data set {dataset!r}"
    if not path.exists():
        raise UBFInputError(path, f"file not found ({purpose})")
    if path.suffix.lower() != ".mat":
        return _read_text_table(path, spec.column)
    name = spec.table_variable
    if name is None:
        numeric = [n for n, (_, d) in read_mat_variables(path).items() if re.fullmatch(r"u?int\d+|float\d+", d)]
        if len(numeric) != 1:
            raise UBFInputError(path, f"set `table_variable`: the table file holds {len(numeric)} numeric variables "
                                      f"({', '.join(numeric) or 'none'})")
        name = numeric[0]
    arr = load_mat_arrays(path, {name: purpose})[0][name]
    if arr.ndim == 2 and min(arr.shape) > 1:
        if spec.column >= arr.shape[1]:
            raise UBFInputError(path, f"{name!r} has {arr.shape[1]} columns, no column {spec.column}")
        return arr[:, spec.column].astype(np.float64)
    if spec.column:
        raise UBFInputError(path, f"{name!r} is a vector, it has no column {spec.column}")
    return _vector(path, name, arr, "table").astype(np.float64)


def _indices(where: Path, values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        raise UBFInputError(where, f"{what} must hold whole numbers")
    return values.astype(np.int64)


def _unit(values: np.ndarray, unit: str | None, key: str) -> tuple[np.ndarray, str]:
    """Convert to nm; ``unit=None`` means guess (values read from a file)."""
    if unit is None:
        limit = 30.0 if key == "wavelengths" else 1.0
        if values.size and np.nanmax(values) < limit:
            return values * 1000.0, f"µm, guessed: all values < {limit:g}"
        return values, f"nm, guessed: not all values < {limit:g}" if key == "fwhm" else "nm"
    return (values * 1000.0 if unit == "um" else values), _UNIT_TEXT[unit]


def resolve_axis(spec: AxisSpec, raw: RawCube, path: Path, dataset: str, n_bands: int) -> tuple[np.ndarray, str]:
    """Build a spec's per-band values in nm (before sorting) and the text that says where they came from."""
    text = spec.describe()
    unit = spec.unit
    if spec.kind == "file":
        values = raw.wavelengths if spec.key == "wavelengths" else raw.fwhm
        if values is None:
            raise UBFInputError(path, f"no {spec.key} in the file", "give them in the spec (variable, linspace, "
                                                                     "values or table)", key=spec.key)
        unit = unit or raw.wavelength_unit
        text = (raw.wavelength_text or "the file's list") + text[len("the file's list"):]
    elif spec.kind == "variable":
        values = _vector(path, spec.variable, raw.variables[spec.variable], f"the {spec.key} variable")
    elif spec.kind == "linspace":
        values = np.linspace(*spec.linspace)
        unit = unit or "nm"
    elif spec.kind == "values":
        values = np.asarray(spec.values)
        unit = unit or "nm"
    elif spec.kind == "value":
        values = np.full(n_bands, spec.value)
        unit = unit or "nm"
    else:  # table
        values = _read_table(spec, dataset)
        if spec.indices_variable or spec.indices is not None:
            if spec.indices_variable:
                idx = _indices(path, _vector(path, spec.indices_variable, raw.variables[spec.indices_variable],
                                             "the index variable"), f"index variable {spec.indices_variable!r}")
            else:
                idx = np.asarray(spec.indices, dtype=np.int64)
            zero = idx - spec.index_base
            bad = (zero < 0) | (zero >= values.size)
            if bad.any():
                raise UBFInputError(path, f"{spec.key} table index {int(idx[bad][0])} ({spec.index_base}-based) is "
                                          f"outside the table's {values.size} entries ({spec.table_label})")
            values = values[zero]
        elif spec.first_n:
            if n_bands > values.size:
                raise UBFInputError(path, f"{n_bands} bands but the {spec.key} table {spec.table_label} has only "
                                          f"{values.size} entries (first_n)")
            values = values[:n_bands]
    values, unit_text = _unit(np.asarray(values, dtype=np.float64), unit, spec.key)
    if spec.slice is not None:
        values = values[slice(*spec.slice)]
    if spec.kind in ("variable", "table", "file") or unit_text != "nm":
        text = f"{text} ({unit_text})"
    return values, text


def _check_axis(values: np.ndarray, path: Path, key: str, n_bands: int, text: str) -> None:
    if values.size != n_bands:
        noun = "wavelengths" if key == "wavelengths" else "fwhm values"
        raise UBFInputError(path, f"{values.size} {noun} for {n_bands} bands ({key}: {text})")
    if not np.all(np.isfinite(values)):
        raise UBFInputError(path, f"{key} contain non-finite values ({text})")
    if np.any(values <= 0):
        raise UBFInputError(path, f"{key} must be > 0 nm, found {values.min():g} ({text})")


def _bad_bands(source: HSISource, raw: RawCube, path: Path, n_bands: int) -> np.ndarray:
    spec = source.bad_bands
    bad = np.zeros(n_bands, dtype=bool)
    if spec is None:
        if raw.bbl is not None:
            bbl = np.asarray(raw.bbl, dtype=np.float64).reshape(-1)
            if bbl.size != n_bands:
                raise UBFInputError(path, f"the file's bad-band list has {bbl.size} entries for {n_bands} bands")
            bad = bbl == 0
        return bad
    if spec.indices is not None:
        idx = np.asarray(spec.indices, dtype=np.int64)
        if idx.size and idx.max() >= n_bands:
            raise UBFInputError(path, f"bad band {int(idx.max())} (0-based) is outside the {n_bands} bands")
        bad[idx] = True
        return bad
    values = _vector(path, spec.variable, raw.variables[spec.variable], "the bad-band variable").astype(np.float64)
    if values.size != n_bands:
        raise UBFInputError(path, f"bad-band variable {spec.variable!r} has {values.size} entries for {n_bands} bands")
    return values == spec.bad_value


def _first_decrease(values: np.ndarray) -> int | None:
    drops = np.flatnonzero(np.diff(values) < 0)
    return int(drops[0]) if drops.size else None


def assemble(source: HSISource, raw: RawCube, path: Path) -> xr.DataArray:
    """Apply scale/nodata and the spectral specs of ``source`` to ``raw``; the shared back end of every reader."""
    n_bands = raw.data.shape[0]
    wl_spec = source.wavelengths
    if wl_spec is None and raw.wavelengths is not None:
        wl_spec = AxisSpec(key="wavelengths", kind="file")
    if wl_spec is None:
        raise UBFInputError(path, f"wavelengths missing: the file stores none and data set {source.name!r} gives "
                                  f"none", "add `wavelengths:` (variable, linspace, values or table) to its spec",
                            key="wavelengths")
    wavelengths, wl_text = resolve_axis(wl_spec, raw, path, source.name, n_bands)
    _check_axis(wavelengths, path, "wavelengths", n_bands, wl_text)

    fwhm_spec = source.fwhm
    if fwhm_spec is None and raw.fwhm is not None:
        fwhm_spec = AxisSpec(key="fwhm", kind="file")
    fwhm = None
    if fwhm_spec is not None:
        fwhm, fwhm_text = resolve_axis(fwhm_spec, raw, path, source.name, n_bands)
        _check_axis(fwhm, path, "fwhm", n_bands, fwhm_text)
    bad = _bad_bands(source, raw, path, n_bands)

    scale = source.scale if source.scale is not None else (raw.scale if raw.scale is not None else 1.0)
    data = to_reflectance(raw.data, scale, [v for v in (source.nodata, raw.nodata) if v is not None],
                          in_place=raw.owned)

    sorted_bands = False
    drop = _first_decrease(wavelengths)
    if drop is not None:
        if not wl_spec.sort:
            raise UBFInputError(path, f"wavelengths are not in increasing order: {wavelengths[drop]:.2f} nm (band "
                                      f"{drop}) is followed by {wavelengths[drop + 1]:.2f} nm (band {drop + 1}) "
                                      f"({wl_text})", "set `sort: true` under wavelengths to reorder the bands",
                                key="wavelengths.sort")
        order = np.argsort(wavelengths, kind="stable")
        wavelengths, bad, data = wavelengths[order], bad[order], data[order]
        fwhm = fwhm[order] if fwhm is not None else None
        sorted_bands = True

    coords: dict = {"wavelength": ("wavelength", wavelengths)}
    if fwhm is not None:
        coords["fwhm"] = ("wavelength", fwhm)
    coords["bad_band"] = ("wavelength", bad)
    return xr.DataArray(
        data, dims=("wavelength", "y", "x"), coords=coords, name="reflectance",
        attrs={"source": source.name, "path": str(path), "format": raw.format, "stored_dtype": str(raw.data.dtype),
               "scale": float(scale), "wavelength_source": wl_text, "sorted_bands": sorted_bands},
    )


# ---------------------------------------------------------------------------------------------------------- entry

def read_hsi(source: HSISource, rows: tuple[int, int] | None = None) -> xr.DataArray:
    """Read a data set described by ``source`` into a reflectance cube (see the module docstring).

    ``rows`` (start, stop): only those rows of the scene. ENVI and GeoTIFF read just their bytes (see
    :func:`row_reader_shape`); the other formats read the whole scene and keep the rows.
    """
    if not isinstance(source, HSISource):
        raise TypeError(f"read_hsi expects an HSISource, got {type(source).__name__}")
    path = Path(source.path)
    if source.format == "cave":
        raw = read_cave_raw(source)
    elif not path.exists():
        raise UBFInputError(path, f"file not found (data set {source.name!r})")
    elif source.format == "mat":
        raw = read_mat_raw(source)
    elif source.format == "geotiff":
        raw = read_geotiff_raw(path, rows)
        rows = None
    else:
        raw, path = read_envi_raw(path, rows)
        rows = None
    if rows is not None:
        raw.data = raw.data[:, rows[0]:rows[1]]
    return assemble(source, raw, path)


def row_reader_shape(source: HSISource) -> tuple[int, int, int, int] | None:
    """(bands, rows, cols, bytes per raw value) of a scene whose reader reads a block of rows alone (ENVI and
    GeoTIFF, from the header), so that several tasks can share a large scene; None for the other formats and for a
    file that is not there (reading it says so)."""
    path = Path(source.path)
    if source.format not in ("envi", "geotiff") or not path.exists():
        return None
    return geotiff_shape(path) if source.format == "geotiff" else envi_shape(path)
