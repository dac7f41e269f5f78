# The two commands that do everything on a fresh machine:
#   make demo   creates .venv if missing, installs, runs the demo DAG (config/demo.yaml) on CPU
#   make test   creates .venv if missing, installs, runs the tests (+ the SLURM/DVC integration suite when CI=true)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch; on a GPU machine use e.g. TORCH_SPEC='torch>=2.4' (pip then picks a CUDA build).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: install demo test lint unit integration benchmark clean-results

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,workflow]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash workflow/scripts/demo.sh

test: install
	$(MAKE) unit
	@if [ "$$CI" = "true" ]; then $(MAKE) integration; else echo "(integration suite skipped: set CI=true or run 'make integration')"; fi

# The lint gate (.ci/run runs it before the tests); rules in pyproject.toml [tool.ruff]. `ruff format` and
# `snakefmt` are configured there too but not applied to the code base yet, so they are not part of the gate.
lint: install
	$(VENV)/bin/ruff check src tests benchmarks workflow/scripts

unit: install
	$(PY) -m pytest -q -m "not integration" tests

integration: install
	PATH="$(abspath $(VENV))/bin:$$PATH" PYTHON=$(PY) bash .ci/slurm/integration.sh

benchmark: install
	$(PY) benchmarks/adapter_overhead.py

clean-results:
	rm -rf results/* logs/* .snakemake/metadata work/
