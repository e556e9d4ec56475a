# Two commands on a fresh machine: `make up` (the main job) and `make test` (the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: up test install dev lint bench clean

# llama.cpp compiles for the building CPU by default (-march=native), and so takes AMX on a
# Sapphire Rapids host even where the hypervisor does not enable it: an illegal instruction at
# the model's first matrix product (seen on this project's Firecracker VMs). Build for x86-64-v3
# instead (AVX2, FMA, F16C), which every x86 server of the last decade runs; ignored elsewhere.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

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
