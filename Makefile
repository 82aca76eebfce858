# codistill: `make help` lists the targets.
PYTHON_BASE ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FIG ?= fig2
SCALE ?= mini
RESULTS ?= results
# The logs figures, tables and the report read: the committed mini runs (LOGS=results: your own runs).
LOGS ?= paper/logs
# reproduce-all: jobs of a sweep running at once (empty: cores // ranks per job, at least 1).
JOBS ?=
# reproduce: the first SEEDS seeds of each setting, the paper's three; SEEDS=all runs every seed the
# sweep lists, at mini scale the counts its claims' power analysis declares (each figure's record, paper/figures/).
SEEDS ?= 3

.DEFAULT_GOAL := help
.PHONY: help setup setup-vision reproduce verdicts figure figures status report regime reproduce-all dryrun preflight soak bench lint test test-fast clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: FIG=$(FIG) SCALE=$(SCALE) SEEDS=$(SEEDS) RESULTS=$(RESULTS) LOGS=$(LOGS) JOBS=$(JOBS) STACK=$(STACK)"

# STACK: the torch build the venv gets. default: constraints.txt, torch from the package index (its
# CUDA 13 build: CPUs, and GPUs from Turing, sm_75, on). v100: constraints-v100.txt, the same release's
# CUDA 12.6 build from PyTorch's index, the one with kernels for V100s (sm_70) (docs/gpu-cluster.md,
# "The stack"). A venv keeps the stack it was made with ($(VENV)/.stack) until STACK names another; a
# new one gets v100 where nvidia-smi lists a GPU older than Turing.
OLD_GPU := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | awk -F. '$$1 < 7 || ($$1 == 7 && $$2 < 5) {print "v100"; exit}')
STACK ?= $(or $(shell cat $(VENV)/.stack 2>/dev/null),$(OLD_GPU),default)
ifeq ($(STACK),v100)
CONSTRAINTS := constraints-v100.txt
STAMP := -v100
OTHER_STAMP :=
else ifeq ($(STACK),default)
CONSTRAINTS := constraints.txt
STAMP :=
OTHER_STAMP := -v100
else
$(error STACK=$(STACK): one of default, v100)
endif

# Two installs: the vision path (the library, src/run.py on the vision, tabular and language-model
# workloads, the figures and the report) builds nothing; everything adds the translation extras
# (fairseq's extensions are compiled: about 4 minutes on 2 cores), torchft and the test tools.
$(VENV)/.installed-vision$(STAMP): requirements.txt constraints.txt $(CONSTRAINTS) pyproject.toml library/pyproject.toml
	$(PYTHON_BASE) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/$(CONSTRAINTS) $(VENV)/bin/pip install -e ./library -e '.[experiments,figures]'
	rm -f $(VENV)/.installed-vision$(OTHER_STAMP) $(VENV)/.installed$(OTHER_STAMP)
	echo $(STACK) > $(VENV)/.stack
	touch $@

# fairseq builds its CUDA extensions whenever CUDA_HOME is set, and torch refuses to compile them
# with a CUDA whose major version is not its own: scripts/fairseq_cuda_build.py keeps CUDA_HOME only
# where they match, and says which it chose.
$(VENV)/.installed$(STAMP): $(VENV)/.installed-vision$(STAMP)
	build_env="$$($(PY) scripts/fairseq_cuda_build.py)" && env $$build_env \
	  PIP_CONSTRAINT=$(CURDIR)/$(CONSTRAINTS) $(VENV)/bin/pip install -e ./library -e '.[all]'
	touch $@

setup-vision: $(VENV)/.installed-vision$(STAMP) ## create .venv for the vision path: src/run.py on every workload but translation, figures, report (no fairseq)
setup: $(VENV)/.installed$(STAMP) ## create .venv with the whole pinned stack: the vision path, translation (builds fairseq, about 4 min), torchft, the tests (STACK=v100: the V100 stack)

