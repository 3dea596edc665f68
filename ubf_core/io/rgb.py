"""RGB image folders (one sub-folder per class) and reading one RGB image.

:func:`list_rgb_images` lists ``<folder>/<class>/<image>`` files whose suffix is in ``extensions`` (case-insensitive;
other files and hidden entries are ignored), sorted by label then file name. Each listed file is opened with Pillow
and verified (cheap: no full decode). A file that is not an image, or a single-channel image without a palette
(grayscale), is bad: with ``on_bad="error"`` it raises :class:`~ubf_core.errors.UBFInputError`, with ``"skip"`` it is
left out with a :class:`UBFInputWarning`. RGBA, palette and other colour images that convert to RGB are fine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ubf_core.errors import UBFInputError, describe_error

RGB_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


class UBFInputWarning(UserWarning):
    """A bad input that was skipped. ``str(w)`` is one line: ``"<where>: <problem>"``."""

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.where}: {self.problem}")


@dataclass(frozen=True)
class RGBImage:
    """One image of an RGB folder; ``label`` is the name of its class sub-folder."""

    path: Path
    label: str


def _problem(path: Path) -> str | None:
    """Why ``path`` is not a usable RGB image, or None when it is."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            im.verify()
    except Exception as err:  # noqa: BLE001 - Pillow raises many types for non-images and damaged files
        return f"not an image ({describe_error(err)})"
    if mode in _GRAY_MODES:
        return f"grayscale image (mode {mode}), expected RGB"
    return None


def is_rgb_image(path: str | Path) -> bool:
    """Whether ``path`` is a colour image Pillow reads as RGB (a JPEG, PNG, 8-bit 3-channel TIFF ...): header only."""
    path = Path(path)
    return path.is_file() and _problem(path) is None


def list_rgb_images(folder: str | Path, on_bad: str = "skip",
                    extensions: tuple[str, ...] = RGB_EXTENSIONS) -> list[RGBImage]:
    """The images of a class-per-sub-folder RGB data set, sorted by (label, file name); see the module docstring."""
    if on_bad not in ("skip", "error"):
        raise ValueError(f"on_bad must be 'skip' or 'error', got {on_bad!r}")
    folder = Path(folder)
    if not folder.exists():
        raise UBFInputError(folder, "folder not found")
    if not folder.is_dir():
        raise UBFInputError(folder, "is a file, expected a folder with one sub-folder of images per class")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)

    def images(d: Path) -> list[Path]:
        return sorted((p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in exts), key=lambda p: p.name)

    classes = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: d.name)
    loose = images(folder)
    if loose and not classes:
        raise UBFInputError(folder, f"no class sub-folders: {len(loose)} images lie directly in the folder; put "
                                    f"each class's images in a sub-folder named after the class")

    def bad(path: Path, problem: str) -> None:
        if on_bad == "error":
            raise UBFInputError(path, problem)
        warnings.warn(UBFInputWarning(path, f"{problem}; left out"), stacklevel=3)

    for p in loose:
        bad(p, "image outside any class sub-folder")
    out: list[RGBImage] = []
    for d in classes:
        for p in images(d):
            problem = _problem(p)
            if problem:
                bad(p, problem)
            else:
                out.append(RGBImage(path=p, label=d.name))
    if not out:
        raise UBFInputError(folder, f"no RGB images found (looked for {', '.join(exts)} files in class "
                                    f"sub-folders)")
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """An image as uint8 (H, W, 3); RGBA, palette, CMYK ... are converted to RGB, grayscale raises."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise UBFInputError(path, "file not found" if not path.exists() else "is a folder, expected an image")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _GRAY_MODES:
                raise UBFInputError(path, f"grayscale image (mode {im.mode}), expected RGB")
            arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except UBFInputError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow raises many types for damaged files
        raise UBFInputError(path, f"not a readable image ({describe_error(err)})") from None
    return np.ascontiguousarray(arr, dtype=np.uint8)
