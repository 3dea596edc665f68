"""Stage pretrain_generator (the long profile): train the generator for long and write the checkpoint that the
default profile's train_generator starts from."""

import sys

from prefect import flow

from flows._entry import run_stage
from tasks.generator import fit_generator, generator_inputs, judge_generator, write_checkpoint
from tasks.params import load_stage_params


@flow(name="pretrain_generator", log_prints=True)
def pretrain_generator(params_path: str = "params.long.yaml") -> dict:
    """Fit the generator from scratch with the long profile's settings (params.long.yaml: generator.train.steps)
    on the abundance stores, log it to MLflow (experiment ubf-pretrain_generator) and write the checkpoint
    generator.checkpoint (weights, config, the endmembers it learned on, the run's provenance).

    Args:
        params_path: the params file (relative to the project folder); the long profile's, params.long.yaml,
            trains the checkpoint that the default profile starts from.
    """
    params = load_stage_params(params_path)
    inputs = generator_inputs(params)
    gen, history, _, run_id = fit_generator(params, inputs, pretrain=True)
    quality = judge_generator(params, gen, inputs, history, run_id)
    return write_checkpoint(params, gen, inputs, history, quality, run_id)


if __name__ == "__main__":
    sys.exit(run_stage(pretrain_generator, pretrain_generator.__doc__))
