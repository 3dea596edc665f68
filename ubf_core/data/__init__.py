"""Patching scenes and images into Zarr stores, and summarising stores for validation."""
