# Set-up is idempotent: each step checks before it installs, so a second run takes seconds.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
APT_PACKAGES := rustc cargo libstd-rust-dev-wasm32 lld librust-serde-json-dev librust-serde-derive-dev \
		mono-mcs mono-runtime bubblewrap

.PHONY: setup toolchains demo test bench lint clean

NODE_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json | sha256sum | cut -c1-12)

setup: toolchains $(STAMP) $(NODE_STAMP)

toolchains:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing Debian toolchains: $(APT_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(STAMP):
	@command -v python3 >/dev/null || (apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null)
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c "import ensurepip" 2>/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

# npm toolchains (esbuild, typescript, assemblyscript, pyodide) into ./node_modules
$(NODE_STAMP):
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null)
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-* && touch $(NODE_STAMP)

demo: setup
	$(PY) -m functions_nb.demo

test: setup
	$(PY) -m ruff check functions_nb tests benchmarks
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/run.py

lint: setup
	$(PY) -m ruff check functions_nb tests benchmarks

clean:
	rm -rf $(VENV) node_modules build dist *.egg-info bench-results.json