reproduce: setup-vision ## run FIG's sweep at SCALE on this machine, draw it, print its path and the runs' numbers (default: Figure 2, mini)
	CODISTILL_RESULTS=$(RESULTS) $(PY) src/run.py -m sweep=$(FIG) scale=$(SCALE) $(if $(filter all,$(SEEDS)),,hydra.sweeper.seeds_per_setting=$(SEEDS))
	$(PY) -m figures.registry $(FIG) --results $(RESULTS) --scale $(SCALE)
	$(PY) -m figures.run_table $(FIG) --results $(RESULTS) --scale $(SCALE)

verdicts: setup-vision ## each claim's verdict from your runs in RESULTS beside the committed one, for the figures you ran, and whether your CPU family is the committed logs'
	$(PY) -m figures.verdicts --results $(RESULTS) --scale $(SCALE)

fig%: setup-vision ## draw Figure N from the logs in LOGS: make fig1 ... make fig17 (figures/out/figN.pdf, .png)
	$(PY) -m figures.registry fig$* --results $(LOGS) --scale $(SCALE)

table%: setup-vision ## Table N from the logs in LOGS: make table1, make table2 (figures/out/tableN.md, .tex)
	$(PY) -m figures.registry table$* --results $(LOGS) --scale $(SCALE)

figure: setup-vision ## draw one id of any name: make figure ID=iwslt_overfit
	$(PY) -m figures.registry $(ID) --results $(LOGS) --scale $(SCALE)

figures: setup-vision ## draw the figures and tables whose logs in LOGS or code changed, one process per core (figures/out/; SCALE=paper: figures/out/paper/)
	$(PY) -m figures.registry --results $(LOGS) --scale $(SCALE)

status: setup-vision ## per figure: runs and seeds finished, unfinished, missing, unreadable, shared from other sweeps
	$(PY) -m figures.collect --results $(LOGS) --scale $(SCALE)

report: setup-vision ## paper/report.md and .html: each figure, the paper's numbers beside the logs', every claim checked
	$(PY) -m figures.report --results $(LOGS)

regime: setup ## the regime check: every mini stand-in's invariants from the logs in LOGS (exit 0: each holds or is declared unmet)
	$(PY) -m figures.regime --results $(LOGS)

reproduce-all: setup ## run every sweep at SCALE here into RESULTS, JOBS jobs at once, pack the logs into LOGS, then figures and report
	$(PY) -m figures.reproduce_all --results $(RESULTS) --into $(LOGS) --scale $(SCALE) $(if $(JOBS),--jobs $(JOBS))
	$(MAKE) figures report

dryrun: setup-vision ## validate and list every job of FIG's sweep at SCALE, run nothing
	$(PY) src/run.py -m sweep=$(FIG) scale=$(SCALE) dry_run=true

preflight: setup ## first thing on a GPU node: each paper workload at its paper shape (2 models x GPUs/2), killed and resumed; one table of checks, memory, throughput (no GPU: CPU sizes; ONLY=criteo ... for some)
	$(PY) -m codistill_experiments.preflight $(if $(ONLY),--only $(ONLY))

soak: setup ## kill a mini run at random moments 50 times; report how many resumed exactly
	$(PY) -m benchmarks.soak_resume --kills 50

bench: setup ## measure bits sent, engine overhead, a slow network (as root), the loop, collect and the sweeps on the cores, a model job killed and rejoining, the paper path's reads, the peer check's cost, composing a sweep; write benchmarks/results.md (~35 min)
	$(PY) -m benchmarks.bench

lint: setup ## ruff over every Python file and the layering contracts (both configured in pyproject.toml)
	$(VENV)/bin/ruff check .
	PYTHONPATH=library/src:src:. $(VENV)/bin/lint-imports

test: setup lint ## ruff and the layering contracts (make lint), then the whole test suite (multi-process gloo tests and the real Slurm's included; CI's command)
	$(PY) -m pytest -q -n auto --dist loadfile --durations=20 tests

test-fast: setup lint ## make lint and every test not marked slow (a few minutes; each feature keeps a multi-process test)
	$(PY) -m pytest -q -n auto --dist loadfile --durations=10 -m 'not slow' tests

clean: ## remove figure outputs and the Hydra bookkeeping folder (keeps runs)
	rm -rf figures/out $(RESULTS)/hydra
