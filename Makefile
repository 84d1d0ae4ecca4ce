# osal: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install run test bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install osal with its test tools

run: $(STAMP) ## install if needed, then run the default job (LfOSA on the embedded digits data)
	$(PY) src/train.py $(ARGS)

test: $(STAMP) ## install if needed, then run the test suite
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) ## selection time of every strategy on a 50,000-example synthetic pool
	$(PY) benchmarks/selection_time.py

clean: ## remove outputs and caches (not .venv)
	rm -rf outputs multirun .pytest_cache
