# Entry points (see README.md):
#   make book   create/refresh .venv, then build the HTML book into _build/html
#   make test   ruff (lint and format), make book, then every test: pytest (tests/), nbval
#               (exercises/, solutions/)
#   make lab    create/refresh .venv, then start JupyterLab from it
# Any failing step stops make with a non-zero exit status.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CACHE  := _build/.jupyter_cache
# Notebook kernels (kernelspec python3) and tools resolve to the venv's interpreter.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: book test lab venv vendor execution-cache pytest nbval lint clean

book: vendor execution-cache
	$(BIN)/jupyter-book build -W -n --keep-going .

test: lint book pytest nbval
	@echo "make test: all checks passed"

# Reinstall only when the requirements or the package metadata change.
venv: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

# jupyter-cache re-runs a notebook when its code changes. tools/cache_key.py drops the whole
# cache when anything else its outputs depend on changed (resnet_lib, the requirements, the
# installed versions, the profile and device, the execute settings), and Sphinx's environment
# with it, which would keep the old outputs of unchanged notebooks. It compares contents, not
# time stamps, and keeps the key inside the cache, so a cache restored into a fresh clone (CI)
# survives while it still matches. The key includes what is installed, hence after the venv.
execution-cache: $(STAMP)
	$(BIN)/python tools/cache_key.py $(CACHE) --also-drop _build/.doctrees

vendor: $(STAMP)
	$(BIN)/python tools/vendor_assets.py

# tests/test_book.py checks the built HTML, hence the dependency on book.
# pytest exits 5 when it collects nothing; make treats that as a failure like any other.
pytest: book
	$(BIN)/python -m pytest tests

# The notebooks the book does not execute run top to bottom in a fresh kernel; outputs are
# compared only in cells marked "# NBVAL_CHECK_OUTPUT". The chapters are not run again here:
# `make book` executed each in a fresh kernel (a cell that raises fails the build), or took it
# from the cache when neither it nor anything it depends on changed (tools/cache_key.py).
nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env exercises solutions

# The cheap checks, first in make test: lint rules, then the one formatter.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# JupyterLab with the venv's kernel and extensions (jupyterlab-myst renders the chapters' MyST).
# JUPYTER_PREFER_ENV_PATH: the venv's kernel and extensions win over any in ~/.local/share/jupyter.
lab: $(STAMP)
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab

clean:
	rm -rf _build _vendor
