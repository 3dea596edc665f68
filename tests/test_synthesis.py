"""Mass synthesis into Zarr: the same store whatever the block size and worker count, resuming a killed run,
no silent overwrite, labels and noise as asked. Real generators (tiny, untrained), real Dask and Zarr."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ubf_core.errors import UBFInputError
from ubf_core.parallel import dask_client
from ubf_core.synthesis.blocks import synthesize
from ubf_core.synthesis.job import SynthesisJob, plan_labels
from ubf_core.synthesis.mixing import add_noise, mix
from ubf_core.synthesis.store import partial_path, pending_blocks

K, SIZE, CLASSES = 3, (8, 8), ["Beach", "Forest"]
WL = np.linspace(398, 698, 12)


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    from ubf_core.generators import make_generator

    gen = make_generator("vae", K, SIZE, CLASSES)
    return str(gen.save(tmp_path_factory.mktemp("gen") / "vae"))


def _job(n=10, seed=3, snr=None, mix_=None, micro_batch=None):
    rng = np.random.default_rng(0)
    return SynthesisJob(labels=plan_labels(n, mix_ or {"Beach": 1, "Forest": 1}, CLASSES), seed=seed, size=SIZE,
                        endmembers=rng.uniform(0.05, 0.6, (len(WL), K)).astype(np.float32), wavelengths_nm=WL,
                        snr_db=snr, config={"generator": "test-vae"},
                        sampler=None if micro_batch is None else {"micro_batch": micro_batch})


def _arrays(path):
    ds = xr.open_zarr(path, consolidated=False)
    return {name: ds[name].values for name in ("reflectance", "abundance", "label", "seed", "wavelength")}


def _same(a, b):
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_block_size_and_workers_do_not_change_the_store(generator_dir, tmp_path):
    job = _job(snr=30.0)
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        s1 = synthesize(job, generator_dir, tmp_path / "b1.zarr", client=client, block_size=1)
        synthesize(job, generator_dir, tmp_path / "b4.zarr", client=client, block_size=4)
    with dask_client(n_workers=2, threads_per_worker=1, processes=True) as client:
        synthesize(job, generator_dir, tmp_path / "w2.zarr", client=client, block_size=4)
    ref = _arrays(tmp_path / "b1.zarr")
    _same(ref, _arrays(tmp_path / "b4.zarr"))
    _same(ref, _arrays(tmp_path / "w2.zarr"))
    assert s1["computed_blocks"] == list(range(10))
    a = ref["abundance"]
    assert (a >= 0).all() and np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
    assert list(ref["label"]) == ["Beach"] * 5 + ["Forest"] * 5
    assert len(set(ref["seed"])) == 10
    ds = xr.open_zarr(tmp_path / "b4.zarr", consolidated=False)
    assert ds["reflectance"].encoding["chunks"][0] == 4 and ds.attrs["complete"] is True
    assert ds["wavelength"].attrs["units"] == "nm"
    assert not partial_path(tmp_path / "b4.zarr").exists()


def test_micro_batches_give_the_same_store_for_any_block_multiple(generator_dir, tmp_path):
    """m = 4, 10 samples (micro-batches 0-3, 4-7, 8-9): blocks of 4 or 8 on one or two workers write the same store;
    a block size that is not a multiple of m is refused before anything is written."""
    job = _job(micro_batch=4)
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        synthesize(job, generator_dir, tmp_path / "b4.zarr", client=client, block_size=4)
        synthesize(_job(), generator_dir, tmp_path / "m1.zarr", client=client, block_size=5)
        with pytest.raises(UBFInputError, match="synthesis.block_size.*6 is not a multiple of synthesis.micro_batch"):
            synthesize(job, generator_dir, tmp_path / "b6.zarr", client=client, block_size=6)
        with pytest.raises(UBFInputError, match="synthesis.micro_batch.*positive integer"):
            synthesize(_job(micro_batch=0), generator_dir, tmp_path / "m0.zarr", client=client, block_size=4)
    with dask_client(n_workers=2, threads_per_worker=1, processes=True) as client:
        synthesize(job, generator_dir, tmp_path / "b8.zarr", client=client, block_size=8)
    assert not any(p.name.startswith((".b6", "b6", ".m0", "m0")) for p in tmp_path.iterdir())
    ref = _arrays(tmp_path / "b4.zarr")
    _same(ref, _arrays(tmp_path / "b8.zarr"))
    assert job.config_hash() != _job().config_hash()     # m is part of the configuration
    one = _arrays(tmp_path / "m1.zarr")                   # m = 1: the same seeds, up to float rounding
    np.testing.assert_allclose(ref["abundance"], one["abundance"], atol=1e-4)


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(generator_dir, tmp_path):
    job = _job(n=12)
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        synthesize(job, generator_dir, tmp_path / "ref.zarr", client=client, block_size=3)

        class Killed(Exception):
            pass

        def stop_after_two(done, total):
            if done == 2:
                raise Killed

        out = tmp_path / "run.zarr"
        with pytest.raises(Killed):
            synthesize(job, generator_dir, out, client=client, block_size=3, progress=stop_after_two)
        partial = partial_path(out)
        assert not out.exists() and partial.exists()
        todo = pending_blocks(partial)
        assert todo == [2, 3]  # one worker thread: blocks 0 and 1 done, nothing else was started
        # a block cut off in the middle of its writes: garbage in its rows, its done flag still 0
        import zarr

        group = zarr.open_group(partial, mode="r+")
        a = todo[0] * 3
        group["reflectance"][a:a + 2] = np.float32(7.0)
        group["abundance"][a:a + 1] = np.float32(-1.0)
        summary = synthesize(job, generator_dir, out, client=client, block_size=3)
    assert summary["computed_blocks"] == todo
    _same(_arrays(tmp_path / "ref.zarr"), _arrays(out))


def test_an_existing_output_of_another_configuration_is_not_overwritten(generator_dir, tmp_path):
    out = tmp_path / "s.zarr"
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        synthesize(_job(n=4), generator_dir, out, client=client, block_size=2)
        before = _arrays(out)
        again = synthesize(_job(n=4), generator_dir, out, client=client, block_size=2)
        assert again["computed_blocks"] == []
        with pytest.raises(UBFInputError, match="exists and was written with another configuration"):
            synthesize(_job(n=4, seed=9), generator_dir, out, client=client, block_size=2)
        _same(before, _arrays(out))
        synthesize(_job(n=4, seed=9), generator_dir, out, client=client, block_size=2, replace=True)
    assert not np.array_equal(before["abundance"], _arrays(out)["abundance"])


def test_bad_requests_are_refused(generator_dir, tmp_path):
    with pytest.raises(UBFInputError, match="positive integer"):
        plan_labels(0, None, CLASSES)
    with pytest.raises(UBFInputError, match="'Desert' is not one the generator was trained on"):
        plan_labels(4, {"Desert": 1}, CLASSES)
    with pytest.raises(UBFInputError, match="unconditional"):
        plan_labels(4, {"Beach": 1}, None)
    job = _job(n=2)
    bad_k = SynthesisJob(job.labels, 0, SIZE, job.endmembers[:, :2], WL)
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        with pytest.raises(UBFInputError, match="k = 2 but the generator"):
            synthesize(bad_k, generator_dir, tmp_path / "x.zarr", client=client)
    assert not (tmp_path / "x.zarr").exists() and not partial_path(tmp_path / "x.zarr").exists()


def test_labels_mixing_and_noise():
    labels = plan_labels(7, {"Beach": 2, "Forest": 1}, CLASSES)
    assert list(labels) == ["Beach"] * 5 + ["Forest"] * 2
    rng = np.random.default_rng(1)
    a = rng.dirichlet(np.ones(K), size=(2, 4, 4)).transpose(0, 3, 1, 2).astype(np.float32)
    E = rng.uniform(0.1, 0.5, (len(WL), K)).astype(np.float32)
    y = mix(a, E)
    np.testing.assert_allclose(y[1, :, 2, 3], E @ a[1, :, 2, 3], rtol=1e-5)
    noisy = add_noise(y, 20.0, [11, 12])
    snr = 10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2))
    assert 18.5 < snr < 21.5
    np.testing.assert_array_equal(noisy, add_noise(y, 20.0, [11, 12]))



def test_the_driver_steps_run_one_by_one_give_the_stage_store_and_upload_a_remote_output(generator_dir, tmp_path):
    """plan_blocks, run_block per block (in any order) and finish_blocks, as the deployment runs them: the store
    synthesize writes; a remote output is built in its staging folder, uploaded whole, then found complete."""
    from ubf_core.synthesis.blocks import finish_blocks, plan_blocks, run_block
    from ubf_core.synthesis.store import remote_config_hash, staging_path

    job = _job(n=6, snr=30.0)
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        synthesize(job, generator_dir, tmp_path / "ref.zarr", client=client, block_size=2)
    url = "memory://ubf-driver-test/out.zarr"
    staging = staging_path(tmp_path / "staging", url, job.config_hash())
    plan = plan_blocks(job, generator_dir, staging, block_size=2, remote=url)
    assert plan.todo == (0, 1, 2) and plan.total == 3 and plan.output == url and remote_config_hash(url) is None
    for block in reversed(plan.todo):
        run_block(plan.partial, plan.generator_dir, block, plan.block_size, plan.job, threads=plan.threads)
    finish_blocks(plan)
    assert not staging.parent.exists() and remote_config_hash(url) == plan.config_hash
    back = xr.open_zarr(url, consolidated=False)
    ref = _arrays(tmp_path / "ref.zarr")
    for name in ("reflectance", "abundance"):
        np.testing.assert_array_equal(back[name].values, ref[name])
    again = plan_blocks(job, generator_dir, staging, block_size=2, remote=url)
    assert again.partial is None and again.todo == () and not staging.exists()
    with pytest.raises(UBFInputError, match="another configuration .*pass replace=true"):
        plan_blocks(_job(n=6, seed=9), generator_dir, staging, block_size=2, remote=url)

KILL_SCRIPT = """
import os, signal, sys
import numpy as np
from ubf_core.parallel import dask_client
from ubf_core.synthesis.blocks import synthesize
from ubf_core.synthesis.job import SynthesisJob, plan_labels

