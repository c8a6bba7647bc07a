# The two set-up-and-run commands of the README:
#   make demo   - set up a venv and run the main job on the embedded default model
#   make test   - set up a venv (with test tools) and run the whole check suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines get the CPU wheel of torch first, so pip never pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
EXTRA ?= cpu

.PHONY: setup setup-dev demo app test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[$(EXTRA)]"
	touch $@

# Test tools plus the optional offline dlib backend (68-point landmarks, identity embedding), so its tests run.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[$(EXTRA),dev,dlib]"
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

demo: setup
	$(BIN)/python -m d2a_desktop.launch

app: setup
	$(BIN)/d2a-desktop

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
