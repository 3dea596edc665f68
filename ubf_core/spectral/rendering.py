"""Three-band inputs from an aligned cube: band selection, and rendering through CIE 1931 or a camera."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.spectral.cube import cube_parts, format_range, spatial_coords
from ubf_core.spectral.response import local_spacing


def select_bands(cube: xr.DataArray, wavelengths_nm: Sequence[float] = (650.0, 550.0, 450.0)) -> xr.DataArray:
    """Pick the band nearest to each requested wavelength (R, G, B).

    Parameters
    ----------
    cube : xr.DataArray (wavelength, y, x)
        An aligned cube (``wavelength`` in nm; ``fwhm`` optional; bands marked ``bad_band`` are never picked).
    wavelengths_nm : three floats
        Requested centres (nm) for R, G, B.

    Returns
    -------
    xr.DataArray (channel, y, x)
        Same dtype as the cube; ``channel`` = ["R", "G", "B"], ``wavelength`` (nm) along channel = the selected band
        centres.

    Raises
    ------
    UBFInputError
        A requested wavelength farther than 2 x FWHM (or 2 x local spacing without fwhm) from every band.
    """
    name = str(cube.attrs.get("source", "cube")) if isinstance(cube, xr.DataArray) else "cube"
    cube, wl, fwhm, good = cube_parts(cube, name)
    req = [float(w) for w in wavelengths_nm]
    if len(req) != 3:
        raise UBFInputError(name, f"select_bands needs three wavelengths (R, G, B), got {len(req)}")
    width = fwhm if fwhm is not None else local_spacing(wl)
    width = np.where(np.isfinite(width) & (width > 0), width, local_spacing(wl))
    cand = np.flatnonzero(good)
    idx = []
    for ch, w in zip("RGB", req):
        k = cand[int(np.argmin(np.abs(wl[cand] - w)))]
        if abs(wl[k] - w) > 2.0 * width[k]:
            raise UBFInputError(name, f"no band near {w:g} nm for {ch} (nearest {wl[k]:.1f} nm, more than "
                                      f"2 x {width[k]:.2f} nm away)")
        idx.append(int(k))
    data = np.asarray(cube.data)[idx]
    coords = spatial_coords(cube)
    coords["channel"] = ("channel", ["R", "G", "B"])
    coords["wavelength"] = ("channel", wl[idx], {"units": "nm"})
    if fwhm is not None:
        coords["fwhm"] = ("channel", fwhm[idx], {"units": "nm"})
    attrs = dict(cube.attrs)
    attrs["bands"] = "R, G, B = bands " + ", ".join(f"{i} ({wl[i]:.1f} nm)" for i in idx)
    return xr.DataArray(data, dims=("channel", "y", "x"), coords=coords, attrs=attrs, name=cube.name)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise UBFInputError(path, "file not found")
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise UBFInputError(path, f"cannot read ({err.strerror or err})") from None


def load_cie1931(path: str | Path) -> xr.DataArray:
    """Read the CIE 1931 2° colour-matching functions.

    Parameters
    ----------
    path : str or Path
        CSV ``nm,X,Y,Z`` (header optional), e.g. 380-780 nm at 1 nm.

    Returns
    -------
    xr.DataArray (wavelength, xyz), float64
        ``wavelength`` in nm, ``xyz`` = ["X", "Y", "Z"].
    """
    path = Path(path)
    rows: list[list[float]] = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if not line.strip():
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if not rows and [f.lower() for f in fields] == ["nm", "x", "y", "z"]:
                continue
            raise UBFInputError(path, f"line {n}: expected four numbers nm,X,Y,Z (or the header nm,X,Y,Z)") from None
        if len(values) != 4:
            raise UBFInputError(path, f"line {n}: expected four columns nm,X,Y,Z, got {len(values)}")
        rows.append(values)
    if len(rows) < 2:
        raise UBFInputError(path, "fewer than two rows of colour-matching functions")
    arr = np.asarray(rows)
    if not np.all(np.isfinite(arr)) or np.any(np.diff(arr[:, 0]) <= 0):
        raise UBFInputError(path, "wavelengths must increase and every value must be finite")
    return xr.DataArray(arr[:, 1:], dims=("wavelength", "xyz"),
                        coords={"wavelength": ("wavelength", arr[:, 0], {"units": "nm"}), "xyz": ["X", "Y", "Z"]},
                        attrs={"kind": "cie1931", "source": "CIE 1931 2° standard observer", "path": str(path)},
                        name="cmf")


def _parse_camspec(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Parse the camspec database: (wavelengths (nm), {camera: array (3, n) of R, G, B rows})."""
    lines = _read_text(path).splitlines()
    start, stop, step = 400.0, 720.0, 10.0
    body = None
    for n, line in enumerate(lines):
        m = re.search(r"(\d+(?:\.\d+)?)\s*nm\s*-\s*(\d+(?:\.\d+)?)\s*nm\s*,\s*step\s*(\d+(?:\.\d+)?)\s*nm", line, re.I)
        if m:
            start, stop, step = (float(g) for g in m.groups())
        if re.fullmatch(r"\s*-{3,}\s*", line):
            body = n + 1
            break
    if body is None:
        raise UBFInputError(path, "no dashed line ending the header; not a camspec database file")
    wl = np.arange(start, stop + 0.5 * step, step)
    cameras: dict[str, np.ndarray] = {}
    n = body
    while n < len(lines):
        if not lines[n].strip():
            n += 1
            continue
        cam = " ".join(lines[n].split())
        rows = []
        for ch in "RGB":
            n += 1
            fields = [f for f in (lines[n].split("\t") if n < len(lines) else []) if f.strip()]
            try:
                values = [float(f) for f in fields]
            except ValueError:
                values = []
            if len(values) != wl.size:
                raise UBFInputError(path, f"line {n + 1}: expected {wl.size} tab-separated numbers for camera "
                                          f"{cam!r} ({ch}), got {len(fields)} fields")
            rows.append(values)
        cameras[cam] = np.asarray(rows)
        n += 1
    if not cameras:
        raise UBFInputError(path, "no cameras in the database")
    return wl, cameras


