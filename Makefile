# Everything a fresh machine needs, from nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The template tools (SAM CLI with its aws-sam-translator and cfn-lint) pin their own boto3 and pydantic, so they
# live in an environment of their own; tests/infra runs the translator there (tests/infra/template_tools.py).
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
# The layer's pins are what Lambda runs: the project's environment is held to them, so the tests run them too
# (tests/infra/test_environment.py checks it).
PINS := layers/common/requirements.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet --constraint $(PINS)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install demo bench bench-plot test lint typecheck validate build pytest openapi clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make demo`: the product and the parts of moto the local pipeline uses; nothing for tests or linting.
$(BIN)/.demo-installed: pyproject.toml $(PINS) | $(BIN)/python
	$(PIP_INSTALL) -e '.[local]'
	touch $@

# Everything the tests and ruff need (a superset of the demo's).
$(BIN)/.installed: pyproject.toml $(PINS) | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	touch $@ $(BIN)/.demo-installed

# `make bench-plot`: the demo's packages and matplotlib, for `bench --plot`.
$(BIN)/.plot-installed: pyproject.toml $(PINS) | $(BIN)/python
	$(PIP_INSTALL) -e '.[plot]'
	touch $@ $(BIN)/.demo-installed

# The bench runs DynamoDB as a process of its own: dynalite, an npm package (Node.js and npm), pinned by the
# lockfile, started with TransactWriteItems added by local/bench/dynalite-transactions.js. Its native LevelDB
# build is not needed (the bench keeps its table in memory), so no install script runs.
BENCH_TOOLS := local/bench
DYNALITE := $(BENCH_TOOLS)/node_modules/.bin/dynalite
BENCH_ARGS ?= --profiles 20000 --tier professional

$(DYNALITE): $(BENCH_TOOLS)/package.json $(BENCH_TOOLS)/package-lock.json
	npm ci --prefix $(BENCH_TOOLS) --no-audit --no-fund --ignore-scripts
	touch $@

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_VERSION)

install: $(BIN)/.installed

demo: $(BIN)/.demo-installed
	$(BIN)/hubspot-destination replay events/activation.json

# Throughput (README, "Throughput: bench"); e.g. make bench BENCH_ARGS="--profiles 5000 --tier free --compare".
bench: $(BIN)/.demo-installed $(DYNALITE)
	$(BIN)/hubspot-destination bench $(BENCH_ARGS)

# The same with the peer's strategy beside ours, drawn to docs/bench.png (the README's picture).
bench-plot: $(BIN)/.plot-installed $(DYNALITE)
	$(BIN)/hubspot-destination bench --compare --plot docs/bench.png $(BENCH_ARGS)

lint: install $(SAM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(SAM_VENV)/bin/cfn-lint template.yaml

validate: $(SAM)
	$(SAM) validate --lint

# The layer's Makefile installs cp313 arm64 wheels with this interpreter's pip (the venv always has pip).
build: $(SAM) $(BIN)/python
	LAYER_PYTHON=$(abspath $(BIN)/python) $(SAM) build

openapi: $(BIN)/.demo-installed
	$(BIN)/python -m hubspot_local.openapi

# mypy (pydantic plugin, boto3 stubs) over the deployed code and the local tools (pyproject.toml [tool.mypy]).
typecheck: install
	$(BIN)/mypy layers/common/hubspot_destination functions/ingest/app.py functions/deliver/app.py

# Coverage of the deployed package and the local tools, reported at the end of the run. Where npm is found the
# bench's dynalite is installed first, for the tests that start it (tests/integration/test_dynalite_transactions.py);
# without Node.js they are skipped with a reason, except under CI (CI set), where they must run.
pytest: install $(SAM) $(if $(shell command -v npm 2>/dev/null),$(DYNALITE))
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered

test: lint typecheck validate build pytest

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam $(BENCH_TOOLS)/node_modules
