# Two commands on a fresh machine:  `make repro` (the whole pipeline on the embedded sample, offline, CPU)
# and `make test` (the test suite). Both create the virtual environment when it is missing; both are idempotent.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1

.PHONY: install repro test bench clean-stores help

help:
	@echo "make repro   - install (if needed) and run 'dvc repro' on the embedded sample"
	@echo "make test    - install (if needed) and run the tests"
	@echo "make bench   - run the benchmarks in benchmarks/"

install: $(VENV)/.installed

# torch first, pinned to the CPU build that the stack is tested with; then everything else from constraints.txt
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

# dvc repro with one local Prefect server for all stages (infra/repro.py), e.g. REPRO_ARGS="-f -s evaluate"
repro: install
	$(BIN)/python infra/repro.py -- $(REPRO_ARGS)

# the suite on TEST_WORKERS processes (pytest-xdist), a test module per worker at a time, in the order of
# tests/conftest.py (the longest modules first). TEST_THREADS OpenMP threads per process (torch, BLAS; the stage
# commands the tests start inherit it): the workers already fill the cores, and more threads than cores made the
# suite 1.7x slower (busy-waiting threads: 880 s against 514 s on 2 cores)
TEST_WORKERS ?= 2
TEST_THREADS ?= 1
test: install
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: install
	$(BIN)/python benchmarks/prepare_throughput.py
	test -f stores/unmixing_model.json || $(BIN)/python infra/repro.py
	$(BIN)/python benchmarks/unmixing.py speed
	$(BIN)/python benchmarks/unmixing.py ablation
	$(BIN)/python benchmarks/unmixing.py bound
	$(BIN)/python benchmarks/unmixing.py crossdata
	$(BIN)/python benchmarks/neural_mixing.py
	$(BIN)/python benchmarks/generator_sampling.py
	$(BIN)/python benchmarks/synthesis_throughput.py

clean-stores:
	rm -rf stores reports

# local servers on 127.0.0.1 (Prefect + workers for pools cpu/gpu, MLflow, Dask), e.g. UP_ARGS="--prefect-port 4300"
.PHONY: infra-up infra-down
infra-up: install
	$(BIN)/python infra/up.py $(UP_ARGS)
infra-down:
	$(BIN)/python infra/down.py $(DOWN_ARGS)
