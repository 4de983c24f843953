# Entry points (see README): `make run` reproduces the paper, `make smoke` checks the whole
# workflow in a few minutes, `make test` runs every test.
# Both create the virtual environment from the pinned lock first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
# Where pip finds the CPU build of torch (the lock's torch==2.13.0).  Empty: pip's own
# configuration (its index or find-links).  Where that index serves the CUDA build (PyPI on
# Linux, which then needs nvidia-* wheels the lock does not pin), use
# TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: install run smoke test test-fast lint

$(BIN)/snakemake: requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "requirements.lock pins Python 3.11 packages; run with PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	# the pip that envs/*.yaml pin (a new venv brings the interpreter's bundled one)
	$(BIN)/python -m pip install --quiet pip==$$(sed -n 's/^ *- pip=//p' envs/gsmoe.yaml)
	$(if $(TORCH_INDEX),$(BIN)/pip install --quiet --index-url $(TORCH_INDEX) torch==$$(sed -n 's/^torch==//p' requirements.lock))
	$(BIN)/pip install --quiet -r requirements.lock
	# graphrole 1.1.1 declares pandas<2, which cannot work with numpy 2; it runs fine on
	# the pinned pandas, so it is installed without its declared dependencies.
	$(BIN)/pip install --quiet --no-deps graphrole==1.1.1
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/snakemake

run: install
	$(BIN)/snakemake --cores $(CORES)

# The whole workflow in a few minutes, from the local data mirror (../shared/datasets):
# config.yaml's grid on Cora and ENZYMES, 2 seeds, 3 epochs (tests/workflow/config_smoke.yaml,
# an overlay of config.yaml), in its own folder, then its HTML report.  The report command
# needs the same --directory and --configfile as the run.
SMOKE_DIR ?= smoke
SMOKE := --directory $(SMOKE_DIR) --configfile $(CURDIR)/tests/workflow/config_smoke.yaml
smoke: install
	$(BIN)/snakemake --cores $(CORES) $(SMOKE)
	$(BIN)/snakemake $(SMOKE) --report $(abspath $(SMOKE_DIR))/report.html
	@echo "smoke run done: open $(SMOKE_DIR)/report.html; results in $(SMOKE_DIR)/results/"

# Everything: unit tests, the end-to-end smoke workflow, lint, and the SLURM test
# (which skips with a reason where it cannot start a local SLURM).
test: install
	$(BIN)/python -m pytest -m "slow or not slow" -p no:cacheprovider

test-fast: install
	$(BIN)/python -m pytest -p no:cacheprovider

lint: install
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint
