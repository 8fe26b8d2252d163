# Two entry points: `make demo` and `make test`. Each bootstraps .venv (and the dashboard's
# Chart.js, with npm) on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# crev_native, the compiled signature kernel (native/, Rust), built from source by pip with maturin
NATIVE_STAMP := $(VENV)/.native
NATIVE_SRC := $(wildcard native/src/*.rs) native/Cargo.toml native/Cargo.lock native/pyproject.toml
WEB := src/crev/web
# npm ci empties node_modules first, so this stamp exists only after a complete install of the lock.
NPM_STAMP := $(WEB)/node_modules/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml | $(NPM_STAMP)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The kernel is optional: without cargo, or if its build fails, crev verifies signatures with
# PyNaCl (the reference; the kernel's tests skip) and the next make tries again.
$(NATIVE_STAMP): $(NATIVE_SRC) | $(STAMP)
	@if command -v cargo >/dev/null 2>&1; then \
	  echo "make: building crev_native (native/, Rust) with cargo"; \
	  if $(BIN)/pip install -q ./native; then touch $(NATIVE_STAMP); \
	  else echo "make: crev_native did not build: signatures are verified with PyNaCl" >&2; fi; \
	else echo "make: cargo not found: crev_native is not built; signatures are verified with PyNaCl"; fi

# The dashboard's browser libraries (Chart.js), exactly as locked; served at /vendor.
$(NPM_STAMP): $(WEB)/package-lock.json $(WEB)/package.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "make: npm not found. The dashboard needs Node.js' npm to install Chart.js from" >&2; \
	  echo "      $(WEB)/package-lock.json (Debian: apt-get install npm; .ci/run installs it)." >&2; \
	  exit 1; }
	npm ci --prefix $(WEB) --no-audit --no-fund
	touch $(NPM_STAMP)

demo: $(STAMP) $(NATIVE_STAMP)
	$(BIN)/crev demo

lint: $(STAMP) $(NATIVE_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP) $(NATIVE_STAMP) consortium
	$(BIN)/python bench/bench_readings.py
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_sim.py
	$(BIN)/python bench/bench_market.py
	$(BIN)/python bench/bench_api.py
	$(BIN)/python bench/bench_frontdoor.py
	$(BIN)/python bench/bench_readonly.py
	$(BIN)/python bench/bench_consortium.py

clean:
	rm -rf $(VENV) crev-data build *.egg-info $(WEB)/node_modules test-artifacts native/target

# --- Consortium mode (issue 10): CometBFT and its ABCI protobuf types, built on first use ---------
# Both come from CometBFT's own module through the Go module proxy; without Go they are skipped
# (and the tests that need them skip, saying why). build/ and src/crev/consortium/_gen/ are ignored.
COMETBFT_VERSION := v0.38.26
COMETBFT := build/cometbft-$(COMETBFT_VERSION)/cometbft
ABCI_DESC := src/crev/consortium/_gen/abci-$(COMETBFT_VERSION).binpb

.PHONY: consortium
consortium: $(ABCI_DESC) $(COMETBFT)
lint: consortium  # the tests need them; `make demo` does not (yet)

$(ABCI_DESC): src/crev/consortium/protogen.py | $(STAMP)
	@if command -v go >/dev/null 2>&1; then $(BIN)/python -m crev.consortium.protogen; \
	else echo "make: go not found: the ABCI protobuf types are not built (consortium tests skip)"; fi

$(COMETBFT):
	@if command -v go >/dev/null 2>&1; then \
	  echo "make: building cometbft $(COMETBFT_VERSION) with go install (a few minutes, once)"; \
	  GOBIN=$(abspath $(dir $(COMETBFT))) go install github.com/cometbft/cometbft/cmd/cometbft@$(COMETBFT_VERSION); \
	else echo "make: go not found: cometbft is not built (the consortium's real-process tests skip)"; fi
