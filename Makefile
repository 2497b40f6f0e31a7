# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/enrollab: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' 'tox>=4.14'
	@touch $@

venv: $(BIN)/enrollab

demo: venv
	$(BIN)/enrollab demo

test: venv
	$(BIN)/tox -p auto

clean:
	rm -rf $(VENV) .tox build *.egg-info
