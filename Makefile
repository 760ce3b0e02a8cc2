# Two entry points (see README.md):
#   make book   create/refresh .venv, then build the HTML book into _build/html
#   make test   make book, then every test: pytest (tests/), nbval (chapters/, exercises/,
#               solutions/), ruff
# Any failing step stops make with a non-zero exit status.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LIB_STAMP := _build/.resnet_lib-stamp
# Notebook kernels (kernelspec python3) and tools resolve to the venv's interpreter.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: book test venv vendor pytest nbval lint clean

book: vendor $(LIB_STAMP)
	$(BIN)/jupyter-book build -W -n --keep-going .

test: book pytest nbval lint
	@echo "make test: all checks passed"

# Reinstall only when the requirements or the package metadata change.
venv: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

# The execution cache keys on each notebook's code only. When resnet_lib or the installed
# packages change, drop it so the book shows outputs of the current code (the grader,
# resnet_lib/grading, runs in no chapter).
$(LIB_STAMP): $(shell find resnet_lib -name "*.py" -not -path "*/grading/*" 2>/dev/null) $(STAMP)
	rm -rf _build/.jupyter_cache
	mkdir -p $(@D) && touch $@

vendor: $(STAMP)
	$(BIN)/python tools/vendor_assets.py

# tests/test_book.py checks the built HTML, hence the dependency on book.
# pytest exits 5 when it collects nothing; make treats that as a failure like any other.
pytest: book
	$(BIN)/python -m pytest tests

# Notebooks run top to bottom in a fresh kernel; outputs are compared only in cells
# marked "# NBVAL_CHECK_OUTPUT".
nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env chapters exercises solutions

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf _build _vendor
