"""Reading and writing the project's data: hyperspectral cubes (.mat v5/v7.3, GeoTIFF, ENVI, CAVE PNG folders)
and RGB image folders.

- :class:`HSISource` (one params.yaml data-set entry, see :mod:`ubf_core.io.source`) and :func:`read_hsi`, which
  returns the cube convention of :mod:`ubf_core.io.hsi`;
- :func:`read_mat_variables` lists what a .mat file holds;
- :func:`write_geotiff` / :func:`write_envi` write cubes that :func:`read_hsi` reads back unchanged;
- :func:`list_rgb_images`, :class:`RGBImage`, :func:`read_rgb`, :class:`UBFInputWarning` for RGB folders.
"""

from ubf_core.io.hsi import read_hsi, to_reflectance
from ubf_core.io.matfile import read_mat_variables
from ubf_core.io.raster import write_envi, write_geotiff
from ubf_core.io.rgb import RGB_EXTENSIONS, RGBImage, UBFInputWarning, list_rgb_images, read_rgb
from ubf_core.io.source import AxisSpec, BadBandsSpec, HSISource

__all__ = ["AxisSpec", "BadBandsSpec", "HSISource", "RGBImage", "RGB_EXTENSIONS", "UBFInputWarning",
           "list_rgb_images", "read_hsi", "read_mat_variables", "read_rgb", "to_reflectance", "write_envi",
           "write_geotiff"]
