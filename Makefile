# Two commands on a fresh machine: `make run` (pipeline, then a built Bento) and `make test`.
# Both create the virtualenv and install the pinned stack on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 3000
export PATH := $(abspath $(BIN)):$(PATH)
export BENTOML_DO_NOT_TRACK := true
# Prediction logs of `make serve`; the container uses a volume instead.
export PREDICTION_LOG_DIR ?= $(CURDIR)/logs

BENTO_NAME := prediction_service

.PHONY: install run repro bento serve report monitor test test-unit lint bench bench-smoke clean-venv

install: $(INSTALLED)

$(INSTALLED): requirements.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	@touch $@

## run: the whole pipeline (dvc repro), then build the Bento and print its tag
run: repro bento

repro: install
	dvc repro

## bento: package the service and the champions into a Bento
# `stages.package` first: it fills this machine's BentoML model store from models/ (a no-op when the models are
# there). `dvc repro` skips the stage when its output is unchanged, e.g. on a fresh clone or after `dvc pull`.
bento: install
	@$(BIN)/python -m stages.package
	@bentoml build --output tag | tail -n 1 | sed 's/^__tag__://' > .bento-tag
	@echo "Built Bento: $$(cat .bento-tag)  (serve it: bentoml serve $$(cat .bento-tag))"

## serve: the development server on http://127.0.0.1:$(PORT)
serve: install
	bentoml serve --host 127.0.0.1 --port $(PORT)

## report: summary of the prediction log (volume, errors, latency, predictions)
report: install
	$(BIN)/python -m monitoring.report --log-dir $(PREDICTION_LOG_DIR)

## monitor: drift, latency and error report of the log (TASK=housing SINCE=24h) in reports/; exit 1 on drift
TASK ?= housing
SINCE ?= 24h
monitor: install
	$(BIN)/python -m monitoring.monitor --task $(TASK) --since $(SINCE) --log-dir $(PREDICTION_LOG_DIR) --out reports

## test: the whole test suite, every tier (tests/unit, tests/pipeline, tests/service, tests/container)
test: install
	$(BIN)/python -m pytest

## test-unit: the in-process tier only (under a minute)
test-unit: install
	$(BIN)/python -m pytest tests/unit

## bench: serving against the peers + pipeline timings (~16 min); writes bench/RESULTS.md, bench/results.json
## (BENCH_ARGS="--pipeline-peer REV" also times the pipeline at git revision REV, interleaved: about +5 min)
BENCH_ARGS ?=
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

## bench-smoke: the same harness, a few seconds per server, into .artifacts/bench-smoke/ (needs `make run` first)
bench-smoke: install
	$(BIN)/python -m bench --smoke

## lint: ruff
lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

# make container / container-base / container-tools
include scripts/container.mk
