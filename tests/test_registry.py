"""The model registry against a real local MLflow store (SQLite + file artifacts): log, register, champion rule,
load by alias without unpickling anything, and the errors for URIs that point nowhere, versions in the old pickle
format and incomplete versions."""

from __future__ import annotations

import pickle
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch
import yaml

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


# ------------------------------------------------------------------------------------------------ run names

def test_a_stage_run_is_named_after_the_stage_and_its_params_hash(store, tmp_path):
    import mlflow

    from tasks.registry import start_stage_run
    from ubf_core.config import params_hash

    ids = {}
    for stage, parts in [("train_unmixing", ({"k": 5}, 0)), ("train_unmixing", ({"k": 6}, 0)),
                         ("evaluate", ({"k": 5}, 0))]:
        h = params_hash(*parts)
        with start_stage_run(stage, tmp_path, h) as run:
            ids[(stage, h)] = run.info.run_id
    client = mlflow.MlflowClient()
    for (stage, h), run_id in ids.items():
        got = client.get_run(run_id)
        assert got.info.run_name == f"{stage}-{h[:8]}" and len(h) == 16
        assert got.data.tags["stage"] == stage and got.data.tags["params_hash"] == h
        assert client.get_experiment(got.info.experiment_id).name == f"ubf-{stage}"
    names = [client.get_run(r).info.run_name for r in ids.values()]
    assert len(set(names)) == 3                      # another hash, another name; another stage, another name


def test_a_run_name_needs_a_stage_and_a_hash():
    from tasks.registry import run_name

    assert run_name("report", "0123456789abcdef") == "report-01234567"
    for stage, h in [("", "0123456789abcdef"), ("report", "")]:
        with pytest.raises(UBFInputError) as err:
            run_name(stage, h)
        assert "\n" not in str(err.value)


