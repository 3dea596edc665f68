"""Mass synthesis: generated abundance maps → new HSIs by the linear mixing model, written block by block into a
resumable Zarr store. Each module is imported by name."""