def list_cameras(path: str | Path) -> list[str]:
    """Camera names in a camspec database file, in file order.

    Parameters
    ----------
    path : str or Path
        The camspec database text file.

    Returns
    -------
    list of str
    """
    return list(_parse_camspec(Path(path))[1])


def load_camera_response(path: str | Path, camera: str) -> xr.DataArray:
    """Read one camera's spectral sensitivities from the camspec database.

    Parameters
    ----------
    path : str or Path
        The camspec database text file (400-720 nm every 10 nm).
    camera : str
        Camera name as listed (case and repeated spaces do not matter), e.g. "Canon 5DMarkII".

    Returns
    -------
    xr.DataArray (wavelength, channel), float64
        ``wavelength`` in nm, ``channel`` = ["R", "G", "B"]; attrs ``camera``.
    """
    path = Path(path)
    wl, cameras = _parse_camspec(path)
    key = " ".join(str(camera).split()).lower()
    match = [c for c in cameras if c.lower() == key]
    if not match:
        raise UBFInputError(path, f"camera {camera!r} not in the database; known: {', '.join(cameras)}")
    cam = match[0]
    return xr.DataArray(cameras[cam].T, dims=("wavelength", "channel"),
                        coords={"wavelength": ("wavelength", wl, {"units": "nm"}), "channel": ["R", "G", "B"]},
                        attrs={"kind": "camera", "camera": cam, "source": "camspec database", "path": str(path)},
                        name="camera_response")


