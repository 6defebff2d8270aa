# Two commands on a fresh machine: `make run` (pipeline) and `make test` (test suite).
# Both create the virtualenv and install the pinned stack on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run repro test lint clean-venv

install: $(INSTALLED)

$(INSTALLED): requirements.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	@touch $@

## run: the whole pipeline (dvc repro)
run: install
	dvc repro

## test: the test suite
test: install
	$(BIN)/python -m pytest

## lint: ruff
lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