gen_dir, out, endmembers = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
job = SynthesisJob(labels=plan_labels(12, {"Beach": 1, "Forest": 1}, ["Beach", "Forest"]), seed=3, size=(8, 8),
                   endmembers=endmembers, wavelengths_nm=np.linspace(398, 698, 12), config={"generator": "test-vae"})

def die_after_two(done, total):
    if done == 2:
        os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no finally: as a killed worker

with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
    synthesize(job, gen_dir, out, client=client, block_size=3, progress=die_after_two)
"""


def test_a_sigkilled_process_leaves_a_partial_store_that_the_next_run_completes(generator_dir, tmp_path):
    import subprocess
    import sys

    job = _job(n=12)
    np.save(tmp_path / "E.npy", job.endmembers)
    out = tmp_path / "killed.zarr"
    run = subprocess.run([sys.executable, "-c", KILL_SCRIPT, generator_dir, str(out), str(tmp_path / "E.npy")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == -9, run.stderr[-2000:]
    assert not out.exists() and partial_path(out).exists()  # nothing half-written is exposed
    todo = pending_blocks(partial_path(out))
    assert 0 < len(todo) < 4
    with dask_client(n_workers=1, threads_per_worker=1, processes=False) as client:
        summary = synthesize(job, generator_dir, out, client=client, block_size=3)
        synthesize(job, generator_dir, tmp_path / "ref.zarr", client=client, block_size=3)
    assert summary["computed_blocks"] == todo
    _same(_arrays(tmp_path / "ref.zarr"), _arrays(out))