# IEC 61966-2-1 (sRGB, D65): CIE XYZ -> linear sRGB.
XYZ_TO_LINEAR_SRGB = np.array([[3.2406, -1.5372, -0.4986],
                               [-0.9689, 1.8758, 0.0415],
                               [0.0557, -0.2040, 1.0570]])


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) for linear values in [0, 1]; any shape, same shape out."""
    x = np.asarray(linear)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1.0 / 2.4) - 0.055)


def _response_kind(response: xr.DataArray, kind: str | None, where: str) -> tuple[str, str]:
    """Check ``response`` and ``kind``; return (kind, the response's second dim: "xyz" or "channel")."""
    if not isinstance(response, xr.DataArray) or response.ndim != 2 or "wavelength" not in response.dims:
        raise UBFInputError(where, "response must be a 2-D DataArray with a `wavelength` dim "
                                   "(load_cie1931 / load_camera_response)")
    inferred = "cie1931" if "xyz" in response.dims else ("camera" if "channel" in response.dims else None)
    kind = kind or inferred
    if kind not in ("cie1931", "camera"):
        raise UBFInputError(where, f"kind must be 'cie1931' or 'camera', got {kind!r}")
    expected_dim = "xyz" if kind == "cie1931" else "channel"
    if expected_dim not in response.dims or response.sizes[expected_dim] != 3:
        raise UBFInputError(where, f"a {kind} response needs dims ('wavelength', '{expected_dim}') with 3 entries, "
                                   f"got {dict(response.sizes)}")
    return kind, expected_dim


def _rgb_matrix(wg: np.ndarray, response: xr.DataArray, kind: str, expected_dim: str, where: str) -> np.ndarray:
    """The white-balanced linear rendering matrix (3, n) over the band centres ``wg`` (nm, non-decreasing)."""
    resp = response.transpose("wavelength", expected_dim)
    r_wl = np.asarray(resp["wavelength"].values, dtype=np.float64)
    r_val = np.asarray(resp.values, dtype=np.float64)
    order = np.argsort(r_wl)
    r_wl, r_val = r_wl[order], r_val[order]
    dl = local_spacing(wg) if wg.size > 1 else np.ones(1)
    sampled = np.stack([np.interp(wg, r_wl, r_val[:, k], left=0.0, right=0.0) for k in range(3)])  # (3, n_good)
    A = sampled * dl[None, :]                                    # (3, n_good): spectrum -> XYZ or camera RGB
    if kind == "cie1931":
        A = XYZ_TO_LINEAR_SRGB @ A                               # -> linear sRGB
    white = A.sum(axis=1)                                        # linear RGB of a flat unit reflectance
    if np.any(white <= 0):
        raise UBFInputError(where, f"the {kind} response gives no signal over the cube's bands "
                                   f"({format_range(wg[0], wg[-1])}); cannot white-balance")
    return A / white[:, None]


def linear_rgb_matrix(wavelength_nm, response: xr.DataArray, *, kind: str | None = None,
                      where: str = "rendering") -> np.ndarray:
    """The matrix that :func:`render_rgb` applies before clipping: linear, white-balanced RGB = ``M @ spectrum``.

    Parameters
    ----------
    wavelength_nm : array (C,)
        Band centres (nm), non-decreasing, all of them used (no bad bands).
    response : xr.DataArray (wavelength, xyz) or (wavelength, channel)
        From :func:`load_cie1931` or :func:`load_camera_response`.
    kind : "cie1931" or "camera", optional
        Default: from the response's dims.
    where : str
        What an error names (a data set or param).

    Returns
    -------
    np.ndarray, float64, shape (3, C)
        Rows R, G, B; each row sums to 1 (a flat unit reflectance renders as (1, 1, 1)). Not clipped: a saturated
        spectrum can give a negative linear sRGB value, which :func:`render_rgb` clips to 0.
    """
    wl = np.asarray(wavelength_nm, dtype=np.float64).ravel()
    if wl.size == 0 or not np.all(np.isfinite(wl)) or np.any(np.diff(wl) < 0):
        raise UBFInputError(where, "wavelengths (nm) must be finite, non-decreasing and at least one")
    kind, expected_dim = _response_kind(response, kind, where)
    return _rgb_matrix(wl, response, kind, expected_dim, where)


def render_rgb(cube: xr.DataArray, response: xr.DataArray, *, kind: str | None = None,
               encoding: str = "srgb") -> xr.DataArray:
    """Render a cube to RGB through CIE 1931 colour-matching functions or a camera's sensitivities.

    The response is interpolated linearly onto the cube's good band centres (zero outside its range) and
    integrated with the local band spacing Δλ. ``cie1931``: XYZ = Σ cmf·r·Δλ, then the IEC 61966-2-1 (D65) matrix to
    linear sRGB; ``camera``: the camera RGB. Each linear channel is divided by its value for a flat unit reflectance
    (white balance: flat v renders as (v, v, v) linear), clipped to [0, 1], then sRGB-encoded if asked.

    Parameters
    ----------
    cube : xr.DataArray (wavelength, y, x)
        Reflectance, ``wavelength`` in nm.
    response : xr.DataArray (wavelength, xyz) or (wavelength, channel)
        From :func:`load_cie1931` or :func:`load_camera_response`.
    kind : "cie1931" or "camera", optional
        Default: from the response's dims ("xyz" -> cie1931, "channel" -> camera).
    encoding : "srgb" or "linear"

    Returns
    -------
    xr.DataArray (channel, y, x), float32 in [0, 1]
        ``channel`` = ["R", "G", "B"]; NaN pixels stay NaN; attrs ``rendering`` says what was done.
    """
    name = str(cube.attrs.get("source", "cube")) if isinstance(cube, xr.DataArray) else "cube"
    kind, expected_dim = _response_kind(response, kind, name)
    if encoding not in ("srgb", "linear"):
        raise UBFInputError(name, f"encoding must be 'srgb' or 'linear', got {encoding!r}")
    cube, wl, _, good = cube_parts(cube, name)
    idx = np.flatnonzero(good)
    wg = wl[idx]
    A = _rgb_matrix(wg, response, kind, expected_dim, name)

    data = np.asarray(cube.data)[idx]
    ny, nx = data.shape[1:]
    rgb = (A.astype(np.float32) @ data.reshape(idx.size, ny * nx).astype(np.float32, copy=False)).reshape(3, ny, nx)
    rgb = np.clip(rgb, 0.0, 1.0)
    if encoding == "srgb":
        rgb = srgb_encode(rgb)
    if kind == "cie1931":
        how = ("CIE 1931 2° observer: XYZ = Σ cmf·r·Δλ, XYZ -> linear sRGB (IEC 61966-2-1, D65)")
    else:
        how = f"camera {response.attrs.get('camera', '?')!r} RGB = Σ s·r·Δλ"
    how += (f" over {idx.size} bands {format_range(wg[0], wg[-1])}; white-balanced to a flat unit reflectance; "
            f"clipped to [0, 1]; " + ("sRGB transfer function" if encoding == "srgb" else "linear"))
    coords = spatial_coords(cube)
    coords["channel"] = ("channel", ["R", "G", "B"])
    attrs = dict(cube.attrs)
    attrs["rendering"] = how
    return xr.DataArray(rgb.astype(np.float32, copy=False), dims=("channel", "y", "x"), coords=coords, attrs=attrs,
                        name=cube.name)
