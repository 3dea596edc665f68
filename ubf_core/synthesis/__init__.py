"""Mass synthesis: generated abundance maps → new HSIs by the linear mixing model, written block by block into a
resumable Zarr store. Each module is imported by name:

* :mod:`~ubf_core.synthesis.job` — what a run makes (:class:`SynthesisJob`: labels, seeds, size, endmembers, sampler;
  its hash names the store's configuration) and the class of every sample (:func:`plan_labels`);
* :mod:`~ubf_core.synthesis.mixing` — Ŷ' = Ê·Â' (:func:`mix`) and seeded white noise at an SNR (:func:`add_noise`);
* :mod:`~ubf_core.synthesis.store` — the Zarr store: layout, partial store and ``block_done`` flags, completion, the
  staging and upload of a remote output;
* :mod:`~ubf_core.synthesis.blocks` — the block driver the ``synthesize`` stage and the ``mass_synthesis``
  deployment share: :func:`plan_blocks`, :func:`run_block`, :func:`finish_blocks`, and :func:`synthesize` (all three
  on a Dask client).
"""
