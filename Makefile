# Everything a fresh machine needs, from nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install demo test lint validate build pytest openapi clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# SAM CLI pins its own boto3 and pydantic, so it lives in a virtual environment of its own.
$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_VERSION)

install: $(BIN)/.installed

demo: install
	$(BIN)/hubspot-destination replay events/activation.json

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

validate: $(SAM)
	$(SAM) validate --lint

# The layer's Makefile installs cp313 arm64 wheels with this interpreter's pip (the venv always has pip).
build: $(SAM) install
	LAYER_PYTHON=$(abspath $(BIN)/python) $(SAM) build

openapi: install
	$(BIN)/python -m hubspot_local.openapi

pytest: install
	$(BIN)/python -m pytest

test: lint validate build pytest

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam
