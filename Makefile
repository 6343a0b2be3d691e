# Two entry points, both working on a fresh machine with nothing but Python 3.11+:
#   make demo   installs alertd and runs the daemon on a log that a small writer appends to
#   make test   installs alertd with the probe and test extras and runs every test
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

# torch first, pinned: the local CPU wheel. An open range with no torch installed would pull a
# multi-GB CUDA build.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[probe,report,test]'
	touch $@

# Real servers and a real browser for the tests: Alertmanager (cluster path), promtool (checks
# the /metrics exposition), Chromium (renders `alertd report`). Debian packages.
SYSTEM_TOOLS := chromium prometheus-alertmanager prometheus
system-deps:
	@missing=""; for t in chromium prometheus-alertmanager promtool; do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_TOOLS); \
	  else echo "make test needs: sudo apt-get install -y $(SYSTEM_TOOLS)" >&2; exit 1; fi; fi

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/python samples/demo.py

test: install-test system-deps
	$(BIN)/alertd test rules/tests
	$(BIN)/python -m pytest
