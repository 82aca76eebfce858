# codistill: `make help` lists the targets.
PYTHON_BASE ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FIG ?= fig2
SCALE ?= mini
RESULTS ?= results

.DEFAULT_GOAL := help
.PHONY: help setup reproduce fig2 figures dryrun soak test clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: FIG=$(FIG) SCALE=$(SCALE) RESULTS=$(RESULTS)"

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	$(PYTHON_BASE) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(VENV)/bin/pip install -e .
	touch $@

setup: $(VENV)/.installed ## create .venv with the pinned stack (first time: ~5 min, builds fairseq)

reproduce: setup ## run FIG's sweep at SCALE on this machine, then draw it (default: Figure 2, mini)
	CODISTILL_RESULTS=$(RESULTS) $(PY) src/run.py -m sweep=$(FIG) scale=$(SCALE)
	$(PY) figures/$(FIG).py --results $(RESULTS) --scale $(SCALE)

fig2: setup ## draw Figure 2 from the logs under RESULTS (figures/out/fig2.pdf, .png)
	$(PY) figures/fig2.py --results $(RESULTS) --scale $(SCALE)

figures: fig2 ## draw every figure that has a pipeline so far

dryrun: setup ## validate and list every job of FIG's sweep at SCALE, run nothing
	$(PY) src/run.py -m sweep=$(FIG) scale=$(SCALE) dry_run=true

soak: setup ## kill a mini run at random moments 50 times; report how many resumed exactly
	$(PY) benchmarks/soak_resume.py --kills 50

test: setup ## run the test suite (multi-process gloo tests included)
	$(PY) -m pytest -q tests

clean: ## remove figure outputs and the Hydra bookkeeping folder (keeps runs)
	rm -rf figures/out $(RESULTS)/hydra
