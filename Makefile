# Two commands: `make run` serves the app, `make test` runs every test. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint format bench install install-dev browser clean

run: install
	$(PY) app.py

test: install-dev browser lint
	$(PY) -m pytest

# Style is checked, not argued about: `make format` rewrites, `make lint` (part of `make test`) refuses drift.
lint: install-dev
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/ruff check --quiet .

format: install-dev
	$(VENV)/bin/ruff format --quiet .
	$(VENV)/bin/ruff check --quiet --fix .

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
