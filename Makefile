# Two commands on a fresh machine: `make up` (the main job) and `make test` (the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: up test install dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[fast,local]'

dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,fast,local]'

up: install
	$(BIN)/airisk up

lint: dev
	$(BIN)/ruff check .

test: dev
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: dev
	$(BIN)/python bench/probe_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
