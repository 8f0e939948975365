# Two commands: `make run` serves the app, `make test` runs every test. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint format bench install install-dev browser database clean

run: install
	$(PY) app.py

test: install-dev browser database lint
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

# Chromium for the browser tests: apt-get installs it when it is missing and we are root. axe-core (the
# accessibility checker the browser tests inject) comes from npm into a git-ignored folder.
AXE := tests/e2e/node_modules_root/node_modules/axe-core/axe.min.js
browser: $(AXE)
	@bash tests/e2e/ensure_chromium.sh

# PostgreSQL's server programs for the class board's tests (apt-get, when missing and we are root); the tests
# start a throwaway server of their own.
database:
	@bash tests/ensure_postgres.sh

$(AXE):
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	npm install --silent --no-save --no-audit --no-fund --prefix tests/e2e/node_modules_root axe-core@4

clean:
	rm -rf $(VENV) .pytest_cache tests/e2e/artifacts tests/e2e/node_modules_root
