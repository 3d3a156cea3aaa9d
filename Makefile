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

export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: help setup run ingest validate features train evaluate report register promote rollback history score quality \
        test test-fast lint format docs bench ui clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with the dev extra

run: $(STAMP) ## all stages end to end on CONFIG, then score with the champion
	$(PIPE) run --config $(CONFIG)

ingest: $(STAMP) ## read or generate the source, mapped onto the contract
	$(PIPE) ingest --config $(CONFIG)

validate: ingest ## validate against the data contract; quarantine bad rows
	$(PIPE) validate --config $(CONFIG)

features: validate ## affordability features and the skipped-feature report
	$(PIPE) features --config $(CONFIG)

train: features ## train PD and limit models; log an MLflow run
	$(PIPE) train --config $(CONFIG)

evaluate: $(STAMP) ## evaluate the last trained run on its holdout (after train)
	$(PIPE) evaluate --config $(CONFIG)

report: evaluate ## HTML evaluation report with plots, logged to the run

register: $(STAMP) ## register the scoring artifact as challenger and run the promotion gate (after evaluate)
	$(PIPE) register --config $(CONFIG)

promote: $(STAMP) ## force VERSION to champion: make promote VERSION=3 REASON="..."
	$(PIPE) promote --config $(CONFIG) --version "$(VERSION)" --reason "$(REASON)"

rollback: $(STAMP) ## move champion back to the previous champion version
	$(PIPE) rollback --config $(CONFIG) --reason "$(or $(REASON),rollback)"

history: $(STAMP) ## alias history (audit trail) of the registered model
	$(PIPE) history --config $(CONFIG)

score: $(STAMP) ## batch-score INPUT to OUTPUT with MODEL (defaults: the config's champion, its ingested file)
	$(PIPE) score --config $(CONFIG) $(if $(MODEL),--model "$(MODEL)") $(if $(INPUT),--input "$(INPUT)") $(if $(OUTPUT),--output "$(OUTPUT)")

test: $(STAMP) ## the test suite
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP) ## tests without the slow end-to-end, server and Spark ones
	$(BIN)/python -m pytest -q -m "not slow and not server and not spark" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check pipeline tests bench notebooks
	$(BIN)/ruff format --check pipeline tests bench notebooks

format: $(STAMP)
	$(BIN)/ruff format pipeline tests bench notebooks
	$(BIN)/ruff check --fix pipeline tests bench notebooks

quality: $(STAMP) ## PD model vs baselines on the same splits (markdown for docs/model-quality.md)
	$(PIPE) quality --config $(CONFIG)

docs: $(STAMP) ## regenerate docs/features.md and docs/data-contract.md from the code
	$(PIPE) docs

bench: $(STAMP) ## benchmarks; writes docs/benchmarks.md
	$(BIN)/python -m bench.run

ui: $(STAMP) ## MLflow UI on http://127.0.0.1:5000 over the embedded store
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/output/mlflow.db

clean: ## remove outputs (keeps .venv)
	rm -rf output mlruns mlflow.db .pytest_cache .hypothesis .ruff_cache
