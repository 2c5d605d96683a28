# Set-up installs the CPU build of torch where none is present (TORCH below; pip takes a CPU wheel where the machine
# provides one);
# a bare `pip install torch` would pull a multi-GB CUDA build on a CPU machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-fast lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"

demo: setup
	$(BIN)/multiview simulate --teachers 2 --out runs/demo

test: setup
	$(BIN)/python -m pytest -n 2  # two workers: the suite is mostly single-threaded subprocesses
	$(BIN)/ruff check .

test-fast: setup  # the inner loop: everything but the slow (end-to-end) tests, under two minutes on 2 cores
	$(BIN)/python -m pytest -n 2 -m "not slow"

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
