# flowscope developer entry points. `make test` is what CI runs (.ci/run).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test fuzz lint typecheck venv bench bench-models bench-latency bench-live model kdd-model docs clean clean-jit

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,train,keras]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m flowscope.flows.registry > docs/features.md

## The whole test suite: lint, type check, tests (installs everything it needs).
test: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

## Property tests with fresh random examples, FUZZ_RUNS times (the gate replays fixed ones).
FUZZ_RUNS ?= 10
FUZZ_TESTS ?= $(shell grep -l '@given\|schemathesis' tests/test_*.py)
fuzz: $(STAMP)
	for i in $$(seq $(FUZZ_RUNS)); do \
	  FLOWSCOPE_HYPOTHESIS=explore $(BIN)/pytest -q -x -p no:cacheprovider $(FUZZ_TESTS) || exit 1; \
	done

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_flows.py

bench-models: $(STAMP)
	$(BIN)/python benchmarks/bench_models.py

## Attack start → first alert, live in the traffic lab and replayed (root; ~10 min).
bench-latency: $(STAMP)
	$(BIN)/python benchmarks/bench_latency.py

## Live throughput with model, rules and all sinks vs NFStream (root; tcpreplay; ~10 min).
bench-live: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/python benchmarks/bench_live.py

## Rebuild the shipped default model from scratch (lab runs need root; see docs/models.md).
model: $(STAMP)
	bash scripts/make-model.sh

## Rebuild the shipped NSL-KDD detector (docs/kdd.md; ~3 minutes).
kdd-model: $(STAMP)
	$(BIN)/flowscope kdd train --data ../shared/data/nsl-kdd -o src/flowscope/data/models/kdd-dnn

## numba's cache key does not follow inlined callees: after editing a compiled module, clear it.
clean-jit:
	find src -name '*.nbi' -delete -o -name '*.nbc' -delete

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
