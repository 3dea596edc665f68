"""The MLflow pyfunc wrapper that carries a saved unmixing network (:mod:`ubf_core.unmixing.saved`) in the model
registry."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np

#: The name of the saved-model folder among the pyfunc model's artifacts.
UNMIXING_ARTIFACT = "unmixing"


class UnmixingModel(mlflow.pyfunc.PythonModel):
    """``predict(x)``: encoder inputs (N, 3, H, W) float, already in the model's input space (see
    :mod:`ubf_core.unmixing.inference`) → abundances (N, k, H, W) float32 on the simplex."""

    def load_context(self, context) -> None:
        from ubf_core.unmixing.saved import load_unmixing_model

        self.model = load_unmixing_model(context.artifacts[UNMIXING_ARTIFACT])

    def predict(self, context, model_input, params=None):
        from ubf_core.unmixing.inference import encode

        return encode(self.model, np.asarray(model_input, dtype=np.float32), progress=False)
