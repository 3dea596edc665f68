"""The model registry against a real local MLflow store (SQLite + file artifacts): log, register, champion rule,
load by alias, and the errors for URIs that point nowhere."""

from __future__ import annotations

import pytest
import torch

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

    from tasks.registry import log_torch_model, register

    torch.manual_seed(int(value * 10))
    net = torch.nn.Conv2d(3, 5, 1)
    with mlflow.start_run(experiment_id=exp_id):
        info = log_torch_model(net)
    return net, register(info.model_uri, "ubf-test-model", "val_psnr", value, higher_is_better=True,
                         tags={"params_hash": "abc"}, measured_on=measured_on)


def test_champion_moves_only_to_a_better_version_and_loads_by_alias(store):
    import mlflow

    from tasks.registry import load_torch_model, resolve_model_version

    net1, r1 = _log(store, 30.0)
    assert r1["promoted"] and r1["version"] == 1 and r1["previous_champion"] is None
    _, r2 = _log(store, 29.0)
    assert not r2["promoted"] and r2["champion_version"] == 1 and r2["previous_value"] == 30.0
    net3, r3 = _log(store, 31.5)
    assert r3["promoted"] and r3["champion_version"] == 3
    assert int(resolve_model_version("models:/ubf-test-model@champion").version) == 3
    loaded = load_torch_model("models:/ubf-test-model@champion")
    x = torch.rand(2, 3, 17, 9)  # another size than the input example
    torch.testing.assert_close(loaded(x), net3(x))
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
