# osal: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install labelstudio run test test-fast lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps baal==2.1.0
	touch $(STAMP)

install: $(STAMP) ## create .venv and install osal with its test tools

LS_VENV ?= .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
LABEL_STUDIO_VERSION ?= 1.23.2

# Label Studio pins its own numpy and Django: it lives in an environment of its own, and osal talks to it
# over its REST API only (docs/annotation.md)
$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet label-studio==$(LABEL_STUDIO_VERSION)
	touch $(LS_STAMP)

labelstudio: $(LS_STAMP) ## create .venv-labelstudio with Label Studio (start it: .venv-labelstudio/bin/label-studio start)

run: $(STAMP) ## install if needed, then run the default job (LfOSA on the embedded digits data)
	$(PY) src/train.py $(ARGS)

test: $(STAMP) ## install if needed, then run the whole test suite
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP) ## the inner loop: every test but the slow end-to-end ones (pytest -m "not slow")
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff: pyflakes, pycodestyle, import order (configured in pyproject.toml)
	$(VENV)/bin/ruff check .

SHARED_DATA ?= ../shared/data
BENCH_DATA ?= /tmp/osal-bench-data

bench: $(STAMP) ## selection time per strategy and pool size, Lightning against plain PyTorch, whole runs (docs/benchmarks.md)
	$(PY) benchmarks/selection_time.py --pool 10000 100000
	$(PY) benchmarks/fit_overhead.py --labeled 500
	$(PY) benchmarks/run_time.py --datasets digits
	@if [ -f $(SHARED_DATA)/materialize.py ]; then \
		$(PY) $(SHARED_DATA)/materialize.py $(BENCH_DATA) mnist && \
		$(PY) benchmarks/fit_overhead.py --dataset mnist --data-dir $(BENCH_DATA) --labeled 3000 --epochs 4 --repeats 2 && \
		$(PY) benchmarks/run_time.py --datasets mnist --data-dir $(BENCH_DATA); \
	else echo "no $(SHARED_DATA)/materialize.py: MNIST benchmarks skipped (set SHARED_DATA=... to run them)"; fi

clean: ## remove outputs and caches (not .venv)
	rm -rf outputs multirun .pytest_cache
