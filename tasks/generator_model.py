"""The MLflow pyfunc wrapper that carries a saved abundance generator in the model registry."""

from __future__ import annotations

import mlflow.pyfunc


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """``predict({"n": …, "seed": …, "labels": …})`` → abundance maps (n, k, H, W) of the wrapped generator."""

    def load_context(self, context) -> None:
        from ubf_core.generators import load_generator

        self.generator = load_generator(context.artifacts["generator"])

    def predict(self, context, model_input, params=None):
        request = dict(model_input if isinstance(model_input, dict) else model_input.iloc[0].to_dict())
        return self.generator.sample(int(request.get("n", 1)), seed=int(request.get("seed", 0)),
                                     labels=request.get("labels"))
