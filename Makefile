# Everything here sets itself up: the first target that needs Python creates .venv and
# installs hpsearch with its test extras (MPI from the mpi4py and mpich wheels).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TIMEOUT := timeout --signal=KILL
# MPI tests: each mpirun has its own wall-clock guard so a deadlock fails instead of hanging.
MPI_TEST_TIMEOUT ?= 90
PY_PATHS := $(wildcard hpsearch problems scripts tests)

.PHONY: venv lint format test test-serial test-mpi test-slurm demo bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS)
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix $(PY_PATHS)
	$(BIN)/ruff format $(PY_PATHS)

test: lint test-serial test-mpi

test-serial: venv
	$(BIN)/python -m pytest tests --ignore=tests/mpi -m "not slurm"

test-mpi: venv
	@if [ -d tests/mpi ]; then \
	  for n in 4 8; do \
	    echo "== MPI tests on $$n ranks"; \
	    PATH="$(CURDIR)/$(BIN):$$PATH" $(TIMEOUT) $(MPI_TEST_TIMEOUT) \
	      $(BIN)/mpirun -n $$n $(BIN)/python -m pytest --with-mpi -p no:cacheprovider tests/mpi -q || exit 1; \
	  done; \
	fi

# jobs/slurm_srun.sh under a real one-node Slurm that the test starts and stops itself
# (about 2 minutes). Installs Slurm and munge first when they are missing and this is root
# with apt-get; otherwise the test is skipped, saying why. SIGINT on timeout lets the test
# stop the daemons it started.
SBIN_PATH := $(PATH):/usr/sbin:/sbin
test-slurm: venv
	@if ! PATH="$(SBIN_PATH)" command -v slurmctld >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "== installing Slurm and munge (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null) \
	      || echo "== apt-get could not install Slurm: the test is skipped"; \
	  else \
	    echo "== Slurm is not installed and cannot be installed here (needs root and apt-get)"; \
	  fi; \
	fi
	timeout --signal=INT --kill-after=60 600 $(BIN)/python -m pytest -m slurm -p no:cacheprovider tests/test_slurm.py

# The main job, small: a master and three workers searching the digits MLP with AMBS.
demo: venv
	rm -rf demo-out
	PATH="$(CURDIR)/$(BIN):$$PATH" $(TIMEOUT) 600 $(BIN)/mpirun -n 4 \
	  $(BIN)/python -m hpsearch.ambs --problem problems.digits --max-evals 20 --output demo-out --seed 0

# The optimizer comparison of docs/benchmarks.md (hours on 2 cores; rerun to resume it).
bench: venv
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python scripts/bench_optimizers.py --out bench_optimizers.md \
	  --slow-seeds skopt=1,ambs-RF-qUCB=3,ambs-GBRT=1,ambs-GP=3

clean:
	rm -rf demo-out out .pytest_cache .mypy_cache .ruff_cache
