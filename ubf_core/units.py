"""What the values of an HSI data set are: ``units: reflectance | radiance`` in params.yaml (one place for the words,
read by the data-set spec :mod:`ubf_core.io.source` and the unmixing decoder :mod:`ubf_core.unmixing.decoder`)."""

UNITS = ("reflectance", "radiance")
