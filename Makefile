# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv browser clean

$(BIN)/enrollab: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' 'tox>=4.14'
	@touch $@

venv: $(BIN)/enrollab

demo: venv
	$(BIN)/enrollab demo

# --parallel-live: each env's output as it comes, so a stuck env shows where it stuck;
# timeout: CI must end well inside its hour even if something hangs outside pytest.
# Last, the failed tests of every env from their junit files: the tail of a CI log names them.
test: venv browser
	@rm -f .tox/junit-*.xml
	timeout --kill-after=60 3300 $(BIN)/tox -p auto --parallel-live; status=$$?; \
	  $(BIN)/python .ci/failures.py .tox; exit $$status

# The report's screenshot test drives Debian's Chromium headless (skipped, saying so, without it).
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: no chromium (apt-get install chromium); the report screenshot test will be skipped"; }

clean:
	rm -rf $(VENV) .tox build *.egg-info
