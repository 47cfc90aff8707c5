# The README's two commands: `make demo` and `make test`. Both start from nothing: they
# create .venv, build the release extension into it and fetch the model fixtures.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ACTIVATE := VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH

.PHONY: demo demo-all test build fixtures test-rust test-python bench clean


$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.demo-deps: requirements/demo.txt | $(PY)
	$(PY) -m pip install -q -r requirements/demo.txt
	touch $@

$(VENV)/.test-deps: requirements/test.txt requirements/demo.txt | $(PY)
	$(PY) -m pip install -q -r requirements/test.txt
	touch $@

build: $(VENV)/.demo-deps
	$(ACTIVATE) maturin develop --release -q

fixtures: $(VENV)/.demo-deps
	$(PY) scripts/fixtures.py

# DATA=dir: another BEIR-layout collection; CE_MODEL=id-or-dir: another cross-encoder instead of
# the demo's own (scripts/demo_model.py trains it on the first run, ~12 min, then it is cached).
demo: build fixtures
	DATA="$(DATA)" CE_MODEL="$(CE_MODEL)" $(PY) scripts/demo.py

demo-all: build fixtures
	CE_MODEL="$(CE_MODEL)" $(PY) scripts/demo.py --all --write-results benches/RESULTS.md

# The training parity test (tests/train_parity.rs) runs scripts/train_reference.py with
# the venv's PyTorch on the model fixtures.
test-rust: $(VENV)/.test-deps fixtures
	CROSSRANK_PYTHON=$(abspath $(PY)) cargo test --release -q

test-python: $(VENV)/.test-deps build fixtures
	$(PY) -m pytest -q tests

test: test-rust test-python

bench: $(VENV)/.test-deps build fixtures
	$(PY) -m pip install -q -r requirements/bench.txt
	$(PY) benches/bench_cross_encoder.py
	$(PY) benches/bench_memory.py

clean:
	rm -rf $(VENV) .cache target
