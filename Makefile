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
# sweep lists, at mini scale the counts its claims' power analysis declares (paper/power.yaml).
SEEDS ?= 3

.DEFAULT_GOAL := help
.PHONY: help setup setup-vision reproduce verdicts figure figures status report regime reproduce-all dryrun preflight soak bench test test-fast clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: FIG=$(FIG) SCALE=$(SCALE) SEEDS=$(SEEDS) RESULTS=$(RESULTS) LOGS=$(LOGS) JOBS=$(JOBS)"

# Two installs: the vision path (the library, src/run.py on the vision, tabular and language-model
# workloads, the figures and the report) builds nothing; everything adds the translation extras
# (fairseq's extensions are compiled: about 4 minutes on 2 cores), torchft and the test tools.
$(VENV)/.installed-vision: requirements.txt constraints.txt pyproject.toml library/pyproject.toml
	$(PYTHON_BASE) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(VENV)/bin/pip install -e ./library -e '.[experiments,figures]'
	touch $@

$(VENV)/.installed: $(VENV)/.installed-vision
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(VENV)/bin/pip install -e ./library -e '.[all]'
	touch $@

setup-vision: $(VENV)/.installed-vision ## create .venv for the vision path: src/run.py on every workload but translation, figures, report (no fairseq)
setup: $(VENV)/.installed ## create .venv with the whole pinned stack: the vision path, translation (builds fairseq, about 4 min), torchft, the tests

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

test: setup ## check the layering contracts (pyproject.toml), then run the whole test suite (multi-process gloo tests and the real Slurm's included; CI's command)
	PYTHONPATH=library/src:src:. $(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n auto --dist loadfile --durations=20 tests

test-fast: setup ## the layering contracts and every test not marked slow (a few minutes; each feature keeps a multi-process test)
	PYTHONPATH=library/src:src:. $(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n auto --dist loadfile --durations=10 -m 'not slow' tests

clean: ## remove figure outputs and the Hydra bookkeeping folder (keeps runs)
	rm -rf figures/out $(RESULTS)/hydra
