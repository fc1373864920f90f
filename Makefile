# Two commands on a fresh machine: `make run` (the demo study) and `make test` (the test suite; `make test-long` adds
# its longest end-to-end runs, as CI does).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: install run test test-long check lint format plan bench clean

$(STAMP): requirements.txt requirements-test.txt requirements-cluster.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the workflow (requirements.txt), its tests and the SLURM plugin the cluster test uses
	$(PY) -m pip install -q -r requirements-test.txt
	# fastmri's core needs none of its declared torchvision/lightning deps; nilearn only ships the demo template.
	$(PY) -m pip install -q --no-deps fastmri==0.3.0 nilearn==0.14.1
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . || $(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) all

# The test suite but its longest end-to-end runs (marker long), on two pytest-xdist workers with one torch thread each
# (the tests that share a Snakemake run go to one worker: tests/conftest.py). About 5 minutes on 2 cores.
PYTEST_2 := OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadgroup
test: $(STAMP)
	$(PYTEST_2) -q --durations=15 -m "not long" tests

# Those (about 35 minutes on 2 cores): the rehearsal of the real study at its shapes, the tiny study through a
# one-node SLURM cluster, SIGKILL during training and attacks then resume, a second clean tiny run compared byte for
# byte with the first, the archive and ISMRMRD data sources, the pathology table, the external-method example and
# the checkpoint variants end to end, the reruns after faults in the data and the results and after incomplete
# markers, the readme target in a copied checkout, the plan against an ingested run, the compiled ℓ1 solver. CI
# runs both targets.
test-long: $(STAMP)
	$(PY) -m pytest -q --durations=15 -m long tests

# The quick tier for the edit-test loop: unit tests and config checks, no end-to-end Snakemake runs.
check: $(STAMP)
	$(PYTEST_2) -q -m "not slow" tests --ignore=tests/test_workflow.py --ignore=tests/test_report.py \
		--ignore=tests/test_crash.py --ignore=tests/test_slurm.py --ignore=tests/test_commands.py \
		--ignore=tests/test_rehearsal.py

# Snakemake's linter and snakefmt on every rule file (tests/test_lint.py runs both in make test; `make format`
# rewrites them).
SNAKEFMT_FILES := Snakefile workflow/rules/*.smk workflow/rules/inputs/*.smk
lint: $(STAMP)
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check $(SNAKEFMT_FILES)

format: $(STAMP)
	$(VENV)/bin/snakefmt $(SNAKEFMT_FILES)

# Every job of a config and its runtime-limit hours and GPU-hours before any data are ingested (config/README.md):
# make plan CONFIG=config/real.yaml
CONFIG ?= config/config.yaml
plan: $(STAMP)
	$(VENV)/bin/snakemake --cores 1 --configfile $(CONFIG) -- plan

bench: $(STAMP)
	$(PY) bench/sensitivities.py
	$(PY) bench/l1.py
	$(PY) bench/attack.py

clean:
	rm -rf results .snakemake
