"""What params.yaml says about one hyperspectral data set: :class:`HSISource` and its spectral-axis specs.

A data set is described by a mapping (one entry of params.yaml's data sets)::

    path: data/hsi/abu/abu-airport-1.mat   # a file, or (cave) a folder
    format: mat              # mat | geotiff | envi | cave; default from the path (see below)
    variable: data           # .mat only: the array variable
    layout: HWC              # .mat only: HWC (default) | CHW | pixel_major (bands x pixels)
    rows: nRow               # pixel_major only: an int, or the name of a scalar variable in the file
    cols: nCol
    order: F                 # pixel_major only: order of the pixels in N: F (column-major, MATLAB; default) or C
    wavelengths: {...}       # band centres; see below (GeoTIFF/ENVI/CAVE files may supply their own)
    fwhm: {...}              # optional band widths; same forms as wavelengths, or {value: 10}
    bad_bands: [107, 108]    # 0-based band indices in the file's band order, or {variable: bbl, bad_value: 0}
    scale: 1.0e-4            # DN -> reflectance factor (default 1.0; CAVE: 1/65535 for 16-bit, 1/255 for 8-bit)
    nodata: -1.23e34         # optional sentinel (raw units) that becomes NaN
    units: reflectance       # reflectance | radiance: what the values are (required by prepare_hsi, see below)
    sensor: aviris           # radiance only (required there): the sensor group that shares one solar-atmosphere
                             # factor t in the unmixing decoder (any name; all radiance data sets of it share t)
    cite: "..."              # optional free text (citation), kept but not used by the reader
    description: "..."       # optional free text

``units`` says whether the scaled values are surface reflectance or at-sensor radiance (ABU: radiance × 1e-4).
The reader does not need it, so :meth:`HSISource.from_params` accepts an entry without it, but preparing a store
does (:func:`require_units`): every data set of params.yaml declares it. ``sensor`` names the radiance data sets
that share one per-wavelength solar–atmosphere factor t (``ubf_core.unmixing.network``): the simplest grouping,
one t per sensor name, chosen by the person who knows the data sets (ABU: ``aviris``).

Default format from the path: ``.mat`` -> mat, ``.tif``/``.tiff`` -> geotiff, ``.hdr`` (or ``.img``, ``.dat``,
``.raw``, ``.bsq``, ``.bil``, ``.bip``, ``.bin`` with a ``.hdr`` beside) -> envi, a folder (or a name without a suffix)
-> cave.

Spectral-axis spec (``wavelengths:`` and ``fwhm:``), exactly one source:

- ``variable: wl`` with ``unit: um | nm``: a variable of the .mat file with one non-singleton axis. A struct field is
  named with a dot: ``variable: params.fwhm`` (MATLAB names cannot contain dots). Without ``unit`` the unit is guessed:
  for wavelengths µm when every value is < 30, for fwhm µm when every value is < 1; the guess is stated in
  ``attrs["wavelength_source"]``.
- ``linspace: [start, stop, num]`` (nm), as numpy.linspace.
- ``values: [450, 550, 650]`` (nm). A plain list instead of a mapping means the same.
- ``table: path`` (a .mat file, variable ``table_variable`` (may be omitted when the file holds one numeric
  variable), column ``column`` (default 0) of a 2-D table; or a text file, numbers in column ``column``, leading
  non-numeric header lines skipped), with at most one of ``indices_variable: SlectBands`` (a variable of the data
  file), ``indices: [4, 5, 6]`` or ``first_n: true`` (bands are table bands 1..n, n = band count of the data).
  ``index_base`` (0 or 1, default 1) says how ``indices``/``indices_variable`` count. Without indices the whole table.
- ``value: 10`` (fwhm only): the same width for every band.
- none of these, only ``sort``/``unit``/``slice`` (GeoTIFF, ENVI, CAVE): the list the file itself gives, modified.

Modifiers: ``unit`` (um | nm; for table/values/linspace default nm), ``slice: [start, stop]`` (python slice of the
built list, before it is matched to the band count), ``sort: true`` (wavelengths only: reorder the bands, fwhm and
bad_band by wavelength; needed for AVIRIS, whose spectrometers overlap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ubf_core.errors import UBFInputError
from ubf_core.units import UNITS

FORMATS = ("mat", "geotiff", "envi", "cave")
LAYOUTS = ("HWC", "CHW", "pixel_major")
ENVI_DATA_SUFFIXES = (".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".bin")

_SOURCE_KEYS = ("path", "format", "variable", "layout", "rows", "cols", "order", "wavelengths", "fwhm",
                "bad_bands", "scale", "nodata", "units", "sensor", "cite", "description")
_AXIS_SOURCES = ("variable", "linspace", "values", "table", "value")
_AXIS_KEYS = ("variable", "unit", "linspace", "values", "table", "table_variable", "column", "indices_variable",
              "indices", "first_n", "index_base", "slice", "sort", "value")
_TABLE_ONLY = ("table_variable", "column", "indices_variable", "indices", "first_n", "index_base")
UNIT_NAMES = {"um": "um", "µm": "um", "μm": "um", "micrometer": "um", "micrometers": "um", "micron": "um",
              "microns": "um", "nm": "nm", "nanometer": "nm", "nanometers": "nm"}   # unit spellings → "um" | "nm"


def _number(where: str, what: str, value: Any) -> float:
    """A finite real number; numeric strings are accepted (YAML 1.1 reads ``1e-4`` as a string)."""
    if isinstance(value, bool):
        raise UBFInputError(where, f"{what} must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UBFInputError(where, f"{what} must be a number, got {value!r}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise UBFInputError(where, f"{what} must be a finite number, got {value!r}")
    return float(value)


def _integer(where: str, what: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise UBFInputError(where, f"{what} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise UBFInputError(where, f"{what} must be >= {minimum}, got {value}")
    return int(value)


def _name(where: str, what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UBFInputError(where, f"{what} must be a variable name (text), got {value!r}")
    return value.strip()


def _bool(where: str, what: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UBFInputError(where, f"{what} must be true or false, got {value!r}")
    return value


def _resolve(path: Any, base_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


@dataclass(frozen=True)
class AxisSpec:
    """A parsed ``wavelengths:`` or ``fwhm:`` entry (see the module docstring). Values are in nm unless ``unit``."""

    key: str                                   # "wavelengths" or "fwhm"
    kind: str                                  # variable | linspace | values | table | value | file
    variable: str | None = None
    unit: str | None = None                    # "um" | "nm" | None (guess, variable/table only)
    linspace: tuple[float, float, int] | None = None
    values: tuple[float, ...] | None = None
    value: float | None = None
    table: Path | None = None
    table_label: str | None = None             # the table path as written in the spec (for messages)
    table_variable: str | None = None
    column: int = 0
    indices_variable: str | None = None
    indices: tuple[int, ...] | None = None
    first_n: bool = False
    index_base: int = 1
    slice: tuple[int | None, ...] | None = None
    sort: bool = False

    @classmethod
    def parse(cls, where: str, key: str, spec: Any, base_dir: Path | None = None) -> AxisSpec:
        """Check and normalise one spec mapping; ``where`` (the data-set name) goes into error messages."""
        if isinstance(spec, AxisSpec):
            return spec
        if isinstance(spec, (list, tuple)):
            spec = {"values": list(spec)}
        if not isinstance(spec, dict):
            raise UBFInputError(where, f"`{key}` must be a mapping (variable/linspace/values/table...), got {spec!r}")
        unknown = sorted(set(spec) - set(_AXIS_KEYS))
        if unknown:
            raise UBFInputError(where, f"unknown key {', '.join(map(repr, unknown))} in `{key}`; "
                                       f"allowed: {', '.join(_AXIS_KEYS)}")
        sources = [k for k in _AXIS_SOURCES if k in spec]
        if not sources and spec and set(spec) <= {"sort", "unit", "slice"}:
            sources = ["file"]  # the file's own list (GeoTIFF/ENVI/CAVE), e.g. {sort: true}
        if len(sources) != 1:
            raise UBFInputError(where, f"`{key}` needs exactly one of variable, linspace, values, table"
                                       f"{', value' if key == 'fwhm' else ''}; got "
                                       f"{', '.join(sources) if sources else 'none'}")
        kind = sources[0]
        if kind == "value" and key != "fwhm":
            raise UBFInputError(where, f"`{key}: value:` (one number for every band) is only for fwhm")
        if "sort" in spec and key != "wavelengths":
            raise UBFInputError(where, f"`sort` belongs in `wavelengths`, not `{key}` (fwhm follows the wavelengths)")
        if kind != "table":
            extra = [k for k in _TABLE_ONLY if k in spec]
            if extra:
                raise UBFInputError(where, f"`{key}`: {', '.join(extra)} only go with `table`")
        w = f"{key}"
        args: dict[str, Any] = {"key": key, "kind": kind}
        if "unit" in spec:
            unit = UNIT_NAMES.get(str(spec["unit"]).strip().lower())
            if unit is None:
                raise UBFInputError(where, f"`{w}: unit` must be um or nm, got {spec['unit']!r}")
            args["unit"] = unit
        if kind == "variable":
            args["variable"] = _name(where, f"`{w}: variable`", spec["variable"])
        elif kind == "linspace":
            ls = spec["linspace"]
            if not isinstance(ls, (list, tuple)) or len(ls) != 3:
                raise UBFInputError(where, f"`{w}: linspace` must be [start, stop, count], got {ls!r}")
            args["linspace"] = (_number(where, f"`{w}: linspace` start", ls[0]),
                                _number(where, f"`{w}: linspace` stop", ls[1]),
                                _integer(where, f"`{w}: linspace` count", ls[2], minimum=1))
        elif kind == "values":
            vals = spec["values"]
            if not isinstance(vals, (list, tuple)) or not vals:
                raise UBFInputError(where, f"`{w}: values` must be a non-empty list of numbers, got {vals!r}")
            args["values"] = tuple(_number(where, f"`{w}: values` entry", v) for v in vals)
        elif kind == "value":
            v = _number(where, f"`{w}: value`", spec["value"])
            if v <= 0:
                raise UBFInputError(where, f"`{w}: value` must be > 0, got {v}")
            args["value"] = v
        elif kind == "table":
            t = spec["table"]
            if not isinstance(t, (str, Path)) or not str(t).strip():
                raise UBFInputError(where, f"`{w}: table` must be a file path, got {t!r}")
            args["table"] = _resolve(t, base_dir)
            args["table_label"] = str(t)
            if "table_variable" in spec:
                args["table_variable"] = _name(where, f"`{w}: table_variable`", spec["table_variable"])
            if "column" in spec:
                args["column"] = _integer(where, f"`{w}: column`", spec["column"], minimum=0)
            picks = [k for k in ("indices_variable", "indices", "first_n") if k in spec]
            if len(picks) > 1:
                raise UBFInputError(where, f"`{w}`: give only one of indices_variable, indices, first_n; "
                                           f"got {', '.join(picks)}")
            if "indices_variable" in spec:
                args["indices_variable"] = _name(where, f"`{w}: indices_variable`", spec["indices_variable"])
            if "indices" in spec:
                idx = spec["indices"]
                if not isinstance(idx, (list, tuple)) or not idx:
                    raise UBFInputError(where, f"`{w}: indices` must be a non-empty list of integers, got {idx!r}")
                args["indices"] = tuple(_integer(where, f"`{w}: indices` entry", i, minimum=0) for i in idx)
            if "first_n" in spec:
                if not _bool(where, f"`{w}: first_n`", spec["first_n"]):
                    raise UBFInputError(where, f"`{w}: first_n` can only be true (leave it out otherwise)")
                args["first_n"] = True
            if "index_base" in spec:
                if not ("indices" in spec or "indices_variable" in spec):
                    raise UBFInputError(where, f"`{w}: index_base` only goes with indices or indices_variable")
                base = _integer(where, f"`{w}: index_base`", spec["index_base"])
                if base not in (0, 1):
                    raise UBFInputError(where, f"`{w}: index_base` must be 0 or 1, got {base}")
                args["index_base"] = base
        if "slice" in spec:
            sl = spec["slice"]
            if not isinstance(sl, (list, tuple)) or not 1 <= len(sl) <= 3:
                raise UBFInputError(where, f"`{w}: slice` must be [start, stop] (python slice), got {sl!r}")
            parts = tuple(None if s is None else _integer(where, f"`{w}: slice` entry", s) for s in sl)
            if len(parts) == 3 and parts[2] == 0:
                raise UBFInputError(where, f"`{w}: slice` step must not be 0")
            args["slice"] = parts
        if "sort" in spec:
            args["sort"] = _bool(where, f"`{w}: sort`", spec["sort"])
        return cls(**args)

    def describe(self) -> str:
        """Short text for attrs["wavelength_source"] (before any unit guess is added)."""
        if self.kind == "file":
            text = "the file's list"
        elif self.kind == "variable":
            text = f"variable {self.variable}"
        elif self.kind == "linspace":
            a, b, n = self.linspace
            text = f"linspace({a:g}, {b:g}, {n})"
        elif self.kind == "values":
            text = f"values from the spec ({len(self.values)})"
        elif self.kind == "value":
            text = f"value {self.value:g}"
        else:
            text = f"table {self.table_label}"
            if self.table_variable:
                text += f":{self.table_variable}"
            if self.column:
                text += f" column {self.column}"
            if self.indices_variable:
                text += f" at {self.indices_variable} ({self.index_base}-based)"
            elif self.indices is not None:
                text += f" at indices ({self.index_base}-based)"
            elif self.first_n:
                text += " bands 1..n"
        if self.slice is not None:
            text += f" [{':'.join('' if s is None else str(s) for s in self.slice)}]"
        return text


@dataclass(frozen=True)
class BadBandsSpec:
    """``bad_bands:`` as a list of 0-based indices, or a bad-band-list variable (bad where value == bad_value)."""

    indices: tuple[int, ...] | None = None
    variable: str | None = None
    bad_value: float = 0.0

    @classmethod
    def parse(cls, where: str, spec: Any) -> BadBandsSpec:
        if isinstance(spec, BadBandsSpec):
            return spec
        if isinstance(spec, (list, tuple)):
            return cls(indices=tuple(_integer(where, "`bad_bands` entry", i, minimum=0) for i in spec))
        if isinstance(spec, dict):
            unknown = sorted(set(spec) - {"variable", "bad_value"})
            if unknown:
                raise UBFInputError(where, f"unknown key {', '.join(map(repr, unknown))} in `bad_bands`; "
                                           "allowed: variable, bad_value")
            if "variable" not in spec:
                raise UBFInputError(where, "`bad_bands` mapping needs `variable` (a bad-band list such as bbl)")
            return cls(variable=_name(where, "`bad_bands: variable`", spec["variable"]),
                       bad_value=_number(where, "`bad_bands: bad_value`", spec.get("bad_value", 0)))
        raise UBFInputError(where, f"`bad_bands` must be a list of 0-based band indices or "
                                   f"{{variable: bbl, bad_value: 0}}, got {spec!r}")


def _default_format(where: str, path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir():
        return "cave"
    if suffix == ".mat":
        return "mat"
    if suffix in (".tif", ".tiff"):
        return "geotiff"
    if suffix == ".hdr" or suffix in ENVI_DATA_SUFFIXES:
        return "envi"
    if suffix == "":
        return "cave"
    raise UBFInputError(where, f"cannot tell the format of {path.name!r} from its name (.mat, .tif/.tiff, ENVI "
                               f".hdr or a CAVE folder)", f"set `format:` to one of {', '.join(FORMATS)}",
                        key="format")


@dataclass
class HSISource:
    """One hyperspectral data set as params.yaml describes it (see the module docstring for every key).

    Construct with :meth:`from_params`; direct construction is checked the same way (relative paths then resolve
    against the current folder). Spec mistakes raise ``UBFInputError(name, ...)``; problems with the file itself
    are raised by :func:`ubf_core.io.read_hsi` with the file path.
    """

    name: str
    path: Path
    format: str | None = None
    variable: str | None = None
    layout: str | None = None
    rows: int | str | None = None
    cols: int | str | None = None
    order: str | None = None
    wavelengths: AxisSpec | dict | list | None = None
    fwhm: AxisSpec | dict | list | None = None
    bad_bands: BadBandsSpec | list | dict | None = None
    scale: float | None = None
    nodata: float | None = None
    units: str | None = None
    sensor: str | None = None
    cite: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        where = self.name = str(self.name)
        if self.path is None or not str(self.path).strip():
            raise UBFInputError(where, "`path` is missing (the data file or, for cave, the scene folder)")
        self.path = _resolve(self.path, None)
        if self.format is None:
            self.format = _default_format(where, self.path)
        else:
            fmt = str(self.format).strip().lower()
            fmt = {"tif": "geotiff", "tiff": "geotiff", "gtiff": "geotiff"}.get(fmt, fmt)
            if fmt not in FORMATS:
                raise UBFInputError(where, f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
            self.format = fmt
        if self.format != "mat":
            given = [k for k in ("variable", "layout", "rows", "cols", "order") if getattr(self, k) is not None]
            if given:
                raise UBFInputError(where, f"{', '.join(given)} only apply to .mat files (format is {self.format})")
        else:
            if self.variable is not None:
                self.variable = _name(where, "`variable`", self.variable)
            layout = "HWC" if self.layout is None else str(self.layout).strip()
            match = {lay.lower(): lay for lay in LAYOUTS}.get(layout.lower())
            if match is None:
                raise UBFInputError(where, f"unknown layout {self.layout!r}; use one of {', '.join(LAYOUTS)}")
            self.layout = match
            if self.layout == "pixel_major":
                for key in ("rows", "cols"):
                    value = getattr(self, key)
                    if value is None:
                        raise UBFInputError(where, f"layout pixel_major needs `{key}`",
                                            f"set `{key}:` to an integer or the name of a scalar variable in the "
                                            f"file", key=key)
                    if isinstance(value, str):
                        setattr(self, key, _name(where, f"`{key}`", value))
                    else:
                        setattr(self, key, _integer(where, f"`{key}`", value, minimum=1))
                order = "F" if self.order is None else str(self.order).strip().upper()
                if order not in ("F", "C"):
                    raise UBFInputError(where, f"`order` must be F (column-major, MATLAB) or C, got {self.order!r}")
                self.order = order
            else:
                given = [k for k in ("rows", "cols", "order") if getattr(self, k) is not None]
                if given:
                    raise UBFInputError(where, f"{', '.join(given)} only apply to layout pixel_major "
                                               f"(layout is {self.layout})")
        if self.wavelengths is not None:
            self.wavelengths = AxisSpec.parse(where, "wavelengths", self.wavelengths)
        if self.fwhm is not None:
            self.fwhm = AxisSpec.parse(where, "fwhm", self.fwhm)
        if self.bad_bands is not None:
            self.bad_bands = BadBandsSpec.parse(where, self.bad_bands)
        if self.format == "mat":
            for spec in (self.wavelengths, self.fwhm):
                if spec is not None and spec.kind == "file":
                    raise UBFInputError(where, f"`{spec.key}` needs a source (variable, linspace, values or table): "
                                               f".mat files have no standard {spec.key} list")
        else:
            for spec in (self.wavelengths, self.fwhm):
                if spec is not None and (spec.kind == "variable" or spec.indices_variable):
                    raise UBFInputError(where, f"the {spec.key} name a variable, but only .mat files have "
                                               f"variables (format is {self.format})",
                                        f"give `{spec.key}:` as linspace, values or table", key=spec.key)
            if self.bad_bands is not None and self.bad_bands.variable is not None:
                raise UBFInputError(where, f"`bad_bands: variable` needs a .mat file (format is {self.format})")
        if self.scale is not None:
            self.scale = _number(where, "`scale`", self.scale)
            if self.scale <= 0:
                raise UBFInputError(where, f"`scale` must be > 0, got {self.scale}")
        if self.nodata is not None:
            self.nodata = _number(where, "`nodata`", self.nodata)
        for key in ("cite", "description"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise UBFInputError(where, f"`{key}` must be text")
        if self.units is not None and self.units not in UNITS:
            raise UBFInputError(where, f"unknown units {self.units!r}; use one of {', '.join(UNITS)}")
        if self.sensor is not None and (not isinstance(self.sensor, str) or not self.sensor.strip()):
            raise UBFInputError(where, f"`sensor` must be a non-empty name, got {self.sensor!r}")
        if self.units == "radiance" and self.sensor is None:
            raise UBFInputError(where, "units: radiance needs `sensor:` (the group that shares one solar-atmosphere "
                                       "factor, e.g. aviris)")
        if self.units == "reflectance" and self.sensor is not None:
            raise UBFInputError(where, "`sensor` only applies to units: radiance (it names the group that shares "
                                       "one solar-atmosphere factor)")

    @classmethod
    def from_params(cls, name: str, spec: dict, base_dir: Path | str) -> HSISource:
        """Build from one params.yaml data-set entry; relative paths (data, tables) resolve against ``base_dir``."""
        name = str(name)
        if not isinstance(spec, dict):
            raise UBFInputError(name, f"the data-set entry must be a mapping of keys (path, format, ...), "
                                      f"got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(_SOURCE_KEYS), key=str)
        if unknown:
            raise UBFInputError(name, f"unknown key {', '.join(map(repr, unknown))}; "
                                      f"allowed: {', '.join(_SOURCE_KEYS)}")
        if "path" not in spec:
            raise UBFInputError(name, "`path` is missing (the data file or, for cave, the scene folder)")
        base_dir = Path(base_dir)
        kwargs = {f.name: spec[f.name] for f in fields(cls) if f.name in spec}
        if spec["path"] is not None and str(spec["path"]).strip():
            kwargs["path"] = _resolve(spec["path"], base_dir)
        for key in ("wavelengths", "fwhm"):
            if spec.get(key) is not None:
                kwargs[key] = AxisSpec.parse(name, key, spec[key], base_dir)
        return cls(name=name, **kwargs)


def require_units(sources) -> None:
    """Every data set must declare ``units: reflectance | radiance`` (what prepare_hsi records for each patch): a
    missing one is a UBFInputError naming the data set (unknown values are refused by :class:`HSISource`)."""
    for source in sources:
        if source.units is None:
            raise UBFInputError(source.name, f"`units` is missing: declare units: {' | '.join(UNITS)} (ABU scenes "
                                             f"are at-sensor radiance, data/README.md)")
