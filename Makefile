# Credit assessment pipeline. Every target takes CONFIG=path (default configs/default.yaml).
CONFIG ?= configs/default.yaml
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIPE := $(BIN)/python -m pipeline
MODEL ?=
INPUT ?=
OUTPUT ?=
PYTEST_ARGS ?=
DASK ?=

export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: help setup run $(STAGES) review report promote rollback history quality test test-fast lint format docs bench ui clean

# Stage names and their help come from the stage table (pipeline/stages/__init__.py), the one place
# the stage order is written; importing it needs no installed package.
STAGES := $(shell $(PYTHON) -m pipeline.stages)

help:
	@{ $(PYTHON) -m pipeline.stages help | sed 's/^/make /'; \
	   grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/; s/^/make /'; } | column -t -s "$$(printf '\t')"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with the dev extra

run: $(STAMP) ## every stage in order on CONFIG, ending with scoring by the champion (DASK=tcp://host:8786 or local)
	$(PIPE) run --config $(CONFIG) $(if $(DASK),--dask "$(DASK)")

# make <stage>: that stage and the ones before it, skipping those already up to date.
$(filter-out score,$(STAGES)): $(STAMP)
	$(PIPE) run --config $(CONFIG) --to $@ --resume $(if $(DASK),--dask "$(DASK)")

report: evaluate ## the HTML evaluation report (written by evaluate)

promote: $(STAMP) ## force VERSION to champion: make promote VERSION=3 REASON="..."
	$(PIPE) promote --config $(CONFIG) --version "$(VERSION)" --reason "$(REASON)"

rollback: $(STAMP) ## move champion back to the previous champion version
	$(PIPE) rollback --config $(CONFIG) --reason "$(or $(REASON),rollback)"

history: $(STAMP) ## alias history (audit trail) of the registered model
	$(PIPE) history --config $(CONFIG)

score: $(STAMP)
	$(PIPE) score --config $(CONFIG) $(if $(MODEL),--model "$(MODEL)") $(if $(INPUT),--input "$(INPUT)") $(if $(OUTPUT),--output "$(OUTPUT)")

# make review: the monthly account review (docs/accounts.md). Without CONFIG it uses configs/accounts.yaml (the
# synthetic portfolio); without MODEL it first brings ingest..register up to date and reviews with the champion.
REVIEW_CONFIG = $(if $(filter command line environment,$(origin CONFIG)),$(CONFIG),configs/accounts.yaml)
review: $(STAMP) ## monthly account review: PD, early warning, limit actions, treatments, plans (kind: accounts)
	$(if $(MODEL),,$(PIPE) run --config $(REVIEW_CONFIG) --to register --resume)
	$(PIPE) review --config $(REVIEW_CONFIG) $(if $(MODEL),--model "$(MODEL)") $(if $(INPUT),--input "$(INPUT)") $(if $(OUTPUT),--output "$(OUTPUT)")

test: $(STAMP) ## the test suite (one worker per core; a module's tests share a worker and its fixtures)
	$(BIN)/python -m pytest -q -n auto --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP) ## tests without the slow end-to-end, server and Spark ones
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow and not server and not spark and not browser" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (120-character lines), ruff format, mypy over pipeline/
	$(BIN)/ruff check pipeline tests bench notebooks
	$(BIN)/ruff format --check pipeline tests bench notebooks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format pipeline tests bench notebooks
	$(BIN)/ruff check --fix pipeline tests bench notebooks

quality: $(STAMP) ## PD model vs baselines on the same splits, CV_FOLDS=5 to cross-validate (docs/model-quality.md)
	$(PIPE) quality --config $(CONFIG) $(if $(CV_FOLDS),--cv-folds $(CV_FOLDS))

docs: $(STAMP) ## regenerate docs/features.md and docs/data-contract.md from the code
	$(PIPE) docs

bench: $(STAMP) ## benchmarks; writes docs/benchmarks.md
	$(BIN)/python -m bench.run

ui: $(STAMP) ## MLflow UI on http://127.0.0.1:5000 over the embedded store
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/output/mlflow.db

clean: ## remove outputs (keeps .venv)
	rm -rf output mlruns mlflow.db .pytest_cache .hypothesis .ruff_cache
