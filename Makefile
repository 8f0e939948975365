# Two commands: `make run` serves the app, `make test` runs every test. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test bench install install-dev browser clean

run: install
	$(PY) app.py

test: install-dev browser
	$(PY) -m pytest

bench: install-dev
	$(PY) -m bench

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Chromium for the browser tests: apt-get installs it when it is missing and we are root.
browser:
	@bash tests/e2e/ensure_chromium.sh

clean:
	rm -rf $(VENV) .pytest_cache tests/e2e/artifacts
