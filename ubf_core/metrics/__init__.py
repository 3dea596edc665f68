"""Measures of hyperspectral data, numpy in and floats out; each module is imported by name.

* :mod:`~ubf_core.metrics.reconstruction` — a reconstruction against its own reference (RMSE, PSNR, SSIM, SAD,
  ERGAS): how well unmixing gives back the cube it was shown;
* :mod:`~ubf_core.metrics.distribution` — a set of generated images or maps against an unpaired real set (point
  fidelity, block diversity, Fréchet distance, KID, precision/recall, abundance histograms, sum-to-one residual);
* :mod:`~ubf_core.metrics.features` — the in-project feature network whose embeddings the feature metrics compare;
* :mod:`~ubf_core.metrics.library_angle` — each spectrum's spectral angle to its nearest spectral-library entry
  (are synthetic spectra shaped like known materials?).
"""
