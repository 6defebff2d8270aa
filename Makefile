# Two commands on a fresh machine: `make run` (pipeline, then a built Bento) and `make test`.
# Both create the virtualenv and install the pinned stack on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEAM_INSTALLED := $(VENV)/.installed-team
TEST_INSTALLED := $(VENV)/.installed-test
DOCS_INSTALLED := $(VENV)/.installed-docs
PORT ?= 3000
export PATH := $(abspath $(BIN)):$(PATH)
export BENTOML_DO_NOT_TRACK := true
# The prediction log: PREDICTION_LOG_URL (sqlite:///... or postgresql://...), else PREDICTION_LOG_DIR, else
# ~/.local/share/prediction-service/prediction-log; serve, report, monitor and prune all use the same one.

BENTO_NAME := prediction_service

.PHONY: install install-team install-test install-docs run repro check-params release start-over bento store rollback serve demo \
	report monitor prune test test-unit lint docs docs-serve docs-examples bench bench-smoke mlflow-server clean-venv

install: $(INSTALLED)

$(INSTALLED): requirements.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	@touch $@

## install-team: DVC's SSH and S3 remote plugins and the MLflow server's PostgreSQL driver (README "Team setup")
install-team: $(TEAM_INSTALLED)

$(TEAM_INSTALLED): $(INSTALLED) requirements-team.txt constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-team.txt -c constraints.txt
	@touch $@

## install-test: what only the tests and the linter need (pytest, ruff, shap: requirements-test.txt)
install-test: $(TEST_INSTALLED)

$(TEST_INSTALLED): $(INSTALLED) requirements-test.txt constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-test.txt -c constraints.txt
	@touch $@

## install-docs: what only the documentation site needs (mkdocs, its theme, mkdocstrings: requirements-docs.txt)
install-docs: $(DOCS_INSTALLED)

$(DOCS_INSTALLED): $(INSTALLED) requirements-docs.txt constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-docs.txt -c constraints.txt
	@touch $@

## run: the whole pipeline (dvc repro), its verdicts released to the MLflow registry, then a built Bento
run: repro release bento

repro: install check-params
	dvc repro

## check-params: params.yaml validated as a whole (stages/params_schema.py; dvc.yaml's first stage does it too)
check-params: install
	@$(BIN)/python -m stages.params_schema --check

## release: apply the gate's verdicts in the work tree (metrics/promotion/) to the MLflow registry, the only step
## that moves the aliases `champion`, `challenger`, `previous-champion` (TASK=<task> for one task); idempotent
RELEASE_TASKS = $(if $(filter command line environment,$(origin TASK)),$(TASK))
release: install
	$(BIN)/python -m stages.release $(RELEASE_TASKS)

## start-over: forget the champion this machine released for TASK, on purpose (a registry lost for good): the
## next gate decides as on a fresh clone (docs/guardrails.md)
start-over: install
	@test -n "$(RELEASE_TASKS)" || { echo "make start-over: name the task, TASK=<task>" >&2; exit 2; }
	$(BIN)/python -m stages.release --start-over $(RELEASE_TASKS)

## store: save the served set (models/<task>/bento_tags.json: exact tags) into this machine's BentoML store
store: install
	@$(BIN)/python -m stages.bento_store

## bento: the Bento of the served set: the service, the served set and exactly the models it names
bento: store
	@bentoml build --output tag | tail -n 1 | sed 's/^__tag__://' > .bento-tag
	@echo "Built Bento: $$(cat .bento-tag)  (serve it: .venv/bin/bentoml serve $$(cat .bento-tag))"

## rollback: put the previous champion of TASK back in service: registry alias `champion` back on the version
## `previous-champion` names (the rolled-back one is tagged and becomes the challenger), re-run the gate and the
## stages after it (DVC cannot see the registry change), rebuild the Bento
rollback: install
	$(BIN)/python -m stages.rollback $(TASK)
	dvc repro -f -s promote@$(TASK)
	dvc repro
	$(MAKE) bento

## serve: the development server on http://127.0.0.1:$(PORT)
serve: store
	bentoml serve --host 127.0.0.1 --port $(PORT)

## demo: every task's test split sent to the running server (make serve, another shell) at RATE requests/s per task
## for DURATION s, each true value sent back as feedback: make report, make monitor and the dashboard then have data
RATE ?= 10
DURATION ?= 60
demo: install
	$(BIN)/python -m monitoring.demo --url http://127.0.0.1:$(PORT) --rate $(RATE) --duration $(DURATION)

## report: summary of the prediction log (volume, errors, latency, predictions)
report: install
	$(BIN)/python -m monitoring.report

