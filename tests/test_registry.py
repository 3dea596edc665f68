"""The model registry against a real local MLflow store (SQLite + file artifacts): log, register, champion rule,
load by alias without unpickling anything, and the errors for URIs that point nowhere, versions in the old pickle
format and incomplete versions."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest
import torch

from test_unmixing_saved import META, trained_looking_net

from ubf_core.errors import UBFInputError


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    from tasks.registry import configure_tracking, experiment

    uri = configure_tracking(tmp_path)
    exp_id = experiment("ubf-test", tmp_path)
    assert uri.startswith("sqlite:///") and (tmp_path / "mlruns" / "mlflow.db").is_file()
    return exp_id


def _log(exp_id, value, measured_on=None):
    import mlflow

    from tasks.registry import log_unmixing_model, register

    net = trained_looking_net(seed=int(value * 10))
    with mlflow.start_run(experiment_id=exp_id):
        info = log_unmixing_model(net)
    return net, register(info.model_uri, "ubf-test-model", "val_psnr", value, higher_is_better=True,
                         tags={"params_hash": "abc"}, measured_on=measured_on)


def test_champion_moves_only_to_a_better_version_and_loads_by_alias(store):
    import mlflow

    from tasks.registry import load_registered_unmixing_model, resolve_model_version

    net1, r1 = _log(store, 30.0)
    assert r1["promoted"] and r1["version"] == 1 and r1["previous_champion"] is None
    _, r2 = _log(store, 29.0)
    assert not r2["promoted"] and r2["champion_version"] == 1 and r2["previous_value"] == 30.0
    net3, r3 = _log(store, 31.5)
    assert r3["promoted"] and r3["champion_version"] == 3
    assert int(resolve_model_version("models:/ubf-test-model@champion").version) == 3
    loaded = load_registered_unmixing_model("models:/ubf-test-model@champion")
    x = torch.rand(2, 3, 17, 9)
    with torch.no_grad():
        assert all(torch.equal(got, want) for got, want in zip(loaded(x), net3.eval()(x)))    # abundances, Ŷ
    assert loaded.config == net3.config and loaded.meta == META and not loaded.training
    assert mlflow.MlflowClient().get_model_version("ubf-test-model", "3").tags["params_hash"] == "abc"


def test_a_champion_scored_on_other_data_gives_way(store):
    """The metric compares only between versions measured on the same data: a worse figure on the same
    validation scenes keeps the champion, any figure on other scenes takes the alias."""
    _, r1 = _log(store, 30.0, {"validation_sources": "samson"})
    _, r2 = _log(store, 29.0, {"validation_sources": "samson"})
    assert r1["promoted"] and not r2["promoted"] and r2["champion_version"] == 1
    _, r3 = _log(store, 25.0, {"validation_sources": "samson,abu-urban-3"})
    assert r3["promoted"] and r3["champion_version"] == 3 and "other data (validation_sources)" in r3["reason"]
    _, r4 = _log(store, 24.0, {"validation_sources": "samson,abu-urban-3"})
    assert not r4["promoted"] and r4["champion_version"] == 3


@pytest.mark.parametrize("uri", ["models:/ubf-test-model@nope", "models:/no-such-model@champion",
                                 "models:/ubf-test-model/99", "runs:/abc/model"])
def test_uris_that_point_nowhere_are_clear_errors(store, uri):
    from tasks.registry import resolve_model_version

    _log(store, 30.0)
    with pytest.raises(UBFInputError) as err:
        resolve_model_version(uri)
    assert str(err.value).startswith(uri) and "\n" not in str(err.value)


class Unpickling(Exception):
    """Raised by the guard below when anything tries to unpickle."""


def refuse_unpickling(monkeypatch) -> list:
    """From now on until the test ends, every way to unpickle (pickle, cloudpickle, torch.load) raises Unpickling
    and records the attempt in the returned list."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise Unpickling("something was unpickled")

    class RefusingUnpickler:
        def __init__(self, *args, **kwargs):
            refuse(*args)

    for module, name in [(pickle, "load"), (pickle, "loads"), (cloudpickle, "load"), (cloudpickle, "loads"),
                         (torch, "load")]:
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)   # torch.load's unpickler derives from it
    return attempts


def test_loading_unpickles_nothing(store, monkeypatch):
    import mlflow.pyfunc

    from tasks.registry import load_registered_unmixing_model

    net, _ = _log(store, 30.0)
    attempts = refuse_unpickling(monkeypatch)
    with pytest.raises(Exception):      # the guard works: MLflow's own pyfunc loader unpickles its wrapper object
        mlflow.pyfunc.load_model("models:/ubf-test-model/1")
    assert attempts
    attempts.clear()
    loaded = load_registered_unmixing_model("models:/ubf-test-model/1")
    assert attempts == []
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], net.eval()(x)[0])


def test_the_pyfunc_wrapper_predicts_abundances(tmp_path):
    from mlflow.pyfunc import PythonModelContext

    from tasks.unmixing_model import UNMIXING_ARTIFACT, UnmixingModel
    from ubf_core.unmixing.inference import encode
    from ubf_core.unmixing.saved import save_unmixing_model

    net = trained_looking_net()
    folder = save_unmixing_model(net, tmp_path / UNMIXING_ARTIFACT)
    wrapper = UnmixingModel()
    wrapper.load_context(PythonModelContext(artifacts={UNMIXING_ARTIFACT: str(folder)}, model_config={}))
    x = np.random.default_rng(0).random((3, 3, 9, 7), dtype=np.float32)
    a = wrapper.predict(None, x)
    assert a.shape == (3, 4, 9, 7) and a.dtype == np.float32
    np.testing.assert_array_equal(a, encode(net, x, progress=False))


def test_a_version_in_the_old_pickle_format_is_a_one_line_error(store, monkeypatch):
    """Versions registered before safetensors (MLflow's pytorch flavour, a pickled module) are refused with how to
    register them again, and judged without unpickling them."""
    import mlflow
    import mlflow.pytorch

    from tasks.registry import TORCH_REQUIREMENTS, load_registered_unmixing_model, register

    with mlflow.start_run(experiment_id=store):
        info = mlflow.pytorch.log_model(trained_looking_net(), name="model", serialization_format="pickle",
                                        pip_requirements=TORCH_REQUIREMENTS)
    register(info.model_uri, "ubf-test-model", "val_psnr", 30.0, higher_is_better=True)
    uri = "models:/ubf-test-model@champion"
    attempts = refuse_unpickling(monkeypatch)
    with pytest.raises(UBFInputError) as err:
        load_registered_unmixing_model(uri)
    message = str(err.value)
    assert message.startswith(f"{uri}: registered in the old pickle format") and "\n" not in message
    assert "`dvc repro -f train_unmixing`" in message and attempts == []


def test_a_version_without_its_weights_is_a_one_line_error_naming_the_folder(store, tmp_path):
    from tasks.registry import load_registered_unmixing_model

    _log(store, 30.0)
    (weights,) = (tmp_path / "mlruns").rglob("weights.safetensors")
    weights.unlink()
    uri = "models:/ubf-test-model/1"
    with pytest.raises(UBFInputError) as err:
        load_registered_unmixing_model(uri)
    message = str(err.value)
    assert message == f"{uri}: artifacts/unmixing: weights.safetensors missing: not a complete saved unmixing model"
