# The README's two commands: `make demo` and `make test`. Both start from nothing: they
# create .venv, build the release extension into it and fetch the model fixtures.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ACTIVATE := VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH

.PHONY: demo demo-all test build fixtures lint test-rust test-python test-aarch64 aarch64-toolchain bench clean


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
	CE_MODEL="$(CE_MODEL)" $(PY) scripts/demo.py --all --write-results benches/RESULTS.md --plot benches/tradeoff.png

# The training parity test (tests/train_parity.rs) runs scripts/train_reference.py with
# the venv's PyTorch on the model fixtures.
test-rust: $(VENV)/.test-deps fixtures
	CROSSRANK_PYTHON=$(abspath $(PY)) cargo test --release -q

test-python: $(VENV)/.test-deps build fixtures
	$(PY) -m pytest -q tests

# The Rust unit tests on aarch64: cross-built (Debian's gcc-aarch64-linux-gnu links) and
# run under qemu-user twice, so both int8 paths are exercised on an x86 machine: a CPU
# with the dotprod extension (`max`: the NEON sdot kernel, compared bit for bit with the
# portable one) and one without (`cortex-a72`, Armv8.0: only the portable kernel, and
# precision="int8" falls back to float32). The f32 paths are NEON on both (baseline).
# The environment is set here rather than in a .cargo/config so other builds are untouched;
# the aarch64 objects go to target/aarch64-unknown-linux-gnu, beside the host build's.
AARCH64 := aarch64-unknown-linux-gnu
AARCH64_SYSROOT := /usr/aarch64-linux-gnu
AARCH64_CPUS := max cortex-a72
AARCH64_ENV := CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
	AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $(AARCH64_SYSROOT)"
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Installs the cross toolchain, the qemu user emulator and Rust's aarch64 std if missing.
aarch64-toolchain:
	@if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null \
		|| [ ! -e $(AARCH64_SYSROOT)/lib/libc.so.6 ]; then \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q \
			--no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; \
	fi
	@rustup target list --installed | grep -qx $(AARCH64) || rustup target add $(AARCH64)

test-aarch64: aarch64-toolchain
	$(AARCH64_ENV) cargo test --release -q --lib --target $(AARCH64) --no-run
	@for cpu in $(AARCH64_CPUS); do \
		echo "== aarch64 unit tests under qemu -cpu $$cpu"; \
		QEMU_CPU=$$cpu $(AARCH64_ENV) cargo test --release -q --lib --target $(AARCH64) \
			|| exit 1; \
	done

# Style and consistency: rustfmt, clippy (core alone and with the bindings) with warnings as
# errors, ruff on the Python tree. The stub check (tests/test_stubs.py) runs with the tests.
lint: $(VENV)/.test-deps
	@for c in rustfmt clippy; do rustup component list --installed 2>/dev/null | grep -q "^$$c" \
		|| rustup component add $$c; done
	cargo fmt --check
	cargo clippy --release -q --all-targets -- -D warnings
	cargo clippy --release -q --all-targets --features python,server -- -D warnings
	$(VENV)/bin/ruff check python tests scripts benches examples

test: lint test-rust test-python test-aarch64

bench: $(VENV)/.test-deps build fixtures
	$(PY) -m pip install -q -r requirements/bench.txt
	$(PY) benches/bench_cross_encoder.py
	$(PY) benches/bench_memory.py

clean:
	rm -rf $(VENV) .cache target