## monitor: drift, latency and error report of the log (TASK=<task>, by default the first of params.yaml `tasks`;
## SINCE=24h) in reports/, then champion vs challenger on the clients' feedback: `python -m monitoring.check` (both
## always run). make exits with its code,
## 0-6 (README "Monitoring"): the drift monitor's when it is not 0 (1 drift, 2 nothing to judge, 3 bug, 4 missing
## values), else the performance one's (0, 5 challenger significantly better, 6 significantly worse, 2, 3).
## GNU make would turn any failure into its own 2: the code ends make through $(exit CODE), a function loaded from
## scripts/make_exit.c (make's `load` directive), compiled on first use; without a C compiler, make's 2.
TASK ?= $(shell $(BIN)/python -m domain.tasks --first)
SINCE ?= 24h
MONITOR_OUT ?= reports
MAKE_EXIT ?= .make/make_exit.so
ifneq ($(filter monitor,$(MAKECMDGOALS)),)
-load $(MAKE_EXIT)
endif
$(MAKE_EXIT): scripts/make_exit.c
	@mkdir -p $(dir $@)
	@$(CC) -shared -fPIC -O2 -o $@ $< 2>/dev/null || echo "make monitor: no C compiler, so make exits 2 on any non-zero code" >&2
.PHONY: monitor-run
monitor-run: install
	@mkdir -p .make; code=0; $(BIN)/python -m monitoring.check --task "$(TASK)" --since $(SINCE) --out $(MONITOR_OUT) \
		|| code=$$?; echo $$code > .make/monitor-$(TASK).code
monitor: monitor-run
	@$(if $(filter %make_exit.so,$(.LOADED)),$(exit $(file < .make/monitor-$(TASK).code)))exit $(file < .make/monitor-$(TASK).code)

## prune: delete prediction-log rows older than DAYS (default 30), in bounded batches, beside a running service
DAYS ?= 30
prune: install
	$(BIN)/python -m prediction_log.prune --days $(DAYS)

## docs: the documentation site (docs/, mkdocs.yml) built into site/ in strict mode: a broken link, anchor or API
## reference fails; docs-serve: the same, served with live reload on http://127.0.0.1:8000
export NO_MKDOCS_2_WARNING := 1
docs: install-docs
	$(BIN)/mkdocs build --strict  # not --quiet: it hides the warnings strict mode counts

docs-serve: install-docs
	$(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

## docs-examples: the answers the docs print after each curl, written anew from a development server on the served
## set (a free port, a log of its own); tests check them against the committed run
docs-examples: store
	$(BIN)/python -m scripts.docs_examples README.md docs/*.md

## test: the whole test suite, every tier (tests/unit, tests/pipeline, tests/service, tests/container);
## the team-mode tests need the team plugins and drivers too. TEST_WORKERS pytest-xdist processes, each
## taking a whole test file at a time (its module fixtures built once); 2 fits a 2-core machine (36-40 min
## instead of 56 for the serial run, measured 2026-12-03); TEST_WORKERS=0 runs in this process, serially
TEST_WORKERS ?= 2
test: install-test install-team
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

## test-unit: the in-process tier only (under a minute)
test-unit: install-test
	$(BIN)/python -m pytest tests/unit

## bench: serving against the peers + pipeline timings (~16 min); writes bench/RESULTS.md, bench/results.json
## (BENCH_ARGS="--pipeline-peer REV" also times the pipeline at git revision REV, interleaved: about +5 min)
BENCH_ARGS ?=
bench: install
	bash scripts/install-bench-tools.sh
	$(BIN)/python -m bench $(BENCH_ARGS)

## bench-smoke: the same harness, a few seconds per server, into .artifacts/bench-smoke/ (needs `make run` first)
bench-smoke: install
	$(BIN)/python -m bench --smoke

## mlflow-server: a team's MLflow tracking server on PostgreSQL, artifacts proxied (clients need no storage
## credentials). MLFLOW_BACKEND_STORE_URI=postgresql://user:password@host:5432/mlflow, MLFLOW_ARTIFACTS_DESTINATION
## (a directory or s3://bucket/prefix), MLFLOW_HOST, MLFLOW_PORT.
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
MLFLOW_ARTIFACTS_DESTINATION ?= $(CURDIR)/mlflow-server-artifacts
mlflow-server: install-team
	@test -n "$(MLFLOW_BACKEND_STORE_URI)" || { echo "set MLFLOW_BACKEND_STORE_URI=postgresql://..." >&2; exit 2; }
	mlflow server --host $(MLFLOW_HOST) --port $(MLFLOW_PORT) --backend-store-uri "$(MLFLOW_BACKEND_STORE_URI)" \
	    --artifacts-destination "$(MLFLOW_ARTIFACTS_DESTINATION)"

## lint: ruff
lint: install-test
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

# make container / container-base / container-tools
include scripts/container.mk
