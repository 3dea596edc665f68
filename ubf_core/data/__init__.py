"""Patching scenes and images into Zarr stores, summarising stores for validation, and describing a raw cube
(what it holds, how it covers the target grid, whether it can be reflectance: :mod:`~ubf_core.data.inspect`)."""
