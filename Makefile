# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := False
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: install demo test bench lint format clean

install: $(STAMP)

# The lock file pins every package with hashes; uv installs it exactly (pip would take minutes longer).
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --require-hashes -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

# The FHIR test server and validator (tests/fhir_server) are npm packages, installed exactly from their lock file.
NODE_STAMP := tests/fhir_server/node_modules/.installed
$(NODE_STAMP): tests/fhir_server/package.json tests/fhir_server/package-lock.json
	cd tests/fhir_server && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# demo: a local Airflow (airflow standalone, ./airflow-home) runs the DAGs on a simulated network's events, prints
# where the outputs are, then stops. up: the same, Airflow left running; down: stops it. See docs/demo.md.
demo: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m clinic_pipeline.demo

up: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m clinic_pipeline.demo --keep-running

down:  # without a venv nothing can be running
	test ! -x $(BIN)/python || $(BIN)/python -m clinic_pipeline.standalone stop --home airflow-home
.PHONY: up down

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

bench: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/clinic-pipeline bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
