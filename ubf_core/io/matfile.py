"""MATLAB .mat files, version 5/7 (scipy.io) and 7.3 (HDF5, h5py), read into numpy arrays in MATLAB's axis order.

h5py sees a MATLAB array with its axes reversed (an H×W×C array is stored as C×W×H); :func:`load_mat_arrays`
transposes it back, so callers always get the shape MATLAB shows. A struct field is named with a dot
(``params.fwhm``). Every problem with the file raises ``UBFInputError(path, ...)``. :func:`read_mat_raw` is the
.mat reader of :func:`ubf_core.io.hsi.read_hsi`: a data set's cube as a :class:`~ubf_core.io.cube.RawCube`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ubf_core.errors import UBFInputError, describe_error
from ubf_core.io.cube import RawCube
from ubf_core.io.source import HSISource

_MATLAB_CLASS_DTYPES = {"double": "float64", "single": "float32", "int8": "int8", "uint8": "uint8",
                        "int16": "int16", "uint16": "uint16", "int32": "int32", "uint32": "uint32",
                        "int64": "int64", "uint64": "uint64", "logical": "bool"}
_H5_SKIP = ("#refs#", "#subsystem#")


def _header(path: Path) -> bytes:
    if not path.exists():
        raise UBFInputError(path, "file not found")
    if path.is_dir():
        raise UBFInputError(path, "is a folder, expected a .mat file")
    try:
        with open(path, "rb") as fh:
            return fh.read(128)
    except OSError as err:
        raise UBFInputError(path, f"cannot open the file ({describe_error(err)})") from None


def mat_version(path: str | Path) -> str:
    """``"mat-v5"`` (MATLAB v4/v5/v6/v7, read by scipy) or ``"mat-v7.3"`` (HDF5); checks the file is complete."""
    path = Path(path)
    head = _header(path)
    if not head:
        raise UBFInputError(path, "empty file (0 bytes), expected a MATLAB .mat file")
    import h5py

    try:
        is_h5 = h5py.is_hdf5(str(path))
    except Exception:  # noqa: BLE001 - a file h5py cannot even probe is simply not HDF5
        is_h5 = False
    if is_h5:
        return "mat-v7.3"
    if head.startswith(b"MATLAB 7.3"):
        raise UBFInputError(path, "a MATLAB v7.3 (HDF5) file that HDF5 cannot read: truncated or damaged")
    if head.startswith(b"MATLAB 5.0") and len(head) == 128:
        _check_v5_complete(path, head)
    return "mat-v5"


def _check_v5_complete(path: Path, head: bytes) -> None:
    """Walk the top-level data elements of a v5 file: a variable that runs past the end means a truncated file."""
    endian = {b"IM": "<", b"MI": ">"}.get(head[126:128])
    if endian is None:
        raise UBFInputError(path, "damaged MAT-file header (no byte-order mark)")
    size = path.stat().st_size
    pos, k = 128, 0
    with open(path, "rb") as fh:
        while pos + 8 <= size:
            fh.seek(pos)
            dtype, nbytes = struct.unpack(endian + "II", fh.read(8))
            k += 1
            end = pos + 8 + nbytes
            if end > size:
                raise UBFInputError(path, f"truncated .mat file: variable #{k} needs {end - size} bytes more than "
                                          f"the file has ({size} bytes)")
            pos = end if dtype == 15 or nbytes % 8 == 0 else end + 8 - nbytes % 8  # 15 = miCOMPRESSED, unpadded


def read_mat_variables(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """What a .mat file holds: ``{name: (shape, dtype)}`` in MATLAB's axis order, v5 or v7.3.

    ``dtype`` is a numpy dtype name for numeric arrays (``"float64"``, ``"uint16"``, ``"bool"``) and the MATLAB class
    for the rest (``"struct"``, ``"cell"``, ``"char"``, ...).
    """
    path = Path(path)
    version = mat_version(path)
    if version == "mat-v7.3":
        return _h5_variables(path)
    import scipy.io

    try:
        listing = scipy.io.whosmat(str(path))
    except NotImplementedError:
        return _h5_variables(path)
    except Exception as err:  # noqa: BLE001 - scipy raises many types for damaged files
        raise _not_readable(path, err) from None
    return {name: (tuple(int(s) for s in shape), _MATLAB_CLASS_DTYPES.get(cls, cls)) for name, shape, cls in listing}


def _not_readable(path: Path, err: BaseException) -> UBFInputError:
    head = b""
    try:
        with open(path, "rb") as fh:
            head = fh.read(20)
    except OSError:
        pass
    if not head.startswith(b"MATLAB"):
        return UBFInputError(path, f"not a MATLAB .mat file (no 'MATLAB 5.0 MAT-file' header and not readable as "
                                   f"a version-4 file: {describe_error(err)})")
    return UBFInputError(path, f"cannot read the .mat file, truncated or damaged ({describe_error(err)})")


def _h5_open(path: Path):
    import h5py

    try:
        return h5py.File(str(path), "r")
    except Exception as err:  # noqa: BLE001
        raise UBFInputError(path, f"cannot open the MATLAB v7.3 (HDF5) file, truncated or damaged "
                                  f"({describe_error(err)})") from None


def _h5_variables(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    import h5py

    out: dict[str, tuple[tuple[int, ...], str]] = {}
    with _h5_open(path) as f:
        try:
            for name, obj in f.items():
                if name in _H5_SKIP:
                    continue
                cls = obj.attrs.get("MATLAB_class", b"")
                cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                if isinstance(obj, h5py.Group):
                    out[name] = ((1, 1), cls or "struct")
                else:
                    shape = tuple(int(s) for s in obj.shape[::-1])
                    if obj.attrs.get("MATLAB_empty", 0):
                        shape = (0, 0)
                    out[name] = (shape, _MATLAB_CLASS_DTYPES.get(cls, cls or str(obj.dtype)))
        except Exception as err:  # noqa: BLE001
            raise UBFInputError(path, f"cannot list the MATLAB v7.3 file, damaged ({describe_error(err)})") from None
    return out


def _listing(path: Path) -> str:
    try:
        listing = read_mat_variables(path)
    except UBFInputError:
        return "(its variables cannot be listed)"
    if not listing:
        return "nothing"
    return ", ".join(f"{n} ({'×'.join(map(str, s))} {d})" for n, (s, d) in listing.items())


def _missing(path: Path, name: str, purpose: str) -> UBFInputError:
    return UBFInputError(path, f"no variable {name!r} ({purpose}); the file holds: {_listing(path)}")


def _numeric(path: Path, name: str, value, purpose: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.names:
        raise UBFInputError(path, f"variable {name!r} ({purpose}) is a struct with fields "
                                  f"{', '.join(arr.dtype.names)}; name a field as {name}.<field>")
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind not in "iuf":
        what = {"O": "a cell array", "U": "text", "S": "text", "c": "a complex array"}.get(arr.dtype.kind,
                                                                                           str(arr.dtype))
        raise UBFInputError(path, f"variable {name!r} ({purpose}) is {what}, expected a numeric array")
    return arr


def load_mat_arrays(path: str | Path, names: dict[str, str]) -> tuple[dict[str, np.ndarray], str]:
    """Load numeric variables ``{name: purpose}`` (purpose is used in messages, e.g. "the data cube").

    Returns ``({name: array in MATLAB axis order}, version)``; only the needed variables are read. A missing
    variable raises ``UBFInputError(path, "no variable 'x' (...); the file holds: ...")``.
    """
    path = Path(path)
    version = mat_version(path)
    if version == "mat-v5":
        import scipy.io

        tops = sorted({n.split(".")[0] for n in names})
        try:
            raw = scipy.io.loadmat(str(path), variable_names=tops)
        except NotImplementedError:
            version = "mat-v7.3"
        except MemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - scipy raises many types for damaged files
            raise _not_readable(path, err) from None
        else:
            out = {}
            for name, purpose in names.items():
                top, *parts = name.split(".")
                if top not in raw:
                    raise _missing(path, top, purpose)
                value = raw[top]
                for i, part in enumerate(parts):
                    arr = np.asarray(value)
                    if not arr.dtype.names:
                        raise UBFInputError(path, f"{'.'.join([top, *parts[:i]])!r} is not a struct, so it has no "
                                                  f"field {part!r} ({purpose})")
                    if part not in arr.dtype.names:
                        raise UBFInputError(path, f"struct {'.'.join([top, *parts[:i]])!r} has no field {part!r} "
                                                  f"({purpose}); its fields: {', '.join(arr.dtype.names)}")
                    if arr.size != 1:
                        raise UBFInputError(path, f"{'.'.join([top, *parts[:i]])!r} is a {arr.size}-element struct "
                                                  f"array; expected a single struct")
                    value = arr.flat[0][part]
                    if isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
                        value = value.flat[0]
                out[name] = _numeric(path, name, value, purpose)
            return out, version
    return _h5_load(path, names), version


def _h5_load(path: Path, names: dict[str, str]) -> dict[str, np.ndarray]:
    import h5py

    out = {}
    with _h5_open(path) as f:
        for name, purpose in names.items():
            top, *parts = name.split(".")
            if top not in f or top in _H5_SKIP:
                raise _missing(path, top, purpose)
            obj = f[top]
            for i, part in enumerate(parts):
                where = ".".join([top, *parts[:i]])
                if not isinstance(obj, h5py.Group):
                    raise UBFInputError(path, f"{where!r} is not a struct, so it has no field {part!r} ({purpose})")
                if part not in obj:
                    raise UBFInputError(path, f"struct {where!r} has no field {part!r} ({purpose}); its fields: "
                                              f"{', '.join(obj.keys())}")
                obj = obj[part]
            if isinstance(obj, h5py.Group):
                raise UBFInputError(path, f"variable {name!r} ({purpose}) is a struct with fields "
                                          f"{', '.join(obj.keys())}; name a field as {name}.<field>")
            cls = obj.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            if cls in ("cell", "char", "function_handle") or obj.dtype.kind in "OV" or obj.dtype.names:
                raise UBFInputError(path, f"variable {name!r} ({purpose}) is a MATLAB {cls or obj.dtype} value, "
                                          f"expected a numeric array")
            try:
                arr = np.asarray(obj[()])
            except Exception as err:  # noqa: BLE001
                raise UBFInputError(path, f"cannot read variable {name!r}, truncated or damaged "
                                          f"({describe_error(err)})") from None
            arr = arr.T  # h5py shows MATLAB's axes reversed
            if cls == "logical":
                arr = arr.astype(bool)
            out[name] = _numeric(path, name, arr, purpose)
    return out


# ---------------------------------------------------------------------------------------------- a data set's cube

def read_mat_raw(source: HSISource) -> RawCube:
    """The cube of a .mat data set (its ``variable``, ``layout``, ``rows``/``cols``, ``order``) and the variables its
    spectral specs name, for :func:`ubf_core.io.hsi.assemble`."""
    path = source.path
    needed: dict[str, str] = {}
    variable = source.variable
    if variable is None:
        listing = read_mat_variables(path)
        want = 2 if source.layout == "pixel_major" else 3
        cands = [n for n, (s, d) in listing.items() if len(s) == want and d not in ("struct", "cell", "char")]
        if len(cands) != 1:
            raise UBFInputError(path, f"which variable is the cube? the file holds: {_listing(path)}",
                                "set `variable:` (the cube)", key="variable")
        variable = cands[0]
    needed[variable] = "the data cube"
    for key in ("rows", "cols"):
        if isinstance(getattr(source, key), str):
            needed.setdefault(getattr(source, key), f"`{key}`")
    for spec in (source.wavelengths, source.fwhm):
        if spec is not None:
            if spec.kind == "variable":
                needed.setdefault(spec.variable, f"the {spec.key}")
            if spec.indices_variable:
                needed.setdefault(spec.indices_variable, f"the {spec.key} table indices")
    if source.bad_bands is not None and source.bad_bands.variable:
        needed.setdefault(source.bad_bands.variable, "the bad-band list")
    arrays, version = load_mat_arrays(path, needed)
    cube = arrays[variable]
    if cube.dtype.kind == "b":
        raise UBFInputError(path, f"variable {variable!r} is logical (true/false), expected reflectance values")
    shape = "×".join(map(str, cube.shape))
    if source.layout in ("HWC", "CHW"):
        if cube.ndim != 3:
            hint = " (for a bands×pixels matrix use layout: pixel_major with rows and cols)" if cube.ndim == 2 else ""
            raise UBFInputError(path, f"variable {variable!r} has shape {shape}; layout {source.layout} needs a 3-D "
                                      f"array{hint}")
        data = np.moveaxis(cube, 2, 0) if source.layout == "HWC" else cube
    else:
        if cube.ndim != 2:
            raise UBFInputError(path, f"variable {variable!r} has shape {shape}; layout pixel_major needs a 2-D "
                                      f"bands×pixels array")
        dims = []
        for key in ("rows", "cols"):
            value = getattr(source, key)
            if isinstance(value, str):
                arr = np.asarray(arrays[value]).reshape(-1)
                if arr.size != 1 or not np.isfinite(arr[0]) or arr[0] != round(float(arr[0])) or arr[0] < 1:
                    raise UBFInputError(path, f"variable {value!r} (`{key}`) must be one positive whole number, "
                                              f"got {arr[:4].tolist()}")
                value = int(arr[0])
            dims.append(value)
        rows, cols = dims
        n_bands, n_pix = cube.shape
        if rows * cols != n_pix:
            raise UBFInputError(path, f"variable {variable!r} has {n_pix} pixels per band, but rows × cols = "
                                      f"{rows} × {cols} = {rows * cols}")
        if source.order == "F":
            data = cube.reshape(n_bands, cols, rows).transpose(0, 2, 1)
        else:
            data = cube.reshape(n_bands, rows, cols)
    return RawCube(data=data, format=version, variables=arrays)