def test_every_stage_starts_its_run_with_the_helper():
    """No task starts an MLflow run of its own (it would get a random name); the stages named where the helper is
    called are stages of dvc.yaml."""
    import ast
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    stages = set(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    callers = set()
    for path in sorted((root / "tasks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func == "start_run":
                assert path.name == "registry.py", f"{path.name} calls mlflow.start_run: use start_stage_run"
            if func in ("start_stage_run", "track_stage") and path.name != "registry.py":
                callers.add(path.name)
                if isinstance(node.args[0], ast.Constant):
                    assert node.args[0].value in stages, (path.name, node.args[0].value)
    assert callers == {"classify.py", "evaluate.py", "generator.py", "report.py", "unmixing.py"}


def test_stages_log_through_the_one_helper():
    """Tasks log params, metrics, tags and artifacts through tasks.registry.log_to_run / track_stage, not by
    calling mlflow themselves."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    direct = set()
    for path in sorted((root / "tasks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "mlflow"
                    and node.func.attr.startswith(("log_", "set_tag"))):
                direct.add(path.name)
    assert direct == {"registry.py"}


def test_log_to_run_keeps_finite_numbers_only(tmp_path):
    import mlflow

    from tasks.registry import log_to_run, track_stage

    run_id = track_stage("evaluate", tmp_path, "0123456789abcdef",
                         params={"n": 3, "names": ["a", "b"]}, tags={"device": "cpu"},
                         metrics={"gan.D_b/F_p": 0.5, "nan": float("nan"), "inf": float("inf"), "flag": True,
                                  "count": 7, "text": "x", "nested": {"a": 1.0}})
    run = mlflow.get_run(run_id)
    assert run.data.metrics == {"gan.D_b_per_F_p": 0.5, "count": 7.0}
    assert run.data.params == {"n": "3", "names": "['a', 'b']"}
    assert run.data.tags["device"] == "cpu" and run.info.run_name == "evaluate-01234567"
    with mlflow.start_run(run_id=run_id):
        log_to_run(metrics={"loss": 1.0}, step=3)
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")] == [3]


# ------------------------------------------------------------------------------------------------ descriptions

def test_a_registered_version_is_described_with_its_data_hash_and_figures(store):
    import mlflow

    from tasks.registry import describe_version, version_description

    _log(store, 30.0)
    _log(store, 31.25)
    trained_on = {"HSI store": "stores/hsi.zarr (40 training patches from a; 8 validation patches from b)"}
    text = version_description(trained_on, "0123456789abcdef", {"val_psnr": 31.25, "val_sad_deg": 4.56789},
                               "run-1")
    describe_version("ubf-test-model", 2, text, "UBF unmixing network (test)")
    client = mlflow.MlflowClient()
    described = client.get_model_version("ubf-test-model", "2").description
    assert described == text
    for part in ("stores/hsi.zarr (40 training patches", "Params hash: 0123456789abcdef", "val_psnr = 31.25",
                 "val_sad_deg = 4.568", "run-1"):
        assert part in described, part
    assert not client.get_model_version("ubf-test-model", "1").description      # only the version asked for
    assert client.get_registered_model("ubf-test-model").description == "UBF unmixing network (test)"
    describe_version("ubf-test-model", 1, "v1", "another text")                  # the model's own stays
    assert client.get_registered_model("ubf-test-model").description == "UBF unmixing network (test)"
    assert client.get_model_version("ubf-test-model", "1").description == "v1"
    with pytest.raises(UBFInputError) as err:
        describe_version("ubf-test-model", 99, "v99", "x")
    assert str(err.value).startswith("models:/ubf-test-model/99") and "\n" not in str(err.value)


def test_what_the_training_stages_say_they_were_trained_on(tmp_path):
    from tasks.generator import generator_trained_on
    from tasks.unmixing import unmixing_trained_on

    # a catalog.yaml beside the params file replaces the repository's
    catalog = yaml.safe_load((Path(__file__).resolve().parents[1] / "catalog.yaml").read_text())
    catalog["abundance_rgb"]["path"], catalog["abundance_hsi"]["path"] = "stores/a_rgb.zarr", "stores/a_hsi.zarr"
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(catalog))
    params = {"_root": str(tmp_path),
              "generator": {"source": "both"}, "heldout_sources": ["s3"], "heldout_rgb_per_class": 2}
    u = unmixing_trained_on(params, np.array([True, False, False, True, False]),
                            np.array(["s1", "s2", "s3", "s1", "s2"]), 512, {"params_hash": "feedbeef"})
    assert u["HSI store"] == ("stores/hsi.zarr (3 training patches from s2, s3; 2 validation patches from s1; "
                              "store params hash feedbeef)")
    assert u["RGB store"].startswith("stores/rgb.zarr (512 patches")
    g = generator_trained_on(params, ["Airport", "Beach", "Airport", None], ["Airport", "Beach"], 3)
    assert g["RGB abundances"] == "stores/a_rgb.zarr (3 maps; 2 images per class held out)"
    assert g["HSI abundances"] == "stores/a_hsi.zarr (1 maps; held-out scenes left out: s3)"
    assert g["classes"] == "2 (Airport, Beach)" and g["unmixing model version"] == "3"
    rgb_only = generator_trained_on({**params, "generator": {"source": "rgb"}}, ["Airport"], None, None)
    assert "HSI abundances" not in rgb_only and rgb_only["classes"] == "none (unconditional)"


# ------------------------------------------------------------------------------------------------ evaluation tags

def test_the_evaluation_figures_tag_the_version_judged(store):
    import mlflow

    from tasks.registry import tag_evaluation

    _log(store, 30.0)
    _log(store, 31.0)
    tags = tag_evaluation("ubf-test-model", 1, {"c2st": 0.7578125, "psd_ratio": 8.25, "cas": 0.28125}, "eval-run")
    assert tags == {"eval.c2st": "0.7578125", "eval.psd_ratio": "8.25", "eval.cas": "0.28125",
                    "eval.run_id": "eval-run"}
    client = mlflow.MlflowClient()
    v1 = client.get_model_version("ubf-test-model", "1").tags
    assert {k: v for k, v in v1.items() if k.startswith("eval.")} == tags
    assert float(v1["eval.c2st"]) == 0.7578125 and v1["params_hash"] == "abc"   # the registration's tags stay
    assert not any(k.startswith("eval.") for k in client.get_model_version("ubf-test-model", "2").tags)
    tag_evaluation("ubf-test-model", 1, {"c2st": np.float64(0.5)})      # a later evaluation without CAS
    v1 = client.get_model_version("ubf-test-model", "1").tags
    assert {k: v for k, v in v1.items() if k.startswith("eval.")} == {"eval.c2st": "0.5"}
    with pytest.raises(UBFInputError) as err:
        tag_evaluation("ubf-test-model", 7, {"c2st": 0.5})
    assert str(err.value).startswith("models:/ubf-test-model/7") and "\n" not in str(err.value)


def test_evaluate_finds_the_generator_version_behind_the_synthetic_store(store):
    from tasks.evaluate import judged_generator

    _log(store, 30.0)
    _log(store, 29.0)                                 # version 2, not the champion
    params = {"generator": {"model_uri": "models:/ubf-test-model@champion"}}
    attrs = {"generator_model": "ubf-test-model", "generator_version": 2}
    assert judged_generator(params, attrs) == ("ubf-test-model", 2, "the synthetic store's provenance")
    name, version, how = judged_generator(params, {})                   # a store that does not record it
    assert (name, version) == ("ubf-test-model", 1) and "models:/ubf-test-model@champion now" in how
    with pytest.raises(UBFInputError) as err:
        judged_generator(params, {**attrs, "generator_version": 5})
    assert str(err.value).startswith("models:/ubf-test-model/5") and "\n" not in str(err.value)
